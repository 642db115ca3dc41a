/**
 * Resizing a binary mask from the working grid (core/postprocess.ts) to the image's size: bilinear interpolation
 * of the 0/1 mask, thresholded at 1/2, so edges are smooth lines rather than the grid's staircase.
 *
 * Written here rather than done with sharp because a binary mask allows a shortcut no image library takes: an
 * output pixel whose four source neighbours agree is that value, so each output row is filled run by run
 * (TypedArray.fill, runs found once per source row pair) and only the pixels on an edge are interpolated. On a 2500x3000 film that is a few ms per
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

/** width x height as is, or scaled down (aspect kept, whole pixels) so that the long side is maxSide. */
export function fitLongSide(width: number, height: number, maxSide: number): { width: number; height: number } {
  const long = Math.max(width, height);
  if (long <= maxSide) return { width, height };
  const k = maxSide / long;
  return { width: Math.max(1, Math.round(width * k)), height: Math.max(1, Math.round(height * k)) };
}

/**
 * The mask at width x height: out = [bilinear(mask) >= 0.5]. Same size: a copy.
 * @param on the value written for foreground (1; 255 gives the bytes of a black-and-white picture directly)
 * @throws Error when a size is not a positive integer or the mask's data does not match its size.
 */
export function upsampleMask(mask: Mask, width: number, height: number, on = 1): Mask {
  checkSizes(mask, width, height);
  const out = new Uint8Array(width * height);
  if (mask.width === width && mask.height === height) {
    const src = mask.data;
    for (let i = 0; i < src.length; i++) if (src[i]) out[i] = on;
    return { width, height, data: out };
  }
  forEachUpsampledRow(mask, width, height, (y, runs, n) => {
    const o = y * width;
    for (let k = 0; k < 2 * n; k += 2) out.fill(on, o + runs[k], o + runs[k + 1]);
  });
  return { width, height, data: out };
}

function checkSizes(mask: Mask, width: number, height: number): void {
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`upsampleMask: ${name} must be a positive integer, got ${v}`);
  }
  if (mask.data.length !== mask.width * mask.height) throw new Error(`upsampleMask: mask data has ${mask.data.length} values, expected ${mask.width}x${mask.height}`);
}

/**
 * The rows of upsampleMask(mask, width, height) as foreground runs, without the picture: visit(y, runs, n) for every
 * output row in order, runs[2k] .. runs[2k + 1] (end exclusive) for k < n, sorted and separated by background. For
 * writers that pack bits (1-bit PNG, DICOM SEG frames): a 2500x3000 mask is a few hundred runs, not 7.5 megapixels.
 * `runs` is reused between calls.
 */
export function forEachUpsampledRow(mask: Mask, width: number, height: number, visit: (y: number, runs: Int32Array, n: number) => void): void {
  checkSizes(mask, width, height);
  const { width: w, height: h, data: src } = mask;
  const ax = resampleAxis(w, width);
  const ay = resampleAxis(h, height);
  // Output columns grouped by source cell: cell a covers output x in [start[a], start[a + 1]).
  const start = new Int32Array(w + 1).fill(width);
  for (let x = width - 1; x >= 0; x--) start[ax.i0[x]] = x;
  for (let a = w - 1; a >= 0; a--) if (start[a] > start[a + 1]) start[a] = start[a + 1];
  // Per source row pair (y0, y0 + 1), shared by the ~scale output rows between them, the cells in order: a run of
  // all-foreground cells (kind FULL: output columns x0..x1) or one cell on an edge (kind EDGE: cell a, interpolated
  // pixel by pixel on each output row).
  const FULL = 0, EDGE = 1;
  const items = new Int32Array(3 * w + 3);
  const runs = new Int32Array(2 * width + 2);
  let nItems = 0;
  let pairOf = -1;
  for (let y = 0; y < height; y++) {
    const y0 = ay.i0[y];
    const r0 = y0 * w;
    const r1 = Math.min(y0 + 1, h - 1) * w;
    if (y0 !== pairOf) {
      pairOf = y0;
      nItems = 0;
      let run = -1;
      for (let a = 0; a < w; a++) {
        const x0 = start[a];
        if (x0 === start[a + 1]) continue;
        const b = a + 1 < w ? a + 1 : a;
        const sum = (src[r0 + a] ? 1 : 0) + (src[r0 + b] ? 1 : 0) + (src[r1 + a] ? 1 : 0) + (src[r1 + b] ? 1 : 0);
        if (sum === 4) {
          if (run < 0) run = x0;
          continue;
        }
        if (run >= 0) {
          items[nItems++] = FULL; items[nItems++] = run; items[nItems++] = x0;
          run = -1;
        }
        if (sum > 0) {
          items[nItems++] = EDGE; items[nItems++] = a; items[nItems++] = 0;
        }
      }
      if (run >= 0) {
        items[nItems++] = FULL; items[nItems++] = run; items[nItems++] = width;
      }
    }
    const fy = ay.f[y];
    // Runs so far: 2n entries; `end` is the last run's end (-1: none), extended while the next start equals it.
    let n = 0;
    let end = -1;
    for (let k = 0; k < nItems; k += 3) {
      if (items[k] === FULL) {
        const x0 = items[k + 1], x1 = items[k + 2];
        if (x0 === end) runs[2 * n - 1] = x1;
        else { runs[2 * n] = x0; runs[2 * n + 1] = x1; n++; }
        end = x1;
        continue;
      }
      const a = items[k + 1];
      const b = a + 1 < w ? a + 1 : a;
      const left = (src[r0 + a] ? 1 : 0) * (1 - fy) + (src[r1 + a] ? 1 : 0) * fy;
      const right = (src[r0 + b] ? 1 : 0) * (1 - fy) + (src[r1 + b] ? 1 : 0) * fy;
      for (let x = start[a], x1 = start[a + 1]; x < x1; x++) {
        const fx = ax.f[x];
        if (left * (1 - fx) + right * fx < 0.5) continue;
        if (x === end) runs[2 * n - 1] = x + 1;
        else { runs[2 * n] = x; runs[2 * n + 1] = x + 1; n++; }
        end = x + 1;
      }
    }
    visit(y, runs, n);
  }
}

/** All three masks at width x height (see upsampleMask). */
export function upsampleMasks(masks: SegmentationMasks, width: number, height: number): SegmentationMasks {
  return {
    lungRight: upsampleMask(masks.lungRight, width, height),
    lungLeft: upsampleMask(masks.lungLeft, width, height),
    opacity: upsampleMask(masks.opacity, width, height),
  };
}
