/**
 * The HTTP API (API Gateway REST, Lambda proxy integration), built on Powertools event-handler's
 * HTTP router. One factory, `createApiHandler(deps)`, is used by the AWS entry point (handler.ts) and
 * by the tests, which pass clients pointed at the local stand-ins (s3rver, dynalite).
 *
 * Routes (see api/openapi.yaml):
 *   POST /v1/uploads                        presigned S3 PUT for one image (images never pass through API GW)
 *   GET  /v1/uploads/{uploadId}             where that upload is: AWAITING_UPLOAD, PROCESSING, SCORED, FAILED (+ imageId)
 *   GET  /v1/images/{imageId}               status, results and short-lived URLs of the overlay, masks, result.json (and seg/sr)
 *   GET  /v1/patients/{patientKey}/images   a patient's images in time order, paginated
 *   POST /v1/analyze                        synchronous analysis of one small image, in memory
 * Every error is JSON `{ "error": { "code", "message" } }`. Logs carry codes and counts, never
 * patient keys, object keys or file names.
 */
import { createHash, randomBytes } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  HttpError, MethodNotAllowedError, NotFoundError, RequestValidationError, Router,
} from '@aws-lambda-powertools/event-handler/http';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { z } from 'zod';
import { DynamoResults } from '../results-table';
import type { SegmentationModel, SeverityConfig } from '../../core';
import type { IdentityMode } from '../../core/dicom-out/identity';
import { DEFAULT_MAX_INPUT_BYTES, formatBytes, ID_TEXT, MAX_ID_CHARS, S3_MAX_PUT_BYTES } from '../../limits';
import { IMAGE_ID_PATTERN, imageIdFor, unquoteEtag, type ResultItem, type StoredSource } from '../../pipeline/messages';
import { UPLOAD_PREFIX, uploadIndexKey, uploadKeyFor } from '../../pipeline/storage-layout';

/** Presigned upload URLs live 15 minutes; result URLs 5 minutes. */
export const UPLOAD_URL_TTL_S = 15 * 60;
export const RESULT_URL_TTL_S = 5 * 60;
/**
 * Largest image /v1/analyze takes, decoded. Lambda's synchronous request payload limit is 6 MB and the
 * body arrives base64 (4/3 larger) inside the event JSON, so 4 MiB decoded is what reliably fits.
 * Larger images go through POST /v1/uploads.
 */
export const MAX_ANALYZE_BYTES = 4 * 1024 * 1024;
/**
 * Largest /v1/analyze response body with the SEG and SR in it: under Lambda's 6 MB response limit with room
 * for the rest of the result. Above it the response leaves them out (dicomOmitted) rather than failing.
 */
export const MAX_ANALYZE_RESPONSE_BYTES = 5 * 1024 * 1024;
/**
 * Largest overlay PNG in a /v1/analyze response (2 MiB once base64): a larger one is sent downscaled
 * (src/aws/api/analyze.ts fitOverlay), so a PNG/JPEG response stays near 2 MB whatever the image. The
 * full-size overlay comes with POST /v1/uploads.
 */
export const MAX_ANALYZE_OVERLAY_BYTES = 1.5 * 1024 * 1024;
export { UPLOAD_PREFIX };
/**
 * The upload metadata the segment stage reads (src/pipeline/segment-stage.ts PATIENT_METADATA and
 * STUDY_METADATA; a test checks they agree). Not imported from there: that module loads the imaging
 * natives, which the functions serving the other routes do not ship.
 */
export const PATIENT_METADATA = 'patient-id';
export const STUDY_METADATA = 'study-id';
const PAGE_MAX = 100;

/**
 * The routes, by openapi operationId (api/openapi.yaml; test/api-contract.test.ts checks they are the same),
 * with API Gateway's `{param}` templates. The router, the 405 Allow header and the local server
 * (src/local/api-server.ts, which fills `resource` and `pathParameters` as API Gateway does) all read this.
 */
export const API_ROUTES = {
  createUpload: { method: 'POST', resource: '/v1/uploads' },
  getUpload: { method: 'GET', resource: '/v1/uploads/{uploadId}' },
  getImage: { method: 'GET', resource: '/v1/images/{imageId}' },
  listPatientImages: { method: 'GET', resource: '/v1/patients/{patientKey}/images' },
  analyze: { method: 'POST', resource: '/v1/analyze' },
} as const;
export type ApiRoute = (typeof API_ROUTES)[keyof typeof API_ROUTES];

/** The route whose template `path` matches, with its path parameters, for each method that has one. */
export function matchRoutes(path: string): { route: ApiRoute; pathParameters: Record<string, string> }[] {
  const segs = path.replace(/\/+$/, '').split('/');
  const out: { route: ApiRoute; pathParameters: Record<string, string> }[] = [];
  for (const route of Object.values(API_ROUTES)) {
    const tpl = route.resource.split('/');
    if (tpl.length !== segs.length) continue;
    const params: Record<string, string> = {};
    const ok = tpl.every((t, i) => {
      const name = /^\{(\w+)\}$/.exec(t)?.[1];
      if (!name) return t === segs[i];
      if (segs[i] === '') return false;
      try {
        params[name] = decodeURIComponent(segs[i]);
      } catch {
        return false;
      }
      return true;
    });
    if (ok) out.push({ route, pathParameters: params });
  }
  return out;
}

const routerPath = (r: ApiRoute) => r.resource.replace(/\{(\w+)\}/g, ':$1') as `/${string}`;

/**
 * Upload ids are UUIDv7 (RFC 9562): the first 48 bits are the issue time in ms, and 32 of the random bits
 * are a check over the rest. So `GET /v1/uploads/{uploadId}` can tell, without storing anything, an id this
 * API never issued (404 at once) and one whose upload URL expired unused (404 after UPLOAD_URL_TTL_S),
 * instead of answering AWAITING_UPLOAD forever. The check is not a secret: it catches mistyped and made-up
 * ids, not forgeries (every call is IAM-authorised anyway).
 */
export function newUploadId(at: Date): string {
  const b = randomBytes(16);
  b.writeUIntBE(at.getTime(), 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  uploadIdCheck(b).copy(b, 12);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
const uploadIdCheck = (b: Buffer) => createHash('sha256').update(b.subarray(0, 12)).digest().subarray(0, 4);

/** When an upload id was issued, or undefined for an id this API did not issue. */
export function uploadIdIssuedAt(uploadId: string): Date | undefined {
  const b = Buffer.from(uploadId.replace(/-/g, ''), 'hex');
  if (b.length !== 16 || b[6] >> 4 !== 7 || !uploadIdCheck(b).equals(b.subarray(12))) return undefined;
  return new Date(b.readUIntBE(0, 6));
}

export interface ApiLogger {
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
  debug(message: string, extra?: Record<string, unknown>): void;
}

export interface ApiDeps {
  /** S3 client; also signs the presigned URLs (its credentials and endpoint are used). */
  s3: S3Client;
  ddb: DynamoDBClient;
  uploadsBucket: string;
  resultsBucket: string;
  resultsTable: string;
  /** The model for /v1/analyze, or a loader called on first use (the other routes never load it). */
  model?: SegmentationModel | (() => Promise<SegmentationModel>);
  severity: SeverityConfig;
  /** DICOM_IDENTITY (CDK context dicomIdentity): identity of the SEG/SR /v1/analyze returns for DICOM inputs (default off). */
  dicomIdentity?: IdentityMode;
  /** Largest upload accepted, in bytes (src/limits.ts; default DEFAULT_MAX_INPUT_BYTES). */
  maxInputBytes?: number;
  /**
   * KEEP_SOURCE_KEYS (CDK context keepSourceKeys): upload keys keep the client's file name and results
   * show it. Only for data already de-identified; by default neither the key nor any result holds it.
   */
  keepSourceKeys?: boolean;
  logger?: ApiLogger;
  now?: () => Date;
}

export type ApiHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

/** An error with our own code, rendered as `{ error: { code, message } }` with its HTTP status. */
export class ApiError extends Error {
  constructor(readonly statusCode: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

const json = (statusCode: number, body: unknown): Response =>
  new Response(JSON.stringify(body), { status: statusCode, headers: { 'content-type': 'application/json' } });
const errorBody = (statusCode: number, code: string, message: string, details?: unknown): Response =>
  json(statusCode, { error: { code, message, ...(details === undefined ? {} : { details }) } });

// ---- request schemas (zod implements Standard Schema, which the router validates with) ----

const CONTENT_TYPES = ['image/png', 'image/jpeg', 'application/dicom', 'application/octet-stream'] as const;
/** Request types whose bodies arrive base64 (the API's binaryMediaTypes; cdk/lib/api.ts lists the same). */
export const BINARY_MEDIA_TYPES: readonly string[] = CONTENT_TYPES;
const idText = z.string().trim().min(1).max(MAX_ID_CHARS).regex(ID_TEXT, 'printable ASCII only');

export const UploadRequest = z.object({
  fileName: z.string().trim().min(1).max(255),
  /** Exact size of the file in bytes: signed into the URL as Content-Length, so S3 refuses any other size. */
  size: z.number().int().min(1).max(S3_MAX_PUT_BYTES),
  contentType: z.enum(CONTENT_TYPES).optional(),
  patientId: idText.optional(),
  studyId: idText.optional(),
}).strict();

const uploadIdPath = z.object({ uploadId: z.uuid() });
const imageIdPath = z.object({ imageId: z.string().regex(IMAGE_ID_PATTERN, 'an imageId is 32 lower-case hex characters') });
const patientPath = z.object({ patientKey: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'not a patient key') });
const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(PAGE_MAX).optional(),
  nextToken: z.string().max(2048).optional(),
  order: z.enum(['asc', 'desc']).optional(),
});

// ---- pagination tokens: the LastEvaluatedKey of the byPatient query, base64url JSON ----

const PageKey = z.object({ imageId: z.string(), patientKey: z.string(), sortKey: z.string() }).strict();
const encodeToken = (key: Record<string, unknown>) => Buffer.from(JSON.stringify(key)).toString('base64url');
function decodeToken(token: string, patientKey: string): z.infer<typeof PageKey> {
  try {
    const key = PageKey.parse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
    if (key.patientKey !== patientKey) throw new Error('token of another listing');
    return key;
  } catch {
    throw new ApiError(400, 'INVALID_NEXT_TOKEN', 'nextToken is not one this listing returned');
  }
}

/** What the API shows of a result item: everything but the storage internals, plus short-lived URLs. */
export interface ImageView extends Omit<ResultItem, 'keys' | 'sortKey' | 'source'> {
  /** The key's pseudonym (and the key itself only where the deployment keeps file names). */
  source: Pick<StoredSource, 'keyPseudonym' | 'key' | 'size'>;
  /** seg and sr (DICOM SEG and SR, core/dicom-out) only where the item has them: DICOM inputs. */
  urls?: { overlay: string; lung: string; lungRight: string; lungLeft: string; opacity: string; result: string; seg?: string; sr?: string; sc?: string; expiresAt: string };
}

export function createApiHandler(deps: ApiDeps): ApiHandler {
  const log = deps.logger ?? { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
  const now = deps.now ?? (() => new Date());
  const results = new DynamoResults(deps.ddb, deps.resultsTable);
  let model: Promise<SegmentationModel> | undefined;
  const getModel = (): Promise<SegmentationModel> => {
    if (!deps.model) throw new ApiError(503, 'ANALYZE_UNAVAILABLE', 'synchronous analysis is not configured on this deployment');
    model ??= typeof deps.model === 'function' ? deps.model() : Promise.resolve(deps.model);
    model.catch(() => { model = undefined; });
    return model;
  };

  const presignGet = (key: string) =>
    getSignedUrl(deps.s3, new GetObjectCommand({ Bucket: deps.resultsBucket, Key: key }), { expiresIn: RESULT_URL_TTL_S });

  async function view(item: ResultItem): Promise<ImageView> {
    const { keys, sortKey: _sortKey, source, ...rest } = item;
    void _sortKey;
    const out: ImageView = {
      ...rest,
      source: { keyPseudonym: source.keyPseudonym, ...(source.key !== undefined ? { key: source.key } : {}), size: source.size },
    };
    if (item.status === 'SCORED' && keys) {
      const [overlay, lung, lungRight, lungLeft, opacity, result, seg, sr, sc] = await Promise.all(
        // eslint-disable-next-line @typescript-eslint/await-thenable -- absent keys map to undefined, which Promise.all passes through
        [keys.overlay, keys.lung, keys.lungRight, keys.lungLeft, keys.opacity, keys.result, keys.seg, keys.sr, keys.sc]
          .map((k) => (k ? presignGet(k) : undefined)),
      ) as [string, string, string, string, string, string, string | undefined, string | undefined, string | undefined];
      out.urls = {
        overlay, lung, lungRight, lungLeft, opacity, result,
        ...(seg ? { seg } : {}), ...(sr ? { sr } : {}), ...(sc ? { sc } : {}),
        expiresAt: new Date(now().getTime() + RESULT_URL_TTL_S * 1000).toISOString(),
      };
    }
    return out;
  }

  // eslint-disable-next-line @typescript-eslint/unbound-method -- ApiLogger is a plain object of functions (handler.ts); `...log` relies on it too
  const app = new Router({ logger: { ...log, critical: log.error, trace: log.debug } as never });

  // ---- errors: one JSON shape everywhere ----
  app.errorHandler(RequestValidationError, async (e) => {
    const issues = (e.details?.issues as { message: string; path?: PropertyKey[] }[] | undefined)
      ?? ((e as unknown as { issues?: { message: string; path?: PropertyKey[] }[] }).issues);
    const list = (issues ?? []).map((i) => ({ path: (i.path ?? []).map(String).join('.'), message: i.message }));
    const cause = (e.cause as Error | undefined)?.message;
    const message = cause === 'Invalid JSON body' ? 'the request body is not valid JSON'
      : list.length > 0 ? list.map((i) => `${i.path}: ${i.message}`).join('; ') : 'the request is not valid';
    return errorBody(400, 'VALIDATION_FAILED', message, list.length > 0 ? list : undefined);
  });
  // The router has no 405 of its own: a path that matches a route for other methods gets 405 and Allow.
  app.notFound(async (_e, { req }) => {
    const miss = routeMiss(req.method, new URL(req.url).pathname);
    const res = errorBody(miss.status, miss.code, miss.message);
    if (miss.allow) res.headers.set('allow', miss.allow);
    return res;
  });
  app.methodNotAllowed(async () => errorBody(405, 'METHOD_NOT_ALLOWED', 'method not allowed on this route'));
  app.errorHandler(ApiError, async (e) => errorBody(e.statusCode, e.code, e.message));
  // HttpError is abstract; the registry matches its subclasses with instanceof.
  const AnyHttpError = HttpError as unknown as { new (...args: unknown[]): HttpError; prototype: HttpError };
  app.errorHandler(AnyHttpError, async (e) => errorBody(e.statusCode, e.errorType.replace(/Error$/, '').replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase(), e.message));
  app.errorHandler(Error, async (e) => {
    // Only the error's class: messages of SDK errors can carry keys or table contents.
    log.error('unhandled error', { errorName: e.name });
    return errorBody(500, 'INTERNAL', 'internal error');
  });
  void NotFoundError; void MethodNotAllowedError;

  // ---- POST /v1/uploads ----
  app.post(routerPath(API_ROUTES.createUpload), async ({ valid }) => {
    const body = valid.req.body;
    const maxBytes = deps.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES;
    if (body.size > maxBytes) {
      log.info('upload refused', { code: 'TOO_LARGE' });
      throw new ApiError(413, 'TOO_LARGE', `an upload of ${formatBytes(body.size)} (${body.size} bytes) is over the limit of ${formatBytes(maxBytes)} (${maxBytes} bytes) for one image; check that it is a single chest X-ray, or downscale it`);
    }
    const uploadId = newUploadId(now());
    const key = uploadKeyFor(uploadId, body.fileName, deps.keepSourceKeys);
    const metadata: Record<string, string> = {};
    if (body.patientId) metadata[PATIENT_METADATA] = body.patientId;
    if (body.studyId) metadata[STUDY_METADATA] = body.studyId;
    const contentType = body.contentType ?? 'application/octet-stream';
    const metaHeaders = Object.keys(metadata).map((k) => `x-amz-meta-${k}`);
    // Content-Type, Content-Length and the metadata are signed headers, not query parameters: the client
    // must send them as they are (S3 refuses a body of any other length, so the size cap holds), and
    // identifiers never appear in a URL (URLs end up in logs).
    const uploadUrl = await getSignedUrl(
      deps.s3,
      new PutObjectCommand({ Bucket: deps.uploadsBucket, Key: key, ContentType: contentType, ContentLength: body.size, Metadata: metadata }),
      { expiresIn: UPLOAD_URL_TTL_S, signableHeaders: new Set(['content-type', 'content-length']), unhoistableHeaders: new Set(metaHeaders) },
    );
    const headers: Record<string, string> = { 'content-type': contentType, 'content-length': String(body.size) };
    for (const [k, v] of Object.entries(metadata)) headers[`x-amz-meta-${k}`] = v;
    log.info('upload URL issued', { withPatient: Boolean(body.patientId), withStudy: Boolean(body.studyId) });
    return json(201, {
      uploadId, key, uploadUrl, method: 'PUT', headers,
      expiresAt: new Date(now().getTime() + UPLOAD_URL_TTL_S * 1000).toISOString(),
      maxBytes,
      statusUrl: `/v1/uploads/${uploadId}`,
    });
  }, { validation: { req: { body: UploadRequest } } });

  /** The imageId the segment stage indexed for an uploadId (storage-layout.ts UPLOAD_INDEX_PREFIX), if any. */
  const readUploadIndex = async (uploadId: string): Promise<string | undefined> => {
    try {
      const got = await deps.s3.send(new GetObjectCommand({ Bucket: deps.resultsBucket, Key: uploadIndexKey(uploadId) }));
      const text = (await got.Body?.transformToString())?.trim();
      return text && IMAGE_ID_PATTERN.test(text) ? text : undefined;
    } catch (e) {
      if ((e as { name?: string }).name === 'NoSuchKey') return undefined;
      throw e;
    }
  };

  // ---- GET /v1/uploads/{uploadId}: the imageId is only known once the object (and its ETag) exists ----
  app.get(routerPath(API_ROUTES.getUpload), async ({ valid }) => {
    // UUIDs are case-insensitive on input (RFC 9562); the object keys hold the lower-case form POST /v1/uploads gave.
    const uploadId = valid.req.path.uploadId.toLowerCase();
    const listed = await deps.s3.send(new ListObjectsV2Command({ Bucket: deps.uploadsBucket, Prefix: `${UPLOAD_PREFIX}${uploadId}/`, MaxKeys: 1 }));
    const obj = listed.Contents?.[0];
    if (!obj?.Key) {
      const issued = uploadIdIssuedAt(uploadId);
      const age = issued ? now().getTime() - issued.getTime() : NaN;
      // The URL's own lifetime, plus a minute for a PUT that started just before it expired.
      if (!(age >= -60_000 && age <= (UPLOAD_URL_TTL_S + 60) * 1000)) {
        // The upload may be gone after its retention while its result is kept: the segment stage indexed it.
        const indexed = issued ? await readUploadIndex(uploadId) : undefined;
        if (indexed) {
          const item = await results.get(indexed);
          return json(200, { uploadId, imageId: indexed, status: item?.status ?? 'PROCESSING', imageUrl: `/v1/images/${indexed}` });
        }
        // Neither an upload nor an index entry: nothing was uploaded, or (uploads analysed before the index existed)
        // the upload was deleted after the deployment's upload retention (cdk/lib/config.ts uploadRetentionDays).
        throw new ApiError(404, 'UPLOAD_NOT_FOUND', issued
          ? 'nothing is stored under this uploadId: nothing was uploaded before its upload URL expired (create a new upload: POST /v1/uploads), ' +
            'or the upload was deleted at the end of the deployment\'s upload retention (uploadRetentionDays, 30 days by default) before results ' +
            'kept its imageId; its result is then at the imageId this route gave while the upload existed (GET /v1/images/{imageId})'
          : 'no upload has this uploadId: use the uploadId that POST /v1/uploads returned');
      }
      return json(200, { uploadId, status: 'AWAITING_UPLOAD' });
    }
    const imageId = imageIdFor({ bucket: deps.uploadsBucket, key: obj.Key, etag: unquoteEtag(obj.ETag) });
    const item = await results.get(imageId);
    if (!item) return json(200, { uploadId, imageId, status: 'PROCESSING', imageUrl: `/v1/images/${imageId}` });
    return json(200, { uploadId, imageId, status: item.status, imageUrl: `/v1/images/${imageId}` });
  }, { validation: { req: { path: uploadIdPath } } });

  // ---- GET /v1/images/{imageId} ----
  app.get(routerPath(API_ROUTES.getImage), async ({ valid }) => {
    const item = await results.get(valid.req.path.imageId);
    if (!item) throw new ApiError(404, 'IMAGE_NOT_FOUND', 'no result for this imageId (unknown, or still being processed)');
    return json(200, await view(item));
  }, { validation: { req: { path: imageIdPath } } });

  // ---- GET /v1/patients/{patientKey}/images ----
  app.get(routerPath(API_ROUTES.listPatientImages), async ({ valid }) => {
    const { patientKey } = valid.req.path;
    const { limit = 50, nextToken, order = 'asc' } = valid.req.query;
    const page = await results.listByPatient(patientKey, { limit, order, ...(nextToken ? { after: decodeToken(nextToken, patientKey) } : {}) });
    const items = await Promise.all(page.items.map(view));
    log.info('patient images listed', { count: items.length });
    return json(200, {
      patientKey,
      order,
      items,
      ...(page.next ? { nextToken: encodeToken(page.next) } : {}),
    });
  }, { validation: { req: { path: patientPath, query: listQuery } } });

  // ---- POST /v1/analyze ----
  app.post(routerPath(API_ROUTES.analyze), async ({ event, req }) => {
    const bytes = analyzeBody(event as APIGatewayProxyEvent, req.headers.get('content-type'));
    if (bytes.length === 0) throw new ApiError(422, 'EMPTY', 'the request carries no image');
    if (bytes.length > MAX_ANALYZE_BYTES) {
      throw new ApiError(413, 'PAYLOAD_TOO_LARGE', `images over ${MAX_ANALYZE_BYTES} bytes go through POST /v1/uploads`);
    }
    const m = await getModel();
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on this route only (see analyze.ts)
    const { analyzeImage } = require('./analyze') as typeof import('./analyze');
    const outcome = await analyzeImage(bytes, m, deps.severity, now, deps.dicomIdentity, MAX_ANALYZE_OVERLAY_BYTES);
    if (!outcome.ok) {
      log.info('analyze rejected input', { code: outcome.code });
      throw new ApiError(422, outcome.code, outcome.reason);
    }
    const { item } = outcome;
    // The study day is shifted under a one-off key here, so it means nothing: left out with the rest.
    const { keys: _k, sortKey: _s, source: _src, patientKey: _p, studyKey: _st, studyDate: _d, ...result } = item;
    void _k; void _s; void _src; void _p; void _st; void _d;
    log.info('analyze done', { grade: item.grade, timingsMs: item.timingsMs });
    return json(200, { result, overlayPng: Buffer.from(outcome.overlayPng).toString('base64'), ...analyzeDicom(outcome) });
  });

  return async (event, context) => {
    // Methods the router does not know (TRACE, made-up ones) would get its bare 405 or 400 with no body: answered here
    // in the one error shape, with Allow, as any other method a route does not take.
    const method = (event.httpMethod ?? '').toUpperCase();
    if (!ROUTER_METHODS.has(method)) {
      const miss = routeMiss(method, event.path ?? '');
      return {
        statusCode: miss.status,
        headers: { 'content-type': 'application/json', ...(miss.allow ? { allow: miss.allow } : {}) },
        body: JSON.stringify({ error: { code: miss.code, message: miss.message } }),
      };
    }
    // Media types are case-insensitive (RFC 9110 8.3.1); the router parses a JSON body only under the lower-case name.
    const lower = (v: string) => v.replace(/^[^;]*/, (t) => t.trim().toLowerCase());
    for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === 'content-type' && v) event.headers[k] = lower(v);
    for (const [k, v] of Object.entries(event.multiValueHeaders ?? {})) if (k.toLowerCase() === 'content-type' && v) event.multiValueHeaders[k] = v.map(lower);
    return app.resolve(event, context);
  };
}

/**
 * A request no route takes (the router's notFound, and methods the router does not know): 405 with Allow when the
 * path is a route's under other methods, else 404 listing the routes.
 */
function routeMiss(method: string, path: string): { status: 404 | 405; code: string; message: string; allow?: string } {
  const allow = [...new Set(matchRoutes(path).map((m) => m.route.method))];
  if (allow.length === 0) {
    return { status: 404, code: 'ROUTE_NOT_FOUND', message: `no such route: the API's routes are ${Object.values(API_ROUTES).map((r) => `${r.method} ${r.resource}`).join(', ')}` };
  }
  return { status: 405, code: 'METHOD_NOT_ALLOWED', message: `${method.slice(0, 20) || 'this method'} is not allowed here; use ${allow.join(' or ')}`, allow: allow.join(', ') };
}

/** The methods the router resolves; any other is answered 405 (or 404) by the handler itself. */
const ROUTER_METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/**
 * The SEG and SR of a DICOM input in the analyze response, base64 (`dicom: { seg, sr }`), or `dicomOmitted`
 * when they would take the response over MAX_ANALYZE_RESPONSE_BYTES (base64 is 4/3 of the bytes).
 */
function analyzeDicom(outcome: { overlayPng: Uint8Array; dicom?: { seg: Uint8Array; sr: Uint8Array } }): Record<string, unknown> {
  if (!outcome.dicom) return {};
  const b64 = (n: number) => Math.ceil(n / 3) * 4;
  const total = b64(outcome.overlayPng.length) + b64(outcome.dicom.seg.length) + b64(outcome.dicom.sr.length);
  if (total > MAX_ANALYZE_RESPONSE_BYTES) {
    return { dicomOmitted: `the SEG and SR would take the response over ${MAX_ANALYZE_RESPONSE_BYTES} bytes: upload the image (POST /v1/uploads) to get them` };
  }
  return { dicom: { seg: Buffer.from(outcome.dicom.seg).toString('base64'), sr: Buffer.from(outcome.dicom.sr).toString('base64') } };
}

/**
 * The image bytes of an analyze request. The router decodes base64 bodies to UTF-8 text (which
 * destroys binary data), so the bytes are read from the event itself:
 *   - `application/json`: `{ "image": "<base64>" }`
 *   - any other type (image/png, image/jpeg, application/dicom, application/octet-stream): the raw
 *     bytes, which API Gateway delivers base64-encoded when the type is one of its binary media types.
 */
function analyzeBody(event: APIGatewayProxyEvent, contentType: string | null): Buffer {
  const raw = event.body ?? '';
  // Media types are case-insensitive and may carry parameters (RFC 9110 8.3.1); no header at all is taken as bytes.
  const type = (contentType ?? 'application/octet-stream').split(';')[0].trim().toLowerCase();
  if (type === 'application/json') {
    const text = event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
    if (text.length > Math.ceil((MAX_ANALYZE_BYTES * 4) / 3) + 1024) {
      throw new ApiError(413, 'PAYLOAD_TOO_LARGE', `images over ${MAX_ANALYZE_BYTES} bytes go through POST /v1/uploads`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ApiError(400, 'VALIDATION_FAILED', 'the request body is not valid JSON');
    }
    // Only `image` (api/openapi.yaml: additionalProperties false): a patient id or file name sent along would be
    // silently dropped, and the caller should know it is not used.
    const body = z.object({ image: z.base64() }).strict().safeParse(parsed);
    if (!body.success) {
      const extra = body.error.issues.flatMap((i) => (i.code === 'unrecognized_keys' ? i.keys : []));
      throw new ApiError(400, 'VALIDATION_FAILED', extra.length
        ? `only "image" is accepted in the body (not ${extra.map((k) => JSON.stringify(k)).join(', ')}): nothing else is used or stored by POST /v1/analyze`
        : 'image: expected the image as a base64 string');
    }
    return Buffer.from(body.data.image, 'base64');
  }
  // The raw-body media types of POST /v1/analyze are the API's binary media types (api/openapi.yaml requestBody).
  if (!BINARY_MEDIA_TYPES.includes(type)) {
    throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `a body of type ${JSON.stringify(type.slice(0, 80))} is not read: send the image file as ${BINARY_MEDIA_TYPES.join(', ')}, or as JSON {"image": "<base64>"} (application/json)`);
  }
  return event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'binary');
}
