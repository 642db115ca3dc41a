/**
 * Pictures written for every image: the masks as black-and-white PNGs at the image's size, and an overlay
 * that reads at a glance (the X-ray in grey, opacity filled in translucent orange, the patient's right lung
 * outlined in cyan and the left lung in magenta) at most OVERLAY_MAX_SIDE on its long side. Masks arrive on
 * the working grid (core/postprocess.ts) and are upsampled here (core/upsample.ts). The overlay is encoded by
 * sharp, the 1-bit mask PNGs here (maskToPng says why); reading a PNG back goes through sharp.
 */
import { promisify } from 'node:util';
import { crc32, deflate } from 'node:zlib';
import sharp from 'sharp';
import { setBitRun } from './bits';
import { LEFT_RGB, OPACITY_ALPHA, OPACITY_RGB, RIGHT_RGB } from './overlay-colours';
import { forEachOutlineRow } from './outline';
import type { BufferPool } from './pool';
import { fitLongSide, forEachUpsampledRow, resampleAxis } from './upsample';
import type { GrayImage, Mask, RgbImage, SegmentationMasks, Sides } from './types';

/** The overlay's long side at most, in pixels: enough to read a film on a screen, and quick to encode. */
export const OVERLAY_MAX_SIDE = 2048;

/**
 * A mask as a 1-bit grayscale PNG (0 and 255 when decoded), at `size` when given (upsampled from the mask's
 * grid: core/upsample.ts) or at the mask's own size.
 *
 * Written here rather than with sharp: sharp takes one byte per pixel, so a 2500x3000 mask had to be upsampled
 * into 7.5 MB first (a film writes four) and sharp then packed it back to bits, ~15 ms each. Here the upsampled
 * rows arrive as runs (forEachUpsampledRow) and are packed straight into the PNG's 1-bit rows (filter None), then
 * deflated by node:zlib at level 1 on libuv's threads; the PNG container around them is three chunks with CRC-32
 * (PNG spec 5.3, 11.2). test/core.test.ts decodes what this writes with sharp (libspng checks the CRCs).
 */
export async function maskToPng(mask: Mask, size?: { width: number; height: number }, pool?: BufferPool): Promise<Buffer> {
  const width = size?.width ?? mask.width;
  const height = size?.height ?? mask.height;
  const stride = 1 + ((width + 7) >> 3);
  // Each row: filter type 0 (None), then its bits. From the pool when given (this function alone reads it, and
  // gives it back once deflated).
  const n = stride * height;
  const rows = pool ? Buffer.from(pool.takeZeroed(n), 0, n) : Buffer.alloc(n);
  forEachUpsampledRow(mask, width, height, (y, runs, n) => {
    const first = (y * stride + 1) * 8;
    for (let k = 0; k < 2 * n; k += 2) setBitRun(rows, first + runs[k], first + runs[k + 1], 'msb');
  });
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 1; // bit depth
  header[9] = 0; // colour type: grayscale (compression, filter and interlace methods 0)
  const idat = await deflateAsync(rows, { level: 1 });
  pool?.give(rows.buffer);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', header), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const deflateAsync = promisify(deflate);

/** A PNG chunk: length, type, data, CRC-32 of type and data. */
function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))), 0);
  return Buffer.concat([head, data, crc]);
}

/** Reads a mask PNG back (any value >= 128 is foreground). */
export async function pngToMask(png: Uint8Array): Promise<Mask> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const out = new Uint8Array(info.width * info.height);
  for (let i = 0; i < out.length; i++) out[i] = data[i] >= 128 ? 1 : 0;
  return { width: info.width, height: info.height, data: out };
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
  /**
   * Where the overlay's pixels come from (core/pool.ts): given, RenderedOutputs.overlayRgb's data is a view of a
   * buffer taken from the pool, which the caller gives back once nothing reads it any more.
   */
  pool?: BufferPool;
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
 * The image as 8-bit gray at width x height, written to all three channels of an RGB buffer: bilinear from
 * the [0,1] floats straight to bytes, each output row from one source row pair blended once (vertical pass
 * over the source width, then horizontal). Written here because sharp would need a full-size 8-bit copy first
 * and resizes one band at ~80 ms for a 2500x3000 film; for the overlay picture, bilinear is enough.
 */
function grayRgbAt(img: GrayImage, width: number, height: number, pool?: BufferPool): Buffer {
  const bytes = width * height * 3;
  const out = pool ? Buffer.from(pool.take(bytes), 0, bytes) : Buffer.allocUnsafe(bytes);
  const d = img.data;
  // Values to bytes: v / max * 255 rounded, with max 1 (floats) or 65535 (16-bit display values).
  const k = 255 / (d instanceof Uint16Array ? 65535 : 1);
  const byte = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0);
  if (width === img.width && height === img.height) {
    // Same size (films up to OVERLAY_MAX_SIDE): each pixel as it is.
    for (let i = 0, o = 0; i < d.length; i++, o += 3) {
      const g = byte(d[i] * k);
      out[o] = g; out[o + 1] = g; out[o + 2] = g;
    }
    return out;
  }
  const sw = img.width;
  const ax = resampleAxis(img.width, width);
  const ay = resampleAxis(img.height, height);
  const x1 = new Int32Array(width);
  for (let x = 0; x < width; x++) x1[x] = Math.min(ax.i0[x] + 1, sw - 1);
  const col = new Float32Array(sw);
  for (let y = 0; y < height; y++) {
    const r0 = ay.i0[y] * sw;
    const r1 = Math.min(ay.i0[y] + 1, img.height - 1) * sw;
    const fy = ay.f[y];
    for (let x = 0; x < sw; x++) col[x] = (d[r0 + x] + (d[r1 + x] - d[r0 + x]) * fy) * k;
    let o = y * width * 3;
    for (let x = 0; x < width; x++, o += 3) {
      const a = col[ax.i0[x]];
      const g = byte(a + (col[x1[x]] - a) * ax.f[x]);
      out[o] = g; out[o + 1] = g; out[o + 2] = g;
    }
  }
  return out;
}

/**
 * The overlay's pixels for an image and its masks (on any grid: they are upsampled to the overlay's size), at
 * most opts.maxSide (default OVERLAY_MAX_SIDE) on the long side. The grey picture is written once, then opacity
 * is blended run by run along the upsampled rows, then the left and the right lung's outlines (core/outline.ts) are
 * drawn, right on top.
 */
export function composeOverlay(img: GrayImage, masks: SegmentationMasks, opts: OverlayOptions = {}): RgbImage {
  const { width: w, height: h } = overlaySize(img.width, img.height, opts.maxSide);
  const rgb = grayRgbAt(img, w, h, opts.pool);
  // Opacity blended once per grey level (256 entries) instead of once per pixel.
  const blend = new Uint8Array(256 * 3);
  for (let g = 0; g < 256; g++) {
    for (let k = 0; k < 3; k++) blend[3 * g + k] = Math.round(g * (1 - OPACITY_ALPHA) + OPACITY_RGB[k] * OPACITY_ALPHA);
  }
  // Opacity from the upsampled rows' runs (no overlay-size opacity mask is made).
  forEachUpsampledRow(masks.opacity, w, h, (y, runs, n) => {
    for (let k = 0; k < 2 * n; k += 2) {
      for (let o = 3 * (y * w + runs[k]), end = 3 * (y * w + runs[k + 1]); o < end; o += 3) {
        const g = 3 * rgb[o];
        rgb[o] = blend[g]; rgb[o + 1] = blend[g + 1]; rgb[o + 2] = blend[g + 2];
      }
    }
  });
  const r = Math.max(1, Math.round(Math.max(w, h) / 400));
  for (const [m, colour] of [[masks.lungLeft, LEFT_RGB], [masks.lungRight, RIGHT_RGB]] as const) {
    const [c0, c1, c2] = colour;
    forEachOutlineRow(m, w, h, r, (y, runs, n) => {
      for (let k = 0; k < 2 * n; k += 2) {
        for (let o = 3 * (y * w + runs[k]), end = 3 * (y * w + runs[k + 1]); o < end; o += 3) {
          rgb[o] = c0; rgb[o + 1] = c1; rgb[o + 2] = c2;
        }
      }
    });
  }
  if (opts.legend) drawLegend(rgb, w, h, opts.legend);
  return { width: w, height: h, data: rgb };
}

/**
 * The overlay's pixels as PNG, encoded for speed: zlib level 1. On a 1707x2048 overlay (bench/'s DICOM) level 1
 * takes 41 ms for 2.8 MB, level 2 58 ms for 1.9 MB, the default 6 135 ms for 1.3 MB; the encode is the last step
 * of an image's analysis, so its time is the stage's. (POST /v1/analyze re-encodes smaller when it must fit a
 * response: src/aws/api/analyze.ts fitOverlay.)
 */
export async function overlayPng(rgb: RgbImage): Promise<Buffer> {
  return sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
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
  // The overlay first: sharp encodes it on one of libuv's threads (its longest step) while this thread packs the
  // mask PNGs' rows, whose deflates then take the other threads.
  const overlayRgb = composeOverlay(img, masks, opts);
  const overlayP = overlayPng(overlayRgb);
  const masksP = Promise.all([
    maskToPng(lungUnion(masks), full, opts.pool), maskToPng(masks.lungRight, full, opts.pool), maskToPng(masks.lungLeft, full, opts.pool),
    maskToPng(masks.opacity, full, opts.pool),
  ]);
  const [[lung, lungRight, lungLeft, opacity], overlay] = await Promise.all([masksP, overlayP]);
  return { lung, lungRight, lungLeft, opacity, overlay, overlayRgb };
}

/** Union of the two lungs. */
export function lungUnion(masks: SegmentationMasks): Mask {
  const { width, height } = masks.lungRight;
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = masks.lungRight.data[i] | masks.lungLeft.data[i];
  return { width, height, data };
}
