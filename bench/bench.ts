/**
 * `npm run bench`: rerunnable performance measurements (not part of `npm test`).
 * Writes bench/results/latest.json and bench/results/latest.md. Everything compared is measured in the
 * same run on the same machine, and reported as ratios.
 *
 *   npm run bench -- [--reps N] [--quick]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSync } from 'esbuild';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { FP32_MODEL_MANIFEST, loadModel } from '../layers/onnx/session';
import { BufferPool, countMasks, decodeImage, loadSeverityConfig, opacityPctOf, renderOutputs, scoreCounts, type GrayImage, type SegmentationMasks } from '../src/core';
import { probabilitiesToMasks } from '../src/core/postprocess';
import { toModelInput } from '../src/core/preprocess';
import { S3Objects } from '../src/aws/s3-objects';
import { DEFAULT_MODEL_MANIFEST, startLocalPipeline } from '../src/local/pipeline';
import { LOCAL_NAMES, startLocalStack } from '../src/local/stack';
import { analyseImage } from '../src/pipeline/segment-stage';
import { makeDicom } from '../fixtures/files';
import { matmulModel } from '../fixtures/tiny-model';

const ROOT = resolve(__dirname, '..');
const DATA = resolve(ROOT, '..', 'shared', 'data');

interface Stat { median: number; p10: number; p90: number; n: number }
const stat = (xs: number[]): Stat => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: round(q(0.5)), p10: round(q(0.1)), p90: round(q(0.9)), n: s.length };
};
const round = (v: number) => Math.round(v * 100) / 100;
const now = () => Number(process.hrtime.bigint()) / 1e6;
async function time<T>(reps: number, fn: () => Promise<T>): Promise<Stat> {
  await fn(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = now();
    await fn();
    ts.push(now() - t);
  }
  return stat(ts);
}

/**
 * One cold run of the bundled CLI: the time from spawning it to its first result written (the CLI's progress line
 * on stderr, "[1/n] name: STATUS", comes right after it writes that image's outputs and result.json) and to its exit
 * (after the HTML report, which a deployed function does not write).
 */
function coldRun(cli: string, args: string[]): Promise<{ firstResultMs: number; exitMs: number }> {
  return new Promise((done, fail) => {
    const t = now();
    let firstResultMs: number | undefined;
    let stderr = '';
    const child = spawn(process.execPath, [cli, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      if (firstResultMs === undefined && /^\[1\/\d+\] /m.test(stderr)) firstResultMs = now() - t;
    });
    child.on('error', fail);
    child.on('close', (code) => {
      const exitMs = now() - t;
      if ((code !== 0 && code !== 1) || firstResultMs === undefined) fail(new Error(`cold start run failed (exit ${code}): ${stderr}`));
      else done({ firstResultMs, exitMs });
    });
  });
}

/**
 * The end-to-end time and, run by run in turn with it, the model's inference alone: their ratio then compares times
 * taken under the same load (this machine's speed drifts by up to half within a minute; timed in separate blocks, a
 * slow spell in one and not the other moved the ratio by 2x).
 */
async function endToEndWithInference(reps: number, e2e: () => Promise<unknown>, inference: () => Promise<unknown>): Promise<{ endToEnd: Stat; inferenceAlongside: Stat }> {
  await e2e();
  await inference();
  const a: number[] = [], b: number[] = [];
  for (let i = 0; i < reps; i++) {
    let t = now();
    await e2e();
    a.push(now() - t);
    t = now();
    await inference();
    b.push(now() - t);
  }
  return { endToEnd: stat(a), inferenceAlongside: stat(b) };
}

/** A realistic test image: a real CXR from the data folder when present (upscaled to 16 bit), else synthetic. */
async function sourceImage(width: number, height: number): Promise<{ pixels: Uint16Array; kind: string }> {
  const real = join(DATA, 'gb_covid_seg', 'images');
  if (existsSync(real)) {
    const file = join(real, execFileSync('ls', [real]).toString().split('\n')[0]);
    const { data } = await sharp(file).greyscale().resize(width, height, { fit: 'fill' }).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    return { pixels: Uint16Array.from(new Uint16Array(data.buffer, data.byteOffset, data.length / 2), (v) => v >> 4), kind: 'real CXR (gb_covid_seg), resized' };
  }
  const px = new Uint16Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const lung = Math.abs(x / width - 0.5) > 0.08 && Math.abs(x / width - 0.5) < 0.4 && y / height > 0.15 && y / height < 0.85;
    px[y * width + x] = lung ? 800 + ((x * 7 + y * 3) % 200) : 3000 + ((x + y) % 300);
  }
  return { pixels: px, kind: 'synthetic phantom (../shared/data absent)' };
}

/** The pictures the segment stage writes: four full-size mask PNGs and the overlay with its legend. */
const renderAll = (img: GrayImage, masks: SegmentationMasks, pool?: BufferPool) =>
  renderOutputs(img, masks, { legend: opacityPctOf(countMasks(masks, { width: img.width, height: img.height })), pool });

async function main() {
  const { values } = parseArgs({ options: { reps: { type: 'string', default: '15' }, quick: { type: 'boolean' } } });
  const reps = Number(values.reps);
  const manifestPath = DEFAULT_MODEL_MANIFEST;
  const threads = availableParallelism();
  const model = await loadModel(manifestPath, { threads });
  const S = model.manifest.input.size;
  const severity = loadSeverityConfig();
  const results: Record<string, unknown> = {
    date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    model: `${model.manifest.name}@${model.manifest.version}`, modelSize: S, threads,
  };

  // 1. Per stage, typical inputs.
  const { pixels, kind } = await sourceImage(2500, 3000);
  const dicom = makeDicom({ rows: 3000, cols: 2500, bitsStored: 12, pixels, windowCenter: 2048, windowWidth: 4096 });
  const jpeg = await sharp(Buffer.from(Uint8Array.from(pixels.subarray(0), (v) => v >> 4)), { raw: { width: 2500, height: 3000, channels: 1 } })
    .resize(1024, 1229).jpeg({ quality: 90 }).toBuffer();
  const stages: Record<string, Record<string, Stat>> = {};
  const dir = mkdtempSync(join(tmpdir(), 'cxr-bench-'));
  const outputs: Record<string, Buffer[]> = {};
  // The image-sized buffers come from a pool and go back after each run, as in the segment stage (core/pool.ts).
  const pool = new BufferPool();
  const pooled = <T extends { data: { buffer: ArrayBufferLike } }>(x: T): T => (pool.give(x.data.buffer), x);
  for (const [name, bytes] of [['DICOM 2500x3000 12-bit', dicom], ['JPEG 1024x1229', jpeg]] as const) {
    const img = await decodeImage(bytes);
    const input = await toModelInput(img, model.manifest);
    const probs = await model.run(input, 1);
    const masks = probabilitiesToMasks(probs, S, img.width, img.height, model.manifest.thresholds);
    const full = { width: img.width, height: img.height };
    const out = await renderAll(img, masks);
    outputs[name] = [out.lung, out.lungRight, out.lungLeft, out.opacity, out.overlay];
    stages[name] = {
      decode: await time(reps, async () => pooled(await decodeImage(bytes, { pool }))),
      preprocess: await time(reps, () => toModelInput(img, model.manifest)),
      guard: model.guard ? await time(reps, () => model.guard!.run(input, 1)) : stat([0]),
      inference: await time(reps, () => model.run(input, 1)),
      postprocess: await time(reps, async () => probabilitiesToMasks(probs, S, img.width, img.height, model.manifest.thresholds)),
      count: await time(reps, async () => countMasks(masks, full)),
      render: await time(reps, async () => pooled((await renderAll(img, masks, pool)).overlayRgb)),
      score: await time(reps, async () => scoreCounts(countMasks(masks, full), severity, img.meta.pixelSpacingMm)),
      // The segment stage's own analysis (src/pipeline/segment-stage.ts analyseImage), storage left out: all of
      // the above plus, for a DICOM, the SEG, SR and overlay Secondary Capture it writes by default.
      stage: await time(reps, () => analyseImage(bytes, { model, pseudonymKey: 'bench-pseudonym-key-0123456789', seed: 'bench', now: new Date(), dicomOutputs: { identity: 'off', severity }, pool })),
      // Everything the segment stage does except storage and the DICOM outputs, as it runs it (analyseImage: decode,
      // guard + model, masks, counts, the four mask PNGs and the overlay), then the score stage's score; below.
      ...(await endToEndWithInference(reps, async () => {
        const a = await analyseImage(bytes, { model, pseudonymKey: 'bench-pseudonym-key-0123456789', seed: 'bench', now: new Date(), pool });
        if (a.status !== 'SEGMENTED') throw new Error(`bench image not segmented: ${a.error.message}`);
        scoreCounts(a.counts, severity, a.meta.pixelSpacingMm);
      }, () => model.run(input, 1))),
    };
  }
  // Storage against the local S3 stand-in, started only now: s3rver and dynalite run inside this process (no deployed
  // function carries them, and their servers and heap slowed the stages above when they were up), so the per-stage
  // times above are the functions' own.
  const stack = await startLocalStack({ dataDir: dir });
  const s3 = new S3Objects(stack.s3);
  for (const [name, pngs] of Object.entries(outputs)) {
    stages[name].storage = await time(reps, () => Promise.all(pngs.map((b, i) => s3.put(LOCAL_NAMES.resultsBucket, `bench/${i}.png`, b, 'image/png'))));
  }
  await stack.stop();
  results.stages = stages;
  results.stageInput = kind;

  // 2. Inference cost by image (model input) size is fixed by the model; by input image size and by batch size.
  const bySize: Record<string, Stat> = {};
  for (const side of values.quick ? [512, 2048] : [512, 1024, 2048, 3000]) {
    const { pixels: p } = await sourceImage(side, side);
    const bytes = makeDicom({ rows: side, cols: side, bitsStored: 12, pixels: p, windowCenter: 2048, windowWidth: 4096 });
    bySize[`${side}x${side}`] = await time(Math.max(3, Math.floor(reps / 2)), async () => {
      const img = await decodeImage(bytes, { pool });
      const pr = await model.run(await toModelInput(img, model.manifest), 1);
      const m = probabilitiesToMasks(pr, S, img.width, img.height, model.manifest.thresholds);
      pooled((await renderAll(img, m, pool)).overlayRgb);
      pooled(img);
      scoreCounts(countMasks(m, { width: img.width, height: img.height }), severity);
    });
  }
  results.endToEndByInputSize = bySize;
  const byBatch: Record<string, { perImageMs: number; batchMs: Stat }> = {};
  for (const n of [1, 2, 4, 8]) {
    const x = new Float32Array(n * S * S).map(() => Math.random() * 2 - 1);
    const st = await time(Math.max(3, Math.floor(reps / n)), () => model.run(x, n));
    byBatch[`batch ${n}`] = { perImageMs: round(st.median / n), batchMs: st };
  }
  results.inferenceByBatch = byBatch;
  const onnxInference = stages['JPEG 1024x1229'].inference.median;

  // 2b. The default int8 model (models/quantize) against the fp32 one it was quantised from, on the same input, in
  // alternating blocks so both see the same load (not alternating single runs: onnxruntime's idle thread pool of
  // one session spins for a while after its run and would slow the other).
  const fp32Manifest = FP32_MODEL_MANIFEST;
  if (existsSync(fp32Manifest) && fp32Manifest !== manifestPath) {
    const fp32 = await loadModel(fp32Manifest, { threads });
    const int8 = model;
    const x = new Float32Array(S * S).map(() => Math.random() * 2 - 1);
    const a: number[] = [], b: number[] = [];
    for (let block = 0; block < 4; block++) {
      for (const [m, into] of [[fp32, a], [int8, b]] as const) {
        await m.run(x, 1);
        for (let i = 0; i < reps; i++) {
          const t = now();
          await m.run(x, 1);
          into.push(now() - t);
        }
      }
    }
    results.int8 = {
      model: `${int8.manifest.name}@${int8.manifest.version}`, fp32Model: `${fp32.manifest.name}@${fp32.manifest.version}`,
      fp32Ms: stat(a), int8Ms: stat(b), fp32OverInt8: round(stat(a).median / stat(b).median),
    };
    await fp32.release();
  }

  // 3. Cold start: a new process, model load, one image, exit. The CLI is bundled as the container images bundle
  // their handlers (functions/segment/Dockerfile: esbuild, one CJS file, natives external), so the time is the
  // deployed code's, not tsx's on-the-fly TypeScript compilation. The bundle sits two folders below the
  // repository, where the code finds models/ as it does from src/ and layers/.
  const coldDir = join(ROOT, '.bench-cache', 'cold');
  mkdirSync(coldDir, { recursive: true });
  const cli = join(coldDir, 'cli.js');
  const built = buildSync({
    entryPoints: [join(ROOT, 'src/cli/analyze.ts')], bundle: true, platform: 'node', target: 'node22', format: 'cjs',
    external: ['sharp', 'onnxruntime-node', 'dcmjs-codecs'], outfile: cli, logLevel: 'silent',
  });
  if (built.errors.length) throw new Error(`bundling the CLI failed: ${built.errors.map((e) => e.text).join('; ')}`);
  const jpgPath = join(dir, 'cold.jpg');
  writeFileSync(jpgPath, jpeg);
  const dcmPath = join(dir, 'cold.dcm');
  writeFileSync(dcmPath, dicom);
  const coldStart: Record<string, Stat> = {};
  const coldExit: Record<string, Stat> = {};
  const coldRuns: Array<[string, string, string[]]> = [['JPEG 1024x1229', jpgPath, []], ['DICOM 2500x3000 12-bit', dcmPath, []]];
  if (results.int8) coldRuns.push(['JPEG 1024x1229, fp32 model', jpgPath, ['--model', fp32Manifest]], ['DICOM 2500x3000 12-bit, fp32 model', dcmPath, ['--model', fp32Manifest]]);
  for (const [name, file, extra] of coldRuns) {
    const first: number[] = [];
    const exit: number[] = [];
    for (let i = 0; i < (values.quick ? 1 : 3); i++) {
      const r = await coldRun(cli, [file, '--out', join(dir, `cold-${i}`), '--format', 'table', ...extra]);
      first.push(r.firstResultMs);
      exit.push(r.exitMs);
    }
    coldStart[name] = stat(first);
    coldExit[name] = stat(exit);
  }
  results.coldStartMs = coldStart;
  results.coldExitMs = coldExit;

  // 4. Throughput of the local pipeline (s3rver + dynalite + handlers) at concurrency 1, 2, 4.
  const throughput: Record<string, { imagesPerSecond: number; seconds: number; images: number }> = {};
  const nImages = values.quick ? 6 : 16;
  for (const c of [1, 2, 4]) {
    const p = await startLocalPipeline({ model, dataDir: mkdtempSync(join(tmpdir(), 'cxr-bench-p-')), concurrency: c, logLevel: 'SILENT' });
    const t = now();
    await Promise.all(Array.from({ length: nImages }, (_, i) => p.upload(`uploads/bench/${i}.jpg`, jpeg)));
    await p.drain();
    const s = (now() - t) / 1000;
    throughput[`concurrency ${c}`] = { imagesPerSecond: round(nImages / s), seconds: round(s), images: nImages };
    await p.stop();
  }
  results.localPipelineThroughput = throughput;
  results.peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);

  // 5. The machine's attainable fp32 matrix-multiply rate, through onnxruntime's own GEMM (MLAS): 2n^3 FLOP.
  const n = 2048; // large enough that the copy of the result into JS is a small part of the time
  const mm = await ort.InferenceSession.create(matmulModel(n), { intraOpNumThreads: threads, graphOptimizationLevel: 'all' });
  const A = new ort.Tensor('float32', new Float32Array(n * n).map(() => Math.random()), [n, n]);
  const mmStat = await time(reps, () => mm.run({ A, B: A }));
  const ortGflops = (2 * n ** 3) / (mmStat.p10 / 1000) / 1e9;
  results.matmul = { n, ms: mmStat, gflopsOnnxruntime: round(ortGflops) };
  await mm.release();

  // 5b. The machine's cost of new memory: writing 40 MB of floats into a new array against rewriting the same array.
  // 40 MB is above glibc's largest mmap threshold (32 MB), so every new array is new pages that the kernel maps and
  // zeroes on first touch (smaller ones are sometimes recycled by malloc, sometimes not). Where the first is many
  // times the second, every stage that allocates an image-sized buffer pays it now and then, and the medians of
  // those stages spread.
  {
    const n = 10_000_000;
    const src = new Uint16Array(n).map((_, i) => i & 4095);
    const lut = new Float32Array(4096).map((_, i) => i / 4095);
    const fill = (out: Float32Array) => { for (let i = 0; i < n; i++) out[i] = lut[src[i]]; };
    const reused = new Float32Array(n);
    const fresh: number[] = [], again: number[] = [];
    for (let i = 0; i < reps; i++) {
      let t = now();
      fill(new Float32Array(n));
      fresh.push(now() - t);
      t = now();
      fill(reused);
      again.push(now() - t);
    }
    results.memory = { megabytes: (n * 4) / 1e6, newMs: stat(fresh), reusedMs: stat(again) };
  }

  // 6. The same model in PyTorch on CPU, and the floor (FLOPs / the best measured matmul rate).
  const py = '/usr/bin/python3';
  const tcmalloc = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
  if (existsSync(py)) {
    // PyTorch runs the fp32 weights (torch_bench.py rebuilds the network from the fp32 ONNX file).
    const fp32File = (JSON.parse(readFileSync(fp32Manifest, 'utf8')) as { file: string }).file;
    const r = spawnSync(py, [join(ROOT, 'bench/torch_bench.py'), '--onnx', join(ROOT, 'models', fp32File), '--threads', String(threads), '--reps', String(reps)], {
      encoding: 'utf8', env: { ...process.env, ...(existsSync(tcmalloc) ? { LD_PRELOAD: tcmalloc } : {}) },
    });
    if (r.status === 0) {
      const t = JSON.parse(r.stdout.trim().split('\n').pop()!);
      const torchBest = Math.min(...Object.entries(t.batches as Record<string, { per_image_ms: number }>).filter(([k]) => k.endsWith('_b1')).map(([, v]) => v.per_image_ms));
      // The floor uses the faster of the two measured GEMM rates (PyTorch's BLAS, onnxruntime's MLAS).
      const peak = Math.max(t.matmul_gflops, ortGflops);
      t.floor_ms_per_image = (t.flops_per_image / (peak * 1e9)) * 1000;
      t.floor_gemm = peak === ortGflops ? 'onnxruntime MLAS' : 'PyTorch BLAS';
      results.pytorch = t;
      // Both onnxruntime times from the alternating blocks (2b), so the two ratios share their conditions; without
      // the fp32 model, the default model's stage time.
      const q = results.int8 as { fp32Ms: Stat; int8Ms: Stat } | undefined;
      const fp32Ms = q ? q.fp32Ms.median : onnxInference;
      results.ratios = {
        pytorchOverOnnxruntime: round(torchBest / fp32Ms),
        ...(q ? { pytorchOverOnnxruntimeInt8: round(torchBest / q.int8Ms.median) } : {}),
        onnxruntimeOverFloor: round(fp32Ms / t.floor_ms_per_image),
      };
    } else {
      results.pytorch = { skipped: `python/torch run failed: ${r.stderr.slice(-400)}` };
    }
  } else {
    results.pytorch = { skipped: '/usr/bin/python3 with torch not installed (models/training/setup.sh installs it)' };
  }
  await model.release();

  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), JSON.stringify(results, null, 2));
  const md = toMarkdown(results);
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.md'), md);
  console.log(md);
}

/* eslint-disable @typescript-eslint/no-explicit-any -- renders the results JSON it has just written */
function toMarkdown(r: Record<string, any>): string {
  const L: string[] = [`# Benchmark (${r.date})`, '', `Machine: ${r.machine.cpus} x ${r.machine.cpu}, Node ${r.machine.node}. Model ${r.model} at ${r.modelSize}x${r.modelSize}, onnxruntime-node with ${r.threads} threads. Stage inputs: ${r.stageInput}. Times in ms, median [p10-p90].`, ''];
  L.push('## Per stage', '', '| stage | ' + Object.keys(r.stages).join(' | ') + ' |', '|---|' + Object.keys(r.stages).map(() => '---').join('|') + '|');
  // score (count + scoreCounts) runs in the score stage; count in the segment stage: both shown, summed once.
  const names = Object.keys(Object.values(r.stages)[0] as object).filter((s) => s !== 'endToEnd' && s !== 'stage' && s !== 'inferenceAlongside');
  const summed = names.filter((s) => s !== 'score');
  for (const s of names) L.push(`| ${s} | ` + Object.values(r.stages).map((v: any) => `${v[s].median} [${v[s].p10}-${v[s].p90}]`).join(' | ') + ' |');
  const total = (v: any) => round(summed.reduce((a, s) => a + v[s].median, 0));
  L.push(`| **sum of medians** (${summed.join(', ')}) | ` + Object.values(r.stages).map((v: any) => `**${total(v)}**`).join(' | ') + ' |');
  L.push('| **end to end, measured** (decode → guard + model → masks → counts → 4 mask PNGs + overlay → score; no storage) | ' + Object.values(r.stages).map((v: any) => `**${v.endToEnd.median}** [${v.endToEnd.p10}-${v.endToEnd.p90}]`).join(' | ') + ' |');
  L.push('| model inference, run by run in turn with the end-to-end runs above | ' + Object.values(r.stages).map((v: any) => `${v.inferenceAlongside.median} [${v.inferenceAlongside.p10}-${v.inferenceAlongside.p90}]`).join(' | ') + ' |');
  L.push('| **end to end / model inference** (the two rows above: times taken under the same load) | ' + Object.values(r.stages).map((v: any) => `**${round(v.endToEnd.median / v.inferenceAlongside.median)}x**`).join(' | ') + ' |');
  if (Object.values(r.stages).every((v: any) => v.stage)) {
    L.push('| **the segment stage\'s analysis** (the above + for a DICOM its SEG, SR and overlay Secondary Capture; no storage) | ' + Object.values(r.stages).map((v: any) => `**${v.stage.median}** [${v.stage.p10}-${v.stage.p90}]`).join(' | ') + ' |');
  }
  L.push('');
  L.push('## End to end by input size (decode → overlay, one image)', '', '| input | median ms | p10-p90 |', '|---|---|---|');
  for (const [k, v] of Object.entries(r.endToEndByInputSize) as [string, Stat][]) L.push(`| ${k} | ${v.median} | ${v.p10}-${v.p90} |`);
  L.push('', '## Inference by batch size', '', '| batch | per image ms | batch median ms |', '|---|---|---|');
  for (const [k, v] of Object.entries(r.inferenceByBatch) as [string, any][]) L.push(`| ${k} | ${v.perImageMs} | ${v.batchMs.median} |`);
  L.push('', '## Cold start (new process of the bundled CLI → its first result written, model load included)', '',
    'The first result is the image\'s outputs and result.json on disk (the CLI says so on stderr); the process then writes its HTML report and exits.', '',
    '| input | to first result, median ms | p10-p90 | to exit, median ms | runs |', '|---|---|---|---|---|');
  for (const [k, v] of Object.entries(r.coldStartMs) as [string, Stat][]) L.push(`| ${k} | ${v.median} | ${v.p10}-${v.p90} | ${r.coldExitMs?.[k]?.median ?? '-'} | ${v.n} |`);
  L.push('');
  if (r.int8) {
    L.push('## The default int8 model (models/quantize) against fp32, alternating blocks', '', '| model | inference ms, batch 1 | p10-p90 |', '|---|---|---|',
      `| fp32 ${r.int8.fp32Model} | ${r.int8.fp32Ms.median} | ${r.int8.fp32Ms.p10}-${r.int8.fp32Ms.p90} |`,
      `| int8 ${r.int8.model} (default) | ${r.int8.int8Ms.median} | ${r.int8.int8Ms.p10}-${r.int8.int8Ms.p90} |`, '',
      `fp32 / int8: ${r.int8.fp32OverInt8}x. Accuracy of the int8 model: models/MODEL_CARD.md (every external22 metric inside the fp32 model's 95% CI).`, '');
  }
  L.push('## Local pipeline throughput (s3rver + dynalite + handlers)', '', '| concurrency | images/s | seconds | images |', '|---|---|---|---|');
  for (const [k, v] of Object.entries(r.localPipelineThroughput) as [string, any][]) L.push(`| ${k} | ${v.imagesPerSecond} | ${v.seconds} | ${v.images} |`);
  L.push('', `Peak RSS of the benchmark process: ${r.peakRssMb} MB.`, '');
  if (r.memory) {
    L.push('## New memory', '', `Writing ${r.memory.megabytes} MB of floats into a new array: ${r.memory.newMs.median} ms [${r.memory.newMs.p10}-${r.memory.newMs.p90}]; into the same array again: ${r.memory.reusedMs.median} ms [${r.memory.reusedMs.p10}-${r.memory.reusedMs.p90}]. ` +
      'The difference is the kernel mapping and zeroing new pages on first touch; stages that allocate image-sized buffers (decode, the DICOM outputs, a cold start) pay it whenever malloc hands them new pages, which is why their medians spread.', '');
  }
  if (r.ratios) {
    L.push('## Against PyTorch and the floor', '', `PyTorch ${r.pytorch.torch} CPU (${r.pytorch.threads} threads, best of contiguous/channels_last, batch 1): ${round(Math.min(r.pytorch.batches.contiguous_b1.per_image_ms, r.pytorch.batches.channels_last_b1.per_image_ms))} ms per image.`,
      `Model: ${(r.pytorch.flops_per_image / 1e9).toFixed(2)} GFLOP per image. Measured fp32 matmul (${r.matmul.n}x${r.matmul.n}) rate: ${r.pytorch.matmul_gflops.toFixed(1)} GFLOP/s in PyTorch, ${r.matmul.gflopsOnnxruntime} GFLOP/s in onnxruntime; floor at the faster (${r.pytorch.floor_gemm}): ${r.pytorch.floor_ms_per_image.toFixed(1)} ms per image.`, '',
      `| ratio | value |`, `|---|---|`, `| PyTorch fp32 time / onnxruntime-node fp32 time | ${r.ratios.pytorchOverOnnxruntime} |`, `| onnxruntime-node fp32 time / floor | ${r.ratios.onnxruntimeOverFloor} |`,
      ...(r.ratios.pytorchOverOnnxruntimeInt8 ? [`| PyTorch fp32 time / onnxruntime-node int8 time (the default model) | ${r.ratios.pytorchOverOnnxruntimeInt8} |`] : []), '',
      'A ratio to the floor near or below 1 means inference already runs at the rate of the best GEMM we could measure on this machine: onnxruntime\'s blocked convolution kernels can beat a plain MatMul call, so the floor is a practical reference, not a hard bound. Remaining speed-ups must come from doing less work (int8 quantisation, a smaller decoder or input), not from the runtime.', '');
  } else L.push(`PyTorch comparison skipped: ${r.pytorch?.skipped}`, '');
  return L.join('\n');
}
/* eslint-enable @typescript-eslint/no-explicit-any */

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
