/**
 * AWS entry point of the batch-result function, subscribed to the async endpoint's success and error
 * SNS topics. Environment: SCORE_QUEUE_URL.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SNSEvent } from 'aws-lambda';
import { S3Objects } from '../../src/aws/s3-objects';
import { SqsSink } from '../../src/aws/sqs-sink';
import { observability, stageLogger } from '../../src/aws/observability';
import { createBatchResultHandler } from './batch-result';
import { env } from '../env';

const obs = observability('cxr-opacity-batch-result');

const inner = createBatchResultHandler(() => ({
  objects: new S3Objects(obs.tracer.captureAWSv3Client(new S3Client({}))),
  sink: new SqsSink(obs.tracer.captureAWSv3Client(new SQSClient({})), env('SCORE_QUEUE_URL')),
  log: stageLogger(obs.logger),
}));

export const handler = async (event: SNSEvent, context: Context) => {
  obs.logger.addContext(context);
  try {
    return await inner(event);
  } finally {
    obs.metrics.publishStoredMetrics();
  }
};
