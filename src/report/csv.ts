/**
 * results.csv: one row per input, RFC 4180 (CRLF line ends, fields quoted when they hold a comma, quote,
 * CR or LF), numbers unquoted in plain decimal notation, absent values empty. Keyed by image_id and
 * key_pseudonym; the input's name appears only when the run keeps file names (KEEP_SOURCE_KEYS=true),
 * since a CSV is the file most likely to be passed on.
 */
import { csvField } from '../csv';
import { reportRecord, type ReportRecord, type ReportRow } from './rows';

export const CSV_COLUMNS: ReadonlyArray<keyof ReportRecord> = [
  'image_id', 'key_pseudonym', 'status', 'patient_key', 'study_key', 'study_date',
  'opacity_pct_total', 'opacity_pct_right', 'opacity_pct_left', 'geographic_extent', 'zone_score', 'grade', 'grade_index',
  'risk_icu', 'risk_mortality', 'quality_warnings', 'error_code', 'error_reason', 'model_version', 'severity_version',
];

export { csvField };

export interface CsvOptions {
  /** Add an `input` column with each input's name (only for runs that keep file names). */
  fileNames?: boolean;
}

export function resultsCsv(rows: ReportRow[], opts: CsvOptions = {}): string {
  const header = [...(opts.fileNames ? ['input'] : []), ...CSV_COLUMNS];
  const lines = rows.map((r) => {
    const rec = reportRecord(r);
    return [...(opts.fileNames ? [csvField(r.input)] : []), ...CSV_COLUMNS.map((c) => csvField(rec[c]))].join(',');
  });
  return `${[header.join(','), ...lines].join('\r\n')}\r\n`;
}
