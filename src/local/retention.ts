/**
 * What the uploads bucket's lifecycle rule does on AWS, for the local S3 (s3rver has no lifecycle rules): uploads
 * older than the retention are deleted. An upload holds the raw file and, for a PNG/JPEG, its patient id as
 * metadata; with `npm run api --data-dir` they would otherwise stay on disk for good. Results stay, and the upload
 * index (src/pipeline/storage-layout.ts UPLOAD_INDEX_PREFIX) keeps them findable by uploadId.
 */
import { DeleteObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { UPLOAD_PREFIX } from '../pipeline/storage-layout';

/** Deletes the objects under UPLOAD_PREFIX last modified more than `days` days before `now`; how many. */
export async function expireOldUploads(s3: S3Client, bucket: string, days: number, now: Date = new Date()): Promise<number> {
  if (!(Number.isFinite(days) && days > 0)) throw new Error(`expireOldUploads: days must be a positive number, got ${days}`);
  const cutoff = now.getTime() - days * 86_400_000;
  let deleted = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: UPLOAD_PREFIX, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      if (!o.Key || !o.LastModified || o.LastModified.getTime() >= cutoff) continue;
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
      deleted++;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return deleted;
}
