/**
 * Template tests of BatchInferenceConstruct in a stack of stand-in resources: the async endpoint
 * configuration, scale-to-zero, SNS wiring, IAM least privilege, and cdk-nag (AwsSolutions + HIPAA) on the
 * construct's own resources with its acknowledgements applied.
 */
import { beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks, HIPAASecurityChecks } from 'cdk-nag';
import { BatchInferenceConstruct, batchNagAcknowledgements } from '../cdk/lib/batch';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let app: App;
let stack: Stack;
let batch: BatchInferenceConstruct;
let t: Template;
let resources: Record<string, Json>;
const lid = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId((c instanceof CfnElement ? c : c.node.defaultChild) as never);
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const statementsOf = (policyConstruct: { node: { defaultChild?: unknown } }): Json[] => resources[lid(policyConstruct)]!.Properties.PolicyDocument.Statement;
const bySid = (stmts: Json[], sid: string) => stmts.find((s) => s.Sid === sid)!;
const asArray = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

beforeAll(() => {
  app = new App({ outdir: mkdtempSync(join(tmpdir(), 'cxr-batch-cdk-')) });
  stack = new Stack(app, 'BatchTest', { env: { account: '123456789012', region: 'eu-west-1' } });
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const messagingKey = new kms.Key(stack, 'MessagingKey', { enableKeyRotation: true });
  const bucket = (id: string) => new s3.Bucket(stack, id, { encryption: s3.BucketEncryption.KMS, encryptionKey: key, enforceSSL: true, blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL });
  const uploads = bucket('Uploads');
  const results = bucket('Results');
  const queue = (id: string) => new sqs.Queue(stack, id, { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: messagingKey, enforceSSL: true });
  batch = new BatchInferenceConstruct(stack, 'Batch', {
    uploadsBucket: uploads, resultsBucket: results, key, messagingKey,
    ingestQueue: queue('Ingest'), scoreQueue: queue('Score'),
    pseudonymSecret: new secretsmanager.Secret(stack, 'Pseudonym', { encryptionKey: key }),
    dicomIdentity: 'deidentified',
  });
  for (const a of batchNagAcknowledgements(batch, results, uploads)) Validations.of(a.construct).acknowledge({ id: a.id, reason: a.reason });
  t = Template.fromStack(stack);
  resources = t.toJSON().Resources as Record<string, Json>;
});

describe('BatchInferenceConstruct', () => {
  test('model: the serving container image asset, its environment and execution role', () => {
    const [, model] = ofType('AWS::SageMaker::Model')[0]!;
    const c = model.Properties.PrimaryContainer;
    assert.match(JSON.stringify(c.Image), /dkr\.ecr/);
    assert.equal(c.Environment.USE_CUDA, '1');
    assert.equal(c.Environment.MODEL_MANIFEST, '/app/models/cxr-unet-r18-int8.json');
    assert.equal(c.Environment.DICOM_IDENTITY, 'deidentified', 'the identity mode of seg.dcm/sr.dcm the construct was given');
    assert.ok(c.Environment.RESULTS_BUCKET && c.Environment.PSEUDONYM_SECRET_ARN && c.Environment.SOURCE_BUCKETS);
    assert.deepEqual(model.Properties.ExecutionRoleArn, { 'Fn::GetAtt': [lid(batch.sagemakerRole), 'Arn'] });
    assert.ok(asArray(model.DependsOn).includes(lid(batch.sagemakerPolicy)), 'model waits for the role policy (image pull)');
  });

  test('endpoint config: async inference to S3 with KMS, SNS success/error topics, GPU instance', () => {
    t.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      ProductionVariants: [Match.objectLike({ VariantName: 'AllTraffic', InstanceType: 'ml.g4dn.xlarge', InitialInstanceCount: 1 })],
      AsyncInferenceConfig: {
        ClientConfig: { MaxConcurrentInvocationsPerInstance: 4 },
        OutputConfig: {
          S3OutputPath: Match.objectLike({ 'Fn::Join': Match.anyValue() }),
          S3FailurePath: Match.anyValue(),
          KmsKeyId: Match.anyValue(),
          NotificationConfig: { SuccessTopic: { Ref: lid(batch.successTopic) }, ErrorTopic: { Ref: lid(batch.errorTopic) } },
        },
      },
    });
    const [, cfg] = ofType('AWS::SageMaker::EndpointConfig')[0]!;
    assert.match(JSON.stringify(cfg.Properties.AsyncInferenceConfig.OutputConfig.S3OutputPath), /batches\/outputs\//);
    assert.equal(cfg.Properties.KmsKeyId, undefined, 'no volume key on NVMe instance types');
    t.resourceCountIs('AWS::SageMaker::Endpoint', 1);
    for (const topic of [batch.successTopic, batch.errorTopic]) {
      assert.ok(resources[lid(topic)]!.Properties.KmsMasterKeyId, 'topics are KMS-encrypted');
    }
  });

  test('scales to zero: MinCapacity 0, target tracking on backlog per instance, step scaling out of zero', () => {
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 0, MaxCapacity: 2, ServiceNamespace: 'sagemaker', ScalableDimension: 'sagemaker:variant:DesiredInstanceCount',
      ResourceId: { 'Fn::Join': ['', ['endpoint/', { 'Fn::GetAtt': [lid(batch.endpoint as never), 'EndpointName'] }, '/variant/AllTraffic']] },
    });
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        TargetValue: 8,
        CustomizedMetricSpecification: Match.objectLike({ MetricName: 'ApproximateBacklogSizePerInstance', Namespace: 'AWS/SageMaker', Statistic: 'Average' }),
      }),
    });
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'StepScaling',
      StepScalingPolicyConfiguration: Match.objectLike({ AdjustmentType: 'ChangeInCapacity', StepAdjustments: [{ MetricIntervalLowerBound: 0, ScalingAdjustment: 1 }] }),
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'HasBacklogWithoutCapacity', Namespace: 'AWS/SageMaker', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [Match.objectLike({ Ref: Match.stringLikeRegexp('ScaleOutFromZero') })],
    });
  });

  test('zero instances until a batch arrives: SageMaker\'s minimum of one at creation is scaled to exactly 0 after 5 idle minutes', () => {
    // CreateEndpointConfig refuses InitialInstanceCount 0 (the API minimum is 1); the idle policy removes that instance.
    t.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      ProductionVariants: [Match.objectLike({ InitialInstanceCount: 1 })],
      AsyncInferenceConfig: Match.anyValue(),
    });
    const toZero = ofType('AWS::ApplicationAutoScaling::ScalingPolicy').find(([id]) => /ScaleInToZero/.test(id));
    assert.ok(toZero, 'a ScaleInToZero step policy');
    const cfg = toZero[1].Properties.StepScalingPolicyConfiguration;
    assert.equal(cfg.AdjustmentType, 'ExactCapacity');
    assert.deepEqual(cfg.StepAdjustments, [{ MetricIntervalUpperBound: 0, ScalingAdjustment: 0 }]);
    assert.deepEqual(toZero[1].Properties.ScalingTargetId, { Ref: lid(batch.scalingTarget as never) });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateBacklogSize', Namespace: 'AWS/SageMaker', Statistic: 'Maximum', Threshold: 0,
      ComparisonOperator: 'LessThanOrEqualToThreshold', EvaluationPeriods: 5, DatapointsToAlarm: 5, Period: 60, TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: toZero[0] }],
    });
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 0 });
  });

  test('the batch-result function is subscribed to both topics; the router is ready for the S3 notification', () => {
    const subsToFn = ofType('AWS::SNS::Subscription').filter(([, r]) => r.Properties.Protocol === 'lambda'
      && JSON.stringify(r.Properties.Endpoint).includes(lid(batch.batchResultFunction as never)));
    assert.deepEqual(subsToFn.map(([, r]) => r.Properties.TopicArn.Ref).sort(), [lid(batch.successTopic), lid(batch.errorTopic)].sort());
    assert.ok(subsToFn.every(([, r]) => r.Properties.RedrivePolicy), 'subscriptions have a dead-letter queue');
    const router = resources[lid(batch.routerFunction as never)]!;
    assert.deepEqual(Object.keys(router.Properties.Environment.Variables).sort(), [
      'BACKLOG_THRESHOLD', 'BATCH_THRESHOLD', 'ENDPOINT_NAME', 'IMAGE_PREFIXES', 'INGEST_QUEUE_URL', 'KEEP_SOURCE_KEYS', 'NODE_OPTIONS',
      'POWERTOOLS_LOG_LEVEL', 'POWERTOOLS_METRICS_NAMESPACE', 'POWERTOOLS_SERVICE_NAME', 'PSEUDONYM_SECRET_ARN', 'WORK_BUCKET',
    ]);
    assert.equal(router.Properties.Environment.Variables.KEEP_SOURCE_KEYS, 'false', 'file names are not kept by default');
    assert.equal(router.Properties.Environment.Variables.BATCH_THRESHOLD, '50');
    assert.ok(router.Properties.DeadLetterConfig, 'failed asynchronous invocations (S3 events) are kept');
  });

  test('IAM: each principal gets only what it uses', () => {
    const router = statementsOf(batch.routerPolicy);
    assert.deepEqual(bySid(router, 'InvokeEndpointAsync').Resource, { Ref: lid(batch.endpoint as never) });
    assert.deepEqual(asArray(bySid(router, 'IngestQueue').Action).sort(), ['sqs:GetQueueAttributes', 'sqs:SendMessage']);
    assert.match(JSON.stringify(bySid(router, 'ReadManifestsAndImages').Resource), /\/batches\/\*.*\/batch-images\/\*/);
    // Manifest patient ids are pseudonymised by the router itself, before it stores or sends anything.
    assert.deepEqual(asArray(bySid(router, 'ReadPseudonymKey').Action).sort(), ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
    const result = statementsOf(batch.batchResultPolicy);
    assert.equal(bySid(result, 'SendToScoreQueue').Action, 'sqs:SendMessage');
    assert.equal(bySid(result, 'ReadAsyncOutputs').Action, 's3:GetObject');
    const sm = statementsOf(batch.sagemakerPolicy);
    assert.equal(bySid(sm, 'NotifyResults').Action, 'sns:Publish');
    assert.equal(bySid(sm, 'WriteMasksAndOutputs').Action, 's3:PutObject');
    assert.equal(bySid(sm, 'ReadBatchImages').Action, 's3:GetObject');
    const all = [...router, ...result, ...sm];
    for (const s of all) {
      for (const a of asArray(s.Action as string | string[])) assert.ok(!a.endsWith(':*') && a !== '*', `no wildcard action: ${a}`);
      if (s.Resource === '*') assert.ok(['XRayTraces', 'EcrAuth', 'EndpointMetrics', 'VpcNetworkInterfaces'].includes(s.Sid), `Resource * only where no resource-level permission exists: ${s.Sid}`);
    }
    // No AWS managed policies, no inline policies on the construct's roles.
    for (const r of [batch.routerRole, batch.batchResultRole, batch.sagemakerRole]) {
      const role = resources[lid(r)]!;
      assert.equal(role.Properties.ManagedPolicyArns, undefined);
      assert.equal(role.Properties.Policies, undefined);
    }
  });

  test('cdk-nag AwsSolutions and HIPAA Security: no unacknowledged finding on the construct', () => {
    const findings = [new AwsSolutionsChecks(app, { verbose: true }), new HIPAASecurityChecks(app, { verbose: true })]
      .flatMap((p) => p.validateScope(app).violations)
      .flatMap((v) => v.violatingResources.filter((r) => (r.constructPath ?? '').includes('/Batch/')).map((r) => `${v.ruleName}: ${r.constructPath}`));
    assert.deepEqual(findings, [], findings.join('\n'));
  });
});

describe('BatchInferenceConstruct: key policy', () => {
  test("SNS may write undeliverable notifications to the encrypted dead-letter queue, only for this account's topics", () => {
    const keys = ofType('AWS::KMS::Key').map(([, r]) => r.Properties.KeyPolicy.Statement as Json[]).flat();
    const s = keys.find((x) => x.Sid === 'AllowSnsToBatchDeadLetterQueue')!;
    assert.deepEqual(s.Principal, { Service: 'sns.amazonaws.com' });
    assert.match(JSON.stringify(s.Condition.ArnLike['aws:SourceArn']), /:sns:.*AWS::AccountId.*:\*/);
  });
});
