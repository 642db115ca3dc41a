/**
 * The local S3 keeps uploads as long as the AWS lifecycle rule would (src/local/retention.ts): `npm run api
 * --data-dir` kept every raw upload (with its patient-id metadata) for good. Results stay, and the upload index
 * still leads to them.
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { startLocalApi } from '../src/local/api-server';
import { expireOldUploads } from '../src/local/retention';
import { LOCAL_NAMES, startLocalStack, type LocalStack } from '../src/local/stack';
import { DEFAULT_UPLOAD_RETENTION_DAYS } from '../src/pipeline/storage-layout';
import { writeTinyModel } from './helpers/tiny-model';

const DAY = 86_400_000;

describe('upload retention on the local S3', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startLocalStack({ dataDir: mkdtempSync(join(tmpdir(), 'cxr-retention-')) });
  });
  afterAll(async () => stack?.stop());

  const keys = async (bucket: string, prefix = '') =>
    ((await stack.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key).sort();

  test('deletes uploads older than the retention, nothing younger and nothing outside uploads/', async () => {
    const put = (bucket: string, key: string) => stack.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x', Metadata: { 'patient-id': 'MRN-1' } }));
    await put(LOCAL_NAMES.uploadsBucket, 'uploads/0190a1b2-0000-7000-8000-000000000001/image.png');
    await put(LOCAL_NAMES.uploadsBucket, 'uploads/DOE.png');
    await put(LOCAL_NAMES.uploadsBucket, 'batch-images/a.png');
    await put(LOCAL_NAMES.resultsBucket, 'results/by-upload/0190a1b2-0000-7000-8000-000000000001');
    const now = Date.now();
    assert.equal(await expireOldUploads(stack.s3, LOCAL_NAMES.uploadsBucket, 30, new Date(now + 29 * DAY)), 0);
    assert.equal((await keys(LOCAL_NAMES.uploadsBucket)).length, 3);
    assert.equal(await expireOldUploads(stack.s3, LOCAL_NAMES.uploadsBucket, 30, new Date(now + 31 * DAY)), 2);
    assert.deepEqual(await keys(LOCAL_NAMES.uploadsBucket), ['batch-images/a.png']);
    assert.deepEqual(await keys(LOCAL_NAMES.resultsBucket, 'results/'), ['results/by-upload/0190a1b2-0000-7000-8000-000000000001'], 'results are not touched');
    await assert.rejects(expireOldUploads(stack.s3, LOCAL_NAMES.uploadsBucket, 0), /positive number/);
  });
});

describe('npm run api applies it', () => {
  test('at start, with the default retention, as the CDK stack does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-retention-api-'));
    const model = writeTinyModel(join(dir, 'model'), { size: 128 });
    // A first run leaves an upload in its data folder; a second, "31 days" later, finds it expired.
    const first = await startLocalApi({ port: 0, model, dataDir: dir });
    const key = 'uploads/0190a1b2-0000-7000-8000-000000000002/image.png';
    await first.pipeline.stack.s3.send(new PutObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: key, Body: 'not a film' }));
    await first.stop();
    const later = await startLocalApi({ port: 0, model, dataDir: dir, now: () => new Date(Date.now() + (DEFAULT_UPLOAD_RETENTION_DAYS + 1) * DAY) });
    try {
      await assert.rejects(later.pipeline.stack.s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: key })), /NoSuchKey|does not exist/);
    } finally {
      await later.stop();
    }
  }, 60_000);
});
