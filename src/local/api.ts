/**
 * `npm run api -- [--port N] [--host ADDR] [--data-dir DIR] [--model MANIFEST]`
 * Serves the HTTP API (the same app as the deployed one) on this machine, over the embedded S3 and DynamoDB
 * and the local pipeline; see src/local/api-server.ts and the README's curl examples.
 */
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_API_PORT, routeList, startLocalApi } from './api-server';
import { DEFAULT_MODEL_MANIFEST } from './pipeline';
import { DEFAULT_UPLOAD_RETENTION_DAYS } from '../pipeline/storage-layout';

const USAGE = [
  'usage: npm run api -- [--port N] [--host ADDR] [--data-dir DIR] [--model MANIFEST]',
  '',
  `Serves the cxr-opacity HTTP API on http://127.0.0.1:${DEFAULT_API_PORT} (routes under /v1, as in api/openapi.yaml),`,
  'over an embedded S3 (s3rver) and DynamoDB (dynalite) and the same pipeline handlers as on AWS. Upload URLs',
  'point at the embedded S3; a PUT there is processed as an upload to S3 is. No authorisation locally (no SigV4).',
  `With --data-dir the results are kept between runs, the uploads for ${DEFAULT_UPLOAD_RETENTION_DAYS} days (deleted then, as on AWS).`,
].join('\n');

export async function apiMain(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', default: process.env.PORT ?? String(DEFAULT_API_PORT) }, host: { type: 'string', default: '127.0.0.1' },
        'data-dir': { type: 'string' }, model: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port must be a port number (0-65535), not ${JSON.stringify(values.port)}`);
    return 2;
  }
  if (values['data-dir']) mkdirSync(values['data-dir'], { recursive: true });
  let api;
  try {
    api = await startLocalApi({
      port, host: values.host, dataDir: values['data-dir'], model: values.model ?? DEFAULT_MODEL_MANIFEST,
      // The app logs codes and counts only; the access log the route template, never the path.
      logger: {
        info: () => undefined, debug: () => undefined,
        warn: (m, e) => console.error(JSON.stringify({ level: 'warn', message: m, ...e })),
        error: (m, e) => console.error(JSON.stringify({ level: 'error', message: m, ...e })),
      },
      accessLog: (l) => console.log(`${l.method} ${l.route} ${l.status} ${l.ms} ms`),
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    console.error(err.code === 'EADDRINUSE'
      ? `port ${port} on ${values.host} is in use: pick another with --port (or PORT=...)`
      : `could not start the local API: ${err.message}`);
    return 1;
  }
  console.log(`cxr-opacity API on ${api.url} (local S3 at ${api.pipeline.stack.s3Endpoint}, data in ${api.pipeline.stack.dataDir})`);
  console.log(`model ${api.pipeline.model.manifest.name}@${api.pipeline.model.manifest.version}`);
  console.log(routeList().map((r) => `  ${r}`).join('\n'));
  console.log(`try: curl -s -X POST ${api.url}/v1/uploads -H 'content-type: application/json' -d '{"fileName":"chest.png","size":<bytes>,"contentType":"image/png"}'`);
  console.log('Ctrl-C stops');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log('stopping');
  await api.stop();
  return 0;
}

if (require.main === module) {
  apiMain(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
    console.error(`cxr-opacity api: ${e.message}`);
    process.exitCode = 1;
  });
}
