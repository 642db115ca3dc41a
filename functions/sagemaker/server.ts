/**
 * The serving container of the SageMaker (async) inference endpoint: SageMaker's container contract
 * (`GET /ping`, `POST /invocations`, port 8080) over the same core as the segment Lambda.
 *
 * POST /invocations takes either
 *  - `application/json` `{ "source": {bucket, key, etag?}, "patientKey"?, "studyKey"?, "stored"?, "batchId"? }`:
 *    the async path (patientKey/studyKey: pseudonyms the router made of the manifest's ids).
 *    SageMaker hands us the small JSON request object the router wrote; we run `runSegmentStage` exactly
 *    as the Lambda does (reads the upload, writes the masks and overlay, and for DICOM inputs seg.dcm/sr.dcm
 *    with DICOM_IDENTITY's mode, to the results bucket, path
 *    'sagemaker') and answer with the StageMessage, which SageMaker writes to the async output location
 *    and the batch-result function forwards to the score queue. An image we cannot analyse is a FAILED
 *    StageMessage with status 200: it is a result, which the score stage records.
 *  - raw image bytes (`application/dicom`, `image/png`, `image/jpeg`, `application/octet-stream`): direct
 *    calls; the segment stage's own analysis (analyseImage) of the bytes: answers the masks and overlay as
 *    base64 PNGs with the image's meta (and, for a DICOM input, `dicom: { seg, sr }`: the SEG and SR as
 *    base64 Part 10, same identity mode), or 422 with the reason. Nothing is stored.
 * Malformed requests get 400, oversized 413, unknown content types 415, a full queue 503.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SegmentationModel } from '../../src/core';
import { asyncRequestSchema } from '../../src/pipeline/batch-request';
import { isForbidden, isNotFound, type ObjectStore, type StageLogger } from '../../src/pipeline/ports';
import { analyseImage, runSegmentStage, type SegmentStageDeps } from '../../src/pipeline/segment-stage';
import type { StageMessage } from '../../src/pipeline/messages';
import { queuedModel, QueueFullError, type QueuedModel } from './model-queue';

export interface ServerLimits {
  /** Largest JSON request (default 64 KiB: it only points at the upload). */
  maxJsonBytes?: number;
  /** Largest raw image body (default 64 MiB). */
  maxImageBytes?: number;
  /** Largest S3 object a JSON request may name (src/limits.ts MAX_INPUT_BYTES); larger ones fail TOO_LARGE unread. */
  maxInputBytes?: number;
  /** Requests worked on at once (decode, storage, inference); others wait (default 4). */
  maxConcurrent?: number;
  /** Requests allowed to wait; more get 503 (default 64). */
  maxQueued?: number;
  /** Images merged into one model run when requests overlap (default 1; more helps on a GPU). */
  maxBatch?: number;
}

export interface InferenceServerDeps {
  objects: ObjectStore;
  /** The model, or its loading: /ping says 503 until it is loaded. */
  model: SegmentationModel | Promise<SegmentationModel>;
  pseudonymKey: string;
  /** KEEP_SOURCE_KEYS: results keep the upload's key (only for data already de-identified). */
  keepSourceKeys?: boolean;
  /** DICOM_IDENTITY and the severity config: for DICOM inputs the JSON route writes seg.dcm / sr.dcm as the Lambda does, the raw route returns them. */
  dicomOutputs?: SegmentStageDeps['dicomOutputs'];
  resultsBucket: string;
  log: StageLogger;
  /** When set, JSON requests may only name these buckets (403 otherwise). */
  allowedSourceBuckets?: string[];
  limits?: ServerLimits;
  now?: () => Date;
}

export interface InferenceServer {
  readonly server: Server;
  /** True once the model is loaded. */
  ready(): boolean;
  /** Resolves when the model is loaded (rejects if loading failed). */
  loaded: Promise<QueuedModel>;
  listen(port: number, host?: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

const RAW_TYPES = new Set(['application/dicom', 'image/png', 'image/jpeg', 'image/jpg', 'application/octet-stream']);
const JSON_TYPES = new Set(['application/json', 'text/json']);

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** A counting semaphore with a bounded waiting line. */
function limiter(maxConcurrent: number, maxQueued: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= maxConcurrent) {
      if (waiting.length >= maxQueued) throw new HttpError(503, 'BUSY', `server busy: ${maxQueued} requests are waiting; retry later`);
      await new Promise<void>((res) => waiting.push(res));
    } else active += 1;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next(); // hand the slot over
      else active -= 1;
    }
  };
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new HttpError(413, 'TOO_LARGE', `request body of ${declared} bytes is over the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new HttpError(413, 'TOO_LARGE', `request body is over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

const errorName = (e: unknown): string => (e as { name?: string })?.name ?? '';

export function createInferenceServer(deps: InferenceServerDeps): InferenceServer {
  if (deps.pseudonymKey.length < 16) throw new Error('the pseudonym key must be at least 16 characters');
  const lim = deps.limits ?? {};
  const maxJsonBytes = lim.maxJsonBytes ?? 64 * 1024;
  const maxImageBytes = lim.maxImageBytes ?? 64 * 1024 * 1024;
  const run = limiter(Math.max(1, lim.maxConcurrent ?? 4), Math.max(0, lim.maxQueued ?? 64));
  let model: QueuedModel | undefined;
  const loaded = Promise.resolve(deps.model).then((m) => {
    model = queuedModel(m, { maxBatch: lim.maxBatch ?? 1, maxQueued: Math.max(1, (lim.maxQueued ?? 64) + (lim.maxConcurrent ?? 4)) });
    return model;
  });
  loaded.catch((e: unknown) => deps.log.error('model failed to load', { error: (e as Error).message }));

  const invokeJson = async (body: Buffer, m: QueuedModel): Promise<{ status: number; body: StageMessage }> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new HttpError(400, 'MALFORMED_JSON', `the request body is not valid JSON: ${(e as Error).message}`);
    }
    const r = asyncRequestSchema.safeParse(parsed);
    if (!r.success) {
      const why = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new HttpError(400, 'INVALID_REQUEST', `the request does not match {source:{bucket,key,etag?},patientKey?,studyKey?,stored?,batchId?}: ${why}`);
    }
    const req = r.data;
    if (deps.allowedSourceBuckets && !deps.allowedSourceBuckets.includes(req.source.bucket)) {
      throw new HttpError(403, 'BUCKET_NOT_ALLOWED', `this endpoint does not read from bucket ${req.source.bucket}`);
    }
    try {
      // The manifest's pseudonyms go in as on the Lambda route (DICOM tags still win).
      const message = await runSegmentStage(req.source, {
        objects: deps.objects, model: m, sink: { send: async () => undefined }, pseudonymKey: deps.pseudonymKey,
        keepSourceKeys: deps.keepSourceKeys, resultsBucket: deps.resultsBucket, log: deps.log, path: 'sagemaker', now: deps.now,
        maxInputBytes: lim.maxInputBytes, dicomOutputs: deps.dicomOutputs,
      }, { patientKey: req.patientKey, studyKey: req.studyKey });
      return { status: 200, body: message };
    } catch (e) {
      if (isNotFound(e)) {
        throw new HttpError(404, 'SOURCE_NOT_FOUND', `the source object does not exist in bucket ${req.source.bucket}`);
      }
      if (isForbidden(e)) {
        throw new HttpError(403, 'SOURCE_ACCESS_DENIED', `this endpoint may not read bucket ${req.source.bucket}`);
      }
      throw e;
    }
  };

  // The segment stage's own analysis of the bytes (analyseImage), with nothing stored; the answer carries the pictures.
  const invokeRaw = async (body: Buffer, m: QueuedModel) => {
    const t0 = process.hrtime.bigint();
    const imageId = createHash('sha256').update(body).digest('hex').slice(0, 32);
    const a = await analyseImage(body, {
      model: m, pseudonymKey: deps.pseudonymKey, seed: imageId, now: deps.now?.() ?? new Date(),
      // A DICOM input gets its SEG and SR here too, as on the JSON route (same identity mode and severity).
      dicomOutputs: deps.dicomOutputs, secondaryCapture: false,
    });
    if (a.status === 'FAILED') {
      return { status: 422, body: { status: 'FAILED', imageId, path: 'sagemaker', error: { code: a.error.code, reason: a.error.message } } };
    }
    const { meta, size, pictures: p, dicom, timingsMs: t } = a;
    const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
    return {
      status: 200,
      body: {
        status: 'SEGMENTED', imageId, path: 'sagemaker', meta,
        patientKey: a.ids.patientKey,
        studyKey: a.ids.studyKey,
        model: { name: m.manifest.name, version: m.manifest.version },
        size,
        masks: { lung: b64(p.lung), lungRight: b64(p.lungRight), lungLeft: b64(p.lungLeft), opacity: b64(p.opacity) },
        overlay: b64(p.overlay),
        ...(dicom ? { dicom: { seg: b64(dicom.seg), sr: b64(dicom.sr) } } : {}),
        timingsMs: {
          preprocess: t.preprocess, inference: t.inference, postprocess: t.postprocess,
          total: round(Number(process.hrtime.bigint() - t0) / 1e6),
        },
      },
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/ping') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'METHOD_NOT_ALLOWED' }, { allow: 'GET' });
      return model ? send(res, 200, { status: 'ok', model: model.manifest.version }) : send(res, 503, { status: 'loading' });
    }
    if (url !== '/invocations') return send(res, 404, { error: 'NOT_FOUND', message: 'only GET /ping and POST /invocations exist' });
    if (req.method !== 'POST') return send(res, 405, { error: 'METHOD_NOT_ALLOWED' }, { allow: 'POST' });
    const m = model;
    if (!m) {
      req.resume();
      return send(res, 503, { error: 'LOADING', message: 'the model is still loading' }, { 'retry-after': '5' });
    }
    const ctype = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const t0 = Date.now();
    try {
      const isJson = JSON_TYPES.has(ctype);
      if (!isJson && ctype && !RAW_TYPES.has(ctype)) {
        req.resume();
        throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE',
          `content type ${ctype} is not accepted; send application/json (a source reference) or application/dicom, image/png, image/jpeg`);
      }
      const body = await readBody(req, isJson ? maxJsonBytes : Math.max(maxJsonBytes, maxImageBytes));
      if (body.length === 0) throw new HttpError(400, 'EMPTY_BODY', 'the request body is empty');
      // No content type: a body starting with '{' is a JSON request, anything else an image.
      const asJson = isJson || (!ctype && body[0] === 0x7b);
      const out = await run<{ status: number; body: unknown }>(() => (asJson ? invokeJson(body, m) : invokeRaw(body, m)));
      send(res, out.status, out.body);
      const b = out.body as { imageId?: string; status?: string };
      deps.log.info('invocation', { form: asJson ? 'json' : 'raw', status: out.status, imageId: b.imageId, result: b.status, ms: Date.now() - t0 });
    } catch (e) {
      if (e instanceof HttpError) {
        deps.log.warn('invocation refused', { status: e.status, code: e.code, ms: Date.now() - t0 });
        return send(res, e.status, { error: e.code, message: e.message }, e.status === 413 ? { connection: 'close' } : e.status === 503 ? { 'retry-after': '5' } : {});
      }
      if (e instanceof QueueFullError) return send(res, 503, { error: 'BUSY', message: e.message }, { 'retry-after': '5' });
      deps.log.error('invocation failed', { error: (e as Error).message, name: errorName(e), ms: Date.now() - t0 });
      return send(res, 500, { error: 'INTERNAL', message: 'the image could not be processed; see the endpoint logs' });
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      deps.log.error('request handler crashed', { error: (e as Error).message });
      if (!res.headersSent) send(res, 500, { error: 'INTERNAL' });
      else res.destroy();
    });
  });
  // SageMaker keeps connections to the container open; idle ones must outlive its 60 s.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  return {
    server,
    ready: () => model !== undefined,
    loaded,
    listen: (port, host) => new Promise<AddressInfo>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server.address() as AddressInfo));
    }),
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

const round = (v: number) => Math.round(v * 10) / 10;
