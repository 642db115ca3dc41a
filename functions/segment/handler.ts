/**
 * AWS entry point of the segment function: builds the real clients once per container. severity.json is
 * bundled by esbuild (as in the score function): the SR written for DICOM inputs (seg.dcm, sr.dcm, with the
 * identity mode of DICOM_IDENTITY) scores the same counts with the same config as the score stage.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import severityJson from '../../models/severity.json';
import { loadModel } from '../../layers/onnx/session';
import { S3Objects } from '../../src/aws/s3-objects';
import { SqsSink } from '../../src/aws/sqs-sink';
import { dicomIdentityFromEnv } from '../../src/core/dicom-out/identity';
import { validateSeverityConfig } from '../../src/core/severity';
import { maxInputBytes } from '../../src/limits';
import { keepSourceKeysFromEnv } from '../../src/pipeline/messages';
import { observability } from '../../src/aws/observability';
import { createSegmentHandler } from '../../src/aws/segment-handler';
import { env } from '../env';

const obs = observability('cxr-opacity-segment');

export const handler = createSegmentHandler(async () => {
  const s3 = obs.tracer.captureAWSv3Client(new S3Client({}));
  const sqs = obs.tracer.captureAWSv3Client(new SQSClient({}));
  const ddb = obs.tracer.captureAWSv3Client(new DynamoDBClient({}));
  const pseudonymKey = await getSecret(env('PSEUDONYM_SECRET_ARN'), { maxAge: 3600 });
  if (typeof pseudonymKey !== 'string') throw new Error('the pseudonym secret must be a string');
  return {
    objects: new S3Objects(s3),
    sink: new SqsSink(sqs, env('SCORE_QUEUE_URL')),
    model: await loadModel(env('MODEL_MANIFEST')),
    pseudonymKey,
    maxInputBytes: maxInputBytes(),
    keepSourceKeys: keepSourceKeysFromEnv(process.env),
    dicomOutputs: { identity: dicomIdentityFromEnv(process.env), severity: validateSeverityConfig(severityJson, 'models/severity.json') },
    resultsBucket: env('RESULTS_BUCKET'),
    path: 'lambda',
    idempotencyStore: new DynamoDBPersistenceLayer({ tableName: env('IDEMPOTENCY_TABLE'), awsSdkV3Client: ddb }),
  };
}, obs);
