/**
 * Issue 10, template findings: retention of uploads and results, the batch model's network, the messaging
 * key's S3 statement, API Gateway's execution logs, the bucket-notification helper's logs, TLS 1.2 on the
 * access-logs bucket; and the size cap wired into the functions and the upload request model. Assertions on
 * the synthesised template (the app synthesised once, cdk-nag packs included: cdk.test.ts checks they pass).
 */
import { beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp, pinnedContext } from '../cdk/lib/app';
import { configFromContext, DEFAULT_CONFIG } from '../cdk/lib/config';
import { NOTIFICATIONS_HANDLER_ID, Storage } from '../cdk/lib/storage';
import type { CxrOpacityStack } from '../cdk/lib/stack';
import { DEFAULT_MAX_INPUT_BYTES, S3_MAX_PUT_BYTES } from '../src/limits';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let stack: CxrOpacityStack;
let resources: Record<string, Json>;
const lid = (c: { node: { defaultChild?: unknown } }): string => stack.getLogicalId(c.node.defaultChild as never);
const ofType = (type: string): [string, Json][] => Object.entries(resources).filter(([, r]) => r.Type === type);
const asArray = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
const text = (x: unknown) => JSON.stringify(x);

beforeAll(() => {
  ({ stack } = buildApp({ outdir: mkdtempSync(join(tmpdir(), 'cxr-cdk-findings-')) }));
  resources = Template.fromStack(stack).toJSON().Resources as Record<string, Json>;
});

describe('template findings (issue 10)', () => {
  test('uploads and results expire after the configured retention; non-current versions after theirs', () => {
    for (const [bucket, days] of [[stack.storage.uploadsBucket, DEFAULT_CONFIG.uploadRetentionDays], [stack.storage.resultsBucket, DEFAULT_CONFIG.resultRetentionDays]] as const) {
      const rules = asArray<Json>(resources[lid(bucket)]!.Properties.LifecycleConfiguration?.Rules);
      const rule = rules.find((r) => r.ExpirationInDays !== undefined);
      assert.ok(rule, `${bucket.node.id} has an expiration rule`);
      assert.equal(rule.ExpirationInDays, days);
      assert.equal(rule.Status, 'Enabled');
      assert.equal(rule.Prefix, undefined, 'the whole bucket, not one prefix');
      assert.equal(rule.NoncurrentVersionExpiration?.NoncurrentDays, DEFAULT_CONFIG.noncurrentVersionExpirationDays);
    }
    assert.ok(DEFAULT_CONFIG.uploadRetentionDays > 14, 'uploads outlive the 14-day dead-letter queues, so a redrive finds its image');
  });

  test('retention and the size cap are configurable through CDK context, and validated', () => {
    const app = new App({ context: { ...pinnedContext(), uploadRetentionDays: 45, resultRetentionDays: 700, maxInputBytes: 1048576 } });
    const s = new Stack(app, 'Ctx');
    const cfg = configFromContext(s);
    assert.deepEqual([cfg.uploadRetentionDays, cfg.resultRetentionDays, cfg.maxInputBytes], [45, 700, 1048576]);
    assert.throws(() => configFromContext(new Stack(new App({ context: { maxInputBytes: S3_MAX_PUT_BYTES + 1 } }), 'Big')), /maxInputBytes/);
    assert.throws(() => configFromContext(new Stack(new App({ context: { uploadRetentionDays: 0 } }), 'Zero')), /uploadRetentionDays/);
    const storage = new Storage(s, 'Storage', {
      key: new kms.Key(s, 'Key'), logRetentionDays: 30, noncurrentVersionExpirationDays: 90,
      uploadRetentionDays: cfg.uploadRetentionDays, resultRetentionDays: cfg.resultRetentionDays,
    });
    const r = Template.fromStack(s).toJSON().Resources as Record<string, Json>;
    const days = (b: { node: { defaultChild?: unknown } }) => asArray<Json>(r[s.getLogicalId(b.node.defaultChild as never)]!.Properties.LifecycleConfiguration.Rules)
      .find((x) => x.ExpirationInDays)?.ExpirationInDays;
    assert.equal(days(storage.uploadsBucket), 45);
    assert.equal(days(storage.resultsBucket), 700);
  });

  test('the SageMaker model runs in a VPC of isolated subnets with S3 and Secrets Manager endpoints only', () => {
    const batch = stack.batch!;
    const model = resources[stack.getLogicalId(batch.model)]!;
    const vpcConfig = model.Properties.VpcConfig;
    assert.ok(vpcConfig, 'VpcConfig set');
    assert.equal(asArray(vpcConfig.Subnets).length, 2);
    assert.deepEqual(vpcConfig.SecurityGroupIds, [{ 'Fn::GetAtt': [lid(batch.endpointSecurityGroup), 'GroupId'] }]);
    // No way out: no internet gateway, no NAT gateway, no public subnet.
    assert.deepEqual(ofType('AWS::EC2::InternetGateway'), []);
    assert.deepEqual(ofType('AWS::EC2::NatGateway'), []);
    for (const [, subnet] of ofType('AWS::EC2::Subnet')) assert.notEqual(subnet.Properties.MapPublicIpOnLaunch, true);
    const endpoints = ofType('AWS::EC2::VPCEndpoint').map(([, e]) => text(e.Properties.ServiceName));
    assert.equal(endpoints.length, 2);
    assert.ok(endpoints.some((s) => s.includes('.s3')), 'S3 gateway endpoint');
    assert.ok(endpoints.some((s) => s.includes('secretsmanager')), 'Secrets Manager interface endpoint');
    // The container's security group: egress HTTPS only, no ingress.
    const sg = resources[lid(batch.endpointSecurityGroup)]!;
    assert.deepEqual(asArray<Json>(sg.Properties.SecurityGroupEgress).map((e) => [e.IpProtocol, e.FromPort, e.ToPort]), [['tcp', 443, 443]]);
    assert.equal(sg.Properties.SecurityGroupIngress, undefined);
    // Flow logs on, to the access-logs bucket.
    const flow = ofType('AWS::EC2::FlowLog');
    assert.equal(flow.length, 1);
    assert.equal(flow[0]![1].Properties.LogDestinationType, 's3');
    assert.match(text(flow[0]![1].Properties.LogDestination), new RegExp(lid(stack.storage.accessLogsBucket)));
    // SageMaker may manage the network interfaces it needs in the VPC.
    assert.match(text(resources[lid(batch.sagemakerPolicy)]!.Properties.PolicyDocument), /ec2:CreateNetworkInterface/);
  });

  test('the messaging key lets S3 use it only for notifications of the uploads bucket, in this account', () => {
    const policy = resources[lid(stack.encryption.messagingKey)]!.Properties.KeyPolicy;
    const s3Statements = asArray<Json>(policy.Statement).filter((s) => text(s.Principal).includes('s3.amazonaws.com'));
    assert.equal(s3Statements.length, 1, text(s3Statements));
    const [s] = s3Statements;
    assert.deepEqual(asArray(s!.Action).sort(), ['kms:Decrypt', 'kms:GenerateDataKey*']);
    assert.deepEqual(s!.Condition.ArnLike['aws:SourceArn'], { 'Fn::GetAtt': [lid(stack.storage.uploadsBucket), 'Arn'] });
    assert.deepEqual(s!.Condition.StringEquals['aws:SourceAccount'], { Ref: 'AWS::AccountId' });
    // Every service principal on either key carries a condition.
    for (const key of [stack.encryption.key, stack.encryption.messagingKey]) {
      for (const st of asArray<Json>(resources[lid(key)]!.Properties.KeyPolicy.Statement)) {
        if (text(st.Principal).includes('Service')) assert.ok(st.Condition, `service statement ${st.Sid ?? ''} has a condition`);
      }
    }
  });

  test('API Gateway execution logs go to a log group of ours with retention and the key, made before the stage', () => {
    const api = stack.api;
    const lg = resources[lid(api.executionLogs)]!;
    assert.deepEqual(lg.Properties.LogGroupName, {
      'Fn::Join': ['', ['API-Gateway-Execution-Logs_', { Ref: lid(api.api) }, '/api']],
    });
    assert.ok(lg.Properties.RetentionInDays > 0);
    assert.deepEqual(lg.Properties.KmsKeyId, { 'Fn::GetAtt': [lid(stack.encryption.key), 'Arn'] });
    const stage = resources[lid(api.api.deploymentStage)]!;
    assert.ok(asArray(stage.DependsOn).includes(lid(api.executionLogs)), 'the stage waits for the log group');
    const access = resources[lid(api.accessLogs)]!;
    assert.ok(access.Properties.RetentionInDays > 0 && access.Properties.KmsKeyId, 'access logs: retention and key');
  });

  test('the bucket-notification helper logs to a log group with retention and the key', () => {
    const handler = stack.node.findChild(NOTIFICATIONS_HANDLER_ID).node.findChild('Resource') as never;
    const fn = resources[stack.getLogicalId(handler)]!;
    const ref = fn.Properties.LoggingConfig?.LogGroup;
    assert.ok(ref?.Ref, 'LoggingConfig.LogGroup names our log group');
    const lg = resources[ref.Ref]!;
    assert.equal(lg.Type, 'AWS::Logs::LogGroup');
    assert.ok(lg.Properties.RetentionInDays > 0);
    assert.ok(lg.Properties.KmsKeyId);
    // Every log group of the stack has a retention and a key.
    for (const [id, g] of ofType('AWS::Logs::LogGroup')) {
      assert.ok(g.Properties.RetentionInDays > 0, `${id} has a retention`);
      assert.ok(g.Properties.KmsKeyId, `${id} is encrypted with the key`);
    }
  });

  test('the access-logs bucket refuses TLS below 1.2', () => {
    const policy = ofType('AWS::S3::BucketPolicy').find(([, p]) => text(p.Properties.Bucket).includes(lid(stack.storage.accessLogsBucket)));
    assert.ok(policy);
    const deny = asArray<Json>(policy[1].Properties.PolicyDocument.Statement)
      .find((s) => s.Effect === 'Deny' && s.Condition?.NumericLessThan?.['s3:TlsVersion'] !== undefined);
    assert.ok(deny, 'a Deny on s3:TlsVersion < 1.2');
    assert.equal(String(deny.Condition.NumericLessThan['s3:TlsVersion']), '1.2');
  });

  test('the size cap reaches the segment function, the API and the serving container; the upload model requires size', () => {
    const env = (c: { node: { defaultChild?: unknown } }) => resources[lid(c)]!.Properties.Environment?.Variables ?? {};
    assert.equal(env(stack.pipeline.segmentFunction).MAX_INPUT_BYTES, String(DEFAULT_MAX_INPUT_BYTES));
    assert.equal(env(stack.api.apiFunction).MAX_INPUT_BYTES, String(DEFAULT_MAX_INPUT_BYTES));
    assert.equal(resources[stack.getLogicalId(stack.batch!.model)]!.Properties.PrimaryContainer.Environment.MAX_INPUT_BYTES, String(DEFAULT_MAX_INPUT_BYTES));
    const model = ofType('AWS::ApiGateway::Model').find(([, m]) => m.Properties.Name === 'UploadRequest')![1];
    assert.deepEqual(model.Properties.Schema.required, ['fileName', 'size']);
    assert.deepEqual(model.Properties.Schema.properties.size, { type: 'integer', minimum: 1, maximum: S3_MAX_PUT_BYTES });
  });
});
