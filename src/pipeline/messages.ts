/**
 * What flows between the stages (segment -> score) and what ends up in the results table.
 * Contains no raw identifiers: patient and study appear only as keyed pseudonyms.
 */
import { createHash } from 'node:crypto';
import type { ImageMeta, InputErrorCode, OpacityScore } from '../core';

/** Where an image came from. `etag` tells two uploads under the same key apart. */
export interface SourceRef {
  bucket: string;
  key: string;
  etag?: string;
  size?: number;
}

export type ProcessingPath = 'lambda' | 'sagemaker' | 'local';

export interface OutputKeys {
  lung: string;
  lungRight: string;
  lungLeft: string;
  opacity: string;
  overlay: string;
  result: string;
}

interface StageMessageBase {
  version: 1;
  imageId: string;
  source: SourceRef;
  patientKey?: string;
  studyKey?: string;
  acquiredAt?: string;
  receivedAt: string;
  path: ProcessingPath;
  timingsMs: Record<string, number>;
}

export interface SegmentedMessage extends StageMessageBase {
  status: 'SEGMENTED';
  meta: ImageMeta;
  model: { name: string; version: string };
  keys: OutputKeys;
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
  /** Sort key of both indexes: time order, then image. */
  sortKey: string;
  acquiredAt?: string;
  createdAt: string;
  source: SourceRef;
  path: ProcessingPath;
  errorCode?: string;
  errorReason?: string;
  meta?: ImageMeta;
  model?: { name: string; version: string };
  score?: OpacityScore;
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

/** Stable id of one uploaded object version: the same event delivered twice gives the same id. */
export function imageIdFor(src: SourceRef): string {
  return createHash('sha256').update(`${src.bucket}\u0000${src.key}\u0000${src.etag ?? ''}`).digest('hex').slice(0, 32);
}

export function outputKeysFor(imageId: string, prefix = 'results'): OutputKeys {
  const base = `${prefix}/${imageId}`;
  return {
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
  };
}
