import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { bootstrapCi, dice, iou, overlap, pearson, pooled, ranks, spearman } from '../src/eval/metrics';

describe('evaluation metrics', () => {
  test('Dice and IoU on known overlaps, empty masks agree', () => {
    const o = overlap(Uint8Array.from([1, 1, 1, 0, 0]), Uint8Array.from([0, 1, 1, 1, 0]));
    assert.deepEqual(o, { inter: 2, a: 3, b: 3 });
    assert.equal(dice(o), 2 / 3);
    assert.equal(iou(o), 0.5);
    assert.equal(dice(overlap(new Uint8Array(4), new Uint8Array(4))), 1);
    assert.equal(dice(overlap(Uint8Array.from([1, 0]), new Uint8Array(2))), 0);
    assert.equal(dice(pooled([o, { inter: 0, a: 1, b: 0 }])), 4 / 7);
  });
  test('correlations and ranks with ties', () => {
    assert.deepEqual(ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1]);
    assert.ok(Math.abs(pearson([1, 2, 3], [2, 4, 6]) - 1) < 1e-12);
    assert.ok(Math.abs(spearman([1, 2, 3, 4], [1, 8, 27, 64]) - 1) < 1e-12);
    assert.ok(Math.abs(pearson([1, 2, 3], [3, 2, 1]) + 1) < 1e-12);
  });
  test('bootstrap CI is reproducible and brackets the statistic', () => {
    const xs = Array.from({ length: 50 }, (_, i) => i);
    const m = (s: number[]) => s.reduce((a, b) => a + b, 0) / s.length;
    const ci = bootstrapCi(xs, m, 500, 7);
    assert.deepEqual(ci, bootstrapCi(xs, m, 500, 7));
    assert.ok(ci[0] < 24.5 && ci[1] > 24.5 && ci[1] - ci[0] < 20);
  });
});
