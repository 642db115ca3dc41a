/**
 * Resizing a binary mask from the working grid (core/postprocess.ts) to the image's size: bilinear interpolation
 * of the 0/1 mask, thresholded at 1/2, so edges are smooth lines rather than the grid's staircase.
 *
 * Written here rather than done with sharp because a binary mask allows a shortcut no image library takes: an
 * output pixel whose four source neighbours agree is that value, so each output row is filled run by run
 * (TypedArray.fill) and only the pixels on an edge are interpolated. On a 2500x3000 film that is a few ms per
 * mask against ~90 ms for sharp's resize + threshold (bench/). The result is identical to the plain per-pixel
 * formula (test/upsample.test.ts checks it against that formula on random masks).
 */
import type { Mask, SegmentationMasks } from './types';

interface Axis {
  /** First source index of each output position. */
  i0: Int32Array;
  /** Weight of the second source index (i0 + 1, clamped). */
  f: Float32Array;
}

/** Source positions for n -> m with half-pixel centres (as PyTorch align_corners=False, sharp's 'linear'). */
export function resampleAxis(src: number, dst: number): Axis {
  const i0 = new Int32Array(dst);
  const f = new Float32Array(dst);
  const scale = src / dst;
  for (let d = 0; d < dst; d++) {
    let s = (d + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    if (s > src - 1) s = src - 1;
    const a = Math.floor(s);
    i0[d] = a;
    f[d] = s - a;
  }
  return { i0, f };
}

/**
 * The mask at width x height: out = [bilinear(mask) >= 0.5]. Same size: a copy.
 * @param on the value written for foreground (1; 255 gives the bytes of a black-and-white picture directly)
 * @throws Error when a size is not a positive integer or the mask's data does not match its size.
 */
export function upsampleMask(mask: Mask, width: number, height: number, on = 1): Mask {
  const { width: w, height: h, data: src } = mask;
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`upsampleMask: ${name} must be a positive integer, got ${v}`);
  }
  if (src.length !== w * h) throw new Error(`upsampleMask: mask data has ${src.length} values, expected ${w}x${h}`);
  if (w === width && h === height) return { width, height, data: on === 1 ? src.slice() : src.map((v) => (v ? on : 0)) };
  const out = new Uint8Array(width * height);
  const ax = resampleAxis(w, width);
  const ay = resampleAxis(h, height);
  // Output columns grouped by source cell: cell a covers output x in [start[a], start[a + 1]).
  const start = new Int32Array(w + 1).fill(width);
  for (let x = width - 1; x >= 0; x--) start[ax.i0[x]] = x;
  for (let a = w - 1; a >= 0; a--) if (start[a] > start[a + 1]) start[a] = start[a + 1];
  for (let y = 0; y < height; y++) {
    const y0 = ay.i0[y];
    const fy = ay.f[y];
    const r0 = y0 * w;
    const r1 = Math.min(y0 + 1, h - 1) * w;
    const o = y * width;
    for (let a = 0; a < w; a++) {
      const x0 = start[a];
      const x1 = start[a + 1];
      if (x0 === x1) continue;
      const b = a + 1 < w ? a + 1 : a;
      const p = src[r0 + a] ? 1 : 0, q = src[r0 + b] ? 1 : 0, r = src[r1 + a] ? 1 : 0, s = src[r1 + b] ? 1 : 0;
      const sum = p + q + r + s;
      if (sum === 0) continue;
      if (sum === 4) { out.fill(on, o + x0, o + x1); continue; }
      const left = p * (1 - fy) + r * fy;
      const right = q * (1 - fy) + s * fy;
      for (let x = x0; x < x1; x++) {
        const fx = ax.f[x];
        if (left * (1 - fx) + right * fx >= 0.5) out[o + x] = on;
      }
    }
  }
  return { width, height, data: out };
}

/** All three masks at width x height (see upsampleMask). */
export function upsampleMasks(masks: SegmentationMasks, width: number, height: number): SegmentationMasks {
  return {
    lungRight: upsampleMask(masks.lungRight, width, height),
    lungLeft: upsampleMask(masks.lungLeft, width, height),
    opacity: upsampleMask(masks.opacity, width, height),
  };
}
