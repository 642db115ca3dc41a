/**
 * PNG and JPEG through sharp (libvips): 8- or 16-bit, gray or colour, EXIF orientation applied (sharp's
 * autoOrient: a JPEG or PNG with orientation 2-8 is analysed as it is displayed, mirrored or rotated).
 * Colour is reduced to luma here (Rec. 601 weights on the encoded values, as PIL's convert('L') does,
 * which is how most public CXR sets were turned to gray), so 16-bit colour keeps its precision.
 * An alpha channel is accepted only when every pixel is fully opaque: a transparent area has no X-ray
 * density, and dropping the alpha would measure whatever colour the transparent pixels happen to hold
 * (white lung, typically), so such images are refused rather than composited onto a guessed background.
 */
import sharp from 'sharp';
import { InputError } from '../errors';
import { toDisplay16 } from '../gray';
import type { BufferPool } from '../pool';
import type { DecodedImage } from '../types';
import { tooSmall } from './limits';
import { safeText } from './vocabulary';

const LUMA = [0.299, 0.587, 0.114] as const;

export async function decodeRaster(bytes: Uint8Array, format: 'png' | 'jpeg', limits: { maxPixels: number; minSide: number; pool?: BufferPool }): Promise<DecodedImage> {
  const { maxPixels, minSide } = limits;
  const label = format === 'png' ? 'PNG' : 'JPEG';
  if (format === 'png') checkPngStructure(bytes);

  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const options: sharp.SharpOptions = { limitInputPixels: maxPixels, failOn: 'error', autoOrient: true, sequentialRead: true };
  let meta: sharp.Metadata;
  try {
    // Header only (libvips loads no pixels for metadata), so no pixel limit here: we check it below
    // ourselves, to name the declared size in the message.
    meta = await sharp(input, { ...options, limitInputPixels: false }).metadata();
  } catch (e) {
    throw classify(e, label);
  }
  const { width, height } = meta;
  if (!width || !height) throw new InputError('CORRUPT', `The ${label} header gives no image size; the file is damaged.`);
  // Header-only check: a decompression bomb is refused before any pixel memory is allocated.
  if (width * height > maxPixels) throw tooLarge(label, width, height, maxPixels);

  const sixteen = meta.depth === 'ushort';
  const alpha = meta.hasAlpha === true;
  const colour = (meta.channels ?? 1) - (alpha ? 1 : 0) > 1 || meta.space === 'cmyk';
  const pixels = (failOn: sharp.SharpOptions['failOn']) => sharp(input, { ...options, failOn })
    .removeAlpha()
    .toColourspace(colour ? (sixteen ? 'rgb16' : 'srgb') : sixteen ? 'grey16' : 'b-w')
    .raw({ depth: sixteen ? 'ushort' : 'uchar' })
    .toBuffer({ resolveWithObject: true });
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    // A JPEG is decoded at libjpeg's warning level: a damaged entropy-coded segment is only a warning to libjpeg,
    // which fills the rest of the picture with grey, and that grey would be measured. Warnings that do not touch
    // the pixels (BENIGN_JPEG_WARNINGS) let it decode as before.
    raw = await pixels(format === 'jpeg' ? 'warning' : 'error').catch((e: unknown) => {
      if (format === 'jpeg' && BENIGN_JPEG_WARNINGS.test(e instanceof Error ? e.message : String(e))) return pixels('error');
      throw e;
    });
  } catch (e) {
    throw classify(e, label);
  }
  const { info, data: buf } = raw;
  const n = info.width * info.height;
  const ch = info.channels;
  const samples = sixteen
    ? (buf.byteOffset % 2 === 0 ? new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength >> 1) : new Uint16Array(Uint8Array.from(buf).buffer))
    : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (samples.length < n * ch) throw new InputError('CORRUPT', `The ${label} decoded to fewer pixels than its header declares; the file is damaged.`);
  // After decoding (so that a truncated file is reported as such) and orientation (the displayed size).
  if (Math.min(info.width, info.height) < minSide) throw tooSmall(label, info.width, info.height, minSide);
  if (alpha) {
    const transparent = await countTransparent(input, options, sixteen, label);
    if (transparent > 0) {
      const pct = (100 * transparent) / n;
      throw new InputError('UNSUPPORTED_IMAGE', `The ${label} has transparent pixels (${pct < 0.1 ? '<0.1' : pct.toFixed(1)}% of the image is not fully opaque): a transparent area has no X-ray density and would be measured as whatever colour it hides. Upload the image without transparency (flatten it when exporting, or upload the DICOM).`);
    }
  }
  // 16-bit display values (core/types.ts GrayImage), each the 16 bits of the float32 sample / max it was before,
  // so the model's input is the same to the bit as when images were floats. A 16-bit PNG whose values all fit in
  // 8, 10 or 12 bits holds a detector's raw values (a DICOM's 12 stored bits written as they are): read at 16 bits it
  // is a black picture (the guard refused such a film as not a chest X-ray), so its values are read against their
  // own bit depth, as a DICOM's against its BitsStored.
  const bits = sixteen ? storedBits(samples, n * ch) : 8;
  const top = 2 ** bits - 1;
  const scale = 1 / top;
  const data = limits.pool ? new Uint16Array(limits.pool.take(n * 2), 0, n) : new Uint16Array(n);
  let colourMarkedShare: number | undefined;
  if (ch === 1) {
    const lut = new Uint16Array(sixteen ? 65536 : 256);
    for (let v = 0; v < lut.length; v++) lut[v] = toDisplay16(Math.fround(Math.min(1, v * scale)));
    for (let i = 0; i < n; i++) data[i] = lut[samples[i]];
  } else {
    colourMarkedShare = markedShare(samples, n, ch, top);
    const [wr, wg, wb] = LUMA;
    for (let i = 0, j = 0; i < n; i++, j += ch) {
      const y = (wr * samples[j] + wg * samples[j + 1] + wb * samples[j + 2]) * scale;
      data[i] = toDisplay16(Math.fround(y > 1 ? 1 : y));
    }
  }
  return {
    width: info.width,
    height: info.height,
    data,
    ...(colourMarkedShare === undefined ? {} : { colourMarkedShare }),
    meta: {
      format,
      photometricInterpretation: colour ? 'RGB' : 'MONOCHROME2',
      bitsStored: bits,
    },
    identifiers: {},
  };
}

/**
 * The share of a colour image's pixels that carry colour other than the image's one tint (core/types.ts GrayImage
 * colourMarkedShare; judged in core/guard.ts). A film saved as RGB is grey (R = G = B), or tinted as a whole by a
 * viewer or a photograph of it (every pixel the same hue, its strength following the brightness); coloured marks drawn
 * on a film (an analysis overlay such as this tool's own, PACS annotations) are neither. A pixel counts as marked when
 * it is further than MARK_DISTANCE of full scale from the image's tint at its own brightness (its luma times the
 * image's mean colour over its mean luma).
 */
const MARK_DISTANCE = 0.16;

function markedShare(samples: Uint8Array | Uint16Array, n: number, ch: number, max: number): number {
  const [wr, wg, wb] = LUMA;
  let sr = 0, sg = 0, sb = 0, sy = 0;
  for (let i = 0, j = 0; i < n; i++, j += ch) {
    const r = samples[j], g = samples[j + 1], b = samples[j + 2];
    sr += r; sg += g; sb += b; sy += wr * r + wg * g + wb * b;
  }
  if (sy === 0) return 0;
  const tr = sr / sy, tg = sg / sy, tb = sb / sy;
  const limit = (MARK_DISTANCE * max) ** 2;
  let marked = 0;
  for (let i = 0, j = 0; i < n; i++, j += ch) {
    const r = samples[j], g = samples[j + 1], b = samples[j + 2];
    const y = wr * r + wg * g + wb * b;
    const dr = r - y * tr, dg = g - y * tg, db = b - y * tb;
    if (dr * dr + dg * dg + db * db > limit) marked++;
  }
  return marked / n;
}

/** The bits a 16-bit image's values use: 8, 10 or 12 when its largest value fits in them, else 16. */
function storedBits(samples: Uint8Array | Uint16Array, count: number): number {
  let max = 0;
  for (let i = 0; i < count; i++) if (samples[i] > max) max = samples[i];
  return max < 256 ? 8 : max < 1024 ? 10 : max < 4096 ? 12 : 16;
}

/** Pixels whose alpha (read on its own: colourspace conversion drops or composites it) is not fully opaque. */
async function countTransparent(input: Buffer, options: sharp.SharpOptions, sixteen: boolean, label: string): Promise<number> {
  let alpha: Buffer;
  try {
    alpha = await sharp(input, options).extractChannel('alpha').raw({ depth: sixteen ? 'ushort' : 'uchar' }).toBuffer();
  } catch (e) {
    throw classify(e, label);
  }
  const values = sixteen ? new Uint16Array(Uint8Array.from(alpha).buffer) : alpha;
  const opaque = sixteen ? 65535 : 255;
  let n = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== opaque) n++;
  return n;
}

function tooLarge(label: string, w: number, h: number, maxPixels: number): InputError {
  return new InputError('TOO_LARGE', `The ${label} declares ${w} x ${h} pixels (${(w * h / 1e6).toFixed(0)} megapixels), over the limit of ${(maxPixels / 1e6).toFixed(0)} megapixels; downscale the image before uploading.`);
}

/**
 * libjpeg warnings (jerror.h) about the file's markers, not its image data: an encoder's stray bytes between
 * markers, an unknown JFIF revision or Adobe transform code, a bad ICC marker, extra scanlines. A JPEG with only
 * these decodes to its full picture. The others (a premature end of a data segment, a bad Huffman code, a missing
 * restart marker, an inconsistent progression) mean part of the picture was not decoded.
 */
const BENIGN_JPEG_WARNINGS = /extraneous bytes before marker|unknown JFIF revision|Unknown Adobe color transform|bad ICC marker|too many scanlines/i;

/** Maps a sharp/libvips error to an InputError naming the problem. */
function classify(e: unknown, label: string): InputError {
  const msg = e instanceof Error ? e.message : String(e);
  const precision = /Unsupported JPEG data precision (\d+)/.exec(msg);
  if (precision) {
    return new InputError('UNSUPPORTED_IMAGE', `The JPEG has ${precision[1]}-bit samples, which the JPEG decoder here does not read (only 8-bit JPEG files); upload the DICOM, or a 16-bit PNG of the image.`, { cause: e });
  }
  const corrupt = /Corrupt JPEG data: ([^\n]*)|(Inconsistent progression sequence[^\n]*)/.exec(msg);
  if (corrupt) {
    return new InputError('CORRUPT', `The JPEG's image data is damaged (${safeText(corrupt[1] ?? corrupt[2])}): part of the picture cannot be decoded and would be measured as grey; upload an undamaged copy of the image.`, { cause: e });
  }
  if (/pixel limit/i.test(msg)) return new InputError('TOO_LARGE', `The ${label} is larger than the pixel limit; downscale the image before uploading.`, { cause: e });
  if (/premature end|truncat|unexpected end|end of (file|data|stream)|not enough data/i.test(msg)) {
    return new InputError('TRUNCATED', `The ${label} file is truncated (it ends before the image data does); upload the complete file.`, { cause: e });
  }
  return new InputError('CORRUPT', `The ${label} file could not be decoded (${safeText(msg.split('\n')[0])}); the file is damaged.`, { cause: e });
}

/**
 * Walks the PNG chunk list (hand-written: libpng reports a truncated file and a corrupt one with the same
 * "read error", and the uploader needs to know which). Only lengths are checked; CRCs are left to libpng.
 */
function checkPngStructure(b: Uint8Array): void {
  let off = 8;
  let sawData = false;
  while (off + 8 <= b.length) {
    const len = ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
    const type = String.fromCharCode(b[off + 4], b[off + 5], b[off + 6], b[off + 7]);
    if (len > 0x7fffffff) throw new InputError('CORRUPT', `The PNG has an invalid chunk length; the file is damaged.`);
    const end = off + 12 + len;
    if (end > b.length) break;
    if (type === 'IDAT') sawData = true;
    if (type === 'IEND') return;
    off = end;
  }
  // Ran out of bytes before IEND. A file whose chunks are all complete and only lacks IEND still
  // decodes in full, so it is tolerated; anything that stops inside a chunk is truncated.
  if (off === b.length && sawData) return;
  throw new InputError('TRUNCATED', `The PNG file is truncated (it ends at byte ${b.length}, inside its image data); upload the complete file.`);
}
