/**
 * `npm start --manifest file.csv`: patient, study and acquisition date for inputs that carry none
 * themselves (PNG/JPEG). Columns: file (required), patient_id, study_id, acquired_at (all optional per
 * row). The values travel as the upload's user metadata (PATIENT_METADATA, STUDY_METADATA,
 * ACQUIRED_METADATA of src/pipeline/segment-stage.ts), exactly where an API uploader puts them, so the
 * segment stage pseudonymises the ids and shifts the date per patient as it does DICOM tags; no raw
 * value reaches a result, a log or an export. DICOM tags, where present, take precedence.
 *
 * Messages here name rows by number only: a manifest's cells are identifiers.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { calendarDay } from '../core/date-shift';
import { ID_TEXT, MAX_ID_CHARS } from '../limits';
import { ACQUIRED_METADATA, PATIENT_METADATA, STUDY_METADATA } from '../pipeline/segment-stage';

export const MANIFEST_COLUMNS = ['file', 'patient_id', 'study_id', 'acquired_at'] as const;

export interface ManifestRow {
  /** 1-based data row number (the header is row 0). */
  row: number;
  file: string;
  patientId?: string;
  studyId?: string;
  acquiredAt?: string;
}

export interface Manifest {
  rows: ManifestRow[];
  /** The folder `file` paths are relative to. */
  dir: string;
}

export function readManifest(path: string): Manifest {
  let records: Record<string, string>[];
  try {
    records = parse(readFileSync(path), { columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), skip_empty_lines: true, trim: true, bom: true });
  } catch (e) {
    throw new Error(`--manifest ${path}: not a readable CSV (${(e as Error).message.split('\n')[0]})`, { cause: e });
  }
  const header = records.length > 0 ? Object.keys(records[0]) : [];
  const unknown = header.filter((c) => !(MANIFEST_COLUMNS as readonly string[]).includes(c));
  if (records.length > 0 && (!header.includes('file') || unknown.length > 0)) {
    throw new Error(`--manifest ${path}: the columns must be ${MANIFEST_COLUMNS.join(', ')} (file required)${unknown.length ? `; unknown: ${unknown.join(', ')}` : ''}`);
  }
  const rows = records.map((r, i): ManifestRow => {
    const row = i + 1;
    const v = (c: string) => (r[c] ? r[c] : undefined);
    if (!v('file')) throw new Error(`--manifest ${path}: row ${row} has no file`);
    for (const c of ['patient_id', 'study_id', 'acquired_at']) {
      const x = v(c);
      // As the API's ids (src/limits.ts); printable ASCII also because S3 user metadata travels as HTTP headers.
      if (x && (!ID_TEXT.test(x) || x.length > MAX_ID_CHARS)) throw new Error(`--manifest ${path}: row ${row}, ${c}: only printable ASCII, up to ${MAX_ID_CHARS} characters`);
    }
    const acquiredAt = v('acquired_at');
    if (acquiredAt && calendarDay(acquiredAt) === undefined) {
      throw new Error(`--manifest ${path}: row ${row}, acquired_at: not a date (YYYY-MM-DD or an ISO 8601 date-time)`);
    }
    return { row, file: r.file, patientId: v('patient_id'), studyId: v('study_id'), acquiredAt };
  });
  return { rows, dir: dirname(resolve(path)) };
}

/**
 * The manifest row of each input, by input path: a row's `file` is a path relative to the manifest's
 * folder (or absolute); a bare file name also matches by name when exactly one input has it.
 * Returns the matches and how many rows matched no input.
 */
export function matchManifest(manifest: Manifest, inputPaths: string[]): { byPath: Map<string, ManifestRow>; unmatched: number } {
  const byAbs = new Map(inputPaths.map((p) => [resolve(p), p]));
  const byName = new Map<string, string[]>();
  for (const p of inputPaths) byName.set(basename(p), [...(byName.get(basename(p)) ?? []), p]);
  const byPath = new Map<string, ManifestRow>();
  let unmatched = 0;
  for (const row of manifest.rows) {
    const exact = byAbs.get(resolve(manifest.dir, row.file));
    const named = row.file.includes('/') ? undefined : byName.get(row.file);
    const path = exact ?? (named?.length === 1 ? named[0] : undefined);
    if (path) byPath.set(path, row);
    else unmatched++;
  }
  return { byPath, unmatched };
}

/** The user metadata an upload carries for its manifest row (raw values: the segment stage pseudonymises them). */
export function manifestMetadata(row: ManifestRow | undefined): Record<string, string> {
  if (!row) return {};
  return {
    ...(row.patientId ? { [PATIENT_METADATA]: row.patientId } : {}),
    ...(row.studyId ? { [STUDY_METADATA]: row.studyId } : {}),
    ...(row.acquiredAt ? { [ACQUIRED_METADATA]: row.acquiredAt } : {}),
  };
}
