/**
 * The int8 model (issue 12; models/quantize/README.md): it is the file its manifest names, it keeps the fp32
 * model's contract (input, output, thresholds, guard), it was made from the fp32 model that is committed now
 * (else rerun `npm run quantize`), and on external22 every metric lies inside the fp32 model's 95% CI
 * (models/eval/external22.json), as it did when it was shipped (models/eval/external22-int8.json). The evaluation
 * skips loudly without the data folder.
 */
import { test } from '@jest/globals';
import { testContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModel, validateManifest } from '../layers/onnx/session';
import { evaluateDataset, type EvalSummary } from '../src/eval/evaluate';
import { gate } from '../models/quantize/compare';

const MODELS = resolve(__dirname, '..', 'models');
const INT8 = join(MODELS, 'cxr-unet-r18-int8.json');
const FP32 = join(MODELS, 'cxr-unet-r18.json');
const DATA = resolve(__dirname, '..', '..', 'shared', 'data', 'external22');
const read = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;

test('the int8 manifest names its file, keeps the fp32 contract and comes from the committed fp32 model', () => {
  const m = validateManifest(read(INT8), INT8) as ReturnType<typeof validateManifest> & { quantization: { from: { sha256: string; file: string } } };
  const f = validateManifest(read(FP32), FP32);
  const file = join(MODELS, m.file);
  assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), m.sha256);
  assert.ok(statSync(file).size < 15e6, 'the int8 file stays under 15 MB');
  assert.equal(m.name, f.name);
  assert.equal(m.version, `${f.version}-int8`);
  for (const k of ['input', 'output', 'thresholds', 'guard'] as const) assert.deepEqual(m[k], f[k], k);
  assert.equal(m.quantization.from.sha256, f.sha256, 'the fp32 model changed since the int8 model was made: rerun `npm run quantize` (models/quantize/README.md)');
});

test('external22: every metric of the int8 model inside the fp32 model\'s 95% CI', async () => {
  const t = testContext();
  if (!existsSync(DATA)) {
    t.skip(`SKIPPED int8 gate: the data folder ${DATA} is missing`);
    return;
  }
  const fp32 = read(join(MODELS, 'eval', 'external22.json')).summary as EvalSummary;
  const shipped = read(join(MODELS, 'eval', 'external22-int8.json')).summary as EvalSummary;
  const model = await loadModel(INT8);
  try {
    const { summary } = await evaluateDataset(DATA, model);
    const g = gate(fp32, summary);
    assert.ok(g.ok, g.table);
    // Deterministic on one machine; the margins only absorb other CPUs' int8 kernels.
    assert.ok(Math.abs(summary.opacityPctMae.value - shipped.opacityPctMae.value) <= 0.5, `opacity % MAE ${summary.opacityPctMae.value} vs ${shipped.opacityPctMae.value} when shipped`);
    assert.ok(Math.abs(summary.opacityDicePooled.value - shipped.opacityDicePooled.value) <= 0.01, `opacity Dice ${summary.opacityDicePooled.value} vs ${shipped.opacityDicePooled.value} when shipped`);
  } finally {
    await model.release();
  }
});
