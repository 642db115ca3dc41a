/**
 * Template test of the API construct (cdk/lib/api.ts) in a test stack with stand-in buckets, table and
 * key: IAM authorisation on every method, request validation, throttling, access logs, the two
 * functions, and the resource tree matching api/openapi.yaml.
 */
import { beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack, type PolicyValidationPluginReport } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { API_STAGE, ApiConstruct, acknowledgeApiNagFindings, DEFAULT_API_THROTTLE } from '../cdk/lib/api';
import { nagPacks, pinnedContext } from '../cdk/lib/app';

/** Paths and methods of api/openapi.yaml (read by indentation: two-space path keys, four-space methods). */
function openApiOperations(): string[] {
  const ops: string[] = [];
  let current: string | undefined;
  for (const line of readFileSync(join(__dirname, '..', 'api', 'openapi.yaml'), 'utf8').split('\n')) {
    const p = /^ {2}(\/\S+):\s*$/.exec(line);
    if (p) { current = p[1]; continue; }
    if (/^\S/.test(line)) current = undefined;
    const m = /^ {4}(get|post|put|delete|patch):\s*$/.exec(line);
    if (current && m) ops.push(`${m[1].toUpperCase()} ${current}`);
  }
  return ops.sort();
}

describe('ApiConstruct (API Gateway REST + Lambda)', () => {
  let template: Template;
  let stack: Stack;
  let construct: ApiConstruct;
  let nagReports: PolicyValidationPluginReport[];

  beforeAll(() => {
    const app = new App({ context: pinnedContext() });
    stack = new Stack(app, 'ApiTest', { env: { account: '123456789012', region: 'eu-west-1' } });
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const bucket = (id: string) => new s3.Bucket(stack, id, { encryption: s3.BucketEncryption.KMS, encryptionKey: key, enforceSSL: true });
    const table = new dynamodb.Table(stack, 'Results', {
      partitionKey: { name: 'imageId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    });
    table.addGlobalSecondaryIndex({
      indexName: 'byPatient',
      partitionKey: { name: 'patientKey', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sortKey', type: dynamodb.AttributeType.STRING },
    });
    construct = new ApiConstruct(stack, 'Api', {
      uploadsBucket: bucket('Uploads'), resultsBucket: bucket('ResultsBucket'), resultsTable: table, key,
      // A stand-in image keeps the test free of Docker and of asset staging; the default builds functions/segment/Dockerfile with CMD api.handler.
      analyzeCode: lambda.DockerImageCode.fromEcr(ecr.Repository.fromRepositoryName(stack, 'Repo', 'cxr-opacity-api'), { tagOrDigest: 'test' }),
    });
    acknowledgeApiNagFindings(construct);
    template = Template.fromStack(stack);
    nagReports = nagPacks(app).map((p) => p.validateScope(app));
  });

  test('every method requires AWS_IAM (SigV4) authorisation', () => {
    const methods = template.findResources('AWS::ApiGateway::Method');
    const list = Object.values(methods);
    assert.equal(list.length, 5);
    for (const m of list) assert.equal(m.Properties.AuthorizationType, 'AWS_IAM');
  });

  test('resources and methods are exactly those of api/openapi.yaml', () => {
    const resources = template.findResources('AWS::ApiGateway::Resource');
    const byId = new Map(Object.entries(resources).map(([id, r]) => [id, r.Properties as { ParentId: unknown; PathPart: string }]));
    const pathOf = (ref: unknown): string => {
      const id = (ref as { Ref?: string }).Ref;
      const r = id ? byId.get(id) : undefined;
      return r ? `${pathOf(r.ParentId)}/${r.PathPart}` : '';
    };
    const ops = Object.values(template.findResources('AWS::ApiGateway::Method'))
      .map((m) => `${m.Properties.HttpMethod} ${pathOf(m.Properties.ResourceId)}`).sort();
    assert.deepEqual(ops, openApiOperations());
  });

  test('stage: throttling (stage-wide and stricter for analyze), access logs to a log group, tracing, no data trace', () => {
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: API_STAGE,
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('resourcePath') },
      MethodSettings: Match.arrayWith([
        Match.objectLike({ HttpMethod: '*', ResourcePath: '/*', ThrottlingRateLimit: DEFAULT_API_THROTTLE.rateLimit, ThrottlingBurstLimit: DEFAULT_API_THROTTLE.burstLimit, DataTraceEnabled: false }),
        Match.objectLike({ HttpMethod: 'POST', ResourcePath: '/~1v1~1analyze', ThrottlingRateLimit: DEFAULT_API_THROTTLE.analyzeRateLimit }),
      ]),
    });
    const stage = Object.values(template.findResources('AWS::ApiGateway::Stage'))[0];
    const dest = JSON.stringify(stage.Properties.AccessLogSetting.DestinationArn);
    const logGroupId = stack.getLogicalId(construct.accessLogs.node.defaultChild as never);
    assert.ok(dest.includes(logGroupId), 'access logs go to the construct\'s log group');
    assert.doesNotMatch(stage.Properties.AccessLogSetting.Format, /\$context\.path/, 'request paths (patient keys) are not logged');
    template.hasResourceProperties('AWS::Logs::LogGroup', { KmsKeyId: Match.anyValue(), RetentionInDays: Match.anyValue() });
  });

  test('request validation: body model on POST /v1/uploads, required path parameters', () => {
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      ContentType: 'application/json',
      Schema: Match.objectLike({ required: ['fileName', 'size'], additionalProperties: false }),
    });
    template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'GET', RequestParameters: { 'method.request.path.imageId': true }, RequestValidatorId: Match.anyValue(),
    });
    template.hasResourceProperties('AWS::ApiGateway::RestApi', { BinaryMediaTypes: Match.arrayWith(['image/png', 'application/dicom']) });
  });

  test('functions: Node 22 arm64 bundle for the storage routes, x86_64 container image for /v1/analyze', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x', Architectures: ['arm64'], TracingConfig: { Mode: 'Active' },
      Environment: { Variables: Match.objectLike({ UPLOADS_BUCKET: Match.anyValue(), RESULTS_TABLE: Match.anyValue() }) },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      PackageType: 'Image', Architectures: ['x86_64'], MemorySize: 3008,
      Environment: { Variables: Match.objectLike({ MODEL_MANIFEST: '/var/task/models/cxr-unet-r18-int8.json' }) },
    });
    // The analyze role touches no data; the API role reads results and presigns, and writes nothing to the table.
    const policies = JSON.stringify(template.findResources('AWS::IAM::ManagedPolicy'));
    assert.doesNotMatch(policies, /dynamodb:PutItem|dynamodb:Scan|s3:DeleteObject|"\*"\]?,"Effect":"Allow","Resource":"\*"/);
    assert.match(construct.invokeArn, /execute-api/);
  });

  test('cdk-nag (AwsSolutions, HIPAA Security): no unacknowledged finding in the construct', () => {
    assert.equal(nagReports.length, 2);
    const lines = nagReports.flatMap((r) => r.violations.flatMap((v) => v.violatingResources
      .filter((res) => res.constructPath?.startsWith('ApiTest/Api/'))
      .map((res) => `${v.ruleName}: ${res.constructPath}`)));
    assert.deepEqual(lines, [], lines.join('\n'));
  });
});
