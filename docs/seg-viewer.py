#!/usr/bin/python3
"""
An independent reader for the README's SEG picture (docs/make-seg-viewer.ts runs it): reads the source
image, our seg.dcm and sr.dcm with pydicom (not dcmjs, which wrote them), lays each SEG frame over the
source in the colour its segment recommends, and writes a self-contained HTML page (the "viewer") plus a
JSON summary (pixels per frame, which segment each frame is, reference checks) for the generator to
compare with the masks it wrote.

    /usr/bin/python3 docs/seg-viewer.py source.dcm seg.dcm sr.dcm viewer.html summary.json [note]

Needs pydicom, numpy and Pillow (Debian: python3-pydicom python3-numpy python3-pil). Prints nothing
identifying; the page shows the patient name only when the SEG carries one (identity mode `linked`).
"""
import base64
import html
import io
import json
import sys

import numpy as np
import pydicom
from PIL import Image


def lab_to_rgb(lab):
    """DICOM CIELab (PS3.3 C.10.7.1.1, each 0-65535) -> sRGB 0-255, D65."""
    L = lab[0] * 100 / 65535
    a = lab[1] * 255 / 65535 - 128
    b = lab[2] * 255 / 65535 - 128
    fy = (L + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200
    finv = lambda t: t ** 3 if t ** 3 > 216 / 24389 else (116 * t - 16) / (24389 / 27)
    x, y, z = 0.95047 * finv(fx), finv(fy), 1.08883 * finv(fz)
    r = 3.2406 * x - 1.5372 * y - 0.4986 * z
    g = -0.9689 * x + 1.8758 * y + 0.0415 * z
    bb = 0.0557 * x - 0.2040 * y + 1.0570 * z
    gam = lambda c: 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055
    return tuple(int(round(max(0, min(1, gam(c))) * 255)) for c in (r, g, bb))


def source_gray(ds):
    """The source as 8-bit display values: modality LUT, window (or min-max), MONOCHROME1 inverted."""
    px = ds.pixel_array.astype(np.float64)
    px = px * float(getattr(ds, 'RescaleSlope', 1)) + float(getattr(ds, 'RescaleIntercept', 0))
    if 'WindowCenter' in ds and 'WindowWidth' in ds:
        c = float(ds.WindowCenter[0] if ds['WindowCenter'].VM > 1 else ds.WindowCenter)
        w = float(ds.WindowWidth[0] if ds['WindowWidth'].VM > 1 else ds.WindowWidth)
        lo, hi = c - w / 2, c + w / 2
    else:
        lo, hi = float(px.min()), float(px.max())
    g = np.clip((px - lo) / max(hi - lo, 1e-9), 0, 1)
    if ds.PhotometricInterpretation == 'MONOCHROME1':
        g = 1 - g
    return (g * 255).round().astype(np.uint8)


def outline(m):
    """Pixels of the mask with a 4-neighbour outside it (a 1-pixel contour), thickened to 2 pixels."""
    p = np.pad(m, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    edge = m & ~inner
    e = np.pad(edge, 1)
    return edge | e[:-2, 1:-1] | e[2:, 1:-1] | e[1:-1, :-2] | e[1:-1, 2:]


def code(seq):
    c = seq[0]
    return f'{c.CodeMeaning} ({c.CodingSchemeDesignator} {c.CodeValue})'


def sr_groups(sr):
    """TID 1500 -> [(tracking id, [(concept, value, unit)])] of the Imaging Measurements container."""
    out = []
    for item in sr.ContentSequence:
        if item.ValueType != 'CONTAINER' or item.ConceptNameCodeSequence[0].CodeValue != '126010':
            continue
        for grp in item.ContentSequence:
            tid, rows = '', []
            for c in grp.ContentSequence:
                name = c.ConceptNameCodeSequence[0].CodeMeaning
                if c.ValueType == 'TEXT' and c.ConceptNameCodeSequence[0].CodeValue == '112039':
                    tid = c.TextValue
                elif c.ValueType == 'NUM':
                    mv = c.MeasuredValueSequence[0]
                    unit = mv.MeasurementUnitsCodeSequence[0].CodeValue
                    rows.append((name, str(mv.NumericValue), '' if unit == '{score}' else unit))
                elif c.ValueType == 'TEXT':
                    rows.append((name, c.TextValue, ''))
            out.append((tid, rows))
    return out


def main(src_path, seg_path, sr_path, html_path, json_path, note=''):
    src = pydicom.dcmread(src_path)
    seg = pydicom.dcmread(seg_path)
    sr = pydicom.dcmread(sr_path)
    gray = source_gray(src)
    frames = seg.pixel_array  # pydicom unpacks the 1-bit frames: (frames, rows, columns)
    if frames.ndim == 2:
        frames = frames[None]
    segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    rgb = np.repeat(gray[:, :, None], 3, axis=2).astype(np.float64)
    summary = {'rows': int(seg.Rows), 'columns': int(seg.Columns), 'frames': []}
    legend = []
    for i, f in enumerate(seg.PerFrameFunctionalGroupsSequence):
        n = int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        s = segments[n]
        m = frames[i].astype(bool)
        colour = np.array(lab_to_rgb(s.RecommendedDisplayCIELabValue), dtype=np.float64)
        alpha = 0.45 if s.SegmentedPropertyTypeCodeSequence[0].CodeValue == '112001' else 0.22
        rgb[m] = rgb[m] * (1 - alpha) + colour * alpha
        rgb[outline(m)] = colour
        summary['frames'].append({'frame': i + 1, 'segment': n, 'label': str(s.SegmentLabel), 'pixels': int(m.sum())})
        algo = s.SegmentationAlgorithmIdentificationSequence[0]
        legend.append((tuple(int(v) for v in colour), n, str(s.SegmentLabel), code(s.SegmentedPropertyCategoryCodeSequence),
                       code(s.SegmentedPropertyTypeCodeSequence), str(s.SegmentAlgorithmType), f'{algo.AlgorithmName} {algo.AlgorithmVersion}', int(m.sum())))

    ref = seg.ReferencedSeriesSequence[0] if 'ReferencedSeriesSequence' in seg else \
        seg.StudiesContainingOtherReferencedInstancesSequence[0].ReferencedSeriesSequence[0]
    deriv = seg.SharedFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    checks = {
        'same rows and columns as the source': (int(seg.Rows), int(seg.Columns)) == (int(src.Rows), int(src.Columns)),
        'Referenced Series = source series': ref.SeriesInstanceUID == src.SeriesInstanceUID,
        'Referenced Instance = source image': ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID,
        'Derivation Image = source image': deriv.ReferencedSOPInstanceUID == src.SOPInstanceUID,
        'SEG study = source study': seg.StudyInstanceUID == src.StudyInstanceUID,
        'SR study = source study': sr.StudyInstanceUID == src.StudyInstanceUID,
    }
    summary['checks'] = checks

    buf = io.BytesIO()
    Image.fromarray(rgb.round().astype(np.uint8)).save(buf, 'PNG')
    img64 = base64.b64encode(buf.getvalue()).decode()
    e = html.escape
    seg_rows = ''.join(
        f'<tr><td><span class="sw" style="background:rgb{c}"></span></td><td>{n}</td><td><b>{e(label)}</b><br><small>{e(typ)}<br>{e(cat)}</small></td>'
        f'<td><small>{e(alg)}<br>{e(atype)}</small></td><td class="r">{px:,}</td></tr>'
        for c, n, label, cat, typ, atype, alg, px in legend)
    # One row per measurement group, one column per concept (full concept names in the header's tooltip).
    groups = sr_groups(sr)
    concepts = []
    for _, rows in groups:
        concepts += [name for name, _, _ in rows if name not in concepts]
    short = {'Area': 'area', 'Opacity area as percentage of lung area': 'opacity %', 'Geographic extent of opacity': 'extent',
             'Six-zone opacity score': 'zones', 'Opacity severity grade': 'grade'}
    sr_rows = '<tr>' + '<th></th>' + ''.join(f'<th class="r" title="{e(c)}">{e(short.get(c, c))}</th>' for c in concepts) + '</tr>' + ''.join(
        f'<tr><td class="g">{e(tid)}</td>' + ''.join(
            '<td class="r">' + ''.join(f'{e(v)}{" " + e(u) if u and u != "%" else ""}' for n, v, u in rows if n == c) + '</td>' for c in concepts) + '</tr>'
        for tid, rows in groups)
    check_rows = ''.join(f'<li>{"&#10003;" if ok else "&#10007;"} {e(k)}</li>' for k, ok in checks.items())
    spacing = ' x '.join(str(v) for v in src.PixelSpacing) + ' mm' if 'PixelSpacing' in src else 'none'
    page = f'''<!doctype html><html><head><meta charset="utf-8"><title>cxr-opacity SEG viewer</title><style>
body{{margin:0;background:#111;color:#ddd;font:13px/1.35 "DejaVu Sans",sans-serif}}
.bar{{background:#222;padding:7px 12px;border-bottom:1px solid #333}} .bar b{{color:#fff}}
.wrap{{display:flex}} .img{{width:640px;height:640px;background:#000}} .img img{{width:640px;height:640px;image-rendering:auto}}
.side{{flex:1;padding:8px 12px;overflow:hidden}} h3{{margin:6px 0 3px;font-size:13px;color:#9cf}}
table{{border-collapse:collapse;width:100%}} td{{padding:1px 4px;vertical-align:top}} .r{{text-align:right;white-space:nowrap}}
.g{{color:#fc9;white-space:nowrap}} th{{color:#aaa;font-weight:normal;padding:1px 4px}} small{{color:#999}} .sw{{display:inline-block;width:14px;height:14px;border-radius:2px;margin-top:2px}}
.note{{color:#bbb;font-size:12px;margin-top:10px;border-top:1px solid #333;padding-top:6px}} ul{{margin:2px 0;padding-left:4px;list-style:none;color:#9e9}} .ov{{position:absolute;left:8px;top:40px;color:#eee;font-size:12px;background:rgba(0,0,0,.6);padding:2px 5px}}
</style></head><body>
<div class="bar"><b>seg.dcm</b> ({e(str(seg.SeriesDescription))}, {e(str(seg.SegmentationType))}, {len(frames)} frames) over <b>source.dcm</b>,
read back with pydicom {e(pydicom.__version__)}; <b>sr.dcm</b> (TID 1500) beside it</div>
<div class="wrap"><div class="img"><img src="data:image/png;base64,{img64}"></div>
<div class="ov">{e(str(src.Modality))} {int(src.Columns)} x {int(src.Rows)}, spacing {e(spacing)}<br>Patient: {e(str(seg.PatientName)) or '(none)'} / {e(str(seg.PatientID)) or '(none)'}</div>
<div class="side"><h3>Segments (SEG)</h3><table><tr><th></th><th>#</th><th>segment, type, category</th><th>algorithm</th><th class="r">pixels</th></tr>{seg_rows}</table>
<h3>References</h3><ul>{check_rows}</ul>
<h3>Measurements (SR)</h3><table>{sr_rows}</table>{f'<p class="note">{e(note)}</p>' if note else ''}</div></div></body></html>'''
    with open(html_path, 'w', encoding='utf-8') as f:
        f.write(page)
    with open(json_path, 'w', encoding='utf-8') as f:
        json.dump(summary, f)


if __name__ == '__main__':
    main(*sys.argv[1:7])
