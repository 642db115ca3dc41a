/**
 * Deploy-time settings of the CxrOpacity stack. Every value has a default; each can be overridden with
 * CDK context (`npx cdk deploy -c segmentConcurrency=20`) or in `cdk.json`.
 */
import type { Construct } from 'constructs';
import { parseIdentityMode, type IdentityMode } from '../../src/core/dicom-out/identity';
import { DEFAULT_MAX_INPUT_BYTES, S3_MAX_PUT_BYTES } from '../../src/limits';
import { DEFAULT_UPLOAD_RETENTION_DAYS } from '../../src/pipeline/storage-layout';

export interface CxrOpacityConfig {
  /** Reserved concurrency of the segment function, also the SQS event source's maximum concurrency. */
  readonly segmentConcurrency: number;
  /** Messages per segment invocation (1..5); each image takes seconds of CPU, so 1 is the default. */
  readonly segmentBatchSize: number;
  /** Reserved concurrency of the score function, also its event source's maximum concurrency. */
  readonly scoreConcurrency: number;
  /** Messages per score invocation (1..10). */
  readonly scoreBatchSize: number;
  /** Retention of the functions' CloudWatch log groups and of the S3 server access logs, in days. */
  readonly logRetentionDays: number;
  /** Days after which non-current object versions (overwritten or deleted uploads/results) expire. */
  readonly noncurrentVersionExpirationDays: number;
  /**
   * Days an upload (the raw DICOM/PNG/JPEG, with every identifier it carries) is kept in the uploads bucket,
   * batch manifests included. Processing takes minutes; keep it above the dead-letter queues' 14 days so a
   * redrive still finds its image.
   */
  readonly uploadRetentionDays: number;
  /** Days the masks, overlays and result.json (and batch requests/outputs) are kept in the results bucket. */
  readonly resultRetentionDays: number;
  /**
   * Largest input file, in bytes (src/limits.ts, default 256 MiB): the presigned upload refuses larger ones
   * and the segment stage fails them TOO_LARGE without reading them. Passed to the functions as MAX_INPUT_BYTES.
   */
  readonly maxInputBytes: number;
  /** Days a daily results-table export (and an Athena query result) is kept in the analytics bucket. */
  readonly exportRetentionDays: number;
  /** Deploy the GPU SageMaker batch path (needs ml.g4dn quota for async endpoints); `-c batch=false` leaves it out. */
  readonly batch: boolean;
  /**
   * Keep upload keys (file names) in result items, result.json, the API and the analytics export.
   * Default false: results name the upload only by a keyed pseudonym, because file names often carry
   * patient names or MRNs. Turn on (`-c keepSourceKeys=true`) only for data that is already de-identified.
   */
  readonly keepSourceKeys: boolean;
  /**
   * Identity of the DICOM SEG and SR (seg.dcm, sr.dcm) written for each DICOM input, passed to the segment
   * function, the SageMaker model and the analyze function as DICOM_IDENTITY (src/core/dicom-out/identity.ts).
   * `off` (default): no patient or study of the source in them; `linked`: the source's patient and study
   * modules and real UIDs, so a PACS files them with the study. This puts patient identifiers (names, ids,
   * dates, UIDs) in the results bucket; `deidentified`: PS3.15 basic profile, keyed pseudonym UIDs.
   * `-c dicomIdentity=linked`; see cdk/README.md.
   */
  readonly dicomIdentity: IdentityMode;
  /** Optional e-mail address subscribed to the alarm topic. */
  readonly alarmEmail?: string;
}

export const DEFAULT_CONFIG: CxrOpacityConfig = {
  segmentConcurrency: 10,
  segmentBatchSize: 1,
  scoreConcurrency: 5,
  scoreBatchSize: 10,
  logRetentionDays: 365,
  noncurrentVersionExpirationDays: 90,
  uploadRetentionDays: DEFAULT_UPLOAD_RETENTION_DAYS,
  resultRetentionDays: 365,
  maxInputBytes: DEFAULT_MAX_INPUT_BYTES,
  exportRetentionDays: 30,
  batch: true,
  keepSourceKeys: false,
  dicomIdentity: 'off',
};

function intContext(scope: Construct, key: string, fallback: number, min: number, max: number): number {
  const raw: unknown = scope.node.tryGetContext(key);
  if (raw === undefined || raw === null || raw === '') return fallback;
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`context ${key} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return n;
}

function boolContext(scope: Construct, key: string, fallback: boolean): boolean {
  const raw: unknown = scope.node.tryGetContext(key);
  if (raw === undefined || raw === null || raw === '') return fallback;
  if (raw === true || raw === 'true') return true;
  if (raw === false || raw === 'false') return false;
  throw new Error(`context ${key} must be true or false, got ${JSON.stringify(raw)}`);
}

function identityContext(scope: Construct, key: string, fallback: IdentityMode): IdentityMode {
  const raw: unknown = scope.node.tryGetContext(key);
  if (raw === undefined || raw === null || raw === '') return fallback;
  try {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- an object reads "[object Object]", which parseIdentityMode refuses
    return parseIdentityMode(String(raw));
  } catch (e) {
    throw new Error(`context ${key}: ${(e as Error).message}`, { cause: e });
  }
}

/** Reads the settings from CDK context, falling back to DEFAULT_CONFIG, and validates them. */
export function configFromContext(scope: Construct, overrides: Partial<CxrOpacityConfig> = {}): CxrOpacityConfig {
  const d = { ...DEFAULT_CONFIG, ...overrides };
  const email: unknown = scope.node.tryGetContext('alarmEmail') ?? d.alarmEmail;
  const cfg: CxrOpacityConfig = {
    // Lambda's event source mapping needs a maximum concurrency of at least 2.
    segmentConcurrency: intContext(scope, 'segmentConcurrency', d.segmentConcurrency, 2, 1000),
    segmentBatchSize: intContext(scope, 'segmentBatchSize', d.segmentBatchSize, 1, 5),
    scoreConcurrency: intContext(scope, 'scoreConcurrency', d.scoreConcurrency, 2, 1000),
    scoreBatchSize: intContext(scope, 'scoreBatchSize', d.scoreBatchSize, 1, 10),
    logRetentionDays: intContext(scope, 'logRetentionDays', d.logRetentionDays, 1, 3653),
    noncurrentVersionExpirationDays: intContext(scope, 'noncurrentVersionExpirationDays', d.noncurrentVersionExpirationDays, 1, 3653),
    uploadRetentionDays: intContext(scope, 'uploadRetentionDays', d.uploadRetentionDays, 1, 3653),
    resultRetentionDays: intContext(scope, 'resultRetentionDays', d.resultRetentionDays, 1, 3653),
    maxInputBytes: intContext(scope, 'maxInputBytes', d.maxInputBytes, 1, S3_MAX_PUT_BYTES),
    batch: boolContext(scope, 'batch', d.batch),
    keepSourceKeys: boolContext(scope, 'keepSourceKeys', d.keepSourceKeys),
    dicomIdentity: identityContext(scope, 'dicomIdentity', d.dicomIdentity),
    exportRetentionDays: intContext(scope, 'exportRetentionDays', d.exportRetentionDays, 1, 3653),
    ...(typeof email === 'string' && email !== '' ? { alarmEmail: email } : {}),
  };
  return cfg;
}
