/**
 * Contract test: every route's responses, success and error, served by `npm run api`'s server
 * (src/local/api-server.ts: real HTTP, the deployed app, s3rver + dynalite, the local pipeline with the tiny
 * model), validated against api/openapi.yaml with openapi-backend (ajv, with ajv-formats for uuid, uri,
 * date-time, byte). A last test checks that each documented (operation, status) with a body was exercised.
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import addFormats from 'ajv-formats';
import OpenAPIBackend from 'openapi-backend';
import sharp from 'sharp';
import {
  API_ROUTES, createApiHandler, MAX_ANALYZE_BYTES, MAX_ANALYZE_OVERLAY_BYTES, newUploadId, uploadIdIssuedAt,
} from '../src/aws/api/app';
import { createApiServer, startLocalApi, toRestEvent, type LocalApi } from '../src/local/api-server';
import { loadSeverityConfig } from '../src/core';
import { LOCAL_NAMES } from '../src/local/stack';
import { DEFAULT_IDENTIFIERS, makeDicom } from './helpers/fixtures';
import { chestPixels, chestPng } from './helpers/synthetic';
import { writeTinyModel } from './helpers/tiny-model';

const SPEC = join(__dirname, '..', 'api', 'openapi.yaml');
/** Lambda's synchronous response payload limit (6 MB). */
const LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024;

interface Res { status: number; headers: Headers; text: string; body: any } // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON bodies, checked by the assertions

describe('API contract (api/openapi.yaml) over the local API server', () => {
  let api: LocalApi;
  let spec: OpenAPIBackend;
  const exercised = new Set<string>();
  const access: string[] = [];

  const send = async (method: string, path: string, opts: { json?: unknown; body?: Buffer; contentType?: string; base?: string } = {}): Promise<Res> => {
    const headers: Record<string, string> = {};
    let body: Buffer | string | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      body = opts.body;
    }
    const r = await fetch(`${opts.base ?? api.url}${path}`, { method, headers, body });
    const text = await r.text();
    return { status: r.status, headers: r.headers, text, body: text ? JSON.parse(text) : undefined };
  };
  /** Validates a response against the operation's documented response for its status; records it. */
  const conforms = (operationId: keyof typeof API_ROUTES, r: Res): any => { // eslint-disable-line @typescript-eslint/no-explicit-any -- returns the JSON body it validated
    assert.equal(r.headers.get('content-type'), 'application/json', `${operationId} ${r.status}: JSON`);
    const documented = spec.getOperation(operationId)?.responses?.[String(r.status)];
    assert.ok(documented, `${operationId} answered ${r.status}, which api/openapi.yaml does not document: ${r.text.slice(0, 300)}`);
    const v = spec.validateResponse(r.body, operationId, r.status);
    assert.equal(v.errors, null, `${operationId} ${r.status} does not match api/openapi.yaml: ${JSON.stringify(v.errors)}\n${r.text.slice(0, 500)}`);
    exercised.add(`${operationId} ${r.status}`);
    return r.body;
  };
  /** An error body: the Error schema (as every documented error response carries it). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON body
  const isError = (body: any, code: string) => {
    const v = spec.validateResponse(body, 'getImage', 404);
    assert.equal(v.errors, null, JSON.stringify(v.errors));
    assert.equal(body.error.code, code, JSON.stringify(body));
    return body.error as { code: string; message: string };
  };

  async function upload(bytes: Buffer, extra: Record<string, unknown> = {}): Promise<string> {
    const created = conforms('createUpload', await send('POST', '/v1/uploads', { json: { fileName: 'x.png', size: bytes.length, contentType: 'image/png', ...extra } }));
    const put = await fetch(created.uploadUrl, { method: 'PUT', headers: created.headers, body: bytes });
    assert.equal(put.status, 200, await put.text());
    return created.uploadId;
  }

  beforeAll(async () => {
    spec = new OpenAPIBackend({ definition: SPEC, quick: false, validate: true, strict: true, customizeAjv: (ajv) => addFormats(ajv as never) as never });
    await spec.init();
    const dir = mkdtempSync(join(tmpdir(), 'cxr-contract-'));
    api = await startLocalApi({
      port: 0, model: writeTinyModel(join(dir, 'model'), { size: 128 }), dataDir: dir, retryDelayMs: 50,
      accessLog: (l) => access.push(`${l.method} ${l.route} ${l.status}`),
    });
  });
  afterAll(async () => api?.stop());

  test('the app\'s routes are exactly the operations of api/openapi.yaml', () => {
    const documented = spec.getOperations().map((o) => `${o.operationId} ${o.method.toUpperCase()} ${o.path}`).sort();
    const served = Object.entries(API_ROUTES).map(([id, r]) => `${id} ${r.method} ${r.resource}`).sort();
    assert.deepEqual(served, documented);
  });

  test('uploads: create (201, 400, 413), presigned PUT to the local S3, status (200 AWAITING → SCORED, 400, 404)', async () => {
    const image = await chestPng({ rightOpacity: 0.25 });
    const created = conforms('createUpload', await send('POST', '/v1/uploads', { json: { fileName: 'chest.png', size: image.length, contentType: 'image/png', patientId: 'PAT-CONTRACT-1' } }));
    assert.ok(created.uploadUrl.startsWith(api.pipeline.stack.s3Endpoint), 'the upload URL points at the local S3');
    assert.ok(Math.abs(uploadIdIssuedAt(created.uploadId)!.getTime() - Date.now()) < 60_000, 'the upload id carries its issue time');
    const pending = conforms('getUpload', await send('GET', `/v1/uploads/${created.uploadId}`));
    assert.equal(pending.status, 'AWAITING_UPLOAD');
    const put = await fetch(created.uploadUrl, { method: 'PUT', headers: created.headers, body: image });
    assert.equal(put.status, 200, await put.text());
    await api.pipeline.drain();
    const done = conforms('getUpload', await send('GET', `/v1/uploads/${created.uploadId}`));
    assert.equal(done.status, 'SCORED');
    // UUIDs are case-insensitive on input (RFC 9562): the id in capitals is the same upload.
    const upper = conforms('getUpload', await send('GET', `/v1/uploads/${String(created.uploadId).toUpperCase()}`));
    assert.deepEqual([upper.status, upper.uploadId, upper.imageId], ['SCORED', created.uploadId, done.imageId]);
    const img = conforms('getImage', await send('GET', done.imageUrl));
    assert.equal(img.status, 'SCORED');
    assert.match(img.patientKey, /^pt_/);
    assert.equal((await fetch(img.urls.overlay)).status, 200, 'result URLs point at the local S3');

    isError(conforms('createUpload', await send('POST', '/v1/uploads', { json: { fileName: 'a.png' } })), 'VALIDATION_FAILED');
    isError(conforms('createUpload', await send('POST', '/v1/uploads', { json: { fileName: 'a.png', size: 2 ** 31 } })), 'TOO_LARGE');
    isError(conforms('getUpload', await send('GET', '/v1/uploads/not-a-uuid')), 'VALIDATION_FAILED');

    // Never issued (a v4 uuid, or a v7 one whose check fails): 404 at once, not AWAITING_UPLOAD forever.
    const unknown = conforms('getUpload', await send('GET', `/v1/uploads/${randomUUID()}`));
    isError(unknown, 'UPLOAD_NOT_FOUND');
    assert.match(unknown.error.message, /POST \/v1\/uploads returned/);
    const fresh = newUploadId(new Date());
    const typo = fresh.slice(0, -1) + (fresh.endsWith('0') ? '1' : '0');
    assert.equal(conforms('getUpload', await send('GET', `/v1/uploads/${typo}`)).error.code, 'UPLOAD_NOT_FOUND');
    assert.equal(conforms('getUpload', await send('GET', `/v1/uploads/${fresh}`)).status, 'AWAITING_UPLOAD');
    // Issued, never used, URL expired: 404 with what to do.
    const stale = conforms('getUpload', await send('GET', `/v1/uploads/${newUploadId(new Date(Date.now() - 3600_000))}`));
    assert.equal(stale.error.code, 'UPLOAD_NOT_FOUND');
    assert.match(stale.error.message, /before its upload URL expired \(create a new upload: POST \/v1\/uploads\).*upload retention.*GET \/v1\/images\/\{imageId\}/);
  });

  test('images and patients: 200 SCORED and FAILED, 404, 400; listing 200 and 400', async () => {
    const bad = await upload(Buffer.from('not an image at all'));
    const ok = await upload(await chestPng({ rightOpacity: 0.5 }), { patientId: 'PAT-CONTRACT-2', studyId: 'S-1' });
    await api.pipeline.drain();
    const failedUpload = conforms('getUpload', await send('GET', `/v1/uploads/${bad}`));
    assert.equal(failedUpload.status, 'FAILED');
    const failed = conforms('getImage', await send('GET', failedUpload.imageUrl));
    assert.equal(failed.errorCode, 'UNRECOGNISED_FORMAT');
    const scored = conforms('getImage', await send('GET', conforms('getUpload', await send('GET', `/v1/uploads/${ok}`)).imageUrl));
    isError(conforms('getImage', await send('GET', `/v1/images/${'0'.repeat(32)}`)), 'IMAGE_NOT_FOUND');
    isError(conforms('getImage', await send('GET', '/v1/images/nope')), 'VALIDATION_FAILED');

    const page = conforms('listPatientImages', await send('GET', `/v1/patients/${scored.patientKey}/images?limit=1`));
    assert.equal(page.items.length, 1);
    conforms('listPatientImages', await send('GET', '/v1/patients/pt_nobody/images'));
    isError(conforms('listPatientImages', await send('GET', `/v1/patients/${scored.patientKey}/images?nextToken=garbage`)), 'INVALID_NEXT_TOKEN');
    isError(conforms('listPatientImages', await send('GET', '/v1/patients/pt_x/images?limit=0')), 'VALIDATION_FAILED');
  });

  test('analyze: 200 (JSON, binary, DICOM) without patient/study keys, 400, 413, 422; 503 where not configured', async () => {
    const png = await chestPng({ rightOpacity: 0.25 });
    for (const r of [
      await send('POST', '/v1/analyze', { json: { image: png.toString('base64') } }),
      await send('POST', '/v1/analyze', { body: png, contentType: 'image/png' }),
      await send('POST', '/v1/analyze', { body: makeDicom({ rows: 160, cols: 192 }), contentType: 'application/dicom' }),
    ]) {
      const body = conforms('analyze', r);
      assert.equal(body.result.status, 'SCORED');
      for (const k of ['patientKey', 'studyKey', 'studyDate', 'source', 'urls', 'keys']) assert.equal(body.result[k], undefined, `no ${k} in an analyze result`);
      for (const v of Object.values(DEFAULT_IDENTIFIERS)) assert.ok(!r.text.includes(v), 'no source identifier in the response');
    }
    isError(conforms('analyze', await send('POST', '/v1/analyze', { json: { image: 'not base64!' } })), 'VALIDATION_FAILED');
    isError(conforms('analyze', await send('POST', '/v1/analyze', { body: Buffer.alloc(MAX_ANALYZE_BYTES + 1), contentType: 'application/octet-stream' })), 'PAYLOAD_TOO_LARGE');
    isError(conforms('analyze', await send('POST', '/v1/analyze', { body: Buffer.from('%PDF-1.4 nothing'), contentType: 'application/octet-stream' })), 'UNRECOGNISED_FORMAT');
    // A PNG sent as another media type is not blamed on the file: 415, naming the types read.
    for (const contentType of ['text/plain', 'image/gif', 'application/x-www-form-urlencoded']) {
      const e = isError(conforms('analyze', await send('POST', '/v1/analyze', { body: png, contentType })), 'UNSUPPORTED_MEDIA_TYPE');
      assert.match(e.message, /image\/png, image\/jpeg, application\/dicom, application\/octet-stream/);
    }
    // Media types are case-insensitive and may carry parameters.
    for (const contentType of ['IMAGE/PNG', 'image/png; charset=binary']) {
      const r = await send('POST', '/v1/analyze', { body: png, contentType });
      assert.equal(r.status, 200, `${contentType}: ${r.text.slice(0, 200)}`);
      conforms('analyze', r);
    }
    // Keys other than image are refused by name (the spec's additionalProperties: false), not silently dropped.
    const extra = isError(conforms('analyze', await send('POST', '/v1/analyze', { json: { image: png.toString('base64'), patientId: 'MRN998877' } })), 'VALIDATION_FAILED');
    assert.match(extra.message, /only "image" is accepted in the body \(not "patientId"\)/);
    assert.ok(!extra.message.includes('MRN998877'), 'the value is not echoed');

    // A deployment without MODEL_MANIFEST: the same app without a model, behind the same server.
    const noModel = createApiServer(createApiHandler({
      s3: api.pipeline.stack.s3, ddb: api.pipeline.stack.ddb, uploadsBucket: LOCAL_NAMES.uploadsBucket,
      resultsBucket: LOCAL_NAMES.resultsBucket, resultsTable: LOCAL_NAMES.resultsTable, severity: loadSeverityConfig(),
    }));
    await new Promise<void>((res) => noModel.listen(0, '127.0.0.1', res));
    try {
      const base = `http://127.0.0.1:${(noModel.address() as AddressInfo).port}`;
      isError(conforms('analyze', await send('POST', '/v1/analyze', { body: png, contentType: 'image/png', base })), 'ANALYZE_UNAVAILABLE');
    } finally {
      await new Promise<void>((res) => (noModel as Server).close(() => res()));
    }
  });

  test('analyze: a 3500x4200 noisy JPEG (the size that gave a 4.8 MB response) stays well under 6 MB', async () => {
    const { width, height, data } = chestPixels({ width: 3500, height: 4200, rightOpacity: 0.3 });
    // Film grain: uniform noise of +-8 grey levels, which a PNG overlay cannot compress away.
    let seed = 1;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const grey = Buffer.from(Uint8Array.from(data, (v) => Math.max(0, Math.min(255, Math.round(v * 255 + (rand() - 0.5) * 16)))));
    const jpeg = await sharp(grey, { raw: { width, height, channels: 1 } }).jpeg({ quality: 85 }).toBuffer();
    assert.ok(jpeg.length <= MAX_ANALYZE_BYTES, `test image ${jpeg.length} bytes fits the analyze limit`);
    const r = await send('POST', '/v1/analyze', { body: jpeg, contentType: 'image/jpeg' });
    const body = conforms('analyze', r);
    const overlay = Buffer.from(body.overlayPng, 'base64');
    const meta = await sharp(overlay).metadata();
    console.log(`# 3500x4200 JPEG ${jpeg.length} B: analyze response ${r.text.length} B, overlay ${overlay.length} B at ${meta.width}x${meta.height}`);
    assert.ok(overlay.length <= MAX_ANALYZE_OVERLAY_BYTES, `overlay ${overlay.length} B`);
    // Unbounded, this image's overlay was 2.17 MB of PNG (2.9 MB base64); a real film of this size gave 4.8 MB.
    assert.ok(r.text.length < Math.ceil(MAX_ANALYZE_OVERLAY_BYTES / 3) * 4 + 65536, `response ${r.text.length} B: the overlay and a small result`);
    assert.ok(r.text.length < LAMBDA_RESPONSE_LIMIT / 2, `response ${r.text.length} B, well under Lambda's 6 MB`);
    assert.ok((meta.width ?? 0) >= 512, 'still a usable picture');
  });

  test('wrong method: 405 with Allow; unknown path: 404; both in the Error shape', async () => {
    for (const [method, path, allow] of [
      ['DELETE', `/v1/images/${'0'.repeat(32)}`, 'GET'], ['GET', '/v1/uploads', 'POST'], ['PUT', `/v1/uploads/${randomUUID()}`, 'GET'],
      ['GET', '/v1/analyze', 'POST'], ['POST', '/v1/patients/pt_x/images', 'GET'],
    ] as const) {
      const r = await send(method, path);
      assert.equal(r.status, 405, `${method} ${path}: ${r.text}`);
      assert.equal(r.headers.get('allow'), allow);
      isError(r.body, 'METHOD_NOT_ALLOWED');
      assert.match(r.body.error.message, new RegExp(`use ${allow}`));
    }
    const r = await send('GET', '/v2/nothing');
    assert.equal(r.status, 404);
    isError(r.body, 'ROUTE_NOT_FOUND');
    // A method fetch will not send and the router does not know: the same 405 with Allow, not an empty body. (Made-up
    // methods never reach the app here: Node's HTTP parser answers them 400 itself.)
    for (const method of ['TRACE']) {
      const raw = await new Promise<{ status: number; allow?: string; text: string }>((done, fail) => {
        const q = request(`${api.url}/v1/uploads`, { method }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => done({ status: res.statusCode ?? 0, allow: res.headers.allow, text }));
        });
        q.on('error', fail).end();
      });
      assert.equal(raw.status, 405, `${method}: ${raw.text}`);
      assert.equal(raw.allow, 'POST');
      isError(JSON.parse(raw.text), 'METHOD_NOT_ALLOWED');
    }
  });

  test('media types are case-insensitive: APPLICATION/JSON creates an upload', async () => {
    const r = await fetch(`${api.url}/v1/uploads`, { method: 'POST', headers: { 'content-type': 'APPLICATION/JSON; charset=utf-8' }, body: JSON.stringify({ fileName: 'a.png', size: 10 }) });
    const text = await r.text();
    assert.equal(r.status, 201, text);
    conforms('createUpload', { status: r.status, headers: r.headers, text, body: JSON.parse(text) });
  });

  test('the server builds REST proxy events as API Gateway does (resource, path parameters, binary bodies)', () => {
    const e = toRestEvent({ method: 'get', url: '/v1/patients/pt_a%2Eb/images?limit=2&order=desc', headers: { host: 'h' }, body: Buffer.alloc(0) });
    assert.equal(e.resource, '/v1/patients/{patientKey}/images');
    assert.deepEqual(e.pathParameters, { patientKey: 'pt_a.b' });
    assert.deepEqual(e.queryStringParameters, { limit: '2', order: 'desc' });
    assert.equal(e.body, null);
    const bin = toRestEvent({ method: 'POST', url: '/v1/analyze', headers: { 'content-type': 'image/png' }, body: Buffer.from([0, 255]) });
    assert.equal(bin.isBase64Encoded, true);
    assert.equal(bin.body, 'AP8=');
    const text = toRestEvent({ method: 'POST', url: '/v1/uploads', headers: { 'content-type': 'application/json; charset=utf-8' }, body: Buffer.from('{"a":1}') });
    assert.equal(text.isBase64Encoded, false);
    assert.equal(text.body, '{"a":1}');
  });

  test('500: an internal failure (DynamoDB down) is INTERNAL in the Error shape', async () => {
    await api.pipeline.stack.stopDynamo();
    try {
      isError(conforms('getImage', await send('GET', `/v1/images/${'1'.repeat(32)}`)), 'INTERNAL');
    } finally {
      await api.pipeline.stack.startDynamo();
    }
  });

  test('every documented (operation, status) with a body was exercised; the access log holds no ids', () => {
    const documented: string[] = [];
    for (const op of spec.getOperations()) {
      for (const [status, res] of Object.entries(op.responses ?? {})) {
        if ((res as { content?: unknown }).content && status !== '500') documented.push(`${op.operationId} ${status}`);
      }
    }
    assert.deepEqual(documented.filter((d) => !exercised.has(d)), [], 'documented responses no test produced');
    assert.ok(exercised.has('getImage 500'));
    assert.ok(access.length > 10);
    for (const line of access) assert.doesNotMatch(line, /[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}|pt_/, line);
  });
});
