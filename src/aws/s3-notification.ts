/**
 * The S3 event notification, both ways, in one place: what the batch router and the local runner write
 * (s3Notification, shaped as S3 sends it) and what the segment function and the router read
 * (objectsInS3Notification, createdObjects). The shape is S3's; parsing uses Powertools' S3Schema.
 */
import { S3Schema } from '@aws-lambda-powertools/parser/schemas/s3';
import { z } from 'zod';
import type { PseudonymousIds, SourceRef } from '../pipeline/messages';

/** S3 URL-encodes object keys in event notifications, with '+' for spaces. */
export const decodeS3Key = (key: string): string => decodeURIComponent(key.replace(/\+/g, ' '));

/** The inverse of decodeS3Key: a key as S3 writes it into a notification ('/' kept, '+' for spaces). */
export const encodeS3Key = (key: string): string => encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/');

export interface NotifiedObject {
  source: SourceRef;
  ids: PseudonymousIds;
}

/** Who writes a notification that S3 itself did not (the batch router, the local runner). */
export interface NotificationOrigin {
  region: string;
  /** ISO time of the event. */
  time: string;
  /** userIdentity, configurationId and request ids of the records. */
  principal: string;
}

/**
 * An S3 ObjectCreated notification naming these objects, as S3 sends it (and as objectsInS3Notification
 * reads it). Keys are written URL-encoded, as S3 writes them.
 */
export function s3Notification(objects: NotifiedObject[], origin: NotificationOrigin): string {
  return JSON.stringify({
    Records: objects.map(({ source: src, ids }) => ({
      eventVersion: '2.1', eventSource: 'aws:s3', awsRegion: origin.region, eventTime: origin.time, eventName: 'ObjectCreated:Put',
      userIdentity: { principalId: origin.principal },
      requestParameters: { sourceIPAddress: 's3.amazonaws.com' },
      responseElements: { 'x-amz-request-id': origin.principal, 'x-amz-id-2': origin.principal },
      s3: {
        s3SchemaVersion: '1.0', configurationId: origin.principal,
        bucket: { name: src.bucket, ownerIdentity: { principalId: origin.principal }, arn: `arn:aws:s3:::${src.bucket}` },
        object: { key: encodeS3Key(src.key), size: src.size ?? 0, eTag: src.etag },
      },
      // Our extension: the pseudonyms of a batch manifest's identifiers, which the segment function takes as given.
      ...(ids.patientKey || ids.studyKey ? { cxrOpacity: { patientKey: ids.patientKey, studyKey: ids.studyKey } } : {}),
    })),
  });
}

/** One record of an S3 notification, as far as it names an object (S3Event['Records'][number] and the like). */
export interface S3RecordLike {
  eventName: string;
  s3: { bucket: { name: string }; object: { key: string; eTag?: string; size?: number } };
}

/** The objects that ObjectCreated records name (keys decoded). */
export const createdObjects = (records: S3RecordLike[]): SourceRef[] => records
  .filter((r) => r.eventName.startsWith('ObjectCreated'))
  .map((r) => ({ bucket: r.s3.bucket.name, key: decodeS3Key(r.s3.object.key), etag: r.s3.object.eTag, size: r.s3.object.size }));

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
