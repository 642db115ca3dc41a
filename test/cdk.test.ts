/**
 * Template tests of the CDK app (cdk/): resources, encryption, TLS-only policies, event wiring, IAM least
 * privilege and cdk-nag (AwsSolutions + HIPAA Security). The app is synthesised once, with the real esbuild
 * bundling of the score function and the real Docker asset staging (no Docker daemon needed).
 */
import { beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { PolicyValidationPluginReport } from 'aws-cdk-lib';
import { buildApp, nagPacks, STACK_NAME } from '../cdk/lib/app';
import { configFromContext, DEFAULT_CONFIG } from '../cdk/lib/config';
import { nagAcknowledgements } from '../cdk/lib/nag';
import { retentionFor, SEGMENT_TIMEOUT } from '../cdk/lib/pipeline';
import type { CxrOpacityStack } from '../cdk/lib/stack';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let app: App;
let stack: CxrOpacityStack;
let template: Template;
let resources: Record<string, Json>;
let outdir: string;
let nagReports: PolicyValidationPluginReport[];

/** Logical id of a construct's default CloudFormation resource. */
const lid = (c: { node: { defaultChild?: unknown } }): string => stack.getLogicalId(c.node.defaultChild as never);
const ofType = (type: string): [string, Json][] => Object.entries(resources).filter(([, r]) => r.Type === type);
const asArray = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'cxr-cdk-'));
  ({ app, stack } = buildApp({ outdir }));
  // Synthesises the whole app once; the validation plugins (cdk-nag packs, CloudFormation validation) run
  // here and throw on any unacknowledged error.
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Record<string, Json>;
  nagReports = nagPacks(app).map((p) => p.validateScope(app));
});

describe('cdk-nag', () => {
  test('AwsSolutions and HIPAA Security report no unacknowledged finding (errors or warnings)', () => {
    assert.equal(nagReports.length, 2);
    for (const report of nagReports) {
      const lines = report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
      assert.deepEqual(lines, [], lines.join('\n'));
      assert.equal(report.success, true);
    }
  });

  test('the synth-time validation report (what `cdk synth` checks) holds no violation', () => {
    const file = join(outdir, 'validation-report.json');
    assert.ok(existsSync(file), 'validation-report.json written by synth');
    const report = JSON.parse(readFileSync(file, 'utf8')) as { pluginReports?: { violations?: unknown[] }[] };
    assert.ok(Array.isArray(report.pluginReports));
    for (const p of report.pluginReports) assert.deepEqual(p.violations ?? [], []);
  });

  test('every acknowledgement of cdk/lib/nag.ts matches a finding the packs really raise (no stale suppressions)', () => {
    // Run the packs again with acknowledgements ignored, to see the raw findings.
    const raw = new Set<string>();
    for (const pack of nagPacks(app)) {
      (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
      for (const v of pack.validateScope(app).violations) {
        for (const r of v.violatingResources) raw.add(`${v.ruleName} ${r.constructPath}`);
      }
    }
    for (const a of nagAcknowledgements(stack)) {
      const path = a.construct.node.path;
      const hit = [...raw].some((f) => f.startsWith(`${a.id} `) && (f.endsWith(` ${path}`) || f.includes(` ${path}/`)));
      assert.ok(hit, `acknowledgement ${a.id} on ${path} matches a finding`);
    }
  });

  test('the packs do fail synth on an unacknowledged finding (the harness is live)', () => {
    const bad = new App({ outdir: mkdtempSync(join(tmpdir(), 'cxr-cdk-bad-')) });
    const s = new Stack(bad, 'Bad');
    new s3.Bucket(s, 'Plain'); // no KMS, no TLS-only policy, no access logs, no versioning
    const packs = nagPacks(bad);
    const rules = packs.flatMap((p) => p.validateScope(bad).violations.map((v) => v.ruleName));
    for (const r of ['AwsSolutions-S1', 'AwsSolutions-S10', 'HIPAA.Security-S3BucketSSLRequestsOnly', 'HIPAA.Security-S3DefaultEncryptionKMS']) {
      assert.ok(rules.includes(r), `${r} in ${rules.join(', ')}`);
    }
    Validations.of(bad).addPlugins(...packs);
    assert.throws(() => bad.synth(), /AwsSolutions-S10|Validation failed/);
  });

  test('no error or warning annotations on the stack', () => {
    const annotations = Annotations.fromStack(stack);
    assert.deepEqual(annotations.findError('*', Match.anyValue()), []);
    assert.deepEqual(annotations.findError('*', Match.stringLikeRegexp('(AwsSolutions|HIPAA)-.*')), []);
    assert.deepEqual(annotations.findWarning('*', Match.anyValue()), []);
  });

  test('every acknowledgement names a pack rule, a construct of this stack and a specific reason', () => {
    const acks = nagAcknowledgements(stack);
    assert.ok(acks.length > 0);
    const seen = new Set<string>();
    for (const a of acks) {
      assert.match(a.id, /^(AwsSolutions|HIPAA\.Security)-[A-Za-z0-9]+(\[.+\])?$/, a.id);
      assert.ok(a.reason.length >= 60, `reason of ${a.id} is specific: ${a.reason}`);
      assert.equal(Stack.of(a.construct), stack);
      const key = `${a.construct.node.path} ${a.id}`;
      assert.ok(!seen.has(key), `duplicate ${key}`);
      seen.add(key);
    }
    // Wildcard IAM5 acknowledgements are per resource, never blanket.
    assert.ok(acks.every((a) => a.id !== 'AwsSolutions-IAM5'));
  });
});

describe('encryption at rest', () => {
  test('customer-managed KMS keys rotate and are retained', () => {
    const keys = ofType('AWS::KMS::Key');
    assert.equal(keys.length, 2);
    for (const [, k] of keys) {
      assert.equal(k.Properties.EnableKeyRotation, true);
      assert.equal(k.DeletionPolicy, 'Retain');
    }
  });

  test('uploads, results and analytics buckets use SSE-KMS with the data key, versioning and access logs', () => {
    const dataKey = lid(stack.encryption.key);
    const logs = lid(stack.storage.accessLogsBucket);
    for (const b of [stack.storage.uploadsBucket, stack.storage.resultsBucket, stack.analytics.bucket]) {
      const r = resources[lid(b)]!;
      assert.equal(r.DeletionPolicy, 'Retain');
      const rule = r.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0];
      assert.equal(rule.ServerSideEncryptionByDefault.SSEAlgorithm, 'aws:kms');
      assert.deepEqual(rule.ServerSideEncryptionByDefault.KMSMasterKeyID, { 'Fn::GetAtt': [dataKey, 'Arn'] });
      assert.equal(rule.BucketKeyEnabled, true);
      assert.deepEqual(r.Properties.PublicAccessBlockConfiguration, {
        BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
      });
      assert.equal(r.Properties.VersioningConfiguration.Status, 'Enabled');
      assert.deepEqual(r.Properties.LoggingConfiguration.DestinationBucketName, { Ref: logs });
      assert.ok(asArray<Json>(r.Properties.LifecycleConfiguration?.Rules).some((x) => x.NoncurrentVersionExpiration));
      assert.equal(r.Properties.OwnershipControls.Rules[0].ObjectOwnership, 'BucketOwnerEnforced');
    }
  });

  test('the access-log bucket is private, SSE-S3 (what S3 log delivery supports) and expires logs', () => {
    const r = resources[lid(stack.storage.accessLogsBucket)]!;
    assert.equal(r.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, 'AES256');
    assert.equal(r.Properties.PublicAccessBlockConfiguration.RestrictPublicBuckets, true);
    assert.ok(asArray<Json>(r.Properties.LifecycleConfiguration.Rules).some((x) => x.ExpirationInDays === DEFAULT_CONFIG.logRetentionDays));
  });

  test('no bucket allows auto-deletion (no auto-delete custom resource)', () => {
    assert.equal(ofType('Custom::S3AutoDeleteObjects').length, 0);
  });

  test('queues and the alarm topic use the messaging key; tables, secret and log groups the data key', () => {
    const msgKey = { 'Fn::GetAtt': [lid(stack.encryption.messagingKey), 'Arn'] };
    const dataKey = { 'Fn::GetAtt': [lid(stack.encryption.key), 'Arn'] };
    const queues = ofType('AWS::SQS::Queue');
    assert.ok(queues.length >= 5, 'ingest, score, their DLQs, the export schedule DLQ (+ batch DLQ)');
    for (const [, q] of queues) assert.deepEqual(q.Properties.KmsMasterKeyId, msgKey);
    for (const [, t] of ofType('AWS::SNS::Topic')) assert.deepEqual(t.Properties.KmsMasterKeyId, msgKey);
    for (const [, t] of ofType('AWS::DynamoDB::Table')) {
      assert.equal(t.Properties.SSESpecification.SSEEnabled, true);
      assert.equal(t.Properties.SSESpecification.SSEType, 'KMS');
      assert.deepEqual(t.Properties.SSESpecification.KMSMasterKeyId, dataKey);
    }
    for (const [, s] of ofType('AWS::SecretsManager::Secret')) assert.deepEqual(s.Properties.KmsKeyId, dataKey);
    const logGroups = ofType('AWS::Logs::LogGroup');
    assert.ok(logGroups.length >= 2);
    for (const [, g] of logGroups) assert.deepEqual(g.Properties.KmsKeyId, dataKey);
    for (const [, f] of ofType('AWS::Lambda::Function').filter(([id]) => !id.startsWith('BucketNotificationsHandler'))) {
      assert.deepEqual(f.Properties.KmsKeyArn, dataKey, 'environment variables encrypted');
    }
  });
});

describe('TLS-only resource policies', () => {
  const deniesInsecureTransport = (doc: Json): boolean => asArray<Json>(doc.Statement).some((s) =>
    s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false');

  test('every bucket policy denies requests without TLS', () => {
    const policies = ofType('AWS::S3::BucketPolicy');
    assert.equal(policies.length, 4, 'uploads, results, analytics, access logs');
    for (const [, p] of policies) assert.ok(deniesInsecureTransport(p.Properties.PolicyDocument));
    const bucketsWithPolicy = new Set(policies.map(([, p]) => p.Properties.Bucket.Ref));
    for (const [id] of ofType('AWS::S3::Bucket')) assert.ok(bucketsWithPolicy.has(id), `${id} has a TLS-only policy`);
  });

  test('every queue policy and the topic policy deny requests without TLS', () => {
    const queuePolicies = ofType('AWS::SQS::QueuePolicy');
    const covered = new Set<string>();
    for (const [, p] of queuePolicies) {
      assert.ok(deniesInsecureTransport(p.Properties.PolicyDocument));
      for (const q of p.Properties.Queues) covered.add(q.Ref);
    }
    for (const [id] of ofType('AWS::SQS::Queue')) assert.ok(covered.has(id), `${id} has a TLS-only policy`);
    for (const [, p] of ofType('AWS::SNS::TopicPolicy')) assert.ok(deniesInsecureTransport(p.Properties.PolicyDocument));
  });

  test('the results and uploads buckets refuse TLS below 1.2', () => {
    for (const b of [stack.storage.uploadsBucket, stack.storage.resultsBucket, stack.analytics.bucket]) {
      const policy = ofType('AWS::S3::BucketPolicy').find(([, p]) => p.Properties.Bucket.Ref === lid(b))![1];
      assert.ok(asArray<Json>(policy.Properties.PolicyDocument.Statement).some((s) =>
        s.Effect === 'Deny' && s.Condition?.NumericLessThan?.['s3:TlsVersion'] === 1.2));
    }
  });
});

describe('event wiring', () => {
  test('objects created under uploads/ notify the ingest queue', () => {
    const [, n] = ofType('Custom::S3BucketNotifications')[0]!;
    assert.deepEqual(n.Properties.BucketName, { Ref: lid(stack.storage.uploadsBucket) });
    const configs = n.Properties.NotificationConfiguration.QueueConfigurations as Json[];
    assert.equal(configs.length, 1);
    assert.equal(configs[0]!.Events[0], 's3:ObjectCreated:*');
    assert.deepEqual(configs[0]!.QueueArn, { 'Fn::GetAtt': [lid(stack.pipeline.ingestQueue), 'Arn'] });
    assert.deepEqual(configs[0]!.Filter.Key.FilterRules, [{ Name: 'prefix', Value: 'uploads/' }]);
  });

  test('S3 may send to the ingest queue and use the messaging key for it', () => {
    const policy = ofType('AWS::SQS::QueuePolicy').find(([, p]) => p.Properties.Queues.some((q: Json) => q.Ref === lid(stack.pipeline.ingestQueue)))![1];
    assert.ok(asArray<Json>(policy.Properties.PolicyDocument.Statement).some((s) =>
      s.Effect === 'Allow' && s.Principal?.Service === 's3.amazonaws.com' && asArray(s.Action).includes('sqs:SendMessage')));
    const keyPolicy = resources[lid(stack.encryption.messagingKey)]!.Properties.KeyPolicy;
    assert.ok(asArray<Json>(keyPolicy.Statement).some((s) => s.Principal?.Service === 's3.amazonaws.com'));
  });

  test('each source queue redrives to its DLQ after 3 receives; visibility timeout >= 6x the function timeout', () => {
    const p = stack.pipeline;
    for (const [q, dlq, fnTimeout] of [[p.ingestQueue, p.ingestDlq, SEGMENT_TIMEOUT.toSeconds()], [p.scoreQueue, p.scoreDlq, 60]] as const) {
      const r = resources[lid(q)]!;
      assert.deepEqual(r.Properties.RedrivePolicy, { deadLetterTargetArn: { 'Fn::GetAtt': [lid(dlq), 'Arn'] }, maxReceiveCount: 3 });
      assert.ok(r.Properties.VisibilityTimeout >= 6 * fnTimeout, `${lid(q)} visibility ${r.Properties.VisibilityTimeout}`);
      assert.equal(resources[lid(dlq)]!.Properties.RedrivePolicy, undefined);
      assert.equal(resources[lid(dlq)]!.Properties.MessageRetentionPeriod, 14 * 24 * 3600);
    }
  });

  test('SQS event sources report partial batch failures, with bounded batch size and concurrency', () => {
    const p = stack.pipeline;
    const esms = ofType('AWS::Lambda::EventSourceMapping');
    assert.equal(esms.length, 2);
    const find = (fn: string): Json => esms.find(([, e]) => e.Properties.FunctionName.Ref === fn)![1].Properties;
    const seg = find(lid(p.segmentFunction));
    assert.deepEqual(seg.EventSourceArn, { 'Fn::GetAtt': [lid(p.ingestQueue), 'Arn'] });
    assert.deepEqual(seg.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.ok(seg.BatchSize >= 1 && seg.BatchSize <= 5);
    assert.equal(seg.ScalingConfig.MaximumConcurrency, DEFAULT_CONFIG.segmentConcurrency);
    const score = find(lid(p.scoreFunction));
    assert.deepEqual(score.EventSourceArn, { 'Fn::GetAtt': [lid(p.scoreQueue), 'Arn'] });
    assert.deepEqual(score.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.equal(score.ScalingConfig.MaximumConcurrency, DEFAULT_CONFIG.scoreConcurrency);
  });

  test('the functions wait for their policies (Lambda checks SQS permissions when it creates the mapping)', () => {
    const p = stack.pipeline;
    for (const [fn, policy] of [[p.segmentFunction, p.segmentPolicy], [p.scoreFunction, p.scorePolicy]] as const) {
      for (const [, e] of ofType('AWS::Lambda::EventSourceMapping').filter(([, e]) => e.Properties.FunctionName.Ref === lid(fn))) {
        assert.ok(asArray(e.DependsOn).includes(lid(policy)), `mapping of ${lid(fn)} depends on ${lid(policy)}`);
      }
      assert.ok(asArray(resources[lid(fn)]!.DependsOn).includes(lid(policy)));
    }
  });
});

describe('functions', () => {
  test('segment: container image from functions/segment/Dockerfile, x86_64, 3008 MB, 120 s, traced, reserved concurrency', () => {
    const f = resources[lid(stack.pipeline.segmentFunction)]!.Properties;
    assert.equal(f.PackageType, 'Image');
    assert.deepEqual(f.Architectures, ['x86_64']);
    assert.equal(f.MemorySize, 3008);
    assert.equal(f.Timeout, 120);
    assert.deepEqual(f.TracingConfig, { Mode: 'Active' });
    assert.equal(f.ReservedConcurrentExecutions, DEFAULT_CONFIG.segmentConcurrency);
    const env = f.Environment.Variables;
    assert.deepEqual(env.RESULTS_BUCKET, { Ref: lid(stack.storage.resultsBucket) });
    assert.deepEqual(env.SCORE_QUEUE_URL, { Ref: lid(stack.pipeline.scoreQueue) });
    assert.deepEqual(env.IDEMPOTENCY_TABLE, { Ref: lid(stack.storage.idempotencyTable) });
    assert.deepEqual(env.PSEUDONYM_SECRET_ARN, { Ref: lid(stack.storage.pseudonymSecret) });
    assert.equal(env.MODEL_MANIFEST, '/var/task/models/cxr-unet-r18-int8.json');
    assert.equal(env.KEEP_SOURCE_KEYS, 'false', 'results keep no file names unless the deployer sets keepSourceKeys');
    assert.equal(env.DICOM_IDENTITY, 'off', 'seg.dcm/sr.dcm carry no patient or study unless the deployer sets dicomIdentity');
    assert.equal(env.POWERTOOLS_SERVICE_NAME, 'cxr-opacity-segment');
    assert.equal(env.POWERTOOLS_METRICS_NAMESPACE, 'CxrOpacity');
    assert.equal(env.POWERTOOLS_LOG_LEVEL, 'INFO');

    const assets = JSON.parse(readFileSync(join(outdir, `${STACK_NAME}.assets.json`), 'utf8')) as { dockerImages: Record<string, Json> };
    const images = Object.values(assets.dockerImages).filter((a) => a.displayName === 'Pipeline/SegmentFunction/AssetImage');
    assert.equal(images.length, 1);
    assert.equal(images[0]!.source.dockerFile, 'functions/segment/Dockerfile');
    assert.equal(images[0]!.source.platform, 'linux/amd64');
    // The staged build context holds what the Dockerfile copies and nothing heavy or private.
    const ctx = join(outdir, images[0]!.source.directory as string);
    for (const p of ['package.json', 'package-lock.json', 'functions/segment/handler.ts', 'src', 'layers/onnx/session.ts']) {
      assert.ok(existsSync(join(ctx, p)), `${p} in the image build context`);
    }
    for (const p of ['node_modules', '.git', 'cdk.out', 'models/training', 'test', 'out']) {
      assert.ok(!existsSync(join(ctx, p)), `${p} not in the image build context`);
    }
  });

  test('score: Node.js 22 on arm64, 1024 MB, 60 s, one small bundle with no imaging or DICOM code', () => {
    const f = resources[lid(stack.pipeline.scoreFunction)]!.Properties;
    assert.equal(f.Runtime, 'nodejs22.x');
    assert.deepEqual(f.Architectures, ['arm64']);
    assert.equal(f.MemorySize, 1024);
    assert.equal(f.Timeout, 60);
    assert.equal(f.Handler, 'index.handler');
    assert.deepEqual(f.TracingConfig, { Mode: 'Active' });
    const env = f.Environment.Variables;
    assert.deepEqual(env.RESULTS_TABLE, { Ref: lid(stack.storage.resultsTable) });
    assert.deepEqual(env.RESULTS_BUCKET, { Ref: lid(stack.storage.resultsBucket) });
    assert.deepEqual(env.IDEMPOTENCY_TABLE, { Ref: lid(stack.storage.idempotencyTable) });
    assert.equal(env.POWERTOOLS_SERVICE_NAME, 'cxr-opacity-score');
    assert.equal(env.POWERTOOLS_METRICS_NAMESPACE, 'CxrOpacity');

    const assets = JSON.parse(readFileSync(join(outdir, `${STACK_NAME}.assets.json`), 'utf8')) as { files: Record<string, Json> };
    const code = Object.values(assets.files).find((a) => a.displayName === 'Pipeline/ScoreFunction/Code')!;
    const dir = join(outdir, code.source.path as string);
    assert.ok(existsSync(join(dir, 'index.js')) && existsSync(join(dir, 'index.js.map')));
    assert.ok(!existsSync(join(dir, 'node_modules')), 'nothing installed next to the bundle');
    const bundle = readFileSync(join(dir, 'index.js'), 'utf8');
    assert.doesNotMatch(bundle, /require\("sharp"\)|dcmjs|onnxruntime/, 'no imaging, DICOM or inference code');
    // Regression guard: was ~2 MB with sharp + dcmjs; 0.64 MB now, 0.45 MB of it zod (classic) via the message
    // schema and Powertools parser. Issue 12's 300 KB needs zod/mini there.
    assert.ok(bundle.length <= 700 * 1024, `score bundle is ${Math.round(bundle.length / 1024)} KB, over 700 KB`);
  });

  test('each function logs to its own encrypted log group with retention, as JSON', () => {
    const p = stack.pipeline;
    for (const fn of [p.segmentFunction, p.scoreFunction]) {
      const f = resources[lid(fn)]!.Properties;
      const group = f.LoggingConfig.LogGroup.Ref as string;
      assert.equal(f.LoggingConfig.LogFormat, 'JSON');
      assert.equal(resources[group]!.Type, 'AWS::Logs::LogGroup');
      assert.equal(resources[group]!.Properties.RetentionInDays, 365);
      assert.equal(resources[group]!.DeletionPolicy, 'Retain');
    }
  });
});

describe('data stores', () => {
  test('results table: imageId key, byPatient and byStudy GSIs in time order, on-demand, PITR, deletion protection, retained', () => {
    const r = resources[lid(stack.storage.resultsTable)]!;
    assert.equal(r.DeletionPolicy, 'Retain');
    const p = r.Properties;
    assert.deepEqual(p.KeySchema, [{ AttributeName: 'imageId', KeyType: 'HASH' }]);
    assert.equal(p.BillingMode, 'PAY_PER_REQUEST');
    assert.equal(p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled, true);
    assert.equal(p.DeletionProtectionEnabled, true);
    const gsis = Object.fromEntries((p.GlobalSecondaryIndexes as Json[]).map((g) => [g.IndexName, g]));
    assert.deepEqual(Object.keys(gsis).sort(), ['byPatient', 'byStudy']);
    assert.deepEqual(gsis.byPatient.KeySchema, [{ AttributeName: 'patientKey', KeyType: 'HASH' }, { AttributeName: 'sortKey', KeyType: 'RANGE' }]);
    assert.deepEqual(gsis.byStudy.KeySchema, [{ AttributeName: 'studyKey', KeyType: 'HASH' }, { AttributeName: 'sortKey', KeyType: 'RANGE' }]);
    assert.equal(gsis.byPatient.Projection.ProjectionType, 'ALL');
    const attrs = Object.fromEntries((p.AttributeDefinitions as Json[]).map((a) => [a.AttributeName, a.AttributeType]));
    assert.deepEqual(attrs, { imageId: 'S', patientKey: 'S', studyKey: 'S', sortKey: 'S' });
  });

  test('idempotency table: id key, TTL on expiration, on-demand, PITR', () => {
    const p = resources[lid(stack.storage.idempotencyTable)]!.Properties;
    assert.deepEqual(p.KeySchema, [{ AttributeName: 'id', KeyType: 'HASH' }]);
    assert.deepEqual(p.TimeToLiveSpecification, { AttributeName: 'expiration', Enabled: true });
    assert.equal(p.BillingMode, 'PAY_PER_REQUEST');
    assert.equal(p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled, true);
  });

  test('pseudonym secret: generated 64-character key, retained', () => {
    const r = resources[lid(stack.storage.pseudonymSecret)]!;
    assert.equal(r.DeletionPolicy, 'Retain');
    assert.equal(r.Properties.GenerateSecretString.PasswordLength, 64);
  });
});

describe('monitoring', () => {
  const alarms = (): Json[] => ofType('AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
  const topicRef = (): Json => ({ Ref: lid(stack.monitoring.topic) });

  test('each DLQ has an alarm on visible messages > 0 that notifies the topic', () => {
    for (const dlq of [stack.pipeline.ingestDlq, stack.pipeline.scoreDlq, stack.analytics.scheduleDlq, stack.batch!.deadLetterQueue]) {
      const a = alarms().find((x) => x.MetricName === 'ApproximateNumberOfMessagesVisible'
        && x.Dimensions?.[0]?.Value?.['Fn::GetAtt']?.[0] === lid(dlq));
      assert.ok(a, `alarm on ${lid(dlq)}`);
      assert.equal(a.Namespace, 'AWS/SQS');
      assert.equal(a.Threshold, 0);
      assert.equal(a.ComparisonOperator, 'GreaterThanThreshold');
      assert.deepEqual(a.AlarmActions, [topicRef()]);
      assert.deepEqual(a.OKActions, [topicRef()]);
    }
  });

  test('each function has an errors alarm; every alarm has an action', () => {
    const fns = [stack.pipeline.segmentFunction, stack.pipeline.scoreFunction, stack.api.apiFunction, stack.api.analyzeFunction,
      stack.batch!.routerFunction, stack.batch!.batchResultFunction];
    for (const fn of fns) {
      assert.ok(alarms().some((a) => a.MetricName === 'Errors' && a.Namespace === 'AWS/Lambda'
        && a.Dimensions?.[0]?.Value?.Ref === lid(fn)), `errors alarm on ${lid(fn)}`);
    }
    for (const [id, a] of ofType('AWS::CloudWatch::Alarm')) {
      if (id.startsWith('Monitoring')) assert.deepEqual(a.Properties.AlarmActions, [topicRef()], id);
      else assert.ok(asArray(a.Properties.AlarmActions).length > 0, `${id} has an action`);
    }
  });
});

describe('IAM least privilege', () => {
  /** Every statement of every identity policy in the template, with where it came from. */
  const statements = (): { from: string; s: Json }[] => {
    const out: { from: string; s: Json }[] = [];
    for (const [id, r] of Object.entries(resources)) {
      if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
        for (const s of asArray<Json>(r.Properties.PolicyDocument.Statement)) out.push({ from: id, s });
      }
      if (r.Type === 'AWS::IAM::Role') {
        for (const p of asArray<Json>(r.Properties.Policies)) for (const s of asArray<Json>(p.PolicyDocument.Statement)) out.push({ from: id, s });
      }
    }
    return out;
  };
  const policyStatements = (policy: { node: { defaultChild?: unknown } }): Json[] =>
    asArray<Json>(resources[lid(policy)]!.Properties.PolicyDocument.Statement);
  const actionsOf = (s: Json): string[] => asArray<string>(s.Action);

  test('no statement grants "*" or a whole-service wildcard action', () => {
    for (const { from, s } of statements()) {
      for (const a of actionsOf(s)) {
        assert.notEqual(a, '*', `${from}: Action "*"`);
        assert.ok(!/^[a-z0-9-]+:\*$/.test(a), `${from}: ${a}`);
      }
    }
  });

  test('our function policies use no wildcard actions at all and "*" resources only for X-Ray', () => {
    for (const policy of [stack.pipeline.segmentPolicy, stack.pipeline.scorePolicy]) {
      for (const s of policyStatements(policy)) {
        assert.equal(s.Effect, 'Allow');
        for (const a of actionsOf(s)) assert.ok(!a.includes('*'), `${s.Sid}: ${a}`);
        if (asArray(s.Resource).includes('*')) assert.deepEqual(actionsOf(s).sort(), ['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
      }
    }
  });

  test('the function roles carry only their one customer-managed policy (no AWS managed or inline policies)', () => {
    const p = stack.pipeline;
    for (const [role, policy] of [[p.segmentRole, p.segmentPolicy], [p.scoreRole, p.scorePolicy]] as const) {
      const r = resources[lid(role)]!.Properties;
      assert.equal(r.ManagedPolicyArns, undefined);
      assert.equal(r.Policies, undefined);
      assert.deepEqual(resources[lid(policy)]!.Properties.Roles, [{ Ref: lid(role) }]);
      assert.ok(!ofType('AWS::IAM::Policy').some(([, x]) => asArray<Json>(x.Properties.Roles).some((ref) => ref.Ref === lid(role))));
    }
  });

  test('segment: reads uploads/*, writes results/*, sends to the score queue, reads the secret; never touches the results table', () => {
    const st = policyStatements(stack.pipeline.segmentPolicy);
    const bySid = Object.fromEntries(st.map((s) => [s.Sid, s]));
    const uploads = lid(stack.storage.uploadsBucket);
    const results = lid(stack.storage.resultsBucket);
    assert.deepEqual(bySid.ReadUploads!.Action, 's3:GetObject');
    assert.deepEqual(bySid.ReadUploads!.Resource, [
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [uploads, 'Arn'] }, '/batch-images/*']] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [uploads, 'Arn'] }, '/uploads/*']] },
    ]);
    assert.deepEqual(bySid.WriteResults!.Action, 's3:PutObject');
    assert.deepEqual(bySid.WriteResults!.Resource, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [results, 'Arn'] }, '/results/*']] });
    assert.deepEqual(bySid.SendToScoreQueue!.Resource, { 'Fn::GetAtt': [lid(stack.pipeline.scoreQueue), 'Arn'] });
    assert.deepEqual(bySid.ReadPseudonymKey!.Resource, { Ref: lid(stack.storage.pseudonymSecret) });
    assert.deepEqual(bySid.ConsumeSourceQueue!.Resource, { 'Fn::GetAtt': [lid(stack.pipeline.ingestQueue), 'Arn'] });
    assert.deepEqual(bySid.IdempotencyRecords!.Resource, { 'Fn::GetAtt': [lid(stack.storage.idempotencyTable), 'Arn'] });
    const text = JSON.stringify(st);
    assert.ok(!text.includes(lid(stack.storage.resultsTable)), 'no access to the results table');
    assert.ok(!/s3:(Delete|List|PutBucket|GetBucket)/.test(text), 'no delete, list or bucket-level S3 actions');
  });

  test('score: results/* objects and GetItem/PutItem on the results table; no uploads, no secret, no sending', () => {
    const st = policyStatements(stack.pipeline.scorePolicy);
    const text = JSON.stringify(st);
    const bySid = Object.fromEntries(st.map((s) => [s.Sid, s]));
    assert.deepEqual(actionsOf(bySid.ResultItems!).sort(), ['dynamodb:GetItem', 'dynamodb:PutItem']);
    assert.deepEqual(bySid.ResultItems!.Resource, { 'Fn::GetAtt': [lid(stack.storage.resultsTable), 'Arn'] });
    assert.ok(!text.includes(lid(stack.storage.uploadsBucket)));
    assert.ok(!text.includes(lid(stack.storage.pseudonymSecret)));
    assert.ok(!text.includes('sqs:SendMessage'));
    assert.ok(!/dynamodb:(Scan|Query|DeleteItem|BatchWriteItem)"/.test(JSON.stringify(bySid.ResultItems)));
  });

  test('KMS: function roles may use only the two stack keys, without wildcard KMS actions', () => {
    for (const policy of [stack.pipeline.segmentPolicy, stack.pipeline.scorePolicy]) {
      const kmsStatements = policyStatements(policy).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      assert.equal(kmsStatements.length, 1);
      assert.deepEqual(kmsStatements[0]!.Resource, [
        { 'Fn::GetAtt': [lid(stack.encryption.key), 'Arn'] },
        { 'Fn::GetAtt': [lid(stack.encryption.messagingKey), 'Arn'] },
      ]);
    }
  });
});

describe('analyst exports (issue 5)', () => {
  test('a daily schedule calls DynamoDB ExportTableToPointInTime into the analytics bucket, KMS-encrypted, DynamoDB JSON', () => {
    const [, sched] = ofType('AWS::Scheduler::Schedule')[0]!;
    const p = sched.Properties;
    assert.equal(p.ScheduleExpression, 'cron(0 2 * * ? *)');
    assert.equal(p.ScheduleExpressionTimezone, 'Etc/UTC');
    assert.deepEqual(p.FlexibleTimeWindow, { Mode: 'OFF' });
    assert.deepEqual(p.Target.Arn, { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':scheduler:::aws-sdk:dynamodb:exportTableToPointInTime']] });
    assert.deepEqual(p.Target.RoleArn, { 'Fn::GetAtt': [lid(stack.analytics.schedulerRole), 'Arn'] });
    assert.deepEqual(p.Target.DeadLetterConfig.Arn, { 'Fn::GetAtt': [lid(stack.analytics.scheduleDlq), 'Arn'] });
    // Resolve the input's Fn::Join with placeholders to read it as JSON.
    const parts = p.Target.Input['Fn::Join'][1] as (string | Json)[];
    const input = JSON.parse(parts.map((x) => (typeof x === 'string' ? x : JSON.stringify(x).replace(/"/g, ''))).join('')) as Record<string, string>;
    assert.equal(input.ExportFormat, 'DYNAMODB_JSON');
    assert.equal(input.ExportType, 'FULL_EXPORT');
    assert.equal(input.S3SseAlgorithm, 'KMS');
    assert.equal(input.S3Prefix, 'exports/results/<aws.scheduler.scheduled-time>');
    assert.equal(input.TableArn, `{Fn::GetAtt:[${lid(stack.storage.resultsTable)},Arn]}`);
    assert.equal(input.S3Bucket, `{Ref:${lid(stack.analytics.bucket)}}`);
  });

  test('the scheduler role may export only the results table and write only under exports/results/', () => {
    const st = asArray<Json>(resources[lid(stack.analytics.schedulerPolicy)]!.Properties.PolicyDocument.Statement);
    const bySid = Object.fromEntries(st.map((s) => [s.Sid, s]));
    assert.deepEqual(bySid.ExportResultsTable!.Resource, { 'Fn::GetAtt': [lid(stack.storage.resultsTable), 'Arn'] });
    assert.deepEqual(bySid.WriteExport!.Resource, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [lid(stack.analytics.bucket), 'Arn'] }, '/exports/results/*']] });
    for (const s of st) for (const a of asArray<string>(s.Action)) assert.ok(!a.includes('*'), a);
    const role = resources[lid(stack.analytics.schedulerRole)]!.Properties;
    assert.equal(role.AssumeRolePolicyDocument.Statement[0].Principal.Service, 'scheduler.amazonaws.com');
    assert.ok(role.AssumeRolePolicyDocument.Statement[0].Condition.StringEquals['aws:SourceAccount']);
    assert.equal(role.Policies, undefined);
  });

  test('exports and Athena results expire after the retention window', () => {
    const rules = asArray<Json>(resources[lid(stack.analytics.bucket)]!.Properties.LifecycleConfiguration.Rules);
    for (const prefix of ['exports/results/', 'athena-results/']) {
      assert.ok(rules.some((r) => r.Prefix === prefix && r.ExpirationInDays === DEFAULT_CONFIG.exportRetentionDays), prefix);
    }
  });

  test('Glue table over the DynamoDB JSON exports, partitioned by snapshot with projection', () => {
    const [, db] = ofType('AWS::Glue::Database')[0]!;
    assert.equal(db.Properties.DatabaseInput.Name, 'cxr_opacity');
    const [, table] = ofType('AWS::Glue::Table')[0]!;
    const ti = table.Properties.TableInput;
    assert.equal(table.Properties.DatabaseName, 'cxr_opacity');
    assert.equal(ti.Name, 'results_export');
    assert.deepEqual(ti.PartitionKeys.map((k: Json) => k.Name), ['snapshot']);
    assert.equal(ti.Parameters['projection.enabled'], 'true');
    assert.equal(ti.Parameters['projection.snapshot.type'], 'date');
    assert.equal(ti.Parameters['projection.snapshot.format'], "yyyy-MM-dd'T'HH:mm:ss'Z'");
    assert.match(ti.Parameters['projection.snapshot.range'], /^2025-01-01T02:00:00Z,NOW$/);
    assert.match(JSON.stringify(ti.Parameters['storage.location.template']), /exports\/results\/\$\{snapshot\}\/AWSDynamoDB\//);
    const sd = ti.StorageDescriptor;
    assert.equal(sd.SerdeInfo.SerializationLibrary, 'org.openx.data.jsonserde.JsonSerDe');
    assert.equal(sd.Columns.length, 1);
    assert.equal(sd.Columns[0].Name, 'item');
    for (const attr of ['imageId:struct<s:string>', 'patientKey:struct<s:string>', 'sortKey:struct<s:string>', 'status:struct<s:string>',
      'errorCode:struct<s:string>', 'errorReason:struct<s:string>', 'grade:struct<s:string>', 'opacityPctTotal:struct<n:string>',
      'riskIcu:struct<n:string>', 'keys:struct<m:map<string,struct<s:string>>>', 'timingsMs:struct<m:map<string,struct<n:string>>>']) {
      assert.ok(sd.Columns[0].Type.includes(attr), attr);
    }
  });

  test('Athena workgroup: enforced settings, SSE-KMS results in the analytics bucket, scan limit', () => {
    const [, wg] = ofType('AWS::Athena::WorkGroup')[0]!;
    const c = wg.Properties.WorkGroupConfiguration;
    assert.equal(c.EnforceWorkGroupConfiguration, true);
    assert.equal(c.PublishCloudWatchMetricsEnabled, true);
    assert.ok(c.BytesScannedCutoffPerQuery > 0);
    assert.equal(c.ResultConfiguration.EncryptionConfiguration.EncryptionOption, 'SSE_KMS');
    assert.deepEqual(c.ResultConfiguration.EncryptionConfiguration.KmsKey, { 'Fn::GetAtt': [lid(stack.encryption.key), 'Arn'] });
    assert.match(JSON.stringify(c.ResultConfiguration.OutputLocation), /athena-results\//);
  });

  test('named queries: the files of analytics/queries (same names and text as npm run analytics) plus the results view', () => {
    const queries: Record<string, Json> = Object.fromEntries(ofType('AWS::Athena::NamedQuery').map(([, q]) => [q.Properties.Name as string, q.Properties as Json]));
    const files = readdirSync(join(__dirname, '..', 'analytics', 'queries')).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -4));
    assert.deepEqual(Object.keys(queries).sort(), ['create_results_view', ...files].sort());
    for (const name of files) {
      assert.equal(queries[name].QueryString, readFileSync(join(__dirname, '..', 'analytics', 'queries', `${name}.sql`), 'utf8'), `${name}: the file's text`);
      assert.match(queries[name].QueryString, /FROM results\b/);
    }
    for (const q of Object.values(queries)) {
      assert.equal(q.Database, 'cxr_opacity');
      assert.equal(q.WorkGroup, 'cxr-opacity');
      assert.ok(q.Description.length > 0 && q.Description.length <= 1024);
    }
    assert.match(queries.create_results_view.QueryString, /snapshot = \(SELECT MAX\(snapshot\) FROM results_export/, 'the view reads the newest export only');
  });

  test('the analyst policy is read-only on exports and scoped to the workgroup, database and table', () => {
    const st = asArray<Json>(resources[lid(stack.analytics.analystPolicy)]!.Properties.PolicyDocument.Statement);
    const text = JSON.stringify(st);
    for (const s of st) for (const a of asArray<string>(s.Action)) assert.ok(!a.includes('*'), a);
    assert.ok(!/dynamodb:|s3:DeleteObject|glue:(Create|Update|Delete)/.test(text));
    const bySid = Object.fromEntries(st.map((s) => [s.Sid, s]));
    assert.deepEqual(bySid.ReadExports!.Action, 's3:GetObject');
    assert.match(JSON.stringify(bySid.AthenaWorkGroup!.Resource), /workgroup\/cxr-opacity/);
  });
});

describe('outputs and settings', () => {
  test('outputs name the buckets, tables and queues', () => {
    const outputs = template.toJSON().Outputs as Record<string, Json>;
    for (const name of ['UploadsBucketName', 'ResultsBucketName', 'ResultsTableName', 'IngestQueueUrl', 'ScoreQueueUrl', 'AlarmTopicArn',
      'AnalyticsBucketName', 'AthenaWorkGroup', 'AnalystPolicyArn']) {
      assert.ok(outputs[name], `output ${name}`);
    }
    assert.deepEqual(outputs.UploadsBucketName!.Value, { Ref: lid(stack.storage.uploadsBucket) });
  });

  test('DICOM_IDENTITY (context dicomIdentity, default off) reaches every function that writes a SEG/SR: segment, analyze, SageMaker model', () => {
    const fnEnv = (f: { node: { defaultChild?: unknown } }) => resources[lid(f)]!.Properties.Environment.Variables;
    assert.equal(fnEnv(stack.pipeline.segmentFunction).DICOM_IDENTITY, 'off');
    assert.equal(fnEnv(stack.api.analyzeFunction).DICOM_IDENTITY, 'off');
    const models = ofType('AWS::SageMaker::Model');
    assert.equal(models.length, 1);
    assert.equal(models[0]![1].Properties.PrimaryContainer.Environment.DICOM_IDENTITY, 'off');
    // The functions that write no DICOM object do not get it.
    assert.equal(fnEnv(stack.pipeline.scoreFunction).DICOM_IDENTITY, undefined);
    assert.equal(fnEnv(stack.api.apiFunction).DICOM_IDENTITY, undefined);
  });

  test('context settings are validated', () => {
    const withContext = (context: Record<string, unknown>) => configFromContext(new App({ context }));
    assert.deepEqual(withContext({}), DEFAULT_CONFIG);
    assert.equal(withContext({ batch: 'false' }).batch, false);
    assert.throws(() => withContext({ batch: 'maybe' }), /batch/);
    assert.equal(withContext({ segmentConcurrency: '25' }).segmentConcurrency, 25);
    assert.equal(withContext({ alarmEmail: 'ops@example.org' }).alarmEmail, 'ops@example.org');
    assert.throws(() => withContext({ segmentBatchSize: 6 }), /segmentBatchSize/);
    assert.throws(() => withContext({ segmentConcurrency: 1 }), /segmentConcurrency/);
    assert.throws(() => withContext({ logRetentionDays: 'a year' }), /logRetentionDays/);
    assert.equal(withContext({ dicomIdentity: 'linked' }).dicomIdentity, 'linked');
    assert.equal(withContext({ dicomIdentity: 'Deidentified' }).dicomIdentity, 'deidentified');
    assert.throws(() => withContext({ dicomIdentity: 'on' }), /dicomIdentity.*off, linked, deidentified/);
  });

  test('log retention rounds up to a value CloudWatch Logs accepts', () => {
    assert.equal(retentionFor(365), 365);
    assert.equal(retentionFor(366), 400);
    assert.equal(retentionFor(2), 3);
    assert.equal(retentionFor(5000), 3653);
  });
});

describe('cdk/README states what the template deploys', () => {
  test('the number of alarms and the reserved concurrency in cdk/README equal the synthesized template\'s', () => {
    const readme = readFileSync(join(__dirname, '..', 'cdk', 'README.md'), 'utf8');
    const alarms = ofType('AWS::CloudWatch::Alarm').length;
    const reserved = ofType('AWS::Lambda::Function').reduce((s, [, r]) => s + (Number((r.Properties as Json).ReservedConcurrentExecutions) || 0), 0);
    const saidAlarms = /CloudWatch alarms \(~\$0\.10 each, (\d+) alarms\)/.exec(readme);
    const saidReserved = /the functions reserve (\d+) concurrent executions by default/.exec(readme);
    assert.ok(saidAlarms && saidReserved, 'cdk/README states the alarm count and the reserved concurrency');
    assert.equal(Number(saidAlarms[1]), alarms, `cdk/README says ${saidAlarms[1]} alarms, the template has ${alarms}`);
    assert.equal(Number(saidReserved[1]), reserved, `cdk/README says ${saidReserved[1]} reserved executions, the template reserves ${reserved}`);
  });
});
