/**
 * The report's view of a run: one flat record per input, built from the result items alone (no file
 * reads), shared by the CSV and the HTML page. Column names are those of the analytics `results` view
 * (analytics/schema/results.view.sql) so a CSV and an Athena/DuckDB query read alike.
 */
import type { ResultItem } from '../pipeline/messages';

/** One input of a run, as both entry points know it (structurally the CLI's ResultRow). */
export interface ReportRow {
  /** The input's output folder name under the output directory (derived from its file name). */
  input: string;
  item?: ResultItem;
  /** The imageId an input was uploaded under when no result came back. */
  imageId?: string;
  lostReason?: string;
  refused?: { code: string; reason: string };
}

export type ReportStatus = 'SCORED' | 'FAILED' | 'LOST';

/** A flat, typed record: numbers stay numbers, absent values are null. */
export interface ReportRecord {
  image_id: string | null;
  key_pseudonym: string | null;
  status: ReportStatus;
  patient_key: string | null;
  study_key: string | null;
  /** The patient's shifted study day (never the real date). */
  study_date: string | null;
  opacity_pct_total: number | null;
  opacity_pct_right: number | null;
  opacity_pct_left: number | null;
  geographic_extent: number | null;
  zone_score: number | null;
  grade: string | null;
  grade_index: number | null;
  risk_icu: number | null;
  risk_mortality: number | null;
  /** Warning codes, space-separated ('' when none). */
  quality_warnings: string;
  error_code: string | null;
  error_reason: string | null;
  model_version: string | null;
  severity_version: string | null;
}

const num = (v: number | null | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: string | null | undefined): string | null => (v === undefined || v === null || v === '' ? null : v);
/** 'UNKNOWN' is the table's partition placeholder, not a patient. */
const known = (v: string | undefined): string | null => (v && v !== 'UNKNOWN' ? v : null);

export function reportRecord(r: ReportRow): ReportRecord {
  const it = r.item;
  const empty: ReportRecord = {
    image_id: str(it?.imageId ?? r.imageId), key_pseudonym: str(it?.source.keyPseudonym), status: 'LOST',
    patient_key: null, study_key: null, study_date: null, opacity_pct_total: null, opacity_pct_right: null, opacity_pct_left: null,
    geographic_extent: null, zone_score: null, grade: null, grade_index: null, risk_icu: null, risk_mortality: null,
    quality_warnings: '', error_code: null, error_reason: null, model_version: null, severity_version: null,
  };
  if (!it && r.refused) return { ...empty, status: 'FAILED', error_code: r.refused.code, error_reason: r.refused.reason };
  if (!it) return { ...empty, error_code: 'LOST', error_reason: r.lostReason ?? 'no result' };
  const base: ReportRecord = {
    ...empty, status: it.status, patient_key: known(it.patientKey), study_key: known(it.studyKey), study_date: str(it.studyDate),
    model_version: str(it.modelVersion ?? it.model?.version), severity_version: str(it.severityVersion),
  };
  if (it.status === 'FAILED') return { ...base, error_code: str(it.errorCode) ?? 'FAILED', error_reason: str(it.errorReason) };
  return {
    ...base,
    opacity_pct_total: num(it.opacityPctTotal), opacity_pct_right: num(it.opacityPctRight), opacity_pct_left: num(it.opacityPctLeft),
    geographic_extent: num(it.geographicExtent), zone_score: num(it.zoneScore), grade: str(it.grade),
    grade_index: num(it.score?.grade.index), risk_icu: num(it.riskIcu), risk_mortality: num(it.riskMortality),
    quality_warnings: it.qualityWarnings ?? (it.quality?.warnings ?? []).map((w) => w.code).join(' '),
  };
}

/** A patient's scored images in study order: the points of one trend chart. */
export interface TrendSeries {
  patientKey: string;
  points: Array<{ studyDate: string | null; opacityPct: number; input: string; imageId: string | null }>;
}

/**
 * Scored images with a patient pseudonym, grouped by patient and ordered by shifted study day (images
 * without one last, in run order). Patients in order of their first study day, then pseudonym.
 */
export function patientTrends(rows: ReportRow[]): TrendSeries[] {
  const byPatient = new Map<string, TrendSeries['points']>();
  for (const r of rows) {
    const rec = reportRecord(r);
    if (rec.status !== 'SCORED' || !rec.patient_key || rec.opacity_pct_total === null) continue;
    const pts = byPatient.get(rec.patient_key) ?? [];
    pts.push({ studyDate: rec.study_date, opacityPct: rec.opacity_pct_total, input: r.input, imageId: rec.image_id });
    byPatient.set(rec.patient_key, pts);
  }
  const order = (a: string | null, b: string | null) => (a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1);
  const series = [...byPatient].map(([patientKey, points]) => ({
    patientKey,
    // Array.prototype.sort is stable: equal days keep run order.
    points: points.sort((a, b) => order(a.studyDate, b.studyDate)),
  }));
  return series.sort((a, b) => order(a.points[0].studyDate, b.points[0].studyDate) || (a.patientKey < b.patientKey ? -1 : 1));
}

/** How many scored images fall in each grade, in grade order (`labels` first, then any others seen). */
export function gradeCounts(rows: ReportRow[], labels: string[] = []): Array<{ label: string; count: number }> {
  const seen = new Map<string, { index: number; count: number }>();
  for (const r of rows) {
    const rec = reportRecord(r);
    if (rec.status !== 'SCORED' || !rec.grade) continue;
    const g = seen.get(rec.grade) ?? { index: rec.grade_index ?? Number.MAX_SAFE_INTEGER, count: 0 };
    g.count++;
    seen.set(rec.grade, g);
  }
  const out = labels.map((label) => ({ label, count: seen.get(label)?.count ?? 0 }));
  const extra = [...seen].filter(([l]) => !labels.includes(l)).sort((a, b) => a[1].index - b[1].index);
  return [...out, ...extra.map(([label, g]) => ({ label, count: g.count }))];
}
