/**
 * The storage and messaging the stages and the batch router need, as interfaces. AWS implementations live
 * in src/aws (S3, SQS, DynamoDB, SageMaker runtime through the AWS SDK v3); the local runner passes the same
 * ones pointed at the embedded stand-ins, plus an in-process queue.
 *
 * Errors: an ObjectStore signals a missing object with an error named `NoSuchKey` or `NotFound` (or
 * `$metadata.httpStatusCode` 404) and a refused one with `AccessDenied` or `Forbidden` (403), as the S3
 * client does; the in-memory stores do the same. isNotFound / isForbidden read that contract.
 */
import type { PseudonymousIds, ResultItem, SourceRef, StageMessage } from './messages';

const errName = (e: unknown) => (e as { name?: string } | undefined)?.name ?? '';
const statusCode = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
/** Whether an ObjectStore error says the object does not exist. */
export const isNotFound = (e: unknown): boolean => ['NoSuchKey', 'NotFound'].includes(errName(e)) || statusCode(e) === 404;
/** Whether an ObjectStore error says the object may not be read (S3 also says so for a missing key without s3:ListBucket). */
export const isForbidden = (e: unknown): boolean => ['AccessDenied', 'Forbidden'].includes(errName(e)) || statusCode(e) === 403;

export interface StoredObject {
  body: Uint8Array;
  /** User metadata (x-amz-meta-*), lower-case keys. */
  metadata: Record<string, string>;
  etag?: string;
}

/** What a HEAD request tells about an object, without reading it. */
export interface ObjectInfo {
  /** Content length in bytes. */
  size: number;
  etag?: string;
}

export interface ObjectStore {
  /** Size and ETag of an object, without reading its body (the size cap is checked on this). */
  head(bucket: string, key: string): Promise<ObjectInfo>;
  get(bucket: string, key: string): Promise<StoredObject>;
  put(bucket: string, key: string, body: Uint8Array | string, contentType: string): Promise<void>;
}

export interface MessageSink {
  send(message: StageMessage): Promise<void>;
}

export interface ResultStore {
  /** Writes the item unless one with the same imageId exists; says which happened. */
  putIfAbsent(item: ResultItem): Promise<'created' | 'exists'>;
  get(imageId: string): Promise<ResultItem | undefined>;
}

/** An image for the per-image (Lambda) path: the object, and the pseudonyms a batch manifest gave it. */
export interface IngestRequest {
  source: SourceRef;
  ids: PseudonymousIds;
}

/** The segment stage's input queue, as the batch router fills it. */
export interface IngestQueue {
  /**
   * Queues each image for the segment stage. Resolves with one entry per request, in order: undefined when
   * it was queued, else why it was not (after the adapter's own retries). Throws when nothing could be sent.
   */
  send(requests: IngestRequest[]): Promise<(string | undefined)[]>;
}

/** How many messages wait in a queue. */
export interface QueueBacklog {
  /** The approximate number of messages waiting (not counting those being worked on). */
  waiting(): Promise<number>;
}

/** One request to the asynchronous inference endpoint. */
export interface AsyncInvocation {
  /** The JSON request object the endpoint reads (src/pipeline/batch-request.ts AsyncRequest). */
  input: { bucket: string; key: string };
  /** Our id of the inference (the imageId). */
  inferenceId: string;
  /** How long the request may wait in the endpoint's queue. */
  requestTtlSeconds?: number;
  invocationTimeoutSeconds?: number;
}

/** The asynchronous inference endpoint (SageMaker async): it queues requests and writes their outputs itself. */
export interface AsyncEndpoint {
  /** Queues one request; resolves with the endpoint's id of it and where its output will be written, where it says. */
  invoke(request: AsyncInvocation): Promise<{ inferenceId?: string; outputLocation?: string }>;
}

/** Logging without identifiers: only ids, codes and numbers go in here. */
export interface StageLogger {
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}
