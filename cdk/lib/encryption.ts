/** The customer-managed KMS key that encrypts every data store, queue, log group and topic of the stack. */
import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export class Encryption extends Construct {
  /** Data at rest: buckets, tables, secret, log groups, environment variables. */
  readonly key: kms.Key;
  /**
   * Messages in flight: the SQS queues and the alarm topic. A key of its own because S3 event notifications
   * need a statement in this key's policy that names the uploads bucket, which is itself encrypted with `key`
   * (one key for both would be a circular dependency).
   */
  readonly messagingKey: kms.Key;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: 'cxr-opacity: encrypts chest X-rays, results, queues, tables, secret, logs and alarms',
      enableKeyRotation: true,
      rotationPeriod: Duration.days(365),
      // Losing the key loses every encrypted object, item and backup: never delete it with the stack.
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });

    // CloudWatch Logs encrypts the functions' log groups with this key (only log groups of this account/region).
    this.key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AllowCloudWatchLogs',
      principals: [new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
      actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
      resources: ['*'],
      conditions: {
        ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:*` },
      },
    }));

    this.messagingKey = new kms.Key(this, 'MessagingKey', {
      description: 'cxr-opacity: encrypts the SQS queues and the alarm topic',
      enableKeyRotation: true,
      rotationPeriod: Duration.days(365),
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });
    // CloudWatch alarms publish to the KMS-encrypted alarm topic.
    this.messagingKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AllowCloudWatchAlarmsToPublish',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: ['*'],
      conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    }));
  }
}
