/**
 * The batch router: for each manifest object created under `batches/` in the uploads bucket, validate
 * it, check that the listed images exist (their ETags make the imageIds the same on both paths), pick
 * the route (chooseRoute: batch size and ingest-queue backlog) and submit:
 *  - lambda: each image to the ingest queue (IngestQueue; on AWS one S3-notification-shaped message per
 *    image, which the segment function reads exactly as it reads S3's own notifications);
 *  - sagemaker: one small JSON request object per image under `batches/requests/<batchId>/` and an
 *    asynchronous invocation naming it (AsyncEndpoint); the endpoint's notifications reach the
 *    batch-result function, which forwards the outcome to the score queue.
 * The manifest's patient and study ids are pseudonymised here, before anything is stored or sent: the
 * request objects and queue messages carry only `pt_`/`st_` pseudonyms (the same ones the segment stage
 * makes from DICOM tags or upload metadata), which the segment stage takes as given.
 * A status object `batches/status/<batchId>.json` records the route, the reason and every image's
 * state. The same manifest delivered again (same ETag) submits nothing twice: images already
 * submitted are skipped, so a retry after a partial failure only sends the rest.
 *
 * Only ports (src/pipeline/ports.ts): the AWS adapters and the Lambda handler are in src/aws.
 */
import { createHash } from 'node:crypto';
import { pseudonymise } from '../core/pseudonym';
import type { AsyncRequest } from './batch-request';
import { BATCH_PREFIX, ManifestError, parseBatchManifest, RESERVED_PREFIXES, type BatchImage } from './batch-manifest';
import { chooseRoute, type Route, type RouteConfig } from './batch-route';
import { imageIdFor, storedSource, type PseudonymousIds, type SourceRef } from './messages';
import { isForbidden, isNotFound, type AsyncEndpoint, type IngestQueue, type ObjectInfo, type ObjectStore, type QueueBacklog, type StageLogger } from './ports';
import { BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX } from './storage-layout';

export interface BatchRoutingConfig extends RouteConfig {
  /** Bucket for `batches/requests/` and `batches/status/` (the results bucket, so writing them triggers nothing). */
  workBucket: string;
  maxImages: number;
  /** Image keys must lie under one of these prefixes (what the endpoint and segment roles may read); unset: any. */
  imagePrefixes?: string[];
  /** Largest manifest object read (default 5 MiB). */
  maxManifestBytes?: number;
  /** Parallel image checks / endpoint invocations (default 16). */
  concurrency?: number;
  /** How long a request may wait in the endpoint's queue (AsyncInvocation.requestTtlSeconds). */
  requestTtlSeconds?: number;
  invocationTimeoutSeconds?: number;
}

export interface BatchRoutingDeps {
  /** Reads manifests and checks images (uploads bucket); reads and writes requests and status (workBucket). */
  objects: ObjectStore;
  /** The segment stage's queue: the Lambda route. */
  ingest: IngestQueue;
  /** The backlog of that queue. */
  backlog: QueueBacklog;
  /** The async endpoint; without it every batch goes to Lambda. */
  endpoint?: AsyncEndpoint;
  config: BatchRoutingConfig;
  /** HMAC key of the pseudonyms (the segment stage's): manifest ids are hashed before anything is stored. */
  pseudonymKey: string;
  /** KEEP_SOURCE_KEYS: the request objects' stored source keeps the key (see src/pipeline/messages.ts storedSource). */
  keepSourceKeys?: boolean;
  now?: () => Date;
}

export type ImageState = 'SUBMITTED' | 'REJECTED' | 'FAILED';

export interface BatchImageStatus {
  key: string;
  imageId?: string;
  state: ImageState;
  reason?: string;
  /** SageMaker route: where the endpoint will write the StageMessage. */
  outputLocation?: string;
  inferenceId?: string;
}

export interface BatchStatus {
  version: 1;
  batchId: string;
  manifest: { bucket: string; key: string; etag?: string };
  state: 'SUBMITTED' | 'PARTIALLY_SUBMITTED' | 'REJECTED';
  route?: Route;
  reason: string;
  backlog?: number;
  createdAt: string;
  updatedAt: string;
  counts: { listed: number; submitted: number; rejected: number; failed: number };
  images: BatchImageStatus[];
}

export interface RouteOutcome {
  batchId: string;
  status?: BatchStatus;
  skipped?: string;
}

export const requestKeyFor = (batchId: string, imageId: string) => `${BATCH_REQUESTS_PREFIX}${batchId}/${imageId}.json`;
export const statusKeyFor = (batchId: string) => `${BATCH_STATUS_PREFIX}${batchId}.json`;
export const batchIdFor = (m: { bucket: string; key: string; etag?: string }) =>
  createHash('sha256').update(`${m.bucket}\u0000${m.key}\u0000${m.etag ?? ''}`).digest('hex').slice(0, 24);

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Routes one manifest object. Throws (so the invocation is retried) only when something transient failed. */
export async function routeManifest(manifest: SourceRef, deps: BatchRoutingDeps, log: StageLogger): Promise<RouteOutcome> {
  const { objects, config: cfg } = deps;
  const now = () => (deps.now?.() ?? new Date()).toISOString();
  const concurrency = cfg.concurrency ?? 16;
  if (!manifest.key.startsWith(BATCH_PREFIX) || RESERVED_PREFIXES.some((p) => manifest.key.startsWith(p))) {
    return { batchId: '', skipped: `${manifest.key} is not a batch manifest` };
  }
  // Replaced or deleted since the event: the newer version has an event of its own.
  const changed = (): RouteOutcome => {
    log.warn('batch manifest changed or vanished before it was read', {});
    return { batchId: '', skipped: `${manifest.key} changed or was deleted after the event` };
  };
  let info: ObjectInfo;
  try {
    info = await objects.head(manifest.bucket, manifest.key);
  } catch (e) {
    if (isNotFound(e)) return changed();
    throw e;
  }
  if (manifest.etag !== undefined && info.etag !== undefined && info.etag !== manifest.etag) return changed();
  const etag = info.etag ?? manifest.etag;
  const ref = { bucket: manifest.bucket, key: manifest.key, etag };
  const batchId = batchIdFor(ref);
  const statusKey = statusKeyFor(batchId);

  let previous: BatchStatus | undefined;
  try {
    const prev = await objects.get(cfg.workBucket, statusKey);
    previous = JSON.parse(Buffer.from(prev.body).toString('utf8')) as BatchStatus;
  } catch (e) {
    // Without s3:ListBucket, S3 answers 403 rather than 404 for a key that does not exist.
    if (!isNotFound(e) && !isForbidden(e)) throw e;
  }
  if (previous && previous.state !== 'PARTIALLY_SUBMITTED') {
    log.info('batch already routed', { batchId, state: previous.state });
    return { batchId, status: previous, skipped: `batch ${batchId} was already ${previous.state.toLowerCase()}` };
  }

  const createdAt = previous?.createdAt ?? now();
  const writeStatus = async (s: Omit<BatchStatus, 'version' | 'batchId' | 'manifest' | 'createdAt' | 'updatedAt'>) => {
    const status: BatchStatus = { version: 1, batchId, manifest: ref, createdAt, updatedAt: now(), ...s };
    await objects.put(cfg.workBucket, statusKey, JSON.stringify(status, null, 1), 'application/json');
    return status;
  };
  const reject = async (reason: string) => {
    // The reason (in the status object, for the submitter) can quote keys and manifest text: not logged.
    log.warn('batch manifest rejected', { batchId });
    return { batchId, status: await writeStatus({ state: 'REJECTED', reason, counts: { listed: 0, submitted: 0, rejected: 0, failed: 0 }, images: [] }) };
  };

  // The size cap is checked on the object's metadata, before a byte of it is read.
  const maxBytes = cfg.maxManifestBytes ?? 5 * 1024 * 1024;
  if (info.size > maxBytes) return reject(`the manifest is ${info.size} bytes, over the limit of ${maxBytes}`);
  let body: Uint8Array;
  try {
    const obj = await objects.get(manifest.bucket, manifest.key);
    // Replaced between the two reads: the version read is not the one the batch is named after.
    if (etag !== undefined && obj.etag !== undefined && obj.etag !== etag) return changed();
    body = obj.body;
  } catch (e) {
    if (isNotFound(e)) return changed();
    throw e;
  }
  let images: BatchImage[];
  try {
    images = parseBatchManifest(body, manifest.key, cfg.maxImages);
  } catch (e) {
    if (e instanceof ManifestError) return reject(e.message);
    throw e;
  }

  // Which images exist, with the ETag that makes their imageId.
  const done = new Map((previous?.images ?? []).filter((i) => i.state === 'SUBMITTED').map((i) => [i.key, i]));
  const checked = await mapLimit(images, concurrency, async (img): Promise<{ img: BatchImage; src?: SourceRef; status?: BatchImageStatus }> => {
    const prior = done.get(img.key);
    if (prior) return { img, status: prior };
    if (cfg.imagePrefixes && !cfg.imagePrefixes.some((p) => img.key.startsWith(p))) {
      return { img, status: { key: img.key, state: 'REJECTED', reason: `key is outside the prefixes batch images may use (${cfg.imagePrefixes.join(', ')})` } };
    }
    try {
      const head = await objects.head(manifest.bucket, img.key);
      return { img, src: { bucket: manifest.bucket, key: img.key, etag: head.etag, size: head.size } };
    } catch (e) {
      if (isNotFound(e)) return { img, status: { key: img.key, state: 'REJECTED', reason: `no object ${img.key} in bucket ${manifest.bucket}` } };
      if (isForbidden(e)) return { img, status: { key: img.key, state: 'REJECTED', reason: `no readable object ${img.key} in bucket ${manifest.bucket} (missing, or access denied)` } };
      throw e;
    }
  });
  const todo = checked.flatMap((c) => (c.src ? [{ img: c.img, src: c.src }] : []));
  const accepted = checked.filter((c) => c.src || c.status?.state === 'SUBMITTED').length;

  const endpoint = cfg.endpointConfigured ? deps.endpoint : undefined;
  let backlog: number | undefined;
  let decision: { route: Route; reason: string };
  if (previous?.route) decision = { route: previous.route, reason: previous.reason };
  else {
    if (endpoint && accepted < cfg.batchThreshold) {
      try {
        backlog = await deps.backlog.waiting();
      } catch (e) {
        log.warn('could not read the ingest queue backlog', { error: (e as Error).message });
      }
    }
    decision = chooseRoute({ batchSize: accepted, backlog }, { ...cfg, endpointConfigured: endpoint !== undefined });
  }

  const idsOf = (img: BatchImage): PseudonymousIds => ({
    patientKey: pseudonymise(deps.pseudonymKey, 'patient', img.patientId),
    studyKey: pseudonymise(deps.pseudonymKey, 'study', img.studyId),
  });
  const results = new Map<string, BatchImageStatus>();
  if (decision.route === 'lambda') {
    const refused = await deps.ingest.send(todo.map((c) => ({ source: c.src, ids: idsOf(c.img) })));
    todo.forEach(({ src }, i) => {
      const reason = refused[i];
      results.set(src.key, { key: src.key, imageId: imageIdFor(src), state: reason === undefined ? 'SUBMITTED' : 'FAILED', ...(reason === undefined ? {} : { reason }) });
    });
  } else {
    await mapLimit(todo, concurrency, async ({ img, src }) => {
      const imageId = imageIdFor(src);
      try {
        const reqKey = requestKeyFor(batchId, imageId);
        // The key is what the endpoint reads; `stored` is what a FAILED result may keep of it (batch-result).
        const request: AsyncRequest = {
          source: { bucket: src.bucket, key: src.key, etag: src.etag }, ...idsOf(img),
          stored: storedSource(deps.pseudonymKey, src, deps.keepSourceKeys), batchId,
        };
        await objects.put(cfg.workBucket, reqKey, JSON.stringify(request), 'application/json');
        // A batch routed to the endpoint before, whose endpoint is gone since: the images fail and are retried.
        if (!deps.endpoint) throw new Error('no async endpoint is configured');
        const res = await deps.endpoint.invoke({
          input: { bucket: cfg.workBucket, key: reqKey }, inferenceId: imageId,
          requestTtlSeconds: cfg.requestTtlSeconds, invocationTimeoutSeconds: cfg.invocationTimeoutSeconds,
        });
        results.set(src.key, { key: src.key, imageId, state: 'SUBMITTED', inferenceId: res.inferenceId ?? imageId, outputLocation: res.outputLocation });
      } catch (e) {
        const name = (e as { name?: string } | undefined)?.name ?? '';
        log.error('could not submit an image to the endpoint', { batchId, imageId, error: (e as Error).message, name });
        results.set(src.key, { key: src.key, imageId, state: 'FAILED', reason: `${name || 'Error'}: ${(e as Error).message}` });
      }
    });
  }

  const statuses = checked.map((c) => c.status ?? results.get(c.img.key)!);
  const counts = {
    listed: statuses.length,
    submitted: statuses.filter((s) => s.state === 'SUBMITTED').length,
    rejected: statuses.filter((s) => s.state === 'REJECTED').length,
    failed: statuses.filter((s) => s.state === 'FAILED').length,
  };
  const status = await writeStatus({
    state: counts.failed > 0 ? 'PARTIALLY_SUBMITTED' : 'SUBMITTED',
    route: decision.route, reason: decision.reason, backlog: backlog ?? previous?.backlog, counts, images: statuses,
  });
  log.info('batch routed', { batchId, route: decision.route, reason: decision.reason, ...counts });
  if (counts.failed > 0) {
    throw new Error(`batch ${batchId}: ${counts.failed} of ${counts.listed} images could not be submitted; the retry sends only those`);
  }
  return { batchId, status };
}
