/**
 * core/upsample.ts: the run-filling upsample equals the plain per-pixel formula (bilinear of the 0/1 mask,
 * thresholded at 1/2) on random masks of many shapes, and the working grid / count scaling around it; the
 * overlay's outline (core/render.ts) equals its per-pixel definition, and so does the composed overlay (only the
 * masks' boxes are painted there).
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { composeOverlay } from '../src/core/render';
import { forEachOutlineRow, outline } from '../src/core/outline';
import { LEFT_RGB, OPACITY_ALPHA, OPACITY_RGB, RIGHT_RGB } from '../src/core/overlay-colours';
import { resampleAxis, upsampleMask } from '../src/core/upsample';
import { workingGrid, WORKING_MAX_SIDE } from '../src/core/postprocess';
import { countMasks, scoreCounts } from '../src/core/score';
import { loadSeverityConfig } from '../src/core/severity';
import type { Mask } from '../src/core/types';

/** The definition, one pixel at a time. */
function reference(m: Mask, W: number, H: number): Uint8Array {
  const ax = resampleAxis(m.width, W);
  const ay = resampleAxis(m.height, H);
  const out = new Uint8Array(W * H);
  const at = (x: number, y: number) => (m.data[Math.min(y, m.height - 1) * m.width + Math.min(x, m.width - 1)] ? 1 : 0);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const a = ax.i0[x], b = ay.i0[y], fx = ax.f[x], fy = ay.f[y];
      const left = at(a, b) * (1 - fy) + at(a, b + 1) * fy;
      const right = at(a + 1, b) * (1 - fy) + at(a + 1, b + 1) * fy;
      out[y * W + x] = left * (1 - fx) + right * fx >= 0.5 ? 1 : 0;
    }
  }
  return out;
}

/** A seeded random mask: blobs, so there are both runs and edges. */
function randomMask(w: number, h: number, seed: number): Mask {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const data = new Uint8Array(w * h);
  for (let k = 0; k < 4; k++) {
    const cx = rnd() * w, cy = rnd() * h, r = 1 + rnd() * Math.max(w, h) / 3;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if ((x - cx) ** 2 + (y - cy) ** 2 < r * r) data[y * w + x] = 1;
  }
  for (let i = 0; i < data.length; i++) if (rnd() < 0.05) data[i] ^= 1; // speckle: isolated pixels and holes
  return { width: w, height: h, data };
}

describe('upsampleMask', () => {
  test('equals the per-pixel formula on random masks, up- and down-sampling, odd ratios', () => {
    const cases: Array<[number, number, number, number]> = [
      [8, 8, 8, 8], [8, 8, 16, 16], [7, 5, 23, 31], [64, 77, 250, 300], [1, 1, 5, 3], [1, 9, 4, 20], [40, 30, 17, 11], [3, 3, 1000, 2],
    ];
    for (const [w, h, W, H] of cases) {
      for (let seed = 1; seed <= 3; seed++) {
        const m = randomMask(w, h, seed * 7919 + w);
        const got = upsampleMask(m, W, H);
        assert.equal(got.width, W);
        assert.equal(got.height, H);
        assert.deepEqual(got.data, reference(m, W, H), `${w}x${h} -> ${W}x${H} seed ${seed}`);
      }
    }
  });

  test('the same size is an independent copy; empty and full masks stay so', () => {
    const m = randomMask(9, 6, 3);
    const same = upsampleMask(m, 9, 6);
    assert.deepEqual(same.data, m.data);
    same.data[0] ^= 1;
    assert.notEqual(same.data[0], m.data[0]);
    assert.equal(upsampleMask({ width: 4, height: 4, data: new Uint8Array(16) }, 40, 30).data.some((v) => v), false);
    assert.equal(upsampleMask({ width: 4, height: 4, data: new Uint8Array(16).fill(1) }, 40, 30).data.every((v) => v === 1), true);
  });

  test('on = 255 writes the bytes of a black-and-white picture, same pixels', () => {
    const m = randomMask(13, 9, 5);
    for (const [W, H] of [[13, 9], [40, 27]]) {
      const a = upsampleMask(m, W, H);
      const b = upsampleMask(m, W, H, 255);
      assert.deepEqual(b.data, a.data.map((v) => v * 255));
    }
  });

  test('refuses sizes that are not positive integers and data that does not match the mask', () => {
    const m = randomMask(4, 4, 1);
    assert.throws(() => upsampleMask(m, 0, 4), /width must be a positive integer, got 0/);
    assert.throws(() => upsampleMask(m, 4, 2.5), /height must be a positive integer, got 2.5/);
    assert.throws(() => upsampleMask({ width: 4, height: 4, data: new Uint8Array(15) }, 8, 8), /15 values, expected 4x4/);
  });
});

describe('working grid', () => {
  test('keeps small images at their size and scales large ones to WORKING_MAX_SIDE, aspect kept', () => {
    assert.deepEqual(workingGrid(300, 200), { width: 300, height: 200 });
    assert.deepEqual(workingGrid(2500, 3000), { width: Math.round(2500 * WORKING_MAX_SIDE / 3000), height: WORKING_MAX_SIDE });
    assert.deepEqual(workingGrid(4000, 10, 512), { width: 512, height: 1 });
    assert.deepEqual(workingGrid(2500, 3000, Infinity), { width: 2500, height: 3000 });
  });

  test('counts on a grid report areas in the image\'s pixels and mm², percentages unchanged', () => {
    const cfg = loadSeverityConfig();
    const w = 10, h = 10;
    const right = new Uint8Array(w * h), left = new Uint8Array(w * h), opac = new Uint8Array(w * h);
    for (let y = 2; y < 8; y++) { for (let x = 1; x < 4; x++) right[y * w + x] = 1; for (let x = 6; x < 9; x++) left[y * w + x] = 1; }
    for (let x = 1; x < 4; x++) opac[7 * w + x] = 1;
    const masks = { lungRight: { width: w, height: h, data: right }, lungLeft: { width: w, height: h, data: left }, opacity: { width: w, height: h, data: opac } };
    const onGrid = scoreCounts(countMasks(masks), cfg, [0.5, 0.5]);
    const scaled = scoreCounts(countMasks(masks, { width: 40, height: 30 }), cfg, [0.1, 0.2]);
    // 12x the pixels: 18 lung pixels per side -> 216 image pixels; 3 opaque -> 36; 0.02 mm² per image pixel.
    assert.deepEqual(scaled.lungAreaPx, { total: 432, right: 216, left: 216 });
    assert.deepEqual(scaled.opacityAreaPx, { total: 36, right: 36, left: 0 });
    assert.deepEqual(scaled.lungAreaMm2, { total: 8.64, right: 4.32, left: 4.32 });
    assert.deepEqual(scaled.opacityAreaMm2, { total: 0.72, right: 0.72, left: 0 });
    assert.deepEqual(scaled.opacityPct, onGrid.opacityPct);
    assert.deepEqual(scaled.zones, onGrid.zones);
    assert.throws(() => countMasks(masks, { width: 5, height: 30 }), /at least the 10x10 grid/);
  });
});

describe('overlay outline', () => {
  /** The definition: a mask pixel with a pixel outside the mask (or the image's edge) within r along its row or column. */
  function reference(m: Mask, r: number): Uint8Array {
    const { width: w, height: h, data } = m;
    const out = new Uint8Array(w * h);
    const outside = (x: number, y: number) => x < 0 || y < 0 || x >= w || y >= h || !data[y * w + x];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!data[y * w + x]) continue;
        for (let d = 1; d <= r && !out[y * w + x]; d++) {
          if (outside(x - d, y) || outside(x + d, y) || outside(x, y - d) || outside(x, y + d)) out[y * w + x] = 1;
        }
      }
    }
    return out;
  }

  test('the outline from row runs equals the definition for radii 1-6 on random masks', () => {
    for (const [w, h] of [[1, 1], [5, 3], [40, 31], [97, 64]]) {
      for (let r = 1; r <= 6; r++) {
        const m = randomMask(w, h, w * 31 + r);
        assert.deepEqual(outline(m, r), reference(m, r), `${w}x${h} r=${r}`);
      }
    }
  });

  test('the outline of an upsampled mask, from the grid mask, equals the definition on the upsampled mask', () => {
    for (const [gw, gh, W, H, r] of [[40, 50, 160, 200, 1], [33, 17, 301, 155, 3], [20, 31, 97, 250, 5], [9, 9, 9, 9, 2], [12, 7, 500, 40, 6]]) {
      const m = randomMask(gw, gh, gw * 7 + r);
      const want = reference(upsampleMask(m, W, H), r);
      const got = new Uint8Array(W * H);
      let last = -1;
      forEachOutlineRow(m, W, H, r, (y, runs, n) => {
        assert.ok(y > last && n > 0, 'rows in order, each with runs');
        last = y;
        for (let k = 0; k < 2 * n; k += 2) {
          assert.ok(runs[k] < runs[k + 1] && (k === 0 || runs[k - 1] < runs[k]), 'sorted, disjoint runs');
          got.fill(1, y * W + runs[k], y * W + runs[k + 1]);
        }
      });
      assert.deepEqual(got, want, `${gw}x${gh} -> ${W}x${H} r=${r}`);
    }
    assert.throws(() => forEachOutlineRow(randomMask(4, 4, 1), 8, 8, 0, () => undefined), /radius must be a positive integer/);
  });

  test('the composed overlay equals its per-pixel definition (grey, opacity blended, left then right outline on top)', () => {
    // Masks on small grids (random blobs, one touching the edge) upsampled to overlays of other sizes and aspects.
    for (const [gw, gh, W, H, seed] of [[40, 50, 160, 200, 1], [33, 17, 301, 155, 2], [64, 64, 64, 64, 3], [20, 31, 97, 250, 4]]) {
      const right = randomMask(gw, gh, seed * 11);
      const left = randomMask(gw, gh, seed * 13);
      const opacity = randomMask(gw, gh, seed * 17);
      const data = new Float32Array(W * H);
      for (let i = 0; i < data.length; i++) data[i] = ((i * 37) % 101) / 100;
      const img = { width: W, height: H, data };
      const got = composeOverlay(img, { lungRight: right, lungLeft: left, opacity });
      assert.deepEqual([got.width, got.height], [W, H]);
      const r = Math.max(1, Math.round(Math.max(W, H) / 400));
      const edgeR = reference(upsampleMask(right, W, H), r);
      const edgeL = reference(upsampleMask(left, W, H), r);
      const op = upsampleMask(opacity, W, H).data;
      let painted = 0;
      for (let i = 0; i < W * H; i++) {
        const g = Math.round(data[i] * 255);
        const want = edgeR[i] ? [...RIGHT_RGB] : edgeL[i] ? [...LEFT_RGB]
          : op[i] ? OPACITY_RGB.map((c) => Math.round(g * (1 - OPACITY_ALPHA) + c * OPACITY_ALPHA)) : [g, g, g];
        if (edgeR[i] || edgeL[i] || op[i]) painted++;
        assert.deepEqual([got.data[3 * i], got.data[3 * i + 1], got.data[3 * i + 2]], want, `${W}x${H} pixel ${i % W},${Math.floor(i / W)}`);
      }
      assert.ok(painted > 0.1 * W * H, 'the masks cover part of the overlay');
    }
  });
});
