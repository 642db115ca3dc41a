import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { scoreMasks } from '../src/core/score';
import {
  extentScore, extentScoreFromCounts, gradeFor, loadSeverityConfig, riskFor, validateSeverityConfig,
  zoneScoreFromCounts, type SeverityConfig,
} from '../src/core/severity';
import type { Mask, SegmentationMasks } from '../src/core/types';

/** A config with known grades and risks, independent of the calibrated models/severity.json. */
const cfg: SeverityConfig = validateSeverityConfig({
  version: '9.8.7',
  description: 'test config',
  grades: {
    feature: 'opacity_pct_total',
    justification: 'test',
    bins: [
      { index: 0, label: 'none', minPct: 0, justification: 't' },
      { index: 1, label: 'mild', minPct: 1, justification: 't' },
      { index: 2, label: 'moderate', minPct: 15, justification: 't' },
      { index: 3, label: 'severe', minPct: 30, justification: 't' },
      { index: 4, label: 'critical', minPct: 50, justification: 't' },
    ],
  },
  geographicExtent: { description: 't' },
  zones: { description: 't' },
  risk: {
    icu: { outcome: 'icu', feature: 'opacity_pct_total', intercept: -2, coef: 0.05, study: 'first', n: 10, events: 3, featureRange: [0, 80], cvBrier: 0.2, cvMethod: 't', cvBrierBaseline: 0.25 },
    mortality: { outcome: 'death', feature: 'opacity_pct_total', intercept: -3, coef: 0, study: 'first', n: 10, events: 1, featureRange: [0, 80], cvBrier: 0.1, cvMethod: 't', cvBrierBaseline: 0.1 },
  },
}, 'test');

const W = 12;
const H = 9;
const empty = (): Mask => ({ width: W, height: H, data: new Uint8Array(W * H) });
/** Sets rows [y0, y1) x columns [x0, x1) of m to 1. */
const rect = (m: Mask, x0: number, x1: number, y0: number, y1: number): Mask => {
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m.data[y * m.width + x] = 1;
  return m;
};

/** Patient's right lung on the image's left (columns 0-4), patient's left on the image's right (7-11), rows 0-8. */
function twoLungs(): SegmentationMasks {
  return { lungRight: rect(empty(), 0, 5, 0, 9), lungLeft: rect(empty(), 7, 12, 0, 9), opacity: empty() };
}

describe('scoreMasks', () => {
  test('a lung with exactly its lower third opaque', () => {
    const m = twoLungs();
    rect(m.opacity, 0, 5, 6, 9); // right lung, rows 6-8 = lower third
    const s = scoreMasks(m, cfg);
    assert.deepEqual(s.lungAreaPx, { total: 90, right: 45, left: 45 });
    assert.deepEqual(s.opacityAreaPx, { total: 15, right: 15, left: 0 });
    assert.equal(s.opacityPct.right, 100 / 3);
    assert.equal(Number(s.opacityPct.right!.toFixed(2)), 33.33);
    assert.equal(s.opacityPct.left, 0);
    assert.equal(Number(s.opacityPct.total!.toFixed(4)), 16.6667);
    assert.deepEqual(s.zones, { total: 3, right: { upper: 0, middle: 0, lower: 3 }, left: { upper: 0, middle: 0, lower: 0 } });
    assert.deepEqual(s.geographicExtent, { total: 2, right: 2, left: 0 }); // 1/3 is in [25, 50%)
    assert.deepEqual(s.grade, { label: 'moderate', index: 2 });
    assert.equal(s.severityVersion, '9.8.7');
    assert.equal(s.lungAreaMm2, undefined);
  });

  test('zones are thirds of each lung\'s OWN vertical extent', () => {
    // Right lung rows 3-8 (height 6: zones of 2 rows), left lung rows 0-8 (height 9: zones of 3 rows).
    const m: SegmentationMasks = { lungRight: rect(empty(), 0, 5, 3, 9), lungLeft: rect(empty(), 7, 12, 0, 9), opacity: empty() };
    rect(m.opacity, 0, 12, 3, 5); // rows 3-4: the whole upper zone of the right lung; row 3-4 of the left = its middle zone (2/3 of it)
    const s = scoreMasks(m, cfg);
    assert.deepEqual(s.zones.right, { upper: 3, middle: 0, lower: 0 });
    assert.deepEqual(s.zones.left, { upper: 0, middle: 3, lower: 0 }); // 10 of 15 px = exactly 2/3 → 3
    assert.equal(s.zones.total, 6);
    // one row of the left middle zone only: 5 of 15 = exactly 1/3 → 2; a partial row → 1
    const m2 = twoLungs();
    rect(m2.opacity, 7, 12, 3, 4);
    rect(m2.opacity, 0, 1, 0, 1);
    const s2 = scoreMasks(m2, cfg);
    assert.deepEqual(s2.zones.left, { upper: 0, middle: 2, lower: 0 });
    assert.deepEqual(s2.zones.right, { upper: 1, middle: 0, lower: 0 });
  });

  test('uneven heights split rows by floor(3 (r - top) / height)', () => {
    // height 4 rows (0-3): zones get rows {0,1}, {2}, {3}
    const m: SegmentationMasks = { lungRight: rect(empty(), 0, 2, 0, 4), lungLeft: empty(), opacity: rect(empty(), 0, 2, 2, 3) };
    const s = scoreMasks(m, cfg);
    assert.deepEqual(s.zones.right, { upper: 0, middle: 3, lower: 0 });
  });

  test('opacity outside the lungs is ignored', () => {
    const m = twoLungs();
    rect(m.opacity, 5, 7, 0, 9); // the gap between the lungs (mediastinum)
    rect(m.opacity, 7, 8, 0, 1); // one pixel inside the left lung
    const s = scoreMasks(m, cfg);
    assert.deepEqual(s.opacityAreaPx, { total: 1, right: 0, left: 1 });
    assert.equal(s.opacityPct.left, 100 / 45);
    assert.deepEqual(s.geographicExtent, { total: 1, right: 0, left: 1 });
    assert.deepEqual(s.zones.left, { upper: 1, middle: 0, lower: 0 });
  });

  test('an empty lung gives null % for that side; no lungs give null total, indeterminate grade, null risk', () => {
    const m = twoLungs();
    m.lungLeft = empty();
    rect(m.opacity, 0, 12, 0, 9);
    const s = scoreMasks(m, cfg);
    assert.equal(s.opacityPct.left, null);
    assert.equal(s.opacityPct.right, 100);
    assert.equal(s.opacityPct.total, 100);
    assert.deepEqual(s.geographicExtent, { total: 4, right: 4, left: 0 });
    assert.deepEqual(s.zones, { total: 9, right: { upper: 3, middle: 3, lower: 3 }, left: { upper: 0, middle: 0, lower: 0 } });
    assert.deepEqual(s.grade, { label: 'critical', index: 4 });
    const none = scoreMasks({ lungRight: empty(), lungLeft: empty(), opacity: rect(empty(), 0, 12, 0, 9) }, cfg);
    assert.deepEqual(none.opacityPct, { total: null, right: null, left: null });
    assert.deepEqual(none.grade, { label: 'indeterminate', index: -1 });
    assert.deepEqual(none.risk, { icu: null, mortality: null });
    assert.equal(none.zones.total, 0);
    assert.equal(none.geographicExtent.total, 0);
  });

  test('areas in mm² with [row, column] spacing', () => {
    const m = twoLungs();
    rect(m.opacity, 0, 5, 6, 9);
    const s = scoreMasks(m, cfg, [0.2, 0.5]); // 0.1 mm² per pixel
    assert.deepEqual(s.lungAreaMm2, { total: 9, right: 4.5, left: 4.5 });
    assert.deepEqual(s.opacityAreaMm2, { total: 1.5, right: 1.5, left: 0 });
    assert.throws(() => scoreMasks(m, cfg, [0, 1]), /pixel spacing/);
  });

  test('sides come from the masks: asymmetric involvement', () => {
    const m = twoLungs();
    rect(m.opacity, 7, 12, 0, 9); // all of the patient's left lung (image right)
    rect(m.opacity, 0, 5, 0, 2); // 10 of 45 px of the right lung
    const s = scoreMasks(m, cfg);
    assert.equal(s.opacityPct.left, 100);
    assert.equal(s.opacityPct.right, (100 * 10) / 45);
    assert.deepEqual(s.geographicExtent, { total: 5, right: 1, left: 4 });
    assert.deepEqual(s.zones.right, { upper: 3, middle: 0, lower: 0 }); // rows 0-1 = 10 of the zone's 15 px = 2/3 → 3
    assert.equal(s.opacityPct.total, (100 * 55) / 90);
  });

  test('overlapping lung masks count once in the total', () => {
    const m: SegmentationMasks = { lungRight: rect(empty(), 0, 6, 0, 9), lungLeft: rect(empty(), 5, 12, 0, 9), opacity: rect(empty(), 5, 6, 0, 9) };
    const s = scoreMasks(m, cfg);
    assert.deepEqual(s.lungAreaPx, { total: 108, right: 54, left: 63 });
    assert.deepEqual(s.opacityAreaPx, { total: 9, right: 9, left: 9 });
  });

  test('rejects masks of different sizes', () => {
    const m = twoLungs();
    m.opacity = { width: 3, height: 3, data: new Uint8Array(9) };
    assert.throws(() => scoreMasks(m, cfg), /mask opacity is 3x3, expected 12x9/);
  });

  test('non-zero values other than 1 count as set (0/255 masks)', () => {
    const m = twoLungs();
    for (let i = 0; i < m.lungRight.data.length; i++) m.lungRight.data[i] *= 255;
    m.opacity.data[0] = 255;
    assert.equal(scoreMasks(m, cfg).opacityAreaPx.right, 1);
  });

  test('a 3000x3000 image scores in well under a second', () => {
    const N = 3000;
    const mk = (f: (x: number, y: number) => boolean): Mask => {
      const d = new Uint8Array(N * N);
      for (let y = 0; y < N; y++) for (let x = 0; x < N; x++) d[y * N + x] = f(x, y) ? 1 : 0;
      return { width: N, height: N, data: d };
    };
    const m: SegmentationMasks = {
      lungRight: mk((x, y) => x > 300 && x < 1300 && y > 400 && y < 2600),
      lungLeft: mk((x, y) => x > 1700 && x < 2700 && y > 400 && y < 2600),
      opacity: mk((x, y) => y > 1900),
    };
    const t0 = performance.now();
    const s = scoreMasks(m, cfg);
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
    assert.equal(s.zones.right.lower, 3);
  });
});

describe('severity scales and config', () => {
  test('extent bins: 0, (0,25), [25,50), [50,75), [75,100]', () => {
    assert.deepEqual([0, 0.01, 24.99, 25, 49.9, 50, 74.9, 75, 100].map(extentScore), [0, 1, 1, 2, 2, 3, 3, 4, 4]);
    assert.deepEqual([[0, 0], [0, 10], [1, 100], [25, 100], [1, 3], [1, 2], [3, 4], [4, 4]].map(([a, b]) => extentScoreFromCounts(a, b)), [0, 0, 1, 2, 2, 3, 4, 4]);
  });
  test('zone bins: 0, (0,1/3), [1/3,2/3), [2/3,1]', () => {
    assert.deepEqual([[0, 9], [1, 9], [2, 9], [3, 9], [5, 9], [6, 9], [9, 9], [1, 0]].map(([a, b]) => zoneScoreFromCounts(a, b)), [0, 1, 1, 2, 2, 3, 3, 0]);
  });
  test('grades are lower-inclusive; risk is the logistic of total %', () => {
    assert.deepEqual([0, 0.99, 1, 29.99, 30, 50, 100].map((p) => gradeFor(p, cfg).label), ['none', 'none', 'mild', 'moderate', 'severe', 'critical', 'critical']);
    const r = riskFor(40, cfg);
    assert.equal(r.icu, 1 / (1 + Math.exp(-(-2 + 0.05 * 40))));
    assert.equal(r.icu, 0.5);
    assert.equal(r.mortality, 1 / (1 + Math.exp(3)));
  });
  test('risk applies the model\'s feature transform (log1p, sqrt)', () => {
    const c = { ...cfg, risk: { icu: { ...cfg.risk.icu, transform: 'log1p' as const }, mortality: { ...cfg.risk.mortality, transform: 'sqrt' as const, coef: 1 } } };
    const r = riskFor(40, validateSeverityConfig(c, 't'));
    assert.equal(r.icu, 1 / (1 + Math.exp(-(-2 + 0.05 * Math.log1p(40)))));
    assert.equal(r.mortality, 1 / (1 + Math.exp(-(-3 + Math.sqrt(40)))));
    assert.throws(() => validateSeverityConfig({ ...cfg, risk: { ...cfg.risk, icu: { ...cfg.risk.icu, transform: 'toString' } } }, 't'), /risk\.icu"\.transform/);
  });
  test('fitted levels (the committed severity.json): a speck is no involvement, on the extent and the zone scale', () => {
    const real = loadSeverityConfig();
    assert.ok(real.geographicExtent.levels && real.zones.levels, 'severity.json carries fitted levels');
    assert.ok(real.geographicExtent.levels.minInvolvedPct >= 1 && real.zones.levels.minInvolvedPct >= 1, 'minimum involved share of at least 1%');
    // a 400x300 image, lungs 150x200 each, and a 17-pixel speck in the right lung (0.06% of that lung)
    const w = 400, h = 300;
    const mk = (f: (x: number, y: number) => boolean): Mask => {
      const m: Mask = { width: w, height: h, data: new Uint8Array(w * h) };
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (f(x, y)) m.data[y * w + x] = 1;
      return m;
    };
    const masks = {
      lungRight: mk((x, y) => x >= 30 && x < 180 && y >= 50 && y < 250),
      lungLeft: mk((x, y) => x >= 220 && x < 370 && y >= 50 && y < 250),
      opacity: mk((x, y) => y === 200 && x >= 100 && x < 117),
    };
    const s = scoreMasks(masks, real);
    assert.equal(s.opacityAreaPx.right, 17);
    assert.equal(s.geographicExtent.total, 0);
    assert.equal(s.zones.total, 0);
    assert.equal(s.grade.label, 'none');
    // the same lung half opaque is involvement on both scales
    const half = scoreMasks({ ...masks, opacity: mk((x, y) => x >= 30 && x < 180 && y >= 150 && y < 250) }, real);
    assert.ok(half.geographicExtent.right >= 2 && half.zones.right.lower >= 2 && half.zones.right.upper === 0, JSON.stringify(half.zones));
  });

  test('the committed models/severity.json loads and validates', () => {
    const c = loadSeverityConfig();
    assert.match(c.version, /^\d+\.\d+\.\d+$/);
    assert.equal(c.grades.bins[0].minPct, 0);
  });
  test('a broken config fails with a message naming the file and the field', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sev-'));
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...cfg, grades: { ...cfg.grades, bins: [cfg.grades.bins[0], { ...cfg.grades.bins[1], minPct: 0 }] } }));
    assert.throws(() => loadSeverityConfig(bad), (e: Error) => e.message.includes(bad) && e.message.includes('grades.bins[1]'));
    writeFileSync(bad, '{ nope');
    assert.throws(() => loadSeverityConfig(bad), /is not valid JSON/);
    assert.throws(() => loadSeverityConfig(path.join(dir, 'missing.json')), /cannot be read \(ENOENT\)/);
    assert.throws(() => validateSeverityConfig({ ...cfg, risk: { icu: cfg.risk.icu } }, 'x'), /risk\.mortality/);
  });
});
