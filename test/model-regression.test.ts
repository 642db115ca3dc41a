/**
 * Regression gate for the committed model (issue 3): the evaluation on external22 (the source paper's
 * external validation set; never trained or tuned on) must not fall below the values measured when the
 * models were committed (models/eval/external22-int8.json for the default int8 model, external22.json for fp32)
 * minus the margins below. Skips loudly when the data
 * folder or the model is absent.
 */
import { test } from '@jest/globals';
import { testContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_MODEL_MANIFEST, FP32_MODEL_MANIFEST, loadModel } from '../layers/onnx/session';
import { evaluateDataset, type EvalSummary } from '../src/eval/evaluate';

const DATA = resolve(__dirname, '..', '..', 'shared', 'data', 'external22');
const EVAL = resolve(__dirname, '..', 'models', 'eval');
/** Margins: run-to-run noise is zero (deterministic), so these only absorb platform-level float differences. */
const MARGIN = { lungDice: 0.01, opacityDice: 0.02, opacityPctMae: 1.0 };

// Both shipped models: the default (int8, layers/onnx/model-files.ts) and the fp32 one it is quantised from.
for (const [label, manifest, committedPath] of [
  ['default (int8)', DEFAULT_MODEL_MANIFEST, join(EVAL, 'external22-int8.json')],
  ['fp32', FP32_MODEL_MANIFEST, join(EVAL, 'external22.json')],
] as const) {
  test(`external22 metrics of the ${label} model stay at or above its committed measured values`, async () => {
    const t = testContext();
    const missing = [[DATA, 'the data folder ../shared/data/external22'], [manifest, 'the model manifest'], [committedPath, committedPath]].find(([p]) => !existsSync(p));
    if (missing) {
      const why = `SKIPPED model regression: ${missing[1]} is missing (${missing[0]})`;
      console.warn(why);
      t.skip(why);
      return;
    }
    const committed = JSON.parse(readFileSync(committedPath, 'utf8')).summary as EvalSummary;
    const model = await loadModel(manifest);
    try {
      assert.equal(committed.model, `${model.manifest.name}@${model.manifest.version}`, `${committedPath} was measured on another model version: rerun \`npm run eval -- --data ../shared/data/external22 --model ${manifest}\` and rename`);
      const { summary } = await evaluateDataset(DATA, model);
      assert.equal(summary.n, committed.n);
      assert.ok(summary.lungDice.mean >= committed.lungDice.mean - MARGIN.lungDice, `lung Dice ${summary.lungDice.mean} < ${committed.lungDice.mean} - ${MARGIN.lungDice}`);
      assert.ok(summary.opacityDicePooled.value >= committed.opacityDicePooled.value - MARGIN.opacityDice, `opacity Dice ${summary.opacityDicePooled.value} < ${committed.opacityDicePooled.value} - ${MARGIN.opacityDice}`);
      assert.ok(summary.opacityPctMae.value <= committed.opacityPctMae.value + MARGIN.opacityPctMae, `opacity % MAE ${summary.opacityPctMae.value} > ${committed.opacityPctMae.value} + ${MARGIN.opacityPctMae}`);
    } finally {
      await model.release();
    }
  });
}
