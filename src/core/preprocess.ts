/**
 * Turns a decoded image into the model's input tensor: resize to SxS ("stretch", as in training) and
 * normalise. Resizing goes through sharp at 16 bits per pixel so the DICOM's precision survives
 * (sharp's raw float input is not usable for resize; 1/65535 steps are far below what the model resolves);
 * decoded images are already 16-bit (core/types.ts GrayImage) and go to sharp as they are.
 */
import sharp from 'sharp';
import { toDisplay16 } from './gray';
import type { GrayImage, ModelManifest } from './types';

/** Resize a gray image to width x height (any aspect ratio), returning [0,1] floats. */
export async function resizeGray(img: GrayImage, width: number, height: number): Promise<Float32Array> {
  // A decoded image is 16-bit already; a float image (tests, synthetic images) is quantised first.
  const pixels = img.data instanceof Uint16Array ? img.data : Uint16Array.from(img.data, toDisplay16);
  const { data } = await sharp(pixels, { raw: { width: img.width, height: img.height, channels: 1 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    .toColourspace('grey16')
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
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
