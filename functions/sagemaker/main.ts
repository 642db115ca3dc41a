/**
 * Entry point of the serving container (`serve`): builds the real S3 client, reads the pseudonym key,
 * loads the model (CUDA when present) and listens on SageMaker's port 8080. Configuration:
 *   MODEL_MANIFEST            path of models/<name>.json baked into the image
 *   RESULTS_BUCKET            where masks and overlays are written
 *   PSEUDONYM_SECRET_ARN      Secrets Manager secret holding the HMAC key (or PSEUDONYM_KEY, local only)
 *   SOURCE_BUCKETS            comma-separated buckets requests may name (optional)
 *   KEEP_SOURCE_KEYS          "true" keeps upload keys (file names) in results: only for de-identified data
 *   DICOM_IDENTITY            off (default) | linked | deidentified: identity of seg.dcm / sr.dcm written for
 *                             DICOM inputs (src/core/dicom-out/identity.ts; CDK context dicomIdentity)
 *   SAGEMAKER_BIND_TO_PORT / PORT (default 8080), HOST (default 0.0.0.0)
 *   USE_CUDA                  1 forces CUDA, 0 forces CPU, unset: detect
 *   ORT_THREADS               intra-op threads (default: CPUs), MAX_CONCURRENT, MAX_QUEUED, MAX_BATCH
 */
import { availableParallelism } from 'node:os';
import { S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import severityJson from '../../models/severity.json';
import { loadModel } from '../../layers/onnx/session';
import { S3Objects } from '../../src/aws/s3-objects';
import { dicomIdentityFromEnv } from '../../src/core/dicom-out/identity';
import { validateSeverityConfig } from '../../src/core/severity';
import { keepSourceKeysFromEnv } from '../../src/pipeline/messages';
import { maxInputBytes } from '../../src/limits';
import type { StageLogger } from '../../src/pipeline/ports';
import { chooseExecutionProviders } from './providers';
import { createInferenceServer } from './server';
import { env } from '../env';

const log = (level: string) => (message: string, extra?: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), service: 'cxr-opacity-sagemaker', message, ...extra })}\n`);
const logger: StageLogger = { info: log('INFO'), warn: log('WARN'), error: log('ERROR') };

const int = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 0) throw new Error(`environment variable ${name} must be a non-negative integer`);
  return v;
};

async function pseudonymKey(): Promise<string> {
  const arn = process.env.PSEUDONYM_SECRET_ARN;
  if (arn) {
    const sm = new SecretsManagerClient({});
    const res = await sm.send(new GetSecretValueCommand({ SecretId: arn }));
    sm.destroy();
    if (!res.SecretString) throw new Error('the pseudonym secret must be a string');
    return res.SecretString;
  }
  return env('PSEUDONYM_KEY');
}

async function main(): Promise<void> {
  const providers = chooseExecutionProviders(process.env);
  const threads = int('ORT_THREADS', availableParallelism());
  logger.info('loading model', { manifest: env('MODEL_MANIFEST'), executionProviders: providers.executionProviders, reason: providers.reason, threads });
  const t0 = Date.now();
  const model = loadModel(env('MODEL_MANIFEST'), { threads, executionProviders: providers.executionProviders });
  const server = createInferenceServer({
    objects: new S3Objects(new S3Client({})),
    model,
    pseudonymKey: await pseudonymKey(),
    keepSourceKeys: keepSourceKeysFromEnv(process.env),
    dicomOutputs: { identity: dicomIdentityFromEnv(process.env), severity: validateSeverityConfig(severityJson, 'models/severity.json') },
    resultsBucket: env('RESULTS_BUCKET'),
    log: logger,
    allowedSourceBuckets: process.env.SOURCE_BUCKETS ? process.env.SOURCE_BUCKETS.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
    limits: {
      maxConcurrent: int('MAX_CONCURRENT', 4),
      maxQueued: int('MAX_QUEUED', 64),
      maxBatch: int('MAX_BATCH', providers.executionProviders[0] === 'cuda' ? 8 : 1),
      maxInputBytes: maxInputBytes(),
    },
  });
  const port = int('SAGEMAKER_BIND_TO_PORT', int('PORT', 8080));
  const addr = await server.listen(port, process.env.HOST ?? '0.0.0.0');
  logger.info('listening', { port: addr.port });
  try {
    const m = await server.loaded;
    logger.info('model loaded', { name: m.manifest.name, version: m.manifest.version, ms: Date.now() - t0 });
  } catch (e) {
    logger.error('model failed to load; exiting', { error: (e as Error).message });
    process.exit(1);
  }
  const stop = () => {
    logger.info('stopping');
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e: unknown) => {
  logger.error('serving container failed to start', { error: (e as Error).message });
  process.exit(1);
});
