/**
 * Stored DICOM pixel values -> display values in [0, 1] (0 = black), stored as 16 bits (core/types.ts GrayImage).
 *
 * Hand-written (no library in the dependency set applies the DICOM grayscale pipeline to raw samples):
 * stored value (masked to BitsStored below HighBit, sign-extended when PixelRepresentation = 1)
 * -> Modality LUT (RescaleSlope/Intercept, or the Modality LUT Sequence) -> VOI (WindowCenter/Width
 * with VOILUTFunction, else the VOI LUT Sequence, else - or when the tags' window would leave nearly
 * every pixel black or white - a 0.5-99.5 percentile window) -> MONOCHROME1 inversion.
 *
 * Every stored value maps to one output, so the whole chain is precomputed into a lookup table of
 * 2^BitsStored entries and applied with one table read per pixel (no per-pixel allocation or math).
 */

import { toDisplay16 } from '../gray';

export type VoiFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

export interface GrayscaleParams {
  bitsStored: number;
  /** Bit position of the most significant stored bit; defaults to bitsStored - 1. */
  highBit: number;
  signed: boolean;
  slope: number;
  intercept: number;
  /** Modality LUT Sequence (first item): replaces slope/intercept when present. */
  modalityLut?: VoiLut;
  /** From the DICOM tags; when absent (or unusable) a percentile window is computed. */
  window?: { center: number; width: number; fn: VoiFunction };
  /** VOI LUT Sequence (first item), used when there is no window. */
  voiLut?: VoiLut;
  invert: boolean;
  /** Stored value marking padding (outside the exposed area): left out of the percentile window. */
  paddingValue?: number;
}

export interface VoiLut {
  /** Input value (stored value for a Modality LUT, modality value for a VOI LUT) of the first entry. */
  firstMapped: number;
  /** Output bits of the entries (the entries span 0 .. 2^bits - 1). */
  bits: number;
  data: ArrayLike<number>;
}

export interface DisplayResult {
  /** 16-bit display values (core/types.ts GrayImage): round(display * 65535), display in [0, 1]. */
  data: Uint16Array;
  window: { center: number; width: number; source: 'dicom' | 'percentile' };
}

/** Percentiles of the percentile window fallback. */
export const PERCENTILE_LO = 0.005;
export const PERCENTILE_HI = 0.995;

/** @param into where to write the display values (count of them), e.g. a pooled buffer (core/pool.ts); else new. */
export function storedToDisplay(raw: Uint8Array | Uint16Array, count: number, p: GrayscaleParams, into?: Uint16Array): DisplayResult {
  const bits = p.bitsStored;
  const size = 1 << bits;
  const mask = size - 1;
  const shift = Math.max(0, p.highBit + 1 - bits);
  const half = size >> 1;
  const storedOf = (idx: number) => (p.signed && idx >= half ? idx - size : idx);
  const mlut = p.modalityLut && p.modalityLut.data.length > 0 ? p.modalityLut : undefined;
  const modalityOfStored = mlut
    ? (v: number) => {
      const i = v - mlut.firstMapped;
      return mlut.data[i < 0 ? 0 : i >= mlut.data.length ? mlut.data.length - 1 : i];
    }
    : (v: number) => v * p.slope + p.intercept;
  const modality = (idx: number) => modalityOfStored(storedOf(idx));

  let hist: Uint32Array | undefined;
  const histogram = () => (hist ??= raw instanceof Uint16Array ? histogram16(raw, count, shift, mask) : histogram8(raw, count, shift, mask));
  const padIdx = p.paddingValue === undefined ? -1 : p.paddingValue & mask;

  let window: DisplayResult['window'] | undefined;
  let map: ((x: number) => number) | undefined;
  if (p.window && Number.isFinite(p.window.center) && Number.isFinite(p.window.width) && p.window.width > 0) {
    const { center: c, width: w, fn } = p.window;
    window = { center: c, width: w, source: 'dicom' };
    map = voiFunction(c, w, fn);
  } else if (p.voiLut && p.voiLut.data.length > 0) {
    const { firstMapped, bits, data } = p.voiLut;
    const n = data.length;
    const scale = 1 / (2 ** bits - 1);
    window = { center: firstMapped + n / 2, width: n, source: 'dicom' };
    map = (x) => {
      const i = Math.round(x) - firstMapped;
      return clamp01(data[i < 0 ? 0 : i >= n ? n - 1 : i] * scale);
    };
  }
  // The display value of each stored value, as 16 bits of the float32 it was before (so the model's input is the
  // same to the bit as when the image was floats: core/preprocess.ts quantised those floats the same way).
  const lutOf = (f: (x: number) => number) => {
    const lut = new Uint16Array(size);
    for (let idx = 0; idx < size; idx++) {
      const y = f(modality(idx));
      lut[idx] = toDisplay16(Math.fround(p.invert ? 1 - y : y));
    }
    return lut;
  };
  if (into && into.length !== count) throw new Error(`storedToDisplay: into holds ${into.length} values, expected ${count}`);
  const out = into ?? new Uint16Array(count);
  if (window && map) {
    // The tags' window is applied while the histogram that checks it is counted: one pass over the pixels when the
    // window is right (nearly always), a second only when it is not.
    hist = new Uint32Array(size);
    if (raw instanceof Uint16Array) applyLutCounting16(raw, out, lutOf(map), shift, mask, hist);
    else applyLutCounting8(raw, out, lutOf(map), shift, mask, hist);
    // A window from the tags that leaves (almost) every pixel black or white is wrong for this image
    // (typically left over from a bit-depth conversion): the percentile window is used instead.
    if (!saturated(hist, padIdx, (idx) => map!(modality(idx)))) return { data: out, window };
  }
  const { lo, hi } = percentileWindow(histogram(), count, padIdx, p.signed, storedOf);
  const mlo = Math.min(modalityOfStored(lo), modalityOfStored(hi));
  const mhi = Math.max(modalityOfStored(lo), modalityOfStored(hi));
  const span = mhi - mlo;
  const percentile: DisplayResult['window'] = { center: (mlo + mhi) / 2, width: span, source: 'percentile' };
  const lut = lutOf(span > 0 ? (x) => clamp01((x - mlo) / span) : (x) => (x > mlo ? 1 : 0));
  if (raw instanceof Uint16Array) applyLut16(raw, out, lut, shift, mask);
  else applyLut8(raw, out, lut, shift, mask);
  return { data: out, window: percentile };
}

// One monomorphic loop per sample type: V8 keeps each to a plain typed-array load.
function applyLut16(raw: Uint16Array, out: Uint16Array, lut: Uint16Array, shift: number, mask: number): void {
  const n = out.length;
  if (shift === 0) for (let i = 0; i < n; i++) out[i] = lut[raw[i] & mask];
  else for (let i = 0; i < n; i++) out[i] = lut[(raw[i] >> shift) & mask];
}
function applyLut8(raw: Uint8Array, out: Uint16Array, lut: Uint16Array, shift: number, mask: number): void {
  const n = out.length;
  if (shift === 0) for (let i = 0; i < n; i++) out[i] = lut[raw[i] & mask];
  else for (let i = 0; i < n; i++) out[i] = lut[(raw[i] >> shift) & mask];
}
function applyLutCounting16(raw: Uint16Array, out: Uint16Array, lut: Uint16Array, shift: number, mask: number, hist: Uint32Array): void {
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const v = (raw[i] >> shift) & mask;
    out[i] = lut[v];
    hist[v]++;
  }
}
function applyLutCounting8(raw: Uint8Array, out: Uint16Array, lut: Uint16Array, shift: number, mask: number, hist: Uint32Array): void {
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const v = (raw[i] >> shift) & mask;
    out[i] = lut[v];
    hist[v]++;
  }
}

/** DICOM PS3.3 C.11.2.1.2 VOI LUT functions, mapped to [0, 1]. */
export function voiFunction(c: number, w: number, fn: VoiFunction): (x: number) => number {
  switch (fn) {
    case 'LINEAR_EXACT':
      return (x) => (x <= c - w / 2 ? 0 : x > c + w / 2 ? 1 : (x - c) / w + 0.5);
    case 'SIGMOID':
      return (x) => 1 / (1 + Math.exp((-4 * (x - c)) / w));
    case 'LINEAR':
    default: {
      if (w < 1) w = 1; // LINEAR requires width >= 1 (C.11.2.1.2.1); narrower means a hard threshold
      const lo = c - 0.5 - (w - 1) / 2;
      const hi = c - 0.5 + (w - 1) / 2;
      return (x) => (x <= lo ? 0 : x > hi ? 1 : (x - (c - 0.5)) / (w - 1) + 0.5);
    }
  }
}

/** Whether fewer than 1% of the (non-padding) pixels land strictly inside the display range. */
function saturated(hist: Uint32Array, padIdx: number, display: (idx: number) => number): boolean {
  let total = 0;
  let inside = 0;
  for (let idx = 0; idx < hist.length; idx++) {
    const h = hist[idx];
    if (h === 0 || idx === padIdx) continue;
    total += h;
    const y = display(idx);
    if (y > 0.002 && y < 0.998) inside += h;
  }
  return total > 0 && inside < total * 0.01;
}

/** 0.5 and 99.5 percentiles of the stored values (as stored values), from their histogram. */
function percentileWindow(
  hist: Uint32Array, count: number, padIdx: number, signed: boolean, storedOf: (idx: number) => number,
): { lo: number; hi: number } {
  const size = hist.length;
  const mask = size - 1;
  let n = count;
  const padCount = padIdx >= 0 ? hist[padIdx] : 0;
  if (padCount > 0 && padCount < count) n -= padCount;
  const skip = padCount > 0 && padCount < count ? padIdx : -1;
  // Walk the stored values in increasing order (for signed data: the negative half first).
  const half = size >> 1;
  const order = (k: number) => (signed ? (k + half) & mask : k);
  const loTarget = Math.max(1, Math.ceil(n * PERCENTILE_LO));
  const hiTarget = Math.max(1, Math.ceil(n * PERCENTILE_HI));
  let cum = 0;
  let lo: number | undefined;
  let hi: number | undefined;
  for (let k = 0; k < size; k++) {
    const idx = order(k);
    if (idx === skip) continue;
    cum += hist[idx];
    if (lo === undefined && cum >= loTarget) lo = storedOf(idx);
    if (cum >= hiTarget) {
      hi = storedOf(idx);
      break;
    }
  }
  return { lo: lo ?? 0, hi: hi ?? lo ?? 0 };
}

function histogram16(raw: Uint16Array, count: number, shift: number, mask: number): Uint32Array {
  const hist = new Uint32Array(mask + 1);
  for (let i = 0; i < count; i++) hist[(raw[i] >> shift) & mask]++;
  return hist;
}
function histogram8(raw: Uint8Array, count: number, shift: number, mask: number): Uint32Array {
  const hist = new Uint32Array(mask + 1);
  for (let i = 0; i < count; i++) hist[(raw[i] >> shift) & mask]++;
  return hist;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
