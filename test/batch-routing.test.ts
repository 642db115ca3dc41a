/**
 * The batch router's routing (src/pipeline/batch-routing.ts) over in-memory ports: an object store with S3's
 * ETags, and fakes of the ingest queue, its backlog and the async endpoint. The same routing over the AWS
 * adapters and aws-sdk-client-mock'd clients: test/router.test.ts.
 */
import { beforeEach, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { pseudonymise } from '../src/core/pseudonym';
import { asyncRequestSchema } from '../src/pipeline/batch-request';
import { batchIdFor, routeManifest, statusKeyFor, type BatchRoutingConfig, type BatchRoutingDeps, type BatchStatus } from '../src/pipeline/batch-routing';
import { MemoryObjects } from '../src/pipeline/memory';
import { imageIdFor, type SourceRef } from '../src/pipeline/messages';
import type { AsyncEndpoint, AsyncInvocation, IngestQueue, IngestRequest, ObjectInfo, QueueBacklog, StageLogger, StoredObject } from '../src/pipeline/ports';

const KEY = 'batch-routing-test-pseudonym-key-0123';
const UPLOADS = 'uploads';
const WORK = 'work';

const etagOf = (body: Uint8Array) => createHash('md5').update(body).digest('hex');

/** MemoryObjects with S3's ETags (MD5 of the body) and a record of the bodies read; keys containing "forbidden" answer 403. */
class S3LikeObjects extends MemoryObjects {
  readonly reads: string[] = [];
  forbidStatus = false;
  private check(bucket: string, key: string) {
    if (key.includes('forbidden') || (this.forbidStatus && key.startsWith('batches/status/'))) {
      throw Object.assign(new Error('Forbidden'), { name: 'Forbidden', $metadata: { httpStatusCode: 403 } });
    }
  }
  override async head(bucket: string, key: string): Promise<ObjectInfo> {
    this.check(bucket, key);
    const { body } = await super.get(bucket, key);
    return { size: body.length, etag: etagOf(body) };
  }
  override async get(bucket: string, key: string): Promise<StoredObject> {
    this.check(bucket, key);
    const o = await super.get(bucket, key);
    this.reads.push(`${bucket}/${key}`);
    return { ...o, etag: etagOf(o.body) };
  }
  text(bucket: string, key: string): string | undefined {
    const o = this.objects.get(`${bucket}/${key}`);
    return o && Buffer.from(o.body).toString('utf8');
  }
}

class FakeIngest implements IngestQueue {
  readonly sent: IngestRequest[] = [];
  /** Keys refused with this reason. */
  refuse = new Map<string, string>();
  async send(requests: IngestRequest[]): Promise<(string | undefined)[]> {
    this.sent.push(...requests);
    return requests.map((r) => this.refuse.get(r.source.key));
  }
}

class FakeBacklog implements QueueBacklog {
  reads = 0;
  value: number | Error = 0;
  async waiting(): Promise<number> {
    this.reads += 1;
    if (this.value instanceof Error) throw this.value;
    return this.value;
  }
}

class FakeEndpoint implements AsyncEndpoint {
  readonly calls: AsyncInvocation[] = [];
  /** inferenceIds that fail with a throttling error. */
  fail = new Set<string>();
  async invoke(r: AsyncInvocation): Promise<{ inferenceId?: string; outputLocation?: string }> {
    this.calls.push(r);
    if (this.fail.has(r.inferenceId)) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    return { inferenceId: r.inferenceId, outputLocation: `s3://${WORK}/batches/outputs/${r.inferenceId}.out` };
  }
}

let objects: S3LikeObjects;
let ingest: FakeIngest;
let backlog: FakeBacklog;
let endpoint: FakeEndpoint;
let logged: { level: string; message: string; extra?: Record<string, unknown> }[];
const log: StageLogger = {
  info: (message, extra) => logged.push({ level: 'info', message, extra }),
  warn: (message, extra) => logged.push({ level: 'warn', message, extra }),
  error: (message, extra) => logged.push({ level: 'error', message, extra }),
};

beforeEach(() => {
  objects = new S3LikeObjects();
  ingest = new FakeIngest();
  backlog = new FakeBacklog();
  endpoint = new FakeEndpoint();
  logged = [];
});

const config: BatchRoutingConfig = { batchThreshold: 5, backlogThreshold: 100, endpointConfigured: true, workBucket: WORK, maxImages: 1000, imagePrefixes: ['batch-images/'] };
const deps = (o: Partial<BatchRoutingDeps> = {}, c: Partial<BatchRoutingConfig> = {}): BatchRoutingDeps => ({
  objects, ingest, backlog, endpoint, config: { ...config, ...c }, pseudonymKey: KEY, now: () => new Date('2025-03-01T12:00:00Z'), ...o,
});
const upload = async (key: string, body: string) => objects.put(UPLOADS, key, body, 'application/octet-stream');
const images = async (n: number) => {
  const keys = Array.from({ length: n }, (_, i) => `batch-images/img ${i}.png`);
  for (const [i, k] of keys.entries()) await upload(k, `png-${i}`);
  return keys;
};
/** A manifest as its S3 event names it (with the ETag of the version the event is about). */
const manifest = async (key: string, body: string): Promise<SourceRef> => {
  await upload(key, body);
  return { bucket: UPLOADS, key, etag: etagOf(Buffer.from(body)) };
};
const statusOf = (batchId: string) => JSON.parse(objects.text(WORK, statusKeyFor(batchId))!) as BatchStatus;
const srcOf = (key: string): SourceRef => ({ bucket: UPLOADS, key, etag: etagOf(Buffer.from(objects.text(UPLOADS, key)!)) });

describe('routeManifest over in-memory ports', () => {
  test('a small batch goes to the ingest queue with the pseudonyms of its ids; missing and out-of-prefix images are rejected', async () => {
    const keys = await images(2);
    await upload('elsewhere/x.png', 'x');
    const m = await manifest('batches/small.csv', `key,patient_id,study_id\n"${keys[0]}",P1,S1\n"${keys[1]}",,\nbatch-images/missing.png,P2,\nelsewhere/x.png,,\nbatch-images/forbidden.png,,\n`);
    const out = await routeManifest(m, deps(), log);
    assert.equal(out.batchId, batchIdFor(m));
    assert.equal(backlog.reads, 1, 'a small batch looks at the backlog');
    assert.equal(endpoint.calls.length, 0);
    assert.deepEqual(ingest.sent.map((r) => r.source.key), keys);
    assert.deepEqual(ingest.sent[0]!.source, { ...srcOf(keys[0]!), size: 5 }, 'the image as its HEAD found it (ETag, size)');
    assert.deepEqual(ingest.sent[0]!.ids, { patientKey: pseudonymise(KEY, 'patient', 'P1'), studyKey: pseudonymise(KEY, 'study', 'S1') });
    assert.deepEqual(ingest.sent[1]!.ids, { patientKey: undefined, studyKey: undefined });
    const status = statusOf(out.batchId);
    assert.deepEqual(out.status, status);
    assert.equal(status.state, 'SUBMITTED');
    assert.equal(status.route, 'lambda');
    assert.equal(status.backlog, 0);
    assert.deepEqual(status.manifest, { bucket: UPLOADS, key: 'batches/small.csv', etag: m.etag });
    assert.equal(status.createdAt, '2025-03-01T12:00:00.000Z');
    assert.deepEqual(status.counts, { listed: 5, submitted: 2, rejected: 3, failed: 0 });
    assert.deepEqual(status.images.map((i) => [i.key, i.state, i.imageId]), [
      [keys[0], 'SUBMITTED', imageIdFor(srcOf(keys[0]!))], [keys[1], 'SUBMITTED', imageIdFor(srcOf(keys[1]!))],
      ['batch-images/missing.png', 'REJECTED', undefined], ['elsewhere/x.png', 'REJECTED', undefined], ['batch-images/forbidden.png', 'REJECTED', undefined],
    ]);
    assert.match(status.images[2]!.reason!, /no object batch-images\/missing\.png in bucket uploads/);
    assert.match(status.images[3]!.reason!, /outside the prefixes batch images may use \(batch-images\/\)/);
    assert.match(status.images[4]!.reason!, /missing, or access denied/);
    assert.doesNotMatch(JSON.stringify(status), /"P1"|"S1"/, 'no raw id in the status');
  });

  test('a batch at the threshold goes to the endpoint: one request object per image, the invocation names it', async () => {
    const keys = await images(5);
    const m = await manifest('batches/big.json', JSON.stringify({ images: keys.map((key, i) => ({ key, patientId: `P${i}` })) }));
    const out = await routeManifest(m, deps({}, { requestTtlSeconds: 600, invocationTimeoutSeconds: 900 }), log);
    assert.equal(out.status!.route, 'sagemaker');
    assert.match(out.status!.reason, /batch of 5 images reaches the batch threshold of 5/);
    assert.equal(backlog.reads, 0, 'no need to look at the backlog');
    assert.equal(ingest.sent.length, 0);
    assert.equal(endpoint.calls.length, 5);
    for (const c of endpoint.calls) {
      assert.equal(c.input.bucket, WORK);
      assert.equal(c.input.key, `batches/requests/${out.batchId}/${c.inferenceId}.json`);
      assert.equal(c.requestTtlSeconds, 600);
      assert.equal(c.invocationTimeoutSeconds, 900);
      const req = asyncRequestSchema.parse(JSON.parse(objects.text(WORK, c.input.key)!));
      assert.equal(imageIdFor(req.source), c.inferenceId, 'the request names the object version of the imageId');
      assert.equal(req.batchId, out.batchId);
      assert.equal(req.patientKey, pseudonymise(KEY, 'patient', `P${keys.indexOf(req.source.key)}`));
      assert.equal(req.stored?.key, undefined, 'the stored source keeps no key by default');
      assert.equal(req.stored?.keyPseudonym, pseudonymise(KEY, 'source', req.source.key));
    }
    assert.ok(out.status!.images.every((i) => i.state === 'SUBMITTED' && i.inferenceId && i.outputLocation === `s3://${WORK}/batches/outputs/${i.inferenceId}.out`));
  });

  test('the backlog decides a small batch; unreadable, it is unknown (Lambda, with a warning); without an endpoint it is not read', async () => {
    const keys = await images(2);
    const body = JSON.stringify({ images: keys.map((key) => ({ key })) });
    backlog.value = 100;
    const busy = await routeManifest(await manifest('batches/a.json', body), deps(), log);
    assert.equal(busy.status!.route, 'sagemaker');
    assert.equal(busy.status!.backlog, 100);
    assert.match(busy.status!.reason, /ingest queue backlog of 100 reaches the backlog threshold of 100/);

    backlog.value = new Error('queue unreachable');
    const unknown = await routeManifest(await manifest('batches/b.json', body), deps(), log);
    assert.equal(unknown.status!.route, 'lambda');
    assert.match(unknown.status!.reason, /backlog unknown/);
    assert.equal(unknown.status!.backlog, undefined);
    assert.ok(logged.some((l) => l.level === 'warn' && l.message === 'could not read the ingest queue backlog'));

    const reads = backlog.reads;
    const big = await images(7);
    for (const [i, d] of [deps({ endpoint: undefined }), deps({}, { endpointConfigured: false })].entries()) {
      const out = await routeManifest(await manifest(`batches/c${i}.json`, JSON.stringify({ images: big.map((key) => ({ key })) })), d, log);
      assert.equal(out.status!.route, 'lambda');
      assert.match(out.status!.reason, /no SageMaker endpoint is configured/);
    }
    assert.equal(backlog.reads, reads, 'no backlog read without an endpoint');
  });

  test('images the queue refuses fail the batch (retried); the retry sends only those, a third delivery nothing', async () => {
    const keys = await images(3);
    const m = await manifest('batches/r.json', JSON.stringify({ images: keys.map((key) => ({ key })) }));
    ingest.refuse.set(keys[1]!, 'SQS: Throttled slow down');
    await assert.rejects(routeManifest(m, deps(), log), /batch [0-9a-f]{24}: 1 of 3 images could not be submitted; the retry sends only those/);
    const partial = statusOf(batchIdFor(m));
    assert.equal(partial.state, 'PARTIALLY_SUBMITTED');
    assert.deepEqual(partial.images[1], { key: keys[1], imageId: imageIdFor(srcOf(keys[1]!)), state: 'FAILED', reason: 'SQS: Throttled slow down' });
    ingest.refuse.clear();
    ingest.sent.length = 0;
    const retry = await routeManifest(m, deps({ now: () => new Date('2025-03-01T12:05:00Z') }), log);
    assert.deepEqual(ingest.sent.map((r) => r.source.key), [keys[1]]);
    assert.equal(retry.status!.state, 'SUBMITTED');
    assert.equal(retry.status!.createdAt, '2025-03-01T12:00:00.000Z', 'created when first routed');
    assert.equal(retry.status!.updatedAt, '2025-03-01T12:05:00.000Z');
    assert.equal(retry.status!.reason, partial.reason, 'the route of the first delivery is kept');
    ingest.sent.length = 0;
    const again = await routeManifest(m, deps(), log);
    assert.equal(again.skipped, `batch ${again.batchId} was already submitted`);
    assert.equal(ingest.sent.length, 0);
  });

  test('an endpoint that fails an image, or is gone by the retry, fails those images', async () => {
    const keys = await images(5);
    const m = await manifest('batches/e.json', JSON.stringify({ images: keys.map((key) => ({ key })) }));
    endpoint.fail.add(imageIdFor(srcOf(keys[2]!)));
    await assert.rejects(routeManifest(m, deps(), log), /1 of 5 images could not be submitted/);
    assert.match(statusOf(batchIdFor(m)).images[2]!.reason!, /^ThrottlingException: Rate exceeded$/);
    assert.ok(logged.some((l) => l.level === 'error' && l.extra?.name === 'ThrottlingException'));
    await assert.rejects(routeManifest(m, deps({ endpoint: undefined }), log), /1 of 5 images could not be submitted/);
    assert.match(statusOf(batchIdFor(m)).images[2]!.reason!, /no async endpoint is configured/);
    assert.equal(statusOf(batchIdFor(m)).route, 'sagemaker', 'a retry keeps the first route');
  });

  test('an invalid or oversized manifest is rejected in its status object; an oversized one is not read', async () => {
    const bad = await manifest('batches/bad.json', JSON.stringify({ images: [{ key: 'batch-images/a.png', colour: 'red' }] }));
    const rejected = await routeManifest(bad, deps(), log);
    assert.equal(rejected.status!.state, 'REJECTED');
    assert.match(rejected.status!.reason, /image 1.*colour/i);
    assert.deepEqual(rejected.status!.counts, { listed: 0, submitted: 0, rejected: 0, failed: 0 });
    const again = await routeManifest(bad, deps(), log);
    assert.match(again.skipped!, /was already rejected/);

    const huge = await manifest('batches/huge.json', JSON.stringify({ images: [{ key: 'batch-images/a.png' }], pad: 'x'.repeat(2000) }));
    const out = await routeManifest(huge, deps({}, { maxManifestBytes: 1000 }), log);
    assert.equal(out.status!.state, 'REJECTED');
    assert.match(out.status!.reason, /^the manifest is \d+ bytes, over the limit of 1000$/);
    assert.ok(!objects.reads.includes(`${UPLOADS}/batches/huge.json`), 'the oversized manifest body is never read');
    assert.equal(ingest.sent.length + endpoint.calls.length, 0);
  });

  test('a manifest replaced or deleted since its event, and objects that are no manifest, are skipped without a write', async () => {
    const keys = await images(1);
    const stale = await manifest('batches/m.json', JSON.stringify({ images: [{ key: keys[0] }] }));
    await upload('batches/m.json', JSON.stringify({ images: [{ key: keys[0] }, { key: `${keys[0]}x` }] }));
    const before = objects.objects.size;
    assert.equal((await routeManifest(stale, deps(), log)).skipped, 'batches/m.json changed or was deleted after the event');
    assert.equal((await routeManifest({ bucket: UPLOADS, key: 'batches/gone.json', etag: 'abc' }, deps(), log)).skipped, 'batches/gone.json changed or was deleted after the event');
    for (const key of ['batches/status/x.json', 'batches/requests/b/i.json', 'batches/outputs/o.out', 'other/x.json']) {
      assert.deepEqual(await routeManifest({ bucket: UPLOADS, key }, deps(), log), { batchId: '', skipped: `${key} is not a batch manifest` });
    }
    assert.equal(objects.objects.size, before, 'nothing written');

    // Replaced between the size check and the read: the version read is not the one of the event.
    const racing = await manifest('batches/race.json', JSON.stringify({ images: [{ key: keys[0] }] }));
    const get = objects.get.bind(objects);
    objects.get = async (bucket, key) => {
      if (key === 'batches/race.json') await upload(key, JSON.stringify({ images: [] }));
      return get(bucket, key);
    };
    assert.equal((await routeManifest(racing, deps(), log)).skipped, 'batches/race.json changed or was deleted after the event');
    assert.equal(ingest.sent.length, 0);
  });

  test('a manifest event without an ETag is named after the version read; a status object S3 refuses (403) counts as none', async () => {
    const keys = await images(1);
    const m = await manifest('batches/n.json', JSON.stringify({ images: [{ key: keys[0] }] }));
    objects.forbidStatus = true;
    const out = await routeManifest({ bucket: m.bucket, key: m.key }, deps(), log);
    assert.equal(out.batchId, batchIdFor(m), 'the same batch as with the ETag');
    assert.equal(out.status!.state, 'SUBMITTED');
    assert.equal(ingest.sent.length, 1);
  });
});
