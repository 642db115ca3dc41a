/**
 * What flows between the stages (segment -> score) and what ends up in the results table.
 * Contains no raw identifiers: patient and study appear only as keyed pseudonyms, the upload's key
 * (which often is a file name such as `DOE^JOHN_MRN-998877.dcm`) as a keyed pseudonym too, and the
 * study date only as the patient's shifted day (src/core/date-shift.ts).
 */
import { createHash } from 'node:crypto';
import type { ImageMeta, InputErrorCode, MaskCounts, OpacityScore, QualityReport } from '../core';
// Not from '../core': its index loads the imaging natives, which the API and router functions do not ship.
import { pseudonymise } from '../core/pseudonym';
import { RESULTS_PREFIX } from './storage-layout';

/** Where an image came from (to read it). `etag` tells two uploads under the same key apart. */
export interface SourceRef {
  bucket: string;
  key: string;
  etag?: string;
  size?: number;
}

/**
 * What results keep of where an image came from: the key only as its keyed pseudonym (`src_...`),
 * which whoever uploaded the file can match against their own mapping (npm start writes one; API
 * clients keep their uploadId). `key` itself, and the object's ETag (for most uploads the MD5 of the file's
 * bytes: whoever holds a film could look its result up by it, and so tie a pseudonymous result, and its
 * patient's shifted dates, to the named file), are kept only when the deployer set keepSourceKeys
 * (KEEP_SOURCE_KEYS=true), for data that is already de-identified. Two uploads under one key are still told
 * apart: the imageId is a hash over the ETag too (imageIdFor).
 */
export interface StoredSource {
  bucket: string;
  keyPseudonym: string;
  key?: string;
  etag?: string;
  size?: number;
}

/** The StoredSource of an upload; the one place that decides whether the key itself is kept. */
export function storedSource(secret: string, src: SourceRef, keepSourceKeys = false): StoredSource {
  return {
    bucket: src.bucket,
    keyPseudonym: pseudonymise(secret, 'source', src.key)!,
    ...(keepSourceKeys ? { key: src.key } : {}),
    ...(keepSourceKeys && src.etag !== undefined ? { etag: src.etag } : {}),
    ...(src.size !== undefined ? { size: src.size } : {}),
  };
}

/**
 * Patient and study of a request, already pseudonymised by whoever received them (the batch router
 * pseudonymises a manifest's ids before it stores or sends anything). The segment stage takes them as
 * given, never re-hashed; a value that is not a pseudonym of its kind is ignored.
 */
export interface PseudonymousIds {
  patientKey?: string;
  studyKey?: string;
}

/** The deployer setting that keeps file names (KEEP_SOURCE_KEYS, CDK context keepSourceKeys): only "true" turns it on. */
export const keepSourceKeysFromEnv = (env: Record<string, string | undefined>): boolean => env.KEEP_SOURCE_KEYS === 'true';

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** Text from an input, made safe to store and log: control characters (CR, LF, ESC...) removed, length-limited. */
export function safeText(text: string, max = 300): string {
  const clean = text.replace(CONTROL, ' ').replace(/ {2,}/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/**
 * The meta that is stored: everything the decoder reports except the acquisition date-time (stored
 * only as the shifted study day), with every text value stripped of control characters and cut to 64
 * characters. The decoder allow-lists tag values at the source; this is the schema-level guard.
 */
export function storedMeta(meta: ImageMeta): ImageMeta {
  const clean = (v: unknown): unknown => {
    if (typeof v === 'string') return safeText(v, 64);
    if (Array.isArray(v)) return v.map(clean);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clean(x)]));
    return v;
  };
  const { acquiredAt: _drop, ...rest } = meta;
  void _drop;
  return clean(rest) as ImageMeta;
}

export type ProcessingPath = 'lambda' | 'sagemaker' | 'local';

export interface OutputKeys {
  lung: string;
  lungRight: string;
  lungLeft: string;
  opacity: string;
  overlay: string;
  result: string;
  /**
   * DICOM inputs only (core/dicom-out): the binary SEG of the masks, the TID 1500 SR of the score, and the overlay
   * as a Secondary Capture for viewers without SEG support.
   */
  seg?: string;
  sr?: string;
  sc?: string;
}

interface StageMessageBase {
  version: 1;
  imageId: string;
  source: StoredSource;
  patientKey?: string;
  studyKey?: string;
  /** The patient's shifted study day (YYYY-MM-DD; src/core/date-shift.ts), never the real date. */
  studyDate?: string;
  receivedAt: string;
  path: ProcessingPath;
  timingsMs: Record<string, number>;
}

export interface SegmentedMessage extends StageMessageBase {
  status: 'SEGMENTED';
  meta: ImageMeta;
  model: { name: string; version: string };
  keys: OutputKeys;
  /** Pixel counts of the masks per lung and zone (core/score.ts countMasks): all the score stage needs. */
  counts: MaskCounts;
  /** What the refusal checks saw (guard probabilities, warnings about a usable but unusual image). */
  quality: QualityReport;
}

export interface FailedMessage extends StageMessageBase {
  status: 'FAILED';
  error: { code: InputErrorCode | 'INTERNAL'; reason: string };
  meta?: ImageMeta;
}

export type StageMessage = SegmentedMessage | FailedMessage;

/** One item per image in the results table (and the body of result.json). */
export interface ResultItem {
  imageId: string;
  status: 'SCORED' | 'FAILED';
  /** Partition key of the byPatient index: the patient pseudonym, or UNKNOWN. */
  patientKey: string;
  studyKey: string;
  /** Sort key of both indexes: `<studyDate, else createdAt>#<imageId>` (a patient's images in study order). */
  sortKey: string;
  /** The patient's shifted study day (YYYY-MM-DD), when the image has a patient and a study date. */
  studyDate?: string;
  /** When the service recorded the result (processing time, not a study date). */
  createdAt: string;
  source: StoredSource;
  path: ProcessingPath;
  errorCode?: string;
  errorReason?: string;
  meta?: ImageMeta;
  model?: { name: string; version: string };
  score?: OpacityScore;
  /** Scored images: the refusal checks' report; `quality.warnings` lists what a reader should check. */
  quality?: QualityReport;
  /** Flattened warning codes, space-separated ('' when none), for analysts' queries. */
  qualityWarnings?: string;
  /** Flattened for analysts' queries (Athena over the table export). */
  opacityPctTotal?: number | null;
  opacityPctRight?: number | null;
  opacityPctLeft?: number | null;
  geographicExtent?: number;
  zoneScore?: number;
  grade?: string;
  riskIcu?: number | null;
  riskMortality?: number | null;
  modelVersion?: string;
  severityVersion?: string;
  keys?: OutputKeys;
  timingsMs: Record<string, number>;
}

/**
 * An S3 ETag without its quotes (S3 returns `"abc"`, notifications carry `abc`): the form image identity uses.
 * The one place that normalises it, so the same object version always gets the same imageId.
 */
export const unquoteEtag = (etag: string | undefined): string | undefined => etag?.replace(/"/g, '');

/** What imageIdFor gives: 32 lower-case hex characters (checked where an imageId arrives from outside). */
export const IMAGE_ID_PATTERN = /^[0-9a-f]{32}$/;

/** Stable id of one uploaded object version: the same event delivered twice gives the same id. */
export function imageIdFor(src: SourceRef): string {
  return createHash('sha256').update(`${src.bucket}\u0000${src.key}\u0000${src.etag ?? ''}`).digest('hex').slice(0, 32);
}

export function outputKeysFor(imageId: string, prefix = RESULTS_PREFIX.slice(0, -1), opts: { dicom?: boolean } = {}): OutputKeys {
  const base = `${prefix}/${imageId}`;
  return {
    ...(opts.dicom ? { seg: `${base}/seg.dcm`, sr: `${base}/sr.dcm`, sc: `${base}/overlay.dcm` } : {}),
    lung: `${base}/lung.png`,
    lungRight: `${base}/lung_right.png`,
    lungLeft: `${base}/lung_left.png`,
    opacity: `${base}/opacity.png`,
    overlay: `${base}/overlay.png`,
    result: `${base}/result.json`,
  };
}

/** The file name each output has when written to a folder (CLI, local runner), by output key. */
export function outputFiles(keys: OutputKeys): Record<string, string> {
  return {
    'lung.png': keys.lung, 'lung_right.png': keys.lungRight, 'lung_left.png': keys.lungLeft,
    'opacity.png': keys.opacity, 'overlay.png': keys.overlay, 'result.json': keys.result,
    ...(keys.seg ? { 'seg.dcm': keys.seg } : {}), ...(keys.sr ? { 'sr.dcm': keys.sr } : {}), ...(keys.sc ? { 'overlay.dcm': keys.sc } : {}),
  };
}
