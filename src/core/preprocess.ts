/**
 * Turns a decoded image into the model's input tensor: resize to SxS ("stretch", as in training) and
 * normalise. Resizing goes through sharp at 16 bits per pixel so the DICOM's precision survives
 * (sharp's raw float input is not usable for resize; 1/65535 steps are far below what the model resolves).
 */
import sharp from 'sharp';
import { withScratch } from './scratch';
import type { GrayImage, ModelManifest } from './types';

/**
 * Quantise a [0,1] float image to 16-bit gray: round(v * 65535), written as truncation of v * 65535 + 0.5 (the same
 * for the positive values left after clamping, and about twice as fast over a 7.5-megapixel film as Math.round).
 */
export function toUint16(img: GrayImage, out = new Uint16Array(img.width * img.height)): Uint16Array {
  const d = img.data;
  if (out.length !== d.length) throw new RangeError(`toUint16: the output holds ${out.length} values, the image ${d.length}`);
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    out[i] = v <= 0 ? 0 : v >= 1 ? 65535 : (v * 65535 + 0.5) | 0;
  }
  return out;
}

/** Resize a gray image to width x height (any aspect ratio), returning [0,1] floats. */
export async function resizeGray(img: GrayImage, width: number, height: number): Promise<Float32Array> {
  const n = img.width * img.height;
  // The 16-bit copy lives in reused memory (core/scratch.ts) until sharp has resized it.
  const { data } = await withScratch(2 * n, (memory) => sharp(toUint16(img, new Uint16Array(memory, 0, n)), { raw: { width: img.width, height: img.height, channels: 1 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    .toColourspace('grey16')
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true }));
  const u16 = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
  const out = new Float32Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = u16[i] / 65535;
  return out;
}

/** The normalised [1,1,S,S] input for one image. */
export async function toModelInput(img: GrayImage, manifest: ModelManifest): Promise<Float32Array> {
  const S = manifest.input.size;
  const { mean, std } = manifest.input.normalization;
  const px = await resizeGray(img, S, S);
  for (let i = 0; i < px.length; i++) px[i] = (px[i] - mean) / std;
  return px;
}
