/**
 * The HTTP API on this machine: the same app as on AWS (src/aws/api/app.ts createApiHandler, same routes
 * and validation) over the local S3 and DynamoDB stand-ins and the local pipeline, behind a Node http server
 * that does what API Gateway's REST proxy integration does: request -> APIGatewayProxyEvent -> handler ->
 * APIGatewayProxyResult -> response. Upload URLs are presigned by the local S3 client, so they point at
 * s3rver, and a PUT there fires the pipeline as an upload to S3 fires it on AWS.
 *
 * Two parts: `toRestEvent` / `writeResult` (the translation, pure but for the socket) and `startLocalApi`
 * (wiring). The entry point is src/local/api.ts (`npm run api`).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { API_ROUTES, BINARY_MEDIA_TYPES, createApiHandler, matchRoutes, type ApiHandler, type ApiLogger } from '../aws/api/app';
import { loadSeverityConfig } from '../core';
import { dicomIdentityFromEnv } from '../core/dicom-out/identity';
import { maxInputBytes } from '../limits';
import { keepSourceKeysFromEnv } from '../pipeline/messages';
import { DEFAULT_UPLOAD_RETENTION_DAYS } from '../pipeline/storage-layout';
import { startLocalPipeline, type LocalPipeline, type LocalPipelineOptions } from './pipeline';
import { expireOldUploads } from './retention';
import { LOCAL_NAMES } from './stack';

/** API Gateway REST's request payload limit: larger requests never reach the function there. */
export const API_GATEWAY_MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;
export const DEFAULT_API_PORT = 3000;

export interface HttpRequestLike {
  method: string;
  /** Path and query, as in the request line (`/v1/uploads/abc?x=1`). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  sourceIp?: string;
}

/**
 * The REST (v1) proxy event API Gateway would send for this request: `resource` and `pathParameters` from
 * the route that matches (API_ROUTES), the body base64 for binary media types (as the deployed API's
 * binaryMediaTypes make API Gateway do), text otherwise.
 */
export function toRestEvent(req: HttpRequestLike, stage = 'local'): APIGatewayProxyEvent {
  const url = new URL(req.url, 'http://localhost');
  const method = req.method.toUpperCase();
  const matches = matchRoutes(url.pathname);
  const match = matches.find((m) => m.route.method === method) ?? matches[0];
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    const values = Array.isArray(v) ? v : [v];
    multiValueHeaders[k] = values;
    headers[k] = values[values.length - 1];
  }
  const query: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) (query[k] ??= []).push(v);
  const hasQuery = Object.keys(query).length > 0;
  const contentType = (headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const binary = (BINARY_MEDIA_TYPES as readonly string[]).includes(contentType);
  const resource = match?.route.resource ?? url.pathname;
  const pathParameters = match && Object.keys(match.pathParameters).length > 0 ? match.pathParameters : null;
  return {
    resource,
    path: url.pathname,
    httpMethod: method,
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? Object.fromEntries(Object.entries(query).map(([k, v]) => [k, v[v.length - 1]])) : null,
    multiValueQueryStringParameters: hasQuery ? query : null,
    pathParameters,
    stageVariables: null,
    body: req.body.length === 0 ? null : binary ? req.body.toString('base64') : req.body.toString('utf8'),
    isBase64Encoded: req.body.length > 0 && binary,
    requestContext: {
      accountId: 'local', apiId: 'local', stage, requestId: randomUUID(), requestTimeEpoch: Date.now(),
      resourceId: 'local', resourcePath: resource, httpMethod: method, path: `/${stage}${url.pathname}`,
      protocol: 'HTTP/1.1', domainName: headers.host ?? 'localhost', authorizer: null,
      identity: {
        accessKey: null, accountId: null, caller: null, user: null, userArn: null, userAgent: headers['user-agent'] ?? null,
        sourceIp: req.sourceIp ?? '127.0.0.1', apiKey: null, apiKeyId: null, clientCert: null,
        cognitoAuthenticationProvider: null, cognitoAuthenticationType: null, cognitoIdentityId: null,
        cognitoIdentityPoolId: null, principalOrgId: null,
      },
    },
  } as APIGatewayProxyEvent;
}

/** Writes a proxy result as API Gateway does (base64 bodies decoded, multi-value headers kept). */
export function writeResult(res: ServerResponse, result: APIGatewayProxyResult): void {
  const body = result.body ? Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8') : Buffer.alloc(0);
  for (const [k, v] of Object.entries(result.headers ?? {})) res.setHeader(k, String(v));
  for (const [k, v] of Object.entries(result.multiValueHeaders ?? {})) res.setHeader(k, v.map(String));
  res.setHeader('content-length', body.length);
  res.writeHead(result.statusCode);
  res.end(body);
}

const errorResult = (statusCode: number, code: string, message: string): APIGatewayProxyResult =>
  ({ statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code, message } }) });

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => resolve(size > limit ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** One line per request: method, route template, status, time. Never the path (it holds ids). */
export type AccessLog = (line: { method: string; route: string; status: number; ms: number }) => void;

/** A Node http server that hands every request to `handler` as a REST proxy event. */
export function createApiServer(handler: ApiHandler, accessLog: AccessLog = () => undefined): Server {
  const context = { functionName: 'cxr-opacity-api-local', awsRequestId: 'local', getRemainingTimeInMillis: () => 29_000 } as unknown as Context;
  return createServer((req, res) => {
    const t0 = Date.now();
    void (async () => {
      let result: APIGatewayProxyResult;
      let route = '(no route)';
      try {
        const body = await readBody(req, API_GATEWAY_MAX_PAYLOAD_BYTES);
        if (!body) {
          result = errorResult(413, 'PAYLOAD_TOO_LARGE', `requests over ${API_GATEWAY_MAX_PAYLOAD_BYTES} bytes are refused by API Gateway: upload images with POST /v1/uploads`);
        } else {
          const event = toRestEvent({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body, sourceIp: req.socket.remoteAddress });
          if (matchRoutes(event.path).length > 0) route = event.resource;
          result = await handler(event, context);
        }
      } catch (e) {
        // API Gateway answers a failed invocation 502; only the error's class is logged (no ids).
        result = errorResult(502, 'BAD_GATEWAY', `the API function failed (${(e as Error).name})`);
      }
      writeResult(res, result);
      accessLog({ method: req.method ?? '?', route, status: result.statusCode, ms: Date.now() - t0 });
    })();
  });
}

export interface LocalApiOptions extends LocalPipelineOptions {
  port?: number;
  host?: string;
  logger?: ApiLogger;
  accessLog?: AccessLog;
  /** Uploads older than this are deleted, at start and every hour, as on AWS (default DEFAULT_UPLOAD_RETENTION_DAYS). */
  uploadRetentionDays?: number;
  /** The clock of that retention (tests). */
  now?: () => Date;
}

export interface LocalApi {
  /** Base URL, e.g. http://127.0.0.1:3000 (routes under /v1). */
  url: string;
  pipeline: LocalPipeline;
  server: Server;
  stop(): Promise<void>;
}

/** Starts the local stack and pipeline, and serves the API app over them. */
export async function startLocalApi(opts: LocalApiOptions = {}): Promise<LocalApi> {
  // The API and the pipeline take the same settings, from the options or else the environment, as on AWS.
  const settings = {
    dicomIdentity: opts.dicomIdentity ?? dicomIdentityFromEnv(process.env),
    maxInputBytes: opts.maxInputBytes ?? maxInputBytes(),
    keepSourceKeys: opts.keepSourceKeys ?? keepSourceKeysFromEnv(process.env),
  };
  const pipeline = await startLocalPipeline({ ...opts, ...settings });
  const handler = createApiHandler({
    s3: pipeline.stack.s3, ddb: pipeline.stack.ddb,
    uploadsBucket: LOCAL_NAMES.uploadsBucket, resultsBucket: LOCAL_NAMES.resultsBucket, resultsTable: LOCAL_NAMES.resultsTable,
    model: pipeline.model, severity: loadSeverityConfig(),
    ...settings,
    logger: opts.logger,
  });
  const server = createApiServer(handler, opts.accessLog);
  const expire = () => expireOldUploads(pipeline.stack.s3, LOCAL_NAMES.uploadsBucket, opts.uploadRetentionDays ?? DEFAULT_UPLOAD_RETENTION_DAYS, opts.now?.())
    .catch((e: Error) => opts.logger?.warn('expiring old uploads failed; tried again in an hour', { error: e.name }));
  try {
    await expire();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? DEFAULT_API_PORT, opts.host ?? '127.0.0.1', () => resolve());
    });
  } catch (e) {
    await pipeline.stop();
    throw e;
  }
  const { address, port } = server.address() as AddressInfo;
  const hourly = setInterval(() => void expire(), 3_600_000);
  hourly.unref();
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    pipeline, server,
    async stop() {
      clearInterval(hourly);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await pipeline.stop();
    },
  };
}

/** The routes, for the start-up banner. */
export const routeList = (): string[] => Object.values(API_ROUTES).map((r) => `${r.method.padEnd(4)} ${r.resource}`);
