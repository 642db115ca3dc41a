/**
 * Pictures written for every image: the masks as 0/255 PNGs at the original size, and an overlay that
 * reads at a glance (the X-ray in grey, opacity filled in translucent orange, the patient's right lung
 * outlined in cyan and the left lung in magenta). PNG encoding and decoding go through sharp.
 */
import sharp from 'sharp';
import { LEFT_RGB, OPACITY_ALPHA, OPACITY_RGB, RIGHT_RGB } from './overlay-colours';
import type { GrayImage, Mask, SegmentationMasks } from './types';

export async function maskToPng(mask: Mask): Promise<Buffer> {
  const px = Buffer.alloc(mask.data.length);
  for (let i = 0; i < px.length; i++) px[i] = mask.data[i] ? 255 : 0;
  return sharp(px, { raw: { width: mask.width, height: mask.height, channels: 1 } })
    .png({ compressionLevel: 6, palette: false })
    .toBuffer();
}

/** Reads a mask PNG back (any value >= 128 is foreground). */
export async function pngToMask(png: Uint8Array): Promise<Mask> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const out = new Uint8Array(info.width * info.height);
  for (let i = 0; i < out.length; i++) out[i] = data[i] >= 128 ? 1 : 0;
  return { width: info.width, height: info.height, data: out };
}

/** Pixels of `m` within `r` pixels (along rows or columns) of a pixel outside it. */
function outline(m: Mask, r: number): Uint8Array {
  const { width: w, height: h, data } = m;
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!data[i]) continue;
      for (let d = 1; d <= r; d++) {
        if (x - d < 0 || !data[i - d] || x + d >= w || !data[i + d] || y - d < 0 || !data[i - d * w] || y + d >= h || !data[i + d * w]) {
          out[i] = 1;
          break;
        }
      }
    }
  }
  return out;
}


export interface OverlayOptions {
  /** The longer side of the overlay in pixels at most (the masks stay at full size). */
  maxSide?: number;
}

export async function renderOverlay(img: GrayImage, masks: SegmentationMasks, opts: OverlayOptions = {}): Promise<Buffer> {
  const { width: w, height: h } = img;
  const r = Math.max(1, Math.round(Math.max(w, h) / 400));
  const edgeR = outline(masks.lungRight, r);
  const edgeL = outline(masks.lungLeft, r);
  const rgb = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const g = Math.round(Math.min(1, Math.max(0, img.data[i])) * 255);
    let R = g, G = g, B = g;
    if (masks.opacity.data[i]) {
      R = Math.round(g * (1 - OPACITY_ALPHA) + OPACITY_RGB[0] * OPACITY_ALPHA);
      G = Math.round(g * (1 - OPACITY_ALPHA) + OPACITY_RGB[1] * OPACITY_ALPHA);
      B = Math.round(g * (1 - OPACITY_ALPHA) + OPACITY_RGB[2] * OPACITY_ALPHA);
    }
    const edge = edgeR[i] ? RIGHT_RGB : edgeL[i] ? LEFT_RGB : null;
    if (edge) [R, G, B] = edge;
    rgb[3 * i] = R;
    rgb[3 * i + 1] = G;
    rgb[3 * i + 2] = B;
  }
  const maxSide = opts.maxSide ?? 2048;
  let pipeline = sharp(rgb, { raw: { width: w, height: h, channels: 3 } });
  if (Math.max(w, h) > maxSide) pipeline = pipeline.resize({ width: maxSide, height: maxSide, fit: 'inside' });
  return pipeline.png({ compressionLevel: 6 }).toBuffer();
}

/** Union of the two lungs. */
export function lungUnion(masks: SegmentationMasks): Mask {
  const { width, height } = masks.lungRight;
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = masks.lungRight.data[i] | masks.lungLeft.data[i];
  return { width, height, data };
}
