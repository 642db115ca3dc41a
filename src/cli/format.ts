/** Presentation of results for the terminal: a table, JSON lines or CSV. */
import type { ResultItem } from '../pipeline/messages';
import { csvField } from '../csv';

export interface ResultRow {
  input: string;
  item?: ResultItem;
  /** When the pipeline gave up (dead-lettered) without a result item. */
  lostReason?: string;
  /** When the input was refused before it entered the pipeline (e.g. over the size cap, as the upload API would). */
  refused?: { code: string; reason: string };
  /** npm start: the result came from an earlier run over the same data and was not computed again. */
  reused?: boolean;
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '-' : v.toFixed(1));
const prob = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${Math.round(v * 100)}%`);

export const COLUMNS = ['input', 'status', 'opacity%', 'right%', 'left%', 'extent(0-8)', 'zones(0-18)', 'grade', 'ICU risk', 'death risk', 'reason'] as const;

export function rowValues(r: ResultRow): string[] {
  const it = r.item;
  if (!it && r.refused) return [r.input, 'FAILED', '-', '-', '-', '-', '-', '-', '-', '-', `${r.refused.code}: ${r.refused.reason}`];
  if (!it) return [r.input, 'LOST', '-', '-', '-', '-', '-', '-', '-', '-', r.lostReason ?? 'no result'];
  if (it.status === 'FAILED') return [r.input, r.reused ? 'FAILED (reused)' : 'FAILED', '-', '-', '-', '-', '-', '-', '-', '-', `${it.errorCode}: ${it.errorReason}`];
  return [
    r.input, r.reused ? `${it.status} (reused)` : it.status, pct(it.opacityPctTotal), pct(it.opacityPctRight), pct(it.opacityPctLeft),
    String(it.geographicExtent ?? '-'), String(it.zoneScore ?? '-'), it.grade ?? '-', prob(it.riskIcu), prob(it.riskMortality), '',
  ];
}

/** A fixed-width table; the last column (the reason) is never cut: an error's reason is printed whole. */
export function formatTable(rows: ResultRow[]): string {
  const cells = [COLUMNS.slice() as string[], ...rows.map(rowValues)];
  const last = COLUMNS.length - 1;
  const widths = COLUMNS.map((_, c) => Math.min(c === last ? 80 : 40, Math.max(...cells.map((r) => r[c].length))));
  const fit = (v: string, c: number) => (c === last ? v : v.length > widths[c] ? `${v.slice(0, widths[c] - 1)}…` : v.padEnd(widths[c]));
  const line = (r: string[]) => r.map(fit).join('  ').trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function formatCsv(rows: ResultRow[]): string {
  return [COLUMNS.join(','), ...rows.map((r) => rowValues(r).map(csvField).join(','))].join('\n');
}

export function formatJson(rows: ResultRow[]): string {
  const body = (r: ResultRow) => r.item
    ?? (r.refused ? { status: 'FAILED', errorCode: r.refused.code, errorReason: r.refused.reason } : { status: 'LOST', reason: r.lostReason });
  return rows.map((r) => JSON.stringify({ input: r.input, ...body(r) })).join('\n');
}
