/**
 * cdk-nag: the AwsSolutions and HIPAA Security packs run on every synth (cdk/lib/app.ts). The findings below
 * are intended; each is acknowledged on the narrowest construct, finding by finding, with its reason.
 * Anything else fails `cdk synth` and the template tests.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { CfnResource } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import type { CxrOpacityStack } from './stack';
import { apiNagAcknowledgements } from './api';
import { batchNagAcknowledgements } from './batch';
import { ATHENA_RESULTS_PREFIX, EXPORT_PREFIX } from './analytics';
import { BATCH_IMAGE_PREFIX } from './batch';
import { RESULTS_PREFIX, UPLOAD_PREFIX } from './storage';

export interface NagAcknowledgement {
  readonly construct: IConstruct;
  readonly id: string;
  readonly reason: string;
}

/** `<LogicalId.Arn>` as cdk-nag renders a resource's ARN in IAM5 finding ids. */
function arnRef(resource: IConstruct): string {
  const cfn = resource.node.defaultChild as CfnResource;
  return `<${Stack.of(resource).getLogicalId(cfn)}.Arn>`;
}

export function nagAcknowledgements(stack: CxrOpacityStack): NagAcknowledgement[] {
  const { storage, pipeline, analytics } = stack;
  const acks: NagAcknowledgement[] = [];
  const ack = (construct: IConstruct, id: string, reason: string): void => { acks.push({ construct, id, reason }); };

  // ---- IAM ----
  for (const policy of [pipeline.segmentPolicy, pipeline.scorePolicy]) {
    ack(policy, 'AwsSolutions-IAM5[Resource::*]',
      'xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions; the statement holds only these two actions.');
  }
  ack(pipeline.segmentPolicy, `AwsSolutions-IAM5[Resource::${arnRef(storage.uploadsBucket)}/${UPLOAD_PREFIX}*]`,
    'The segment function reads any new upload (object keys are chosen by the uploader), limited to s3:GetObject under the uploads/ prefix.');
  ack(pipeline.segmentPolicy, `AwsSolutions-IAM5[Resource::${arnRef(storage.uploadsBucket)}/${BATCH_IMAGE_PREFIX}*]`,
    'Images of a batch manifest routed to the Lambda path live under batch-images/ (keys chosen by the submitter); s3:GetObject only.');
  for (const policy of [pipeline.segmentPolicy, pipeline.scorePolicy]) {
    ack(policy, `AwsSolutions-IAM5[Resource::${arnRef(storage.resultsBucket)}/${RESULTS_PREFIX}*]`,
      'Result keys are results/<imageId>/<file>, with imageId known only at run time; access is limited to object get/put under results/.');
  }

  ack(analytics.schedulerPolicy, `AwsSolutions-IAM5[Resource::${arnRef(analytics.bucket)}/${EXPORT_PREFIX}*]`,
    'DynamoDB writes each export under a new <snapshot>/AWSDynamoDB/<exportId>/ folder; the scheduler role may only put objects under exports/results/.');
  ack(analytics.analystPolicy, `AwsSolutions-IAM5[Resource::${arnRef(analytics.bucket)}/${EXPORT_PREFIX}*]`,
    'Athena reads every data file of the exports, whose names DynamoDB generates; read-only (s3:GetObject) and only under exports/results/.');
  ack(analytics.analystPolicy, `AwsSolutions-IAM5[Resource::${arnRef(analytics.bucket)}/${ATHENA_RESULTS_PREFIX}*]`,
    'Athena writes query results under athena-results/ with generated names (query execution ids); access is limited to that prefix.');

  // CDK's own singleton Lambda that configures the S3 event notification (a custom resource run at deploy time).
  const notifications = stack.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
  if (notifications) {
    ack(notifications, 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'CDK-managed custom resource (BucketNotificationsHandler) that only writes its own logs; its role is not configurable.');
  }
  const handlerPolicy = storage.uploadsBucket.node.tryFindChild('Notifications')?.node.tryFindChild('HandlerPolicy');
  if (handlerPolicy) {
    ack(handlerPolicy, 'HIPAA.Security-IAMNoInlinePolicy',
      'CDK-managed inline policy of the BucketNotificationsHandler custom resource: s3:PutBucketNotification on this bucket only.');
  }

  // ---- Secret ----
  ack(storage.pseudonymSecret, 'AwsSolutions-SMG4',
    'HMAC key of the patient pseudonyms: rotating it would give every patient a new pseudonym and break per-patient history. Rotate only with a re-keying migration (cdk/README.md).');
  ack(storage.pseudonymSecret, 'HIPAA.Security-SecretsManagerRotationEnabled',
    'HMAC key of the patient pseudonyms: rotating it would give every patient a new pseudonym and break per-patient history. Rotate only with a re-keying migration (cdk/README.md).');

  // ---- S3 ----
  for (const bucket of [storage.uploadsBucket, storage.resultsBucket, storage.accessLogsBucket, analytics.bucket]) {
    ack(bucket, 'HIPAA.Security-S3BucketReplicationEnabled',
      'Cross-region replication is a per-deployment choice (second region, data-residency rules for patient images); buckets are versioned, KMS- or SSE-encrypted and retained on stack deletion.');
  }
  ack(storage.accessLogsBucket, 'HIPAA.Security-S3DefaultEncryptionKMS',
    'S3 server access logs can only be delivered to a bucket encrypted with SSE-S3 (AES-256); SSE-KMS targets are not supported.');

  // ---- SQS ----
  ack(analytics.scheduleDlq, 'AwsSolutions-SQS3',
    'This queue is itself a dead-letter queue: EventBridge Scheduler\'s DLQ for failed export calls (cdk-nag only recognises SQS redrive DLQs); it is alarmed.');

  // ---- DynamoDB ----
  ack(storage.resultsTable, 'HIPAA.Security-DynamoDBInBackupPlan',
    'Point-in-time recovery (35 days of continuous backups) and deletion protection are on; the table is re-creatable from results/*/result.json in the versioned results bucket. Add an AWS Backup plan for longer retention if policy requires.');
  ack(storage.idempotencyTable, 'HIPAA.Security-DynamoDBInBackupPlan',
    'Transient Powertools idempotency records with a TTL: nothing to restore.');

  // ---- Lambda ----
  ack(pipeline.scoreFunction, 'AwsSolutions-L1',
    'nodejs22.x on purpose: the segment image is built on public.ecr.aws/lambda/nodejs:22, and both functions share src/ code, so both run the same Node major (supported by Lambda until 2027).');
  for (const fn of [pipeline.segmentFunction, pipeline.scoreFunction]) {
    ack(fn, 'HIPAA.Security-LambdaDLQ',
      'Invoked synchronously by an SQS event source mapping; a function DLQ applies only to asynchronous invocations. Failed messages go to the source queue\'s DLQ (maxReceiveCount 3), which is alarmed.');
    ack(fn, 'HIPAA.Security-LambdaInsideVPC',
      'The function reaches only AWS APIs (S3, SQS, DynamoDB, Secrets Manager, X-Ray) over TLS with IAM auth and exposes no network endpoint; a VPC would add NAT or interface-endpoint cost without a network boundary to protect.');
  }
  return acks;
}

/** Acknowledgements of the API and batch constructs, which come with their own lists (cdk/lib/api.ts, batch.ts). */
export function extensionNagAcknowledgements(stack: CxrOpacityStack): NagAcknowledgement[] {
  return [
    ...apiNagAcknowledgements(stack.api),
    ...(stack.batch ? batchNagAcknowledgements(stack.batch, stack.storage.resultsBucket, stack.storage.uploadsBucket) : []),
  ];
}

export function acknowledgeNagFindings(stack: CxrOpacityStack): void {
  for (const a of [...nagAcknowledgements(stack), ...extensionNagAcknowledgements(stack)]) Validations.of(a.construct).acknowledge({ id: a.id, reason: a.reason });
}
