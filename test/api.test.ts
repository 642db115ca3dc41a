/**
 * The HTTP API with real API Gateway REST proxy events, against the local pipeline (s3rver + dynalite,
 * the real segment/score handlers, a small real ONNX model). Uploads go through the presigned URL to
 * s3rver with fetch, exactly as a client would send them.
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { data as dcmjsData } from 'dcmjs';
import sharp from 'sharp';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import {
  createApiHandler, MAX_ANALYZE_BYTES, newUploadId, PATIENT_METADATA, STUDY_METADATA, type ApiDeps, type ApiHandler,
} from '../src/aws/api/app';
import { fitOverlay } from '../src/aws/api/analyze';
import { sanitiseFileName, uploadIdOfKey, uploadKeyFor } from '../src/pipeline/storage-layout';
import * as segmentStage from '../src/pipeline/segment-stage';
import { loadSeverityConfig } from '../src/core';
import { DEFAULT_MAX_INPUT_BYTES } from '../src/limits';
import { startLocalPipeline, type LocalPipeline } from '../src/local/pipeline';
import { LOCAL_NAMES } from '../src/local/stack';
import { DEFAULT_IDENTIFIERS, makeDicom } from './helpers/fixtures';
import { writeTinyModel } from './helpers/tiny-model';
import { chestPng } from './helpers/synthetic';

const context = { functionName: 'api', awsRequestId: 'test', getRemainingTimeInMillis: () => 30_000 } as unknown as Context;

/** A REST API (v1) proxy event as API Gateway sends it to Lambda. */
function restEvent(method: string, path: string, opts: {
  resource?: string; pathParameters?: Record<string, string>; query?: Record<string, string>;
  body?: string | Buffer; contentType?: string;
} = {}): APIGatewayProxyEvent {
  const binary = Buffer.isBuffer(opts.body);
  const headers: Record<string, string> = {
    Host: 'abc123.execute-api.us-east-1.amazonaws.com', 'X-Forwarded-Proto': 'https', Accept: 'application/json',
    ...(opts.contentType ? { 'Content-Type': opts.contentType } : {}),
  };
  return {
    resource: opts.resource ?? path,
    path,
    httpMethod: method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: opts.query ?? null,
    multiValueQueryStringParameters: opts.query ? Object.fromEntries(Object.entries(opts.query).map(([k, v]) => [k, [v]])) : null,
    pathParameters: opts.pathParameters ?? null,
    stageVariables: null,
    body: opts.body === undefined ? null : binary ? (opts.body as Buffer).toString('base64') : (opts.body as string),
    isBase64Encoded: binary,
    requestContext: {
      accountId: '123456789012', apiId: 'abc123', stage: 'v1', requestId: `req-${Math.random()}`,
      requestTimeEpoch: Date.now(), resourceId: 'r1', resourcePath: opts.resource ?? path, httpMethod: method,
      path: `/v1${path}`, protocol: 'HTTP/1.1', domainName: 'abc123.execute-api.us-east-1.amazonaws.com',
      authorizer: null,
      identity: {
        accessKey: 'AKIAEXAMPLE', accountId: '123456789012', caller: 'AIDAEXAMPLE', user: 'AIDAEXAMPLE',
        userArn: 'arn:aws:iam::123456789012:user/clinician', userAgent: 'test', sourceIp: '127.0.0.1',
        apiKey: null, apiKeyId: null, clientCert: null, cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null, cognitoIdentityId: null, cognitoIdentityPoolId: null, principalOrgId: null,
      },
    },
  } as APIGatewayProxyEvent;
}

interface Call { status: number; body: any; raw: APIGatewayProxyResult } // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON bodies, checked by the assertions

describe('HTTP API (REST proxy events, local stack, tiny model)', () => {
  let p: LocalPipeline;
  let api: ApiHandler;
  let apiDeps: ApiDeps;
  const logs: string[] = [];
  const call = async (event: APIGatewayProxyEvent): Promise<Call> => {
    const raw = await api(event, context);
    return { status: raw.statusCode, body: raw.body ? JSON.parse(raw.body) : undefined, raw };
  };
  const post = (path: string, body: unknown) => call(restEvent('POST', path, { body: JSON.stringify(body), contentType: 'application/json' }));

  /** POST /v1/uploads, then PUT the bytes to the presigned URL with the headers it asks for. */
  async function uploadThroughApi(fileName: string, bytes: Buffer, patientId?: string): Promise<string> {
    const r = await post('/v1/uploads', { fileName, size: bytes.length, contentType: 'image/png', ...(patientId ? { patientId } : {}) });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const put = await fetch(r.body.uploadUrl, { method: 'PUT', headers: r.body.headers, body: bytes });
    assert.equal(put.status, 200, await put.text());
    return r.body.uploadId as string;
  }
  const imageIdOf = async (uploadId: string): Promise<string> => {
    const r = await call(restEvent('GET', `/v1/uploads/${uploadId}`, { resource: '/v1/uploads/{uploadId}', pathParameters: { uploadId } }));
    assert.equal(r.status, 200);
    return r.body.imageId;
  };

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-api-'));
    p = await startLocalPipeline({ model: writeTinyModel(join(dir, 'model'), { size: 128 }), dataDir: dir, retryDelayMs: 50 });
    const sink = (level: string) => (m: string, e?: Record<string, unknown>) => logs.push(JSON.stringify({ level, m, ...e }));
    apiDeps = {
      s3: p.stack.s3, ddb: p.stack.ddb,
      uploadsBucket: LOCAL_NAMES.uploadsBucket, resultsBucket: LOCAL_NAMES.resultsBucket, resultsTable: LOCAL_NAMES.resultsTable,
      model: p.model, severity: loadSeverityConfig(),
      logger: { info: sink('info'), warn: sink('warn'), error: sink('error'), debug: sink('debug') },
    };
    api = createApiHandler(apiDeps);
  });
  afterAll(async () => p?.stop());

  test('upload via presigned PUT → pipeline → GET /v1/images/{id} is SCORED with a downloadable overlay', async () => {
    const image = await chestPng({ rightOpacity: 0.25 });
    const created = await post('/v1/uploads', { fileName: '../Chest X-ray 1.png', size: image.length, contentType: 'image/png', patientId: 'PAT-API-0001' });
    assert.equal(created.status, 201);
    assert.match(created.body.key, /^uploads\/[0-9a-f-]{36}\/image\.png$/, 'the file name is not part of the key, only its extension');
    assert.equal(created.body.method, 'PUT');
    assert.equal(created.body.headers['x-amz-meta-patient-id'], 'PAT-API-0001');
    assert.ok(!created.body.uploadUrl.includes('PAT-API-0001'), 'the patient id is a signed header, not in the URL');
    const url = new URL(created.body.uploadUrl);
    assert.match(url.searchParams.get('X-Amz-SignedHeaders')!, /content-type.*x-amz-meta-patient-id/);
    // The size is signed: S3 refuses a body of any other length, so the size cap holds for the upload itself.
    assert.match(url.searchParams.get('X-Amz-SignedHeaders')!, /(^|;)content-length(;|$)/);
    assert.equal(created.body.headers['content-length'], String(image.length));
    assert.equal(created.body.maxBytes, DEFAULT_MAX_INPUT_BYTES);
    assert.equal(url.searchParams.get('X-Amz-Expires'), '900');

    const { uploadId } = created.body;
    const pending = await call(restEvent('GET', `/v1/uploads/${uploadId}`, { resource: '/v1/uploads/{uploadId}', pathParameters: { uploadId } }));
    assert.deepEqual(pending.body, { uploadId, status: 'AWAITING_UPLOAD' });

    // s3rver does not verify V4 signatures, so that S3 refuses changed headers is asserted through the
    // signed-header list above rather than by sending a tampered request.
    const put = await fetch(created.body.uploadUrl, { method: 'PUT', headers: created.body.headers, body: image });
    assert.equal(put.status, 200, await put.text());
    await p.drain();

    const status = await call(restEvent('GET', `/v1/uploads/${uploadId}`, { resource: '/v1/uploads/{uploadId}', pathParameters: { uploadId } }));
    assert.equal(status.body.status, 'SCORED');
    const imageId = status.body.imageId as string;
    assert.match(imageId, /^[0-9a-f]{32}$/);

    const got = await call(restEvent('GET', `/v1/images/${imageId}`, { resource: '/v1/images/{imageId}', pathParameters: { imageId } }));
    assert.equal(got.status, 200);
    assert.equal(got.raw.headers?.['content-type'], 'application/json');
    assert.equal(got.body.status, 'SCORED');
    assert.equal(got.body.imageId, imageId);
    assert.ok(Math.abs(got.body.opacityPctRight - 25) < 3, `right lung 25% opaque, got ${got.body.opacityPctRight}`);
    assert.match(got.body.patientKey, /^pt_/, 'the patient id is pseudonymised');
    assert.match(got.body.source.keyPseudonym, /^src_[A-Za-z0-9_-]{22}$/, 'the upload key only as its pseudonym');
    assert.equal(got.body.source.key, undefined);
    assert.ok(!JSON.stringify(got.body).includes('Chest'), 'no file name in the result');
    assert.equal(got.body.keys, undefined);
    const overlay = await fetch(got.body.urls.overlay);
    assert.equal(overlay.status, 200);
    const overlayPng = Buffer.from(await overlay.arrayBuffer());
    assert.deepEqual([...overlayPng.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal((await sharp(overlayPng).metadata()).width, 320);
    const resultJson = await (await fetch(got.body.urls.result)).json() as { imageId: string };
    assert.equal(resultJson.imageId, imageId);
    assert.equal(new URL(got.body.urls.overlay).searchParams.get('X-Amz-Expires'), '300');
    assert.equal(got.body.urls.seg, undefined, 'a PNG input has no DICOM SEG');
    assert.equal(got.body.urls.sr, undefined, 'a PNG input has no DICOM SR');

    // 31 days on, the uploads bucket's lifecycle rule has deleted the upload (results are kept a year): the uploadId
    // still leads to the result, through the segment stage's index beside the results.
    const listedUpload = await p.stack.s3.send(new ListObjectsV2Command({ Bucket: LOCAL_NAMES.uploadsBucket, Prefix: `uploads/${uploadId}/` }));
    for (const o of listedUpload.Contents ?? []) await p.stack.s3.send(new DeleteObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: o.Key! }));
    const index = await p.stack.s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.resultsBucket, Key: `results/by-upload/${uploadId}` }));
    assert.equal(await index.Body!.transformToString(), imageId);
    const later = createApiHandler({ ...apiDeps, now: () => new Date(Date.now() + 31 * 86_400_000) });
    const afterExpiry = await later(restEvent('GET', `/v1/uploads/${uploadId}`, { resource: '/v1/uploads/{uploadId}', pathParameters: { uploadId } }), context);
    assert.equal(afterExpiry.statusCode, 200, afterExpiry.body);
    assert.deepEqual(JSON.parse(afterExpiry.body), { uploadId, imageId, status: 'SCORED', imageUrl: `/v1/images/${imageId}` });
    // An uploadId with neither an upload nor an index entry is still 404.
    const never = newUploadId(new Date(Date.now() - 3600_000));
    const missing = await later(restEvent('GET', `/v1/uploads/${never}`, { resource: '/v1/uploads/{uploadId}', pathParameters: { uploadId: never } }), context);
    assert.equal(JSON.parse(missing.body).error.code, 'UPLOAD_NOT_FOUND');
  });

  test("GET /v1/patients/{patientKey}/images lists a patient's images in time order, paginated", async () => {
    const ids: string[] = [];
    for (const share of [0.1, 0.3, 0.5]) {
      const uploadId = await uploadThroughApi(`day-${share}.png`, await chestPng({ rightOpacity: share }), 'PAT-TREND-7');
      await p.drain(); // one at a time, so createdAt (the time order of PNGs, which have no acquisition date) is strictly increasing
      ids.push(await imageIdOf(uploadId));
    }
    await uploadThroughApi('other.png', await chestPng({ rightOpacity: 0.2 }), 'PAT-OTHER-8');
    await p.drain();
    const first = (await p.results.get(ids[0]))!;
    const patientKey = first.patientKey;
    const list = (query?: Record<string, string>) => call(restEvent('GET', `/v1/patients/${patientKey}/images`, {
      resource: '/v1/patients/{patientKey}/images', pathParameters: { patientKey }, query,
    }));

    const all = await list();
    assert.equal(all.status, 200);
    assert.deepEqual(all.body.items.map((i: { imageId: string }) => i.imageId), ids, 'oldest first, only this patient');
    assert.equal(all.body.nextToken, undefined);
    const pct = all.body.items.map((i: { opacityPctRight: number }) => i.opacityPctRight);
    assert.ok(pct[0] < pct[1] && pct[1] < pct[2], `trend rises: ${pct}`);
    assert.ok(all.body.items.every((i: { urls?: { overlay: string } }) => i.urls?.overlay));

    const page1 = await list({ limit: '2' });
    assert.equal(page1.body.items.length, 2);
    assert.ok(page1.body.nextToken);
    const page2 = await list({ limit: '2', nextToken: page1.body.nextToken });
    assert.deepEqual([...page1.body.items, ...page2.body.items].map((i: { imageId: string }) => i.imageId), ids);
    assert.equal(page2.body.nextToken, undefined);
    // A page that ends exactly at the last image says there are no more (DynamoDB's LastEvaluatedKey would).
    const exact = await list({ limit: String(ids.length) });
    assert.deepEqual([exact.body.items.length, exact.body.nextToken], [ids.length, undefined]);
    const desc2 = await list({ limit: '2', order: 'desc' });
    const desc3 = await list({ limit: '2', order: 'desc', nextToken: desc2.body.nextToken });
    assert.deepEqual([...desc2.body.items, ...desc3.body.items].map((i: { imageId: string }) => i.imageId), [...ids].reverse());

    const desc = await list({ order: 'desc' });
    assert.deepEqual(desc.body.items.map((i: { imageId: string }) => i.imageId), [...ids].reverse());

    const bad = await list({ nextToken: 'bm90LWEtdG9rZW4' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_NEXT_TOKEN');
    const tooMany = await list({ limit: '1000' });
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.error.code, 'VALIDATION_FAILED');

    const nobody = await call(restEvent('GET', '/v1/patients/pt_nobody/images', { resource: '/v1/patients/{patientKey}/images', pathParameters: { patientKey: 'pt_nobody' } }));
    assert.equal(nobody.status, 200);
    assert.deepEqual(nobody.body.items, []);
  });

  test('errors: 404 for an unknown image and route, 400 for invalid requests, all as {error:{code,message}}', async () => {
    const missing = await call(restEvent('GET', `/v1/images/${'0'.repeat(32)}`, { resource: '/v1/images/{imageId}' }));
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'IMAGE_NOT_FOUND');
    assert.match(missing.body.error.message, /no result/);

    const badId = await call(restEvent('GET', '/v1/images/not-an-id', { resource: '/v1/images/{imageId}' }));
    assert.equal(badId.status, 400);
    assert.equal(badId.body.error.code, 'VALIDATION_FAILED');

    const noRoute = await call(restEvent('GET', '/v2/nothing'));
    assert.equal(noRoute.status, 404);
    assert.equal(noRoute.body.error.code, 'ROUTE_NOT_FOUND');

    const noName = await post('/v1/uploads', { contentType: 'image/png' });
    assert.equal(noName.status, 400);
    assert.equal(noName.body.error.code, 'VALIDATION_FAILED');
    assert.match(noName.body.error.message, /fileName/);

    const noSize = await post('/v1/uploads', { fileName: 'a.png' });
    assert.equal(noSize.status, 400);
    assert.match(noSize.body.error.message, /size/);
    const tooLarge = await post('/v1/uploads', { fileName: 'a.dcm', size: DEFAULT_MAX_INPUT_BYTES + 1 });
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body.error.code, 'TOO_LARGE');
    assert.match(tooLarge.body.error.message, /256.0 MiB \(268435457 bytes\).*over the limit of 256 MiB \(268435456 bytes\)/);
    const badType = await post('/v1/uploads', { fileName: 'a.gif', contentType: 'image/gif' });
    assert.equal(badType.status, 400);
    const extra = await post('/v1/uploads', { fileName: 'a.png', patientName: 'Jane Doe' });
    assert.equal(extra.status, 400, 'unknown fields (such as a name) are refused');

    const notJson = await call(restEvent('POST', '/v1/uploads', { body: '{"fileName":', contentType: 'application/json' }));
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.error.code, 'VALIDATION_FAILED');

    const badUpload = await call(restEvent('GET', '/v1/uploads/xyz', { resource: '/v1/uploads/{uploadId}' }));
    assert.equal(badUpload.status, 400);
  });

  test('POST /v1/analyze: JSON base64 and binary bodies give the result and a PNG overlay', async () => {
    const png = await chestPng({ rightOpacity: 0.25 });
    const r = await post('/v1/analyze', { image: png.toString('base64') });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.result.status, 'SCORED');
    assert.ok(Math.abs(r.body.result.opacityPctRight - 25) < 3, `got ${r.body.result.opacityPctRight}`);
    assert.equal(r.body.result.patientKey, undefined);
    const overlay = Buffer.from(r.body.overlayPng, 'base64');
    const meta = await sharp(overlay).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, 320);

    const bin = await call(restEvent('POST', '/v1/analyze', { body: png, contentType: 'image/png' }));
    assert.equal(bin.status, 200, JSON.stringify(bin.body));
    assert.equal(bin.body.result.opacityPctRight, r.body.result.opacityPctRight);
  });

  test('POST /v1/analyze: a PDF is 422 with the input error code; too large is 413; empty is 422', async () => {
    const pdf = Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
    const r = await call(restEvent('POST', '/v1/analyze', { body: pdf, contentType: 'application/octet-stream' }));
    assert.equal(r.status, 422);
    assert.equal(r.body.error.code, 'UNRECOGNISED_FORMAT');
    assert.ok(r.body.error.message.length > 0);

    const big = await call(restEvent('POST', '/v1/analyze', { body: Buffer.alloc(MAX_ANALYZE_BYTES + 1), contentType: 'application/octet-stream' }));
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'PAYLOAD_TOO_LARGE');

    const empty = await post('/v1/analyze', { image: '' });
    assert.equal(empty.status, 422);
    assert.equal(empty.body.error.code, 'EMPTY');
    const notB64 = await post('/v1/analyze', { image: 'not base64!' });
    assert.equal(notB64.status, 400);
  });

  /** A DICOM Part 10 object read back with dcmjs, naturalized. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a naturalized dataset is untyped
  const readDicom = (bytes: Uint8Array): Record<string, any> => {
    assert.equal(Buffer.from(bytes.subarray(128, 132)).toString('latin1'), 'DICM', 'a Part 10 file');
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    return dcmjsData.DicomMetaDictionary.naturalizeDataset(dcmjsData.DicomMessage.readFile(ab).dict);
  };

  test('a DICOM upload: GET /v1/images/{id} links seg.dcm, sr.dcm and overlay.dcm (DICOM SEG, SR and Secondary Capture of that image, identity off)', async () => {
    const dicom = makeDicom({ rows: 160, cols: 192 });
    const created = await post('/v1/uploads', { fileName: 'chest.dcm', size: dicom.length, contentType: 'application/dicom' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const put = await fetch(created.body.uploadUrl, { method: 'PUT', headers: created.body.headers, body: dicom });
    assert.equal(put.status, 200, await put.text());
    await p.drain();
    const imageId = await imageIdOf(created.body.uploadId);
    const got = await call(restEvent('GET', `/v1/images/${imageId}`, { resource: '/v1/images/{imageId}', pathParameters: { imageId } }));
    assert.equal(got.body.status, 'SCORED', JSON.stringify(got.body));
    assert.equal(new URL(got.body.urls.seg).searchParams.get('X-Amz-Expires'), '300');
    const fetchDicom = async (url: string) => {
      const r = await fetch(url);
      assert.equal(r.status, 200);
      return new Uint8Array(await r.arrayBuffer());
    };
    const seg = readDicom(await fetchDicom(got.body.urls.seg));
    const sr = readDicom(await fetchDicom(got.body.urls.sr));
    const sc = readDicom(await fetchDicom(got.body.urls.sc));
    assert.equal(sc.SOPClassUID, '1.2.840.10008.5.1.4.1.1.7', 'overlay.dcm is a Secondary Capture');
    assert.equal(sc.SamplesPerPixel, 3, 'of the RGB overlay');
    assert.equal(sc.StudyInstanceUID, seg.StudyInstanceUID, 'filed with the SEG and SR');
    assert.equal(seg.Modality, 'SEG');
    assert.equal(seg.SegmentSequence.length, 3, 'right lung, left lung, opacity');
    assert.equal(sr.Modality, 'SR');
    assert.equal(sr.StudyInstanceUID, seg.StudyInstanceUID, 'SEG and SR of one image share a study');
    // The local pipeline runs with DICOM_IDENTITY unset: off, so nothing of the source's patient or study.
    const text = JSON.stringify([seg, sr, sc].map(({ PixelData: _px, ...rest }) => rest));
    for (const v of Object.values(DEFAULT_IDENTIFIERS)) assert.ok(!text.includes(v), `identity off: ${v} not in the objects`);
  });

  test('POST /v1/analyze: a DICOM input returns its SEG and SR base64 with the deployment\'s identity mode; PNG none', async () => {
    const dicom = makeDicom({ rows: 160, cols: 192 });
    const linked = createApiHandler({
      s3: p.stack.s3, ddb: p.stack.ddb,
      uploadsBucket: LOCAL_NAMES.uploadsBucket, resultsBucket: LOCAL_NAMES.resultsBucket, resultsTable: LOCAL_NAMES.resultsTable,
      model: p.model, severity: loadSeverityConfig(), dicomIdentity: 'linked',
    });
    const ask = async (h: ApiHandler) => {
      const raw = await h(restEvent('POST', '/v1/analyze', { body: dicom, contentType: 'application/dicom' }), context);
      assert.equal(raw.statusCode, 200, raw.body);
      return JSON.parse(raw.body) as { result: { status: string }; dicom?: { seg: string; sr: string }; dicomOmitted?: string };
    };
    const off = await ask(api);
    assert.equal(off.result.status, 'SCORED');
    assert.ok(off.dicom, 'dicom present');
    const offSeg = readDicom(Buffer.from(off.dicom.seg, 'base64'));
    assert.equal(offSeg.Modality, 'SEG');
    assert.equal(offSeg.PatientID, '', 'identity off (the default): no patient id');
    assert.notEqual(offSeg.StudyInstanceUID, DEFAULT_IDENTIFIERS.studyInstanceUid);

    const withIds = await ask(linked);
    assert.ok(withIds.dicom, 'dicom present');
    const seg = readDicom(Buffer.from(withIds.dicom.seg, 'base64'));
    const sr = readDicom(Buffer.from(withIds.dicom.sr, 'base64'));
    assert.equal(sr.Modality, 'SR');
    for (const o of [seg, sr]) {
      assert.equal(o.PatientID, DEFAULT_IDENTIFIERS.patientId, 'linked: the source patient');
      assert.equal(o.StudyInstanceUID, DEFAULT_IDENTIFIERS.studyInstanceUid, 'linked: the source study');
    }

    const png = await post('/v1/analyze', { image: (await chestPng({ rightOpacity: 0.25 })).toString('base64') });
    assert.equal(png.status, 200);
    assert.equal(png.body.dicom, undefined);
    assert.equal(png.body.dicomOmitted, undefined);
  });

  test('file names are sanitised; logs hold no patient ids, file names or patient keys', async () => {
    assert.equal(sanitiseFileName('C:\\scans\\Ünïcode name.dcm'), 'Unicode_name.dcm');
    assert.equal(sanitiseFileName('...'), 'image');
    const id = '3f0c2a4e-8d1b-4c55-9a7e-0b1c2d3e4f50';
    assert.equal(uploadKeyFor(id, 'DOE^JOHN_MRN-998877.DCM'), `uploads/${id}/image.dcm`);
    assert.equal(uploadKeyFor(id, 'DOE JOHN'), `uploads/${id}/image`);
    assert.equal(uploadKeyFor(id, 'DOE JOHN.png', true), `uploads/${id}/DOE_JOHN.png`, 'keepSourceKeys: the sanitised name');
    // The uploadId back from an upload key (the segment stage's uploadId -> imageId index); none from other keys.
    assert.equal(uploadIdOfKey(uploadKeyFor(id, 'a.dcm')), id);
    assert.equal(uploadIdOfKey(uploadKeyFor(id, 'DOE JOHN.png', true)), id);
    for (const key of ['uploads/DOE^JOHN.dcm', `uploads/${id}/sub/x.png`, `batch-images/${id}/image.png`, `uploads/${id.toUpperCase()}/image.png`]) assert.equal(uploadIdOfKey(key), undefined, key);
    assert.equal(PATIENT_METADATA, segmentStage.PATIENT_METADATA);
    assert.equal(STUDY_METADATA, segmentStage.STUDY_METADATA);
    const text = logs.join('\n');
    assert.ok(logs.length > 0);
    for (const needle of ['PAT-API-0001', 'PAT-TREND-7', 'Chest', 'day-0.1', 'pt_', DEFAULT_IDENTIFIERS.patientId, 'Testperson']) assert.ok(!text.includes(needle), `log leaks ${needle}`);
  });
});

describe('fitOverlay (the overlay in a POST /v1/analyze response)', () => {
  test('as it is when it fits; else the same pixels compressed harder; else downscaled under the cap', async () => {
    const width = 600, height = 500;
    let seed = 5;
    const rgb = Buffer.from(Uint8Array.from({ length: width * height * 3 }, (_, i) => {
      const p = Math.floor(i / 3);
      return ((p % width) * 255) / width * 0.6 + ((Math.floor(p / width) * 255) / height) * 0.3 + (((seed = (seed * 1103515245 + 12345) >>> 0) >>> 29));
    }));
    const raw = { raw: { width, height, channels: 3 as const } };
    const level1 = await sharp(rgb, raw).png({ compressionLevel: 1 }).toBuffer();
    const level6 = await sharp(rgb, raw).png({ compressionLevel: 6 }).toBuffer();
    assert.ok(level6.length < level1.length * 0.9, `level 6 ${level6.length} B against level 1 ${level1.length} B`);
    assert.equal(await fitOverlay(level1, level1.length), level1);
    const harder = await fitOverlay(level1, Math.floor((level1.length + level6.length) / 2));
    const back = await sharp(harder).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([back.info.width, back.info.height], [width, height], 'full size kept');
    assert.ok(back.data.equals(rgb), 'the same pixels');
    const small = await fitOverlay(level1, Math.floor(level6.length / 3));
    const meta = await sharp(small).metadata();
    assert.ok(small.length <= Math.floor(level6.length / 3) && (meta.width ?? width) < width, `${small.length} B at ${meta.width}x${meta.height}`);
  });
});
