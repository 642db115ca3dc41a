/**
 * Regression gate for the committed model (issue 3): the evaluation on external22 (the source paper's
 * external validation set; never trained or tuned on) must not fall below the values measured when the
 * model was committed (models/eval/external22.json) minus the margins below. Skips loudly when the data
 * folder or the model is absent.
 */
import { test } from '@jest/globals';
import { testContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadModel } from '../layers/onnx/session';
import { evaluateDataset, type EvalSummary } from '../src/eval/evaluate';
import { DEFAULT_MODEL_MANIFEST } from '../src/local/pipeline';

const DATA = resolve(__dirname, '..', '..', 'shared', 'data', 'external22');
const COMMITTED = resolve(__dirname, '..', 'models', 'eval', 'external22.json');
/** Margins: run-to-run noise is zero (deterministic), so these only absorb platform-level float differences. */
const MARGIN = { lungDice: 0.01, opacityDice: 0.02, opacityPctMae: 1.0 };

test('external22 metrics stay at or above the committed model\'s measured values', async () => {
  const t = testContext();
  const missing = [[DATA, 'the data folder ../shared/data/external22'], [DEFAULT_MODEL_MANIFEST, 'the model manifest'], [COMMITTED, 'models/eval/external22.json']].find(([p]) => !existsSync(p));
  if (missing) {
    const why = `SKIPPED model regression: ${missing[1]} is missing (${missing[0]})`;
    console.warn(why);
    t.skip(why);
    return;
  }
  const committed = JSON.parse(readFileSync(COMMITTED, 'utf8')).summary as EvalSummary;
  const model = await loadModel(DEFAULT_MODEL_MANIFEST);
  try {
    assert.equal(committed.model, `${model.manifest.name}@${model.manifest.version}`, 'models/eval/external22.json was measured on another model version: rerun `npm run eval -- --data ../shared/data/external22 --out models/eval` and rename');
    const { summary } = await evaluateDataset(DATA, model);
    assert.equal(summary.n, committed.n);
    assert.ok(summary.lungDice.mean >= committed.lungDice.mean - MARGIN.lungDice, `lung Dice ${summary.lungDice.mean} < ${committed.lungDice.mean} - ${MARGIN.lungDice}`);
    assert.ok(summary.opacityDicePooled.value >= committed.opacityDicePooled.value - MARGIN.opacityDice, `opacity Dice ${summary.opacityDicePooled.value} < ${committed.opacityDicePooled.value} - ${MARGIN.opacityDice}`);
    assert.ok(summary.opacityPctMae.value <= committed.opacityPctMae.value + MARGIN.opacityPctMae, `opacity % MAE ${summary.opacityPctMae.value} > ${committed.opacityPctMae.value} + ${MARGIN.opacityPctMae}`);
  } finally {
    await model.release();
  }
});
