/**
 * One RFC 4180 field, the one CSV quoting every CSV writer of the project uses (run reports, the CLI's --format
 * csv, analytics query results): null is empty, numbers plain decimal (finite, 6 decimals at most), text quoted
 * when it holds a quote, comma, CR or LF, quotes doubled.
 */
export function csvField(v: string | number | null): string {
  if (v === null) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(Math.round(v * 1e6) / 1e6) : '';
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}
