/**
 * Input decoding: bytes of a DICOM, PNG or JPEG (recognised by content, never by file name) ->
 * a display-ready grayscale image in [0, 1] (0 = black = air) with non-identifying acquisition facts
 * and the two raw identifiers the pseudonymiser needs (PatientID, StudyInstanceUID).
 *
 * Every problem with the input surfaces as an InputError whose message the uploader can act on;
 * parser exceptions are wrapped, so no bad input can escape as anything else. Nothing here logs.
 */
import { InputError, isInputError } from '../errors';
import type { BufferPool } from '../pool';
import type { DecodedImage, InputFormat } from '../types';
import { CodecInitError } from './codecs';
import { decodeDicom, isDicom, sniffBareDataset } from './dicom';
import { MIN_IMAGE_SIDE } from './limits';
import { decodeRaster } from './raster';

export { CodecInitError, MIN_IMAGE_SIDE };
export { MAX_ELEMENTS, MAX_SEQUENCE_DEPTH } from './prescan';

export interface DecodeOptions {
  /** Refuse images with more pixels than this, before allocating them (decompression bombs). */
  maxPixels?: number;
  /**
   * Refuse images whose short side has fewer pixels than this (TOO_SMALL); default MIN_IMAGE_SIDE (128),
   * below which a chest film cannot be measured. Tests of pixel arithmetic on tiny images lower it.
   */
  minSide?: number;
  /**
   * Where the decoded image's pixels come from (core/pool.ts): given, its data is a view of a buffer taken from the
   * pool, which the caller gives back (pool.give(image.data.buffer)) once nothing reads the image any more.
   */
  pool?: BufferPool;
}

export const DEFAULT_MAX_PIXELS = 100e6;

const ACCEPTED = 'DICOM (.dcm), PNG or JPEG';

/** Recognises the format from the leading bytes; undefined if it is none of the accepted ones. */
export function sniffFormat(b: Uint8Array): InputFormat | undefined {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (isDicom(b) || sniffBareDataset(b)) return 'dicom';
  return undefined;
}

export async function decodeImage(bytes: Uint8Array, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const minSide = opts.minSide ?? MIN_IMAGE_SIDE;
  if (!bytes || bytes.byteLength === 0) throw new InputError('EMPTY', `The file is empty (0 bytes); upload a ${ACCEPTED} chest X-ray.`);
  const format = sniffFormat(bytes);
  if (!format) {
    throw new InputError('UNRECOGNISED_FORMAT', `The file is not a recognised image${describe(bytes)}; accepted formats are ${ACCEPTED}.`);
  }
  try {
    return format === 'dicom' ? await decodeDicom(bytes, { maxPixels, minSide, pool: opts.pool }) : await decodeRaster(bytes, format, { maxPixels, minSide, pool: opts.pool });
  } catch (e) {
    if (isInputError(e)) throw e;
    // A parser or codec failed in a way we did not anticipate: the bytes are at fault, not the system.
    // (Codec initialisation failures are re-thrown as plain errors on purpose: those are transient.)
    if (e instanceof CodecInitError) throw e;
    throw new InputError('CORRUPT', `The ${format === 'dicom' ? 'DICOM' : format.toUpperCase()} file could not be decoded; the file is damaged.`, { cause: e });
  }
}

/** A hint of what the unrecognised bytes are, for the error message (never echoes content). */
function describe(b: Uint8Array): string {
  const head = String.fromCharCode(...b.subarray(0, 8));
  if (head.startsWith('%PDF')) return ' (it is a PDF document)';
  if (head.startsWith('GIF8')) return ' (it is a GIF)';
  if (head.startsWith('II*\0') || head.startsWith('MM\0*')) return ' (it is a TIFF)';
  if (head.startsWith('RIFF')) return ' (it is a RIFF/WebP file)';
  if (head.startsWith('PK')) return ' (it is a ZIP archive)';
  if (b[0] === 0x1f && b[1] === 0x8b) return ' (it is a gzip archive)';
  return '';
}
