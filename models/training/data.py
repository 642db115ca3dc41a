"""Dataset loading for the cxr-unet-r18 model.

Reads ../shared/data (relative to the repo root) or a --data path. Applies the data rules:
  * never uses external22, nor any image whose patient_id appears in external22;
  * de-duplicates images present in both gb_covid_seg and v7labs_lungs (column source_file; gb kept);
  * covid_rural_ar has no images and is not used.
Images are preprocessed exactly like the TypeScript side: 8-bit gray / 255, stretched to SxS with
PIL BILINEAR (antialiased), later normalised with (v - mean) / std.
"""
import csv
import os
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
DEFAULT_DATA = os.path.abspath(os.path.join(REPO, '..', 'shared', 'data'))


def read_manifest(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def usable_records(data_dir=DEFAULT_DATA, sources=('gb_covid_seg', 'v7labs_lungs')):
    """Returns (records, excluded) where records are dicts with source, id, patient_id, licence, paths.

    sources: which sets to read; v2 uses gb_covid_seg, covidqu_infection and mcsz (see config.json `sources`)."""
    ext = read_manifest(os.path.join(data_dir, 'external22', 'manifest.csv'))
    ext_patients = {r['patient_id'] for r in ext}
    gb = read_manifest(os.path.join(data_dir, 'gb_covid_seg', 'manifest.csv'))
    v7 = read_manifest(os.path.join(data_dir, 'v7labs_lungs', 'manifest.csv'))
    excluded = {'gb_covid_seg_external22_patient': 0, 'v7labs_lungs_external22_patient': 0,
                'v7labs_lungs_duplicate_of_gb_covid_seg': 0}
    recs = []
    gb_sources = set()
    for r in gb:
        if r['patient_id'] in ext_patients:
            excluded['gb_covid_seg_external22_patient'] += 1
            continue
        gb_sources.add(r['source_file'])
        recs.append(dict(source='gb_covid_seg', id=r['id'], patient_id=r['patient_id'],
                         licence=(r.get('license') or '').strip(), source_file=r['source_file'],
                         dir=os.path.join(data_dir, 'gb_covid_seg')))
    for r in v7:
        if r['patient_id'] in ext_patients:
            excluded['v7labs_lungs_external22_patient'] += 1
            continue
        if r['source_file'] in gb_sources:
            excluded['v7labs_lungs_duplicate_of_gb_covid_seg'] += 1
            continue
        recs.append(dict(source='v7labs_lungs', id=r['id'], patient_id=r['patient_id'],
                         licence=(r.get('license') or '').strip(), source_file=r['source_file'],
                         dir=os.path.join(data_dir, 'v7labs_lungs')))
    if 'covidqu_infection' in sources:
        recs += _covidqu_records(data_dir, ext_patients, excluded)
    if 'mcsz' in sources:
        for r in read_manifest(os.path.join(data_dir, 'mcsz', 'manifest.csv')):
            recs.append(dict(source='mcsz', id=r['id'], patient_id='mcsz:' + r['patient_id'],
                             licence=(r.get('license') or '').strip(), source_file=r['source_file'],
                             dir=os.path.join(data_dir, 'mcsz')))
    recs = [r for r in recs if r['source'] in sources]
    return recs, excluded


def _covidqu_records(data_dir, ext_patients, excluded):
    """COVID-QU-Ex infection set. No patient ids (except 90 matched to the public collection): each image is its own
    'patient' (id qu:<id>) unless a patient_id is given. Images flagged `possible_dup_of_shared` (the same radiograph
    as a gb_covid_seg / v7labs image, which may sit in a validation split) are dropped, as is any image of an
    external22 patient (the data README says those are already removed; checked again here)."""
    excluded.update({'covidqu_possible_duplicate_of_gb_or_v7': 0, 'covidqu_external22_patient': 0})
    out = []
    for r in read_manifest(os.path.join(data_dir, 'covidqu_infection', 'manifest.csv')):
        if r['patient_id'] and r['patient_id'] in ext_patients:
            excluded['covidqu_external22_patient'] += 1
            continue
        if r['possible_dup_of_shared'] == '1':
            excluded['covidqu_possible_duplicate_of_gb_or_v7'] += 1
            continue
        out.append(dict(source='covidqu_infection', id=r['id'], patient_id=r['patient_id'] or 'qu:' + r['id'],
                        licence=(r.get('license') or '').strip(), source_file=r['source_file'],
                        covidqu_class=r['covidqu_class'], covidqu_split=r['covidqu_split'],
                        dir=os.path.join(data_dir, 'covidqu_infection')))
    return out


def find_image(d, id_):
    for ext in ('.png', '.jpg', '.jpeg'):
        p = os.path.join(d, 'images', id_ + ext)
        if os.path.exists(p):
            return p
    cands = [f for f in os.listdir(os.path.join(d, 'images')) if os.path.splitext(f)[0] == id_]
    if not cands:
        raise FileNotFoundError(f'image for {id_} in {d}')
    return os.path.join(d, 'images', cands[0])


def load_gray(path):
    im = Image.open(path)
    if im.mode != 'L':
        im = im.convert('L')
    return im


def resize_image(im, size):
    """uint8 [S,S]: stretch resize, PIL bilinear (antialiased)."""
    return np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def resize_mask(path, size):
    """uint8 0/1 [S,S] or None when absent: bilinear then threshold at 0.5."""
    if not os.path.exists(path):
        return None
    m = Image.open(path).convert('L').resize((size, size), Image.BILINEAR)
    return (np.asarray(m) >= 128).astype(np.uint8)


def load_record(rec, size):
    """Returns image uint8 [S,S], target uint8 [4,S,S] (right, left, opacity, union lung),
    valid float32 [4] (which target channels are supervised), ignore uint8 [S,S]."""
    im = load_gray(find_image(rec['dir'], rec['id']))
    img = resize_image(im, size)
    z = np.zeros((size, size), np.uint8)
    mp = lambda kind: os.path.join(rec['dir'], 'masks', kind, rec['id'] + '.png')
    valid = np.zeros(4, np.float32)
    if rec['source'] in ('gb_covid_seg', 'covidqu_infection', 'mcsz'):
        r, l, o, u = (resize_mask(mp(k), size) for k in ('lung_right', 'lung_left', 'opacity', 'lung'))
        valid[0] = r is not None
        valid[1] = l is not None
        # gb: an absent opacity mask = image labelled without opacity; covidqu Normal images have empty masks;
        # mcsz (TB films) carries no opacity labels at all
        valid[2] = 0.0 if rec['source'] == 'mcsz' else 1.0
        valid[3] = u is not None
        tgt = np.stack([r if r is not None else z, l if l is not None else z,
                        o if o is not None else z, u if u is not None else z])
        ign = z
    else:
        u = resize_mask(mp('lung'), size)
        ig = resize_mask(mp('ignore'), size)
        valid[3] = 1.0
        tgt = np.stack([z, z, z, u])
        ign = ig if ig is not None else z
    return img, tgt, valid, ign


def build_cache(records, size, cache_path):
    """Loads and resizes every record once; caches uint8 arrays in an .npz keyed by source/id."""
    if os.path.exists(cache_path):
        c = np.load(cache_path, allow_pickle=False)
        keys = list(c['keys'])
        want = [r['source'] + '/' + r['id'] for r in records]
        if all(k in keys for k in want):
            idx = [keys.index(k) for k in want]
            return c['img'][idx], c['tgt'][idx], c['valid'][idx], c['ign'][idx]
    imgs, tgts, valids, igns = [], [], [], []
    for i, r in enumerate(records):
        a, b, c_, d = load_record(r, size)
        imgs.append(a); tgts.append(b); valids.append(c_); igns.append(d)
        if (i + 1) % 50 == 0:
            print(f'  cached {i + 1}/{len(records)}', flush=True)
    imgs, tgts, valids, igns = map(np.stack, (imgs, tgts, valids, igns))
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    np.savez(cache_path, keys=np.array([r['source'] + '/' + r['id'] for r in records]),
             img=imgs, tgt=tgts, valid=valids, ign=igns)
    return imgs, tgts, valids, igns
