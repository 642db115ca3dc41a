/**
 * Stage 1, for one uploaded object: decode, segment, write the masks and overlay next to each other,
 * and hand a message to the score stage. Inputs we cannot analyse become a FAILED message with the
 * reason (never retried); anything else (storage, network) is thrown so the queue retries it and,
 * after the last try, dead-letters it.
 */
import {
  BufferPool, countMasks, opacityPctOf, decodeImage, isInputError, isPseudonym, pseudonymise, renderOutputs, segmentImage, shiftedStudyDate,
  type DecodedImage, type ImageMeta, type MaskCounts, type QualityReport, type RenderedOutputs, type RgbImage, type SegmentationModel,
} from '../core';
import {
  imageIdFor, outputKeysFor, safeText, storedMeta, storedSource,
  type ProcessingPath, type PseudonymousIds, type SourceRef, type StageMessage,
} from './messages';
import type { MessageSink, ObjectStore, StageLogger } from './ports';
import { InputError } from '../core/errors';
import { scoreCounts } from '../core/score';
import type { SeverityConfig } from '../core/severity';
import { buildOverlayCapture, writeDicomOutputs, type IdentityMode } from '../core/dicom-out';
import { DEFAULT_MAX_INPUT_BYTES, tooLargeReason } from '../limits';
import { uploadIdOfKey, uploadIndexKey } from './storage-layout';

export interface SegmentStageDeps {
  objects: ObjectStore;
  sink: MessageSink;
  model: SegmentationModel;
  /** HMAC key for patient/study/source pseudonyms and the patients' date shifts. */
  pseudonymKey: string;
  /** Keep the upload's key (file name) in results: only for data already de-identified (KEEP_SOURCE_KEYS). */
  keepSourceKeys?: boolean;
  resultsBucket: string;
  /** Largest input read, in bytes (src/limits.ts; default DEFAULT_MAX_INPUT_BYTES); larger ones fail TOO_LARGE unread. */
  maxInputBytes?: number;
  log: StageLogger;
  path: ProcessingPath;
  now?: () => Date;
  /**
   * Write seg.dcm and sr.dcm (core/dicom-out) for DICOM inputs, with this identity mode. The SR's score is
   * scoreCounts of the same counts the score stage scores, hence the severity config here too.
   */
  dicomOutputs?: { identity: IdentityMode; severity: SeverityConfig };
}

/** User metadata an uploader may set on PNG/JPEG uploads, which carry no DICOM identifiers. */
export const PATIENT_METADATA = 'patient-id';
export const STUDY_METADATA = 'study-id';
/** The acquisition date (ISO 8601) of such an upload; shifted per patient like a DICOM's (core/date-shift.ts). */
export const ACQUIRED_METADATA = 'acquired-at';

const since = (t0: bigint) => Math.round(Number(process.hrtime.bigint() - t0) / 1e5) / 10;

/** What analyseImage needs besides the bytes. */
export interface AnalyseOptions {
  model: SegmentationModel;
  /** HMAC key of the pseudonyms and the patients' date shifts. */
  pseudonymKey: string;
  /** Seeds the UIDs of the DICOM outputs (the imageId). */
  seed: string;
  /** Creation time written into the DICOM outputs. */
  now: Date;
  /** Pseudonyms given with the request (see runSegmentStage), for inputs that carry none themselves. */
  given?: PseudonymousIds;
  /** The upload's user metadata (PATIENT_METADATA, STUDY_METADATA, ACQUIRED_METADATA). */
  metadata?: Record<string, string>;
  /** As SegmentStageDeps.dicomOutputs: for a DICOM input, seg.dcm and sr.dcm (and the overlay as sc.dcm). */
  dicomOutputs?: SegmentStageDeps['dicomOutputs'];
  /** Build the overlay's DICOM Secondary Capture too (default true; the raw SageMaker route returns none). */
  secondaryCapture?: boolean;
  /**
   * Where the image's largest buffers (its pixels, the overlay's pixels, the mask PNGs' rows) come from and go back
   * to when the analysis is done (core/pool.ts says why); default: the process's own, shared by every analysis in it.
   */
  pool?: BufferPool;
}

/** The buffers analyses reuse when not given a pool: one per process (a function instance, a local run). */
const PROCESS_POOL = new BufferPool();

/** The pseudonyms and shifted study day of an image (only these leave the stage). */
export interface ImageIds {
  patientKey?: string;
  studyKey?: string;
  studyDate?: string;
}

/** Milliseconds per step, in the order they ran. */
export type AnalysisTimings = Partial<Record<'decode' | 'preprocess' | 'inference' | 'postprocess' | 'render', number>>;

export type ImageAnalysis =
  | {
    status: 'SEGMENTED';
    /** What was read of the image, and its size (its pixels are not kept: they went back to the pool). */
    meta: ImageMeta;
    size: { width: number; height: number };
    ids: ImageIds;
    counts: MaskCounts;
    quality: QualityReport;
    /** The five pictures, encoded (masks at the image's size, the overlay with its legend). */
    pictures: Omit<RenderedOutputs, 'overlayRgb'>;
    /** For a DICOM input with dicomOutputs: the SEG, the SR and (secondaryCapture) the overlay as a Secondary Capture. */
    dicom?: { seg: Uint8Array; sr: Uint8Array; sc?: Uint8Array };
    timingsMs: AnalysisTimings;
  }
  | {
    status: 'FAILED';
    /** Why the image cannot be analysed. */
    error: InputError;
    /** What was read of the image, when it was decoded before it was refused, and its ids. */
    meta?: ImageMeta;
    ids?: ImageIds;
    timingsMs: AnalysisTimings;
  };

/**
 * One image's bytes to everything the segment stage stores and hands on, storing nothing: decode, segment,
 * count, render and, for DICOM inputs, the SEG, SR and Secondary Capture. What runSegmentStage runs on the
 * object it read and the SageMaker serving container's raw route on a request body. An input we cannot
 * analyse is a FAILED analysis (an InputError); anything else is thrown.
 */
export async function analyseImage(bytes: Uint8Array, o: AnalyseOptions): Promise<ImageAnalysis> {
  const { model, pseudonymKey: key, metadata = {} } = o;
  const given = {
    patientKey: o.given?.patientKey && isPseudonym('patient', o.given.patientKey) ? o.given.patientKey : undefined,
    studyKey: o.given?.studyKey && isPseudonym('study', o.given.studyKey) ? o.given.studyKey : undefined,
  };
  const identify = (img: DecodedImage): ImageIds => {
    const patientKey = pseudonymise(key, 'patient', img.identifiers.patientId)
      ?? given.patientKey ?? pseudonymise(key, 'patient', metadata[PATIENT_METADATA]);
    const studyKey = pseudonymise(key, 'study', img.identifiers.studyInstanceUid)
      ?? given.studyKey ?? pseudonymise(key, 'study', metadata[STUDY_METADATA]);
    return { patientKey, studyKey, studyDate: shiftedStudyDate(key, patientKey, img.meta.acquiredAt ?? metadata[ACQUIRED_METADATA]) };
  };
  const timingsMs: AnalysisTimings = {};
  const pool = o.pool ?? PROCESS_POOL;
  let decoded: DecodedImage | undefined;
  let overlayRgb: RgbImage | undefined;
  try {
    let t = process.hrtime.bigint();
    const img: DecodedImage = await decodeImage(bytes, { pool });
    decoded = img;
    timingsMs.decode = since(t);
    const ids = identify(img);
    const { masks, timings, quality } = await segmentImage(img, model);
    // Everything the score needs, as counts on the working grid scaled to the image's pixels: the score stage
    // reads no mask back.
    const full = { width: img.width, height: img.height };
    const counts = countMasks(masks, full);
    timingsMs.preprocess = round(timings.preprocessMs);
    timingsMs.inference = round(timings.inferenceMs);
    timingsMs.postprocess = round(timings.postprocessMs);

    t = process.hrtime.bigint();
    const { overlayRgb: rgb, ...pictures } = await renderOutputs(img, masks, { legend: opacityPctOf(counts), pool });
    overlayRgb = rgb;
    let dicom: { seg: Uint8Array; sr: Uint8Array; sc?: Uint8Array } | undefined;
    if (o.dicomOutputs && img.dicomSource) {
      const input = {
        source: img.dicomSource, model: model.manifest, identity: o.dicomOutputs.identity, secret: key,
        seed: o.seed, patientKey: ids.patientKey, now: o.now,
      };
      dicom = {
        ...writeDicomOutputs({ ...input, masks }, scoreCounts(counts, o.dicomOutputs.severity, img.meta.pixelSpacingMm)),
        // The overlay as a DICOM Secondary Capture, for viewers and PACS without SEG support.
        ...(o.secondaryCapture === false ? {} : { sc: buildOverlayCapture(input, rgb) }),
      };
    }
    timingsMs.render = since(t);
    return { status: 'SEGMENTED', meta: img.meta, size: full, ids, counts, quality, pictures, dicom, timingsMs };
  } catch (e) {
    if (!isInputError(e)) throw e;
    return { status: 'FAILED', error: e, ...(decoded ? { meta: decoded.meta, ids: identify(decoded) } : {}), timingsMs };
  } finally {
    // Every reader of these buffers has finished (sharp's encodes and the Secondary Capture were awaited or copied
    // them); nothing returned refers to them.
    if (decoded) pool.give(decoded.data.buffer);
    if (overlayRgb) pool.give(overlayRgb.data.buffer);
  }
}

/**
 * @param ids pseudonyms supplied with the request (a batch manifest's patient_id and study_id, hashed by
 *   the router) for inputs that carry none themselves; DICOM tags take precedence, then these, then the
 *   upload's user metadata. Raw identifiers (tags, metadata) are pseudonymised here; only pseudonyms,
 *   the key's pseudonym and the patient's shifted study day leave this function.
 */
export async function runSegmentStage(src: SourceRef, deps: SegmentStageDeps, ids: PseudonymousIds = {}): Promise<StageMessage> {
  const { objects, sink, model, log } = deps;
  const receivedAt = (deps.now?.() ?? new Date()).toISOString();
  const t0 = process.hrtime.bigint();
  // The size cap is checked on the object's metadata, before a byte of it is read.
  const info = await objects.head(src.bucket, src.key);
  const limit = deps.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES;
  const obj = info.size > limit ? undefined : await objects.get(src.bucket, src.key);
  const read: SourceRef = { ...src, etag: src.etag ?? obj?.etag ?? info.etag, size: obj?.body.length ?? info.size };
  const imageId = imageIdFor(read);
  const source = storedSource(deps.pseudonymKey, read, deps.keepSourceKeys);
  const timingsMs: Record<string, number> = { fetch: since(t0) };
  const base = { version: 1 as const, imageId, source, receivedAt, path: deps.path, timingsMs };
  // An API upload's uploadId -> imageId, kept with the results (storage-layout.ts UPLOAD_INDEX_PREFIX says why);
  // written while the image is analysed, awaited before the message goes on.
  const uploadId = uploadIdOfKey(src.key);
  const indexed = uploadId ? objects.put(deps.resultsBucket, uploadIndexKey(uploadId), Buffer.from(imageId), 'text/plain') : Promise.resolve();
  indexed.catch(() => undefined); // a failed put is thrown where it is awaited, not as an unhandled rejection meanwhile

  const analysis: ImageAnalysis = obj
    ? await analyseImage(obj.body, {
      model, pseudonymKey: deps.pseudonymKey, seed: imageId, now: new Date(receivedAt), given: ids, metadata: obj.metadata,
      dicomOutputs: deps.dicomOutputs,
    })
    : { status: 'FAILED', error: new InputError('TOO_LARGE', tooLargeReason(info.size, limit)), timingsMs: {} };
  Object.assign(timingsMs, analysis.timingsMs);

  if (analysis.status === 'FAILED') {
    timingsMs.total = since(t0);
    const reason = safeText(analysis.error.message);
    const message: StageMessage = {
      ...base, status: 'FAILED', error: { code: analysis.error.code, reason },
      ...(analysis.meta ? { meta: storedMeta(analysis.meta), ...analysis.ids } : {}),
    };
    await indexed;
    await sink.send(message);
    log.warn('image rejected', { imageId, code: analysis.error.code, reason });
    return message;
  }

  const { meta: imageMeta, pictures, dicom } = analysis;
  const keys = outputKeysFor(imageId, undefined, { dicom: !!dicom });
  const t = process.hrtime.bigint();
  const bucket = deps.resultsBucket;
  await Promise.all([
    indexed,
    objects.put(bucket, keys.lung, pictures.lung, 'image/png'),
    objects.put(bucket, keys.lungRight, pictures.lungRight, 'image/png'),
    objects.put(bucket, keys.lungLeft, pictures.lungLeft, 'image/png'),
    objects.put(bucket, keys.opacity, pictures.opacity, 'image/png'),
    objects.put(bucket, keys.overlay, pictures.overlay, 'image/png'),
    ...(dicom?.sc && keys.seg && keys.sr && keys.sc ? [
      objects.put(bucket, keys.seg, dicom.seg, 'application/dicom'),
      objects.put(bucket, keys.sr, dicom.sr, 'application/dicom'),
      objects.put(bucket, keys.sc, dicom.sc, 'application/dicom'),
    ] : []),
  ]);
  timingsMs.store = since(t);
  timingsMs.total = since(t0);
  const message: StageMessage = {
    ...base, status: 'SEGMENTED', ...analysis.ids,
    meta: storedMeta(imageMeta), model: { name: model.manifest.name, version: model.manifest.version }, keys,
    counts: analysis.counts, quality: analysis.quality,
  };
  await sink.send(message);
  log.info('image segmented', { imageId, timingsMs });
  return message;
}

const round = (v: number) => Math.round(v * 10) / 10;
