/**
 * The batch router: the pure route decision, manifest validation, and the handler (src/aws/router-handler.ts:
 * src/pipeline/batch-routing.ts over the AWS adapters) against aws-sdk-client-mock'd S3 (an in-memory bucket
 * behind the mock), SQS and SageMaker runtime clients. The routing over in-memory ports: test/batch-routing.test.ts.
 */
import { beforeEach, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { InvokeEndpointAsyncCommand, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { GetQueueAttributesCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import type { S3Event } from 'aws-lambda';
import { observability } from '../src/aws/observability';
import { encodeS3Key, objectsInS3Notification } from '../src/aws/s3-notification';
import { chooseRoute, routeConfigFromEnv, type RouteConfig } from '../src/pipeline/batch-route';
import { ManifestError, parseBatchManifest } from '../src/pipeline/batch-manifest';
import { MAX_ID_CHARS } from '../src/limits';
import { batchIdFor, type BatchStatus } from '../src/pipeline/batch-routing';
import { createRouterHandler, manifestsInEvent, type RouterConfig, type RouterDeps } from '../src/aws/router-handler';
import { asyncRequestSchema } from '../src/pipeline/batch-request';
import { imageIdFor } from '../src/pipeline/messages';
import { pseudonymise } from '../src/core/pseudonym';

const KEY = 'router-test-pseudonym-key-0123456789';

const cfg: RouteConfig = { batchThreshold: 50, backlogThreshold: 500, endpointConfigured: true };

describe('chooseRoute', () => {
  test('large batches and a backed-up Lambda path go to SageMaker; small ones stay on Lambda', () => {
    assert.equal(chooseRoute({ batchSize: 49, backlog: 0 }, cfg).route, 'lambda');
    assert.equal(chooseRoute({ batchSize: 50, backlog: 0 }, cfg).route, 'sagemaker');
    assert.equal(chooseRoute({ batchSize: 5000 }, cfg).route, 'sagemaker');
    assert.equal(chooseRoute({ batchSize: 3, backlog: 499 }, cfg).route, 'lambda');
    assert.equal(chooseRoute({ batchSize: 3, backlog: 500 }, cfg).route, 'sagemaker');
    assert.equal(chooseRoute({ batchSize: 3 }, cfg).route, 'lambda');
    assert.match(chooseRoute({ batchSize: 3 }, cfg).reason, /backlog unknown/);
    assert.equal(chooseRoute({ batchSize: 0, backlog: 10_000 }, cfg).route, 'lambda');
    assert.equal(chooseRoute({ batchSize: 5000, backlog: 10_000 }, { ...cfg, endpointConfigured: false }).route, 'lambda');
    assert.match(chooseRoute({ batchSize: 60, backlog: 0 }, cfg).reason, /60 images reaches the batch threshold of 50/);
  });

  test('thresholds come from the environment, with defaults, and bad values fail loudly', () => {
    assert.deepEqual(routeConfigFromEnv({}), { batchThreshold: 50, backlogThreshold: 500, endpointConfigured: false });
    assert.deepEqual(routeConfigFromEnv({ BATCH_THRESHOLD: '10', BACKLOG_THRESHOLD: '20', ENDPOINT_NAME: 'e' }), { batchThreshold: 10, backlogThreshold: 20, endpointConfigured: true });
    assert.throws(() => routeConfigFromEnv({ BATCH_THRESHOLD: 'ten' }), /BATCH_THRESHOLD must be a positive integer/);
    assert.throws(() => routeConfigFromEnv({ BACKLOG_THRESHOLD: '0' }), /BACKLOG_THRESHOLD/);
  });
});

describe('batch manifests', () => {
  const j = (o: unknown) => Buffer.from(JSON.stringify(o));
  test('JSON and CSV manifests give the same images', () => {
    const json = parseBatchManifest(j({ images: [{ key: 'in/a.dcm', patientId: 'P1' }, { key: 'in/b c.png', studyId: 'S9' }] }), 'batches/x.json');
    const csv = parseBatchManifest(Buffer.from('\uFEFFkey,patient_id,study_id\r\nin/a.dcm,P1,\n"in/b c.png",,S9\n\n'), 'batches/x.csv');
    assert.deepEqual(json, [{ key: 'in/a.dcm', patientId: 'P1' }, { key: 'in/b c.png', studyId: 'S9' }]);
    assert.deepEqual(csv, json);
    assert.deepEqual(parseBatchManifest(Buffer.from('key\nin/a.dcm\n'), 'batches/no-extension'), [{ key: 'in/a.dcm' }]);
  });

  test('unknown fields, unknown columns, duplicates, unsafe keys and empty lists are refused clearly', () => {
    const bad = (body: Buffer | string, key: string, re: RegExp) =>
      assert.throws(() => parseBatchManifest(typeof body === 'string' ? Buffer.from(body) : body, key), (e: unknown) => e instanceof ManifestError && re.test(e.message));
    bad(j({ images: [{ key: 'a.png', patient: 'P1' }] }), 'batches/m.json', /image 1.*patient/i);
    bad(j({ images: [{ key: 'a.png' }], priority: 'high' }), 'batches/m.json', /priority/);
    bad(j({ files: [] }), 'batches/m.json', /files|images/);
    bad(j({ images: [] }), 'batches/m.json', /lists no images/);
    bad(j({ images: [{ key: 'a.png' }, { key: 'a.png' }] }), 'batches/m.json', /image 2 repeats key a\.png/);
    bad(j({ images: [{ key: 'batches/other.json' }] }), 'batches/m.json', /must not be under batches\//);
    bad('{"images": [', 'batches/m.json', /not valid JSON/);
    bad('key,patient_id,age\na.png,P1,40\n', 'batches/m.csv', /unknown CSV column\(s\) "age"/);
    bad('patient_id\nP1\n', 'batches/m.csv', /no "key" column/);
    bad('key\n\nok.png\n/abs.png\n', 'batches/m.csv', /image 2 \(CSV line 3\).*must not start with "\/"/);
    bad('hello', 'batches/m.txt', /neither a JSON manifest/);
    // Ids as the API takes them (src/limits.ts): printable ASCII, at most MAX_ID_CHARS.
    bad(j({ images: [{ key: 'a.png', patientId: 'P'.repeat(MAX_ID_CHARS + 1) }] }), 'batches/m.json', new RegExp(`image 1 field patientId.*at most ${MAX_ID_CHARS} characters`));
    bad(j({ images: [{ key: 'a.png', studyId: 'Müller' }] }), 'batches/m.json', /image 1 field studyId.*printable ASCII/);
    assert.doesNotThrow(() => parseBatchManifest(j({ images: [{ key: 'a.png', patientId: 'P'.repeat(MAX_ID_CHARS) }] }), 'batches/m.json'));
    assert.throws(() => parseBatchManifest(j({ images: [{ key: 'a' }, { key: 'b' }, { key: 'c' }] }), 'batches/m.json', 2), /at most 2 images/);
  });
});

describe('router handler (aws-sdk-client-mock)', () => {
  const UPLOADS = 'cxr-uploads';
  const WORK = 'cxr-results';
  const s3 = new S3Client({ region: 'eu-west-1' });
  const sqs = new SQSClient({ region: 'eu-west-1' });
  const sm = new SageMakerRuntimeClient({ region: 'eu-west-1' });
  const s3m = mockClient(s3);
  const sqsm = mockClient(sqs);
  const smm = mockClient(sm);
  let bucket: Map<string, Buffer>;
  let backlog = 0;
  let failInvokeFor = new Set<string>();
  const obs = observability('test-router');
  obs.logger.setLogLevel('SILENT');

  const etagOf = (b: Buffer) => createHash('md5').update(b).digest('hex');
  const notFound = () => Object.assign(new Error('not found'), { name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
  const put = (b: string, k: string, body: Buffer | string) => bucket.set(`${b}/${k}`, Buffer.from(body));
  const body = (buf: Buffer) => ({ transformToByteArray: async () => new Uint8Array(buf), transformToString: async () => buf.toString('utf8') });

  beforeEach(() => {
    bucket = new Map();
    backlog = 0;
    failInvokeFor = new Set();
    s3m.reset(); sqsm.reset(); smm.reset();
    s3m.on(GetObjectCommand).callsFake(async (i) => {
      const b = bucket.get(`${i.Bucket}/${i.Key}`);
      if (!b) throw notFound();
      if (i.IfMatch && i.IfMatch !== `"${etagOf(b)}"`) throw Object.assign(new Error('precondition'), { name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });
      return { Body: body(b) as never, ETag: `"${etagOf(b)}"`, ContentLength: b.length };
    });
    s3m.on(HeadObjectCommand).callsFake(async (i) => {
      const b = bucket.get(`${i.Bucket}/${i.Key}`);
      if (!b) throw Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } });
      return { ETag: `"${etagOf(b)}"`, ContentLength: b.length };
    });
    s3m.on(PutObjectCommand).callsFake(async (i) => {
      put(i.Bucket!, i.Key!, i.Body as string);
      return {};
    });
    sqsm.on(GetQueueAttributesCommand).callsFake(async () => ({ Attributes: { ApproximateNumberOfMessages: String(backlog) } }));
    sqsm.on(SendMessageBatchCommand).callsFake(async (i) => ({ Successful: i.Entries.map((e: { Id: string }) => ({ Id: e.Id, MessageId: `m-${e.Id}`, MD5OfMessageBody: 'x' })), Failed: [] }));
    smm.on(InvokeEndpointAsyncCommand).callsFake(async (i) => {
      if (failInvokeFor.has(i.InferenceId)) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      return { InferenceId: i.InferenceId, OutputLocation: `s3://${WORK}/batches/outputs/${i.InferenceId}.out` };
    });
  });

  const config: RouterConfig = {
    batchThreshold: 50, backlogThreshold: 500, endpointConfigured: true,
    ingestQueueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/ingest', endpointName: 'cxr-async',
    workBucket: WORK, maxImages: 10_000, imagePrefixes: ['batch-images/'],
  };
  const handlerWith = (c: Partial<RouterConfig> = {}) => {
    const deps: RouterDeps = { s3, sqs, sagemaker: sm, config: { ...config, ...c }, pseudonymKey: KEY };
    return createRouterHandler(() => deps, obs);
  };
  const s3Event = (key: string): S3Event => ({
    Records: [{
      eventVersion: '2.1', eventSource: 'aws:s3', awsRegion: 'eu-west-1', eventTime: new Date().toISOString(), eventName: 'ObjectCreated:Put',
      userIdentity: { principalId: 'x' }, requestParameters: { sourceIPAddress: '127.0.0.1' }, responseElements: { 'x-amz-request-id': 'x', 'x-amz-id-2': 'x' },
      s3: { s3SchemaVersion: '1.0', configurationId: 'batches', bucket: { name: UPLOADS, ownerIdentity: { principalId: 'x' }, arn: `arn:aws:s3:::${UPLOADS}` }, object: { key: encodeS3Key(key), size: 1, eTag: etagOf(bucket.get(`${UPLOADS}/${key}`) ?? Buffer.alloc(0)), sequencer: '1' } },
    }],
  });
  const statusOf = (batchId: string) => JSON.parse(bucket.get(`${WORK}/batches/status/${batchId}.json`)!.toString()) as BatchStatus;
  const uploadImages = (n: number, prefix = 'batch-images/img ') =>
    Array.from({ length: n }, (_, i) => { const key = `${prefix}${i}.png`; put(UPLOADS, key, `png-${i}`); return key; });

  test('a small batch goes to the ingest queue as S3 notifications the segment function reads', async () => {
    const keys = uploadImages(3);
    put(UPLOADS, 'elsewhere/x.png', 'x');
    put(UPLOADS, 'batches/small.csv', `key,patient_id\n${keys.map((k) => `"${k}",P${k.length}`).join('\n')}\n"batch-images/missing.png",P0\nelsewhere/x.png,\n`);
    const out = await handlerWith()(s3Event('batches/small.csv'));
    assert.equal(out.batches[0]!.route, 'lambda');
    assert.equal(sqsm.commandCalls(GetQueueAttributesCommand).length, 1, 'backlog read');
    assert.equal(smm.commandCalls(InvokeEndpointAsyncCommand).length, 0);
    const sent = sqsm.commandCalls(SendMessageBatchCommand).flatMap((c) => c.args[0].input.Entries!);
    assert.equal(sent.length, 3);
    const notified = sent.flatMap((e) => objectsInS3Notification(e.MessageBody!));
    const srcs = notified.map((n) => n.source);
    assert.deepEqual(notified.map((n) => n.ids.patientKey).sort(), keys.map((k) => pseudonymise(KEY, 'patient', `P${k.length}`)).sort(),
      'the pseudonyms of the manifest patient ids travel with the notification');
    for (const e of sent) assert.doesNotMatch(e.MessageBody!, /"P\d+"|patientId/, 'no raw patient id in the queue message');
    assert.deepEqual(srcs.map((s) => s.key).sort(), [...keys].sort(), 'keys with spaces survive the notification encoding');
    for (const s of srcs) assert.equal(s.etag, etagOf(bucket.get(`${UPLOADS}/${s.key}`)!));
    const status = statusOf(out.batches[0]!.batchId);
    assert.equal(status.state, 'SUBMITTED');
    assert.deepEqual(status.counts, { listed: 5, submitted: 3, rejected: 2, failed: 0 });
    assert.match(status.images.find((i) => i.key === 'batch-images/missing.png')!.reason!, /no object batch-images\/missing\.png/);
    assert.match(status.images.find((i) => i.key === 'elsewhere/x.png')!.reason!, /outside the prefixes batch images may use \(batch-images\/\)/);
    assert.equal(status.images[0]!.imageId, imageIdFor(srcs.find((s) => s.key === keys[0])!));
  });

  test('a large batch goes to the async endpoint with one request object per image', async () => {
    const keys = uploadImages(60);
    put(UPLOADS, 'batches/big.json', JSON.stringify({ images: keys.map((key, i) => ({ key, patientId: `P${i % 7}`, studyId: i === 0 ? 'S1' : undefined })) }));
    const out = await handlerWith()(s3Event('batches/big.json'));
    assert.equal(out.batches[0]!.route, 'sagemaker');
    assert.equal(sqsm.commandCalls(GetQueueAttributesCommand).length, 0, 'no need to look at the backlog');
    assert.equal(sqsm.commandCalls(SendMessageBatchCommand).length, 0);
    const calls = smm.commandCalls(InvokeEndpointAsyncCommand).map((c) => c.args[0].input);
    assert.equal(calls.length, 60);
    const batchId = out.batches[0]!.batchId;
    for (const c of calls) {
      assert.equal(c.EndpointName, 'cxr-async');
      assert.equal(c.ContentType, 'application/json');
      const m = /^s3:\/\/cxr-results\/(batches\/requests\/[0-9a-f]{24}\/([0-9a-f]{32})\.json)$/.exec(c.InputLocation!);
      assert.ok(m, c.InputLocation);
      assert.equal(m[2], c.InferenceId);
      const req = asyncRequestSchema.parse(JSON.parse(bucket.get(`${WORK}/${m[1]}`)!.toString()));
      assert.equal(req.batchId, batchId);
      assert.equal(imageIdFor(req.source), c.InferenceId, 'the request names the same object version as the imageId');
    }
    const firstText = bucket.get(`${WORK}/batches/requests/${batchId}/${calls.find((c) => c.InputLocation!.includes(imageIdFor({ bucket: UPLOADS, key: keys[0]!, etag: etagOf(Buffer.from('png-0')) })))!.InferenceId}.json`)!.toString();
    const first = JSON.parse(firstText);
    assert.equal(first.patientKey, pseudonymise(KEY, 'patient', 'P0'), 'the request holds the pseudonym, as the Lambda route does');
    assert.equal(first.studyKey, pseudonymise(KEY, 'study', 'S1'));
    assert.doesNotMatch(firstText, /"P0"|"S1"|patientId|studyId/, 'no raw id in the stored request');
    assert.equal(first.stored.keyPseudonym, pseudonymise(KEY, 'source', keys[0]!));
    assert.equal(first.stored.key, undefined, 'the stored source keeps no key by default');
    const status = statusOf(batchId);
    assert.equal(status.state, 'SUBMITTED');
    assert.equal(status.counts.submitted, 60);
    assert.ok(status.images.every((i) => i.outputLocation?.startsWith('s3://cxr-results/batches/outputs/')));
  });

  test('a small batch goes to SageMaker when the ingest queue is backed up', async () => {
    backlog = 800;
    const keys = uploadImages(2);
    put(UPLOADS, 'batches/b.json', JSON.stringify({ images: keys.map((key) => ({ key })) }));
    const out = await handlerWith()(s3Event('batches/b.json'));
    assert.equal(out.batches[0]!.route, 'sagemaker');
    assert.match(statusOf(out.batches[0]!.batchId).reason, /backlog of 800/);
    assert.equal(statusOf(out.batches[0]!.batchId).backlog, 800);
    assert.equal(smm.commandCalls(InvokeEndpointAsyncCommand).length, 2);
  });

  test('without an endpoint every batch stays on Lambda', async () => {
    const keys = uploadImages(55);
    put(UPLOADS, 'batches/big.json', JSON.stringify({ images: keys.map((key) => ({ key })) }));
    const out = await handlerWith({ endpointName: undefined, endpointConfigured: false })(s3Event('batches/big.json'));
    assert.equal(out.batches[0]!.route, 'lambda');
    assert.equal(sqsm.commandCalls(SendMessageBatchCommand).length, 6, '55 messages in batches of 10');
  });

  test('the same manifest delivered twice submits nothing twice; a partial failure is retried for the rest only', async () => {
    const keys = uploadImages(60);
    put(UPLOADS, 'batches/again.json', JSON.stringify({ images: keys.map((key) => ({ key })) }));
    const ids = keys.map((key) => imageIdFor({ bucket: UPLOADS, key, etag: etagOf(bucket.get(`${UPLOADS}/${key}`)!) }));
    failInvokeFor = new Set([ids[3]!, ids[40]!]);
    const handler = handlerWith();
    await assert.rejects(handler(s3Event('batches/again.json')), /2 of 60 images could not be submitted/);
    const manifest = manifestsInEvent(s3Event('batches/again.json'))[0]!;
    const batchId = batchIdFor(manifest);
    const partial = statusOf(batchId);
    assert.equal(partial.state, 'PARTIALLY_SUBMITTED');
    assert.equal(partial.counts.failed, 2);
    assert.match(partial.images.find((i) => i.state === 'FAILED')!.reason!, /ThrottlingException/);
    smm.resetHistory();
    failInvokeFor = new Set();
    await handler(s3Event('batches/again.json'));
    assert.deepEqual(smm.commandCalls(InvokeEndpointAsyncCommand).map((c) => c.args[0].input.InferenceId).sort(), [ids[3], ids[40]].sort());
    assert.equal(statusOf(batchId).state, 'SUBMITTED');
    assert.equal(statusOf(batchId).counts.submitted, 60);
    smm.resetHistory();
    const again = await handler(s3Event('batches/again.json'));
    assert.match(again.batches[0]!.skipped!, /already submitted/);
    assert.equal(smm.commandCalls(InvokeEndpointAsyncCommand).length, 0);
  });

  test('an invalid manifest is rejected in its status object, not retried', async () => {
    put(UPLOADS, 'batches/bad.json', JSON.stringify({ images: [{ key: 'a.png', colour: 'red' }] }));
    const out = await handlerWith()(s3Event('batches/bad.json'));
    assert.equal(out.batches[0]!.state, 'REJECTED');
    const status = statusOf(out.batches[0]!.batchId);
    assert.match(status.reason, /image 1.*colour/i);
    assert.equal(sqsm.commandCalls(SendMessageBatchCommand).length + smm.commandCalls(InvokeEndpointAsyncCommand).length, 0);
  });

  test("the router's own objects and replaced manifests are ignored; SQS-wrapped notifications work", async () => {
    put(UPLOADS, 'batches/status/x.json', '{}');
    const own = await handlerWith()(s3Event('batches/status/x.json'));
    assert.match(own.batches[0]!.skipped!, /not a batch manifest/);
    const keys = uploadImages(1);
    put(UPLOADS, 'batches/m.json', JSON.stringify({ images: [{ key: keys[0] }] }));
    const ev = s3Event('batches/m.json');
    put(UPLOADS, 'batches/m.json', JSON.stringify({ images: [{ key: keys[0] }, { key: keys[0] + 'x' }] })); // overwritten since
    const stale = await handlerWith()(ev);
    assert.match(stale.batches[0]!.skipped!, /changed or was deleted/);
    const sqsEvent = { Records: [{ messageId: '1', body: JSON.stringify(s3Event('batches/m.json')), eventSource: 'aws:sqs' }] };
    const viaSqs = await handlerWith()(sqsEvent as never);
    assert.equal(viaSqs.batches[0]!.route, 'lambda');
  });
});
