/**
 * Where things live in the two buckets: the one definition that the runtime (handlers, local runner, API) and
 * the CDK app (notifications, IAM resources, lifecycle rules, SageMaker output paths) both import.
 */

/** Uploads bucket: images to analyse (each object here triggers the pipeline). */
export const UPLOAD_PREFIX = 'uploads/';
/**
 * Days an upload is kept before it is deleted (the uploads bucket's lifecycle rule on AWS, CDK context
 * uploadRetentionDays; `npm run api` applies the same to its local S3). Its result stays findable by uploadId
 * through UPLOAD_INDEX_PREFIX.
 */
export const DEFAULT_UPLOAD_RETENTION_DAYS = 30;

/** Uploads bucket: batch manifests (CSV/JSON lists of images) for the batch router. */
export const BATCH_MANIFEST_PREFIX = 'batches/';
/** Uploads bucket: images that batch manifests refer to (not processed on their own). */
export const BATCH_IMAGE_PREFIX = 'batch-images/';

/** Results bucket: per-image outputs, `results/<imageId>/...` (see messages.ts outputKeysFor). */
export const RESULTS_PREFIX = 'results/';
/**
 * Results bucket: `results/by-upload/<uploadId>`, the imageId (plain text) of the image uploaded through the API
 * under that uploadId. The segment stage writes it, so that GET /v1/uploads/{uploadId} still finds the result once
 * the upload itself is deleted (the uploads bucket keeps objects uploadRetentionDays, results resultRetentionDays).
 * Under RESULTS_PREFIX: the results' retention and permissions.
 */
export const UPLOAD_INDEX_PREFIX = `${RESULTS_PREFIX}by-upload/`;
export const uploadIndexKey = (uploadId: string): string => `${UPLOAD_INDEX_PREFIX}${uploadId}`;

/** The uploadId of an API upload's key (`uploads/<uploadId>/<name>`, uploadKeyFor), else undefined. */
export function uploadIdOfKey(key: string): string | undefined {
  if (!key.startsWith(UPLOAD_PREFIX)) return undefined;
  return /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/[^/]+$/.exec(key.slice(UPLOAD_PREFIX.length))?.[1];
}

/** Results bucket: the batch router's per-image requests to the SageMaker endpoint. */
export const BATCH_REQUESTS_PREFIX = 'batches/requests/';
/** Results bucket: one status object per batch. */
export const BATCH_STATUS_PREFIX = 'batches/status/';
/** Results bucket: where SageMaker async inference writes its outputs and failures. */
export const BATCH_OUTPUTS_PREFIX = 'batches/outputs/';
export const BATCH_FAILURES_PREFIX = 'batches/failures/';

/** Prefixes under batches/ that are the router's own bookkeeping, never manifests. */
export const RESERVED_BATCH_PREFIXES = [BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_FAILURES_PREFIX];

/** `uploads/<uuid>/<name>`: the name keeps letters, digits, dot, dash and underscore. */
export function sanitiseFileName(fileName: string): string {
  const base = fileName.split(/[\\/]/).pop() ?? '';
  const clean = base.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(-100);
  return clean.length > 0 ? clean : 'image';
}

/**
 * The key of an upload. By default `uploads/<uploadId>/image<.ext>`: the client's file name (often a
 * patient's name or MRN) is not stored anywhere, only its extension when it is an image's; the client
 * keeps the uploadId -> file mapping. With keepSourceKeys, `uploads/<uploadId>/<sanitised file name>`.
 */
export function uploadKeyFor(uploadId: string, fileName: string, keepSourceKeys = false): string {
  const name = sanitiseFileName(fileName);
  if (keepSourceKeys) return `${UPLOAD_PREFIX}${uploadId}/${name}`;
  const ext = /\.(dcm|dicom|png|jpe?g)$/i.exec(name)?.[0].toLowerCase() ?? '';
  return `${UPLOAD_PREFIX}${uploadId}/image${ext}`;
}
