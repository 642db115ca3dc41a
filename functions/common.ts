/**
 * Wiring shared by the Lambda handlers: Powertools logger/metrics/tracer set-up, the StageLogger
 * adapter, and decoding of S3 event notifications. No business logic lives here.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { S3Schema } from '@aws-lambda-powertools/parser/schemas/s3';
import { z } from 'zod';
import type { PseudonymousIds, SourceRef } from '../src/pipeline/messages';
import type { StageLogger } from '../src/pipeline/ports';

export interface Observability {
  logger: Logger;
  metrics: Metrics;
  tracer: Tracer;
}

export function observability(serviceName: string): Observability {
  return {
    logger: new Logger({ serviceName }),
    metrics: new Metrics({ serviceName, namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'CxrOpacity' }),
    tracer: new Tracer({ serviceName }),
  };
}

export const stageLogger = (logger: Logger): StageLogger => ({
  info: (m, extra) => logger.info(m, extra ?? {}),
  warn: (m, extra) => logger.warn(m, extra ?? {}),
  error: (m, extra) => logger.error(m, extra ?? {}),
});

/** S3 URL-encodes object keys in event notifications, with '+' for spaces. */
export const decodeS3Key = (key: string): string => decodeURIComponent(key.replace(/\+/g, ' '));

/** The inverse of decodeS3Key: a key as S3 writes it into a notification ('/' kept, '+' for spaces). */
export const encodeS3Key = (key: string): string => encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/');

/**
 * The objects named by one SQS message body that carries an S3 event notification. S3's test event
 * (sent when a notification is configured) names no object and yields an empty list.
 */
export function objectsInS3Notification(body: string): NotifiedObject[] {
  const parsed: unknown = JSON.parse(body);
  if (typeof parsed === 'object' && parsed !== null && (parsed as { Event?: string }).Event === 's3:TestEvent') return [];
  const event = S3Schema.parse(parsed);
  // The batch router adds the pseudonyms of its manifest's identifiers to the records it sends (S3 itself
  // never does); S3Schema drops unknown fields, so they are read from the raw records.
  const raw = (parsed as { Records: { cxrOpacity?: unknown }[] }).Records;
  return event.Records.flatMap((r, i) => {
    if (!r.eventName.startsWith('ObjectCreated')) return [];
    const ids = batchIdentifiers.safeParse(raw[i]?.cxrOpacity ?? {});
    return [{
      source: { bucket: r.s3.bucket.name, key: decodeS3Key(r.s3.object.key), etag: r.s3.object.eTag, size: r.s3.object.size },
      ids: ids.success ? ids.data : {},
    }];
  });
}

/** Pseudonyms only: a record that carries anything else (a raw id from an older router) is read without ids. */
const batchIdentifiers = z.object({
  patientKey: z.string().regex(/^pt_[A-Za-z0-9_-]{22}$/).optional(),
  studyKey: z.string().regex(/^st_[A-Za-z0-9_-]{22}$/).optional(),
}).strict();

export interface NotifiedObject {
  source: SourceRef;
  ids: PseudonymousIds;
}
