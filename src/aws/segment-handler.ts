/**
 * The segment Lambda's handler, built from its dependencies so that AWS (handler.ts) and the local
 * runner (src/local) use the same code. SQS delivers S3 notifications; each object is processed once
 * (Powertools idempotency keyed on bucket, key and ETag) and failures are reported per record
 * (Powertools batch) so one bad message does not make the whole batch retry.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { runSegmentStage, type SegmentStageDeps } from '../pipeline/segment-stage';
import type { PseudonymousIds, SourceRef } from '../pipeline/messages';
import { objectsInS3Notification } from './s3-notification';
import { stageLogger, type Observability } from './observability';

export interface SegmentHandlerDeps extends Omit<SegmentStageDeps, 'log'> {
  idempotencyStore: BasePersistenceLayer;
}

export function createSegmentHandler(getDeps: () => Promise<SegmentHandlerDeps>, obs: Observability) {
  const { logger, metrics } = obs;
  const config = new IdempotencyConfig({ expiresAfterSeconds: 7 * 24 * 3600 });
  let processObject: ((src: SourceRef, ids: PseudonymousIds) => Promise<unknown>) | undefined;

  const init = async () => {
    if (processObject) return processObject;
    const deps = await getDeps();
    const stageDeps: SegmentStageDeps = { ...deps, log: stageLogger(logger) };
    processObject = makeIdempotent(
      async (src: SourceRef, ids: PseudonymousIds) => {
        const msg = await runSegmentStage(src, stageDeps, ids);
        metrics.addMetric(msg.status === 'SEGMENTED' ? 'ImagesSegmented' : 'ImagesRejected', MetricUnit.Count, 1);
        if (msg.status === 'SEGMENTED') metrics.addMetric('InferenceTime', MetricUnit.Milliseconds, msg.timingsMs.inference ?? 0);
        return { imageId: msg.imageId, status: msg.status };
      },
      // The idempotency key is the object (bucket, key, ETag) alone, never the identifiers.
      { persistenceStore: deps.idempotencyStore, config, dataIndexArgument: 0 },
    );
    return processObject;
  };

  const recordHandler = async (record: SQSRecord) => {
    const process = await init();
    for (const { source, ids } of objectsInS3Notification(record.body)) {
      logger.appendKeys({ messageId: record.messageId });
      await process({ bucket: source.bucket, key: source.key, etag: source.etag }, ids);
    }
  };

  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    logger.addContext(context);
    config.registerLambdaContext(context);
    try {
      return await processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), { context });
    } finally {
      metrics.publishStoredMetrics();
      logger.resetKeys();
    }
  };
}
