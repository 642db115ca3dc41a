/**
 * DICOM (Part 10, or a bare dataset) -> display-ready gray image. Parsing is dcmjs; compressed frames go
 * to dcmjs-codecs (codecs.ts); the grayscale pipeline is pixels.ts. The few byte-level helpers here are
 * hand-written where dcmjs gives no safe hook (see each one).
 */
import { inflateRawSync } from 'node:zlib';
import { data as dcmjsData, log as dcmjsLog, type DicomDataset } from 'dcmjs';
import { InputError } from '../errors';
import type { BufferPool } from '../pool';
import type { DecodedImage, DicomSourceRefs, ImageMeta, RawIdentifiers } from '../types';
import { ENCAPSULATED, NATIVE, TS, decodeFrame, supportedSyntaxList } from './codecs';
import { storedToDisplay, type VoiFunction, type VoiLut } from './pixels';
import { prescanDicom } from './prescan';
import { tooSmall } from './limits';
import { OTHER, SAMPLES_FOR_PHOTOMETRIC, modalityTerm, photometricTerm, termForMessage, viewPositionTerm } from './vocabulary';

/** What decodeDicom refuses by size (see DecodeOptions in index.ts). */
export interface SizeLimits {
  maxPixels: number;
  /** Smallest accepted short side, in pixels. */
  minSide: number;
  /** The pool the image's pixels are taken from (DecodeOptions.pool). */
  pool?: BufferPool;
}

const { DicomDict, DicomMessage, DicomMetaDictionary } = dcmjsData;

// dcmjs logs parser warnings through its own loglevel instance (and values can echo dataset content);
// the decoder must never log, so silence it and its named child loggers.
dcmjsLog.setLevel('silent');
for (const name of ['validation.dcmjs', 'AsyncDicomReader']) dcmjsLog.getLogger(name).setLevel('silent');

/** Well-known syntaxes we do not decode, to name them in the error. */
const KNOWN_UNSUPPORTED: Record<string, string> = {
  '1.2.840.10008.1.2.4.52': 'JPEG Extended (Process 3 & 5, retired)',
  '1.2.840.10008.1.2.4.53': 'JPEG Spectral Selection (retired)',
  '1.2.840.10008.1.2.4.55': 'JPEG Full Progression (retired)',
  '1.2.840.10008.1.2.4.54': 'JPEG Extended, non-hierarchical (retired)',
  '1.2.840.10008.1.2.4.56': 'JPEG Full Progression, non-hierarchical (retired)',
  '1.2.840.10008.1.2.4.58': 'JPEG Lossless, non-hierarchical (retired)',
  '1.2.840.10008.1.2.4.59': 'JPEG Extended, hierarchical (retired)',
  '1.2.840.10008.1.2.4.60': 'JPEG Extended, hierarchical (retired)',
  '1.2.840.10008.1.2.4.61': 'JPEG Spectral Selection, hierarchical (retired)',
  '1.2.840.10008.1.2.4.62': 'JPEG Spectral Selection, hierarchical (retired)',
  '1.2.840.10008.1.2.4.63': 'JPEG Full Progression, hierarchical (retired)',
  '1.2.840.10008.1.2.4.64': 'JPEG Full Progression, hierarchical (retired)',
  '1.2.840.10008.1.2.4.65': 'JPEG Lossless, hierarchical (retired)',
  '1.2.840.10008.1.2.4.66': 'JPEG Lossless, hierarchical (retired)',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.101': 'MPEG2 Main Profile / High Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD-compatible High Profile',
  '1.2.840.10008.1.2.4.104': 'MPEG-4 AVC/H.264 High Profile For 2D Video',
  '1.2.840.10008.1.2.4.105': 'MPEG-4 AVC/H.264 High Profile For 3D Video',
  '1.2.840.10008.1.2.4.106': 'MPEG-4 AVC/H.264 Stereo High Profile',
  '1.2.840.10008.1.2.4.107': 'HEVC/H.265 Main Profile',
  '1.2.840.10008.1.2.4.108': 'HEVC/H.265 Main 10 Profile',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Multi-component Lossless',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 Multi-component',
  '1.2.840.10008.1.2.4.94': 'JPIP Referenced',
  '1.2.840.10008.1.2.4.95': 'JPIP Referenced Deflate',
  '1.2.840.10008.1.2.4.110': 'JPEG XL Lossless',
  '1.2.840.10008.1.2.4.111': 'JPEG XL JPEG Recompression',
  '1.2.840.10008.1.2.4.112': 'JPEG XL',
  '1.2.840.10008.1.2.1.98': 'Encapsulated Uncompressed Explicit VR Little Endian',
  '1.2.840.10008.1.2.6.1': 'RFC 2557 MIME encapsulation',
  '1.2.840.10008.1.2.6.2': 'XML Encoding',
};

/** ViewPosition values (PS3.3 C.8.11.5.1.1 and common variants) that are not a frontal chest view. */
const OBLIQUE = new Set(['LLO', 'RLO', 'LPO', 'RPO', 'LAO', 'RAO', 'OBL', 'OBLIQUE']);
const NON_FRONTAL = new Set(['LL', 'RL', 'LLD', 'RLD', 'LAT', 'LATERAL', ...OBLIQUE]);

export function isDicom(b: Uint8Array): boolean {
  return b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d;
}

/**
 * A dataset without the 128-byte preamble and 'DICM': it starts with a group 0002 (file meta) or
 * group 0008 element, little endian. Returns the encoding guess, or undefined when it does not look so.
 */
export function sniffBareDataset(b: Uint8Array): 'meta' | 'explicit' | 'implicit' | undefined {
  if (b.length < 12 || b[1] !== 0x00 || b[3] !== 0x00) return undefined;
  const explicitVr = isVr(b[4], b[5]);
  if (b[0] === 0x02) return explicitVr ? 'meta' : undefined;
  if (b[0] !== 0x08) return undefined;
  if (explicitVr) return 'explicit';
  // Implicit VR: a 32-bit length that is plausible for a leading group 0008 element.
  const len = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24);
  return len >= 0 && len < 1024 && b[2] < 0x40 ? 'implicit' : undefined;
}

const VRS = new Set('AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV'.split(' '));
function isVr(a: number, c: number): boolean {
  return VRS.has(String.fromCharCode(a, c));
}

/** Wraps a bare dataset into Part 10 so that dcmjs (which requires the preamble) can read it. */
function toPart10(b: Uint8Array, kind: 'meta' | 'explicit' | 'implicit'): Uint8Array {
  let head: Uint8Array;
  if (kind === 'meta') {
    head = new Uint8Array(132);
  } else {
    const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset({
      FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
      TransferSyntaxUID: kind === 'implicit' ? TS.implicitLE : TS.explicitLE,
      ImplementationClassUID: '2.25.1',
    }));
    head = new Uint8Array(dict.write());
  }
  head.set([0x44, 0x49, 0x43, 0x4d], 128);
  const out = new Uint8Array(head.length + b.length);
  out.set(head, 0);
  out.set(b, head.length);
  return out;
}

interface MetaGroup {
  transferSyntaxUid?: string;
  /** Offset of the first dataset byte after the file meta group. */
  datasetOffset: number;
}

/**
 * Reads the file meta group (explicit VR LE, right after 'DICM') by hand, before dcmjs sees the file:
 * so that an unsupported transfer syntax is reported as such even when dcmjs cannot parse its dataset,
 * and so that deflated datasets can be inflated under a size cap (dcmjs would inflate without limit).
 */
function readMetaGroup(b: Uint8Array): MetaGroup {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 132;
  let tsUid: string | undefined;
  while (off + 8 <= b.length && dv.getUint16(off, true) === 0x0002) {
    const elem = dv.getUint16(off + 2, true);
    const vr = String.fromCharCode(b[off + 4], b[off + 5]);
    let len: number;
    let valueOff: number;
    if (['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'SV', 'UV'].includes(vr)) {
      if (off + 12 > b.length) break;
      len = dv.getUint32(off + 8, true);
      valueOff = off + 12;
    } else if (isVr(b[off + 4], b[off + 5])) {
      len = dv.getUint16(off + 6, true);
      valueOff = off + 8;
    } else {
      throw new InputError('CORRUPT', 'The DICOM file meta information is malformed (an element has no valid VR); the file is damaged.');
    }
    if (len === 0xffffffff || valueOff + len > b.length) {
      throw new InputError('TRUNCATED', 'The DICOM file ends inside its file meta information; upload the complete file.');
    }
    if (elem === 0x0010) tsUid = String.fromCharCode(...b.subarray(valueOff, valueOff + Math.min(len, 128))).replace(/[\0 ]+$/, '').trim();
    off = valueOff + len;
  }
  return { transferSyntaxUid: tsUid, datasetOffset: off };
}

export async function decodeDicom(input: Uint8Array, limits: SizeLimits): Promise<DecodedImage> {
  const { maxPixels } = limits;
  let bytes = input;
  if (!isDicom(bytes)) {
    const kind = sniffBareDataset(bytes);
    if (!kind) throw new InputError('UNRECOGNISED_FORMAT', 'Not a DICOM file.');
    bytes = toPart10(bytes, kind);
  }
  const meta = readMetaGroup(bytes);
  const { datasetOffset } = meta;
  let tsUid = meta.transferSyntaxUid;
  if (!tsUid) {
    // No Transfer Syntax UID: readers (dcmtk included) guess uncompressed LE from the first element.
    const guess = sniffBareDataset(bytes.subarray(datasetOffset));
    if (guess !== 'explicit' && guess !== 'implicit') {
      throw new InputError('CORRUPT', 'The DICOM file meta information has no Transfer Syntax UID (0002,0010), so its pixel encoding is unknown; re-export the file from the modality or PACS.');
    }
    tsUid = guess === 'implicit' ? TS.implicitLE : TS.explicitLE;
    bytes = toPart10(bytes.subarray(datasetOffset), guess);
  }
  if (!NATIVE[tsUid] && !ENCAPSULATED[tsUid]) {
    // Named only when it is one we know: the UID is file content and is never echoed otherwise.
    const name = KNOWN_UNSUPPORTED[tsUid];
    throw new InputError('UNSUPPORTED_TRANSFER_SYNTAX',
      `The DICOM transfer syntax ${name ? `${tsUid} (${name})` : '(unrecognised value: not a standard DICOM transfer syntax)'} is not supported; re-export the image with one of: ${supportedSyntaxList()}.`);
  }
  let relabelled = false;
  if (tsUid === TS.deflatedLE) bytes = inflateDataset(bytes, datasetOffset, maxPixels);
  else if (tsUid === TS.explicitLE || tsUid === TS.implicitLE) {
    // Some writers label an implicit VR dataset as explicit (or the reverse); dcmtk detects this, and
    // so do we, from the first dataset element, instead of failing on a readable image.
    const actual = sniffBareDataset(bytes.subarray(datasetOffset));
    if ((actual === 'implicit' && tsUid === TS.explicitLE) || (actual === 'explicit' && tsUid === TS.implicitLE)) {
      bytes = toPart10(bytes.subarray(datasetOffset), actual);
      relabelled = true;
    }
  }

  // Bound depth and element count before dcmjs recurses into the dataset (see prescan.ts).
  const scan = prescanDicom(bytes, 132, dcmjsDatasetOffset(bytes), {
    explicitVr: tsUid !== TS.implicitLE,
    littleEndian: tsUid !== TS.explicitBE,
  });
  // Native little-endian pixels that end the dataset are read in place: dcmjs parses the attributes up to Pixel
  // Data only, and the pixels stay a view of the input (dcmjs would copy them, 15 MB for a 2500x3000 film, and
  // the parse needs an ArrayBuffer of the whole file, often a second copy). Anything else goes through dcmjs whole.
  const px = scan.pixelData;
  const inPlace = px && px.last && px.length > 0 && !relabelled && (tsUid === TS.explicitLE || tsUid === TS.implicitLE || tsUid === TS.deflatedLE) ? px : undefined;
  const { dict, vrOf } = parse(bytes, inPlace?.valueOffset);
  if (inPlace) delete dict['7FE00010'];
  const ds = naturalize(dict);
  if (inPlace) ds.PixelData = bytes.subarray(inPlace.valueOffset, inPlace.valueOffset + inPlace.length);
  return toImage(ds, vrOf, tsUid, limits);
}

/**
 * Where dcmjs starts the dataset: after the File Meta Information Group Length's count of bytes when the
 * group starts with it (dcmjs trusts it), else after the group 0002 elements.
 */
function dcmjsDatasetOffset(b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length >= 144 && dv.getUint16(132, true) === 0x0002 && dv.getUint16(134, true) === 0x0000 && b[136] === 0x55 && b[137] === 0x4c) {
    return Math.min(b.length, 144 + dv.getUint32(140, true));
  }
  return readMetaGroup(b).datasetOffset;
}

/** Inflates a Deflated Explicit VR LE dataset under a cap, and re-labels it explicit VR LE for dcmjs. */
function inflateDataset(b: Uint8Array, datasetOffset: number, maxPixels: number): Uint8Array {
  const cap = maxPixels * 2 + 64 * 1024 * 1024;
  let inflated: Buffer;
  try {
    inflated = inflateRawSync(b.subarray(datasetOffset), { maxOutputLength: cap });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (e instanceof RangeError || code === 'ERR_BUFFER_TOO_LARGE') {
      throw new InputError('TOO_LARGE', `The deflated DICOM dataset inflates to more than ${Math.round(cap / 1e6)} MB, over the pixel limit; this looks like a decompression bomb.`, { cause: e });
    }
    if (code === 'Z_BUF_ERROR') throw new InputError('TRUNCATED', 'The deflated DICOM dataset is truncated; upload the complete file.', { cause: e });
    throw new InputError('CORRUPT', 'The deflated DICOM dataset could not be inflated; the file is damaged.', { cause: e });
  }
  const head = toPart10(new Uint8Array(0), 'explicit');
  const out = new Uint8Array(head.length + inflated.length);
  out.set(head, 0);
  out.set(inflated, head.length);
  return out;
}

/**
 * dcmjs's dataset of the file, whole, or (pixelDataAt: where the Pixel Data value starts) only the attributes
 * before Pixel Data, from a copy of the bytes before it.
 */
function parse(bytes: Uint8Array, pixelDataAt?: number): { dict: DicomDataset; vrOf: (tag: string) => string | undefined } {
  // An ArrayBuffer holding exactly these bytes. (Not bytes.slice(): on a Node Buffer that is a view of
  // the same, possibly larger, memory, so a truncated upload would be read with what follows it.)
  let ab: ArrayBuffer;
  const upTo = pixelDataAt ?? bytes.byteLength;
  if (upTo === bytes.byteLength && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) {
    ab = bytes.buffer;
  } else {
    const copy = new Uint8Array(upTo);
    copy.set(bytes.subarray(0, upTo));
    ab = copy.buffer;
  }
  const untilTag = pixelDataAt === undefined ? null : '7FE00010';
  const read = (ignoreErrors: boolean) =>
    DicomMessage.readFile(ab, { ignoreErrors, untilTag, includeUntilTagValue: false, noCopy: false, forceStoreRaw: false }).dict;
  let dict: DicomDataset;
  try {
    dict = read(false);
  } catch (e) {
    // dcmjs refuses character sets it cannot decode (e.g. '\ISO 2022 IR 87', common in Japanese
    // studies), which only matters for text we do not use: read again, tolerating that.
    // Likewise a file meta group without its group length (0002,0000), which dcmtk and most readers accept.
    if (!/character set|meta length/i.test(e instanceof Error ? e.message : String(e))) throw parseError(e);
    try {
      dict = read(true);
    } catch (e2) {
      throw parseError(e2);
    }
  }
  return { dict, vrOf: (path) => vrAt(dict, path) };
}

/** The VR of an element, by tag or by 'sequenceTag/itemTag' (first item), as read from the file. */
function vrAt(dict: DicomDataset, path: string): string | undefined {
  const [top, inner] = path.split('/');
  const el = dict[top];
  if (!inner) return el?.vr;
  const item = Array.isArray(el?.Value) ? (el.Value[0] as DicomDataset | undefined) : undefined;
  return item && typeof item === 'object' ? item[inner]?.vr : undefined;
}

function parseError(e: unknown): InputError {
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof RangeError || /out of range|outside the bounds|beyond|past end|end of (buffer|stream|file|input)|offset is outside/i.test(msg)) {
    return new InputError('TRUNCATED', 'The DICOM file is truncated (it ends in the middle of an element); upload the complete file.', { cause: e });
  }
  return new InputError('CORRUPT', 'The DICOM dataset could not be parsed; the file is damaged.', { cause: e });
}

function naturalize(dict: DicomDataset): Record<string, unknown> {
  try {
    return DicomMetaDictionary.naturalizeDataset(dict);
  } catch (e) {
    throw new InputError('CORRUPT', 'The DICOM dataset could not be parsed; the file is damaged.', { cause: e });
  }
}

// ---- dataset value helpers (naturalized dcmjs values: scalars, arrays, or strings) ----

function first(v: unknown): unknown {
  return Array.isArray(v) ? v[0] : v;
}
function num(v: unknown): number | undefined {
  const x = first(v);
  if (x === undefined || x === null || x === '') return undefined;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- an object reads "[object Object]", NaN, so undefined
  const n = typeof x === 'number' ? x : Number(String(x).trim());
  return Number.isFinite(n) ? n : undefined;
}
function str(v: unknown): string | undefined {
  const x = first(v);
  if (typeof x !== 'string' && typeof x !== 'number') return undefined;
  const s = String(x).replace(/\0/g, '').trim();
  return s === '' ? undefined : s;
}
function pair(v: unknown): [number, number] | undefined {
  if (!Array.isArray(v) || v.length < 2) return undefined;
  const a = num(v[0]);
  const b = num(v[1]);
  return a !== undefined && b !== undefined && a > 0 && b > 0 ? [a, b] : undefined;
}

async function toImage(ds: Record<string, unknown>, vrOf: (tag: string) => string | undefined, tsUid: string, limits: SizeLimits): Promise<DecodedImage> {
  const { maxPixels, minSide } = limits;
  // Enumerated tags only as a value DICOM defines (else OTHER): raw tag text never reaches meta or a message.
  const photometric = photometricTerm(str(ds.PhotometricInterpretation));
  const viewPosition = viewPositionTerm(str(ds.ViewPosition));
  const bitsAllocated = num(ds.BitsAllocated);
  const declaredBitsStored = num(ds.BitsStored);
  const meta: ImageMeta = {
    format: 'dicom',
    transferSyntaxUid: tsUid,
    modality: modalityTerm(str(ds.Modality)),
    viewPosition,
    photometricInterpretation: photometric,
    bitsStored: declaredBitsStored,
    pixelSpacingMm: pair(ds.PixelSpacing) ?? pair(ds.ImagerPixelSpacing),
    acquiredAt: acquiredAt(ds),
  };
  const identifiers: RawIdentifiers = {
    patientId: str(ds.PatientID),
    studyInstanceUid: str(ds.StudyInstanceUID),
  };

  // Cheap refusals first, before any pixel work.
  if (viewPosition && NON_FRONTAL.has(viewPosition)) {
    const kind = OBLIQUE.has(viewPosition) ? 'oblique' : 'lateral';
    throw new InputError('NOT_FRONTAL', `The DICOM ViewPosition is ${viewPosition}: ${kind} views are not analysed; upload a PA or AP view.`);
  }
  if (isLateralByViewCode(ds.ViewCodeSequence)) {
    throw new InputError('NOT_FRONTAL', 'The DICOM View Code Sequence says this is a lateral view: lateral views are not analysed; upload a PA or AP view.');
  }
  // Without a ViewPosition, PatientOrientation tells: on a PA/AP image the rows run to the patient's
  // left or right (L/R); on a lateral one to anterior or posterior (A/P).
  const rowDirection = Array.isArray(ds.PatientOrientation) ? str(ds.PatientOrientation[0])?.toUpperCase() : undefined;
  if (!viewPosition && rowDirection && /^[AP]$/.test(rowDirection)) {
    throw new InputError('NOT_FRONTAL', `The DICOM PatientOrientation (rows towards ${rowDirection === 'A' ? 'anterior' : 'posterior'}) says this is a lateral view: lateral views are not analysed; upload a PA or AP view.`);
  }
  const pixelData = ds.PixelData;
  if (pixelData === undefined || (Array.isArray(pixelData) && pixelData.length === 0)) {
    const what = ds.FloatPixelData !== undefined || ds.DoubleFloatPixelData !== undefined ? 'float pixel data, which is not a radiograph' : 'no pixel data (it may be a report, a presentation state or a DICOMDIR)';
    throw new InputError('UNSUPPORTED_IMAGE', `The DICOM file has ${what}; upload the chest X-ray image itself.`);
  }
  const frames = num(ds.NumberOfFrames) ?? 1;
  if (frames > 1) throw new InputError('UNSUPPORTED_IMAGE', `The DICOM file holds ${frames} frames; only single-frame radiographs are analysed.`);
  const spp = samplesPerPixel(ds.SamplesPerPixel);
  if (photometric !== undefined && photometric !== OTHER && spp !== SAMPLES_FOR_PHOTOMETRIC[photometric]) {
    const need = SAMPLES_FOR_PHOTOMETRIC[photometric];
    throw new InputError('INVALID_HEADER', `The DICOM header contradicts itself: PhotometricInterpretation ${photometric} has ${need} sample${need > 1 ? 's' : ''} per pixel but SamplesPerPixel is ${spp ?? 'not a valid number'}, so its pixels would be read wrongly (e.g. colour read as gray, with the sides mixed up); re-export the image from the modality or PACS.`);
  }
  if (spp === undefined) throw new InputError('INVALID_HEADER', 'The DICOM SamplesPerPixel is not 1, 3 or 4, so its pixels cannot be read; re-export the image from the modality or PACS.');
  if (photometric === OTHER) {
    throw new InputError('UNSUPPORTED_IMAGE', `The DICOM PhotometricInterpretation is ${termForMessage(photometric)}, not one DICOM defines, so its pixels cannot be interpreted; only grayscale (MONOCHROME1/MONOCHROME2) radiographs are analysed. Re-export the image from the modality or PACS.`);
  }
  if (spp !== 1 || (photometric !== undefined && photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2')) {
    throw new InputError('UNSUPPORTED_IMAGE', `The DICOM image is colour (PhotometricInterpretation ${termForMessage(photometric)}, ${spp} samples per pixel); only grayscale (MONOCHROME1/MONOCHROME2) radiographs are analysed.`);
  }
  const rows = num(ds.Rows);
  const cols = num(ds.Columns);
  if (!rows || !cols || rows < 1 || cols < 1 || !Number.isInteger(rows) || !Number.isInteger(cols)) {
    throw new InputError('CORRUPT', 'The DICOM image has no valid Rows/Columns; the file is damaged.');
  }
  if (rows * cols > maxPixels) {
    throw new InputError('TOO_LARGE', `The DICOM image is ${cols} x ${rows} pixels (${(rows * cols / 1e6).toFixed(0)} megapixels), over the limit of ${(maxPixels / 1e6).toFixed(0)} megapixels.`);
  }
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    throw new InputError('UNSUPPORTED_IMAGE', `The DICOM image has BitsAllocated ${bitsAllocated ?? 'missing'}; only 8 and 16 bits are supported.`);
  }
  const bitsStored = declaredBitsStored && declaredBitsStored >= 1 && declaredBitsStored <= bitsAllocated ? declaredBitsStored : bitsAllocated;
  meta.bitsStored = bitsStored;
  const hb = num(ds.HighBit);
  const highBit = hb !== undefined && hb >= bitsStored - 1 && hb < bitsAllocated ? hb : bitsStored - 1;
  const pixelRepresentation = num(ds.PixelRepresentation) === 1 ? 1 : 0;
  const slope = rescaleValue(ds.RescaleSlope, 'RescaleSlope', MAX_RESCALE_SLOPE);
  const intercept = rescaleValue(ds.RescaleIntercept, 'RescaleIntercept', MAX_RESCALE_INTERCEPT);
  if (slope !== undefined && slope !== 0 && Math.abs(slope) < MIN_RESCALE_SLOPE) {
    throw new InputError('INVALID_HEADER', `The DICOM RescaleSlope is ${slope.toPrecision(3)}, so close to 0 that every pixel maps to nearly the same value; the image cannot be measured. Re-export it from the modality or PACS.`);
  }

  const count = rows * cols;
  const geometry = { rows, cols, bitsAllocated, bitsStored, pixelRepresentation, photometric: photometric ?? 'MONOCHROME2' };
  // Length and frame checks first (cheap, and they name what is wrong), then the size floor, then decoding.
  const encoded = pixelBytes(pixelData, tsUid, geometry, frames, ds.NumberOfFrames !== undefined);
  if (Math.min(rows, cols) < minSide) throw tooSmall('DICOM', cols, rows, minSide);
  const samples = await pixelSamples(encoded, vrOf('7FE00010'), tsUid, geometry, count);

  const wc = num(ds.WindowCenter);
  const ww = num(ds.WindowWidth);
  const fn = str(ds.VOILUTFunction)?.toUpperCase();
  const padding = num(ds.PixelPaddingValue);
  const into = limits.pool ? new Uint16Array(limits.pool.take(count * 2), 0, count) : undefined;
  const { data, window } = storedToDisplay(samples, count, {
    bitsStored,
    highBit,
    signed: pixelRepresentation === 1,
    slope: slope !== undefined && slope !== 0 ? slope : 1,
    intercept: intercept ?? 0,
    window: wc !== undefined && ww !== undefined && ww > 0
      ? { center: wc, width: ww, fn: (fn === 'LINEAR_EXACT' || fn === 'SIGMOID' ? fn : 'LINEAR') as VoiFunction }
      : undefined,
    // The LUT Descriptor's first mapped value is US or SS: SS when the file says so, or when the values
    // it maps can be negative.
    modalityLut: lutItem(ds.ModalityLUTSequence, descriptorSigned(vrOf('00283000/00283002'), pixelRepresentation === 1)),
    voiLut: lutItem(ds.VOILUTSequence, descriptorSigned(vrOf('00283010/00283002'),
      pixelRepresentation === 1 || (ds.ModalityLUTSequence === undefined && (intercept ?? 0) < 0))),
    invert: photometric === 'MONOCHROME1',
    paddingValue: padding,
  }, into);
  meta.window = window;
  const dicomSource = sourceRefs(ds, rows, cols, meta.pixelSpacingMm);
  const out: DecodedImage = { width: cols, height: rows, data, meta, identifiers };
  // The source's patient/study attributes (for the `linked` DICOM outputs only) ride along non-enumerable, so no
  // JSON.stringify, spread or log of a decoded image can carry them anywhere by accident.
  if (dicomSource) Object.defineProperty(out, 'dicomSource', { value: dicomSource, enumerable: false });
  return out;
}

/** Patient and General Study (and Patient Study) module attributes that the `linked` identity mode carries. */
export const PATIENT_STUDY_KEYWORDS = [
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex', 'PatientAge', 'PatientSize', 'PatientWeight',
  'StudyInstanceUID', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber', 'StudyDescription',
] as const;

/**
 * The source facts core/dicom-out needs (DicomSourceRefs: identifiers, kept apart from `meta`), or
 * undefined when the source lacks the UIDs a SEG must reference (then no SEG/SR is written).
 */
function sourceRefs(ds: Record<string, unknown>, rows: number, cols: number, spacing: [number, number] | undefined): DicomSourceRefs | undefined {
  const uid = (v: unknown) => {
    const s = str(v);
    return s && /^[0-9.]{1,64}$/.test(s) ? s : undefined;
  };
  const sopClassUid = uid(ds.SOPClassUID);
  const sopInstanceUid = uid(ds.SOPInstanceUID);
  const seriesInstanceUid = uid(ds.SeriesInstanceUID);
  const studyInstanceUid = uid(ds.StudyInstanceUID);
  if (!sopClassUid || !sopInstanceUid || !seriesInstanceUid || !studyInstanceUid) return undefined;
  const patientStudy: Record<string, unknown> = {};
  for (const k of PATIENT_STUDY_KEYWORDS) if (ds[k] !== undefined && !isAbsent(ds[k])) patientStudy[k] = ds[k];
  const frameOfReferenceUid = uid(ds.FrameOfReferenceUID);
  const po = Array.isArray(ds.PatientOrientation) ? ds.PatientOrientation.map((v) => str(v)?.toUpperCase()) : [];
  const patientOrientation = po.length === 2 && po.every((v) => v && /^[APLRHF]{1,3}$/.test(v)) ? po as [string, string] : undefined;
  return {
    sopClassUid, sopInstanceUid, seriesInstanceUid, studyInstanceUid, rows, columns: cols, patientStudy,
    ...(frameOfReferenceUid ? { frameOfReferenceUid } : {}),
    ...(patientOrientation ? { patientOrientation } : {}),
    ...((num(ds.SliceThickness) ?? 0) > 0 ? { sliceThicknessMm: num(ds.SliceThickness) } : {}),
    ...(spacing ? { pixelSpacingMm: spacing } : {}),
  };
}

function descriptorSigned(vr: string | undefined, fallback: boolean): boolean {
  // Writers often label it US even for signed data, so US does not override what the data implies.
  return vr === 'SS' || fallback;
}

/**
 * First item of a Modality or VOI LUT Sequence (PS3.3 C.11.1 / C.11.2), or undefined when absent or
 * malformed. `signedInput`: whether the values it maps can be negative (first mapped value is then SS).
 */
function lutItem(seq: unknown, signedInput: boolean): VoiLut | undefined {
  const item = first(seq) as Record<string, unknown> | undefined;
  if (!item || typeof item !== 'object') return undefined;
  const desc = Array.isArray(item.LUTDescriptor) ? item.LUTDescriptor.map(Number) : undefined;
  if (!desc || desc.length < 3 || !desc.every(Number.isFinite)) return undefined;
  const entries = desc[0] === 0 ? 65536 : desc[0];
  // The first mapped value is US or SS depending on the data it maps; dcmjs reads it as unsigned.
  const firstMapped = signedInput && desc[1] > 32767 ? desc[1] - 65536 : desc[1];
  const bits = desc[2];
  if (bits < 1 || bits > 16) return undefined;
  let data: ArrayLike<number> | undefined;
  const raw = item.LUTData;
  if (Array.isArray(raw) && raw.length > 0 && typeof raw[0] === 'number') data = raw as number[];
  else {
    const buf: unknown = Array.isArray(raw) ? raw[0] : raw;
    if (buf instanceof ArrayBuffer && buf.byteLength >= entries * 2) data = new Uint16Array(buf, 0, entries);
    else if (ArrayBuffer.isView(buf) && buf.byteLength >= entries * 2) {
      const copy = new Uint8Array(entries * 2);
      copy.set(new Uint8Array(buf.buffer, buf.byteOffset, entries * 2));
      data = new Uint16Array(copy.buffer);
    }
  }
  if (!data || data.length < entries) return undefined;
  return { firstMapped, bits, data };
}

function isLateralByViewCode(seq: unknown): boolean {
  const item = first(seq) as Record<string, unknown> | undefined;
  if (!item || typeof item !== 'object') return false;
  const meaning = str(item.CodeMeaning)?.toLowerCase() ?? '';
  const code = str(item.CodeValue) ?? '';
  // SNOMED-RT R-10206 / R-10232 and SNOMED CT 399173006 / 399198007: left / right lateral.
  return /\blateral\b/.test(meaning) && !/obliq|antero|postero/.test(meaning)
    || ['R-10206', 'R-10232', '399173006', '399198007'].includes(code);
}

type Geometry = { rows: number; cols: number; bitsAllocated: number; bitsStored: number; pixelRepresentation: number; photometric: string };

/**
 * The bytes of the pixel data element (native samples, or the compressed frame), after checking that they
 * describe exactly one frame of the declared geometry: native data must be Rows x Columns x BitsAllocated/8
 * bytes plus at most the one padding byte DICOM adds to an odd length (longer data used to be read
 * silently, e.g. the top half of an image whose Rows was halved); a whole multiple of that is a multi-frame
 * image whatever NumberOfFrames says; compressed data must hold one frame (a second fragment that starts a
 * new codestream means a second frame).
 */
function pixelBytes(pixelData: unknown, tsUid: string, g: Geometry, declaredFrames: number, framesTagPresent: boolean): Uint8Array {
  const parts = (Array.isArray(pixelData) ? pixelData : [pixelData]).filter((p): p is ArrayBuffer | ArrayBufferView =>
    p instanceof ArrayBuffer || ArrayBuffer.isView(p));
  if (parts.length === 0) throw new InputError('CORRUPT', 'The DICOM pixel data element is empty or unreadable; the file is damaged.');
  const framesSaid = framesTagPresent ? `NumberOfFrames says ${declaredFrames}` : 'NumberOfFrames is missing';
  const encapsulated = ENCAPSULATED[tsUid];
  if (encapsulated) {
    // dcmjs returns one buffer per frame when there is an offset table, else one per fragment.
    const starts = parts.filter((p) => startsCodestream(encapsulated.decoder, asBytes(p))).length;
    if (starts > 1) {
      throw new InputError('UNSUPPORTED_IMAGE', `The DICOM pixel data holds ${starts} compressed frames (${framesSaid}); only single-frame radiographs are analysed. Export the single radiograph frame.`);
    }
    return concat(parts);
  }
  const bytes = concat(parts);
  const frameBytes = g.rows * g.cols * (g.bitsAllocated / 8);
  const len = bytes.byteLength;
  if (len < frameBytes) {
    throw new InputError('TRUNCATED', `The DICOM pixel data has ${len} bytes but ${g.cols} x ${g.rows} pixels at ${g.bitsAllocated} bits need ${frameBytes}; the file is truncated.`);
  }
  const padded = (n: number) => n + (n % 2);
  if (len === frameBytes || len === padded(frameBytes)) return bytes;
  const k = Math.floor(len / frameBytes);
  if (k >= 2 && (len === k * frameBytes || len === padded(k * frameBytes))) {
    const colour = k === 3 ? ', or colour (RGB) samples labelled as grayscale' : '';
    throw new InputError('UNSUPPORTED_IMAGE', `The DICOM pixel data holds ${k} times the bytes of one ${g.cols} x ${g.rows} ${g.bitsAllocated}-bit image (${framesSaid}): it is a multi-frame image (or its Rows/Columns are wrong${colour}); only single-frame radiographs are analysed. Export the single radiograph frame.`);
  }
  throw new InputError('INVALID_HEADER', `The DICOM pixel data has ${len} bytes, but ${g.cols} x ${g.rows} pixels at ${g.bitsAllocated} bits need ${frameBytes}${frameBytes % 2 ? ` (${frameBytes + 1} padded)` : ''}: the header does not describe the pixels, so the image would be read wrongly. Re-export it from the modality or PACS.`);
}

/** Whether a compressed frame (or its first fragment) starts here: the codestream's start marker / header. */
function startsCodestream(decoder: string, b: Uint8Array): boolean {
  if (decoder === 'jpeg' || decoder === 'jpegls') return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff; // SOI
  if (decoder === 'j2k' || decoder === 'htj2k') {
    return (b.length >= 4 && b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51) // SOC + SIZ
      || (b.length >= 8 && b[3] === 0x0c && b[4] === 0x6a && b[5] === 0x50 && b[6] === 0x20 && b[7] === 0x20); // JP2 signature box
  }
  if (decoder === 'rle') {
    // RLE header (PS3.5 G.5): segment count 1-15, first segment at offset 64.
    if (b.length < 64) return false;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const n = dv.getUint32(0, true);
    return n >= 1 && n <= 15 && dv.getUint32(4, true) === 64;
  }
  return false;
}

function asBytes(p: ArrayBuffer | ArrayBufferView): Uint8Array {
  return p instanceof ArrayBuffer ? new Uint8Array(p) : new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
}

/** The pixel samples of the single frame, as native little-endian 8- or 16-bit values. */
async function pixelSamples(encoded: Uint8Array, vr: string | undefined, tsUid: string, g: Geometry, count: number): Promise<Uint8Array | Uint16Array> {
  let bytes = encoded;
  let bytesPerSample = g.bitsAllocated / 8;
  if (ENCAPSULATED[tsUid]) {
    const decoded = await decodeFrame(tsUid, bytes, g);
    // An 8-bit JPEG inside a dataset that says BitsAllocated 16 decodes to one byte per sample.
    if (bytesPerSample === 2 && decoded.byteLength < count * 2 && decoded.byteLength >= count) bytesPerSample = 1;
    bytes = decoded;
  } else if (tsUid === TS.explicitBE && (vr === 'OW' || bytesPerSample === 2)) {
    bytes = swap16(bytes, count * bytesPerSample);
  }
  if (bytesPerSample === 1) return bytes.subarray(0, count);
  if (bytes.byteOffset % 2 !== 0) {
    const aligned = new Uint8Array(count * 2);
    aligned.set(bytes.subarray(0, count * 2));
    bytes = aligned;
  }
  return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
}

/** SamplesPerPixel: 1 when absent (as dcmtk assumes), the value when it is 1, 3 or 4, else undefined (invalid). */
function samplesPerPixel(v: unknown): number | undefined {
  if (isAbsent(v)) return 1;
  const n = num(v);
  return n === 1 || n === 3 || n === 4 ? n : undefined;
}

/** Rescale values beyond these cannot come from a radiograph's detector (1e308 used to be scored). */
const MAX_RESCALE_SLOPE = 1e6;
const MIN_RESCALE_SLOPE = 1e-6;
const MAX_RESCALE_INTERCEPT = 1e6;

/** A RescaleSlope/Intercept value: undefined when absent; refused when present but not a finite number within `max`. */
function rescaleValue(v: unknown, name: string, max: number): number | undefined {
  if (isAbsent(v)) return undefined;
  const x = first(v);
  const n = typeof x === 'number' ? x : Number(String(x).replace(/\0/g, '').trim());
  if (!Number.isFinite(n)) {
    throw new InputError('INVALID_HEADER', `The DICOM ${name} is not a finite number, so pixel values cannot be converted to X-ray density; re-export the image from the modality or PACS.`);
  }
  if (Math.abs(n) > max) {
    throw new InputError('INVALID_HEADER', `The DICOM ${name} is ${n.toPrecision(3)}, far outside what an X-ray detector produces (at most ${max.toExponential(0)} in magnitude), so the image cannot be measured; re-export it from the modality or PACS.`);
  }
  return n;
}

function isAbsent(v: unknown): boolean {
  const x = first(v);
  return x === undefined || x === null || (typeof x === 'string' && x.replace(/\0/g, '').trim() === '');
}

function concat(parts: (ArrayBuffer | ArrayBufferView)[]): Uint8Array {
  const views = parts.map((p) => (p instanceof ArrayBuffer ? new Uint8Array(p) : new Uint8Array(p.buffer, p.byteOffset, p.byteLength)));
  if (views.length === 1) return views[0];
  const out = new Uint8Array(views.reduce((n, v) => n + v.byteLength, 0));
  let off = 0;
  for (const v of views) {
    out.set(v, off);
    off += v.byteLength;
  }
  return out;
}

function swap16(b: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i + 1 < n; i += 2) {
    out[i] = b[i + 1];
    out[i + 1] = b[i];
  }
  return out;
}

// ---- acquisition date-time ----

function acquiredAt(ds: Record<string, unknown>): string | undefined {
  const dt = str(ds.AcquisitionDateTime);
  if (dt) {
    const iso = fromDT(dt);
    if (iso) return iso;
  }
  for (const [d, t] of [['AcquisitionDate', 'AcquisitionTime'], ['StudyDate', 'StudyTime'], ['SeriesDate', 'SeriesTime'], ['ContentDate', 'ContentTime']]) {
    const date = str(ds[d]);
    if (!date) continue;
    const iso = fromDA(date);
    if (!iso) continue;
    const time = str(ds[t]);
    const tm = time ? fromTM(time) : undefined;
    return tm ? `${iso}T${tm}` : iso;
  }
  return undefined;
}

function fromDA(s: string): string | undefined {
  const m = /^(\d{4})\.?(\d{2})\.?(\d{2})$/.exec(s);
  if (!m) return undefined;
  const [, y, mo, d] = m;
  if (+mo < 1 || +mo > 12 || +d < 1 || +d > 31) return undefined;
  return `${y}-${mo}-${d}`;
}

function fromTM(s: string): string | undefined {
  const m = /^(\d{2}):?(\d{2})?:?(\d{2})?(?:\.(\d{1,6}))?$/.exec(s);
  if (!m) return undefined;
  const [, h, mi = '00', se = '00', frac] = m;
  if (+h > 23 || +mi > 59 || +se > 60) return undefined;
  return `${h}:${mi}:${se}${frac ? `.${frac.padEnd(3, '0').slice(0, 3)}` : ''}`;
}

function fromDT(s: string): string | undefined {
  const m = /^(\d{8})(\d{2,6}(?:\.\d{1,6})?)?([+-]\d{4})?$/.exec(s);
  if (!m) return undefined;
  const date = fromDA(m[1]);
  if (!date) return undefined;
  const time = m[2] ? fromTM(m[2]) : undefined;
  if (m[2] && !time) return undefined;
  const tz = m[3] ? `${m[3].slice(0, 3)}:${m[3].slice(3)}` : '';
  return time ? `${date}T${time}${tz}` : date;
}
