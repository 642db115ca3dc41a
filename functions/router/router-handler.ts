/**
 * The batch router: for each manifest object created under `batches/` in the uploads bucket, validate
 * it, check that the listed images exist (their ETags make the imageIds the same on both paths), pick
 * the route (chooseRoute: batch size and ingest-queue backlog) and submit:
 *  - lambda: one S3-notification-shaped message per image to the ingest queue, which the segment
 *    function reads exactly as it reads S3's own notifications;
 *  - sagemaker: one small JSON request object per image under `batches/requests/<batchId>/` and an
 *    InvokeEndpointAsync naming it as the InputLocation; the endpoint's SNS notifications reach the
 *    batch-result function, which forwards the outcome to the score queue.
 * The manifest's patient and study ids are pseudonymised here, before anything is stored or sent: the
 * request objects and queue messages carry only `pt_`/`st_` pseudonyms (the same ones the segment stage
 * makes from DICOM tags or upload metadata), which the segment stage takes as given.
 * A status object `batches/status/<batchId>.json` records the route, the reason and every image's
 * state. The same manifest delivered again (same ETag) submits nothing twice: images already
 * submitted are skipped, so a retry after a partial failure only sends the rest.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { InvokeEndpointAsyncCommand, type SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { GetQueueAttributesCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, S3Event, SQSEvent } from 'aws-lambda';
import { pseudonymise } from '../../src/core/pseudonym';
import { imageIdFor, storedSource, unquoteEtag, type PseudonymousIds, type SourceRef } from '../../src/pipeline/messages';
import type { StageLogger } from '../../src/pipeline/ports';
import type { AsyncRequest } from '../../src/pipeline/batch-request';
import { stageLogger, type Observability } from '../../src/aws/observability';
import { createdObjects, objectsInS3Notification, s3Notification } from '../../src/aws/s3-notification';
import { BATCH_PREFIX, ManifestError, parseBatchManifest, RESERVED_PREFIXES, type BatchImage } from './manifest';
import { chooseRoute, type Route, type RouteConfig } from './route';
import { BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX } from '../../src/pipeline/storage-layout';

export interface RouterConfig extends RouteConfig {
  ingestQueueUrl: string;
  /** The async endpoint; without it every batch goes to Lambda. */
  endpointName?: string;
  /** Bucket for `batches/requests/` and `batches/status/` (the results bucket, so writing them triggers nothing). */
  workBucket: string;
  maxImages: number;
  /** Image keys must lie under one of these prefixes (what the endpoint and segment roles may read); unset: any. */
  imagePrefixes?: string[];
  /** Largest manifest object read (default 5 MiB). */
  maxManifestBytes?: number;
  /** Parallel HeadObject / InvokeEndpointAsync calls (default 16). */
  concurrency?: number;
  /** How long a request may wait in the endpoint's queue (InvokeEndpointAsync RequestTTLSeconds). */
  requestTtlSeconds?: number;
  invocationTimeoutSeconds?: number;
}

export interface RouterDeps {
  s3: S3Client;
  sqs: SQSClient;
  sagemaker: SageMakerRuntimeClient;
  config: RouterConfig;
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

const errName = (e: unknown) => (e as { name?: string })?.name ?? '';
const statusCode = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
const isNotFound = (e: unknown) => ['NoSuchKey', 'NotFound'].includes(errName(e)) || statusCode(e) === 404;
const isForbidden = (e: unknown) => errName(e) === 'AccessDenied' || errName(e) === 'Forbidden' || statusCode(e) === 403;

export interface RouteOutcome {
  batchId: string;
  status?: BatchStatus;
  skipped?: string;
}

/** Routes one manifest object. Throws (so the invocation is retried) only when something transient failed. */
export async function routeManifest(manifest: SourceRef, deps: RouterDeps, log: StageLogger): Promise<RouteOutcome> {
  const { s3, sqs, sagemaker, config: cfg } = deps;
  const now = () => (deps.now?.() ?? new Date()).toISOString();
  const concurrency = cfg.concurrency ?? 16;
  if (!manifest.key.startsWith(BATCH_PREFIX) || RESERVED_PREFIXES.some((p) => manifest.key.startsWith(p))) {
    return { batchId: '', skipped: `${manifest.key} is not a batch manifest` };
  }
  let obj;
  try {
    obj = await s3.send(new GetObjectCommand({ Bucket: manifest.bucket, Key: manifest.key, IfMatch: manifest.etag ? `"${manifest.etag}"` : undefined }));
  } catch (e) {
    // Replaced or deleted since the event: the newer version has an event of its own.
    if (errName(e) === 'PreconditionFailed' || statusCode(e) === 412 || isNotFound(e)) {
      log.warn('batch manifest changed or vanished before it was read', {});
      return { batchId: '', skipped: `${manifest.key} changed or was deleted after the event` };
    }
    throw e;
  }
  const etag = unquoteEtag(obj.ETag) ?? manifest.etag;
  const ref = { bucket: manifest.bucket, key: manifest.key, etag };
  const batchId = batchIdFor(ref);
  const statusKey = statusKeyFor(batchId);

  let previous: BatchStatus | undefined;
  try {
    const prev = await s3.send(new GetObjectCommand({ Bucket: cfg.workBucket, Key: statusKey }));
    previous = JSON.parse(await prev.Body!.transformToString()) as BatchStatus;
  } catch (e) {
    // Without s3:ListBucket, S3 answers 403 rather than 404 for a key that does not exist.
    if (!isNotFound(e) && !isForbidden(e)) throw e;
  }
  if (previous && previous.state !== 'PARTIALLY_SUBMITTED') {
    obj.Body?.transformToByteArray().catch(() => undefined);
    log.info('batch already routed', { batchId, state: previous.state });
    return { batchId, status: previous, skipped: `batch ${batchId} was already ${previous.state.toLowerCase()}` };
  }

  const createdAt = previous?.createdAt ?? now();
  const writeStatus = async (s: Omit<BatchStatus, 'version' | 'batchId' | 'manifest' | 'createdAt' | 'updatedAt'>) => {
    const status: BatchStatus = { version: 1, batchId, manifest: ref, createdAt, updatedAt: now(), ...s };
    await s3.send(new PutObjectCommand({ Bucket: cfg.workBucket, Key: statusKey, Body: JSON.stringify(status, null, 1), ContentType: 'application/json' }));
    return status;
  };
  const reject = async (reason: string) => {
    // The reason (in the status object, for the submitter) can quote keys and manifest text: not logged.
    log.warn('batch manifest rejected', { batchId });
    return { batchId, status: await writeStatus({ state: 'REJECTED', reason, counts: { listed: 0, submitted: 0, rejected: 0, failed: 0 }, images: [] }) };
  };

  const maxBytes = cfg.maxManifestBytes ?? 5 * 1024 * 1024;
  if ((obj.ContentLength ?? 0) > maxBytes) {
    obj.Body?.transformToByteArray().catch(() => undefined);
    return reject(`the manifest is ${obj.ContentLength} bytes, over the limit of ${maxBytes}`);
  }
  let images: BatchImage[];
  try {
    images = parseBatchManifest(await obj.Body!.transformToByteArray(), manifest.key, cfg.maxImages);
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
      const head = await s3.send(new HeadObjectCommand({ Bucket: manifest.bucket, Key: img.key }));
      return { img, src: { bucket: manifest.bucket, key: img.key, etag: unquoteEtag(head.ETag), size: head.ContentLength } };
    } catch (e) {
      if (isNotFound(e)) return { img, status: { key: img.key, state: 'REJECTED', reason: `no object ${img.key} in bucket ${manifest.bucket}` } };
      if (isForbidden(e)) return { img, status: { key: img.key, state: 'REJECTED', reason: `no readable object ${img.key} in bucket ${manifest.bucket} (missing, or access denied)` } };
      throw e;
    }
  });
  const todo = checked.filter((c) => c.src);
  const accepted = checked.filter((c) => c.src || c.status?.state === 'SUBMITTED').length;

  let backlog: number | undefined;
  let decision: { route: Route; reason: string };
  if (previous?.route) decision = { route: previous.route, reason: previous.reason };
  else {
    if (cfg.endpointConfigured && cfg.endpointName && accepted < cfg.batchThreshold) {
      try {
        const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: cfg.ingestQueueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
        backlog = Number(attrs.Attributes?.ApproximateNumberOfMessages ?? 0);
      } catch (e) {
        log.warn('could not read the ingest queue backlog', { error: (e as Error).message });
      }
    }
    decision = chooseRoute({ batchSize: accepted, backlog }, { ...cfg, endpointConfigured: cfg.endpointConfigured && Boolean(cfg.endpointName) });
  }

  const idsOf = (img: BatchImage): PseudonymousIds => ({
    patientKey: pseudonymise(deps.pseudonymKey, 'patient', img.patientId),
    studyKey: pseudonymise(deps.pseudonymKey, 'study', img.studyId),
  });
  const results = new Map<string, BatchImageStatus>();
  if (decision.route === 'lambda') {
    const region = await sqs.config.region();
    for (let i = 0; i < todo.length; i += 10) {
      const chunk = todo.slice(i, i + 10).map((c, j) => ({ id: String(j), src: c.src!, ids: idsOf(c.img) }));
      let pending = chunk;
      for (let attempt = 0; attempt < 3 && pending.length > 0; attempt++) {
        const res = await sqs.send(new SendMessageBatchCommand({
          QueueUrl: cfg.ingestQueueUrl,
          Entries: pending.map((p) => ({ Id: p.id, MessageBody: s3Notification([{ source: p.src, ids: p.ids }], { region, time: now(), principal: 'cxr-opacity-batch-router' }) })),
        }));
        for (const ok of res.Successful ?? []) {
          const p = chunk[Number(ok.Id)]!;
          results.set(p.src.key, { key: p.src.key, imageId: imageIdFor(p.src), state: 'SUBMITTED' });
        }
        const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f]));
        pending = pending.filter((p) => failed.has(p.id));
        for (const p of pending) {
          const f = failed.get(p.id)!;
          results.set(p.src.key, { key: p.src.key, imageId: imageIdFor(p.src), state: 'FAILED', reason: `SQS: ${f.Code} ${f.Message ?? ''}`.trim() });
        }
      }
    }
  } else {
    await mapLimit(todo, concurrency, async (c) => {
      const src = c.src!;
      const imageId = imageIdFor(src);
      try {
        const reqKey = requestKeyFor(batchId, imageId);
        // The key is what the endpoint reads; `stored` is what a FAILED result may keep of it (batch-result).
        const request: AsyncRequest = {
          source: { bucket: src.bucket, key: src.key, etag: src.etag }, ...idsOf(c.img),
          stored: storedSource(deps.pseudonymKey, src, deps.keepSourceKeys), batchId,
        };
        await s3.send(new PutObjectCommand({ Bucket: cfg.workBucket, Key: reqKey, Body: JSON.stringify(request), ContentType: 'application/json' }));
        const res = await sagemaker.send(new InvokeEndpointAsyncCommand({
          EndpointName: cfg.endpointName, InputLocation: `s3://${cfg.workBucket}/${reqKey}`,
          ContentType: 'application/json', Accept: 'application/json', InferenceId: imageId,
          RequestTTLSeconds: cfg.requestTtlSeconds, InvocationTimeoutSeconds: cfg.invocationTimeoutSeconds,
        }));
        results.set(src.key, { key: src.key, imageId, state: 'SUBMITTED', inferenceId: res.InferenceId ?? imageId, outputLocation: res.OutputLocation });
      } catch (e) {
        log.error('could not submit an image to the endpoint', { batchId, imageId, error: (e as Error).message, name: errName(e) });
        results.set(src.key, { key: src.key, imageId, state: 'FAILED', reason: `${errName(e) || 'Error'}: ${(e as Error).message}` });
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

/** Manifests named by an S3 event (direct notification) or by SQS messages that carry S3 notifications. */
export function manifestsInEvent(event: S3Event | SQSEvent): SourceRef[] {
  return (event.Records as (S3Event['Records'][number] | SQSEvent['Records'][number])[] | undefined ?? []).flatMap((r) => {
    if ('s3' in r) return createdObjects([r]);
    if ('body' in r) return objectsInS3Notification(r.body).map((o) => o.source);
    return [];
  });
}

export function createRouterHandler(getDeps: () => Promise<RouterDeps> | RouterDeps, obs: Observability) {
  const { logger } = obs;
  let deps: RouterDeps | undefined;
  return async (event: S3Event | SQSEvent, context?: Context): Promise<{ batches: { batchId: string; state?: string; route?: string; skipped?: string }[] }> => {
    if (context) logger.addContext(context);
    deps ??= await getDeps();
    const log = stageLogger(logger);
    const batches = [];
    try {
      for (const m of manifestsInEvent(event)) {
        const out = await routeManifest(m, deps, log);
        batches.push({ batchId: out.batchId, state: out.status?.state, route: out.status?.route, skipped: out.skipped });
      }
      return { batches };
    } finally {
      obs.metrics.publishStoredMetrics();
    }
  };
}
