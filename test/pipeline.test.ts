/**
 * The local pipeline end to end against real s3rver and dynalite servers, with the same handlers as
 * on AWS and a small real ONNX model (test/helpers/tiny-model.ts).
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import sharp from 'sharp';
import { startLocalPipeline, type LocalPipeline } from '../src/local/pipeline';
import { LOCAL_NAMES } from '../src/local/stack';
import { imageIdFor, type ResultItem } from '../src/pipeline/messages';
import { s3Notification } from '../src/aws/s3-notification';
import { pseudonymise } from '../src/core/pseudonym';
import { writeTinyModel } from './helpers/tiny-model';
import { chestJpeg, chestPng } from './helpers/synthetic';

describe('local pipeline (s3rver + dynalite, real handlers, tiny ONNX model)', () => {
  let p: LocalPipeline;
  const logs: string[] = [];
  const ids = new Map<string, string>();
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cxr-pipe-'));
    p = await startLocalPipeline({ model: writeTinyModel(join(dir, 'model'), { size: 128 }), dataDir: dir, retryDelayMs: 50, logLevel: 'INFO', logSink: (l) => logs.push(l) });
  });
  afterAll(async () => p?.stop());

  const scanAll = async (): Promise<ResultItem[]> =>
    ((await p.stack.ddb.send(new ScanCommand({ TableName: LOCAL_NAMES.resultsTable }))).Items ?? []).map((i) => unmarshall(i) as ResultItem);

  test('N uploads give N scored items with the expected opacity', async () => {
    ids.set('quarter.png', await p.upload('uploads/quarter.png', await chestPng({ rightOpacity: 0.25 })));
    ids.set('half 16bit ü.png', await p.upload('uploads/half 16bit ü.png', await chestPng({ rightOpacity: 0.5 }, 16)));
    ids.set('clear.jpg', await p.upload('uploads/clear.jpg', await chestJpeg({ rightOpacity: 0 }), { 'patient-id': 'PAT-0001' }));
    await p.drain();
    const items = await scanAll();
    assert.equal(items.length, 3);
    const byId = new Map(items.map((i) => [i.imageId, i]));
    const q = byId.get(ids.get('quarter.png')!)!;
    assert.equal(q.status, 'SCORED');
    assert.ok(Math.abs(q.opacityPctRight! - 25) < 3, `right lung 25% opaque, got ${q.opacityPctRight}`);
    assert.ok(q.opacityPctLeft! < 1, `left lung clear, got ${q.opacityPctLeft}`);
    assert.ok(Math.abs(q.opacityPctTotal! - 12.5) < 2, `total 12.5%, got ${q.opacityPctTotal}`);
    const h = byId.get(ids.get('half 16bit ü.png')!)!;
    assert.equal(h.status, 'SCORED', 'a key with spaces and unicode is decoded from the S3 notification');
    assert.ok(Math.abs(h.opacityPctRight! - 50) < 3, `got ${h.opacityPctRight}`);
    assert.equal(h.source.key, undefined, 'no file name in the result by default');
    assert.match(h.source.keyPseudonym, /^src_[A-Za-z0-9_-]{22}$/);
    const c = byId.get(ids.get('clear.jpg')!)!;
    assert.ok(c.opacityPctTotal! < 1);
    assert.match(c.patientKey, /^pt_/, 'patient id from upload metadata is pseudonymised');
    assert.equal(q.patientKey, 'UNKNOWN');
    for (const it of items) assert.ok(it.sortKey.endsWith(`#${it.imageId}`));
  });

  test('writes masks at the original size, an overlay and result.json', async () => {
    const item = await p.results.get(ids.get('quarter.png')!);
    assert.ok(item?.keys);
    const get = async (key: string) => (await p.stack.s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.resultsBucket, Key: key }))).Body!.transformToByteArray();
    for (const key of [item.keys.lung, item.keys.opacity, item.keys.overlay]) {
      const meta = await sharp(await get(key)).metadata();
      assert.equal(meta.width, 320);
      assert.equal(meta.height, 256);
    }
    const result = JSON.parse(Buffer.from(await get(item.keys.result)).toString('utf8'));
    assert.equal(result.imageId, item.imageId);
    assert.equal(result.status, 'SCORED');
  });

  test('a duplicate S3 event gives no second result and no second inference', async () => {
    const before = (await scanAll()).length;
    const listed = await p.stack.s3.send(new ListObjectsV2Command({ Bucket: LOCAL_NAMES.resultsBucket }));
    const objectsBefore = listed.KeyCount;
    const body = JSON.stringify({ Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: LOCAL_NAMES.uploadsBucket }, object: { key: 'uploads/quarter.png', size: 1 } } }] });
    // Same object, delivered again exactly as S3 does (at-least-once), twice.
    const original = (await p.results.get(ids.get('quarter.png')!))!;
    // The results keep no ETag (the file's MD5); the notification S3 sends again carries the object's.
    assert.equal(original.source.etag, undefined);
    const { ETag } = await p.stack.s3.send(new HeadObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: 'uploads/quarter.png' }));
    const again = JSON.stringify({ Records: [{ eventVersion: '2.1', eventSource: 'aws:s3', awsRegion: 'us-east-1', eventTime: new Date().toISOString(), eventName: 'ObjectCreated:Put', userIdentity: { principalId: 'x' }, requestParameters: { sourceIPAddress: '127.0.0.1' }, responseElements: { 'x-amz-request-id': 'x', 'x-amz-id-2': 'x' }, s3: { s3SchemaVersion: '1.0', configurationId: 'x', bucket: { name: LOCAL_NAMES.uploadsBucket, ownerIdentity: { principalId: 'x' }, arn: 'arn:aws:s3:::x' }, object: { key: 'uploads/quarter.png', size: 1, eTag: ETag!.replace(/"/g, ''), sequencer: '1' } } }] });
    void body;
    p.ingest.send(again);
    p.ingest.send(again);
    await p.drain();
    assert.equal((await scanAll()).length, before);
    const listedAfter = await p.stack.s3.send(new ListObjectsV2Command({ Bucket: LOCAL_NAMES.resultsBucket }));
    assert.equal(listedAfter.KeyCount, objectsBefore);
    assert.equal((await p.results.get(original.imageId))!.createdAt, original.createdAt, 'the first result is kept');
  });

  test('a broken file gives one FAILED item with its reason; a poison message ends in the DLQ', async () => {
    const id = await p.upload('uploads/broken.png', (await chestPng()).subarray(0, 200));
    const empty = await p.upload('uploads/empty.dcm', new Uint8Array(0));
    const pdf = await p.upload('uploads/report.pdf', Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\n'));
    p.ingest.send('this is not an S3 notification');
    await p.drain();
    for (const [imageId, code] of [[id, /TRUNCATED|CORRUPT/], [empty, /EMPTY/], [pdf, /UNRECOGNISED_FORMAT/]] as const) {
      const item = await p.results.get(imageId);
      assert.equal(item?.status, 'FAILED');
      assert.match(item!.errorCode!, code);
      assert.ok(item!.errorReason!.length > 10, 'the reason says what is wrong');
    }
    assert.equal(p.ingest.deadLetters.length, 1);
    assert.equal(p.ingest.deadLetters[0].receiveCount, 3);
  });

  test('pseudonyms that the batch router attaches to a notification are taken as given, equal to those of upload metadata', async () => {
    const viaMetadata = await p.upload('uploads/meta.png', await chestPng({ rightOpacity: 0.1 }), { 'patient-id': 'PAT-0009' });
    const body = await chestPng({ rightOpacity: 0.2 });
    await p.stack.s3.send(new PutObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: 'batch-images/b.png', Body: body }));
    const head = await p.stack.s3.send(new HeadObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: 'batch-images/b.png' }));
    const src = { bucket: LOCAL_NAMES.uploadsBucket, key: 'batch-images/b.png', etag: head.ETag!.replace(/"/g, ''), size: body.length };
    // The router hashes the manifest's id with the same key before it sends anything.
    const key = readFileSync(join(dir, 'pseudonym.key'), 'utf8').trim();
    p.ingest.send(s3Notification([{ source: src, ids: { patientKey: pseudonymise(key, 'patient', 'PAT-0009') } }], { region: 'us-east-1', time: new Date().toISOString(), principal: 'test' }));
    await p.drain();
    const a = await p.results.get(viaMetadata);
    const b = await p.results.get(imageIdFor(src));
    assert.equal(b?.status, 'SCORED');
    assert.match(b!.patientKey, /^pt_/);
    assert.equal(b!.patientKey, a!.patientKey, 'same patient, same pseudonym, whichever way the id came');
    assert.ok(!JSON.stringify(b).includes('PAT-0009'));
  });

  test('logs are structured JSON and carry no identifiers', () => {
    assert.ok(logs.length > 0);
    for (const l of logs) {
      JSON.parse(l);
      assert.ok(!l.includes('PAT-0001') && !l.includes('PAT-0009'), 'raw patient id never logged');
    }
  });
});
