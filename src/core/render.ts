/**
 * Pictures written for every image: the masks as 0/255 PNGs at the original size, and an overlay that
 * reads at a glance (the X-ray in grey, opacity filled in translucent orange, the patient's right lung
 * outlined in cyan and the left lung in magenta). PNG encoding and decoding go through sharp.
 */
import sharp from 'sharp';
import { LEFT_RGB, OPACITY_ALPHA, OPACITY_RGB, RIGHT_RGB } from './overlay-colours';
import type { GrayImage, Mask, SegmentationMasks, Sides } from './types';

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
  /**
   * Opacity % (core/score.ts opacityPctOf) to print in a legend in the top-left corner: an orange swatch
   * and the total, then cyan "R" and magenta "L" with each lung's. Drawn only where it takes at most
   * 60% of the image's width.
   */
  legend?: Sides<number | null>;
}

/** A 5x7 bitmap font for the legend's few characters (no font files: Lambda images have none). */
const GLYPHS: Record<string, string[]> = {
  '0': ['01110', '10001', '10011', '10101', '11001', '10001', '01110'],
  '1': ['00100', '01100', '00100', '00100', '00100', '00100', '01110'],
  '2': ['01110', '10001', '00001', '00010', '00100', '01000', '11111'],
  '3': ['11110', '00001', '00001', '01110', '00001', '00001', '11110'],
  '4': ['00010', '00110', '01010', '10010', '11111', '00010', '00010'],
  '5': ['11111', '10000', '11110', '00001', '00001', '10001', '01110'],
  '6': ['00110', '01000', '10000', '11110', '10001', '10001', '01110'],
  '7': ['11111', '00001', '00010', '00100', '01000', '01000', '01000'],
  '8': ['01110', '10001', '10001', '01110', '10001', '10001', '01110'],
  '9': ['01110', '10001', '10001', '01111', '00001', '00010', '01100'],
  '.': ['00000', '00000', '00000', '00000', '00000', '01100', '01100'],
  '%': ['11000', '11001', '00010', '00100', '01000', '10011', '00011'],
  '-': ['00000', '00000', '00000', '11111', '00000', '00000', '00000'],
  R: ['11110', '10001', '10001', '11110', '10100', '10010', '10001'],
  L: ['10000', '10000', '10000', '10000', '10000', '10000', '11111'],
  ' ': ['00000', '00000', '00000', '00000', '00000', '00000', '00000'],
};

/** Legend items: a swatch colour and its text. */
function legendItems(p: Sides<number | null>): Array<{ rgb: readonly number[]; text: string }> {
  const f = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)}%`);
  return [{ rgb: OPACITY_RGB, text: f(p.total) }, { rgb: RIGHT_RGB, text: `R ${f(p.right)}` }, { rgb: LEFT_RGB, text: `L ${f(p.left)}` }];
}

/** Draws the legend into an RGB buffer of w x h, scaled to the image; false where it would not fit. */
function drawLegend(rgb: Buffer, w: number, h: number, p: Sides<number | null>): boolean {
  const s = Math.max(1, Math.round(Math.max(w, h) / 400));
  const pad = 3 * s, sw = 7 * s, adv = 6 * s;
  const items = legendItems(p);
  const itemW = (t: string) => sw + 2 * s + t.length * adv;
  const boxW = pad * 2 + items.reduce((a, it) => a + itemW(it.text), 0) + 3 * s * (items.length - 1) * 2;
  const boxH = 7 * s + 2 * pad;
  const x0 = pad, y0 = pad;
  if (boxW > 0.6 * w || boxH > 0.2 * h) return false;
  const set = (x: number, y: number, c: readonly number[], a = 1) => {
    const i = 3 * (y * w + x);
    for (let k = 0; k < 3; k++) rgb[i + k] = Math.round(rgb[i + k] * (1 - a) + c[k] * a);
  };
  const rect = (x: number, y: number, rw: number, rh: number, c: readonly number[], a = 1) => {
    for (let yy = y; yy < y + rh; yy++) for (let xx = x; xx < x + rw; xx++) set(xx, yy, c, a);
  };
  rect(x0, y0, boxW, boxH, [0, 0, 0], 0.65);
  let x = x0 + pad;
  const y = y0 + pad;
  for (const it of items) {
    rect(x, y, sw, sw, it.rgb);
    x += sw + 2 * s;
    for (const ch of it.text) {
      const g = GLYPHS[ch] ?? GLYPHS[' '];
      for (let gy = 0; gy < 7; gy++) for (let gx = 0; gx < 5; gx++) if (g[gy][gx] === '1') rect(x + gx * s, y + gy * s, s, s, [255, 255, 255]);
      x += adv;
    }
    x += 6 * s;
  }
  return true;
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
  if (opts.legend) drawLegend(rgb, w, h, opts.legend);
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
