/**
 * Where data lives: the uploads and results buckets (plus the bucket that receives their server access
 * logs), the results and idempotency tables, and the secret that keys the patient pseudonyms.
 */
import { Duration, RemovalPolicy, Stack, type CfnResource } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

export { RESULTS_PREFIX, UPLOAD_PREFIX } from '../../src/pipeline/storage-layout';

export interface StorageProps {
  readonly key: kms.IKey;
  readonly logRetentionDays: number;
  readonly noncurrentVersionExpirationDays: number;
  /** Days current objects are kept: raw uploads, and the results derived from them (cdk/lib/config.ts). */
  readonly uploadRetentionDays: number;
  readonly resultRetentionDays: number;
}

export class Storage extends Construct {
  readonly accessLogsBucket: s3.Bucket;
  readonly uploadsBucket: s3.Bucket;
  readonly resultsBucket: s3.Bucket;
  readonly resultsTable: dynamodb.Table;
  readonly idempotencyTable: dynamodb.Table;
  readonly pseudonymSecret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);
    const { key } = props;

    // S3 server access logs can only be delivered to a bucket with SSE-S3 (SSE-KMS is not supported there).
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // Denies requests over TLS older than 1.2, like the data buckets (log delivery uses TLS 1.2+).
      minimumTLSVersion: 1.2,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
      autoDeleteObjects: false,
      lifecycleRules: [{
        id: 'expire-access-logs',
        expiration: Duration.days(props.logRetentionDays),
        noncurrentVersionExpiration: Duration.days(1),
        abortIncompleteMultipartUploadAfter: Duration.days(7),
      }],
    });

    // Current objects expire after the configured retention (raw uploads hold every identifier of the image),
    // then their non-current versions after noncurrentVersionExpirationDays.
    const dataBucket = (bucketId: string, logPrefix: string, retentionDays: number): s3.Bucket => new s3.Bucket(this, bucketId, {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      bucketKeyEnabled: true, // one data key per bucket and period instead of one KMS call per object
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: logPrefix,
      removalPolicy: RemovalPolicy.RETAIN,
      autoDeleteObjects: false,
      lifecycleRules: [{
        id: 'expire-objects',
        expiration: Duration.days(retentionDays),
        noncurrentVersionExpiration: Duration.days(props.noncurrentVersionExpirationDays),
        abortIncompleteMultipartUploadAfter: Duration.days(7),
      }],
    });
    this.uploadsBucket = dataBucket('UploadsBucket', 'uploads-bucket/', props.uploadRetentionDays);
    this.resultsBucket = dataBucket('ResultsBucket', 'results-bucket/', props.resultRetentionDays);

    // One item per image; an analyst lists a patient's or a study's images in time order through the GSIs
    // (sortKey = acquiredAt#imageId).
    this.resultsTable = new dynamodb.Table(this, 'ResultsTable', {
      partitionKey: { name: 'imageId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const [indexName, pk] of [['byPatient', 'patientKey'], ['byStudy', 'studyKey']] as const) {
      this.resultsTable.addGlobalSecondaryIndex({
        indexName,
        partitionKey: { name: pk, type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sortKey', type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }

    // Powertools idempotency records: short-lived (TTL on `expiration`), so the table may go with the stack.
    this.idempotencyTable = new dynamodb.Table(this, 'IdempotencyTable', {
      partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: 'expiration',
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // HMAC key of the patient pseudonyms. It must outlive the stack and must not rotate: a new key would give
    // the same patient a new pseudonym and break every per-patient query over earlier results.
    this.pseudonymSecret = new secretsmanager.Secret(this, 'PseudonymSecret', {
      description: 'cxr-opacity: HMAC key for patient pseudonyms (do not rotate; see cdk/README.md)',
      encryptionKey: key,
      generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}

/** Construct id of CDK's singleton Lambda that applies S3 bucket notifications at deploy time. */
export const NOTIFICATIONS_HANDLER_ID = 'BucketNotificationsHandler050a0587b7544547bf325f094a3db834';

/**
 * CDK's BucketNotificationsHandler (a deploy-time custom resource) would log to a group Lambda creates on
 * first run, kept forever and unencrypted. Point it at a log group of ours, with a retention and the key.
 * Call once, after every addEventNotification of the stack. Returns the log group, if the handler exists.
 */
export function notificationHandlerLogs(stack: Stack, key: kms.IKey, retention: logs.RetentionDays): logs.LogGroup | undefined {
  const handler = stack.node.tryFindChild(NOTIFICATIONS_HANDLER_ID);
  const fn = handler?.node.tryFindChild('Resource') as CfnResource | undefined;
  if (!fn) return undefined;
  const logGroup = new logs.LogGroup(stack, 'BucketNotificationsHandlerLogs', { retention, encryptionKey: key, removalPolicy: RemovalPolicy.RETAIN });
  fn.addPropertyOverride('LoggingConfig', { LogGroup: logGroup.logGroupName, LogFormat: 'Text' });
  return logGroup;
}
