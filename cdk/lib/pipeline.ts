/**
 * The processing path: uploads/ object created → IngestQueue → SegmentFunction (container image with the
 * ONNX model) → results/ objects + ScoreQueue → ScoreFunction → ResultsTable. Each queue has a DLQ; every
 * permission is an explicit least-privilege statement on one resource (no wildcard actions).
 */
import * as path from 'node:path';
import { Duration, IgnoreMode, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_MODEL_FILE } from '../../layers/onnx/model-files';
import { DICOM_IDENTITY_ENV } from '../../src/core/dicom-out/identity';
import { BATCH_IMAGE_PREFIX } from './batch';
import { NodeFunction } from './bundling';
import type { CxrOpacityConfig } from './config';
import { RESULTS_PREFIX, UPLOAD_PREFIX, type Storage } from './storage';

/** The repository root: the segment image's build context and the score function's project root. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export const SEGMENT_TIMEOUT = Duration.seconds(120);
export const SCORE_TIMEOUT = Duration.seconds(60);
export const MAX_RECEIVE_COUNT = 3;

const RETENTION_STEPS: logs.RetentionDays[] = [
  logs.RetentionDays.ONE_DAY, logs.RetentionDays.THREE_DAYS, logs.RetentionDays.FIVE_DAYS, logs.RetentionDays.ONE_WEEK,
  logs.RetentionDays.TWO_WEEKS, logs.RetentionDays.ONE_MONTH, logs.RetentionDays.TWO_MONTHS, logs.RetentionDays.THREE_MONTHS,
  logs.RetentionDays.FOUR_MONTHS, logs.RetentionDays.FIVE_MONTHS, logs.RetentionDays.SIX_MONTHS, logs.RetentionDays.ONE_YEAR,
  logs.RetentionDays.THIRTEEN_MONTHS, logs.RetentionDays.EIGHTEEN_MONTHS, logs.RetentionDays.TWO_YEARS,
  logs.RetentionDays.THREE_YEARS, logs.RetentionDays.FIVE_YEARS, logs.RetentionDays.SIX_YEARS, logs.RetentionDays.SEVEN_YEARS,
  logs.RetentionDays.EIGHT_YEARS, logs.RetentionDays.NINE_YEARS, logs.RetentionDays.TEN_YEARS,
];

/** The shortest CloudWatch Logs retention that keeps logs at least `days` days. */
export function retentionFor(days: number): logs.RetentionDays {
  return RETENTION_STEPS.find((r) => (r as number) >= days) ?? logs.RetentionDays.TEN_YEARS;
}

export interface PipelineProps {
  /** Encrypts data at rest (buckets, tables, logs, environment). */
  readonly key: kms.IKey;
  /** Encrypts the queues. */
  readonly messagingKey: kms.IKey;
  readonly storage: Storage;
  readonly config: CxrOpacityConfig;
}

export class Pipeline extends Construct {
  readonly ingestQueue: sqs.Queue;
  readonly ingestDlq: sqs.Queue;
  readonly scoreQueue: sqs.Queue;
  readonly scoreDlq: sqs.Queue;
  readonly segmentFunction: lambda.DockerImageFunction;
  readonly scoreFunction: nodejs.NodejsFunction;
  readonly segmentRole: iam.Role;
  readonly scoreRole: iam.Role;
  readonly segmentPolicy: iam.ManagedPolicy;
  readonly scorePolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: PipelineProps) {
    super(scope, id);
    const { key, messagingKey, storage, config } = props;

    const queue = (queueId: string, visibilityTimeout: Duration, deadLetterQueue?: sqs.IQueue): sqs.Queue =>
      new sqs.Queue(this, queueId, {
        encryption: sqs.QueueEncryption.KMS,
        encryptionMasterKey: messagingKey,
        dataKeyReuse: Duration.hours(1),
        enforceSSL: true,
        visibilityTimeout,
        retentionPeriod: Duration.days(14),
        removalPolicy: RemovalPolicy.DESTROY,
        ...(deadLetterQueue ? { deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT } } : {}),
      });

    // Lambda's advice: a source queue's visibility timeout at least six times the function timeout.
    this.ingestDlq = queue('IngestDLQ', Duration.seconds(30));
    this.ingestQueue = queue('IngestQueue', Duration.seconds(SEGMENT_TIMEOUT.toSeconds() * 6), this.ingestDlq);
    this.scoreDlq = queue('ScoreDLQ', Duration.seconds(30));
    this.scoreQueue = queue('ScoreQueue', Duration.seconds(SCORE_TIMEOUT.toSeconds() * 6), this.scoreDlq);

    storage.uploadsBucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new ScopedSqsDestination(this.ingestQueue, messagingKey),
      { prefix: UPLOAD_PREFIX },
    );

    const retention = retentionFor(config.logRetentionDays);
    const logGroup = (logId: string): logs.LogGroup => new logs.LogGroup(this, logId, {
      retention,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const logStatement = (lg: logs.LogGroup): iam.PolicyStatement => new iam.PolicyStatement({
      sid: 'WriteOwnLogGroup',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [lg.logGroupArn],
    });
    const consumeStatement = (q: sqs.IQueue): iam.PolicyStatement => new iam.PolicyStatement({
      sid: 'ConsumeSourceQueue',
      actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
      resources: [q.queueArn],
    });
    // X-Ray accepts no resource-level permissions: these two actions need Resource "*".
    const xrayStatement = (): iam.PolicyStatement => new iam.PolicyStatement({
      sid: 'XRayTraces',
      actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
      resources: ['*'],
    });
    const idempotencyStatement = (): iam.PolicyStatement => new iam.PolicyStatement({
      sid: 'IdempotencyRecords',
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      resources: [storage.idempotencyTable.tableArn],
    });
    // One statement for the two keys: S3 SSE-KMS, SQS SSE-KMS, DynamoDB, Secrets Manager and the encrypted
    // environment variables need these, and nothing else.
    const keyStatement = (): iam.PolicyStatement => new iam.PolicyStatement({
      sid: 'UseKeys',
      actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
      resources: [key.keyArn, messagingKey.keyArn],
    });
    /**
     * Each function gets a role with exactly one customer-managed policy, written out statement by statement
     * (no AWS managed policies, no inline policies). The role handed to the function is immutable, so that
     * no construct adds broader grants behind our back; what the SQS event source, X-Ray tracing and the
     * encrypted environment need is therefore listed here explicitly.
     */
    const role = (roleId: string, description: string, statements: iam.PolicyStatement[]): { role: iam.Role; policy: iam.ManagedPolicy } => {
      const r = new iam.Role(this, roleId, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description });
      const policy = new iam.ManagedPolicy(this, `${roleId}Policy`, { description: `${description}: least privilege`, statements, roles: [r] });
      return { role: r, policy };
    };

    // ---- segment: container image, x86_64 (onnxruntime-node and sharp prebuilt binaries) ----
    const segmentLogs = logGroup('SegmentLogs');
    const segment = role('SegmentRole', 'cxr-opacity segment function', [
      logStatement(segmentLogs),
      consumeStatement(this.ingestQueue),
      new iam.PolicyStatement({
        sid: 'ReadUploads',
        actions: ['s3:GetObject'],
        // uploads/ for single uploads; batch-images/ for batch manifests the router sends down the Lambda path.
        resources: [storage.uploadsBucket.arnForObjects(`${UPLOAD_PREFIX}*`), storage.uploadsBucket.arnForObjects(`${BATCH_IMAGE_PREFIX}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'WriteResults',
        actions: ['s3:PutObject'],
        resources: [storage.resultsBucket.arnForObjects(`${RESULTS_PREFIX}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'SendToScoreQueue',
        actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
        resources: [this.scoreQueue.queueArn],
      }),
      new iam.PolicyStatement({
        sid: 'ReadPseudonymKey',
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        resources: [storage.pseudonymSecret.secretArn],
      }),
      idempotencyStatement(),
      keyStatement(),
      xrayStatement(),
    ]);
    this.segmentRole = segment.role;
    this.segmentPolicy = segment.policy;

    this.segmentFunction = new lambda.DockerImageFunction(this, 'SegmentFunction', {
      description: 'cxr-opacity: decode a chest X-ray, segment lungs and opacity (ONNX), write masks and overlay',
      code: lambda.DockerImageCode.fromImageAsset(REPO_ROOT, {
        file: 'functions/segment/Dockerfile',
        platform: Platform.LINUX_AMD64,
        ignoreMode: IgnoreMode.DOCKER, // the root .dockerignore keeps node_modules, cdk.out, .git and checkpoints out
      }),
      architecture: lambda.Architecture.X86_64,
      memorySize: 3008,
      timeout: SEGMENT_TIMEOUT,
      reservedConcurrentExecutions: config.segmentConcurrency,
      role: this.segmentRole.withoutPolicyUpdates(),
      logGroup: segmentLogs,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      environmentEncryption: key,
      environment: {
        RESULTS_BUCKET: storage.resultsBucket.bucketName,
        SCORE_QUEUE_URL: this.scoreQueue.queueUrl,
        IDEMPOTENCY_TABLE: storage.idempotencyTable.tableName,
        PSEUDONYM_SECRET_ARN: storage.pseudonymSecret.secretArn,
        KEEP_SOURCE_KEYS: String(config.keepSourceKeys),
        [DICOM_IDENTITY_ENV]: config.dicomIdentity,
        MAX_INPUT_BYTES: String(config.maxInputBytes),
        MODEL_MANIFEST: `/var/task/models/${DEFAULT_MODEL_FILE}`,
        POWERTOOLS_SERVICE_NAME: 'cxr-opacity-segment',
        POWERTOOLS_METRICS_NAMESPACE: 'CxrOpacity',
        POWERTOOLS_LOG_LEVEL: 'INFO',
      },
    });
    this.segmentFunction.addEventSource(new SqsEventSource(this.ingestQueue, {
      batchSize: config.segmentBatchSize,
      reportBatchItemFailures: true,
      maxConcurrency: config.segmentConcurrency,
    }));
    // Lambda checks the role's SQS permissions when it creates the event source mapping.
    this.segmentFunction.node.addDependency(this.segmentPolicy);

    // ---- score: small Node function, arm64 ----
    const scoreLogs = logGroup('ScoreLogs');
    const score = role('ScoreRole', 'cxr-opacity score function', [
      logStatement(scoreLogs),
      consumeStatement(this.scoreQueue),
      new iam.PolicyStatement({
        sid: 'ReadWriteResultObjects',
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [storage.resultsBucket.arnForObjects(`${RESULTS_PREFIX}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'ResultItems',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
        resources: [storage.resultsTable.tableArn],
      }),
      idempotencyStatement(),
      keyStatement(),
      xrayStatement(),
    ]);
    this.scoreRole = score.role;
    this.scorePolicy = score.policy;

    this.scoreFunction = new NodeFunction(this, 'ScoreFunction', {
      description: 'cxr-opacity: score masks (opacity %, extent, grade) and store one result item per image',
      entry: 'functions/score/handler.ts',
      memorySize: 1024,
      timeout: SCORE_TIMEOUT,
      reservedConcurrentExecutions: config.scoreConcurrency,
      role: this.scoreRole.withoutPolicyUpdates(),
      logGroup: scoreLogs,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      environmentEncryption: key,
      environment: {
        RESULTS_TABLE: storage.resultsTable.tableName,
        RESULTS_BUCKET: storage.resultsBucket.bucketName,
        IDEMPOTENCY_TABLE: storage.idempotencyTable.tableName,
        POWERTOOLS_SERVICE_NAME: 'cxr-opacity-score',
        POWERTOOLS_METRICS_NAMESPACE: 'CxrOpacity',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      },
      // The score stage scores the pixel counts carried in the message: no imaging or DICOM code, nothing native.
    });
    this.scoreFunction.addEventSource(new SqsEventSource(this.scoreQueue, {
      batchSize: config.scoreBatchSize,
      reportBatchItemFailures: true,
      maxConcurrency: config.scoreConcurrency,
    }));
    this.scoreFunction.node.addDependency(this.scorePolicy);
  }
}

/**
 * s3n.SqsDestination, with the KMS statement it adds scoped: CDK's grants s3.amazonaws.com Decrypt and
 * GenerateDataKey on the queue's key for any bucket of any account. This one allows it only for
 * notifications of the bucket being bound, in this account (aws:SourceArn, aws:SourceAccount).
 */
export class ScopedSqsDestination implements s3.IBucketNotificationDestination {
  constructor(private readonly queue: sqs.IQueue, private readonly key: kms.IKey) {}

  bind(_scope: Construct, bucket: s3.IBucket): s3.BucketNotificationDestinationConfig {
    const conditions = { ArnLike: { 'aws:SourceArn': bucket.bucketArn }, StringEquals: { 'aws:SourceAccount': Stack.of(bucket).account } };
    // Not queue.grantSendMessages: on an encrypted queue it adds a second key statement of its own.
    this.queue.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AllowS3NotificationsOfUploadsBucket',
      principals: [new iam.ServicePrincipal('s3.amazonaws.com')],
      actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
      resources: [this.queue.queueArn],
      conditions,
    }));
    this.key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AllowS3NotificationsOfUploadsBucket',
      principals: [new iam.ServicePrincipal('s3.amazonaws.com')],
      actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
      resources: ['*'],
      conditions,
    }), true);
    return { arn: this.queue.queueArn, type: s3.BucketNotificationDestinationType.QUEUE, dependencies: [this.queue] };
  }
}
