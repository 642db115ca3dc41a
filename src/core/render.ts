/**
 * Pictures written for every image: the masks as black-and-white PNGs at the image's size, and an overlay
 * that reads at a glance (the X-ray in grey, opacity filled in translucent orange, the patient's right lung
 * outlined in cyan and the left lung in magenta) at most OVERLAY_MAX_SIDE on its long side. Masks arrive on
 * the working grid (core/postprocess.ts) and are upsampled here (core/upsample.ts). PNG encoding and decoding
 * go through sharp.
 */
import sharp from 'sharp';
import { LEFT_RGB, OPACITY_ALPHA, OPACITY_RGB, RIGHT_RGB } from './overlay-colours';
import { boundingBox } from './morphology';
import { fitLongSide, resampleAxis, upsampleMask } from './upsample';
import type { GrayImage, Mask, RgbImage, SegmentationMasks, Sides } from './types';

/** The overlay's long side at most, in pixels: enough to read a film on a screen, and quick to encode. */
export const OVERLAY_MAX_SIDE = 2048;

/**
 * A mask as a 1-bit grayscale PNG (0 and 255 when decoded), at `size` when given (upsampled from the mask's
 * grid) or at the mask's own size. zlib level 1: a 2500x3000 mask encodes in ~12 ms to ~16 KB; level 6 takes
 * as long again to save ~6 KB (bench/).
 */
export async function maskToPng(mask: Mask, size?: { width: number; height: number }): Promise<Buffer> {
  const m = upsampleMask(mask, size?.width ?? mask.width, size?.height ?? mask.height, 255);
  return sharp(m.data, { raw: { width: m.width, height: m.height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 1, colours: 2, palette: false })
    .toBuffer();
}

/** Reads a mask PNG back (any value >= 128 is foreground). */
export async function pngToMask(png: Uint8Array): Promise<Mask> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const out = new Uint8Array(info.width * info.height);
  for (let i = 0; i < out.length; i++) out[i] = data[i] >= 128 ? 1 : 0;
  return { width: info.width, height: info.height, data: out };
}

/**
 * Pixels of `m` within `r` pixels (along its row or its column) of a pixel outside it or of the image's edge:
 * the outline drawn on the overlay. Four linear passes (distance to the nearest outside pixel leftwards,
 * rightwards, upwards, downwards, capped at r + 1) instead of testing 4r neighbours per pixel.
 */
export function outline(m: Mask, r: number): Uint8Array {
  const { width: w, height: h, data } = m;
  const out = new Uint8Array(w * h);
  // Only the mask's bounding box can hold outline pixels (a lung covers a third of the film).
  const box = boundingBox(m);
  if (!box) return out;
  const [bx0, by0, bx1, by1] = box;
  const cap = r + 1;
  const bw = bx1 - bx0 + 1;
  const hd = new Uint16Array(bw);
  const vd = new Uint16Array(bw);
  const up = new Uint16Array(bw * (by1 - by0 + 1));
  // Downwards: distance to the nearest outside pixel above (the edge and the box's outside count as outside).
  for (let y = by0; y <= by1; y++) {
    const row = y * w;
    const ur = (y - by0) * bw;
    for (let x = bx0; x <= bx1; x++) {
      const k = x - bx0;
      vd[k] = data[row + x] ? Math.min(vd[k] + 1, cap) : 0;
      up[ur + k] = vd[k];
    }
  }
  vd.fill(0);
  for (let y = by1; y >= by0; y--) {
    const row = y * w;
    const ur = (y - by0) * bw;
    // Along the row, both ways.
    let d = 0;
    for (let x = bx0; x <= bx1; x++) {
      d = data[row + x] ? Math.min(d + 1, cap) : 0;
      hd[x - bx0] = d;
    }
    d = 0;
    for (let x = bx1; x >= bx0; x--) {
      const k = x - bx0;
      d = data[row + x] ? Math.min(d + 1, cap) : 0;
      vd[k] = data[row + x] ? Math.min(vd[k] + 1, cap) : 0;
      if (data[row + x] && (d <= r || hd[k] <= r || vd[k] <= r || up[ur + k] <= r)) out[row + x] = 1;
    }
  }
  return out;
}

export interface OverlayOptions {
  /** The longer side of the overlay in pixels at most (default OVERLAY_MAX_SIDE; the mask PNGs stay at full size). */
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

/** The overlay's size: the image's, scaled down (aspect kept) so the long side is at most maxSide. */
export function overlaySize(width: number, height: number, maxSide = OVERLAY_MAX_SIDE): { width: number; height: number } {
  return fitLongSide(width, height, maxSide);
}

/**
 * The image as 8-bit gray at width x height: bilinear from the [0,1] floats straight to bytes. Written here
 * because sharp would need a full-size 8-bit copy first and resizes one band at ~80 ms for a 2500x3000 film,
 * against ~20 ms for this loop; for the overlay picture, bilinear is enough.
 */
function grayAt(img: GrayImage, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const d = img.data;
  const sw = img.width;
  const ax = resampleAxis(img.width, width);
  const ay = resampleAxis(img.height, height);
  const x1 = new Int32Array(width);
  for (let x = 0; x < width; x++) x1[x] = Math.min(ax.i0[x] + 1, sw - 1);
  for (let y = 0; y < height; y++) {
    const r0 = ay.i0[y] * sw;
    const r1 = Math.min(ay.i0[y] + 1, img.height - 1) * sw;
    const fy = ay.f[y];
    const o = y * width;
    for (let x = 0; x < width; x++) {
      const a = ax.i0[x], b = x1[x], fx = ax.f[x];
      const top = d[r0 + a] + (d[r0 + b] - d[r0 + a]) * fx;
      const bottom = d[r1 + a] + (d[r1 + b] - d[r1 + a]) * fx;
      const v = top + (bottom - top) * fy;
      out[o + x] = v <= 0 ? 0 : v >= 1 ? 255 : Math.round(v * 255);
    }
  }
  return out;
}

/**
 * The overlay's pixels for an image and its masks (on any grid: they are upsampled to the overlay's size), at
 * most opts.maxSide (default OVERLAY_MAX_SIDE) on the long side.
 */
export function composeOverlay(img: GrayImage, masks: SegmentationMasks, opts: OverlayOptions = {}): RgbImage {
  const { width: w, height: h } = overlaySize(img.width, img.height, opts.maxSide);
  const gray = grayAt(img, w, h);
  const at = (m: Mask) => (m.width === w && m.height === h ? m : upsampleMask(m, w, h));
  const right = at(masks.lungRight);
  const left = at(masks.lungLeft);
  const opacity = at(masks.opacity).data;
  const r = Math.max(1, Math.round(Math.max(w, h) / 400));
  const edgeR = outline(right, r);
  const edgeL = outline(left, r);
  const rgb = Buffer.alloc(w * h * 3);
  // Opacity blended once per grey level (256 entries) instead of once per pixel.
  const blend = new Uint8Array(256 * 3);
  for (let g = 0; g < 256; g++) {
    for (let k = 0; k < 3; k++) blend[3 * g + k] = Math.round(g * (1 - OPACITY_ALPHA) + OPACITY_RGB[k] * OPACITY_ALPHA);
  }
  for (let i = 0; i < w * h; i++) {
    const g = gray[i];
    const o = 3 * i;
    const edge = edgeR[i] ? RIGHT_RGB : edgeL[i] ? LEFT_RGB : null;
    if (edge) {
      rgb[o] = edge[0]; rgb[o + 1] = edge[1]; rgb[o + 2] = edge[2];
    } else if (opacity[i]) {
      rgb[o] = blend[3 * g]; rgb[o + 1] = blend[3 * g + 1]; rgb[o + 2] = blend[3 * g + 2];
    } else {
      rgb[o] = g; rgb[o + 1] = g; rgb[o + 2] = g;
    }
  }
  if (opts.legend) drawLegend(rgb, w, h, opts.legend);
  return { width: w, height: h, data: rgb };
}

/** The overlay's pixels as PNG. zlib level 2: about half the time of the default 6 on a film for ~15% more bytes. */
export async function overlayPng(rgb: RgbImage): Promise<Buffer> {
  return sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } }).png({ compressionLevel: 2 }).toBuffer();
}

/** The overlay PNG of an image and its masks (composeOverlay, then overlayPng). */
export async function renderOverlay(img: GrayImage, masks: SegmentationMasks, opts: OverlayOptions = {}): Promise<Buffer> {
  return overlayPng(composeOverlay(img, masks, opts));
}

/** The pictures written for every image: the four mask PNGs at the image's size and the overlay (PNG and pixels). */
export interface RenderedOutputs {
  lung: Buffer;
  lungRight: Buffer;
  lungLeft: Buffer;
  opacity: Buffer;
  overlay: Buffer;
  /** The overlay's pixels, for a DICOM Secondary Capture without decoding the PNG again. */
  overlayRgb: RgbImage;
}

/** Every picture of one image from its masks (any grid): the segment stage's, the batch endpoint's, the bench's. */
export async function renderOutputs(img: GrayImage, masks: SegmentationMasks, opts: OverlayOptions = {}): Promise<RenderedOutputs> {
  const full = { width: img.width, height: img.height };
  const overlayRgb = composeOverlay(img, masks, opts);
  const [lung, lungRight, lungLeft, opacity, overlay] = await Promise.all([
    maskToPng(lungUnion(masks), full), maskToPng(masks.lungRight, full), maskToPng(masks.lungLeft, full),
    maskToPng(masks.opacity, full), overlayPng(overlayRgb),
  ]);
  return { lung, lungRight, lungLeft, opacity, overlay, overlayRgb };
}

/** Union of the two lungs. */
export function lungUnion(masks: SegmentationMasks): Mask {
  const { width, height } = masks.lungRight;
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = masks.lungRight.data[i] | masks.lungLeft.data[i];
  return { width, height, data };
}
