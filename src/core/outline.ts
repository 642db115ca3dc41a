/**
 * The lungs' outlines drawn on the overlay: the pixels of a mask within r pixels, along their row or their column,
 * of a pixel outside the mask or of the image's edge.
 *
 * Computed on the rows' foreground runs (core/upsample.ts forEachUpsampledRow), not on pixels: a pixel is inside
 * (not on the outline) when it is at least r pixels from its run's ends (the run shrunk by r at both ends) and its
 * column is foreground on the r rows above and below it (the intersection of the 2r + 1 rows' runs). A lung's row
 * is one to three runs, so a 2048-pixel overlay's outline costs a few thousand run operations instead of an
 * overlay-size mask per lung and four passes over it (~8 ms per lung on bench/'s DICOM).
 */
import { forEachUpsampledRow } from './upsample';
import type { Mask } from './types';

/** Runs as [start, end) pairs: runs[2k], runs[2k + 1] for k < n, sorted, disjoint and not touching. */
type Runs = Int32Array;

/**
 * visit(y, runs, n) for each row y of the outline of `mask` upsampled to width x height (as upsampleMask) that has
 * outline pixels, in order; runs as forEachUpsampledRow's, reused between calls. r >= 1.
 */
export function forEachOutlineRow(mask: Mask, width: number, height: number, r: number, visit: (y: number, runs: Runs, n: number) => void): void {
  if (!Number.isInteger(r) || r < 1) throw new Error(`outline: the radius must be a positive integer, got ${r}`);
  // Every row's runs, flat: row y's are rows[off[y] .. off[y + 1]).
  const off = new Int32Array(height + 1);
  let rows = new Int32Array(4 * height);
  let used = 0;
  forEachUpsampledRow(mask, width, height, (y, runs, n) => {
    if (used + 2 * n > rows.length) {
      const grown = new Int32Array(Math.max(2 * rows.length, used + 2 * n));
      grown.set(rows.subarray(0, used));
      rows = grown;
    }
    rows.set(runs.subarray(0, 2 * n), used);
    used += 2 * n;
    off[y + 1] = used;
  });
  let a: Runs = new Int32Array(width + 2); // scratch: the row's inside so far
  let b: Runs = new Int32Array(width + 2);
  const out = new Int32Array(2 * width + 2);
  for (let y = 0; y < height; y++) {
    const from = off[y], to = off[y + 1];
    if (from === to) continue;
    // Inside along the row: each run shrunk by r at both ends.
    let n = 0;
    for (let k = from; k < to; k += 2) {
      const s = rows[k] + r, e = rows[k + 1] - r;
      if (s < e) { a[2 * n] = s; a[2 * n + 1] = e; n++; }
    }
    // Inside along the column: foreground on rows y - r .. y + r, all inside the image.
    if (y < r || y + r >= height) n = 0;
    for (let yy = y - r; yy <= y + r && n > 0; yy++) {
      if (yy === y) continue;
      n = intersect(a, n, rows, off[yy], off[yy + 1], b);
      [a, b] = [b, a];
    }
    // The outline: the row's runs less the inside (which lies within them).
    const m = subtract(rows, from, to, a, n, out);
    if (m > 0) visit(y, out, m);
  }
}

/** a[0 .. 2n) ∩ c[from .. to) into dst; returns the number of runs. */
function intersect(a: Runs, n: number, c: Runs, from: number, to: number, dst: Runs): number {
  let i = 0, j = from, m = 0;
  while (i < 2 * n && j < to) {
    const s = Math.max(a[i], c[j]), e = Math.min(a[i + 1], c[j + 1]);
    if (s < e) { dst[2 * m] = s; dst[2 * m + 1] = e; m++; }
    if (a[i + 1] < c[j + 1]) i += 2;
    else j += 2;
  }
  return m;
}

/** c[from .. to) less a[0 .. 2n), where every run of a lies within one run of c, into dst; returns the number of runs. */
function subtract(c: Runs, from: number, to: number, a: Runs, n: number, dst: Runs): number {
  let m = 0, i = 0;
  for (let j = from; j < to; j += 2) {
    let s = c[j];
    const e = c[j + 1];
    for (; i < 2 * n && a[i] < e; i += 2) {
      if (a[i] > s) { dst[2 * m] = s; dst[2 * m + 1] = a[i]; m++; }
      s = a[i + 1];
    }
    if (s < e) { dst[2 * m] = s; dst[2 * m + 1] = e; m++; }
  }
  return m;
}

/** The outline of a mask at its own size, as a 0/1 picture (forEachOutlineRow). */
export function outline(m: Mask, r: number): Uint8Array {
  const out = new Uint8Array(m.width * m.height);
  forEachOutlineRow(m, m.width, m.height, r, (y, runs, n) => {
    for (let k = 0; k < 2 * n; k += 2) out.fill(1, y * m.width + runs[k], y * m.width + runs[k + 1]);
  });
  return out;
}
