/**
 * The storage and messaging the stages need, as interfaces. AWS implementations live in src/aws
 * (S3, SQS, DynamoDB through the AWS SDK v3); the local runner passes the same ones pointed at the
 * embedded stand-ins, plus an in-process queue.
 */
import type { ResultItem, StageMessage } from './messages';

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

/** Logging without identifiers: only ids, codes and numbers go in here. */
export interface StageLogger {
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}
