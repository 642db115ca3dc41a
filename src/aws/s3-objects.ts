/** ObjectStore over Amazon S3 (AWS SDK v3). */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ObjectInfo, ObjectStore, StoredObject } from '../pipeline/ports';
import { unquoteEtag } from '../pipeline/messages';

export class S3Objects implements ObjectStore {
  constructor(private readonly s3: S3Client) {}

  async head(bucket: string, key: string): Promise<ObjectInfo> {
    const res = await this.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { size: res.ContentLength ?? 0, etag: unquoteEtag(res.ETag) };
  }

  async get(bucket: string, key: string): Promise<StoredObject> {
    const res = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (!res.Body) throw new Error(`s3://${bucket}/${key} has no body`);
    const body = await res.Body.transformToByteArray();
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.Metadata ?? {})) metadata[k.toLowerCase()] = v;
    return { body, metadata, etag: unquoteEtag(res.ETag) };
  }

  async put(bucket: string, key: string, body: Uint8Array | string, contentType: string): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
  }
}
