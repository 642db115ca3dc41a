/** AWS entry point of the score function. severity.json is bundled into the function by esbuild. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import severityJson from '../../models/severity.json';
import { DynamoResults } from '../../src/aws/results-table';
import { S3Objects } from '../../src/aws/s3-objects';
import { validateSeverityConfig } from '../../src/core/severity';
import { observability } from '../../src/aws/observability';
import { createScoreHandler } from '../../src/aws/score-handler';
import { env } from '../env';

const obs = observability('cxr-opacity-score');

export const handler = createScoreHandler(async () => ({
  objects: new S3Objects(obs.tracer.captureAWSv3Client(new S3Client({}))),
  results: new DynamoResults(obs.tracer.captureAWSv3Client(new DynamoDBClient({})), env('RESULTS_TABLE')),
  severity: validateSeverityConfig(severityJson, 'models/severity.json'),
  resultsBucket: env('RESULTS_BUCKET'),
}), obs);
