/**
 * Synthetic "chests" for pipeline tests: bright body, two dark lung fields, and a mid-grey opacity
 * patch covering a known share of the patient's right lung (the image's left half). Paired with the
 * tiny intensity model (tiny-model.ts) they give known answers through the real pipeline.
 */
import sharp from 'sharp';
import type { SegmentationMasks } from '../../src/core/types';

export interface ChestSpec {
  width?: number;
  height?: number;
  /** Share (0-1) of the right lung's rows, from the bottom, filled with opacity. */
  rightOpacity?: number;
}

export function chestPixels(spec: ChestSpec = {}): { width: number; height: number; data: Float32Array } {
  const W = spec.width ?? 320;
  const H = spec.height ?? 256;
  const data = new Float32Array(W * H).fill(0.85);
  const top = Math.round(H * 0.15);
  const bottom = Math.round(H * 0.85);
  const lungs = [[Math.round(W * 0.1), Math.round(W * 0.4)], [Math.round(W * 0.6), Math.round(W * 0.9)]];
  const opacityFrom = bottom - Math.round((bottom - top) * (spec.rightOpacity ?? 0));
  for (let y = top; y < bottom; y++) {
    for (const [i, [x0, x1]] of lungs.entries()) {
      for (let x = x0; x < x1; x++) data[y * W + x] = i === 0 && y >= opacityFrom ? 0.45 : 0.1;
    }
  }
  return { width: W, height: H, data };
}

export async function chestPng(spec: ChestSpec = {}, bits: 8 | 16 = 8): Promise<Buffer> {
  const { width, height, data } = chestPixels(spec);
  if (bits === 16) {
    const u16 = Uint16Array.from(data, (v) => Math.round(v * 65535));
    return sharp(u16, { raw: { width, height, channels: 1 } }).toColourspace('grey16').png().toBuffer();
  }
  return sharp(Buffer.from(Uint8Array.from(data, (v) => Math.round(v * 255))), { raw: { width, height, channels: 1 } }).png().toBuffer();
}

export async function chestJpeg(spec: ChestSpec = {}): Promise<Buffer> {
  const { width, height, data } = chestPixels(spec);
  return sharp(Buffer.from(Uint8Array.from(data, (v) => Math.round(v * 255))), { raw: { width, height, channels: 1 } }).jpeg({ quality: 95 }).toBuffer();
}

/** Rectangles as masks (right lung, left lung, opacity) on a w x h image of at least 170 x 140: enough to give
 * every SEG frame its own content. */
export function boxMasks(w: number, h: number): SegmentationMasks {
  const box = (x0: number, x1: number, y0: number, y1: number) => {
    const data = new Uint8Array(w * h);
    for (let y = y0; y < y1; y++) data.fill(1, y * w + x0, y * w + x1);
    return { width: w, height: h, data };
  };
  return { lungRight: box(20, 80, 20, 140), lungLeft: box(110, 170, 20, 140), opacity: box(30, 70, 80, 120) };
}
