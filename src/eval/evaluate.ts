/**
 * `npm run eval -- --data <dir> [--model MANIFEST] [--out DIR] [--limit N]`
 * Runs the ONNX model through the production TypeScript path (decodeImage -> segmentImage -> scoreMasks)
 * on a labelled data set laid out as in ../shared/data (manifest.csv, images/<id>.png,
 * masks/<kind>/<id>.png) and reports lung and opacity agreement with the manual masks, the error of
 * opacity %, and agreement with the radiologists' severity scores. Writes eval.json and eval.md.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'csv-parse/sync';
import { DEFAULT_MODEL_MANIFEST, loadModel } from '../../layers/onnx/session';
import {
  countMasks, decodeImage, isInputError, loadSeverityConfig, pngToMask, scoreCounts, scoreMasks, segmentImage,
  renderOverlay, type GrayImage, type Mask, type MaskCounts, type SegmentationMasks, type SegmentationModel, type SeverityConfig,
} from '../core';
import { upsampleMasks } from '../core/upsample';
import sharp from 'sharp';
import { bootstrapCi, dice, iou, mean, overlap, pearson, pooled, spearman, type Overlap } from './metrics';

export interface ImageEval {
  id: string;
  patientId: string;
  failed?: string;
  lungDice: number;
  lungRightDice: number | null;
  lungLeftDice: number | null;
  opacity: Overlap;
  opacityDice: number;
  opacityIou: number;
  hasOpacity: boolean;
  predOpacityPct: number;
  trueOpacityPct: number;
  predExtent: number;
  trueExtent: number;
  radiologistExtent: number | null;
  radiologistOpacity: number | null;
  inferenceMs: number;
}

export interface EvalSummary {
  data: string;
  model: string;
  n: number;
  nWithOpacity: number;
  lungDice: { mean: number; ci95: [number, number] };
  lungRightDice: { mean: number; ci95: [number, number]; n: number };
  lungLeftDice: { mean: number; ci95: [number, number]; n: number };
  opacityDicePooled: { value: number; ci95: [number, number] };
  opacityIouPooled: { value: number; ci95: [number, number] };
  opacityDiceMean: { value: number; ci95: [number, number]; note: string };
  opacityDiceMeanWithOpacity: { value: number; ci95: [number, number]; n: number };
  opacityPctMae: { value: number; ci95: [number, number] };
  extentMaeVsManualMasks: { value: number; ci95: [number, number] };
  radiologists: {
    n: number;
    predPctVsGeographic: { pearson: number; spearman: number };
    predPctVsOpacityScore: { pearson: number; spearman: number };
    predExtentMae: { value: number; ci95: [number, number] };
    manualExtentMae: { value: number; ci95: [number, number] };
  };
  inferenceMsMedian: number;
}

const CI = <T>(items: T[], f: (s: T[]) => number) => bootstrapCi(items, f, 2000, 20201019);
const r4 = (v: number) => (Number.isFinite(v) ? Math.round(v * 1e4) / 1e4 : v);
const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));

async function readMask(path: string): Promise<Mask | null> {
  return existsSync(path) ? pngToMask(readFileSync(path)) : null;
}

const empty = (w: number, h: number): Mask => ({ width: w, height: h, data: new Uint8Array(w * h) });
const union = (a: Mask, b: Mask): Mask => ({ width: a.width, height: a.height, data: a.data.map((v, i) => v | b.data[i]) });

export interface EvalPictures {
  /** Called with the image, the model's masks and the manual masks, for failure pictures. */
  (id: string, img: GrayImage, pred: SegmentationMasks, manual: SegmentationMasks): Promise<void>;
}

export async function evaluateImage(
  dir: string, row: Record<string, string>, model: SegmentationModel, severity: SeverityConfig, pictures?: EvalPictures,
): Promise<ImageEval> {
  const id = row.id;
  const img = await decodeImage(readFileSync(join(dir, 'images', `${id}.png`)));
  const { width: W, height: H } = img;
  const m = (kind: string) => readMask(join(dir, 'masks', kind, `${id}.png`));
  const tRight = await m('lung_right');
  const tLeft = await m('lung_left');
  const tLung = (await m('lung')) ?? (tRight && tLeft ? union(tRight, tLeft) : null);
  if (!tLung) throw new Error(`${id}: no lung mask`);
  const tOpac = (await m('opacity')) ?? empty(W, H);
  let pred: SegmentationMasks;
  let predCounts: MaskCounts | undefined;
  let failed: string | undefined;
  const t0 = process.hrtime.bigint();
  try {
    // Scored from the working grid's counts, as the service scores; compared with the manual masks at the
    // image's size, as the service's mask PNGs are (core/upsample.ts).
    const grid = (await segmentImage(img, model)).masks;
    predCounts = countMasks(grid, { width: W, height: H });
    pred = upsampleMasks(grid, W, H);
  } catch (e) {
    if (!isInputError(e)) throw e;
    failed = e.code;
    pred = { lungRight: empty(W, H), lungLeft: empty(W, H), opacity: empty(W, H) };
  }
  const inferenceMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const pLung = union(pred.lungRight, pred.lungLeft);
  const tOpacInLung: Mask = { width: W, height: H, data: tOpac.data.map((v, i) => v & tLung.data[i]) };
  const o = overlap(pred.opacity, tOpacInLung);
  const predScore = scoreCounts(predCounts ?? countMasks(pred), severity);
  const trueScore = tRight && tLeft ? scoreMasks({ lungRight: tRight, lungLeft: tLeft, opacity: tOpac }, severity) : null;
  const trueArea = overlap(tOpacInLung, tLung);
  if (pictures) {
    const manual = { lungRight: tRight ?? tLung, lungLeft: tLeft ?? empty(W, H), opacity: tOpacInLung };
    await pictures(id, img, pred, manual);
  }
  return {
    id, patientId: row.patient_id, failed,
    lungDice: dice(overlap(pLung, tLung)),
    lungRightDice: tRight ? dice(overlap(pred.lungRight, tRight)) : null,
    lungLeftDice: tLeft ? dice(overlap(pred.lungLeft, tLeft)) : null,
    opacity: o, opacityDice: dice(o), opacityIou: iou(o), hasOpacity: o.b > 0,
    predOpacityPct: predScore.opacityPct.total ?? 0,
    trueOpacityPct: trueScore?.opacityPct.total ?? (trueArea.b ? (100 * trueArea.inter) / trueArea.b : 0),
    predExtent: predScore.geographicExtent.total,
    trueExtent: trueScore?.geographicExtent.total ?? NaN,
    radiologistExtent: num(row.severity_geographic_mean),
    radiologistOpacity: num(row.severity_opacity_mean),
    inferenceMs,
  };
}

export function summarise(data: string, modelName: string, rows: ImageEval[]): EvalSummary {
  const withOp = rows.filter((r) => r.hasOpacity);
  const right = rows.filter((r) => r.lungRightDice !== null);
  const left = rows.filter((r) => r.lungLeftDice !== null);
  const rad = rows.filter((r) => r.radiologistExtent !== null && Number.isFinite(r.radiologistExtent));
  const radOp = rad.filter((r) => r.radiologistOpacity !== null);
  const manual = rows.filter((r) => Number.isFinite(r.trueExtent));
  const med = [...rows.map((r) => r.inferenceMs)].sort((a, b) => a - b)[Math.floor(rows.length / 2)] ?? NaN;
  const pooledDice = (s: ImageEval[]) => dice(pooled(s.map((r) => r.opacity)));
  const pooledIou = (s: ImageEval[]) => iou(pooled(s.map((r) => r.opacity)));
  const mae = (s: ImageEval[], f: (r: ImageEval) => number) => mean(s.map(f));
  return {
    data, model: modelName, n: rows.length, nWithOpacity: withOp.length,
    lungDice: { mean: r4(mean(rows.map((r) => r.lungDice))), ci95: CI(rows, (s) => mean(s.map((r) => r.lungDice))).map(r4) as [number, number] },
    lungRightDice: { mean: r4(mean(right.map((r) => r.lungRightDice!))), ci95: CI(right, (s) => mean(s.map((r) => r.lungRightDice!))).map(r4) as [number, number], n: right.length },
    lungLeftDice: { mean: r4(mean(left.map((r) => r.lungLeftDice!))), ci95: CI(left, (s) => mean(s.map((r) => r.lungLeftDice!))).map(r4) as [number, number], n: left.length },
    opacityDicePooled: { value: r4(pooledDice(rows)), ci95: CI(rows, pooledDice).map(r4) as [number, number] },
    opacityIouPooled: { value: r4(pooledIou(rows)), ci95: CI(rows, pooledIou).map(r4) as [number, number] },
    opacityDiceMean: {
      value: r4(mean(rows.map((r) => r.opacityDice))), ci95: CI(rows, (s) => mean(s.map((r) => r.opacityDice))).map(r4) as [number, number],
      note: 'images without manual opacity score 1 when the model finds none and 0 when it finds any',
    },
    opacityDiceMeanWithOpacity: { value: r4(mean(withOp.map((r) => r.opacityDice))), ci95: CI(withOp, (s) => mean(s.map((r) => r.opacityDice))).map(r4) as [number, number], n: withOp.length },
    opacityPctMae: { value: r4(mae(rows, (r) => Math.abs(r.predOpacityPct - r.trueOpacityPct))), ci95: CI(rows, (s) => mae(s, (r) => Math.abs(r.predOpacityPct - r.trueOpacityPct))).map(r4) as [number, number] },
    extentMaeVsManualMasks: { value: r4(mae(manual, (r) => Math.abs(r.predExtent - r.trueExtent))), ci95: CI(manual, (s) => mae(s, (r) => Math.abs(r.predExtent - r.trueExtent))).map(r4) as [number, number] },
    radiologists: {
      n: rad.length,
      predPctVsGeographic: { pearson: r4(pearson(rad.map((r) => r.predOpacityPct), rad.map((r) => r.radiologistExtent!))), spearman: r4(spearman(rad.map((r) => r.predOpacityPct), rad.map((r) => r.radiologistExtent!))) },
      predPctVsOpacityScore: { pearson: r4(pearson(radOp.map((r) => r.predOpacityPct), radOp.map((r) => r.radiologistOpacity!))), spearman: r4(spearman(radOp.map((r) => r.predOpacityPct), radOp.map((r) => r.radiologistOpacity!))) },
      predExtentMae: { value: r4(mae(rad, (r) => Math.abs(r.predExtent - r.radiologistExtent!))), ci95: CI(rad, (s) => mae(s, (r) => Math.abs(r.predExtent - r.radiologistExtent!))).map(r4) as [number, number] },
      manualExtentMae: { value: r4(mae(rad.filter((r) => Number.isFinite(r.trueExtent)), (r) => Math.abs(r.trueExtent - r.radiologistExtent!))), ci95: CI(rad.filter((r) => Number.isFinite(r.trueExtent)), (s) => mae(s, (r) => Math.abs(r.trueExtent - r.radiologistExtent!))).map(r4) as [number, number] },
    },
    inferenceMsMedian: Math.round(med * 10) / 10,
  };
}

export function toMarkdown(s: EvalSummary, rows: ImageEval[]): string {
  const ci = (c: [number, number]) => `[${c[0].toFixed(3)}, ${c[1].toFixed(3)}]`;
  const lines = [
    `# Evaluation of ${s.model} on ${s.data}`,
    '',
    `${s.n} images (${s.nWithOpacity} with manual opacity). 95% CIs: percentile bootstrap over images, 2000 resamples.`,
    '',
    '| metric | value | 95% CI | n |',
    '|---|---|---|---|',
    `| lung Dice (both lungs) | ${s.lungDice.mean.toFixed(3)} | ${ci(s.lungDice.ci95)} | ${s.n} |`,
    `| lung Dice, patient's right | ${s.lungRightDice.mean.toFixed(3)} | ${ci(s.lungRightDice.ci95)} | ${s.lungRightDice.n} |`,
    `| lung Dice, patient's left | ${s.lungLeftDice.mean.toFixed(3)} | ${ci(s.lungLeftDice.ci95)} | ${s.lungLeftDice.n} |`,
    `| opacity Dice, pooled | ${s.opacityDicePooled.value.toFixed(3)} | ${ci(s.opacityDicePooled.ci95)} | ${s.n} |`,
    `| opacity IoU, pooled | ${s.opacityIouPooled.value.toFixed(3)} | ${ci(s.opacityIouPooled.ci95)} | ${s.n} |`,
    `| opacity Dice, per-image mean (all) | ${s.opacityDiceMean.value.toFixed(3)} | ${ci(s.opacityDiceMean.ci95)} | ${s.n} |`,
    `| opacity Dice, per-image mean (with opacity) | ${s.opacityDiceMeanWithOpacity.value.toFixed(3)} | ${ci(s.opacityDiceMeanWithOpacity.ci95)} | ${s.opacityDiceMeanWithOpacity.n} |`,
    `| MAE of opacity % of lung (points) | ${s.opacityPctMae.value.toFixed(2)} | ${ci(s.opacityPctMae.ci95)} | ${s.n} |`,
    `| MAE of geographic extent 0-8 vs extent from manual masks | ${s.extentMaeVsManualMasks.value.toFixed(2)} | ${ci(s.extentMaeVsManualMasks.ci95)} | |`,
    `| MAE of geographic extent 0-8 vs radiologists | ${s.radiologists.predExtentMae.value.toFixed(2)} | ${ci(s.radiologists.predExtentMae.ci95)} | ${s.radiologists.n} |`,
    `| (ceiling) manual-mask extent vs radiologists | ${s.radiologists.manualExtentMae.value.toFixed(2)} | ${ci(s.radiologists.manualExtentMae.ci95)} | ${s.radiologists.n} |`,
    `| predicted opacity % vs radiologists' geographic extent: Pearson / Spearman | ${s.radiologists.predPctVsGeographic.pearson.toFixed(3)} / ${s.radiologists.predPctVsGeographic.spearman.toFixed(3)} | | ${s.radiologists.n} |`,
    `| predicted opacity % vs radiologists' opacity score: Pearson / Spearman | ${s.radiologists.predPctVsOpacityScore.pearson.toFixed(3)} / ${s.radiologists.predPctVsOpacityScore.spearman.toFixed(3)} | | ${s.radiologists.n} |`,
    `| median time per image, segmentation (ms) | ${s.inferenceMsMedian} | | |`,
    '',
    '## Per image',
    '',
    '| id | lung Dice | R | L | opacity Dice | opacity % pred | opacity % manual | extent pred / manual / radiologists |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.id}${r.failed ? ` (${r.failed})` : ''} | ${r.lungDice.toFixed(3)} | ${r.lungRightDice?.toFixed(3) ?? '-'} | ${r.lungLeftDice?.toFixed(3) ?? '-'} | ${r.hasOpacity || r.opacity.a ? r.opacityDice.toFixed(3) : 'none/none'} | ${r.predOpacityPct.toFixed(1)} | ${r.trueOpacityPct.toFixed(1)} | ${r.predExtent} / ${Number.isFinite(r.trueExtent) ? r.trueExtent : '-'} / ${r.radiologistExtent ?? '-'} |`),
  ];
  return lines.join('\n') + '\n';
}

/**
 * Side-by-side pictures (model | manual) of the images with the lowest opacity Dice, for the model card's
 * failure cases. They are written next to the report, never committed: they show the data set's images.
 */
export async function writeFailurePictures(dir: string, model: SegmentationModel, evals: ImageEval[], outDir: string, count = 4): Promise<string[]> {
  const manifest = parse(readFileSync(join(dir, 'manifest.csv')), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  const worst = [...evals].filter((e) => e.hasOpacity || e.opacity.a > 0).sort((a, b) => a.opacityDice - b.opacityDice).slice(0, count);
  const severity = loadSeverityConfig();
  mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  for (const e of worst) {
    const row = manifest.find((r) => r.id === e.id)!;
    await evaluateImage(dir, row, model, severity, async (id, img, pred, manual) => {
      const [a, b] = await Promise.all([renderOverlay(img, pred, { maxSide: 768 }), renderOverlay(img, manual, { maxSide: 768 })]);
      const meta = await sharp(a).metadata();
      const file = join(outDir, `${id}.png`);
      await sharp({ create: { width: meta.width! * 2 + 8, height: meta.height!, channels: 3, background: '#ffffff' } })
        .composite([{ input: a, left: 0, top: 0 }, { input: b, left: meta.width! + 8, top: 0 }])
        .png().toFile(file);
      written.push(file);
    });
  }
  return written;
}

export async function evaluateDataset(dir: string, model: SegmentationModel, opts: { limit?: number; ids?: Set<string> } = {}) {
  const manifest = parse(readFileSync(join(dir, 'manifest.csv')), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  const severity = loadSeverityConfig();
  let rows = manifest.filter((r) => existsSync(join(dir, 'images', `${r.id}.png`)) && (!opts.ids || opts.ids.has(r.id)));
  if (opts.limit) rows = rows.slice(0, opts.limit);
  const evals: ImageEval[] = [];
  for (const row of rows) evals.push(await evaluateImage(dir, row, model, severity));
  const summary = summarise(basename(resolve(dir)), `${model.manifest.name}@${model.manifest.version}`, evals);
  return { summary, images: evals };
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' }, model: { type: 'string' }, out: { type: 'string' }, limit: { type: 'string' }, split: { type: 'string' },
      pictures: { type: 'string' },
    },
  });
  if (!values.data) {
    console.error('usage: npm run eval -- --data <dir with manifest.csv, images/, masks/> [--model MANIFEST] [--out DIR] [--limit N] [--split val]\n' +
      '  --split NAME: only the images of that split in models/training/splits.json (e.g. the validation patients)\n' +
      '  --pictures DIR: write model | manual pictures of the worst opacity cases there (not for committing: they show the data)');
    return 2;
  }
  const model = await loadModel(values.model ?? DEFAULT_MODEL_MANIFEST);
  try {
    let ids: Set<string> | undefined;
    const source = basename(resolve(values.data));
    if (values.split) {
      const splits = JSON.parse(readFileSync(join(__dirname, '..', '..', 'models', 'training', 'splits.json'), 'utf8')) as Record<string, unknown>;
      const list = splits[values.split];
      if (!Array.isArray(list)) throw new Error(`models/training/splits.json has no split "${values.split}"`);
      ids = new Set(list.filter((k: string) => k.startsWith(`${source}/`)).map((k: string) => k.slice(source.length + 1)));
    }
    const { summary, images } = await evaluateDataset(values.data, model, { limit: values.limit ? Number(values.limit) : undefined, ids });
    const name = values.split ? `${summary.data}-${values.split}` : summary.data;
    const out = values.out ?? join('out', 'eval');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, `${name}.json`), JSON.stringify({ summary, images }, null, 2) + '\n');
    const md = toMarkdown(summary, images);
    writeFileSync(join(out, `${name}.md`), md);
    console.log(md.split('\n## Per image')[0]);
    console.log(`written: ${join(out, `${name}.json`)}, ${join(out, `${name}.md`)}`);
    if (values.pictures) {
      const files = await writeFailurePictures(values.data, model, images, values.pictures);
      console.log(`failure pictures (model | manual), lowest opacity Dice first: ${files.join(', ')}`);
    }
    return 0;
  } finally {
    await model.release();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e: Error) => { console.error(`eval: ${e.message}`); process.exitCode = 1; });
}
