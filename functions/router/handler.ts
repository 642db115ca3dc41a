/**
 * AWS entry point of the batch router (src/pipeline/batch-routing.ts, over the AWS adapters by
 * src/aws/router-handler.ts): builds the clients and the configuration once per container. Environment:
 *   INGEST_QUEUE_URL   the segment function's queue (Lambda path)
 *   ENDPOINT_NAME      the SageMaker async endpoint (unset: everything goes to Lambda)
 *   WORK_BUCKET        bucket for batches/requests/ and batches/status/ (the results bucket)
 *   IMAGE_PREFIXES     comma-separated prefixes image keys must use (default: batch-images/)
 *   PSEUDONYM_SECRET_ARN  the HMAC key: manifest patient/study ids are pseudonymised before anything is stored
 *   KEEP_SOURCE_KEYS   "true" keeps image keys (file names) in results: only for data already de-identified
 *   BATCH_THRESHOLD (50), BACKLOG_THRESHOLD (500), MAX_BATCH_IMAGES (10000), REQUEST_TTL_SECONDS
 */
import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { S3Client } from '@aws-sdk/client-s3';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { SQSClient } from '@aws-sdk/client-sqs';
import { observability } from '../../src/aws/observability';
import { createRouterHandler } from '../../src/aws/router-handler';
import { routeConfigFromEnv } from '../../src/pipeline/batch-route';
import { keepSourceKeysFromEnv } from '../../src/pipeline/messages';
import { BATCH_IMAGE_PREFIX } from '../../src/pipeline/storage-layout';
import { env } from '../env';

const optInt = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);

const obs = observability('cxr-opacity-batch-router');

async function pseudonymKey(): Promise<string> {
  const key = await getSecret(env('PSEUDONYM_SECRET_ARN'), { maxAge: 3600 });
  if (typeof key !== 'string') throw new Error('the pseudonym secret must be a string');
  return key;
}

export const handler = createRouterHandler(async () => ({
  pseudonymKey: await pseudonymKey(),
  keepSourceKeys: keepSourceKeysFromEnv(process.env),
  s3: obs.tracer.captureAWSv3Client(new S3Client({})),
  sqs: obs.tracer.captureAWSv3Client(new SQSClient({})),
  sagemaker: obs.tracer.captureAWSv3Client(new SageMakerRuntimeClient({ maxAttempts: 6 })),
  config: {
    ...routeConfigFromEnv(process.env),
    ingestQueueUrl: env('INGEST_QUEUE_URL'),
    endpointName: process.env.ENDPOINT_NAME || undefined,
    workBucket: env('WORK_BUCKET'),
    maxImages: optInt('MAX_BATCH_IMAGES') ?? 10_000,
    imagePrefixes: (process.env.IMAGE_PREFIXES ?? BATCH_IMAGE_PREFIX).split(',').map((p) => p.trim()).filter(Boolean),
    requestTtlSeconds: optInt('REQUEST_TTL_SECONDS'),
  },
}), obs);
