/**
 * The committed models/severity.json and models/SEVERITY.md are exactly what models/severity/analyze.ts produces
 * from ../shared/data. Skips (loudly) on a machine without the data.
 */
import { test } from '@jest/globals';
import { testContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { runAnalysis } from '../models/severity/analyze';
import { gradeFor, loadSeverityConfig, riskFor } from '../src/core/severity';

const repo = path.resolve(__dirname, '..');
const dataDir = path.resolve(repo, '..', 'shared', 'data');

test('re-running the severity analysis reproduces the committed severity.json and SEVERITY.md', async () => {
  const t = testContext();
  if (!existsSync(path.join(dataDir, 'covid_rural_ar', 'manifest.csv'))) {
    const why = `../shared/data not found: ${dataDir} is absent, so the severity calibration cannot be re-run (models/severity.json is checked only for its shape)`;
    console.warn(`SKIPPED: ${why}`);
    t.skip(why);
    return;
  }
  const { json, md, config } = await runAnalysis(dataDir);
  assert.equal(json, readFileSync(path.join(repo, 'models', 'severity.json'), 'utf8'), 'models/severity.json is stale: run `npx tsx models/severity/analyze.ts`');
  assert.equal(md, readFileSync(path.join(repo, 'models', 'SEVERITY.md'), 'utf8'), 'models/SEVERITY.md is stale: run `npx tsx models/severity/analyze.ts`');
  // sanity of the calibrated config as production reads it
  const cfg = loadSeverityConfig();
  assert.deepEqual(cfg, config);
  assert.equal(gradeFor(0, cfg).label, 'none');
  assert.equal(gradeFor(100, cfg).label, cfg.grades.bins[cfg.grades.bins.length - 1].label);
  const lo = riskFor(0, cfg);
  const hi = riskFor(60, cfg);
  assert.ok(hi.icu! > lo.icu! && hi.mortality! > lo.mortality!, 'risk rises with opacity');
}, 180_000);
