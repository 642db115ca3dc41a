/**
 * core/pool.ts: the buffers an analysis takes and gives back. The pool's own rules, then the segment stage's
 * analysis with a shared pool: images analysed side by side and one after another give the same outputs as with no
 * reuse at all, and nothing an analysis returns refers to a pooled buffer (the test's pool overwrites what it is given
 * back, so a buffer read after that changes the outputs).
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { BufferPool, decodeImage, loadSeverityConfig } from '../src/core';
import { MAX_OVERSIZE } from '../src/core/pool';
import { analyseImage, type ImageAnalysis } from '../src/pipeline/segment-stage';
import { loadModel } from '../layers/onnx/session';
import { makeDicom } from './helpers/fixtures';
import { chestJpeg, chestPixels, chestPng } from './helpers/synthetic';
import { writeTinyModel } from './helpers/tiny-model';

describe('BufferPool', () => {
  test('take: a new buffer when none fits, else the smallest given back that is large enough', () => {
    const pool = new BufferPool(1000);
    const a = pool.take(100);
    assert.equal(a.byteLength, 100);
    const b = pool.take(300);
    pool.give(a, b);
    assert.equal(pool.keptBytes, 400);
    assert.equal(pool.take(50), a, 'best fit: the 100-byte buffer for 50 bytes');
    assert.equal(pool.take(120), b);
    const c = pool.take(120);
    assert.ok(c !== a && c !== b && c.byteLength === 120, 'nothing left that fits: a new one');
    assert.equal(pool.keptBytes, 0);
    pool.give(b);
    assert.notEqual(pool.take(300 / MAX_OVERSIZE - 1), b, 'not a buffer more than MAX_OVERSIZE times the size asked for');
    assert.equal(pool.take(300 / MAX_OVERSIZE), b);
  });

  test('give: keeps the largest within its limit, never one larger than the limit, a buffer given twice once', () => {
    const pool = new BufferPool(950);
    const [small, mid, large, huge] = [100, 400, 500, 2000].map((n) => new ArrayBuffer(n));
    pool.give(small, mid, large, huge, mid);
    assert.equal(pool.keptBytes, 900, 'large + mid kept; huge over the limit; small does not fit beside them');
    assert.equal(pool.take(450), large);
    assert.equal(pool.take(100), mid);
    assert.equal(pool.keptBytes, 0);
    pool.give(new SharedArrayBuffer(10), new ArrayBuffer(0));
    assert.equal(pool.keptBytes, 0, 'shared and empty buffers are not kept');
    assert.equal(new BufferPool(0).take(8).byteLength, 8);
  });

  test('takeZeroed: a reused buffer comes back zero where asked', () => {
    const pool = new BufferPool();
    const a = pool.take(64);
    new Uint8Array(a).fill(7);
    pool.give(a);
    const b = pool.takeZeroed(60);
    assert.equal(b, a);
    assert.deepEqual([...new Uint8Array(b, 0, 60)], new Array(60).fill(0));
    assert.deepEqual([...new Uint8Array(pool.takeZeroed(16))], new Array(16).fill(0), 'a new one');
  });

  test('refuses sizes that are not byte counts', () => {
    const pool = new BufferPool();
    for (const bad of [-1, 1.5, NaN]) assert.throws(() => pool.take(bad), /non-negative integer/);
    assert.throws(() => new BufferPool(-1), /maxKeptBytes/);
  });

  test('decodeImage with a pool: the pixels are a view of a pooled buffer, the same values as without one', async () => {
    const pool = new BufferPool();
    const { width, height, data } = chestPixels({ width: 160, height: 128, rightOpacity: 0.5 });
    const dicom = makeDicom({ rows: height, cols: width, pixels: Uint16Array.from(data, (v) => Math.round(v * 4095)), windowCenter: 2048, windowWidth: 4096 });
    for (const bytes of [dicom, await chestPng({ rightOpacity: 0.3 })]) {
      const plain = await decodeImage(bytes);
      const big = pool.take(plain.data.byteLength + 64);
      pool.give(big);
      const pooled = await decodeImage(bytes, { pool });
      assert.equal(pooled.data.buffer, big, 'the pooled buffer, larger than the image');
      assert.equal(pooled.data.length, plain.data.length);
      assert.deepEqual(Array.from(pooled.data), Array.from(plain.data));
    }
  });
});

/** A pool that overwrites what it is given: a buffer read after it was given back gives other outputs. */
class PoisoningPool extends BufferPool {
  override give(...buffers: ArrayBufferLike[]): void {
    for (const b of buffers) new Uint8Array(b).fill(0xa5);
    super.give(...buffers);
  }
}

describe('analyseImage with a shared pool', () => {
  test('side by side and one after another: the same outputs as with no reuse; nothing returned refers to a pooled buffer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-pool-'));
    const model = await loadModel(writeTinyModel(join(dir, 'model'), { size: 128 }), { threads: 1 });
    try {
      const { width, height, data } = chestPixels({ width: 240, height: 200, rightOpacity: 0.5 });
      const inputs = [
        makeDicom({ rows: height, cols: width, pixels: Uint16Array.from(data, (v) => Math.round(v * 4095)), windowCenter: 2048, windowWidth: 4096 }),
        await chestPng({ rightOpacity: 0.3, width: 300, height: 260 }),
        await chestJpeg({ rightOpacity: 0.7, width: 200, height: 180 }),
      ];
      // With the DICOM outputs: the Secondary Capture reads the overlay's pooled pixels.
      const dicomOutputs = { identity: 'off' as const, severity: loadSeverityConfig() };
      const run = (bytes: Buffer, pool: BufferPool) => analyseImage(bytes, { model, pseudonymKey: 'k'.repeat(32), seed: 'pool', now: new Date(0), pool, dicomOutputs });
      const outputs = (a: ImageAnalysis) => {
        assert.equal(a.status, 'SEGMENTED');
        if (a.status !== 'SEGMENTED') return undefined;
        assert.ok(!('overlayRgb' in a.pictures) && !('image' in a), 'no pixels returned');
        const b64 = (o: object) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Buffer.from(v as Uint8Array).toString('base64')]));
        return { counts: a.counts, pictures: b64(a.pictures), dicom: a.dicom && b64(a.dicom) };
      };
      // The reference: every buffer new (a pool that keeps nothing).
      const expected: Array<ReturnType<typeof outputs>> = [];
      for (const bytes of inputs) expected.push(outputs(await run(bytes, new BufferPool(0))));
      const shared = new PoisoningPool();
      for (let round = 0; round < 3; round++) {
        // Side by side (each takes its own buffers), then one after another (each reuses the last one's).
        const together = await Promise.all([...inputs, ...inputs].map((b) => run(b, shared)));
        together.forEach((a, i) => assert.deepEqual(outputs(a), expected[i % inputs.length], `side by side, round ${round}, input ${i}`));
        for (const [i, bytes] of inputs.entries()) assert.deepEqual(outputs(await run(bytes, shared)), expected[i], `in turn, round ${round}, input ${i}`);
      }
      assert.ok(shared.keptBytes > 0, 'the analyses gave their buffers back');
      // An image refused after it was decoded (a blank picture: no lungs) gives its pixels back too.
      const fresh = new BufferPool();
      const blank = await run(await sharp({ create: { width: 200, height: 200, channels: 3, background: '#808080' } }).greyscale().png().toBuffer(), fresh);
      assert.ok(blank.status === 'FAILED' && blank.meta, 'refused after decoding');
      assert.equal(fresh.keptBytes, 200 * 200 * 2);
    } finally {
      await model.release();
    }
  }, 60_000);
});
