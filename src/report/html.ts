/**
 * report.html: one self-contained page a person would rather look at than read: the run's summary,
 * what needs a look (failures with their reasons, quality warnings), the grade distribution, a trend
 * chart per patient pseudonym and the full table with overlay thumbnails that open full size. CSS, JS
 * and charts are inline; images are inline thumbnails or relative links into the output folder;
 * a Content-Security-Policy forbids fetching anything else. A pure function of the run's rows.
 */
import { LEFT_RGB, OPACITY_RGB, RIGHT_RGB } from '../core/overlay-colours';
import { gradeCounts, patientTrends, reportRecord, type ReportRecord, type ReportRow } from './rows';
import { esc, gradeBarsSvg, gradeColour, trendSvg } from './svg';

export interface HtmlOptions {
  title?: string;
  /** Inline thumbnails (data: URIs) of overlays by input name; an input without one links its overlay.png. */
  thumbnails?: Map<string, string>;
  /** The severity grades in order (labels), so that empty grades still show in the distribution. */
  grades?: string[];
}

/** A relative URL to a file in an input's output folder (each path segment percent-encoded). */
export function outputHref(input: string, file: string): string {
  return [...input.split('/'), file].map(encodeURIComponent).join('/');
}

const pct = (v: number | null) => (v === null ? '–' : `${v.toFixed(1)}%`);
const prob = (v: number | null) => (v === null ? '–' : `${Math.round(v * 100)}%`);
const int = (v: number | null) => (v === null ? '–' : String(v));
const rgb = (c: readonly number[]) => `rgb(${c.join(',')})`;
/** The first 12 hex digits of an imageId (the full one is in its tooltip and in results.csv). */
const shortId = (id: string | null) => (id ? `${id.slice(0, 12)}…` : '');

const CSS = `
:root{--fg:#1d232a;--muted:#5f6b76;--line:#dde2e7;--bg:#f6f8fa;--card:#fff;--bad:#b3261e;--warn:#8a5a00}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header,main{max-width:1400px;margin:0 auto;padding:16px 24px 0}main{padding-top:0}.scroll{overflow-x:auto}header h1{margin:0 0 4px;font-size:22px}
.muted{color:var(--muted)}.stats{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.stat{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:110px}
.stat b{display:block;font-size:22px}.stat.bad b{color:var(--bad)}.stat.warn b{color:var(--warn)}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:16px 0}
section h2{margin:0 0 10px;font-size:17px}.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 10px}.card h3{margin:0 0 4px;font-size:13px;font-family:ui-monospace,monospace}
.chart .grid{stroke:#e5e8eb}.chart .tick{font-size:11px;fill:#5f6b76}.chart .axis{font-size:11px;fill:#5f6b76}
.chart .line{fill:none;stroke:#1f6feb;stroke-width:2}.chart .pt{fill:#1f6feb;stroke:#fff;stroke-width:1.5}
.legend{display:flex;gap:16px;flex-wrap:wrap;font-size:13px}.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
table{border-collapse:collapse;width:100%}th,td{padding:6px 6px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{position:sticky;top:0;background:#eef1f4;cursor:pointer;user-select:none;white-space:nowrap;font-weight:600}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.thumb{width:122px}
td.thumb img{display:block;max-width:120px;max-height:120px;border-radius:4px;background:#000}
.name{font-weight:600;overflow-wrap:anywhere}td.input{min-width:140px}td.pk{min-width:150px;white-space:nowrap}td.pk .id{white-space:normal;word-break:break-all}td.notes{min-width:160px}.id{font:11px ui-monospace,monospace;color:var(--muted);word-break:break-all}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;white-space:nowrap}
.st-FAILED,.st-LOST{color:var(--bad);font-weight:600}.reason{color:var(--bad)}.warnings{color:var(--warn)}
ul.look{margin:0;padding-left:18px}ul.look li{margin:3px 0}code{font-size:12px}
`;

const SCRIPT = `
document.querySelectorAll('table.results th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var tbody = th.closest('table').tBodies[0];
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    th.closest('tr').querySelectorAll('th').forEach(function (o) { o.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    var key = function (tr) { var c = tr.cells[col]; var v = c.getAttribute('data-v'); return v === null ? c.textContent.trim() : v; };
    var num = th.hasAttribute('data-num');
    Array.from(tbody.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (num) { x = x === '' ? -Infinity : Number(x); y = y === '' ? -Infinity : Number(y); return (x - y) * dir; }
      return x.localeCompare(y) * dir;
    }).forEach(function (tr) { tbody.appendChild(tr); });
  });
});
`;

function thumbCell(r: ReportRow, thumbs: Map<string, string> | undefined): string {
  if (!r.item?.keys) return '<td class="thumb muted">no overlay</td>';
  const full = outputHref(r.input, 'overlay.png');
  const src = thumbs?.get(r.input) ?? full;
  return `<td class="thumb"><a href="${esc(full)}" target="_blank" rel="noopener" title="open the overlay full size"><img src="${esc(src)}" alt="${esc(`overlay of ${r.input}`)}" width="120"></a></td>`;
}

function gradeChip(rec: ReportRecord, labels: string[]): string {
  if (!rec.grade) return '–';
  const i = labels.indexOf(rec.grade);
  return `<span class="chip" style="background:${gradeColour(i >= 0 ? i : rec.grade_index ?? -1, labels.length || 1)}">${esc(rec.grade)}</span>`;
}

function notes(r: ReportRow, rec: ReportRecord): string {
  if (rec.status !== 'SCORED') return `<span class="reason">${esc(`${rec.error_code ?? rec.status}: ${rec.error_reason ?? ''}`)}</span>`;
  const warnings = r.item?.quality?.warnings ?? [];
  if (!warnings.length) return '';
  return `<span class="warnings">${warnings.map((w) => `<b>${esc(w.code)}</b> ${esc(w.message)}`).join('<br>')}</span>`;
}

function tableRow(r: ReportRow, labels: string[], thumbs: Map<string, string> | undefined, patients: boolean): string {
  const rec = reportRecord(r);
  const n = (v: number | null, text: string) => `<td class="n" data-v="${v ?? ''}">${text}</td>`;
  return `<tr>${thumbCell(r, thumbs)}`
    + `<td class="input" data-v="${esc(r.input)}"><div class="name">${esc(r.input)}</div><div class="id" title="${esc(`imageId ${rec.image_id ?? '–'}`)}">${esc(shortId(rec.image_id))}</div></td>`
    + `<td class="st-${rec.status}">${rec.status}</td>`
    + n(rec.opacity_pct_total, pct(rec.opacity_pct_total)) + n(rec.opacity_pct_right, pct(rec.opacity_pct_right)) + n(rec.opacity_pct_left, pct(rec.opacity_pct_left))
    + n(rec.geographic_extent, int(rec.geographic_extent)) + n(rec.zone_score, int(rec.zone_score))
    + `<td data-v="${rec.grade_index ?? ''}">${gradeChip(rec, labels)}</td>`
    + n(rec.risk_icu, prob(rec.risk_icu)) + n(rec.risk_mortality, prob(rec.risk_mortality))
    + (patients ? `<td class="pk" data-v="${esc(`${rec.patient_key ?? ''} ${rec.study_date ?? ''}`)}"><div class="id">${esc(rec.patient_key ?? '–')}</div><div>${esc(rec.study_date ?? '')}</div></td>` : '')
    + `<td class="notes">${notes(r, rec)}</td></tr>`;
}

function needsALook(rows: ReportRow[]): string {
  const items: string[] = [];
  for (const r of rows) {
    const rec = reportRecord(r);
    if (rec.status !== 'SCORED') {
      items.push(`<li><span class="name">${esc(r.input)}</span> <span class="st-${rec.status}">${rec.status}</span> <span class="reason">${esc(`${rec.error_code ?? ''}: ${rec.error_reason ?? ''}`)}</span></li>`);
    } else {
      for (const w of r.item?.quality?.warnings ?? []) {
        items.push(`<li><span class="name">${esc(r.input)}</span> <span class="warnings"><b>${esc(w.code)}</b> ${esc(w.message)}</span></li>`);
      }
    }
  }
  return items.length ? `<ul class="look">${items.join('')}</ul>` : '<p class="muted">Nothing: every image was scored without a quality warning.</p>';
}

export function reportHtml(rows: ReportRow[], opts: HtmlOptions = {}): string {
  const title = opts.title ?? 'cxr-opacity report';
  const recs = rows.map(reportRecord);
  const count = (s: string) => recs.filter((r) => r.status === s).length;
  const warned = recs.filter((r) => r.status === 'SCORED' && r.quality_warnings).length;
  const models = [...new Set(recs.map((r) => r.model_version).filter(Boolean))].join(', ') || '–';
  const severity = [...new Set(recs.map((r) => r.severity_version).filter(Boolean))].join(', ') || '–';
  const counts = gradeCounts(rows, opts.grades);
  const labels = counts.map((c) => c.label);
  const trends = patientTrends(rows);
  // The patient and study-day columns only when some image has a patient.
  const patients = recs.some((r) => r.patient_key !== null);
  const stat = (label: string, v: number, cls = '') => `<div class="stat ${v && cls}"><b>${v}</b>${label}</div>`;
  const trendHtml = trends.length
    ? `<div class="grid">${trends.map((t) => `<div class="card"><h3>${esc(t.patientKey)} <span class="muted">(${t.points.length} image${t.points.length > 1 ? 's' : ''})</span></h3>${trendSvg(t)}</div>`).join('')}</div>`
    : '<p class="muted">No image in this run has a patient: DICOM files give one from PatientID (pseudonymised); PNG and JPEG files carry none.</p>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data: file:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><header><h1>${esc(title)}</h1>
<div class="muted">model ${esc(models)} · severity ${esc(severity)} · patients appear only as pseudonyms and study days are shifted per patient; file names are shown from this folder's source mapping and stay on this machine.</div>
<div class="stats">${stat('images', rows.length)}${stat('scored', count('SCORED'))}${stat('failed', count('FAILED'), 'bad')}${stat('lost', count('LOST'), 'bad')}${stat('with warnings', warned, 'warn')}${stat('patients', trends.length)}</div>
</header><main>
<section><h2>Needs a look</h2>${needsALook(rows)}</section>
<div class="grid">
<section style="flex:1 1 420px;margin:0"><h2>Grade distribution <span class="muted">(scored images)</span></h2>${gradeBarsSvg(counts)}</section>
<section style="flex:1 1 420px;margin:0"><h2>Overlay colours</h2><div class="legend">
<span><span class="sw" style="background:${rgb(OPACITY_RGB)}"></span>opacity</span>
<span><span class="sw" style="background:${rgb(RIGHT_RGB)}"></span>patient's right lung</span>
<span><span class="sw" style="background:${rgb(LEFT_RGB)}"></span>patient's left lung</span></div>
<p class="muted">The patient's right lung is on the viewer's left, as on a PA film. Click a thumbnail for the full-size overlay; click a column heading to sort.</p></section>
</div>
<section><h2>Opacity trend per patient</h2>${trendHtml}</section>
<section><h2>Results</h2><div class="scroll"><table class="results"><thead><tr>
<th>overlay</th><th>input</th><th>status</th><th data-num>opacity</th><th data-num>right</th><th data-num>left</th><th data-num title="geographic extent 0-8">extent</th><th data-num title="six-zone score 0-18">zones</th><th data-num>grade</th><th data-num>ICU risk</th><th data-num>death risk</th>${patients ? '<th title="patient pseudonym; study day shifted per patient, not the real date">patient · day</th>' : ''}<th>warnings / reason</th>
</tr></thead><tbody>
${rows.map((r) => tableRow(r, labels, opts.thumbnails, patients)).join('\n')}
</tbody></table></div></section>
</main><script>${SCRIPT}</script></body></html>
`;
}
