/**
 * Stage 1, for one uploaded object: decode, segment, write the masks and overlay next to each other,
 * and hand a message to the score stage. Inputs we cannot analyse become a FAILED message with the
 * reason (never retried); anything else (storage, network) is thrown so the queue retries it and,
 * after the last try, dead-letters it.
 */
import {
  countMasks, opacityPctOf, decodeImage, isInputError, isPseudonym, pseudonymise, renderOutputs, segmentImage, shiftedStudyDate,
  type DecodedImage, type SegmentationModel,
} from '../core';
import {
  imageIdFor, outputKeysFor, safeText, storedMeta, storedSource,
  type ProcessingPath, type PseudonymousIds, type SourceRef, type StageMessage,
} from './messages';
import type { MessageSink, ObjectStore, StageLogger } from './ports';
import { InputError } from '../core/errors';
import { scoreCounts } from '../core/score';
import { upsampleMasks } from '../core/upsample';
import type { SeverityConfig } from '../core/severity';
import { buildOverlayCapture, writeDicomOutputs, type IdentityMode } from '../core/dicom-out';
import { DEFAULT_MAX_INPUT_BYTES, tooLargeReason } from '../limits';

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
  const given = {
    patientKey: ids.patientKey && isPseudonym('patient', ids.patientKey) ? ids.patientKey : undefined,
    studyKey: ids.studyKey && isPseudonym('study', ids.studyKey) ? ids.studyKey : undefined,
  };
  const identify = (img: DecodedImage) => {
    const patientKey = pseudonymise(deps.pseudonymKey, 'patient', img.identifiers.patientId)
      ?? given.patientKey ?? pseudonymise(deps.pseudonymKey, 'patient', obj?.metadata[PATIENT_METADATA]);
    const studyKey = pseudonymise(deps.pseudonymKey, 'study', img.identifiers.studyInstanceUid)
      ?? given.studyKey ?? pseudonymise(deps.pseudonymKey, 'study', obj?.metadata[STUDY_METADATA]);
    return { patientKey, studyKey, studyDate: shiftedStudyDate(deps.pseudonymKey, patientKey, img.meta.acquiredAt ?? obj?.metadata[ACQUIRED_METADATA]) };
  };

  let decoded: DecodedImage | undefined;
  try {
    let t = process.hrtime.bigint();
    if (!obj) throw new InputError('TOO_LARGE', tooLargeReason(info.size, limit));
    const img: DecodedImage = await decodeImage(obj.body);
    decoded = img;
    timingsMs.decode = since(t);
    const who = identify(img);
    const { masks, timings, quality } = await segmentImage(img, model);
    // Everything the score needs, as counts on the working grid scaled to the image's pixels: the score stage
    // reads no mask back.
    const full = { width: img.width, height: img.height };
    const counts = countMasks(masks, full);
    timingsMs.preprocess = round(timings.preprocessMs);
    timingsMs.inference = round(timings.inferenceMs);
    timingsMs.postprocess = round(timings.postprocessMs);

    t = process.hrtime.bigint();
    const pictures = await renderOutputs(img, masks, { legend: opacityPctOf(counts) });
    let dicomOut: { seg: Uint8Array; sr: Uint8Array; sc: Uint8Array } | undefined;
    if (deps.dicomOutputs && img.dicomSource) {
      const input = {
        source: img.dicomSource, model: model.manifest, identity: deps.dicomOutputs.identity, secret: deps.pseudonymKey,
        seed: imageId, patientKey: who.patientKey, now: new Date(receivedAt),
      };
      dicomOut = {
        ...writeDicomOutputs({ ...input, masks: upsampleMasks(masks, full.width, full.height) }, scoreCounts(counts, deps.dicomOutputs.severity, img.meta.pixelSpacingMm)),
        // The overlay as a DICOM Secondary Capture, for viewers and PACS without SEG support.
        sc: buildOverlayCapture(input, pictures.overlayRgb),
      };
    }
    const keys = outputKeysFor(imageId, undefined, { dicom: !!dicomOut });
    timingsMs.render = since(t);
    t = process.hrtime.bigint();
    const bucket = deps.resultsBucket;
    await Promise.all([
      objects.put(bucket, keys.lung, pictures.lung, 'image/png'),
      objects.put(bucket, keys.lungRight, pictures.lungRight, 'image/png'),
      objects.put(bucket, keys.lungLeft, pictures.lungLeft, 'image/png'),
      objects.put(bucket, keys.opacity, pictures.opacity, 'image/png'),
      objects.put(bucket, keys.overlay, pictures.overlay, 'image/png'),
      ...(dicomOut && keys.seg && keys.sr && keys.sc ? [
        objects.put(bucket, keys.seg, dicomOut.seg, 'application/dicom'),
        objects.put(bucket, keys.sr, dicomOut.sr, 'application/dicom'),
        objects.put(bucket, keys.sc, dicomOut.sc, 'application/dicom'),
      ] : []),
    ]);
    timingsMs.store = since(t);
    timingsMs.total = since(t0);
    const message: StageMessage = {
      ...base, status: 'SEGMENTED', ...who,
      meta: storedMeta(img.meta), model: { name: model.manifest.name, version: model.manifest.version }, keys,
      counts, quality,
    };
    await sink.send(message);
    log.info('image segmented', { imageId, timingsMs });
    return message;
  } catch (e) {
    if (!isInputError(e)) throw e;
    timingsMs.total = since(t0);
    const reason = safeText(e.message);
    const message: StageMessage = {
      ...base, status: 'FAILED', error: { code: e.code, reason },
      ...(decoded ? { meta: storedMeta(decoded.meta), ...identify(decoded) } : {}),
    };
    await sink.send(message);
    log.warn('image rejected', { imageId, code: e.code, reason });
    return message;
  }
}

const round = (v: number) => Math.round(v * 10) / 10;
