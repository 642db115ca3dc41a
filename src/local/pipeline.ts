/**
 * The whole pipeline on one machine, with the same Lambda handlers as on AWS:
 *   s3rver object-created event -> ingest queue -> segment handler -> score queue -> score handler -> dynalite
 * Queues are in-process (src/local/queue.ts) with the same retry and dead-letter behaviour as the SQS
 * queues of the CDK stack.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { DEFAULT_MODEL_MANIFEST, loadModel } from '../../layers/onnx/session';
import { DynamoResults } from '../aws/results-table';
import { s3Notification } from '../aws/s3-notification';
import { createScoreHandler } from '../aws/score-handler';
import { createSegmentHandler } from '../aws/segment-handler';
import { S3Objects } from '../aws/s3-objects';
import { loadSeverityConfig, type SegmentationModel } from '../core';
import { dicomIdentityFromEnv, type IdentityMode } from '../core/dicom-out';
import { maxInputBytes } from '../limits';
import { imageIdFor, keepSourceKeysFromEnv, unquoteEtag, type StageMessage } from '../pipeline/messages';
import type { ObjectStore } from '../pipeline/ports';
import { localPseudonymKey } from './pseudonym-key';
import { LocalQueue } from './queue';
import { LOCAL_NAMES, startLocalStack, type LocalStack } from './stack';
import { UPLOAD_PREFIX } from '../pipeline/storage-layout';

export { UPLOAD_PREFIX };
export { DEFAULT_MODEL_MANIFEST };

export interface LocalPipelineOptions {
  dataDir?: string;
  /** Model manifest path (default: the committed model), or an already loaded model. */
  model?: string | SegmentationModel;
  /** Images segmented at once (each inference uses all cores already). */
  concurrency?: number;
  retryDelayMs?: number;
  /** Deliveries before a message is dead-lettered (the CDK queues use 3). */
  maxReceiveCount?: number;
  /** Handler timeout, as the Lambda functions' (segment 120 s, score 60 s). */
  timeoutMs?: { segment: number; score: number };
  /** Largest input the segment stage reads (default: MAX_INPUT_BYTES from the environment, else 256 MiB; src/limits.ts). */
  maxInputBytes?: number;
  /** Wraps the object store the handlers use (fault-injection tests). */
  wrapObjects?: (store: ObjectStore) => ObjectStore;
  /** Powertools log level for the handlers (default WARN, so the console shows progress, not JSON). */
  logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'SILENT';
  /** Receives every structured log line (tests use it to check for leaks). */
  logSink?: (line: string) => void;
  /** Keep upload keys (file names) in results (default: KEEP_SOURCE_KEYS=true in the environment, else no). */
  keepSourceKeys?: boolean;
  /** Identity mode of seg.dcm / sr.dcm (core/dicom-out/identity.ts); default DICOM_IDENTITY, else off. */
  dicomIdentity?: IdentityMode;
}

export interface LocalPipeline {
  stack: LocalStack;
  ingest: LocalQueue;
  scoring: LocalQueue;
  results: DynamoResults;
  model: SegmentationModel;
  /** Puts an object in the uploads bucket (which fires the pipeline) and returns its imageId. */
  upload(key: string, body: Uint8Array, metadata?: Record<string, string>): Promise<string>;
  /** Resolves when both queues are empty and nothing is retrying. */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

function observabilityFor(serviceName: string, opts: LocalPipelineOptions) {
  const logSink = opts.logSink;
  const logger = new Logger({
    serviceName,
    logLevel: opts.logLevel ?? 'WARN',
    ...(logSink ? { logFormatter: undefined } : {}),
  });
  if (logSink) {
    // Route Powertools' JSON lines to the sink instead of stdout.
    const c = (logger as unknown as { console: Console }).console;
    const write = (...args: unknown[]) => logSink(args.map(String).join(' '));
    Object.assign(c, { info: write, warn: write, error: write, debug: write, log: write, trace: write });
  }
  const metrics = new Metrics({ serviceName, namespace: 'CxrOpacity', singleMetric: false });
  // Locally there is no CloudWatch to read EMF lines, and an empty flush only prints a warning.
  metrics.publishStoredMetrics = () => metrics;
  return {
    logger,
    metrics,
    tracer: new Tracer({ serviceName, enabled: false }),
  };
}

export async function startLocalPipeline(opts: LocalPipelineOptions = {}): Promise<LocalPipeline> {
  // Metrics would print EMF JSON to stdout locally; CloudWatch is not there to read it.
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
  const stack = await startLocalStack({ dataDir: opts.dataDir });
  const model = typeof opts.model === 'object' ? opts.model : await loadModel(opts.model ?? DEFAULT_MODEL_MANIFEST);
  const objects = opts.wrapObjects ? opts.wrapObjects(new S3Objects(stack.s3)) : new S3Objects(stack.s3);
  const results = new DynamoResults(stack.ddb, LOCAL_NAMES.resultsTable);
  const severity = loadSeverityConfig();
  const retryDelayMs = opts.retryDelayMs ?? 500;

  const maxReceiveCount = opts.maxReceiveCount ?? 3;
  const timeouts = opts.timeoutMs ?? { segment: 120_000, score: 60_000 };
  const scoring = new LocalQueue({ name: 'score', batchSize: 5, maxReceiveCount, retryDelayMs, concurrency: 2, timeoutMs: timeouts.score });
  const ingest = new LocalQueue({ name: 'ingest', batchSize: 1, maxReceiveCount, retryDelayMs, concurrency: opts.concurrency ?? 1, timeoutMs: timeouts.segment });

  const segmentHandler = createSegmentHandler(async () => ({
    objects,
    sink: { send: async (m: StageMessage) => scoring.send(JSON.stringify(m)) },
    model,
    pseudonymKey: localPseudonymKey(stack.dataDir),
    keepSourceKeys: opts.keepSourceKeys ?? keepSourceKeysFromEnv(process.env),
    dicomOutputs: { identity: opts.dicomIdentity ?? dicomIdentityFromEnv(process.env), severity },
    maxInputBytes: opts.maxInputBytes ?? maxInputBytes(),
    resultsBucket: LOCAL_NAMES.resultsBucket,
    path: 'local',
    idempotencyStore: new DynamoDBPersistenceLayer({ tableName: LOCAL_NAMES.idempotencyTable, awsSdkV3Client: stack.ddb }),
  }), observabilityFor('cxr-opacity-segment', opts));
  const scoreHandler = createScoreHandler(async () => ({
    objects, results, severity, resultsBucket: LOCAL_NAMES.resultsBucket,
  }), observabilityFor('cxr-opacity-score', opts));

  ingest.consume(segmentHandler);
  scoring.consume(scoreHandler);
  // Like the CDK stack's notification filter: only new objects under uploads/ in the uploads bucket.
  stack.onObjectCreated((e) => {
    const records = e.Records.filter((r) => r.s3.bucket.name === LOCAL_NAMES.uploadsBucket && r.s3.object.key.startsWith(UPLOAD_PREFIX));
    // s3rver writes keys as they are; s3Notification encodes them as S3 does, so the handler sees what AWS sends.
    const objects = records.map((r) => ({ source: { bucket: r.s3.bucket.name, key: r.s3.object.key, etag: r.s3.object.eTag, size: r.s3.object.size }, ids: {} }));
    if (objects.length > 0) ingest.send(s3Notification(objects, { region: 'us-east-1', time: new Date().toISOString(), principal: 'local' }));
  });

  return {
    stack, ingest, scoring, results, model,
    async upload(key, body, metadata) {
      const res = await stack.s3.send(new PutObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: key, Body: body, Metadata: metadata }));
      return imageIdFor({ bucket: LOCAL_NAMES.uploadsBucket, key, etag: unquoteEtag(res.ETag) });
    },
    async drain() {
      // The score queue fills while the ingest queue drains, so wait until both are idle together.
      for (;;) {
        await ingest.idle();
        await scoring.idle();
        if (ingest.depth === 0 && scoring.depth === 0) return;
      }
    },
    async stop() {
      if (typeof opts.model !== 'object') await model.release();
      await stack.stop();
    },
  };
}
