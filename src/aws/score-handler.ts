/**
 * The score Lambda's handler, built from its dependencies (AWS in handler.ts, the local runner in
 * src/local). Each SQS record is one segment-stage message; duplicates are absorbed by the
 * conditional write on imageId, failures are reported per record (Powertools batch).
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { parseStageMessage } from '../pipeline/message-schema';
import { runScoreStage, type ScoreStageDeps } from '../pipeline/score-stage';
import { stageLogger, type Observability } from './observability';

export type ScoreHandlerDeps = Omit<ScoreStageDeps, 'log'>;

export function createScoreHandler(getDeps: () => Promise<ScoreHandlerDeps>, obs: Observability) {
  const { logger, metrics } = obs;
  let deps: ScoreStageDeps | undefined;

  const recordHandler = async (record: SQSRecord) => {
    deps ??= { ...(await getDeps()), log: stageLogger(logger) };
    const msg = parseStageMessage(record.body);
    logger.appendKeys({ imageId: msg.imageId });
    const { item, duplicate } = await runScoreStage(msg, deps);
    if (duplicate) metrics.addMetric('DuplicateMessages', MetricUnit.Count, 1);
    else metrics.addMetric(item.status === 'SCORED' ? 'ImagesScored' : 'ImagesFailed', MetricUnit.Count, 1);
  };

  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    logger.addContext(context);
    try {
      return await processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), { context });
    } finally {
      metrics.publishStoredMetrics();
      logger.resetKeys();
    }
  };
}
