/**
 * Wiring shared by the Lambda handlers (each functions/<name>/handler.ts, and the handler factories here): Powertools logger/metrics/tracer set-up, the StageLogger
 * adapter. No business logic lives here (S3 notifications: src/aws/s3-notification.ts).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import type { StageLogger } from '../pipeline/ports';

export interface Observability {
  logger: Logger;
  metrics: Metrics;
  tracer: Tracer;
}

export function observability(serviceName: string): Observability {
  return {
    logger: new Logger({ serviceName }),
    metrics: new Metrics({ serviceName, namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'CxrOpacity' }),
    tracer: new Tracer({ serviceName }),
  };
}

export const stageLogger = (logger: Logger): StageLogger => ({
  info: (m, extra) => logger.info(m, extra ?? {}),
  warn: (m, extra) => logger.warn(m, extra ?? {}),
  error: (m, extra) => logger.error(m, extra ?? {}),
});
