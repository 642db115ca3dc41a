/**
 * Analyst exports (issue 5): a daily EventBridge Scheduler call of DynamoDB ExportTableToPointInTime writes the
 * results table (DynamoDB JSON) to the analytics bucket; a Glue table with partition projection lays a schema
 * over the exports; an Athena workgroup (encrypted, enforced results location, scan limit) holds the named
 * queries. An `AnalystPolicy` grants exactly what running those queries needs.
 */
import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { EXPORT_TABLE, NAMED_QUERIES } from './analytics-queries';
import type { Storage } from './storage';

export const EXPORT_PREFIX = 'exports/results/';
export const ATHENA_RESULTS_PREFIX = 'athena-results/';
export const GLUE_DATABASE = 'cxr_opacity';
export const ATHENA_WORKGROUP = 'cxr-opacity';
/** Daily export at 02:00 UTC; the snapshot partition values are these scheduled times. */
export const EXPORT_HOUR_UTC = 2;
const SNAPSHOT_FORMAT = "yyyy-MM-dd'T'HH:mm:ss'Z'";
const PROJECTION_START = `2025-01-01T0${EXPORT_HOUR_UTC}:00:00Z`;

/** Hive type of one exported item: DynamoDB JSON wraps each value in its type ({"S": ...}, {"N": ...}, {"M": ...}). */
const S = 'struct<s:string>';
const N = 'struct<n:string>';
export const ITEM_TYPE = `struct<${[
  ...['imageId', 'patientKey', 'studyKey', 'sortKey', 'status', 'errorCode', 'errorReason', 'studyDate', 'createdAt',
    'grade', 'modelVersion', 'severityVersion', 'path'].map((a) => `${a}:${S}`),
  ...['opacityPctTotal', 'opacityPctRight', 'opacityPctLeft', 'geographicExtent', 'zoneScore', 'riskIcu', 'riskMortality']
    .map((a) => `${a}:${N}`),
  `keys:struct<m:map<string,${S}>>`,
  `timingsMs:struct<m:map<string,${N}>>`,
  // A struct, not a map, so that the same `item.source.M.keyPseudonym.S` reads it in Athena and DuckDB.
  `source:struct<m:struct<keyPseudonym:${S},key:${S}>>`,
].join(',')}>`;

export interface AnalyticsProps {
  readonly key: kms.IKey;
  readonly messagingKey: kms.IKey;
  readonly storage: Storage;
  /** Days an export snapshot and an Athena result are kept. */
  readonly exportRetentionDays: number;
}

export class Analytics extends Construct {
  readonly bucket: s3.Bucket;
  readonly scheduleDlq: sqs.Queue;
  readonly schedule: scheduler.Schedule;
  readonly schedulerRole: iam.Role;
  readonly schedulerPolicy: iam.ManagedPolicy;
  readonly database: glue.CfnDatabase;
  readonly table: glue.CfnTable;
  readonly workGroup: athena.CfnWorkGroup;
  readonly namedQueries: athena.CfnNamedQuery[] = [];
  readonly analystPolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: AnalyticsProps) {
    super(scope, id);
    const { key, messagingKey, storage } = props;

    this.bucket = new s3.Bucket(this, 'AnalyticsBucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: storage.accessLogsBucket,
      serverAccessLogsPrefix: 'analytics-bucket/',
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'expire-exports', prefix: EXPORT_PREFIX, expiration: Duration.days(props.exportRetentionDays) },
        { id: 'expire-athena-results', prefix: ATHENA_RESULTS_PREFIX, expiration: Duration.days(props.exportRetentionDays) },
        { id: 'noncurrent', noncurrentVersionExpiration: Duration.days(1), abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
    });

    // ---- the scheduled export ----
    this.scheduleDlq = new sqs.Queue(this, 'ExportScheduleDLQ', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: messagingKey,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
      description: 'cxr-opacity: EventBridge Scheduler exports the results table to S3',
    });
    const exportStatement = new iam.PolicyStatement({
      sid: 'ExportResultsTable',
      actions: ['dynamodb:ExportTableToPointInTime'],
      resources: [storage.resultsTable.tableArn],
    });
    this.schedulerPolicy = new iam.ManagedPolicy(this, 'SchedulerPolicy', {
      description: 'cxr-opacity scheduled export: least privilege',
      roles: [this.schedulerRole],
      statements: [
        exportStatement,
        new iam.PolicyStatement({
          sid: 'WriteExport',
          actions: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:PutObjectAcl'],
          resources: [this.bucket.arnForObjects(`${EXPORT_PREFIX}*`)],
        }),
        new iam.PolicyStatement({
          sid: 'EncryptExport',
          actions: ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt', 'kms:DescribeKey'],
          resources: [key.keyArn],
        }),
        new iam.PolicyStatement({
          sid: 'DeadLetters',
          actions: ['sqs:SendMessage'],
          resources: [this.scheduleDlq.queueArn],
        }),
        new iam.PolicyStatement({
          sid: 'EncryptDeadLetters',
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [messagingKey.keyArn],
        }),
      ],
    });
    this.schedule = new scheduler.Schedule(this, 'ExportSchedule', {
      description: 'cxr-opacity: daily full export of the results table (DynamoDB JSON) for Athena',
      schedule: scheduler.ScheduleExpression.cron({ minute: '0', hour: String(EXPORT_HOUR_UTC) }),
      timeWindow: scheduler.TimeWindow.off(), // the scheduled time names the snapshot: it must be exact
      target: new targets.Universal({
        service: 'dynamodb',
        action: 'exportTableToPointInTime',
        role: this.schedulerRole.withoutPolicyUpdates(),
        deadLetterQueue: this.scheduleDlq,
        retryAttempts: 3,
        maxEventAge: Duration.hours(2),
        input: scheduler.ScheduleTargetInput.fromObject({
          TableArn: storage.resultsTable.tableArn,
          S3Bucket: this.bucket.bucketName,
          S3BucketOwner: Aws.ACCOUNT_ID,
          S3Prefix: `${EXPORT_PREFIX}${scheduler.ContextAttribute.scheduledTime}`,
          S3SseAlgorithm: 'KMS',
          S3SseKmsKeyId: key.keyArn,
          ExportFormat: 'DYNAMODB_JSON',
          ExportType: 'FULL_EXPORT',
        }),
        // Already in SchedulerPolicy (the role is immutable); named here so the target adds no '*' default.
        policyStatements: [exportStatement],
      }),
    });
    this.schedule.node.addDependency(this.schedulerPolicy);

    // ---- Glue catalog over the exports ----
    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: Aws.ACCOUNT_ID,
      databaseInput: { name: GLUE_DATABASE, description: 'cxr-opacity: results table exports for Athena' },
    });
    const exportRoot = `s3://${this.bucket.bucketName}/${EXPORT_PREFIX}`;
    this.table = new glue.CfnTable(this, 'ResultsExportTable', {
      catalogId: Aws.ACCOUNT_ID,
      databaseName: GLUE_DATABASE,
      tableInput: {
        name: EXPORT_TABLE,
        description: 'Daily DynamoDB JSON exports of the results table, one partition (snapshot) per export',
        tableType: 'EXTERNAL_TABLE',
        partitionKeys: [{ name: 'snapshot', type: 'string', comment: 'scheduled time of the export, UTC' }],
        parameters: {
          classification: 'json',
          'projection.enabled': 'true',
          'projection.snapshot.type': 'date',
          'projection.snapshot.format': SNAPSHOT_FORMAT,
          'projection.snapshot.range': `${PROJECTION_START},NOW`,
          'projection.snapshot.interval': '1',
          'projection.snapshot.interval.unit': 'DAYS',
          // Each export lands under <prefix><snapshot>/AWSDynamoDB/<exportId>/data/*.json.gz next to its manifests.
          'storage.location.template': `${exportRoot}\${snapshot}/AWSDynamoDB/`,
        },
        storageDescriptor: {
          location: exportRoot,
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          compressed: true,
          columns: [{ name: 'item', type: ITEM_TYPE, comment: 'the exported item, as DynamoDB JSON' }],
          serdeInfo: {
            serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
            // manifest files share the folder: they parse to rows with a null item, which the queries drop
            parameters: { 'ignore.malformed.json': 'true', 'case.insensitive': 'true' },
          },
        },
      },
    });
    this.table.addResourceDependency(this.database);

    // ---- Athena ----
    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: ATHENA_WORKGROUP,
      description: 'cxr-opacity analysts: encrypted results, enforced settings, 10 GB scan limit per query',
      state: 'ENABLED',
      recursiveDeleteOption: false,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: 10 * 1024 ** 3,
        engineVersion: { selectedEngineVersion: 'AUTO' },
        resultConfiguration: {
          outputLocation: `s3://${this.bucket.bucketName}/${ATHENA_RESULTS_PREFIX}`,
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: key.keyArn },
          expectedBucketOwner: Aws.ACCOUNT_ID,
        },
      },
    });
    for (const q of NAMED_QUERIES) {
      const nq = new athena.CfnNamedQuery(this, `Query-${q.name}`, {
        name: q.name,
        description: q.description,
        database: GLUE_DATABASE,
        workGroup: ATHENA_WORKGROUP,
        queryString: q.sql,
      });
      nq.addResourceDependency(this.workGroup);
      nq.addResourceDependency(this.database);
      this.namedQueries.push(nq);
    }

    // ---- what an analyst needs to run the queries (attach to a group or SSO permission set) ----
    const glueArn = (resource: string): string => `arn:${Aws.PARTITION}:glue:${Aws.REGION}:${Aws.ACCOUNT_ID}:${resource}`;
    this.analystPolicy = new iam.ManagedPolicy(this, 'AnalystPolicy', {
      description: 'cxr-opacity: run the Athena named queries over the results exports (read-only on data)',
      statements: [
        new iam.PolicyStatement({
          sid: 'AthenaWorkGroup',
          actions: ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:StopQueryExecution',
            'athena:GetWorkGroup', 'athena:ListNamedQueries', 'athena:GetNamedQuery', 'athena:BatchGetNamedQuery', 'athena:ListQueryExecutions'],
          resources: [`arn:${Aws.PARTITION}:athena:${Aws.REGION}:${Aws.ACCOUNT_ID}:workgroup/${ATHENA_WORKGROUP}`],
        }),
        new iam.PolicyStatement({
          sid: 'GlueCatalogRead',
          actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetTables', 'glue:GetPartition', 'glue:GetPartitions'],
          resources: [glueArn('catalog'), glueArn(`database/${GLUE_DATABASE}`), glueArn(`table/${GLUE_DATABASE}/${EXPORT_TABLE}`)],
        }),
        new iam.PolicyStatement({
          sid: 'ReadExports',
          actions: ['s3:GetObject'],
          resources: [this.bucket.arnForObjects(`${EXPORT_PREFIX}*`)],
        }),
        new iam.PolicyStatement({
          sid: 'QueryResults',
          actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
          resources: [this.bucket.arnForObjects(`${ATHENA_RESULTS_PREFIX}*`)],
        }),
        new iam.PolicyStatement({
          sid: 'ListAnalyticsBucket',
          actions: ['s3:ListBucket', 's3:GetBucketLocation'],
          resources: [this.bucket.bucketArn],
        }),
        new iam.PolicyStatement({
          sid: 'DecryptAndEncryptResults',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
          resources: [key.keyArn],
        }),
      ],
    });
  }
}
