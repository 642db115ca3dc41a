/**
 * Inline SVG charts for the report, generated as text (no chart library, nothing fetched): a
 * per-patient opacity trend and the grade distribution. Pure functions of the report records.
 */
import type { TrendSeries } from './rows';

/** Escapes text for HTML/SVG content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const f1 = (v: number) => (Math.round(v * 10) / 10).toString();

/** Days between two YYYY-MM-DD days. */
function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000);
}

/** The y-axis top: a round number at or above the highest value (at least 10%, at most 100%). */
function yTop(max: number): number {
  for (const t of [10, 20, 30, 40, 50, 60, 80, 100]) if (max <= t) return t;
  return 100;
}

/**
 * One patient's opacity % over their studies. The x axis is days from the patient's first study when
 * every point has a (shifted) study day, else the study order. Each point has a tooltip.
 */
export function trendSvg(series: TrendSeries, opts: { width?: number; height?: number } = {}): string {
  const W = opts.width ?? 360, H = opts.height ?? 180;
  const m = { l: 40, r: 14, t: 12, b: 34 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const pts = series.points;
  const byDay = pts.every((p) => p.studyDate !== null);
  const xs = byDay ? pts.map((p) => daysBetween(pts[0].studyDate!, p.studyDate!)) : pts.map((_, i) => i);
  const xMax = Math.max(1, xs[xs.length - 1]);
  const top = yTop(Math.max(...pts.map((p) => p.opacityPct)));
  const X = (x: number) => m.l + (pts.length === 1 ? pw / 2 : (x / xMax) * pw);
  const Y = (y: number) => m.t + ph - (Math.min(y, top) / top) * ph;
  const parts: string[] = [];
  for (const t of [0, top / 2, top]) {
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(t)}" y2="${Y(t)}" class="grid"/>`,
      `<text x="${m.l - 6}" y="${Y(t) + 4}" text-anchor="end" class="tick">${t}%</text>`);
  }
  const xTicks = pts.length === 1 ? [0] : [...new Set([0, xMax])];
  for (const t of xTicks) {
    const label = byDay ? (t === 0 ? 'day 0' : `day ${t}`) : `#${t + 1}`;
    parts.push(`<text x="${X(t)}" y="${H - m.b + 16}" text-anchor="middle" class="tick">${label}</text>`);
  }
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 4}" text-anchor="middle" class="axis">${byDay ? 'days since first study' : 'study order (no study dates)'}</text>`);
  if (pts.length > 1) {
    parts.push(`<polyline class="line" points="${pts.map((p, i) => `${f1(X(xs[i]))},${f1(Y(p.opacityPct))}`).join(' ')}"/>`);
  }
  pts.forEach((p, i) => {
    const when = p.studyDate ? `${p.studyDate} (shifted)` : 'no study date';
    parts.push(`<circle class="pt" cx="${f1(X(xs[i]))}" cy="${f1(Y(p.opacityPct))}" r="4"><title>${esc(`${p.input}: ${f1(p.opacityPct)}% — ${when}`)}</title></circle>`);
  });
  return `<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(`opacity trend of ${series.patientKey}`)}">${parts.join('')}</svg>`;
}

/** Green to dark red: the grades are spread over it in their own order. */
const GRADE_PALETTE = ['#2f9e44', '#d4a600', '#f08c00', '#e03131', '#a61e4d'];

/** A colour per grade, from green (lowest) to dark red (highest); grey for an unknown grade. */
export function gradeColour(index: number, n: number): string {
  if (index < 0 || n <= 0) return '#868e96';
  const t = n === 1 ? 0 : Math.min(1, index / (n - 1));
  return GRADE_PALETTE[Math.round(t * (GRADE_PALETTE.length - 1))];
}

/** Horizontal bars: scored images per grade. */
export function gradeBarsSvg(counts: Array<{ label: string; count: number }>, opts: { width?: number } = {}): string {
  const W = opts.width ?? 420, bar = 22, gap = 8, labelW = 110, numW = 40;
  const H = Math.max(1, counts.length) * (bar + gap) + gap;
  const max = Math.max(1, ...counts.map((c) => c.count));
  const pw = W - labelW - numW;
  const rows = counts.map((c, i) => {
    const y = gap + i * (bar + gap);
    const w = (c.count / max) * pw;
    return `<text x="${labelW - 8}" y="${y + bar / 2 + 4}" text-anchor="end" class="tick">${esc(c.label)}</text>`
      + `<rect x="${labelW}" y="${y}" width="${f1(Math.max(w, c.count ? 2 : 0))}" height="${bar}" rx="3" fill="${gradeColour(i, counts.length)}"><title>${esc(`${c.label}: ${c.count}`)}</title></rect>`
      + `<text x="${f1(labelW + w + 6)}" y="${y + bar / 2 + 4}" class="tick">${c.count}</text>`;
  });
  return `<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="grade distribution">${rows.join('')}</svg>`;
}
