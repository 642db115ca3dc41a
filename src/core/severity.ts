/**
 * The versioned severity configuration (models/severity.json) and the pure functions that read it:
 * grade cut-offs on total opacity %, logistic outcome risks, and the fixed radiologist-style scales
 * (geographic extent 0-4 per lung, six-zone score 0-3 per zone).
 *
 * The cut-offs and the logistic coefficients are calibrated by models/severity/analyze.ts on the
 * COVID-19-AR data (see models/SEVERITY.md); the extent and zone bins are fixed definitions, not calibrated.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

/** One severity grade: total opacity % in [minPct, next grade's minPct). */
export interface SeverityGrade {
  index: number;
  label: string;
  /** Inclusive lower bound on total opacity % (0-100). The first grade starts at 0. */
  minPct: number;
  justification: string;
}

/** How the feature enters the logistic model: x = f(opacity %). */
export type FeatureTransform = 'identity' | 'log1p' | 'sqrt';
export const FEATURE_TRANSFORMS: Record<FeatureTransform, (pct: number) => number> = {
  identity: (p) => p,
  log1p: (p) => Math.log1p(p),
  sqrt: (p) => Math.sqrt(p),
};

/** A one-feature logistic model: p = 1 / (1 + exp(-(intercept + coef * transform(opacity %)))). */
export interface LogisticModel {
  outcome: string;
  feature: 'opacity_pct_total';
  /** Default 'identity'. */
  transform?: FeatureTransform;
  intercept: number;
  coef: number;
  /** Which study of each patient the model was fitted on ('first' or 'worst'). */
  study: string;
  n: number;
  events: number;
  /** Range of the feature in the training data; predictions outside it are extrapolations. */
  featureRange: [number, number];
  /** Cross-validated Brier score and its method, e.g. '5-fold CV by patient, seed 1'. */
  cvBrier: number;
  cvMethod: string;
  /** Brier score of the constant (event-rate) prediction, under the same CV, for reference. */
  cvBrierBaseline: number;
  /** Anything else the analysis records (AUC, CIs, reliability table, ...). */
  [key: string]: unknown;
}

export interface SeverityConfig {
  version: string;
  description: string;
  grades: {
    feature: 'opacity_pct_total';
    /** Ascending by minPct, first minPct = 0, indices 0..n-1. */
    bins: SeverityGrade[];
    justification: string;
    [key: string]: unknown;
  };
  /** The geographic-extent scale (see extentLevel); `levels` absent = the fixed quartile bins. */
  geographicExtent: { description: string; levels?: ScaleLevels; [key: string]: unknown };
  /** The six-zone scale (see zoneLevel); `levels` absent = the fixed thirds. */
  zones: { description: string; levels?: ScaleLevels; [key: string]: unknown };
  risk: { icu: LogisticModel; mortality: LogisticModel };
  [key: string]: unknown;
}

/** models/severity.json, from the repository root (this file is src/core/severity.ts). */
export const DEFAULT_SEVERITY_PATH = path.resolve(__dirname, '..', '..', 'models', 'severity.json');

export class SeverityConfigError extends Error {
  constructor(source: string, reason: string) {
    super(`invalid severity config ${source}: ${reason}`);
    this.name = 'SeverityConfigError';
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/**
 * Where a radiologist-style level starts, in % of the lung (or zone) area that is opaque, fitted to radiologists'
 * scores by models/severity/fit-scales.ts. Level 1 needs MORE than `minInvolvedPct` (so a speck is level 0);
 * level k >= 2 needs at least cutsPct[k - 2].
 */
export interface ScaleLevels {
  minInvolvedPct: number;
  cutsPct: number[];
}

function checkLevels(v: unknown, at: string, n: number, fail: (r: string) => never): void {
  if (v === undefined) return;
  if (!isObj(v)) fail(`${at} must be an object`);
  const o = v as Record<string, unknown>;
  if (!isNum(o.minInvolvedPct) || o.minInvolvedPct < 0 || o.minInvolvedPct >= 100) fail(`${at}.minInvolvedPct must be in [0, 100)`);
  const c = o.cutsPct;
  if (!Array.isArray(c) || c.length !== n || !c.every(isNum)) fail(`${at}.cutsPct must be ${n} numbers`);
  let prev = o.minInvolvedPct as number;
  for (const x of c as number[]) {
    if (!(x > prev && x <= 100)) fail(`${at}.cutsPct must increase from minInvolvedPct up to at most 100`);
    prev = x;
  }
}

/** Checks the shape of a parsed severity.json and returns it typed; throws SeverityConfigError naming the field. */
export function validateSeverityConfig(json: unknown, source = 'severity config'): SeverityConfig {
  const fail = (reason: string): never => {
    throw new SeverityConfigError(source, reason);
  };
  if (!isObj(json)) fail('not a JSON object');
  const c = json as Record<string, unknown>;
  if (!isStr(c.version) || !/^\d+\.\d+\.\d+$/.test(c.version)) fail('"version" must be a semver string like "1.0.0"');
  if (!isStr(c.description)) fail('"description" must be a non-empty string');
  if (!isObj(c.grades)) fail('"grades" must be an object');
  const g = c.grades as Record<string, unknown>;
  if (g.feature !== 'opacity_pct_total') fail('"grades.feature" must be "opacity_pct_total"');
  if (!isStr(g.justification)) fail('"grades.justification" must be a non-empty string');
  if (!Array.isArray(g.bins) || g.bins.length < 2) fail('"grades.bins" must be an array of at least 2 grades');
  (g.bins as unknown[]).forEach((b, i) => {
    const at = `"grades.bins[${i}]"`;
    if (!isObj(b)) return fail(`${at} must be an object`);
    if (b.index !== i) fail(`${at}.index must be ${i}`);
    if (!isStr(b.label)) fail(`${at}.label must be a non-empty string`);
    if (!isNum(b.minPct) || b.minPct < 0 || b.minPct > 100) fail(`${at}.minPct must be a number in [0, 100]`);
    if (i === 0 && b.minPct !== 0) fail(`${at}.minPct must be 0`);
    const prev = i > 0 ? (g.bins as Array<Record<string, unknown>>)[i - 1].minPct : undefined;
    if (i > 0 && !((b.minPct as number) > (prev as number))) fail(`${at}.minPct must be greater than the previous grade's`);
    if (!isStr(b.justification)) fail(`${at}.justification must be a non-empty string`);
  });
  for (const k of ['geographicExtent', 'zones'] as const) {
    if (!isObj(c[k]) || !isStr((c[k] as Record<string, unknown>).description)) fail(`"${k}.description" must be a non-empty string`);
  }
  checkLevels((c.geographicExtent as Record<string, unknown>).levels, '"geographicExtent.levels"', 3, fail);
  checkLevels((c.zones as Record<string, unknown>).levels, '"zones.levels"', 2, fail);
  if (!isObj(c.risk)) fail('"risk" must be an object with "icu" and "mortality"');
  for (const k of ['icu', 'mortality'] as const) {
    const m = (c.risk as Record<string, unknown>)[k];
    const at = `"risk.${k}"`;
    if (!isObj(m)) return fail(`${at} must be an object`);
    if (m.feature !== 'opacity_pct_total') fail(`${at}.feature must be "opacity_pct_total"`);
    for (const f of ['intercept', 'coef', 'n', 'events', 'cvBrier', 'cvBrierBaseline']) {
      if (!isNum(m[f])) fail(`${at}.${f} must be a finite number`);
    }
    for (const f of ['outcome', 'study', 'cvMethod']) if (!isStr(m[f])) fail(`${at}.${f} must be a non-empty string`);
    if (m.transform !== undefined && !(typeof m.transform === 'string' && Object.prototype.hasOwnProperty.call(FEATURE_TRANSFORMS, m.transform))) {
      fail(`${at}.transform must be one of ${Object.keys(FEATURE_TRANSFORMS).join(', ')}`);
    }
    const r = m.featureRange;
    if (!Array.isArray(r) || r.length !== 2 || !isNum(r[0]) || !isNum(r[1])) fail(`${at}.featureRange must be [min, max]`);
  }
  return json as SeverityConfig;
}

/** Reads and validates models/severity.json (or `file`). Fails with a message that names the file and the problem. */
export function loadSeverityConfig(file: string = DEFAULT_SEVERITY_PATH): SeverityConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SeverityConfigError(file, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SeverityConfigError(file, `is not valid JSON (${(e as Error).message})`);
  }
  return validateSeverityConfig(json, file);
}

/** Grade of a total opacity %; 'indeterminate' (index -1) when there is no lung to measure. */
export function gradeFor(pct: number | null, cfg: SeverityConfig): { label: string; index: number } {
  if (pct === null || !Number.isFinite(pct)) return { label: 'indeterminate', index: -1 };
  const bins = cfg.grades.bins;
  let k = 0;
  for (let i = 1; i < bins.length; i++) if (pct >= bins[i].minPct) k = i;
  return { label: bins[k].label, index: bins[k].index };
}

const logistic = (m: LogisticModel, pct: number): number =>
  1 / (1 + Math.exp(-(m.intercept + m.coef * FEATURE_TRANSFORMS[m.transform ?? 'identity'](pct))));

/** Calibrated probabilities of ICU admission and death for a total opacity %; null when the % is null. */
export function riskFor(pct: number | null, cfg: SeverityConfig): { icu: number | null; mortality: number | null } {
  if (pct === null || !Number.isFinite(pct)) return { icu: null, mortality: null };
  return { icu: logistic(cfg.risk.icu, pct), mortality: logistic(cfg.risk.mortality, pct) };
}

/**
 * Geographic extent of one lung, 0-4, by the share of its area involved (Cohen et al. / Wong et al. scale):
 * 0: none (exactly 0%); 1: (0, 25%); 2: [25, 50%); 3: [50, 75%); 4: [75, 100%].
 * Boundaries are lower-inclusive. Prefer extentScoreFromCounts for pixel counts (exact integer comparisons).
 */
export function extentScore(sharePct: number): number {
  if (!(sharePct > 0)) return 0;
  if (sharePct < 25) return 1;
  if (sharePct < 50) return 2;
  if (sharePct < 75) return 3;
  return 4;
}

/** extentScore on counts, exact at the boundaries: `involved` of `area` pixels. 0 when area is 0. */
export function extentScoreFromCounts(involved: number, area: number): number {
  if (area <= 0 || involved <= 0) return 0;
  const q = 4 * involved; // compare involved/area with k/4 without rounding
  if (q < area) return 1;
  if (q < 2 * area) return 2;
  if (q < 3 * area) return 3;
  return 4;
}

/**
 * Six-zone score of one zone, 0-3, by the share of the zone's lung area involved, in thirds:
 * 0: none (exactly 0%); 1: (0, 1/3); 2: [1/3, 2/3); 3: [2/3, 1]. Exact integer comparisons; 0 when area is 0.
 */
export function zoneScoreFromCounts(involved: number, area: number): number {
  if (area <= 0 || involved <= 0) return 0;
  const q = 3 * involved;
  if (q < area) return 1;
  if (q < 2 * area) return 2;
  return 3;
}

/** A level on a fitted scale: 0 unless `involved` is more than minInvolvedPct of `area`, then 1 + cuts reached. */
export function levelFromCounts(involved: number, area: number, levels: ScaleLevels): number {
  if (area <= 0 || involved <= 0) return 0;
  const share = (100 * involved) / area;
  if (!(share > levels.minInvolvedPct)) return 0;
  let k = 1;
  for (const c of levels.cutsPct) if (share >= c) k++;
  return k;
}

/** Geographic extent of one lung (0-4) under the config's scale (fitted levels, else the fixed quartiles). */
export function extentLevel(involved: number, area: number, cfg: SeverityConfig): number {
  const lv = cfg.geographicExtent.levels;
  return lv ? levelFromCounts(involved, area, lv) : extentScoreFromCounts(involved, area);
}

/** Six-zone score of one zone (0-3) under the config's scale (fitted levels, else the fixed thirds). */
export function zoneLevel(involved: number, area: number, cfg: SeverityConfig): number {
  const lv = cfg.zones.levels;
  return lv ? levelFromCounts(involved, area, lv) : zoneScoreFromCounts(involved, area);
}
