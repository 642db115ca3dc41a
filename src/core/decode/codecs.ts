/**
 * Frame decoding for the encapsulated (compressed) DICOM transfer syntaxes, through the WASM codecs of
 * dcmjs-codecs (libjpeg-turbo/IJG, CharLS, OpenJPEG, OpenJPH). We call its per-frame decoders directly
 * rather than its Transcoder: the Transcoder re-parses and re-writes the whole dataset, while we already
 * hold the parsed elements and only need the pixels.
 */
import type * as DcmjsCodecs from 'dcmjs-codecs';
import { InputError } from '../errors';
import { safeText } from './vocabulary';

export const TS = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflatedLE: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
  rle: '1.2.840.10008.1.2.5',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  jpegLsLossless: '1.2.840.10008.1.2.4.80',
  jpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  j2kLossless: '1.2.840.10008.1.2.4.90',
  j2k: '1.2.840.10008.1.2.4.91',
  htj2kLossless: '1.2.840.10008.1.2.4.201',
  htj2kLosslessRpcl: '1.2.840.10008.1.2.4.202',
  htj2k: '1.2.840.10008.1.2.4.203',
} as const;

type FrameDecoder = 'rle' | 'jpeg' | 'jpegls' | 'j2k' | 'htj2k';

/** Compressed syntaxes we decode, with a human name for error messages. */
export const ENCAPSULATED: Record<string, { name: string; decoder: FrameDecoder }> = {
  [TS.rle]: { name: 'RLE Lossless', decoder: 'rle' },
  [TS.jpegBaseline]: { name: 'JPEG Baseline', decoder: 'jpeg' },
  [TS.jpegExtended]: { name: 'JPEG Extended (12-bit)', decoder: 'jpeg' },
  [TS.jpegLossless]: { name: 'JPEG Lossless', decoder: 'jpeg' },
  [TS.jpegLosslessSV1]: { name: 'JPEG Lossless SV1', decoder: 'jpeg' },
  [TS.jpegLsLossless]: { name: 'JPEG-LS Lossless', decoder: 'jpegls' },
  [TS.jpegLsNearLossless]: { name: 'JPEG-LS Near-Lossless', decoder: 'jpegls' },
  [TS.j2kLossless]: { name: 'JPEG 2000 Lossless', decoder: 'j2k' },
  [TS.j2k]: { name: 'JPEG 2000', decoder: 'j2k' },
  [TS.htj2kLossless]: { name: 'HTJ2K Lossless', decoder: 'htj2k' },
  [TS.htj2kLosslessRpcl]: { name: 'HTJ2K Lossless RPCL', decoder: 'htj2k' },
  [TS.htj2k]: { name: 'HTJ2K', decoder: 'htj2k' },
};

export const NATIVE: Record<string, string> = {
  [TS.implicitLE]: 'Implicit VR Little Endian',
  [TS.explicitLE]: 'Explicit VR Little Endian',
  [TS.deflatedLE]: 'Deflated Explicit VR Little Endian',
  [TS.explicitBE]: 'Explicit VR Big Endian',
};

/** "name (uid)" for every supported syntax, for error messages. */
export function supportedSyntaxList(): string {
  return [...Object.entries(NATIVE).map(([uid, name]) => `${name} (${uid})`),
    ...Object.entries(ENCAPSULATED).map(([uid, s]) => `${s.name} (${uid})`)].join(', ');
}

/** The WASM codecs could not start: a system fault (retryable), not a problem with the input. */
export class CodecInitError extends Error {
  constructor(cause: unknown) {
    super('could not initialise the DICOM image codecs', { cause });
    this.name = 'CodecInitError';
  }
}

/**
 * dcmjs-codecs, loaded with the first compressed frame: loading its module takes ~60 ms of a cold start, and PNG,
 * JPEG and uncompressed DICOM inputs never need it.
 */
let lib: typeof DcmjsCodecs | undefined;
let ready: Promise<void> | undefined;
/** Bytes of WASM heap left allocated by decodes that threw (their context is never released). */
let leakedBytes = 0;
const MAX_LEAKED_BYTES = 256 * 1024 * 1024;

/**
 * Initialises the WASM module once per process (about 0.2 s), on first use. A codec that rejects a
 * corrupt stream throws out of the WASM call before its buffers are released; we count those bytes and
 * start a fresh instance once they add up (or at once after a WASM trap, whose heap state is unknown),
 * so corrupt uploads can neither exhaust nor poison the module for the good files after them.
 */
function ensureCodecs(): Promise<void> {
  ready ??= import('dcmjs-codecs').then(async (ns) => {
    // dcmjs-codecs is a UMD bundle: Node's own loader (the esbuild bundles of the functions and the CLI, tsx) cannot
    // see its named exports and gives module.exports as `default`; a CommonJS transform (jest's) gives them directly.
    const m = codecsModule(ns);
    lib = m;
    m.log.setLevel('silent');
    await m.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
  }).catch((e: unknown) => {
    ready = undefined;
    throw e;
  });
  return ready;
}

/** dcmjs-codecs' exports from what import() gave (see ensureCodecs). */
export function codecsModule(ns: unknown): typeof DcmjsCodecs {
  const direct = ns as Partial<typeof DcmjsCodecs> & { default?: Partial<typeof DcmjsCodecs> };
  const m = direct.NativeCodecs ? direct : direct.default;
  if (!m?.NativeCodecs || !m.log) throw new Error('dcmjs-codecs did not export NativeCodecs: its package has changed');
  return m as typeof DcmjsCodecs;
}

function afterCodecFailure(e: unknown, leaked: number): void {
  leakedBytes += leaked;
  const trap = e instanceof Error && e.name === 'RuntimeError'; // WebAssembly.RuntimeError
  if (!trap && leakedBytes < MAX_LEAKED_BYTES) return;
  try {
    lib?.NativeCodecs.release();
  } catch {
    /* already unusable: a new instance is created on next use */
  }
  ready = undefined;
  leakedBytes = 0;
}

export interface FrameGeometry {
  rows: number;
  cols: number;
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation: number;
  photometric: string;
}

/** Decodes one compressed frame to native little-endian samples (1 or 2 bytes per sample). */
export async function decodeFrame(tsUid: string, encoded: Uint8Array, g: FrameGeometry): Promise<Uint8Array> {
  const syntax = ENCAPSULATED[tsUid];
  if (!syntax) throw new Error(`no frame decoder for ${tsUid}`); // callers check first; a bug if reached
  let codecs: typeof DcmjsCodecs;
  try {
    // Re-check after the await: a concurrent decode may have dropped the instance in between.
    do await ensureCodecs(); while (!lib?.NativeCodecs.isInitialized());
    codecs = lib;
  } catch (e) {
    // Not the input's fault: let it surface as a transient (retryable) error.
    throw new CodecInitError(e);
  }
  const { Context, NativeCodecs } = codecs;
  const ctx = new Context({
    width: g.cols,
    height: g.rows,
    bitsAllocated: g.bitsAllocated,
    bitsStored: g.bitsStored,
    samplesPerPixel: 1,
    pixelRepresentation: g.pixelRepresentation,
    photometricInterpretation: g.photometric,
    encodedBuffer: encoded,
  });
  let out: DcmjsCodecs.Context;
  try {
    switch (syntax.decoder) {
      case 'rle': out = NativeCodecs.decodeRle(ctx); break;
      case 'jpeg': out = NativeCodecs.decodeJpeg(ctx, { convertColorspaceToRgb: false }); break;
      case 'jpegls': out = NativeCodecs.decodeJpegLs(ctx); break;
      case 'j2k': out = NativeCodecs.decodeJpeg2000(ctx); break;
      case 'htj2k': out = NativeCodecs.decodeHtJpeg2000(ctx); break;
    }
  } catch (e) {
    afterCodecFailure(e, encoded.byteLength + g.rows * g.cols * (g.bitsAllocated > 8 ? 2 : 1));
    throw new InputError('CORRUPT', `The ${syntax.name} compressed pixel data could not be decoded (${shortReason(e)}); the file is damaged.`, { cause: e });
  }
  const decoded = out.getDecodedBuffer();
  const bytesPerSample = g.bitsAllocated > 8 ? 2 : 1;
  const expected = g.rows * g.cols * bytesPerSample;
  if (!decoded || decoded.byteLength < expected) {
    throw new InputError('CORRUPT', `The ${syntax.name} compressed pixel data decoded to ${decoded?.byteLength ?? 0} bytes, but Rows x Columns x BitsAllocated needs ${expected}; the file is damaged or its header does not match its pixels.`);
  }
  if (decoded.byteLength > expected) {
    // The codestream is larger than Rows x Columns: reading its first part would measure the wrong image.
    throw new InputError('INVALID_HEADER', `The ${syntax.name} compressed pixel data decoded to ${decoded.byteLength} bytes, more than the ${expected} that Rows x Columns x BitsAllocated (${g.cols} x ${g.rows} x ${g.bitsAllocated}) need: the header does not describe the pixels. Re-export the image from the modality or PACS.`);
  }
  // Keep our own copy when the view may point into the codec module's memory.
  if (decoded.byteOffset === 0 && decoded.buffer.byteLength === decoded.byteLength) return decoded;
  const copy = new Uint8Array(expected);
  copy.set(decoded.subarray(0, expected));
  return copy;
}

function shortReason(e: unknown): string {
  return safeText(e instanceof Error ? e.message : String(e)) || 'unknown codec error';
}
