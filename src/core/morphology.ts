/**
 * Binary-mask operations used to clean the model's masks: connected components and hole filling.
 * Written here because they are a few dozen lines over typed arrays and no maintained Node package does
 * 2-D binary morphology on raw buffers without pulling in an image-processing runtime.
 */
import type { Mask } from './types';

/**
 * Scratch arrays of the functions below, kept between calls: each image's masks would otherwise make ~6 MB of new
 * arrays, and new memory is what makes V8 collect (core/pool.ts). Safe as module state because every user is
 * synchronous: none holds them across an await, so no two calls ever share them.
 */
let scratchA = new Int32Array(0);
let scratchB = new Int32Array(0);
let scratchBytes = new Uint8Array(0);
function scratchInts(n: number): [Int32Array, Int32Array] {
  if (scratchA.length < n) {
    scratchA = new Int32Array(n);
    scratchB = new Int32Array(n);
  }
  return [scratchA.subarray(0, n), scratchB.subarray(0, n)];
}
function scratchZeroBytes(n: number): Uint8Array {
  if (scratchBytes.length < n) scratchBytes = new Uint8Array(n);
  const out = scratchBytes.subarray(0, n);
  out.fill(0);
  return out;
}

/** Labels 4-connected components; returns labels (0 = background) and the size of each label. */
export function labelComponents(mask: Mask): { labels: Int32Array; sizes: number[] } {
  const n = mask.width * mask.height;
  const labels = new Int32Array(n);
  return { labels, sizes: labelInto(mask, labels, new Int32Array(n)) };
}

/** labelComponents into `labels` (all zero, one per pixel) with `stack` (as long) as its work space; the sizes. */
function labelInto(mask: Mask, labels: Int32Array, stack: Int32Array): number[] {
  const { width: w, height: h, data } = mask;
  const sizes: number[] = [0];
  let next = 0;
  for (let start = 0; start < data.length; start++) {
    if (!data[start] || labels[start]) continue;
    next++;
    let size = 0;
    let sp = 0;
    stack[sp++] = start;
    labels[start] = next;
    while (sp > 0) {
      const p = stack[--sp];
      size++;
      const x = p % w;
      if (x > 0 && data[p - 1] && !labels[p - 1]) { labels[p - 1] = next; stack[sp++] = p - 1; }
      if (x < w - 1 && data[p + 1] && !labels[p + 1]) { labels[p + 1] = next; stack[sp++] = p + 1; }
      if (p >= w && data[p - w] && !labels[p - w]) { labels[p - w] = next; stack[sp++] = p - w; }
      if (p < w * (h - 1) && data[p + w] && !labels[p + w]) { labels[p + w] = next; stack[sp++] = p + w; }
    }
    sizes.push(size);
  }
  return sizes;
}

/** Keeps only the largest connected component (an empty mask stays empty). */
export function keepLargestComponent(mask: Mask): Mask {
  const [labels, stack] = scratchInts(mask.width * mask.height);
  labels.fill(0);
  const sizes = labelInto(mask, labels, stack);
  if (sizes.length <= 2) return mask;
  let best = 1;
  for (let i = 2; i < sizes.length; i++) if (sizes[i] > sizes[best]) best = i;
  const data = new Uint8Array(mask.data.length);
  for (let i = 0; i < data.length; i++) data[i] = labels[i] === best ? 1 : 0;
  return { width: mask.width, height: mask.height, data };
}

/** Bounding box of the foreground [x0, y0, x1, y1] (inclusive), or undefined for an empty mask. */
export function boundingBox(mask: Mask): [number, number, number, number] | undefined {
  const { width: w, height: h, data } = mask;
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let first = -1, last = -1;
    for (let x = 0; x < w; x++) if (data[row + x]) { if (first < 0) first = x; last = x; }
    if (first < 0) continue;
    if (y < y0) y0 = y;
    y1 = y;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
  }
  return x1 < 0 ? undefined : [x0, y0, x1, y1];
}

/**
 * Fills holes: background regions not 4-connected to the image border become foreground. Only the
 * foreground's bounding box plus a one-pixel ring is searched: everything outside the box is background
 * that reaches the border, and the ring (or the image edge) seeds the flood fill of the outside.
 */
export function fillHoles(mask: Mask): Mask {
  const { width: w, height: h } = mask;
  const data = mask.data.slice();
  const box = boundingBox(mask);
  if (!box) return { width: w, height: h, data };
  const bx0 = Math.max(0, box[0] - 1), by0 = Math.max(0, box[1] - 1);
  const bx1 = Math.min(w - 1, box[2] + 1), by1 = Math.min(h - 1, box[3] + 1);
  const bw = bx1 - bx0 + 1, bh = by1 - by0 + 1;
  const outside = scratchZeroBytes(bw * bh);
  const [stack] = scratchInts(bw * bh);
  let sp = 0;
  const seed = (lx: number, ly: number) => {
    const l = ly * bw + lx;
    if (!outside[l] && !mask.data[(ly + by0) * w + lx + bx0]) { outside[l] = 1; stack[sp++] = l; }
  };
  for (let x = 0; x < bw; x++) { seed(x, 0); seed(x, bh - 1); }
  for (let y = 0; y < bh; y++) { seed(0, y); seed(bw - 1, y); }
  while (sp > 0) {
    const l = stack[--sp];
    const lx = l % bw, ly = (l - lx) / bw;
    if (lx > 0) seed(lx - 1, ly);
    if (lx < bw - 1) seed(lx + 1, ly);
    if (ly > 0) seed(lx, ly - 1);
    if (ly < bh - 1) seed(lx, ly + 1);
  }
  for (let ly = 0; ly < bh; ly++) {
    for (let lx = 0; lx < bw; lx++) if (!outside[ly * bw + lx]) data[(ly + by0) * w + lx + bx0] = 1;
  }
  return { width: w, height: h, data };
}

export const countOnes = (m: Mask): number => {
  let n = 0;
  for (let i = 0; i < m.data.length; i++) n += m.data[i];
  return n;
};
