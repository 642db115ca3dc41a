/**
 * Input fixtures generated on the fly (never committed binaries): DICOM Part 10 written with dcmjs,
 * PNG/JPEG with sharp, a synthetic chest-like pattern, and compressed DICOM variants produced by
 * independent encoders (dcmtk CLI, OpenJPEG's opj_compress) when they are installed.
 *
 * Reusable by any test: makeDicom(), makePng(), makeJpeg(), chestPattern(), toStored(),
 * compressedVariant(), hasTool(), bareDataset(), hostileInputs().
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { data as dcmjsData } from 'dcmjs';
import { Context, NativeCodecs } from 'dcmjs-codecs';
import sharp from 'sharp';

const { DicomDict, DicomMetaDictionary } = dcmjsData;

export const UID = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflatedLE: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
  rle: '1.2.840.10008.1.2.5',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  jpegLs: '1.2.840.10008.1.2.4.80',
  jpegLsNear: '1.2.840.10008.1.2.4.81',
  j2kLossless: '1.2.840.10008.1.2.4.90',
  j2k: '1.2.840.10008.1.2.4.91',
  mpeg2: '1.2.840.10008.1.2.4.100',
  dxForPresentation: '1.2.840.10008.5.1.4.1.1.1.1',
} as const;

// ---------------------------------------------------------------- synthetic chest pattern

/**
 * A smooth, chest-like gray pattern in [0, 1] (0 = air): dark background, bright body ellipse, two dark
 * lung fields, a bright spine and faint ribs, plus deterministic noise so every gray level is used.
 */
export function chestPattern(width: number, height: number, seed = 1): Float32Array {
  const out = new Float32Array(width * height);
  let s = seed >>> 0 || 1;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let y = 0; y < height; y++) {
    const v = y / height;
    for (let x = 0; x < width; x++) {
      const u = x / width;
      let g = 0.04;
      const body = ((u - 0.5) / 0.46) ** 2 + ((v - 0.55) / 0.5) ** 2;
      if (body < 1) {
        g = 0.75 - 0.15 * body;
        const lung = (cx: number) => ((u - cx) / 0.16) ** 2 + ((v - 0.5) / 0.3) ** 2;
        const l = Math.min(lung(0.3), lung(0.7));
        if (l < 1) g = 0.18 + 0.25 * l + 0.05 * Math.max(0, Math.sin(v * 60));
        if (Math.abs(u - 0.5) < 0.04) g = 0.9;
      }
      g += (rand() - 0.5) * 0.02;
      out[y * width + x] = g < 0 ? 0 : g > 1 ? 1 : g;
    }
  }
  return out;
}

/** Scales [0, 1] floats to unsigned stored values of `bits` bits. */
export function toStored(f: Float32Array, bits: number): Uint16Array {
  const max = 2 ** bits - 1;
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = Math.round(f[i] * max);
  return out;
}

// ---------------------------------------------------------------- DICOM

export interface DicomSpec {
  rows?: number;
  cols?: number;
  bitsAllocated?: 8 | 16;
  bitsStored?: number;
  highBit?: number;
  pixelRepresentation?: 0 | 1;
  photometric?: string;
  samplesPerPixel?: number;
  numberOfFrames?: number;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  windowCenter?: number | number[];
  windowWidth?: number | number[];
  voiLutFunction?: string;
  viewPosition?: string;
  pixelSpacing?: [number, number];
  imagerPixelSpacing?: [number, number];
  pixelPaddingValue?: number;
  modality?: string;
  patientName?: string;
  patientId?: string;
  birthDate?: string;
  institutionName?: string;
  studyInstanceUid?: string;
  studyDate?: string;
  studyTime?: string;
  acquisitionDateTime?: string;
  /** Stored words exactly as written (already masked, shifted, two's complement as the test wants). */
  pixels?: Uint8Array | Uint16Array | Int16Array;
  transferSyntax?: 'explicit' | 'implicit';
  omitPixelData?: boolean;
  /** More naturalized attributes (dcmjs keyword -> value), merged last. */
  extra?: Record<string, unknown>;
}

export const DEFAULT_IDENTIFIERS = {
  patientName: 'Testperson^Alice^Q',
  patientId: 'PID-0042',
  birthDate: '19600229',
  institutionName: 'St. Example Hospital',
  studyInstanceUid: '1.2.826.0.1.3680043.8.498.1',
};

/** A single-frame grayscale DICOM Part 10 file (explicit or implicit VR little endian), via dcmjs. */
export function makeDicom(spec: DicomSpec = {}): Buffer {
  const rows = spec.rows ?? 64;
  const cols = spec.cols ?? 80;
  const bitsAllocated = spec.bitsAllocated ?? 16;
  const bitsStored = spec.bitsStored ?? (bitsAllocated === 8 ? 8 : 12);
  const pixels = spec.pixels ?? (bitsAllocated === 8
    ? Uint8Array.from(toStored(chestPattern(cols, rows), 8))
    : toStored(chestPattern(cols, rows), bitsStored));
  const sopInstanceUid = `2.25.${BigInt.asUintN(64, BigInt(Math.floor(Math.random() * 2 ** 52)))}`;
  const ds: Record<string, unknown> = {
    SOPClassUID: UID.dxForPresentation,
    SOPInstanceUID: sopInstanceUid,
    Modality: spec.modality ?? 'DX',
    PatientName: spec.patientName ?? DEFAULT_IDENTIFIERS.patientName,
    PatientID: spec.patientId ?? DEFAULT_IDENTIFIERS.patientId,
    PatientBirthDate: spec.birthDate ?? DEFAULT_IDENTIFIERS.birthDate,
    PatientSex: 'F',
    InstitutionName: spec.institutionName ?? DEFAULT_IDENTIFIERS.institutionName,
    StudyInstanceUID: spec.studyInstanceUid ?? DEFAULT_IDENTIFIERS.studyInstanceUid,
    SeriesInstanceUID: `${sopInstanceUid}.1`,
    StudyDate: spec.studyDate ?? '20200315',
    StudyTime: spec.studyTime ?? '101530',
    SamplesPerPixel: spec.samplesPerPixel ?? 1,
    PhotometricInterpretation: spec.photometric ?? 'MONOCHROME2',
    Rows: rows,
    Columns: cols,
    BitsAllocated: bitsAllocated,
    BitsStored: bitsStored,
    HighBit: spec.highBit ?? bitsStored - 1,
    PixelRepresentation: spec.pixelRepresentation ?? 0,
  };
  const opt = (k: string, v: unknown) => {
    if (v !== undefined) ds[k] = v;
  };
  opt('NumberOfFrames', spec.numberOfFrames);
  opt('ViewPosition', spec.viewPosition);
  opt('PixelSpacing', spec.pixelSpacing);
  opt('ImagerPixelSpacing', spec.imagerPixelSpacing);
  opt('RescaleSlope', spec.rescaleSlope);
  opt('RescaleIntercept', spec.rescaleIntercept);
  opt('WindowCenter', spec.windowCenter);
  opt('WindowWidth', spec.windowWidth);
  opt('VOILUTFunction', spec.voiLutFunction);
  opt('AcquisitionDateTime', spec.acquisitionDateTime);
  if (spec.pixelPaddingValue !== undefined) ds.PixelPaddingValue = spec.pixelPaddingValue;
  if (spec.rescaleSlope !== undefined || spec.rescaleIntercept !== undefined) ds.RescaleType = 'US';
  if (!spec.omitPixelData) {
    const bytes = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
    const padded = bytes.byteLength % 2 ? concatBytes(bytes, new Uint8Array(1)) : bytes.slice();
    ds.PixelData = [padded.buffer];
  }
  Object.assign(ds, spec.extra ?? {});
  const vrMap: Record<string, string> = { PixelData: bitsAllocated === 8 ? 'OB' : 'OW' };
  if (spec.pixelPaddingValue !== undefined) vrMap.PixelPaddingValue = spec.pixelRepresentation === 1 ? 'SS' : 'US';
  ds._vrMap = vrMap;

  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: ds.SOPClassUID,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: spec.transferSyntax === 'implicit' ? UID.implicitLE : UID.explicitLE,
    ImplementationClassUID: '2.25.4242',
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(ds);
  return Buffer.from(dict.write());
}

/**
 * Wraps already-encoded frame bytes (e.g. a J2K codestream from opj_compress) into an encapsulated
 * DICOM, taking every other attribute from `spec`.
 */
export function makeEncapsulatedDicom(spec: DicomSpec, transferSyntaxUid: string, frame: Uint8Array, fragmentSize20k = true): Buffer {
  const base = makeDicom({ ...spec, omitPixelData: true });
  const { DicomMessage } = dcmjsData;
  const parsed = DicomMessage.readFile(base.buffer.slice(base.byteOffset, base.byteOffset + base.byteLength) as ArrayBuffer);
  const padded = frame.byteLength % 2 ? concatBytes(frame, new Uint8Array(1)) : frame.slice();
  parsed.dict['7FE00010'] = { vr: 'OB', Value: [padded.buffer] };
  parsed.meta['00020010'] = { vr: 'UI', Value: [transferSyntaxUid] };
  // dcmjs splits the frame into 20 KB fragments unless told not to: both layouts occur in the wild.
  return Buffer.from(parsed.write({ fragmentMultiframe: fragmentSize20k }));
}

/** The dataset without preamble and 'DICM' (keepMeta) or without the whole file meta group. */
export function bareDataset(part10: Buffer, keepMeta: boolean): Buffer {
  if (keepMeta) return part10.subarray(132);
  const groupLength = part10.readUInt32LE(132 + 8);
  return part10.subarray(132 + 12 + groupLength);
}

/** Rewrites the Transfer Syntax UID in the file meta group (same length UIDs only differ in padding). */
export function withTransferSyntax(part10: Buffer, uid: string): Buffer {
  const { DicomMessage } = dcmjsData;
  const parsed = DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.byteLength) as ArrayBuffer);
  parsed.meta['00020010'] = { vr: 'UI', Value: [uid] };
  return Buffer.from(parsed.write());
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// ---------------------------------------------------------------- PNG / JPEG

export interface RasterSpec {
  width?: number;
  height?: number;
  /** Gray values in [0, 1], row-major; default chestPattern. For channels 3 the same gray is tinted. */
  gray?: Float32Array;
  /** Exact samples (overrides gray): length width*height*channels, 8- or 16-bit. */
  samples?: Uint8Array | Uint16Array;
  channels?: 1 | 2 | 3 | 4;
  bits?: 8 | 16;
}

function rasterInput(spec: RasterSpec): { input: sharp.Sharp; bits: 8 | 16; channels: number } {
  const width = spec.width ?? 96;
  const height = spec.height ?? 80;
  const channels = spec.channels ?? 1;
  const bits = spec.bits ?? (spec.samples instanceof Uint16Array ? 16 : 8);
  let samples = spec.samples;
  if (!samples) {
    const gray = spec.gray ?? chestPattern(width, height);
    const max = bits === 16 ? 65535 : 255;
    samples = bits === 16 ? new Uint16Array(width * height * channels) : new Uint8Array(width * height * channels);
    for (let i = 0; i < width * height; i++) {
      for (let c = 0; c < channels; c++) {
        const alpha = (channels === 2 && c === 1) || (channels === 4 && c === 3);
        samples[i * channels + c] = alpha ? max : Math.round(gray[i] * max);
      }
    }
  }
  // sharp takes the sample depth from the typed array's type (Uint16Array -> 16-bit).
  const typed = bits === 16 ? Uint16Array.from(samples) : Uint8Array.from(samples);
  const input = sharp(typed, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } });
  return { input, bits, channels };
}

/** A PNG (8/16-bit, gray, gray+alpha, RGB or RGBA) through sharp. */
export async function makePng(spec: RasterSpec = {}): Promise<Buffer> {
  const { input, bits, channels } = rasterInput(spec);
  const space = bits === 16 ? (channels <= 2 ? 'grey16' : 'rgb16') : channels <= 2 ? 'b-w' : 'srgb';
  return input.toColourspace(space).png({ compressionLevel: 1 }).toBuffer();
}

/** A JPEG (gray or RGB) through sharp; `orientation` writes an EXIF Orientation tag (1-8). */
export async function makeJpeg(spec: RasterSpec & { quality?: number; orientation?: number } = {}): Promise<Buffer> {
  const { input, channels } = rasterInput({ ...spec, bits: 8 });
  let s = input.toColourspace(channels <= 2 ? 'b-w' : 'srgb').jpeg({ quality: spec.quality ?? 95 });
  if (spec.orientation) s = s.withMetadata({ orientation: spec.orientation });
  return s.toBuffer();
}

/** Just a PNG signature + IHDR declaring width x height (a decompression-bomb header; no image data). */
export function pngHeaderOnly(width: number, height: number): Buffer {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // gray
  return Buffer.concat([sig, pngChunk('IHDR', ihdr), pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), pngChunk('IEND', Buffer.alloc(0))]);
}

function pngChunk(type: string, body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const tb = Buffer.concat([Buffer.from(type, 'ascii'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(tb));
  return Buffer.concat([len, tb, crc]);
}

function crc32(b: Uint8Array): number {
  let c = ~0;
  for (let i = 0; i < b.length; i++) {
    c ^= b[i];
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A minimal one-page PDF (a common wrong upload). */
export function tinyPdf(): Buffer {
  return Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n', 'latin1');
}

// ---------------------------------------------------------------- external encoders

const toolCache = new Map<string, boolean>();

/** Whether a CLI tool is on PATH (cached). */
export function hasTool(name: string): boolean {
  let ok = toolCache.get(name);
  if (ok === undefined) {
    ok = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
    toolCache.set(name, ok);
  }
  return ok;
}

export type Variant =
  | 'implicit' | 'explicit-be' | 'deflated' | 'rle'
  | 'jpeg-baseline' | 'jpeg-extended' | 'jpeg-lossless' | 'jpeg-lossless-sv1'
  | 'jpegls' | 'jpegls-near' | 'j2k' | 'j2k-lossy';

/** The transfer syntax and the external tool each variant needs. */
export const VARIANTS: Record<Variant, { uid: string; tool: string; lossless: boolean }> = {
  'implicit': { uid: UID.implicitLE, tool: 'dcmconv', lossless: true },
  'explicit-be': { uid: UID.explicitBE, tool: 'dcmconv', lossless: true },
  'deflated': { uid: UID.deflatedLE, tool: 'dcmconv', lossless: true },
  'rle': { uid: UID.rle, tool: 'dcmcrle', lossless: true },
  'jpeg-baseline': { uid: UID.jpegBaseline, tool: 'dcmcjpeg', lossless: false },
  'jpeg-extended': { uid: UID.jpegExtended, tool: 'dcmcjpeg', lossless: false },
  'jpeg-lossless': { uid: UID.jpegLossless, tool: 'dcmcjpeg', lossless: true },
  'jpeg-lossless-sv1': { uid: UID.jpegLosslessSV1, tool: 'dcmcjpeg', lossless: true },
  'jpegls': { uid: UID.jpegLs, tool: 'dcmcjpls', lossless: true },
  'jpegls-near': { uid: UID.jpegLsNear, tool: 'dcmcjpls', lossless: false },
  'j2k': { uid: UID.j2kLossless, tool: 'opj_compress', lossless: true },
  'j2k-lossy': { uid: UID.j2k, tool: 'opj_compress', lossless: false },
};

const DCMTK_ARGS: Partial<Record<Variant, [string, string[]]>> = {
  'implicit': ['dcmconv', ['+ti']],
  'explicit-be': ['dcmconv', ['+tb']],
  'deflated': ['dcmconv', ['+td']],
  'rle': ['dcmcrle', []],
  'jpeg-baseline': ['dcmcjpeg', ['+eb', '+q', '90']],
  'jpeg-extended': ['dcmcjpeg', ['+ee', '+q', '95']],
  'jpeg-lossless': ['dcmcjpeg', ['+el', '+sv', '6']],
  'jpeg-lossless-sv1': ['dcmcjpeg', ['+e1']],
  'jpegls': ['dcmcjpls', ['+el']],
  'jpegls-near': ['dcmcjpls', ['+en', '+md', '2']],
};

/**
 * Re-encodes an uncompressed DICOM (from makeDicom; 8 or 16 bits allocated) with an independent
 * encoder: dcmtk for everything but JPEG 2000, which goes through OpenJPEG's opj_compress and is then
 * wrapped with dcmjs (in 20 KB fragments). Throws if the tool is missing: check hasTool(VARIANTS[v].tool) first.
 */
export function compressedVariant(src: Buffer, variant: Variant, spec?: DicomSpec): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'cxr-fixture-'));
  try {
    const input = join(dir, 'in.dcm');
    const output = join(dir, 'out.dcm');
    writeFileSync(input, src);
    const dcmtk = DCMTK_ARGS[variant];
    if (dcmtk) {
      execFileSync(dcmtk[0], [...dcmtk[1], input, output], { stdio: ['ignore', 'ignore', 'pipe'] });
      return readFileSync(output);
    }
    if (!spec) throw new Error(`compressedVariant(${variant}) needs the DicomSpec the source was made from`);
    // JPEG 2000: raw little-endian samples -> opj_compress -> J2K codestream -> encapsulated DICOM.
    const rows = spec.rows ?? 64;
    const cols = spec.cols ?? 80;
    const bitsAllocated = spec.bitsAllocated ?? 16;
    const bitsStored = spec.bitsStored ?? (bitsAllocated === 8 ? 8 : 12);
    const signed = spec.pixelRepresentation === 1;
    const pixelBytes = pixelDataOf(src, rows * cols * (bitsAllocated / 8));
    const raw = join(dir, 'in.rawl');
    writeFileSync(raw, pixelBytes);
    const j2k = join(dir, 'out.j2k');
    const args = ['-i', raw, '-o', j2k, '-F', `${cols},${rows},1,${bitsStored},${signed ? 's' : 'u'}`];
    if (variant === 'j2k-lossy') args.push('-r', '10');
    execFileSync('opj_compress', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    return makeEncapsulatedDicom(spec, VARIANTS[variant].uid, new Uint8Array(readFileSync(j2k)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * HTJ2K (1.2.840.10008.1.2.4.201, lossless) through dcmjs-codecs' own encoder: there is no independent
 * HTJ2K encoder in the usual toolboxes, so this only proves our decode path round-trips, not the codec.
 */
export async function htj2kVariant(src: Buffer, spec: DicomSpec): Promise<Buffer> {
  if (!NativeCodecs.isInitialized()) await NativeCodecs.initializeAsync();
  const rows = spec.rows ?? 64;
  const cols = spec.cols ?? 80;
  const bitsAllocated = spec.bitsAllocated ?? 16;
  const ctx = new Context({
    width: cols, height: rows, bitsAllocated, bitsStored: spec.bitsStored ?? (bitsAllocated === 8 ? 8 : 12),
    samplesPerPixel: 1, pixelRepresentation: spec.pixelRepresentation ?? 0, photometricInterpretation: 'MONOCHROME2',
    decodedBuffer: new Uint8Array(pixelDataOf(src, rows * cols * (bitsAllocated / 8))),
  });
  const encoded = NativeCodecs.encodeHtJpeg2000(ctx, { lossy: false }).getEncodedBuffer();
  if (!encoded) throw new Error('HTJ2K encoding produced nothing');
  return makeEncapsulatedDicom(spec, '1.2.840.10008.1.2.4.201', encoded);
}

/** The native pixel bytes of an uncompressed little-endian Part 10 file. */
export function pixelDataOf(part10: Buffer, length: number): Buffer {
  const { DicomMessage } = dcmjsData;
  const parsed = DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.byteLength) as ArrayBuffer);
  const v = parsed.dict['7FE00010'].Value[0] as ArrayBuffer;
  return Buffer.from(v).subarray(0, length);
}

/**
 * dcmtk's own rendering (dcmj2pnm: dcm2pnm with dcmtk's JPEG decoders) of a DICOM to a 16-bit PNG,
 * for cross-checks. `window` is
 * [center, width] (+Ww), 'minmax' (+Wm) or 'voi-lut' (+Wl 1: the first VOI LUT). Returns the PNG bytes.
 */
export function dcm2pnm16(dicom: Buffer, window: [number, number] | 'minmax' | 'voi-lut'): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'cxr-fixture-'));
  try {
    const input = join(dir, 'in.dcm');
    const output = join(dir, 'out.png');
    writeFileSync(input, dicom);
    const w = window === 'minmax' ? ['+Wm'] : window === 'voi-lut' ? ['+Wl', '1'] : ['+Ww', String(window[0]), String(window[1])];
    execFileSync('dcmj2pnm', [...w, '+on2', input, output], { stdio: ['ignore', 'ignore', 'pipe'] });
    return readFileSync(output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- hostile inputs

export interface HostileInput {
  name: string;
  bytes: Buffer;
  /** The InputError code decodeImage must throw. */
  code: 'EMPTY' | 'UNRECOGNISED_FORMAT' | 'TRUNCATED' | 'CORRUPT' | 'TOO_LARGE' | 'UNSUPPORTED_TRANSFER_SYNTAX' | 'UNSUPPORTED_IMAGE' | 'NOT_FRONTAL';
}

/** The generated hostile-input corpus (issue 6), each with the InputError code it must produce. */
export async function hostileInputs(): Promise<HostileInput[]> {
  const png = await makePng();
  const jpeg = await makeJpeg();
  const dcm = makeDicom();
  return [
    { name: 'zero bytes', bytes: Buffer.alloc(0), code: 'EMPTY' },
    { name: 'a PDF', bytes: tinyPdf(), code: 'UNRECOGNISED_FORMAT' },
    { name: 'plain text', bytes: Buffer.from('patient notes, not an image\n'), code: 'UNRECOGNISED_FORMAT' },
    { name: 'truncated PNG', bytes: png.subarray(0, Math.floor(png.length / 2)), code: 'TRUNCATED' },
    { name: 'truncated JPEG', bytes: jpeg.subarray(0, Math.floor(jpeg.length / 2)), code: 'TRUNCATED' },
    { name: 'truncated DICOM (in pixel data)', bytes: dcm.subarray(0, dcm.length - 1000), code: 'TRUNCATED' },
    { name: 'truncated DICOM (in header)', bytes: dcm.subarray(0, 300), code: 'TRUNCATED' },
    { name: '30000 x 30000 PNG header', bytes: pngHeaderOnly(30000, 30000), code: 'TOO_LARGE' },
    { name: 'lateral DICOM', bytes: makeDicom({ viewPosition: 'LL' }), code: 'NOT_FRONTAL' },
    { name: 'MPEG2 DICOM', bytes: withTransferSyntax(dcm, UID.mpeg2), code: 'UNSUPPORTED_TRANSFER_SYNTAX' },
    { name: 'multi-frame DICOM', bytes: makeDicom({ numberOfFrames: 2, rows: 8, cols: 8, pixels: new Uint16Array(128) }), code: 'UNSUPPORTED_IMAGE' },
    { name: 'RGB DICOM', bytes: makeDicom({ samplesPerPixel: 3, photometric: 'RGB', bitsAllocated: 8, rows: 8, cols: 8, pixels: new Uint8Array(192), extra: { PlanarConfiguration: 0 } }), code: 'UNSUPPORTED_IMAGE' },
    { name: 'DICOM without pixel data', bytes: makeDicom({ omitPixelData: true }), code: 'UNSUPPORTED_IMAGE' },
  ];
}
