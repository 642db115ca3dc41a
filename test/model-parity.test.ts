// Parity of the committed ONNX model between PyTorch (the training framework) and onnxruntime-node (production).
// models/training/torch_reference.py rebuilds the PyTorch model from the .onnx initializers, runs it on a few real
// validation images of ../shared/data/gb_covid_seg (never external22) and writes input/output tensors; this test runs
// the same inputs through onnxruntime-node and requires max |torch - ort| < 1e-4 on the probabilities.
import { test } from '@jest/globals';
import { testContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

const ROOT = path.resolve(__dirname, '..');
const MODEL = process.env.CXR_PARITY_MODEL ?? path.join(ROOT, 'models', 'cxr-unet-r18.onnx');
const DATA = path.resolve(ROOT, '..', 'shared', 'data');
const PYTHON = '/usr/bin/python3';
const TOLERANCE = 1e-4;

function skipReason(): string | undefined {
  if (!existsSync(MODEL)) return `model file ${MODEL} is missing`;
  if (!existsSync(path.join(DATA, 'gb_covid_seg', 'manifest.csv'))) return `data folder ${DATA} is missing`;
  if (!existsSync(PYTHON)) return `${PYTHON} is missing (run models/training/setup.sh)`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision, onnx, PIL, numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return `${PYTHON} lacks torch/torchvision/onnx (run models/training/setup.sh): ${probe.stderr.trim().split('\n').pop()}`;
  return undefined;
}

function readF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

test('onnxruntime-node matches PyTorch on real CXRs (max abs diff < 1e-4)', async () => {
  const t = testContext();
  const reason = skipReason();
  if (reason) {
    console.warn(`\n*** SKIPPED model parity test: ${reason} ***\n`);
    t.skip(`SKIPPED model parity: ${reason}`);
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'cxr-parity-'));
  try {
    const py = spawnSync(PYTHON, [path.join(ROOT, 'models', 'training', 'torch_reference.py'), dir, '--onnx', MODEL, '--n', '4'], {
      encoding: 'utf8',
      env: { ...process.env, PYTHONWARNINGS: 'ignore' },
      timeout: 90_000,
    });
    assert.equal(py.status, 0, `torch_reference.py failed:\n${py.stdout}\n${py.stderr}`);
    const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as { n: number; size: number; channels: number; ids: string[] };
    const { n, size, channels } = index;
    assert.ok(n >= 2, 'expected at least two reference images');
    const input = readF32(path.join(dir, 'input.f32'));
    const expected = readF32(path.join(dir, 'output.f32'));
    assert.equal(input.length, n * size * size);
    assert.equal(expected.length, n * channels * size * size);

    const session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
    assert.deepEqual(session.inputNames, ['image']);
    assert.deepEqual(session.outputNames, ['probabilities']);
    // the whole batch at once (dynamic batch axis) and image by image must both agree with torch
    const batch = await session.run({ image: new ort.Tensor('float32', input, [n, 1, size, size]) });
    const out = batch.probabilities;
    assert.deepEqual([...out.dims], [n, channels, size, size]); // a copy: the native addon's array is another realm's under jest
    const got = out.data as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - expected[i]));
    const per = size * size;
    const single = await session.run({ image: new ort.Tensor('float32', input.slice(0, per), [1, 1, size, size]) });
    const s = single.probabilities.data as Float32Array;
    for (let i = 0; i < s.length; i++) maxDiff = Math.max(maxDiff, Math.abs(s[i] - expected[i]));
    // the outputs must be real probabilities, and the lungs must be found on a real CXR
    let lungPixels = 0;
    for (let c = 0; c < 2; c++) for (let i = 0; i < per; i++) if (got[c * per + i] >= 0.5) lungPixels++;
    console.log(`model parity: ${n} images (${index.ids.join(', ')}), max |torch - onnxruntime| = ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff < TOLERANCE, `max abs diff ${maxDiff} >= ${TOLERANCE}`);
    assert.ok(got.every((v) => v >= 0 && v <= 1), 'outputs must be sigmoid probabilities');
    assert.ok(lungPixels > 0.05 * per, `too few lung pixels on a real CXR (${lungPixels})`);
    await session.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
