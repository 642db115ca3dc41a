/**
 * The batch router's Lambda handler over AWS clients, so that AWS (functions/router/handler.ts) and the tests
 * use the same code: it finds the manifests an event names (S3 notifications, direct or in SQS messages) and
 * routes each with src/pipeline/batch-routing.ts over the S3, SQS and SageMaker runtime adapters.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, S3Event, SQSEvent } from 'aws-lambda';
import { routeManifest, type BatchRoutingConfig, type BatchRoutingDeps } from '../pipeline/batch-routing';
import type { SourceRef } from '../pipeline/messages';
import { stageLogger, type Observability } from './observability';
import { createdObjects, objectsInS3Notification } from './s3-notification';
import { S3Objects } from './s3-objects';
import { SageMakerAsyncEndpoint } from './sagemaker-async-endpoint';
import { SqsIngestQueue } from './sqs-ingest-queue';
import { SqsQueueBacklog } from './sqs-queue-backlog';

/** Who the router's ingest notifications say wrote them. */
export const ROUTER_PRINCIPAL = 'cxr-opacity-batch-router';

export interface RouterConfig extends BatchRoutingConfig {
  ingestQueueUrl: string;
  /** The async endpoint; without it every batch goes to Lambda. */
  endpointName?: string;
}

export interface RouterDeps extends Omit<BatchRoutingDeps, 'objects' | 'ingest' | 'backlog' | 'endpoint' | 'config'> {
  s3: S3Client;
  sqs: SQSClient;
  sagemaker: SageMakerRuntimeClient;
  config: RouterConfig;
}

/** The routing's ports over these clients. */
export function routerPorts(deps: RouterDeps): BatchRoutingDeps {
  const { s3, sqs, sagemaker, ...rest } = deps;
  const { ingestQueueUrl, endpointName } = deps.config;
  return {
    ...rest,
    objects: new S3Objects(s3),
    ingest: new SqsIngestQueue(sqs, ingestQueueUrl, { principal: ROUTER_PRINCIPAL, now: deps.now }),
    backlog: new SqsQueueBacklog(sqs, ingestQueueUrl),
    endpoint: endpointName ? new SageMakerAsyncEndpoint(sagemaker, endpointName) : undefined,
  };
}

/** Manifests named by an S3 event (direct notification) or by SQS messages that carry S3 notifications. */
export function manifestsInEvent(event: S3Event | SQSEvent): SourceRef[] {
  return (event.Records as (S3Event['Records'][number] | SQSEvent['Records'][number])[] | undefined ?? []).flatMap((r) => {
    if ('s3' in r) return createdObjects([r]);
    if ('body' in r) return objectsInS3Notification(r.body).map((o) => o.source);
    return [];
  });
}

export function createRouterHandler(getDeps: () => Promise<RouterDeps> | RouterDeps, obs: Observability) {
  const { logger } = obs;
  let ports: BatchRoutingDeps | undefined;
  return async (event: S3Event | SQSEvent, context?: Context): Promise<{ batches: { batchId: string; state?: string; route?: string; skipped?: string }[] }> => {
    if (context) logger.addContext(context);
    ports ??= routerPorts(await getDeps());
    const log = stageLogger(logger);
    const batches = [];
    try {
      for (const m of manifestsInEvent(event)) {
        const out = await routeManifest(m, ports, log);
        batches.push({ batchId: out.batchId, state: out.status?.state, route: out.status?.route, skipped: out.skipped });
      }
      return { batches };
    } finally {
      obs.metrics.publishStoredMetrics();
    }
  };
}
