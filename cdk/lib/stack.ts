/** The CxrOpacity stack: one construct per concern, wired together, with outputs for the operator. */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { Analytics } from './analytics';
import { ApiConstruct } from './api';
import { BatchInferenceConstruct } from './batch';
import { configFromContext, type CxrOpacityConfig } from './config';
import { Encryption } from './encryption';
import { Monitoring } from './monitoring';
import { acknowledgeNagFindings } from './nag';
import { Pipeline, retentionFor } from './pipeline';
import { notificationHandlerLogs, Storage } from './storage';

export interface CxrOpacityStackProps extends StackProps {
  /** Overrides of the context-driven settings (tests use this). */
  readonly config?: Partial<CxrOpacityConfig>;
}

export class CxrOpacityStack extends Stack {
  readonly config: CxrOpacityConfig;
  readonly encryption: Encryption;
  readonly storage: Storage;
  readonly pipeline: Pipeline;
  readonly analytics: Analytics;
  readonly api: ApiConstruct;
  /** The GPU SageMaker batch path; absent with `-c batch=false`. */
  readonly batch?: BatchInferenceConstruct;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: CxrOpacityStackProps = {}) {
    super(scope, id, props);
    this.config = configFromContext(this, props.config);
    this.encryption = new Encryption(this, 'Encryption');
    const key = this.encryption.key;
    this.storage = new Storage(this, 'Storage', {
      key,
      logRetentionDays: this.config.logRetentionDays,
      noncurrentVersionExpirationDays: this.config.noncurrentVersionExpirationDays,
      uploadRetentionDays: this.config.uploadRetentionDays,
      resultRetentionDays: this.config.resultRetentionDays,
    });
    this.pipeline = new Pipeline(this, 'Pipeline', { key, messagingKey: this.encryption.messagingKey, storage: this.storage, config: this.config });
    this.api = new ApiConstruct(this, 'Api', {
      uploadsBucket: this.storage.uploadsBucket,
      resultsBucket: this.storage.resultsBucket,
      resultsTable: this.storage.resultsTable,
      key,
      logRetention: retentionFor(this.config.logRetentionDays),
      keepSourceKeys: this.config.keepSourceKeys,
      dicomIdentity: this.config.dicomIdentity,
      maxInputBytes: this.config.maxInputBytes,
    });
    if (this.config.batch) this.batch = new BatchInferenceConstruct(this, 'Batch', {
      uploadsBucket: this.storage.uploadsBucket,
      resultsBucket: this.storage.resultsBucket,
      key,
      messagingKey: this.encryption.messagingKey,
      ingestQueue: this.pipeline.ingestQueue,
      scoreQueue: this.pipeline.scoreQueue,
      pseudonymSecret: this.storage.pseudonymSecret,
      logRetention: retentionFor(this.config.logRetentionDays),
      keepSourceKeys: this.config.keepSourceKeys,
      dicomIdentity: this.config.dicomIdentity,
      maxInputBytes: this.config.maxInputBytes,
      flowLogsBucket: this.storage.accessLogsBucket,
    });
    this.analytics = new Analytics(this, 'Analytics', {
      key,
      messagingKey: this.encryption.messagingKey,
      storage: this.storage,
      exportRetentionDays: this.config.exportRetentionDays,
    });
    this.monitoring = new Monitoring(this, 'Monitoring', {
      key: this.encryption.messagingKey,
      deadLetterQueues: {
        IngestDLQ: this.pipeline.ingestDlq,
        ScoreDLQ: this.pipeline.scoreDlq,
        ExportScheduleDLQ: this.analytics.scheduleDlq,
        ...(this.batch ? { BatchDLQ: this.batch.deadLetterQueue } : {}),
      },
      functions: {
        SegmentFunction: this.pipeline.segmentFunction,
        ScoreFunction: this.pipeline.scoreFunction,
        ApiFunction: this.api.apiFunction,
        AnalyzeFunction: this.api.analyzeFunction,
        ...(this.batch ? { RouterFunction: this.batch.routerFunction, BatchResultFunction: this.batch.batchResultFunction } : {}),
      },
      ingestQueue: this.pipeline.ingestQueue,
      ...(this.config.alarmEmail ? { alarmEmail: this.config.alarmEmail } : {}),
    });

    const out = (id: string, value: string, description: string): void => { new CfnOutput(this, id, { value, description }); };
    out('UploadsBucketName', this.storage.uploadsBucket.bucketName, 'Put chest X-rays under uploads/ in this bucket');
    out('ResultsBucketName', this.storage.resultsBucket.bucketName, 'Masks, overlays and result.json under results/<imageId>/');
    out('ResultsTableName', this.storage.resultsTable.tableName, 'One item per image (GSIs byPatient, byStudy)');
    out('IdempotencyTableName', this.storage.idempotencyTable.tableName, 'Powertools idempotency records');
    out('IngestQueueUrl', this.pipeline.ingestQueue.queueUrl, 'S3 upload events waiting for segmentation');
    out('IngestDLQUrl', this.pipeline.ingestDlq.queueUrl, 'Uploads that failed segmentation 3 times');
    out('ScoreQueueUrl', this.pipeline.scoreQueue.queueUrl, 'Segmented images waiting for scoring');
    out('ScoreDLQUrl', this.pipeline.scoreDlq.queueUrl, 'Images that failed scoring 3 times');
    out('AnalyticsBucketName', this.analytics.bucket.bucketName, 'Daily results-table exports (exports/results/) and Athena results');
    out('AthenaWorkGroup', this.analytics.workGroup.ref, 'Athena workgroup with the named queries (database cxr_opacity)');
    out('AnalystPolicyArn', this.analytics.analystPolicy.managedPolicyArn, 'Attach to analysts to run the named queries');
    out('ApiUrl', this.api.api.url, 'HTTP API (IAM auth): POST /v1/uploads, GET /v1/images/{id}, GET /v1/patients/{patientKey}/images, POST /v1/analyze');
    out('AlarmTopicArn', this.monitoring.topic.topicArn, 'Subscribe to receive the alarms');

    notificationHandlerLogs(this, key, retentionFor(this.config.logRetentionDays));
    acknowledgeNagFindings(this);
  }
}
