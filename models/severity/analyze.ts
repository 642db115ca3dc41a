/**
 * Calibration and validation of the severity config (issue 4). Writes models/severity.json and
 * models/SEVERITY.md from ../shared/data, deterministically: the same data give byte-identical files.
 *
 *   npx tsx models/severity/analyze.ts [--data DIR] [--out DIR]
 *
 * 1. COVID-19-AR (covid_rural_ar, manual masks, 221 studies of 104 patients; outcomes of 103): opacity % per
 *    study with the production scoreMasks; per patient the first and the worst study; ROC AUC for ICU admission
 *    and death with patient-bootstrap CIs; sensitivity/specificity of cut-offs; one-feature logistic models with
 *    leave-one-out cross-validated Brier scores and reliability tables. The grade cut-offs and the logistic
 *    coefficients come ONLY from this set.
 * 2. Validation of the mask-based geographic extent against the mean of 3 radiologists (Cohen et al.) on
 *    external22 and gb_covid_seg with their manual masks: the ceiling of the method. Nothing is fitted there.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FEATURE_TRANSFORMS, validateSeverityConfig, type FeatureTransform, type SeverityConfig } from '../../src/core/severity';
import { readCsv, scoreSet, type ScoredImage } from './data';
import { auc, bootstrap, fitLogistic, mean, pearson, sigmoid, spearman, wilson, type Estimate } from '../../src/stats';

export const SEVERITY_VERSION = '1.2.0';
const SEED = 20201019; // any fixed number; the date of the source paper's preprint
const RESAMPLES = 2000;

/** The grade cut-offs on total opacity % of the FIRST study (see the justification strings and SEVERITY.md). */
const GRADE_CUTS: Array<{ label: string; minPct: number; why: string }> = [
  { label: 'none', minPct: 0, why: 'no measurable opacity: under 1% of the lung fields, the size of a delineation error or of stray mask pixels' },
  { label: 'mild', minPct: 1, why: 'any measurable opacity; as a cut-off the most sensitive for ICU admission' },
  { label: 'moderate', minPct: 15, why: 'halfway between any opacity and the published 30%; in these data sensitivity and specificity for ICU admission are balanced here' },
  { label: 'severe', minPct: 30, why: 'the published >= 30% involvement cut-off for ICU admission or death; in these data specific, not sensitive' },
  { label: 'critical', minPct: 50, why: 'more than half of the lung fields opaque; in these data the most specific grade for ICU admission and death' },
];
/** Cut-offs reported in the sensitivity/specificity table. */
const CUTOFF_GRID = [1, 5, 10, 15, 20, 25, 30, 40, 50, 75];

const r = (x: number, d: number): number => (Number.isFinite(x) ? Number(x.toFixed(d)) : NaN);
const ci = (e: Estimate, d = 3): { value: number; ci95: [number, number] } => ({ value: r(e.value, d), ci95: [r(e.ci95[0], d), r(e.ci95[1], d)] });

/** Scoring needs a config for grade and risk; the analysis only uses areas, %, extent and zones. */
const NEUTRAL: SeverityConfig = validateSeverityConfig({
  version: '0.0.0',
  description: 'neutral config used while calibrating',
  grades: { feature: 'opacity_pct_total', justification: '-', bins: [{ index: 0, label: 'a', minPct: 0, justification: '-' }, { index: 1, label: 'b', minPct: 100, justification: '-' }] },
  geographicExtent: { description: '-' },
  zones: { description: '-' },
  risk: Object.fromEntries(['icu', 'mortality'].map((k) => [k, { outcome: k, feature: 'opacity_pct_total', intercept: 0, coef: 0, study: '-', n: 0, events: 0, featureRange: [0, 0], cvBrier: 0, cvMethod: '-', cvBrierBaseline: 0 }])),
}, 'neutral');

const sha256File = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');

interface PatientRow {
  patientId: string;
  studies: number;
  icu: number;
  mortality: number;
  first: { pct: number; extent: number; zones: number; right: number | null; left: number | null };
  worst: { pct: number; extent: number; zones: number };
}

const byRow = (n: number): number[][] => Array.from({ length: n }, (_, i) => [i]);

function sensSpec(x: number[], y: number[], t: number) {
  let tp = 0, fn = 0, fp = 0, tn = 0;
  for (let i = 0; i < x.length; i++) {
    const pos = x[i] >= t;
    if (y[i]) { if (pos) tp++; else fn++; } else if (pos) fp++; else tn++;
  }
  const sens = tp / (tp + fn);
  const spec = tn / (tn + fp);
  return {
    atLeastPct: t, tp, fn, fp, tn,
    sensitivity: r(sens, 3), sensitivityCi95: wilson(tp, tp + fn).map((v) => r(v, 3)) as [number, number],
    specificity: r(spec, 3), specificityCi95: wilson(tn, tn + fp).map((v) => r(v, 3)) as [number, number],
    ppv: r(tp / (tp + fp), 3), npv: r(tn / (tn + fn), 3),
    youdenJ: r(sens + spec - 1, 3),
  };
}

/** Groups of ~equal size by ascending prediction, ties kept in one group. */
function quantileGroups(pred: number[], k: number): number[][] {
  const idx = pred.map((_, i) => i).sort((a, b) => pred[a] - pred[b] || a - b);
  const groups: number[][] = [];
  let cur: number[] = [];
  let start = 0;
  for (let j = 0; j < idx.length; j++) {
    cur.push(idx[j]);
    const left = k - groups.length; // groups still to fill, this one included
    const target = (idx.length - start) / left;
    const tieNext = j + 1 < idx.length && pred[idx[j + 1]] === pred[idx[j]];
    if (left > 1 && cur.length >= target && !tieNext) { groups.push(cur); cur = []; start = j + 1; }
  }
  if (cur.length) groups.push(cur);
  return groups;
}

function reliabilityRow(label: string, rows: number[], pred: number[], y: number[]) {
  const events = rows.reduce((s, i) => s + y[i], 0);
  const [lo, hi] = wilson(events, rows.length);
  return { group: label, n: rows.length, events, observed: r(events / rows.length, 3), observedCi95: [r(lo, 3), r(hi, 3)] as [number, number], meanPredicted: r(mean(rows.map((i) => pred[i])), 3) };
}

/** Leave-one-patient-out predictions of a one-feature logistic model (deterministic; each fit is instant). */
function looPredictions(x: number[], y: number[]): { loo: number[]; looBase: number[] } {
  const loo: number[] = [];
  const looBase: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const xs = x.filter((_, j) => j !== i);
    const ys = y.filter((_, j) => j !== i);
    const f = fitLogistic(xs, ys);
    loo.push(sigmoid(f.intercept + f.coef * x[i]));
    looBase.push(mean(ys));
  }
  return { loo, looBase };
}

function logisticModel(outcome: 'icu' | 'mortality', pct: number[], y: number[], gradeOf: (p: number) => string) {
  const n = pct.length;
  const brier = (p: number[]): number => mean(p.map((v, i) => (v - y[i]) ** 2));
  // The feature's shape: identity, log(1 + %) or sqrt(%), chosen by the cross-validated Brier score (3 candidates,
  // named before looking; the choice itself is not cross-validated, a small optimism noted in SEVERITY.md).
  const candidates = (Object.keys(FEATURE_TRANSFORMS) as FeatureTransform[]).map((t) => {
    const x = pct.map(FEATURE_TRANSFORMS[t]);
    const { loo, looBase } = looPredictions(x, y);
    return { transform: t, x, loo, looBase, cvBrier: brier(loo) };
  });
  const best = candidates.reduce((b, c) => (r(c.cvBrier, 6) < r(b.cvBrier, 6) ? c : b));
  const { transform, x, loo, looBase } = best;
  const fit = fitLogistic(x, y);
  const lin = (p: number): number => sigmoid(fit.intercept + fit.coef * FEATURE_TRANSFORMS[transform](p));
  const apparent = pct.map(lin);
  const coefBoot = bootstrap(byRow(n), (rows) => {
    const f = fitLogistic(rows.map((i) => x[i]), rows.map((i) => y[i]));
    return f.converged ? f.coef : NaN;
  }, { n: RESAMPLES, seed: SEED });
  const gradeGroups = new Map<string, number[]>();
  pct.forEach((v, i) => gradeGroups.set(gradeOf(v), [...(gradeGroups.get(gradeOf(v)) ?? []), i]));
  const events = y.reduce((s, v) => s + v, 0);
  return {
    outcome: outcome === 'icu' ? 'ICU admission (patient ever admitted to ICU)' : 'death (MORTALITY)',
    feature: 'opacity_pct_total' as const,
    transform,
    intercept: r(fit.intercept, 5),
    coef: r(fit.coef, 5),
    study: 'first',
    n,
    events,
    featureRange: [r(Math.min(...pct), 2), r(Math.max(...pct), 2)] as [number, number],
    cvBrier: r(brier(loo), 4),
    cvMethod: 'leave-one-patient-out (each patient predicted by a model fitted on the other patients)',
    cvBrierBaseline: r(brier(looBase), 4),
    cvBrierByTransform: Object.fromEntries(candidates.map((c) => [c.transform, r(c.cvBrier, 4)])),
    apparentBrier: r(brier(apparent), 4),
    cvAuc: r(auc(loo, y), 3),
    coefCi95: [r(coefBoot.ci95[0], 5), r(coefBoot.ci95[1], 5)] as [number, number],
    fit: { method: 'maximum likelihood, Newton-Raphson (IRLS), hand-written 2-parameter fit', iterations: fit.iterations, converged: fit.converged },
    riskAt: Object.fromEntries([0, 1, 5, 15, 30, 50, 100].map((p) => [`${p}%`, r(lin(p), 3)])),
    calibrationInTheLarge: { meanCvPredicted: r(mean(loo), 3), observedRate: r(events / n, 3) },
    reliabilityByGrade: GRADE_CUTS.map((g) => g.label).filter((g) => gradeGroups.has(g)).map((g) => reliabilityRow(g, gradeGroups.get(g)!, loo, y)),
    reliabilityByCvRiskQuintile: quantileGroups(loo, 5).map((rows, k) => reliabilityRow(`Q${k + 1} (${r(Math.min(...rows.map((i) => loo[i])), 3)}-${r(Math.max(...rows.map((i) => loo[i])), 3)})`, rows, loo, y)),
  };
}

async function loadRural(dir: string) {
  const manifest = readCsv(path.join(dir, 'manifest.csv'));
  const info = new Map(readCsv(path.join(dir, 'raw', 'covid_rural_patient_info.csv')).map((q) => [q.PATIENT_ID, q]));
  const scored = await scoreSet(dir, manifest.map((m) => m.id), NEUTRAL);
  const maxDiff = Math.max(...manifest.map((m, i) => Math.abs(100 * Number(m.opacity_frac_of_lung) - (scored[i].score.opacityPct.total ?? NaN))));
  const studies = new Map<string, Array<{ date: number; s: ScoredImage }>>();
  manifest.forEach((m, i) => {
    const [mm, dd, yy] = m.study_date.split('-').map(Number); // MM-DD-YYYY (TCIA-shifted dates)
    const a = studies.get(m.patient_id) ?? [];
    a.push({ date: Date.UTC(yy, mm - 1, dd), s: scored[i] });
    studies.set(m.patient_id, a);
  });
  const rows: PatientRow[] = [];
  const noOutcome: string[] = [];
  const noLung: string[] = [];
  for (const [pid, list] of [...studies].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const q = info.get(pid);
    if (!q) { noOutcome.push(pid); continue; }
    const ok = list.filter((x) => x.s.score.opacityPct.total !== null).sort((a, b) => a.date - b.date || (a.s.id < b.s.id ? -1 : 1));
    if (ok.length < list.length) noLung.push(pid);
    if (!ok.length) continue;
    const f = ok[0].s.score;
    const w = ok.reduce((b, x) => (x.s.score.opacityPct.total! > b.s.score.opacityPct.total! ? x : b)).s.score;
    rows.push({
      patientId: pid, studies: ok.length, icu: Number(q['ICU Admit']), mortality: Number(q.MORTALITY),
      first: { pct: f.opacityPct.total!, extent: f.geographicExtent.total, zones: f.zones.total, right: f.opacityPct.right, left: f.opacityPct.left },
      worst: { pct: w.opacityPct.total!, extent: w.geographicExtent.total, zones: w.zones.total },
    });
  }
  const withoutStudies = [...info.keys()].filter((p) => !studies.has(p)).sort();
  return { manifest, scored, rows, maxDiff, noOutcome, noLung, withoutStudies, patients: studies.size };
}

interface ValRow { id: string; patient: string; rad: number; radOpacity: number; extent: number; zones: number; pct: number }

async function loadValidation(dir: string, excludePatients?: Set<string>) {
  const manifest = readCsv(path.join(dir, 'manifest.csv')).filter((m) => m.severity_geographic_mean !== '');
  const scored = await scoreSet(dir, manifest.map((m) => m.id), NEUTRAL);
  const rows: ValRow[] = [];
  const excludedMissingLung: string[] = [];
  manifest.forEach((m, i) => {
    const s = scored[i];
    if (s.missing.includes('lung_right') || s.missing.includes('lung_left')) { excludedMissingLung.push(m.id); return; }
    rows.push({ id: m.id, patient: m.patient_id, rad: Number(m.severity_geographic_mean), radOpacity: Number(m.severity_opacity_mean), extent: s.score.geographicExtent.total, zones: s.score.zones.total, pct: s.score.opacityPct.total! });
  });
  return { rows: excludePatients ? rows.filter((x) => !excludePatients.has(x.patient)) : rows, excludedMissingLung, noOpacityMask: scored.filter((s) => s.missing.includes('opacity')).length };
}

function validationStats(rows: ValRow[]) {
  const patients = [...new Set(rows.map((x) => x.patient))].sort();
  const clusters = patients.map((p) => rows.flatMap((x, i) => (x.patient === p ? [i] : [])));
  const b = (f: (sub: ValRow[]) => number) => bootstrap(clusters, (idx) => f(idx.map((i) => rows[i])), { n: RESAMPLES, seed: SEED });
  const mae = (s: ValRow[]) => mean(s.map((x) => Math.abs(x.extent - x.rad)));
  return {
    nImages: rows.length,
    nPatients: patients.length,
    radiologistMean: r(mean(rows.map((x) => x.rad)), 2),
    maskExtentMean: r(mean(rows.map((x) => x.extent)), 2),
    extentMae: ci(b(mae), 2),
    extentBias: ci(b((s) => mean(s.map((x) => x.extent - x.rad))), 2),
    extentWithin1: r(mean(rows.map((x) => (Math.abs(x.extent - x.rad) <= 1 ? 1 : 0))), 3),
    extentPearson: ci(b((s) => pearson(s.map((x) => x.extent), s.map((x) => x.rad)))),
    extentSpearman: ci(b((s) => spearman(s.map((x) => x.extent), s.map((x) => x.rad)))),
    zonesSpearmanVsGeographic: ci(b((s) => spearman(s.map((x) => x.zones), s.map((x) => x.rad)))),
    pctSpearmanVsGeographic: ci(b((s) => spearman(s.map((x) => x.pct), s.map((x) => x.rad)))),
    pctPearsonVsOpacityScore: ci(b((s) => pearson(s.map((x) => x.pct), s.map((x) => x.radOpacity)))),
    pctSpearmanVsOpacityScore: ci(b((s) => spearman(s.map((x) => x.pct), s.map((x) => x.radOpacity)))),
  };
}

export interface AnalysisResult { json: string; md: string; config: SeverityConfig }

/** The model-mask scale levels fitted by fit-scales.ts (committed input; absent = the fixed bins). */
interface Scales {
  model: string;
  geographicExtent: { levels: { minInvolvedPct: number; cutsPct: number[] }; [k: string]: unknown };
  zones: { levels: { minInvolvedPct: number; cutsPct: number[] }; [k: string]: unknown };
  opacityPctBias: Array<Record<string, unknown>>;
}
const SCALES_FILE = path.join(__dirname, 'scales.json');
const levelText = (lv: { minInvolvedPct: number; cutsPct: number[] }): string =>
  `${lv.minInvolvedPct}% (a smaller share is not involvement), 1 above it` + lv.cutsPct.map((c, i) => `, ${i + 2} from ${c}%`).join('');

export async function runAnalysis(dataDir: string): Promise<AnalysisResult> {
  const scales = existsSync(SCALES_FILE) ? (JSON.parse(readFileSync(SCALES_FILE, 'utf8')) as Scales) : undefined;
  const ruralDir = path.join(dataDir, 'covid_rural_ar');
  const rural = await loadRural(ruralDir);
  const P = rural.rows;
  const n = P.length;
  const icu = P.map((p) => p.icu);
  const mort = P.map((p) => p.mortality);
  const icuEvents = icu.reduce((s, v) => s + v, 0);
  const deaths = mort.reduce((s, v) => s + v, 0);
  const gradeOf = (pct: number): string => GRADE_CUTS.reduce((g, c) => (pct >= c.minPct ? c.label : g), GRADE_CUTS[0].label);

  // discrimination, by patient
  const features = {
    opacity_pct_total: (p: PatientRow, k: 'first' | 'worst') => p[k].pct,
    geographic_extent_total: (p: PatientRow, k: 'first' | 'worst') => p[k].extent,
    zone_score_total: (p: PatientRow, k: 'first' | 'worst') => p[k].zones,
  };
  const discrimination: Record<string, Record<string, Record<string, unknown>>> = {};
  for (const study of ['first', 'worst'] as const) {
    discrimination[study] = {};
    for (const [oname, y] of [['icu', icu], ['mortality', mort]] as const) {
      const events = y.reduce((s, v) => s + v, 0);
      discrimination[study][oname] = Object.fromEntries(Object.entries(features).map(([fname, f]) => {
        const x = P.map((p) => f(p, study));
        return [fname, { auc: ci(bootstrap(byRow(n), (rows) => auc(rows.map((i) => x[i]), rows.map((i) => y[i])), { n: RESAMPLES, seed: SEED })), n, events }];
      }));
    }
  }

  const xFirst = P.map((p) => p.first.pct);
  const cutoffs = {
    study: 'first',
    icu: CUTOFF_GRID.map((t) => sensSpec(xFirst, icu, t)),
    mortality: CUTOFF_GRID.map((t) => sensSpec(xFirst, mort, t)),
  };
  // how stable is the best-balanced (Youden) cut-off among those >= 5%? bootstrap its location
  const youdenBest = (rows: number[]): number => {
    let best = -Infinity, bt = NaN;
    for (const t of [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]) {
      const j = sensSpec(rows.map((i) => xFirst[i]), rows.map((i) => icu[i]), t).youdenJ;
      if (j > best + 1e-12) { best = j; bt = t; }
    }
    return bt;
  };
  const youdenBoot = bootstrap(byRow(n), youdenBest, { n: RESAMPLES, seed: SEED });

  const icuModel = logisticModel('icu', xFirst, icu, gradeOf);
  const mortModel = logisticModel('mortality', xFirst, mort, gradeOf);

  const gradeTable = GRADE_CUTS.map((g, k) => {
    const hi = GRADE_CUTS[k + 1]?.minPct ?? Infinity;
    const rows = P.filter((p) => p.first.pct >= g.minPct && p.first.pct < hi);
    const ie = rows.filter((p) => p.icu).length;
    const de = rows.filter((p) => p.mortality).length;
    return {
      grade: g.label, fromPct: g.minPct, toPct: Number.isFinite(hi) ? hi : 100, patients: rows.length,
      icu: { events: ie, rate: r(ie / rows.length, 3), ci95: wilson(ie, rows.length).map((v) => r(v, 3)) },
      mortality: { events: de, rate: r(de / rows.length, 3), ci95: wilson(de, rows.length).map((v) => r(v, 3)) },
    };
  });

  // validation against the radiologists (manual masks: the ceiling of the method)
  const ext = await loadValidation(path.join(dataDir, 'external22'));
  const ext22Patients = new Set(readCsv(path.join(dataDir, 'external22', 'manifest.csv')).map((m) => m.patient_id));
  const gbAll = await loadValidation(path.join(dataDir, 'gb_covid_seg'));
  const gbIndep = gbAll.rows.filter((x) => !ext22Patients.has(x.patient));
  const validation = {
    masks: 'manual (radiologists / source-paper authors), not the model',
    reference: 'mean of 3 radiologists, geographic extent 0-8 and opacity 0-6 (Cohen et al. 2020)',
    bootstrap: `${RESAMPLES} resamples by patient, seed ${SEED}, percentile 95% CI`,
    external22: { ...validationStats(ext.rows), excludedMissingLungMask: ext.excludedMissingLung.length, imagesWithoutOpacityMask: ext.noOpacityMask },
    gb_covid_seg: { ...validationStats(gbAll.rows), excludedMissingLungMask: gbAll.excludedMissingLung.length, imagesWithoutOpacityMask: gbAll.noOpacityMask },
    gb_covid_seg_without_external22_patients: validationStats(gbIndep),
    pooled_unique_patients: { ...validationStats([...ext.rows, ...gbIndep]), note: 'external22 + gb_covid_seg images of other patients' },
    cohenEtAl2020: { geographicExtentMae: 1.14, opacityMae: 0.78, note: 'their deep-learning regression on 94 images of the same public collection; not the same images or protocol, so an indicative comparison only' },
  };

  const config = {
    version: SEVERITY_VERSION,
    description: 'Severity grades on total opacity % of the lung fields, radiologist-scale scores and outcome risks. Grades and risk models calibrated on manual masks of the COVID-19-AR studies (covid_rural_ar, first study per patient); geographic extent validated on external22 and gb_covid_seg. See models/SEVERITY.md. Generated by models/severity/analyze.ts.',
    generatedBy: 'models/severity/analyze.ts',
    data: {
      calibration: 'covid_rural_ar (manual lung and opacity masks of 221 COVID-19-AR studies, TCIA; outcomes from raw/covid_rural_patient_info.csv)',
      studies: rural.manifest.length,
      patientsWithStudies: rural.patients,
      patientsAnalysed: n,
      icuEvents,
      deaths,
      excluded: {
        studyPatientsWithoutOutcome: rural.noOutcome,
        outcomePatientsWithoutStudy: rural.withoutStudies,
        patientsWithAStudyWithoutLung: rural.noLung,
      },
      maxAbsDiffVsManifestOpacityPct: r(rural.maxDiff, 3),
      inputsSha256: {
        'covid_rural_ar/manifest.csv': sha256File(path.join(ruralDir, 'manifest.csv')),
        'covid_rural_ar/raw/covid_rural_patient_info.csv': sha256File(path.join(ruralDir, 'raw', 'covid_rural_patient_info.csv')),
        'external22/manifest.csv': sha256File(path.join(dataDir, 'external22', 'manifest.csv')),
        'gb_covid_seg/manifest.csv': sha256File(path.join(dataDir, 'gb_covid_seg', 'manifest.csv')),
      },
      bootstrap: `${RESAMPLES} resamples by patient, seed ${SEED}, percentile 95% CI`,
    },
    grades: {
      feature: 'opacity_pct_total' as const,
      study: 'first',
      justification: `Cut-offs on total opacity % (opacity inside the lungs / lung area) of the first study. Round numbers anchored on published practice (involvement >= 30% reported to predict ICU admission or death) and on measurement noise (< 1% = none), checked on ${n} patients (${icuEvents} ICU, ${deaths} deaths): the best-balanced ICU cut-off on 5-50% is ${youdenBoot.value}% but its bootstrap 95% range is ${youdenBoot.ci95[0]}-${youdenBoot.ci95[1]}%, so these data cannot pin a cut-off down. Sensitivity/specificity of each cut-off are in grades.cutoffs.`,
      bins: GRADE_CUTS.map((g, index) => {
        if (index === 0) return { index, label: g.label, minPct: g.minPct, justification: g.why };
        const a = sensSpec(xFirst, icu, g.minPct);
        const m = sensSpec(xFirst, mort, g.minPct);
        return { index, label: g.label, minPct: g.minPct, justification: `${g.why} (>= ${g.minPct}%, first study, n = ${n}: ICU sensitivity ${a.sensitivity.toFixed(2)}, specificity ${a.specificity.toFixed(2)}; death sensitivity ${m.sensitivity.toFixed(2)}, specificity ${m.specificity.toFixed(2)})` };
      }),
      table: gradeTable,
      cutoffs,
      youdenCutoffBootstrap: { grid: '5, 10, ..., 50 %', value: youdenBoot.value, ci95: youdenBoot.ci95 },
    },
    geographicExtent: {
      description: scales
        ? `per lung 0-4 by the share of its area that is opaque, on levels fitted to radiologists (models/severity/scales.json): 0 up to ${levelText(scales.geographicExtent.levels)}; total 0-8 (Wong et al. 2020 / Cohen et al. 2020 scale, computed from masks)`
        : 'per lung 0-4 by the share of its area that is opaque: 0 none (exactly 0%), 1 (0, 25%), 2 [25, 50%), 3 [50, 75%), 4 [75, 100%]; total 0-8 (Wong et al. 2020 / Cohen et al. 2020 scale, computed from masks)',
      ...(scales ? { levels: scales.geographicExtent.levels, modelFit: { ...scales.geographicExtent, levels: undefined } } : {}),
      validation,
    },
    zones: {
      description: scales
        ? `each lung split into upper, middle and lower thirds of its own height (rows from its top-most to its bottom-most pixel); per zone 0-3 by the share of the zone's lung area that is opaque, on levels fitted to a radiologist's Brixia scores (models/severity/scales.json): 0 up to ${levelText(scales.zones.levels)}; total 0-18 (six zones as in the Brixia score, but levels by area, not by lesion type)`
        : 'each lung split into upper, middle and lower thirds of its own height (rows from its top-most to its bottom-most pixel); per zone 0-3 by the share of the zone\'s lung area that is opaque: 0 none, 1 (0, 1/3), 2 [1/3, 2/3), 3 [2/3, 1]; total 0-18 (six zones as in the Brixia score, but levels by area, not by lesion type)',
      ...(scales ? { levels: scales.zones.levels, modelFit: { ...scales.zones, levels: undefined } } : {}),
    },
    ...(scales ? { opacityPctBias: scales.opacityPctBias, scalesModel: scales.model } : {}),
    discrimination,
    risk: { icu: icuModel, mortality: mortModel },
  };
  const json = `${JSON.stringify(config, null, 2)}\n`;
  const validated = validateSeverityConfig(JSON.parse(json), 'generated severity.json');
  return { json, md: renderMarkdown(config), config: validated };
}

// ---------------------------------------------------------------------------------------------------------------
// SEVERITY.md

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const f = (e: { value: number; ci95: [number, number] }, d = 3): string => `${e.value.toFixed(d)} (95% CI ${e.ci95[0].toFixed(d)}-${e.ci95[1].toFixed(d)})`;
const pc = (x: number): string => `${(100 * x).toFixed(0)}%`;

function renderMarkdown(c: Cfg): string {
  const d = c.data;
  const disc = c.discrimination;
  const L: string[] = [];
  const p = (s = ''): void => { L.push(s); };
  p(`# Severity: grades, radiologist-scale scores and outcome risk (severity.json v${c.version})`);
  p();
  p('Generated by `models/severity/analyze.ts` from `../shared/data` (do not edit by hand; re-run the script).');
  p('Every number carries its n; intervals are 95% percentile bootstrap CIs by patient');
  p(`(${d.bootstrap}) unless marked Wilson (binomial proportions).`);
  p();
  p('## What the score computes (src/core/score.ts)');
  p();
  p('- **Opacity %**: opacity pixels inside the lungs / lung pixels, total (union of both lungs) and per lung (patient\'s');
  p('  right and left; null where that lung has no pixels). Areas also in mm² when the DICOM gives a pixel spacing.');
  p(`- **Geographic extent 0-8**: ${c.geographicExtent.description}.`);
  p(`- **Six-zone score 0-18**: ${c.zones.description}. Thirds of the area share were chosen for the 0-3 levels because`);
  p('  they are equal-width bins over the same range as the zone score and make the zone total roughly proportional to');
  p('  involved area; Brixia zones are anatomical and its levels describe lesion type, which masks cannot give.');
  p('- **Grade**: cut-offs on total opacity % (below). **Risk**: logistic models of ICU admission and death on total opacity %.');
  p('- Bin boundaries are lower-inclusive and computed with integer pixel counts (exact at 25%, 1/3, ...) for the fixed');
  p('  bins that the calibration below uses on manual masks; production uses the fitted levels of the next section.');
  p();
  if (c.geographicExtent.modelFit) {
    const ge = c.geographicExtent.modelFit;
    const zo = c.zones.modelFit;
    const row = (name: string, a: Cfg) => p(`| ${name} | ${a.n} | ${a.refused} | ${f(a.mae, 2)} | ${f(a.spearman, 2)} | ${a.meanPredicted.toFixed(2)} / ${a.meanRadiologist.toFixed(2)} |`);
    p(`## Radiologist scales for the model's masks (${c.scalesModel}; models/severity/scales.json)`);
    p();
    p('The model draws opacity differently from a radiologist\'s eye, so the levels that turn involved shares into the');
    p('0-4 extent and 0-3 zone scores were fitted to radiologists\' scores of the model\'s masks on images of patients');
    p('who are not external22 patients (`npx tsx models/severity/fit-scales.ts`), then reported on external22. The minimum');
    p('involved share is searched from 1% up: a speck is not involvement.');
    p();
    p(`- Extent levels: ${JSON.stringify(c.geographicExtent.levels)}; fitted on ${ge.fittedOn}.`);
    p(`- Zone levels: ${JSON.stringify(c.zones.levels)}; fitted on ${zo.fittedOn}.`);
    p();
    p('| scale, set, levels | n | refused | MAE | Spearman | mean model / radiologist |');
    p('|---|---|---|---|---|---|');
    row('extent 0-8, fit set, fixed quartiles', ge.fit.fixedQuartiles);
    row('extent 0-8, fit set, fitted', ge.fit.fitted);
    row('extent 0-8, **external22**, fixed quartiles', ge.external22.fixedQuartiles);
    row('extent 0-8, **external22**, fitted', ge.external22.fitted);
    row('zones 0-18, fit set, fixed thirds', zo.fit.fixedThirds);
    row('zones 0-18, fit set, fitted', zo.fit.fitted);
    row('zones 0-18, **external22** (Brixia-scored images), fixed thirds', zo.external22.fixedThirds);
    row('zones 0-18, **external22** (Brixia-scored images), fitted', zo.external22.fitted);
    p();
    const biases = c.opacityPctBias as Cfg[];
    p('Model opacity % against manual opacity % on held-out labelled films (the grades and risks were fitted on manual');
    p('masks of covid_rural_ar, drawn with the visible-lung-field definition):');
    p();
    p('| held-out set | n | mean difference, model - manual (points) | MAE | Spearman |');
    p('|---|---|---|---|---|');
    for (const b of biases) p(`| ${b.set} | ${b.n} | ${f(b.meanDifferenceModelMinusManual, 2)} | ${f(b.mae, 2)} | ${f(b.spearman, 2)} |`);
    p();
    const signs = biases.map((b) => Math.sign(b.meanDifferenceModelMinusManual.value));
    p(signs.some((x) => x > 0) && signs.some((x) => x < 0)
      ? 'The biases have opposite signs on the two sets: gb_covid_seg draws the lungs larger than the calibration data (so its opacity % is lower), covidqu draws opacity coarser (so its opacity % is higher), and neither shares both definitions with covid_rural_ar. They bracket the model; no single held-out set can fit a correction toward the calibration data\'s definition, so none is applied before the grades and risks. The MAE is the per-image uncertainty a reader should keep in mind.'
      : 'The biases have the same sign on both held-out sets: the grades and risks inherit this bias (no correction is applied yet).'); p();
  }
  p('## Calibration data');
  p();
  p(`${d.calibration}: ${d.studies} studies of ${d.patientsWithStudies} patients. Analysed: **${d.patientsAnalysed} patients,`);
  p(`${d.icuEvents} ICU admissions, ${d.deaths} deaths**. Excluded: patient(s) with studies but no outcome row`);
  p(`(${d.excluded.studyPatientsWithoutOutcome.join(', ') || 'none'}); outcome row(s) without a study (${d.excluded.outcomePatientsWithoutStudy.join(', ') || 'none'}).`);
  p(`Opacity % from the masks agrees with the manifest's \`opacity_frac_of_lung\` within ${d.maxAbsDiffVsManifestOpacityPct} percentage points (all studies).`);
  p('Per patient: the **first** study by date (what is available at presentation) and the **worst** (highest opacity %).');
  p('Grades and risk models use the first study: the worst study is only known in hindsight and may be taken after the');
  p('ICU admission it would be "predicting".');
  p();
  p('## Discrimination (ROC AUC)');
  p();
  p('| study | outcome (events / n) | opacity % total | geographic extent 0-8 | zone score 0-18 |');
  p('|---|---|---|---|---|');
  for (const s of ['first', 'worst']) {
    for (const o of ['icu', 'mortality']) {
      const row = disc[s][o];
      p(`| ${s} | ${o === 'icu' ? 'ICU' : 'death'} (${row.opacity_pct_total.events} / ${row.opacity_pct_total.n}) | ${f(row.opacity_pct_total.auc)} | ${f(row.geographic_extent_total.auc)} | ${f(row.zone_score_total.auc)} |`);
    }
  }
  p();
  p('## Grades');
  p();
  p(c.grades.justification);
  p();
  p('| grade | total opacity % | justification | patients (first study) | ICU rate (Wilson 95% CI) | death rate (Wilson 95% CI) |');
  p('|---|---|---|---|---|---|');
  c.grades.table.forEach((t: Cfg, k: number) => {
    p(`| ${t.grade} | [${t.fromPct}, ${t.toPct}${k === c.grades.table.length - 1 ? ']' : ')'} | ${c.grades.bins[k].justification} | ${t.patients} | ${t.icu.events}/${t.patients} = ${pc(t.icu.rate)} (${pc(t.icu.ci95[0])}-${pc(t.icu.ci95[1])}) | ${t.mortality.events}/${t.patients} = ${pc(t.mortality.rate)} (${pc(t.mortality.ci95[0])}-${pc(t.mortality.ci95[1])}) |`);
  });
  p();
  p(`Sensitivity and specificity of "opacity % >= cut-off" (first study, n = ${d.patientsAnalysed}), Wilson 95% CIs:`);
  p();
  p('| cut-off | ICU sens | ICU spec | ICU PPV / NPV | Youden J | death sens | death spec |');
  p('|---|---|---|---|---|---|---|');
  c.grades.cutoffs.icu.forEach((a: Cfg, k: number) => {
    const m = c.grades.cutoffs.mortality[k];
    const bold = c.grades.bins.some((b: Cfg) => b.minPct === a.atLeastPct) ? '**' : '';
    p(`| ${bold}>= ${a.atLeastPct}%${bold} | ${a.tp}/${a.tp + a.fn} = ${a.sensitivity.toFixed(2)} (${a.sensitivityCi95[0].toFixed(2)}-${a.sensitivityCi95[1].toFixed(2)}) | ${a.tn}/${a.tn + a.fp} = ${a.specificity.toFixed(2)} (${a.specificityCi95[0].toFixed(2)}-${a.specificityCi95[1].toFixed(2)}) | ${a.ppv.toFixed(2)} / ${a.npv.toFixed(2)} | ${a.youdenJ.toFixed(2)} | ${m.tp}/${m.tp + m.fn} = ${m.sensitivity.toFixed(2)} (${m.sensitivityCi95[0].toFixed(2)}-${m.sensitivityCi95[1].toFixed(2)}) | ${m.tn}/${m.tn + m.fp} = ${m.specificity.toFixed(2)} (${m.specificityCi95[0].toFixed(2)}-${m.specificityCi95[1].toFixed(2)}) |`);
  });
  p();
  const yb = c.grades.youdenCutoffBootstrap;
  p(`Bold rows are the grade boundaries. The Youden-best ICU cut-off on the grid ${yb.grid} is ${yb.value}% (bootstrap 95% range ${yb.ci95[0]}-${yb.ci95[1]}%):`);
  p('the data cannot pin a cut-off down, so the boundaries are round numbers anchored on published practice and checked here.');
  p('No cut-off is both sensitive and specific: opacity % alone is a triage aid, not a decision rule.');
  p();
  p('## Risk models (logistic, total opacity % of the first study)');
  p();
  for (const k of ['icu', 'mortality']) {
    const m = c.risk[k];
    const xs = m.transform === 'identity' ? 'opacity%' : `${m.transform}(opacity%)`;
    p(`### ${k === 'icu' ? 'ICU admission' : 'Death'}: p = 1 / (1 + exp(-(${m.intercept} + ${m.coef} x ${xs})))`);
    p();
    p(`- n = ${m.n} patients, ${m.events} events; opacity % range ${m.featureRange[0]}-${m.featureRange[1]}. ${m.fit.method}; converged: ${m.fit.converged}.`);
    p(`- Feature shape chosen by cross-validated Brier among ${Object.entries(m.cvBrierByTransform as Record<string, number>).map(([t, b]) => `${t} ${b}`).join(', ')}: **${m.transform}**.`);
    p(`- Slope ${m.coef} (bootstrap 95% CI ${m.coefCi95[0]}-${m.coefCi95[1]}).`);
    p(`- Predicted risk at ${Object.keys(m.riskAt).join(' / ')}: ${Object.values(m.riskAt).map((v) => pc(v as number)).join(' / ')}.`);
    p(`- Brier score, ${m.cvMethod}: **${m.cvBrier}** vs ${m.cvBrierBaseline} for the event rate alone (apparent, in-sample: ${m.apparentBrier}); cross-validated AUC ${m.cvAuc}.`);
    p(`- Calibration in the large (cross-validated): mean predicted ${pc(m.calibrationInTheLarge.meanCvPredicted)} vs observed ${pc(m.calibrationInTheLarge.observedRate)}.`);
    p();
    p('| group (cross-validated predictions) | n | events | observed (Wilson 95% CI) | mean predicted |');
    p('|---|---|---|---|---|');
    for (const row of [...m.reliabilityByGrade.map((x: Cfg) => ({ ...x, group: `grade ${x.group}` })), ...m.reliabilityByCvRiskQuintile.map((x: Cfg) => ({ ...x, group: `risk ${x.group}` }))]) {
      p(`| ${row.group} | ${row.n} | ${row.events} | ${pc(row.observed)} (${pc(row.observedCi95[0])}-${pc(row.observedCi95[1])}) | ${pc(row.meanPredicted)} |`);
    }
    p();
  }
  p('Quintile groups keep tied predictions together (many patients have 0% opacity), so they differ in size.');
  p();
  p('## Geographic extent vs radiologists (manual masks: the ceiling of the method)');
  p();
  const v = c.geographicExtent.validation;
  p(`Reference: ${v.reference}. Masks: ${v.masks}. Nothing is fitted on these sets. Images with a missing lung mask are excluded; an image without an opacity mask counts as 0% opacity.`);
  p();
  p('| set | images / patients | MAE (0-8) | bias (mask - radiologists) | within 1 point | Pearson r | Spearman r | zone score vs extent (Spearman) | opacity % vs opacity 0-6 (Spearman) |');
  p('|---|---|---|---|---|---|---|---|---|');
  for (const [name, s] of Object.entries(v).filter(([, s]) => typeof s === 'object' && s !== null && 'extentMae' in (s as object)) as Array<[string, Cfg]>) {
    p(`| ${name} | ${s.nImages} / ${s.nPatients} | ${f(s.extentMae, 2)} | ${f(s.extentBias, 2)} | ${pc(s.extentWithin1)} | ${f(s.extentPearson, 2)} | ${f(s.extentSpearman, 2)} | ${f(s.zonesSpearmanVsGeographic, 2)} | ${f(s.pctSpearmanVsOpacityScore, 2)} |`);
  }
  p();
  p(`Excluded for a missing lung mask: external22 ${v.external22.excludedMissingLungMask}, gb_covid_seg ${v.gb_covid_seg.excludedMissingLungMask}. Without an opacity mask (scored 0%): external22 ${v.external22.imagesWithoutOpacityMask}, gb_covid_seg ${v.gb_covid_seg.imagesWithoutOpacityMask}.`);
  p(`gb_covid_seg shares patients with external22, so the pooled row uses external22 plus the gb_covid_seg images of other patients.`);
  p(`Cohen et al. 2020: geographic extent MAE ${v.cohenEtAl2020.geographicExtentMae}, opacity MAE ${v.cohenEtAl2020.opacityMae} (${v.cohenEtAl2020.note}).`);
  p('The opacity 0-6 score grades density, not extent, so only its correlation with opacity % is reported.');
  p();
  p('## Limitations');
  p();
  p(`- Small: ${d.patientsAnalysed} patients, ${d.icuEvents} ICU admissions and ${d.deaths} deaths from one rural US health system. The death model rests on ${d.deaths} events: its slope is uncertain (CI above) and it should be read as a rough prior, not a prognosis.`);
  p('- Opacity % is the only feature: no age, comorbidity, oxygen saturation or timing, all of which matter clinically. The risks are');
  p('  marginal over this cohort\'s case mix and do not transfer to other settings without recalibration.');
  p('- Study timing relative to ICU admission is not known; the first study may follow the admission for some patients.');
  p('- The feature shape (identity, log1p or sqrt) was picked by the same leave-one-out Brier score that is reported, so that');
  p('  score is slightly optimistic; the grade cut-offs were also checked on the same patients (no held-out outcome set exists).');
  p('- Grades describe extent only; the risk of a patient with 0% opacity is not 0 (see the "none" rows).');
  p('- Calibrated on **manual** masks. The production score uses the model\'s masks; its opacity % has its own error, so the');
  p('  grades and risks must be re-checked with the model\'s masks once the model lands (the validation tables above are the ceiling).');
  p('- The radiologist reference is a mean of 3 readers on a different public collection (mixed PA/AP views).');
  p('- Lung masks here exclude the retrocardiac region (the covid_rural_ar / external22 / gb_covid_seg definition).');
  p();
  p('## References');
  p();
  p('- Tang H, Sun N, Li Y. Segmentation model of the opacity regions in the chest X-rays of the Covid-19 patients in the US rural areas and the application to the disease severity. medRxiv 2020.10.19.20215483 (source of covid_rural_ar annotations and of external22).');
  p('- Cohen JP et al. Predicting COVID-19 pneumonia severity on chest X-ray with deep learning. Cureus 2020 (geographic extent 0-8, opacity 0-6; MAE 1.14 and 0.78).');
  p('- Wong HYF et al. Frequency and distribution of chest radiographic findings in patients positive for COVID-19. Radiology 2020 (0-4 extent per lung).');
  p('- Borghesi A, Maroldi R. COVID-19 outbreak in Italy: experimental chest X-ray scoring system (Brixia score). Radiol Med 2020 (six zones, 0-3 each).');
  return `${L.join('\n')}\n`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] ? path.resolve(args[i + 1]) : dflt;
  };
  const repo = path.resolve(__dirname, '..', '..');
  const dataDir = opt('--data', path.resolve(repo, '..', 'shared', 'data'));
  const outDir = opt('--out', path.join(repo, 'models'));
  const t0 = Date.now();
  const { json, md } = await runAnalysis(dataDir);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'severity.json'), json);
  writeFileSync(path.join(outDir, 'SEVERITY.md'), md);
  console.log(`wrote ${path.join(outDir, 'severity.json')} and SEVERITY.md in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
