/**
 * core/scratch.ts: reused memory for the large short-lived buffers (the full-size masks encoded as PNGs). Reuse must
 * never leak one image's pixels into another's result.
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { MAX_KEPT, MAX_KEPT_BYTES, MAX_KEPT_TOTAL_BYTES, scratchHeld, withScratch } from '../src/core/scratch';
import { upsampleMask } from '../src/core/upsample';
import { maskToPng, pngToMask } from '../src/core/render';
import type { Mask } from '../src/core/types';

describe('withScratch', () => {
  test('gives the memory back when the promise settles, and hands it out again', async () => {
    let first: ArrayBuffer | undefined;
    await withScratch(1000, async (m) => { first = m; });
    let second: ArrayBuffer | undefined;
    await withScratch(800, async (m) => { second = m; });
    assert.equal(second, first, 'a kept buffer large enough is reused');
    // Also after a rejection.
    await assert.rejects(withScratch(1000, async () => { throw new Error('boom'); }), /boom/);
    let third: ArrayBuffer | undefined;
    await withScratch(1000, async (m) => { third = m; });
    assert.equal(third, first);
  });

  test('concurrent callers get distinct memory; the pool keeps at most MAX_KEPT buffers of at most MAX_KEPT_BYTES', async () => {
    const seen: ArrayBuffer[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const users = Array.from({ length: MAX_KEPT + 3 }, (_, i) => withScratch(4096 + i, async (m) => { seen.push(m); await gate; }));
    await new Promise((r) => setImmediate(r));
    assert.equal(new Set(seen).size, seen.length, 'no buffer is shared by two users at once');
    release();
    await Promise.all(users);
    assert.ok(scratchHeld().buffers <= MAX_KEPT);
    // Many large buffers in use at once, then given back: the total kept stays under its cap.
    let done!: () => void;
    const wait = new Promise<void>((r) => { done = r; });
    const large = Array.from({ length: MAX_KEPT }, () => withScratch(MAX_KEPT_BYTES, () => wait));
    done();
    await Promise.all(large);
    assert.ok(scratchHeld().bytes <= MAX_KEPT_TOTAL_BYTES, `${scratchHeld().bytes} bytes held`);
    let big: ArrayBuffer | undefined;
    await withScratch(MAX_KEPT_BYTES + 1, async (m) => { big = m; });
    let again: ArrayBuffer | undefined;
    await withScratch(MAX_KEPT_BYTES + 1, async (m) => { again = m; });
    assert.notEqual(again, big, 'a buffer over MAX_KEPT_BYTES is not kept');
    await assert.rejects(withScratch(-1, async () => undefined), /non-negative integer/);
  });
});

describe('reused memory does not leak into results', () => {
  const blob = (w: number, h: number, cx: number, cy: number, r: number): Mask => {
    const data = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if ((x - cx) ** 2 + (y - cy) ** 2 < r * r) data[y * w + x] = 1;
    return { width: w, height: h, data };
  };

  test('upsampleMask into dirty memory equals into new memory (also at the same size)', () => {
    const m = blob(30, 20, 12, 9, 7);
    for (const [W, H] of [[30, 20], [97, 61]]) {
      const dirty = new Uint8Array(W * H + 5).fill(255);
      assert.deepEqual([...upsampleMask(m, W, H, 255, dirty).data], [...upsampleMask(m, W, H, 255).data]);
    }
    assert.throws(() => upsampleMask(m, 97, 61, 1, new Uint8Array(10)), /holds 10 values, 97x61 needs 5917/);
  });

  test('mask PNGs written one after another each hold only their own mask', async () => {
    const a = blob(40, 40, 10, 10, 8);
    const b = blob(40, 40, 30, 30, 5);
    const size = { width: 400, height: 400 };
    const pa = await maskToPng(a, size);
    const pb = await maskToPng(b, size);
    const pa2 = await maskToPng(a, size);
    assert.deepEqual(pa2, pa);
    const rb = await pngToMask(pb);
    assert.deepEqual([...rb.data], [...upsampleMask(b, 400, 400).data]);
  });
});
