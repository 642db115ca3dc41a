/**
 * Fits the radiologist-scale levels of the MODEL's masks (issue 9) and writes models/severity/scales.json, which
 * analyze.ts copies into severity.json:
 *
 *   npx tsx models/severity/fit-scales.ts [--data DIR] [--model MANIFEST (default: the default model, layers/onnx/model-files.ts)]
 *
 * - Geographic extent (0-4 per lung, 0-8 total): fitted to the mean of 3 radiologists (Cohen et al.) on the
 *   gb_covid_seg images of patients who are not external22 patients.
 * - Six-zone score (0-3 per zone, 0-18 total): fitted to the senior radiologist's Brixia scores of the images of
 *   our sets whose patients are not external22 patients (severity/brixia_scores.csv).
 * - Each scale's levels: level 1 needs more than `minInvolvedPct` of the lung (zone) opaque, a minimum involved
 *   share searched from 1% up (1% is where the grade `none` ends: smaller is the size of a delineation error or a
 *   speck), and the later levels start at `cutsPct`. The search minimises the MAE of the total against the
 *   radiologists; ties go to the levels nearest the fixed defaults (quartiles / thirds).
 * - Reported, not fitted: the same on external22 (Cohen extent on 22 images, Brixia on its 15 scored images), with
 *   patient-bootstrap 95% CIs, for the fixed default levels and the fitted ones.
 * - The model's opacity % against the manual opacity % on held-out labelled films (gb_covid_seg validation split):
 *   the bias that the grades and risks (fitted on manual masks) would inherit.
 * Everything goes through the production path (decodeImage -> segmentImage -> countMasks -> scoreCounts).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_MANIFEST, loadModel } from '../../layers/onnx/session';
import { countMasks, scoreCounts, type MaskCounts } from '../../src/core/score';
import { decodeImage } from '../../src/core/decode';
import { segmentImage } from '../../src/core/segment';
import { isInputError } from '../../src/core/errors';
import { levelFromCounts, loadSeverityConfig, type ScaleLevels, type SeverityConfig } from '../../src/core/severity';
import { bootstrap, mean, spearman } from '../../src/stats';
import { readCsv, readMask } from './data';

const repo = path.resolve(__dirname, '..', '..');
const SEED = 20201019;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

interface Scored {
  key: string; // <source>/<id>
  patientId: string;
  counts: MaskCounts | null; // null: refused
  refused?: string;
  cohenExtent?: number;
  brixia?: { total: number; zones: number[] }; // A..F
}

const ZONES = ['A', 'B', 'C', 'D', 'E', 'F'];

function imagePath(dataDir: string, key: string): string {
  const [source, id] = key.split('/');
  return path.join(dataDir, source, 'images', `${id}.png`);
}

async function countImage(dataDir: string, key: string, model: Awaited<ReturnType<typeof loadModel>>): Promise<{ counts: MaskCounts | null; refused?: string }> {
  const img = await decodeImage(readFileSync(imagePath(dataDir, key)));
  try {
    const { masks } = await segmentImage(img, model);
    return { counts: countMasks(masks, { width: img.width, height: img.height }) };
  } catch (e) {
    if (!isInputError(e)) throw e;
    return { counts: null, refused: e.code };
  }
}

/** The scored images: fit set (not external22 patients) and report set (external22 images). */
async function collect(dataDir: string, model: Awaited<ReturnType<typeof loadModel>>) {
  const ext = readCsv(path.join(dataDir, 'external22', 'manifest.csv'));
  const extPatients = new Set(ext.map((r) => r.patient_id));
  const items = new Map<string, Scored>();
  const get = (key: string, patientId: string): Scored => {
    if (!items.has(key)) items.set(key, { key, patientId, counts: null });
    return items.get(key)!;
  };
  for (const r of readCsv(path.join(dataDir, 'gb_covid_seg', 'manifest.csv'))) {
    if (r.severity_geographic_mean !== '') get(`gb_covid_seg/${r.id}`, r.patient_id).cohenExtent = Number(r.severity_geographic_mean);
  }
  for (const r of ext) if (r.severity_geographic_mean !== '') get(`external22/${r.id}`, r.patient_id).cohenExtent = Number(r.severity_geographic_mean);
  for (const r of readCsv(path.join(dataDir, 'severity', 'brixia_scores.csv'))) {
    const key = r.images.split(';').map((s) => s.trim()).find((k) => existsSync(imagePath(dataDir, k)));
    if (!key) continue;
    const zones = ZONES.map((z) => Number(r[`S-${z}`]));
    if (zones.some((v) => !Number.isFinite(v))) continue;
    get(key, r.patient_id).brixia = { total: Number(r['S-Global']), zones };
  }
  const all = [...items.values()];
  for (const s of all) Object.assign(s, await countImage(dataDir, s.key, model));
  const isReport = (s: Scored) => s.key.startsWith('external22/');
  const fit = all.filter((s) => !isReport(s) && !extPatients.has(s.patientId));
  const report = all.filter(isReport);
  return { fit, report, dropped: all.length - fit.length - report.length };
}

// The production level function (severity.ts), applied to candidate levels.
const extentTotal = (c: MaskCounts, lv: ScaleLevels) => levelFromCounts(c.right.opacity, c.right.lung, lv) + levelFromCounts(c.left.opacity, c.left.lung, lv);
const zoneList = (c: MaskCounts, lv: ScaleLevels) => [c.right, c.left].flatMap((s) => [0, 1, 2].map((z) => levelFromCounts(s.zoneOpacity[z], s.zoneLung[z], lv)));

const MIN_GRID = [1, 2, 3, 5, 7.5, 10, 15, 20];
const cutGrid = (lo: number) => Array.from({ length: 39 }, (_, i) => 2.5 * (i + 1)).filter((c) => c > lo && c <= 97.5);

/** Exhaustive search over monotone levels; objective = MAE of the total; ties -> nearest to `defaults`. */
function fitLevels(n: number, defaults: ScaleLevels, objective: (lv: ScaleLevels) => number): { levels: ScaleLevels; mae: number } {
  let best: { levels: ScaleLevels; mae: number; dist: number } | undefined;
  const dist = (lv: ScaleLevels) => Math.abs(lv.minInvolvedPct - defaults.minInvolvedPct) + lv.cutsPct.reduce((s, c, i) => s + Math.abs(c - defaults.cutsPct[i]), 0);
  const rec = (min: number, cuts: number[]) => {
    if (cuts.length === n) {
      const lv = { minInvolvedPct: min, cutsPct: cuts };
      const mae = objective(lv);
      const d = dist(lv);
      if (!best || mae < best.mae - 1e-12 || (Math.abs(mae - best.mae) <= 1e-12 && d < best.dist)) best = { levels: lv, mae, dist: d };
      return;
    }
    for (const c of cutGrid(cuts.length ? cuts[cuts.length - 1] : min)) rec(min, [...cuts, c]);
  };
  for (const m of MIN_GRID) rec(m, []);
  return { levels: best!.levels, mae: best!.mae };
}

function byPatient<T extends { patientId: string }>(rows: T[]): number[][] {
  const m = new Map<string, number[]>();
  rows.forEach((r, i) => m.set(r.patientId, [...(m.get(r.patientId) ?? []), i]));
  return [...m.values()];
}

function agreement(rows: Scored[], pred: (c: MaskCounts) => number, truth: (s: Scored) => number) {
  const ok = rows.filter((s) => s.counts);
  const p = ok.map((s) => pred(s.counts!));
  const t = ok.map(truth);
  const cl = byPatient(ok);
  const est = (f: (idx: number[]) => number) => {
    const e = bootstrap(cl, f, { n: 2000, seed: SEED });
    return { value: r3(e.value), ci95: [r3(e.ci95[0]), r3(e.ci95[1])] as [number, number] };
  };
  return {
    n: ok.length,
    refused: rows.length - ok.length,
    mae: est((idx) => mean(idx.map((i) => Math.abs(p[i] - t[i])))),
    spearman: est((idx) => spearman(idx.map((i) => p[i]), idx.map((i) => t[i]))),
    meanPredicted: r3(mean(p)),
    meanRadiologist: r3(mean(t)),
  };
}

/**
 * Model opacity % vs manual opacity % on the held-out validation images of one labelled set (never trained on).
 * gb_covid_seg: radiologists' opacity, but lungs drawn larger than the calibration data's (behind the heart);
 * covidqu_infection: the calibration data's visible-lung-field definition, but coarser opacity. Neither shares both
 * definitions with covid_rural_ar (where the grades and risks were fitted), so the two biases bracket the truth.
 */
async function opacityBias(dataDir: string, set: string, model: Awaited<ReturnType<typeof loadModel>>, cfg: SeverityConfig) {
  const splits = JSON.parse(readFileSync(path.join(repo, 'models', 'training', 'splits.json'), 'utf8')) as { val: string[] };
  const pid = new Map(readCsv(path.join(dataDir, set, 'manifest.csv')).map((r) => [r.id, r.patient_id || r.id]));
  const rows: Array<{ patientId: string; model: number; manual: number }> = [];
  for (const key of splits.val.filter((k) => k.startsWith(`${set}/`))) {
    const id = key.split('/')[1];
    const { counts } = await countImage(dataDir, key, model);
    const m = async (kind: string) => readMask(path.join(dataDir, set, 'masks', kind, `${id}.png`));
    const [lr, ll, op] = [await m('lung_right'), await m('lung_left'), await m('opacity')];
    if (!counts || !lr || !ll) continue;
    const empty = { width: lr.width, height: lr.height, data: new Uint8Array(lr.width * lr.height) };
    const manual = scoreCounts(countMasks({ lungRight: lr, lungLeft: ll, opacity: op ?? empty }), cfg).opacityPct.total ?? 0;
    rows.push({ patientId: pid.get(id) ?? id, model: scoreCounts(counts, cfg).opacityPct.total ?? 0, manual });
  }
  const cl = byPatient(rows);
  const e = (f: (idx: number[]) => number) => {
    const b = bootstrap(cl, f, { n: 2000, seed: SEED });
    return { value: r3(b.value), ci95: [r3(b.ci95[0]), r3(b.ci95[1])] as [number, number] };
  };
  return {
    set: `${set} validation split (never trained on)`,
    n: rows.length,
    meanDifferenceModelMinusManual: e((idx) => mean(idx.map((i) => rows[i].model - rows[i].manual))),
    mae: e((idx) => mean(idx.map((i) => Math.abs(rows[i].model - rows[i].manual)))),
    spearman: e((idx) => spearman(idx.map((i) => rows[i].model), idx.map((i) => rows[i].manual))),
  };
}

export async function fitScales(dataDir: string, manifest: string) {
  const model = await loadModel(manifest, { threads: 2 });
  const cfg = loadSeverityConfig();
  const { fit, report, dropped } = await collect(dataDir, model);
  const cohen = fit.filter((s) => s.cohenExtent !== undefined && s.counts);
  const brixia = fit.filter((s) => s.brixia && s.counts);
  const extDefault: ScaleLevels = { minInvolvedPct: 0, cutsPct: [25, 50, 75] };
  const zoneDefault: ScaleLevels = { minInvolvedPct: 0, cutsPct: [100 / 3, 200 / 3] };
  const extent = fitLevels(3, extDefault, (lv) => mean(cohen.map((s) => Math.abs(extentTotal(s.counts!, lv) - s.cohenExtent!))));
  const zones = fitLevels(2, zoneDefault, (lv) => mean(brixia.map((s) => Math.abs(zoneList(s.counts!, lv).reduce((a, b) => a + b, 0) - s.brixia!.total))));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const extRows = (rows: Scored[]) => rows.filter((s) => s.cohenExtent !== undefined);
  const brxRows = (rows: Scored[]) => rows.filter((s) => s.brixia);
  const out = {
    description: 'Radiologist-scale levels for the model\'s masks, fitted by models/severity/fit-scales.ts; do not edit by hand',
    model: `${model.manifest.name} ${model.manifest.version}`,
    geographicExtent: {
      levels: extent.levels,
      fittedOn: `${cohen.length} gb_covid_seg images (not external22 patients), mean of 3 radiologists (Cohen et al.)`,
      fit: {
        fixedQuartiles: agreement(extRows(fit), (c) => extentTotal(c, extDefault), (s) => s.cohenExtent!),
        fitted: agreement(extRows(fit), (c) => extentTotal(c, extent.levels), (s) => s.cohenExtent!),
      },
      external22: {
        fixedQuartiles: agreement(extRows(report), (c) => extentTotal(c, extDefault), (s) => s.cohenExtent!),
        fitted: agreement(extRows(report), (c) => extentTotal(c, extent.levels), (s) => s.cohenExtent!),
      },
    },
    zones: {
      levels: zones.levels,
      fittedOn: `${brixia.length} images of our sets with a senior radiologist's Brixia scores (not external22 patients)`,
      fit: {
        fixedThirds: agreement(brxRows(fit), (c) => sum(zoneList(c, zoneDefault)), (s) => s.brixia!.total),
        fitted: agreement(brxRows(fit), (c) => sum(zoneList(c, zones.levels)), (s) => s.brixia!.total),
      },
      external22: {
        fixedThirds: agreement(brxRows(report), (c) => sum(zoneList(c, zoneDefault)), (s) => s.brixia!.total),
        fitted: agreement(brxRows(report), (c) => sum(zoneList(c, zones.levels)), (s) => s.brixia!.total),
      },
    },
    opacityPctBias: [await opacityBias(dataDir, 'gb_covid_seg', model, cfg), await opacityBias(dataDir, 'covidqu_infection', model, cfg)],
    excludedImagesOfExternal22Patients: dropped,
    bootstrap: '2000 resamples by patient, seed 20201019, percentile 95% CI',
  };
  await model.release();
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { data: { type: 'string' }, model: { type: 'string' } } });
  const dataDir = path.resolve(values.data ?? path.join(repo, '..', 'shared', 'data'));
  const manifest = path.resolve(values.model ?? DEFAULT_MODEL_MANIFEST);
  const out = await fitScales(dataDir, manifest);
  writeFileSync(path.join(repo, 'models', 'severity', 'scales.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(JSON.stringify(out, null, 2));
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
