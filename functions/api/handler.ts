/**
 * AWS entry point of the API function (API Gateway REST, proxy integration). Clients are built once
 * per container; the model for /v1/analyze is loaded on the first analyze request only.
 * Environment: UPLOADS_BUCKET, RESULTS_BUCKET, RESULTS_TABLE, MODEL_MANIFEST (optional: without it
 * /v1/analyze answers 503). The same entry point runs in two functions: a small Node function for the
 * storage routes (no MODEL_MANIFEST, no imaging natives in its bundle: they are only imported on the
 * analyze path) and the container-image function that API Gateway sends /v1/analyze to.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import severityJson from '../../models/severity.json';
import { dicomIdentityFromEnv } from '../../src/core/dicom-out/identity';
import { validateSeverityConfig } from '../../src/core/severity';
import { maxInputBytes } from '../../src/limits';
import { observability } from '../../src/aws/observability';
import { keepSourceKeysFromEnv } from '../../src/pipeline/messages';
import { createApiHandler } from '../../src/aws/api/app';
import { env } from '../env';

const { logger, tracer } = observability('cxr-opacity-api');
const manifest = process.env.MODEL_MANIFEST;

const api = createApiHandler({
  s3: tracer.captureAWSv3Client(new S3Client({})),
  ddb: tracer.captureAWSv3Client(new DynamoDBClient({})),
  uploadsBucket: env('UPLOADS_BUCKET'),
  resultsBucket: env('RESULTS_BUCKET'),
  resultsTable: env('RESULTS_TABLE'),
  keepSourceKeys: keepSourceKeysFromEnv(process.env),
  // onnxruntime-node is required on the first analyze request only.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  model: manifest ? () => (require('../../layers/onnx/session') as typeof import('../../layers/onnx/session')).loadModel(manifest) : undefined,
  severity: validateSeverityConfig(severityJson, 'models/severity.json'),
  dicomIdentity: dicomIdentityFromEnv(process.env),
  maxInputBytes: maxInputBytes(),
  logger: {
    info: (m, e) => logger.info(m, e ?? {}),
    warn: (m, e) => logger.warn(m, e ?? {}),
    error: (m, e) => logger.error(m, e ?? {}),
    debug: (m, e) => logger.debug(m, e ?? {}),
  },
});

export const handler = async (event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> => {
  logger.addContext(context);
  // The resource (route template), never the path: paths hold patient keys and image ids.
  logger.appendKeys({ route: `${event.httpMethod} ${event.resource}`, requestId: event.requestContext?.requestId });
  try {
    return await api(event, context);
  } finally {
    logger.resetKeys();
  }
};
