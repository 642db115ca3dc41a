import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { fillHoles, keepLargestComponent, labelComponents, countOnes } from '../src/core/morphology';
import { probabilitiesToMasks } from '../src/core/postprocess';
import { resizeGray, toModelInput } from '../src/core/preprocess';
import { pseudonymise } from '../src/core/pseudonym';
import { upsampleMask } from '../src/core/upsample';
import { setBitRun } from '../src/core/bits';
import { maskToPng, pngToMask, renderOverlay } from '../src/core/render';
import type { Mask, ModelManifest } from '../src/core/types';
import sharp from 'sharp';

const mask = (rows: string[]): Mask => ({
  width: rows[0].length, height: rows.length,
  data: Uint8Array.from(rows.join('').split('').map((c) => (c === '#' ? 1 : 0))),
});
const show = (m: Mask) => Array.from({ length: m.height }, (_, y) => Array.from(m.data.slice(y * m.width, (y + 1) * m.width)).map((v) => (v ? '#' : '.')).join(''));

describe('morphology', () => {
  test('labels 4-connected components with their sizes', () => {
    const { sizes } = labelComponents(mask(['##..#', '#...#', '...#.']));
    assert.deepEqual(sizes.slice(1).sort(), [1, 2, 3]);
  });
  test('keeps only the largest component', () => {
    assert.deepEqual(show(keepLargestComponent(mask(['##..#', '##..#', '....#', '#...#']))), ['....#', '....#', '....#', '....#'].map((r, y) => (y < 2 ? '##...' : '.....')));
  });
  test('fills holes but not bays open to the border', () => {
    assert.deepEqual(show(fillHoles(mask(['#####.', '#..#..', '#####.', '......']))), ['#####.', '####..', '#####.', '......']);
    assert.deepEqual(show(fillHoles(mask(['###', '#..', '###']))), ['###', '#..', '###']);
  });
});

test('fillHoles on the bounding box equals a whole-image flood fill, on 300 random masks', () => {
  const reference = (m: Mask) => {
    const { width: w, height: h } = m;
    const outside = new Uint8Array(w * h);
    const st: number[] = [];
    const seed = (p: number) => { if (!m.data[p] && !outside[p]) { outside[p] = 1; st.push(p); } };
    for (let x = 0; x < w; x++) { seed(x); seed((h - 1) * w + x); }
    for (let y = 0; y < h; y++) { seed(y * w); seed(y * w + w - 1); }
    while (st.length) {
      const p = st.pop()!;
      const x = p % w;
      if (x > 0) seed(p - 1);
      if (x < w - 1) seed(p + 1);
      if (p >= w) seed(p - w);
      if (p < w * (h - 1)) seed(p + w);
    }
    return Uint8Array.from(outside, (o) => (o ? 0 : 1));
  };
  let state = 7;
  const rnd = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let t = 0; t < 300; t++) {
    const w = 1 + Math.floor(rnd() * 30), h = 1 + Math.floor(rnd() * 30), density = rnd();
    const m = { width: w, height: h, data: Uint8Array.from({ length: w * h }, () => (rnd() < density ? 1 : 0)) };
    assert.deepEqual(fillHoles(m).data, reference(m), `mask ${t} (${w}x${h})`);
  }
});

describe('postprocess', () => {
  const thresholds = { lung_right: 0.5, lung_left: 0.5, opacity: 0.5 };
  test('upsamples, splits sides by the more probable lung, keeps one blob per lung and opacity inside lungs', () => {
    const S = 4;
    const p = new Float32Array(3 * S * S);
    // right lung: columns 0-1; left lung: columns 2-3; stray right-lung pixel at (3,3); opacity everywhere in row 0
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      p[y * S + x] = x < 2 && y < 3 ? 0.9 : 0.1;
      p[S * S + y * S + x] = x >= 2 && y < 3 ? 0.8 : 0.1;
      p[2 * S * S + y * S + x] = y === 0 ? 0.9 : 0.0;
    }
    p[3 * S + 3] = 0.95; // isolated blob, must be dropped
    const m = probabilitiesToMasks(p, S, 8, 8, thresholds);
    assert.equal(m.lungRight.width, 8);
    assert.equal(m.lungRight.data[0], 1);
    assert.equal(m.lungRight.data[7], 0);
    assert.equal(m.lungLeft.data[7], 1);
    assert.equal(m.lungRight.data[7 * 8 + 7], 0, 'isolated component removed');
    for (let i = 0; i < 64; i++) {
      assert.equal(m.lungRight.data[i] & m.lungLeft.data[i], 0, 'sides never overlap');
      if (m.opacity.data[i]) assert.equal(m.lungRight.data[i] | m.lungLeft.data[i], 1, 'opacity only inside lungs');
    }
    assert.ok(countOnes(m.opacity) >= 8 && countOnes(m.opacity) <= 24);
  });
  test('rejects a probability buffer of the wrong size', () => {
    assert.throws(() => probabilitiesToMasks(new Float32Array(10), 4, 8, 8, thresholds), /3x4x4/);
  });
});

describe('preprocess', () => {
  const manifest = { input: { name: 'image', size: 4, resize: 'stretch', normalization: { mean: 0.5, std: 0.25 } } } as ModelManifest;
  test('resizes with 16-bit precision and normalises', async () => {
    const img = { width: 8, height: 8, data: new Float32Array(64).fill(0.75) };
    const x = await toModelInput(img, manifest);
    assert.equal(x.length, 16);
    for (const v of x) assert.ok(Math.abs(v - 1) < 1e-3, `normalised value ${v}`);
  });
  test('keeps differences of 1/65535', async () => {
    const img = { width: 2, height: 1, data: Float32Array.from([30000 / 65535, 30001 / 65535]) };
    const out = await resizeGray(img, 2, 1);
    assert.equal(Math.round(out[0] * 65535), 30000);
    assert.equal(Math.round(out[1] * 65535), 30001);
  });
});

describe('pseudonyms', () => {
  test('are stable under one key, differ across keys and kinds, and hide the id', () => {
    const a = pseudonymise('k'.repeat(32), 'patient', 'DOE^JANE-123');
    assert.equal(a, pseudonymise('k'.repeat(32), 'patient', ' DOE^JANE-123 '));
    assert.notEqual(a, pseudonymise('j'.repeat(32), 'patient', 'DOE^JANE-123'));
    assert.notEqual(a, pseudonymise('k'.repeat(32), 'study', 'DOE^JANE-123'));
    assert.match(a!, /^pt_[A-Za-z0-9_-]{22}$/);
    assert.ok(!a!.includes('DOE'));
    assert.equal(pseudonymise('k'.repeat(32), 'patient', '  '), undefined);
    assert.throws(() => pseudonymise('short', 'patient', 'x'), /at least 16/);
  });
});

describe('render', () => {
  test('mask PNGs are 0/255 at full size and read back identically', async () => {
    const m = mask(['.##.', '####', '..#.']);
    const png = await maskToPng(m);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, 4);
    assert.deepEqual([...new Set(data)].sort(), [0, 255]);
    assert.deepEqual(await pngToMask(png), m);
  });
  test('mask PNGs (our 1-bit writer) decode with sharp to the upsampled mask, at any width, one after another', async () => {
    // Widths that are and are not multiples of 8, sizes up and same; random masks with isolated pixels and holes.
    let seed = 3;
    const random = (w: number, h: number): Mask => ({ width: w, height: h, data: Uint8Array.from({ length: w * h }, () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) % 3 === 0 ? 1 : 0) });
    for (const [w, h, W, H] of [[13, 11, 13, 11], [13, 11, 61, 37], [40, 30, 400, 300], [7, 9, 8, 1000]]) {
      const m = random(w, h);
      const png = await maskToPng(m, { width: W, height: H });
      const meta = await sharp(png).metadata();
      assert.deepEqual([meta.width, meta.height, meta.channels], [W, H, 1]);
      assert.deepEqual([...(await pngToMask(png)).data], [...upsampleMask(m, W, H).data], `${w}x${h} -> ${W}x${H}`);
    }
  });
  test('overlay colours opacity and outlines, and is capped in size', async () => {
    const W = 40, H = 30;
    const img = { width: W, height: H, data: new Float32Array(W * H).fill(0.5) };
    const full = (f: (x: number, y: number) => boolean): Mask => {
      const d = new Uint8Array(W * H);
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) d[y * W + x] = f(x, y) ? 1 : 0;
      return { width: W, height: H, data: d };
    };
    const masks = { lungRight: full((x, y) => x > 2 && x < 18 && y > 2 && y < 27), lungLeft: full((x, y) => x > 21 && x < 37 && y > 2 && y < 27), opacity: full((x, y) => x > 8 && x < 14 && y > 10 && y < 20) };
    const png = await renderOverlay(img, masks);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 3);
    const at = (x: number, y: number) => Array.from(data.slice((y * W + x) * 3, (y * W + x) * 3 + 3));
    assert.deepEqual(at(0, 0), [128, 128, 128]);
    const o = at(11, 15);
    assert.ok(o[0] > o[2] + 50, `opacity is orange: ${o.join(',')}`);
    assert.deepEqual(at(3, 15), [0, 220, 255], 'right lung outline cyan');
    assert.deepEqual(at(36, 15), [255, 0, 200], 'left lung outline magenta');
    const small = await sharp(await renderOverlay(img, masks, { maxSide: 20 })).metadata();
    assert.equal(Math.max(small.width!, small.height!), 20);
  });
});

describe('bit runs', () => {
  test('setBitRun sets exactly bits [from, to), highest or lowest bit first, across byte boundaries', () => {
    for (const order of ['msb', 'lsb'] as const) {
      for (let from = 0; from < 20; from++) {
        for (let to = from; to < 40; to++) {
          const got = new Uint8Array(6);
          setBitRun(got, from, to, order);
          const want = new Uint8Array(6);
          for (let k = from; k < to; k++) want[k >> 3] |= order === 'msb' ? 0x80 >> (k & 7) : 1 << (k & 7);
          assert.deepEqual([...got], [...want], `${order} [${from}, ${to})`);
        }
      }
    }
  });
});
