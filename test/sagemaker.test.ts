/**
 * The SageMaker serving container on loopback, CPU, with the tiny real ONNX model: real HTTP requests
 * against the contract (/ping, /invocations), the async JSON form reading from and writing to s3rver.
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { data as dcmjsData } from 'dcmjs';
import sharp from 'sharp';
import { loadModel } from '../layers/onnx/session';
import { S3Objects } from '../src/aws/s3-objects';
import { silentLogger } from '../src/pipeline/memory';
import { pseudonymise } from '../src/core/pseudonym';
import { LOCAL_NAMES, startLocalStack, type LocalStack } from '../src/local/stack';
import { imageIdFor } from '../src/pipeline/messages';
import { parseStageMessage } from '../src/pipeline/message-schema';
import { loadSeverityConfig, type SegmentationModel } from '../src/core';
import { readSegFrames } from '../src/core/dicom-out';
import { createInferenceServer, type InferenceServer } from '../functions/sagemaker/server';
import { queuedModel } from '../functions/sagemaker/model-queue';
import { chooseExecutionProviders } from '../functions/sagemaker/providers';
import { DEFAULT_IDENTIFIERS, makeDicom } from './helpers/fixtures';
import { writeTinyModel } from './helpers/tiny-model';
import { chestPng } from './helpers/synthetic';

const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

describe('SageMaker serving container (loopback, CPU, tiny model, s3rver)', () => {
  let stack: LocalStack;
  let srv: InferenceServer;
  let base: string;
  let model: SegmentationModel;
  let release!: (m: SegmentationModel) => void;
  const logs: string[] = [];

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-sm-'));
    stack = await startLocalStack({ dataDir: dir });
    model = await loadModel(writeTinyModel(join(dir, 'model')), { threads: 1 });
    srv = createInferenceServer({
      objects: new S3Objects(stack.s3),
      model: new Promise<SegmentationModel>((res) => { release = res; }),
      pseudonymKey: 'test-pseudonym-key-0123456789',
      resultsBucket: LOCAL_NAMES.resultsBucket,
      dicomOutputs: { identity: 'deidentified', severity: loadSeverityConfig() },
      log: { ...silentLogger, error: (m, e) => logs.push(`${m} ${JSON.stringify(e)}`) },
      allowedSourceBuckets: [LOCAL_NAMES.uploadsBucket],
      limits: { maxJsonBytes: 4096, maxImageBytes: 2 * 1024 * 1024, maxConcurrent: 2, maxBatch: 4 },
    });
    const addr = await srv.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(async () => {
    await srv?.close();
    await model?.release();
    await stack?.stop();
  });

  const invoke = (body: string | Buffer, contentType?: string) =>
    fetch(`${base}/invocations`, { method: 'POST', body, headers: contentType ? { 'content-type': contentType } : {} });
  const upload = async (key: string, body: Buffer) =>
    (await stack.s3.send(new PutObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: key, Body: body }))).ETag!.replace(/"/g, '');
  const getResult = async (key: string) =>
    (await stack.s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.resultsBucket, Key: key }))).Body!.transformToByteArray();

  test('/ping is 503 while the model loads, 200 once it is loaded; invocations wait for it too', async () => {
    assert.equal((await fetch(`${base}/ping`)).status, 503);
    assert.equal((await invoke('{}', 'application/json')).status, 503);
    release(model);
    await srv.loaded;
    const ping = await fetch(`${base}/ping`);
    assert.equal(ping.status, 200);
    assert.equal(srv.ready(), true);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/invocations`)).status, 405);
  });

  test('JSON form: reads the upload, writes masks and overlay to the results bucket, returns the StageMessage', async () => {
    const key = 'batch-images/quarter opacity.png';
    const etag = await upload(key, await chestPng({ rightOpacity: 0.25 }));
    // The router hands over the pseudonym (never the raw id); the container takes it as given.
    const patientKey = pseudonymise('test-pseudonym-key-0123456789', 'patient', 'PAT-7')!;
    const refused = await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket, key, etag }, patientId: 'PAT-7' }), 'application/json');
    assert.equal(refused.status, 400, 'a raw patientId is not accepted');
    const res = await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket, key, etag }, patientKey, batchId: 'b1' }), 'application/json');
    assert.equal(res.status, 200, logs.join('\n'));
    const msg = parseStageMessage(await res.text());
    assert.equal(msg.status, 'SEGMENTED');
    assert.equal(msg.path, 'sagemaker');
    assert.equal(msg.imageId, imageIdFor({ bucket: LOCAL_NAMES.uploadsBucket, key, etag }), 'same imageId as the Lambda path for the same upload');
    assert.equal(msg.patientKey, patientKey, 'the pseudonym of the request, not re-hashed: the same as on the Lambda route');
    assert.ok(!JSON.stringify(msg).includes('PAT-7'), 'the raw patient id never leaves');
    assert.ok(!JSON.stringify(msg).includes('quarter opacity'), 'nor the upload key');
    if (msg.status !== 'SEGMENTED') return;
    for (const k of [msg.keys.lung, msg.keys.lungRight, msg.keys.lungLeft, msg.keys.opacity, msg.keys.overlay]) {
      const meta = await sharp(await getResult(k)).metadata();
      assert.equal(meta.width, 320, k);
      assert.equal(meta.height, 256, k);
    }
    const opacity = await sharp(await getResult(msg.keys.opacity)).raw().toBuffer();
    assert.ok(opacity.some((v) => v > 0), 'opacity mask is not empty');
    assert.equal(msg.keys.seg, undefined, 'a PNG input has no DICOM SEG');
  });

  test('JSON form on a DICOM upload: seg.dcm and sr.dcm in the results bucket, in the identity mode it was given (deidentified)', async () => {
    const key = 'batch-images/chest.dcm';
    const etag = await upload(key, makeDicom({ rows: 160, cols: 192 }));
    const res = await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket, key, etag } }), 'application/json');
    assert.equal(res.status, 200, logs.join('\n'));
    const msg = parseStageMessage(await res.text());
    assert.equal(msg.status, 'SEGMENTED');
    if (msg.status !== 'SEGMENTED') return;
    assert.ok(msg.keys.seg && msg.keys.sr, 'seg and sr are listed in the StageMessage');
    const read = async (k: string) => {
      const b = await getResult(k);
      return dcmjsData.DicomMetaDictionary.naturalizeDataset(dcmjsData.DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer).dict);
    };
    const seg = await read(msg.keys.seg);
    const sr = await read(msg.keys.sr);
    assert.equal(seg.Modality, 'SEG');
    assert.equal(sr.Modality, 'SR');
    for (const o of [seg, sr]) {
      assert.match(String(o.PatientID), /^pt_/, 'deidentified: the keyed patient pseudonym');
      const text = JSON.stringify({ ...o, PixelData: undefined });
      for (const v of Object.values(DEFAULT_IDENTIFIERS)) assert.ok(!text.includes(v), `deidentified: ${v} not in the object`);
    }
  });

  test('raw PNG: masks and overlay come back as base64 PNGs with the meta', async () => {
    const res = await invoke(await chestPng({ rightOpacity: 0.5 }), 'image/png');
    assert.equal(res.status, 200);
    const body = await res.json() as { status: string; meta: { format: string }; masks: Record<string, string>; overlay: string; size: { width: number } };
    assert.equal(body.status, 'SEGMENTED');
    assert.equal(body.meta.format, 'png');
    assert.deepEqual(Object.keys(body.masks).sort(), ['lung', 'lungLeft', 'lungRight', 'opacity']);
    const lung = await sharp(Buffer.from(body.masks.lung!, 'base64')).metadata();
    assert.equal(lung.width, 320);
    assert.equal((await sharp(Buffer.from(body.overlay, 'base64')).metadata()).height, 256);
    assert.deepEqual(Object.keys(body).sort(), ['imageId', 'masks', 'meta', 'model', 'overlay', 'path', 'size', 'status', 'timingsMs']);
  });

  test('raw and JSON forms of one image give the same pictures, byte for byte (one analysis: the segment stage\'s)', async () => {
    const png = await chestPng({ rightOpacity: 0.5 });
    const etag = await upload('batch-images/same.png', png);
    const msg = parseStageMessage(await (await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket, key: 'batch-images/same.png', etag } }), 'application/json')).text());
    assert.equal(msg.status, 'SEGMENTED');
    if (msg.status !== 'SEGMENTED') return;
    const raw = await (await invoke(png, 'image/png')).json() as { masks: Record<'lung' | 'lungRight' | 'lungLeft' | 'opacity', string>; overlay: string };
    for (const name of ['lung', 'lungRight', 'lungLeft', 'opacity'] as const) {
      assert.ok(Buffer.from(raw.masks[name], 'base64').equals(Buffer.from(await getResult(msg.keys[name]))), `${name}.png`);
    }
    assert.ok(Buffer.from(raw.overlay, 'base64').equals(Buffer.from(await getResult(msg.keys.overlay))), 'overlay.png, legend included');
  });

  test('raw DICOM: the SEG and SR come back base64 beside the masks, in the identity mode it was given; its frames are the returned masks', async () => {
    const res = await invoke(makeDicom({ rows: 160, cols: 192, pixelSpacing: [0.5, 0.5] }), 'application/dicom');
    assert.equal(res.status, 200, logs.join('\n'));
    const body = await res.json() as { status: string; masks: Record<string, string>; dicom?: { seg: string; sr: string } };
    assert.equal(body.status, 'SEGMENTED');
    assert.ok(body.dicom, 'a DICOM input answers dicom: {seg, sr}');
    const seg = readSegFrames(Buffer.from(body.dicom.seg, 'base64'));
    assert.equal(seg.dataset.Modality, 'SEG');
    assert.equal(seg.frames.length, 3);
    for (const [i, name] of (['lungRight', 'lungLeft', 'opacity'] as const).entries()) {
      const png = await sharp(Buffer.from(body.masks[name]!, 'base64')).raw().toBuffer({ resolveWithObject: true });
      assert.equal(png.info.width, seg.columns);
      assert.ok(seg.frames[i]!.data.every((v, p) => v === (png.data[p * png.info.channels]! > 0 ? 1 : 0)), `SEG frame ${i + 1} is the ${name} mask`);
    }
    const srBytes = Buffer.from(body.dicom.sr, 'base64');
    const sr = dcmjsData.DicomMetaDictionary.naturalizeDataset(dcmjsData.DicomMessage.readFile(srBytes.buffer.slice(srBytes.byteOffset, srBytes.byteOffset + srBytes.byteLength) as ArrayBuffer).dict);
    assert.equal(sr.Modality, 'SR');
    for (const o of [seg.dataset, sr]) {
      assert.match(String(o.PatientID), /^pt_/, 'deidentified: the keyed patient pseudonym');
      const text = JSON.stringify({ ...o, PixelData: undefined });
      for (const v of Object.values(DEFAULT_IDENTIFIERS)) assert.ok(!text.includes(v), `deidentified: ${v} not in the object`);
    }
    const png = await (await invoke(await chestPng({ rightOpacity: 0.25 }), 'image/png')).json() as { dicom?: unknown };
    assert.equal(png.dicom, undefined, 'a PNG input has none');
  });

  test('a PDF is a FAILED StageMessage (200) on the JSON form and a 422 raw', async () => {
    const key = 'batch-images/report.pdf';
    const etag = await upload(key, PDF);
    const res = await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket, key, etag } }), 'application/json');
    assert.equal(res.status, 200);
    const msg = parseStageMessage(await res.text());
    assert.equal(msg.status, 'FAILED');
    assert.equal(msg.path, 'sagemaker');
    if (msg.status === 'FAILED') assert.ok(msg.error.reason.length > 0);
    const raw = await invoke(PDF, 'application/octet-stream');
    assert.equal(raw.status, 422);
    assert.equal(((await raw.json()) as { status: string }).status, 'FAILED');
  });

  test('malformed and unacceptable requests get clear 4xx answers', async () => {
    const bad = await invoke('{"source": ', 'application/json');
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /not valid JSON/);
    const unknown = await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket, key: 'a.png' }, colour: 'red' }), 'application/json');
    assert.equal(unknown.status, 400);
    assert.match(((await unknown.json()) as { message: string }).message, /colour|Unrecognized/i);
    assert.equal((await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket } }), 'application/json')).status, 400);
    assert.equal((await invoke('', 'application/json')).status, 400);
    assert.equal((await invoke('hello', 'text/plain')).status, 415);
    assert.equal((await invoke(JSON.stringify({ source: { bucket: 'someone-elses', key: 'a.png' } }), 'application/json')).status, 403);
    assert.equal((await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket, key: 'missing.png' } }), 'application/json')).status, 404);
    const big = await invoke(JSON.stringify({ source: { bucket: LOCAL_NAMES.uploadsBucket, key: 'x'.repeat(5000) } }), 'application/json');
    assert.equal(big.status, 413);
    const bigRaw = await invoke(Buffer.alloc(3 * 1024 * 1024, 1), 'image/png');
    assert.equal(bigRaw.status, 413);
    assert.equal((await fetch(`${base}/ping`)).status, 200, 'still serving after bad requests');
  });

  test('concurrent requests are all answered correctly', async () => {
    const pngs = await Promise.all([0, 0.25, 0.5, 0.75, 0, 0.25].map((o) => chestPng({ rightOpacity: o })));
    const res = await Promise.all(pngs.map((p) => invoke(p, 'image/png')));
    const bodies = await Promise.all(res.map((r) => r.json() as Promise<{ status: string; masks: { opacity: string } }>));
    assert.ok(res.every((r) => r.status === 200));
    const ones = async (b64: string) => (await sharp(Buffer.from(b64, 'base64')).raw().toBuffer()).filter((v) => v > 0).length;
    const counts = await Promise.all(bodies.map((b) => ones(b.masks.opacity)));
    assert.equal(counts[0], counts[4], 'same image, same answer under concurrency');
    assert.equal(counts[1], counts[5]);
    assert.ok(counts[0]! < counts[1]! && counts[1]! < counts[2]! && counts[2]! < counts[3]!, `opacity grows: ${counts.join(',')}`);
  });

  test('the model queue merges overlapping calls into one batch with the same outputs', async () => {
    const q = queuedModel(model, { maxBatch: 4 });
    const S = model.manifest.input.size;
    const inputs = [0.1, 0.3, 0.5, 0.7, 0.9].map((v) => new Float32Array(S * S).fill((v - 0.5) / 0.25));
    const single = await Promise.all(inputs.map((x) => model.run(x, 1)));
    const merged = await Promise.all(inputs.map((x) => q.run(x, 1)));
    assert.equal(q.stats.images, 5);
    assert.ok(q.stats.runs < 5 && q.stats.maxBatchSeen > 1, `merged: ${JSON.stringify(q.stats)}`);
    merged.forEach((m, i) => assert.deepEqual(Array.from(m), Array.from(single[i]!)));
    const full = queuedModel(model, { maxQueued: 1 });
    const first = full.run(inputs[0]!, 1);
    const second = full.run(inputs[1]!, 1); // waits while the first runs
    await assert.rejects(full.run(inputs[2]!, 1), /queue is full/);
    await Promise.all([first, second]);
  });
});

describe('execution providers', () => {
  const probe = (device: boolean, provider: boolean) => ({ hasDevice: () => device, hasCudaProvider: () => provider });
  test('CUDA when asked or when a device and the provider are present, CPU otherwise', () => {
    assert.deepEqual(chooseExecutionProviders({ USE_CUDA: '1' }, probe(false, false)).executionProviders, ['cuda', 'cpu']);
    assert.deepEqual(chooseExecutionProviders({ USE_CUDA: '0' }, probe(true, true)).executionProviders, ['cpu']);
    assert.deepEqual(chooseExecutionProviders({}, probe(true, true)).executionProviders, ['cuda', 'cpu']);
    assert.deepEqual(chooseExecutionProviders({}, probe(true, false)).executionProviders, ['cpu']);
    assert.match(chooseExecutionProviders({}, probe(true, false)).reason, /without its CUDA provider/);
    assert.deepEqual(chooseExecutionProviders({}, probe(false, true)).executionProviders, ['cpu']);
  });
});
