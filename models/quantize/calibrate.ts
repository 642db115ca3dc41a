/**
 * Steps 2-3 of `npm run quantize` (see models/quantize/README.md).
 *
 *   npx tsx models/quantize/calibrate.ts inputs [--calib 160] [--select 40] [--work out/quantize]
 *     Picks training images (models/training/splits.json "train", never an external22 patient: checked again here
 *     against external22/manifest.csv) and preprocesses them exactly as production does (decodeImage ->
 *     toModelInput with the fp32 model's manifest). Writes <work>/calib.f32 (the calibration set),
 *     <work>/select.f32 (other training images, for choosing the calibration method), <work>/val.f32 (the
 *     gb_covid_seg and mcsz validation images, for reporting only) and <work>/inputs.json (their ids).
 *   npx tsx models/quantize/calibrate.ts stats [--graph <work>/calib.onnx] [--work out/quantize] [--bins 2048]
 *     Runs the graph with every activation as an output (qdq.py calib-graph) on calib.f32: pass 1 min/max per
 *     tensor, pass 2 a histogram per tensor over [min, max]. Writes <work>/stats.json for qdq.py quantize.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'csv-parse/sync';
import * as ort from 'onnxruntime-node';
import { decodeImage } from '../../src/core/decode';
import { toModelInput } from '../../src/core/preprocess';
import type { ModelManifest } from '../../src/core/types';

const ROOT = resolve(__dirname, '..', '..');
const DATA = resolve(ROOT, '..', 'shared', 'data');
const S = 256;

/** Deterministic shuffle (mulberry32), so the calibration set is the same on every run. */
function shuffle<T>(xs: T[], seed: number): T[] {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const manifestRows = (src: string) =>
  parse(readFileSync(join(DATA, src, 'manifest.csv')), { columns: true, skip_empty_lines: true }) as Record<string, string>[];

async function preprocess(keys: string[], manifest: ModelManifest): Promise<Float32Array> {
  const out = new Float32Array(keys.length * S * S);
  for (const [i, key] of keys.entries()) {
    const [src, id] = key.split('/');
    const img = await decodeImage(readFileSync(join(DATA, src, 'images', `${id}.png`)));
    out.set(await toModelInput(img, manifest), i * S * S);
  }
  return out;
}

async function inputs(work: string, nCalib: number, nSelect: number): Promise<void> {
  const splits = JSON.parse(readFileSync(join(ROOT, 'models', 'training', 'splits.json'), 'utf8')) as { train: string[]; val: string[] };
  const manifest = JSON.parse(readFileSync(join(ROOT, 'models', 'cxr-unet-r18.json'), 'utf8')) as ModelManifest;
  // The test set's patients: none of their images may calibrate or tune anything.
  const extPatients = new Set(manifestRows('external22').map((r) => r.patient_id));
  const extIds = new Set(manifestRows('external22').map((r) => r.id));
  const gb = new Map(manifestRows('gb_covid_seg').map((r) => [r.id, r]));
  const qu = new Map(manifestRows('covidqu_infection').map((r) => [r.id, r]));
  const allowed = (key: string) => {
    const [src, id] = key.split('/');
    if (extIds.has(id)) return false;
    if (src === 'gb_covid_seg') { const r = gb.get(id); return !!r && !extPatients.has(r.patient_id); }
    return existsSync(join(DATA, src, 'images', `${id}.png`));
  };
  const train = splits.train.filter(allowed);
  const dropped = splits.train.length - train.length;
  if (dropped) console.warn(`dropped ${dropped} training keys (external22 patient or missing image)`);
  // Stratified: every gb_covid_seg and mcsz training image has few peers, so a fixed share of each source and,
  // within covidqu, of each class (COVID-19, Non-COVID, Normal).
  const group = (k: string) => {
    const [src, id] = k.split('/');
    return src === 'covidqu_infection' ? `${src}:${qu.get(id)?.covidqu_class ?? '?'}` : src;
  };
  const groups = new Map<string, string[]>();
  for (const k of shuffle(train, 20260601)) groups.set(group(k), [...(groups.get(group(k)) ?? []), k]);
  const take = (n: number, exclude: Set<string>) => {
    const picked: string[] = [];
    const want: Record<string, number> = { gb_covid_seg: 0.25, mcsz: 0.05 };
    const quGroups = [...groups.keys()].filter((g) => g.startsWith('covidqu_infection'));
    for (const g of quGroups) want[g] = 0.7 / quGroups.length;
    for (const [g, share] of Object.entries(want)) {
      const pool = (groups.get(g) ?? []).filter((k) => !exclude.has(k));
      picked.push(...pool.slice(0, Math.round(n * share)));
    }
    return picked.sort();
  };
  const calib = take(nCalib, new Set());
  const select = take(nSelect, new Set(calib));
  const val = splits.val.filter((k) => k.startsWith('gb_covid_seg/') || k.startsWith('mcsz/')).filter(allowed).sort();
  mkdirSync(work, { recursive: true });
  for (const [name, keys] of [['calib', calib], ['select', select], ['val', val]] as const) {
    const t0 = Date.now();
    const x = await preprocess(keys, manifest);
    writeFileSync(join(work, `${name}.f32`), x);
    console.log(`${name}: ${keys.length} images (${[...new Set(keys.map(group))].map((g) => `${g} ${keys.filter((k) => group(k) === g).length}`).join(', ')}) in ${Date.now() - t0} ms`);
  }
  writeFileSync(join(work, 'inputs.json'), JSON.stringify({ size: S, calib, select, val }, null, 1) + '\n');
}

export function readInputs(work: string, name: string): Float32Array[] {
  const b = readFileSync(join(work, `${name}.f32`));
  const all = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  const n = all.length / (S * S);
  return Array.from({ length: n }, (_, i) => all.slice(i * S * S, (i + 1) * S * S));
}

async function stats(work: string, graph: string, bins: number): Promise<void> {
  const session = await ort.InferenceSession.create(graph, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  const names = session.outputNames.filter((n) => n !== 'probabilities');
  const xs = readInputs(work, 'calib');
  const min = new Map(names.map((n) => [n, Infinity]));
  const max = new Map(names.map((n) => [n, -Infinity]));
  const hist = new Map<string, Float64Array>();
  const feed = (x: Float32Array) => ({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, 1, S, S]) });
  const t0 = Date.now();
  for (const x of xs) {
    const out = await session.run(feed(x));
    for (const n of names) {
      const d = out[n].data as Float32Array;
      let lo = min.get(n)!, hi = max.get(n)!;
      for (let i = 0; i < d.length; i++) { const v = d[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
      min.set(n, lo); max.set(n, hi);
    }
  }
  console.log(`pass 1 (min/max): ${xs.length} images, ${names.length} tensors, ${Date.now() - t0} ms`);
  for (const n of names) hist.set(n, new Float64Array(bins));
  for (const x of xs) {
    const out = await session.run(feed(x));
    for (const n of names) {
      const d = out[n].data as Float32Array;
      const lo = min.get(n)!, w = (max.get(n)! - lo) / bins || 1;
      const h = hist.get(n)!;
      for (let i = 0; i < d.length; i++) h[Math.min(bins - 1, Math.floor((d[i] - lo) / w))]++;
    }
  }
  console.log(`pass 2 (histograms): ${Date.now() - t0} ms`);
  const res: Record<string, { min: number; max: number; hist: number[] }> = {};
  for (const n of names) res[n] = { min: min.get(n)!, max: max.get(n)!, hist: Array.from(hist.get(n)!) };
  writeFileSync(join(work, 'stats.json'), JSON.stringify({ images: xs.length, bins, tensors: res }) + '\n');
  await session.release();
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { work: { type: 'string' }, calib: { type: 'string' }, select: { type: 'string' }, graph: { type: 'string' }, bins: { type: 'string' } },
  });
  const work = resolve(values.work ?? join(ROOT, 'out', 'quantize'));
  if (positionals[0] === 'inputs') await inputs(work, Number(values.calib ?? 160), Number(values.select ?? 40));
  else if (positionals[0] === 'stats') await stats(work, values.graph ?? join(work, 'calib.onnx'), Number(values.bins ?? 2048));
  else throw new Error('usage: calibrate.ts inputs|stats [options]');
}

if (require.main === module) main().catch((e: Error) => { console.error(e); process.exitCode = 1; });
