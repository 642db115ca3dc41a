/**
 * Fidelity and speed of candidate models against the fp32 reference, on the preprocessed inputs of calibrate.ts.
 *   npx tsx models/quantize/compare.ts fidelity --set select models/cxr-unet-r18.onnx out/quantize/q-*.onnx
 *     Per model, against the first: mean and max |p - p_ref| per channel, and the Dice of the thresholded (0.5)
 *     masks with the reference's, pooled over the set; plus the largest per-image change of the raw opacity
 *     share of the lungs at 256x256 (points).
 *   npx tsx models/quantize/compare.ts speed [--reps 200] [--threads 2] [--cold 5] a.onnx b.onnx ...
 *     Session creation (ms, as production creates it: graphOptimizationLevel 'all', from the file's bytes) and
 *     inference ms per image (batch 1), the models interleaved run by run so that other load on the machine falls
 *     on all of them alike; medians and quartiles. --optimized DIR also writes each model's optimised graph
 *     there and counts its op types (shows the QLinearConv fusion).
 *   npx tsx models/quantize/compare.ts gate models/eval/external22.json models/eval/external22-int8.json [fp32-rerun.json]
 *     Every external22 metric of the second eval report inside the first's 95% CI (exit 1 otherwise), and the
 *     per-image opacity % differences (against the rerun of fp32, if given, else the first report).
 *   npx tsx models/quantize/compare.ts cold [--reps 7] models/cxr-unet-r18.json models/cxr-unet-r18-int8.json
 *     Cold start: fresh processes (cold.ts) load each manifest with the production loader and run one image.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { EvalSummary, ImageEval } from '../../src/eval/evaluate';
import { readInputs } from './calibrate';

const S = 256;
const opts = (threads: number, extra: ort.InferenceSession.SessionOptions = {}): ort.InferenceSession.SessionOptions => ({
  intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', executionProviders: ['cpu'], ...extra,
});
const feed = (s: ort.InferenceSession, x: Float32Array) => ({ [s.inputNames[0]]: new ort.Tensor('float32', x, [1, 1, S, S]) });
const quantile = (xs: number[], q: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const r = (v: number, d = 2) => Math.round(v * 10 ** d) / 10 ** d;

async function fidelity(models: string[], set: string, work: string, threads: number): Promise<void> {
  const xs = readInputs(work, set);
  const sessions = await Promise.all(models.map((m) => ort.InferenceSession.create(readFileSync(m), opts(threads))));
  const ref: Float32Array[] = [];
  for (const x of xs) ref.push((await sessions[0].run(feed(sessions[0], x)))[sessions[0].outputNames[0]].data as Float32Array);
  const P = S * S;
  const share = (p: Float32Array) => {
    let lung = 0, op = 0;
    for (let i = 0; i < P; i++) if (p[i] >= 0.5 || p[P + i] >= 0.5) { lung++; if (p[2 * P + i] >= 0.5) op++; }
    return lung ? (100 * op) / lung : 0;
  };
  console.log(`| model | ${['right', 'left', 'opacity'].map((c) => `${c}: mean / max abs diff, mask Dice`).join(' | ')} | opacity share: max / mean abs diff (points) |`);
  console.log('|---|---|---|---|---|');
  for (const [k, s] of sessions.entries()) {
    if (k === 0) continue;
    const sum = [0, 0, 0], mx = [0, 0, 0], inter = [0, 0, 0], a = [0, 0, 0], b = [0, 0, 0];
    const dShare: number[] = [];
    for (const [j, x] of xs.entries()) {
      const p = (await s.run(feed(s, x)))[s.outputNames[0]].data as Float32Array;
      const q = ref[j];
      for (let c = 0; c < 3; c++) {
        for (let i = c * P; i < (c + 1) * P; i++) {
          const d = Math.abs(p[i] - q[i]);
          sum[c] += d; if (d > mx[c]) mx[c] = d;
          const pa = p[i] >= 0.5, pb = q[i] >= 0.5;
          if (pa) a[c]++; if (pb) b[c]++; if (pa && pb) inter[c]++;
        }
      }
      dShare.push(Math.abs(share(p) - share(q)));
    }
    const cells = [0, 1, 2].map((c) => `${(sum[c] / (xs.length * P)).toExponential(1)} / ${r(mx[c], 3)}, ${r((2 * inter[c]) / (a[c] + b[c] || 1), 4)}`);
    console.log(`| ${basename(models[k])} | ${cells.join(' | ')} | ${r(Math.max(...dShare))} / ${r(dShare.reduce((u, v) => u + v, 0) / dShare.length)} |`);
  }
  await Promise.all(sessions.map((s) => s.release()));
}

async function speed(models: string[], reps: number, threads: number, cold: number, work: string, optimized?: string): Promise<void> {
  const x = readInputs(work, 'select')[0];
  const create: number[][] = models.map(() => []);
  for (let c = 0; c < cold; c++) {
    for (const [k, m] of models.entries()) {
      const t0 = process.hrtime.bigint();
      const s = await ort.InferenceSession.create(readFileSync(m), opts(threads));
      await s.run(feed(s, x));
      create[k].push(Number(process.hrtime.bigint() - t0) / 1e6);
      await s.release();
    }
  }
  const sessions = await Promise.all(models.map((m) => ort.InferenceSession.create(readFileSync(m), opts(threads))));
  for (const s of sessions) for (let i = 0; i < 5; i++) await s.run(feed(s, x));
  const times: number[][] = models.map(() => []);
  for (let i = 0; i < reps; i++) {
    for (const [k, s] of sessions.entries()) {
      const t0 = process.hrtime.bigint();
      await s.run(feed(s, x));
      times[k].push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  const base = quantile(times[0], 0.5);
  console.log(`${reps} interleaved runs, batch 1, ${threads} intra-op threads; session creation + first run: ${cold} times each`);
  console.log('| model | file MB | session creation + first run ms (median) | inference ms median [p25-p75] | speed-up vs first |');
  console.log('|---|---|---|---|---|');
  for (const [k, m] of models.entries()) {
    const med = quantile(times[k], 0.5);
    console.log(`| ${basename(m)} | ${r(statSync(m).size / 2 ** 20, 1)} | ${r(quantile(create[k], 0.5), 0)} | ${r(med, 1)} [${r(quantile(times[k], 0.25), 1)}-${r(quantile(times[k], 0.75), 1)}] | ${r(base / med)}x |`);
  }
  await Promise.all(sessions.map((s) => s.release()));
  if (optimized) {
    const { execFileSync } = await import('node:child_process');
    for (const m of models) {
      const out = join(optimized, `${basename(m, '.onnx')}.opt.onnx`);
      const s = await ort.InferenceSession.create(m, opts(1, { graphOptimizationLevel: 'extended', optimizedModelFilePath: out }));
      await s.release();
      const ops = execFileSync('/usr/bin/python3', ['-c',
        'import onnx,sys,collections;m=onnx.load(sys.argv[1]);print(dict(collections.Counter(n.op_type for n in m.graph.node)))', out]).toString().trim();
      console.log(`${basename(m)} after 'extended' optimisation: ${ops}`);
    }
  }
}

/** Fresh processes (cold.ts), the manifests alternating: process start to the first result, and its parts. */
async function cold(manifests: string[], runs: number): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  type Cold = { loadMs: number; firstRunMs: number; totalMs: number; startMs: number };
  const res: Cold[][] = manifests.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [k, m] of manifests.entries()) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', join(__dirname, 'cold.ts'), m], { encoding: 'utf8' });
      res[k].push(JSON.parse(out.trim().split('\n').at(-1)!) as Cold);
    }
  }
  console.log(`${runs} fresh processes each, alternating; medians (ms)`);
  console.log('| manifest | process start to loader | loadModel (sha256, sessions, guard) | first run (guard + model) | process start to first result |');
  console.log('|---|---|---|---|---|');
  for (const [k, m] of manifests.entries()) {
    const q = (f: (x: Cold) => number) => r(quantile(res[k].map(f), 0.5), 0);
    console.log(`| ${basename(m)} | ${q((x) => x.startMs)} | ${q((x) => x.loadMs)} | ${q((x) => x.firstRunMs)} | ${q((x) => x.totalMs)} |`);
  }
}

/** The metrics issue 12 holds the int8 model to: each must lie inside the fp32 model's 95% CI. */
export const GATED_METRICS: [string, (s: EvalSummary) => { v: number; ci: [number, number] }][] = [
  ['lung Dice', (s) => ({ v: s.lungDice.mean, ci: s.lungDice.ci95 })],
  ["lung Dice, patient's right", (s) => ({ v: s.lungRightDice.mean, ci: s.lungRightDice.ci95 })],
  ["lung Dice, patient's left", (s) => ({ v: s.lungLeftDice.mean, ci: s.lungLeftDice.ci95 })],
  ['opacity Dice, pooled', (s) => ({ v: s.opacityDicePooled.value, ci: s.opacityDicePooled.ci95 })],
  ['opacity IoU, pooled', (s) => ({ v: s.opacityIouPooled.value, ci: s.opacityIouPooled.ci95 })],
  ['opacity Dice, per-image mean', (s) => ({ v: s.opacityDiceMean.value, ci: s.opacityDiceMean.ci95 })],
  ['opacity Dice, mean with opacity', (s) => ({ v: s.opacityDiceMeanWithOpacity.value, ci: s.opacityDiceMeanWithOpacity.ci95 })],
  ['MAE opacity % (points)', (s) => ({ v: s.opacityPctMae.value, ci: s.opacityPctMae.ci95 })],
  ['MAE extent vs manual masks', (s) => ({ v: s.extentMaeVsManualMasks.value, ci: s.extentMaeVsManualMasks.ci95 })],
  ['MAE extent vs radiologists', (s) => ({ v: s.radiologists.predExtentMae.value, ci: s.radiologists.predExtentMae.ci95 })],
];

/** Every gated metric of `cand` inside the CI of `ref`; returns the table and whether all passed. */
export function gate(ref: EvalSummary, cand: EvalSummary): { ok: boolean; table: string } {
  const rows = GATED_METRICS.map(([name, f]) => {
    const a = f(ref), b = f(cand);
    const inside = b.v >= a.ci[0] && b.v <= a.ci[1];
    return { inside, line: `| ${name} | ${a.v} [${a.ci.join('-')}] | ${b.v} [${b.ci.join('-')}] | ${inside ? 'yes' : 'NO'} |` };
  });
  const head = [`| metric (${ref.data}) | ${ref.model} [95% CI] | ${cand.model} [95% CI] | inside the first's CI |`, '|---|---|---|---|'];
  return { ok: rows.every((r) => r.inside), table: [...head, ...rows.map((r) => r.line)].join('\n') };
}

/** Per-image opacity % and extent of two eval reports of the same data. */
function perImage(a: { images: ImageEval[] }, b: { images: ImageEval[] }): string {
  const byId = new Map(a.images.map((x) => [x.id, x]));
  const d = b.images.map((x) => ({ id: x.id, diff: Math.abs(x.predOpacityPct - byId.get(x.id)!.predOpacityPct), same: x.predExtent === byId.get(x.id)!.predExtent }));
  const max = d.reduce((m, x) => (x.diff > m.diff ? x : m), d[0]);
  return `per-image opacity %: max abs difference ${r(max.diff)} points (${max.id}), mean ${r(d.reduce((u, x) => u + x.diff, 0) / d.length)}; ` +
    `extent equal on ${d.filter((x) => x.same).length}/${d.length}`;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      set: { type: 'string' }, reps: { type: 'string' }, threads: { type: 'string' }, cold: { type: 'string' },
      work: { type: 'string' }, optimized: { type: 'string' },
    },
  });
  const work = resolve(values.work ?? join(__dirname, '..', '..', 'out', 'quantize'));
  const [cmd, ...models] = positionals;
  const threads = Number(values.threads ?? 2);
  if (cmd === 'fidelity') await fidelity(models, values.set ?? 'select', work, threads);
  else if (cmd === 'gate') {
    // compare.ts gate fp32-eval.json int8-eval.json [fp32-rerun.json]: exit 1 when a metric leaves the CI.
    const [refFile, candFile, rerun] = models;
    const ref = JSON.parse(readFileSync(refFile, 'utf8')) as { summary: EvalSummary; images: ImageEval[] };
    const cand = JSON.parse(readFileSync(candFile, 'utf8')) as { summary: EvalSummary; images: ImageEval[] };
    const g = gate(ref.summary, cand.summary);
    console.log(g.table);
    console.log(perImage(rerun ? JSON.parse(readFileSync(rerun, 'utf8')) as { images: ImageEval[] } : ref, cand));
    console.log(g.ok ? 'every metric inside the reference CI' : 'NOT every metric inside the reference CI');
    if (!g.ok) process.exitCode = 1;
  } else if (cmd === 'cold') await cold(models, Number(values.reps ?? 7));
  else if (cmd === 'speed') await speed(models, Number(values.reps ?? 200), threads, Number(values.cold ?? 5), work, values.optimized);
  else throw new Error('usage: compare.ts fidelity|speed|cold [options] reference.onnx|.json candidate.onnx|.json ...');
}

if (require.main === module) main().catch((e: Error) => { console.error(e); process.exitCode = 1; });
