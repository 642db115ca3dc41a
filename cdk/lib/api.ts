/**
 * The HTTP API (api/openapi.yaml): an API Gateway REST API with IAM (SigV4) authorisation on every
 * method, request validation, stage and per-method throttling, JSON access logs, X-Ray.
 *
 * Two Lambda functions run the same handler (functions/api/handler.ts, one Powertools router):
 *   - ApiFunction (NodejsFunction, arm64): uploads, upload status, images, patient listing. Its routes
 *     only touch S3 and DynamoDB, so it stays a small bundle with a fast cold start; the imaging natives
 *     (sharp, onnxruntime-node, dcmjs-codecs) are never loaded on these routes and are left out.
 *   - AnalyzeFunction (DockerImageFunction, x86_64, the segment image with CMD api.handler): POST /v1/analyze, which
 *     needs onnxruntime-node, sharp and the DICOM codecs plus the model — the segment image's layers.
 *     Making the whole API a container would give every status poll a multi-second image cold start and
 *     3 GB of memory it does not use; splitting by route keeps one codebase and sizes each function for its work.
 */
import * as path from 'node:path';
import { Duration, IgnoreMode, RemovalPolicy, Stack, Validations, type CfnResource } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct, type IConstruct } from 'constructs';
import { DEFAULT_MODEL_FILE } from '../../layers/onnx/model-files';
import { NodeFunction } from './bundling';
import { DICOM_IDENTITY_ENV, type IdentityMode } from '../../src/core/dicom-out/identity';
import { DEFAULT_MAX_INPUT_BYTES, S3_MAX_PUT_BYTES } from '../../src/limits';
import { RESULTS_PREFIX, UPLOAD_PREFIX } from '../../src/pipeline/storage-layout';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** API Gateway's integration timeout (29 s): both functions answer within it. */
const API_TIMEOUT = Duration.seconds(29);
export const API_STAGE = 'api';
/** Request bodies API Gateway hands to Lambda base64-encoded (POST /v1/analyze raw images). */
export const BINARY_MEDIA_TYPES = ['image/png', 'image/jpeg', 'application/dicom', 'application/octet-stream'];

export interface ApiThrottle {
  /** Steady-state requests per second for the stage (all methods). */
  readonly rateLimit: number;
  readonly burstLimit: number;
  /** POST /v1/analyze runs a model per request: its own, lower limits. */
  readonly analyzeRateLimit: number;
  readonly analyzeBurstLimit: number;
}

export const DEFAULT_API_THROTTLE: ApiThrottle = { rateLimit: 50, burstLimit: 100, analyzeRateLimit: 2, analyzeBurstLimit: 5 };

export interface ApiConstructProps {
  readonly uploadsBucket: s3.IBucket;
  readonly resultsBucket: s3.IBucket;
  readonly resultsTable: dynamodb.ITable;
  /** Encrypts the buckets and table (the functions sign URLs for SSE-KMS objects), log groups and environment. */
  readonly key: kms.IKey;
  readonly throttle?: ApiThrottle;
  readonly logRetention?: logs.RetentionDays;
  /** KEEP_SOURCE_KEYS: upload keys keep the file name and results show it (config keepSourceKeys; default false). */
  readonly keepSourceKeys?: boolean;
  /** DICOM_IDENTITY of the analyze function: identity of the SEG/SR it returns for DICOM inputs (config dicomIdentity; default off). */
  readonly dicomIdentity?: IdentityMode;
  /** MAX_INPUT_BYTES of the functions: the largest upload they sign (config maxInputBytes; default src/limits.ts). */
  readonly maxInputBytes?: number;
  /** The analyze function's image (default: functions/segment/Dockerfile, CMD api.handler). */
  readonly analyzeCode?: lambda.DockerImageCode;
  /** Reserved concurrency of the analyze function (default 4). */
  readonly analyzeConcurrency?: number;
}

export class ApiConstruct extends Construct {
  readonly api: apigw.RestApi;
  readonly apiFunction: nodejs.NodejsFunction;
  readonly analyzeFunction: lambda.DockerImageFunction;
  readonly accessLogs: logs.LogGroup;
  /** API Gateway's execution log group (ERROR level), made here so it has a retention and the key. */
  readonly executionLogs: logs.LogGroup;
  readonly apiRole: iam.Role;
  readonly analyzeRole: iam.Role;
  /** execute-api ARN of every method: grant `execute-api:Invoke` on it to the callers' roles. */
  readonly invokeArn: string;
  readonly apiPolicy: iam.ManagedPolicy;
  readonly analyzePolicy: iam.ManagedPolicy;
  readonly uploadsBucket: s3.IBucket;
  readonly resultsBucket: s3.IBucket;

  constructor(scope: Construct, id: string, props: ApiConstructProps) {
    super(scope, id);
    const { uploadsBucket, resultsBucket, resultsTable, key } = props;
    this.uploadsBucket = uploadsBucket;
    this.resultsBucket = resultsBucket;
    const throttle = props.throttle ?? DEFAULT_API_THROTTLE;
    const retention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;
    const logGroup = (logId: string) => new logs.LogGroup(this, logId, { retention, encryptionKey: key, removalPolicy: RemovalPolicy.RETAIN });

    // ---- roles: one customer-managed policy each, every statement on named resources ----
    const role = (roleId: string, description: string, statements: iam.PolicyStatement[]) => {
      const r = new iam.Role(this, roleId, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description });
      const policy = new iam.ManagedPolicy(this, `${roleId}Policy`, { description: `${description}: least privilege`, statements, roles: [r] });
      return { role: r, policy };
    };
    const logStatement = (lg: logs.ILogGroup) => new iam.PolicyStatement({
      sid: 'WriteOwnLogGroup', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [lg.logGroupArn],
    });
    // X-Ray accepts no resource-level permissions.
    const xray = () => new iam.PolicyStatement({ sid: 'XRayTraces', actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], resources: ['*'] });

    const apiLogs = logGroup('ApiFunctionLogs');
    const api = role('ApiRole', 'cxr-opacity API function', [
      logStatement(apiLogs),
      // Presigned URLs carry the signer's permissions: PUT of new uploads, GET of result objects.
      new iam.PolicyStatement({ sid: 'PresignUploads', actions: ['s3:PutObject'], resources: [uploadsBucket.arnForObjects(`${UPLOAD_PREFIX}*`)] }),
      new iam.PolicyStatement({
        sid: 'FindUploads', actions: ['s3:ListBucket'], resources: [uploadsBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${UPLOAD_PREFIX}*`] } },
      }),
      new iam.PolicyStatement({ sid: 'PresignResults', actions: ['s3:GetObject'], resources: [resultsBucket.arnForObjects(`${RESULTS_PREFIX}*`)] }),
      new iam.PolicyStatement({
        sid: 'ReadResults', actions: ['dynamodb:GetItem', 'dynamodb:Query'],
        resources: [resultsTable.tableArn, `${resultsTable.tableArn}/index/byPatient`],
      }),
      new iam.PolicyStatement({
        sid: 'UseKey', actions: ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'], resources: [key.keyArn],
      }),
      xray(),
    ]);
    this.apiRole = api.role;
    this.apiPolicy = api.policy;

    this.apiFunction = new NodeFunction(this, 'ApiFunction', {
      description: 'cxr-opacity HTTP API: uploads, upload status, images, patient listing',
      entry: 'functions/api/handler.ts',
      memorySize: 512,
      timeout: API_TIMEOUT,
      role: api.role.withoutPolicyUpdates(),
      logGroup: apiLogs,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      environmentEncryption: key,
      environment: {
        UPLOADS_BUCKET: uploadsBucket.bucketName,
        RESULTS_BUCKET: resultsBucket.bucketName,
        RESULTS_TABLE: resultsTable.tableName,
        KEEP_SOURCE_KEYS: String(props.keepSourceKeys ?? false),
        MAX_INPUT_BYTES: String(props.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES),
        POWERTOOLS_SERVICE_NAME: 'cxr-opacity-api',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      },
      // The analyze path's natives: required lazily and only on /v1/analyze, which API Gateway sends
      // to the AnalyzeFunction, so this function never loads them.
      bundle: { notLoaded: ['sharp', 'onnxruntime-node', 'dcmjs-codecs'] },
    });
    this.apiFunction.node.addDependency(api.policy);

    const analyzeLogs = logGroup('AnalyzeFunctionLogs');
    const analyze = role('AnalyzeRole', 'cxr-opacity API analyze function', [
      logStatement(analyzeLogs),
      new iam.PolicyStatement({ sid: 'UseKey', actions: ['kms:Decrypt', 'kms:DescribeKey'], resources: [key.keyArn] }),
      xray(),
    ]);
    this.analyzeRole = analyze.role;
    this.analyzePolicy = analyze.policy;
    this.analyzeFunction = new lambda.DockerImageFunction(this, 'AnalyzeFunction', {
      description: 'cxr-opacity HTTP API: POST /v1/analyze (synchronous, in memory, nothing stored)',
      // The segment image bundles the API handler too (dist/api.js): one image, one set of natives.
      code: props.analyzeCode ?? lambda.DockerImageCode.fromImageAsset(REPO_ROOT, {
        file: 'functions/segment/Dockerfile',
        cmd: ['api.handler'],
        platform: Platform.LINUX_AMD64,
        ignoreMode: IgnoreMode.DOCKER,
      }),
      architecture: lambda.Architecture.X86_64,
      memorySize: 3008,
      timeout: API_TIMEOUT,
      reservedConcurrentExecutions: props.analyzeConcurrency ?? 4,
      role: analyze.role.withoutPolicyUpdates(),
      logGroup: analyzeLogs,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      environmentEncryption: key,
      environment: {
        // The storage routes are not routed here, but the handler needs the names to start.
        UPLOADS_BUCKET: uploadsBucket.bucketName,
        RESULTS_BUCKET: resultsBucket.bucketName,
        RESULTS_TABLE: resultsTable.tableName,
        MODEL_MANIFEST: `/var/task/models/${DEFAULT_MODEL_FILE}`,
        [DICOM_IDENTITY_ENV]: props.dicomIdentity ?? 'off',
        POWERTOOLS_SERVICE_NAME: 'cxr-opacity-api',
        POWERTOOLS_LOG_LEVEL: 'INFO',
      },
    });
    this.analyzeFunction.node.addDependency(analyze.policy);

    // ---- the REST API ----
    this.accessLogs = logGroup('AccessLogs');
    this.api = new apigw.RestApi(this, 'RestApi', {
      restApiName: 'cxr-opacity',
      description: 'cxr-opacity HTTP API (api/openapi.yaml)',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      binaryMediaTypes: BINARY_MEDIA_TYPES,
      // Execution logging (ERROR level) needs API Gateway's account-wide CloudWatch role.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: API_STAGE,
        tracingEnabled: true,
        throttlingRateLimit: throttle.rateLimit,
        throttlingBurstLimit: throttle.burstLimit,
        // Errors only; data tracing (request/response bodies) stays off: bodies hold images and ids.
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        metricsEnabled: true,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        // The resource path (route template), never the request path: paths hold patient keys and image ids.
        accessLogFormat: apigw.AccessLogFormat.custom(JSON.stringify({
          requestId: '$context.requestId',
          extendedRequestId: '$context.extendedRequestId',
          requestTime: '$context.requestTime',
          httpMethod: '$context.httpMethod',
          resourcePath: '$context.resourcePath',
          status: '$context.status',
          responseLength: '$context.responseLength',
          integrationLatency: '$context.integrationLatency',
          integrationStatus: '$context.integration.status',
          errorType: '$context.error.responseType',
          caller: '$context.identity.caller',
          sourceIp: '$context.identity.sourceIp',
          xrayTraceId: '$context.xrayTraceId',
        })),
        methodOptions: {
          '/v1/analyze/POST': { throttlingRateLimit: throttle.analyzeRateLimit, throttlingBurstLimit: throttle.analyzeBurstLimit },
        },
      },
      defaultMethodOptions: { authorizationType: apigw.AuthorizationType.IAM },
    });

    // Error responses API Gateway writes itself (403 auth, 429 throttling, 413 body too large), in the API's shape.
    const gatewayError = (rid: string, type: apigw.ResponseType, code: string) => this.api.addGatewayResponse(rid, {
      type,
      templates: { 'application/json': JSON.stringify({ error: { code, message: '$context.error.messageString' } }) },
    });
    gatewayError('Default4xx', apigw.ResponseType.DEFAULT_4XX, 'REQUEST_REJECTED');
    gatewayError('Default5xx', apigw.ResponseType.DEFAULT_5XX, 'GATEWAY_ERROR');
    gatewayError('Throttled', apigw.ResponseType.THROTTLED, 'THROTTLED');
    gatewayError('AccessDenied', apigw.ResponseType.ACCESS_DENIED, 'FORBIDDEN');
    gatewayError('BadBody', apigw.ResponseType.BAD_REQUEST_BODY, 'VALIDATION_FAILED');
    gatewayError('BadParameters', apigw.ResponseType.BAD_REQUEST_PARAMETERS, 'VALIDATION_FAILED');

    const validator = new apigw.RequestValidator(this, 'Validator', {
      restApi: this.api, validateRequestBody: true, validateRequestParameters: true,
    });
    const uploadModel = this.api.addModel('UploadRequest', {
      contentType: 'application/json',
      modelName: 'UploadRequest',
      schema: {
        schema: apigw.JsonSchemaVersion.DRAFT4,
        type: apigw.JsonSchemaType.OBJECT,
        required: ['fileName', 'size'],
        additionalProperties: false,
        properties: {
          fileName: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 255 },
          // The deployment's cap is checked by the function, which answers 413 TOO_LARGE with the limit.
          size: { type: apigw.JsonSchemaType.INTEGER, minimum: 1, maximum: S3_MAX_PUT_BYTES },
          contentType: { type: apigw.JsonSchemaType.STRING, enum: BINARY_MEDIA_TYPES },
          patientId: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 128 },
          studyId: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 128 },
        },
      },
    });

    const light = new apigw.LambdaIntegration(this.apiFunction, { proxy: true, allowTestInvoke: false, timeout: API_TIMEOUT });
    const heavy = new apigw.LambdaIntegration(this.analyzeFunction, { proxy: true, allowTestInvoke: false, timeout: API_TIMEOUT });
    const withParams = (names: string[], query: string[] = []): apigw.MethodOptions => ({
      requestValidator: validator,
      requestParameters: {
        ...Object.fromEntries(names.map((n) => [`method.request.path.${n}`, true])),
        ...Object.fromEntries(query.map((n) => [`method.request.querystring.${n}`, false])),
      },
    });

    const v1 = this.api.root.addResource('v1');
    const uploads = v1.addResource('uploads');
    uploads.addMethod('POST', light, { requestValidator: validator, requestModels: { 'application/json': uploadModel } });
    uploads.addResource('{uploadId}').addMethod('GET', light, withParams(['uploadId']));
    v1.addResource('images').addResource('{imageId}').addMethod('GET', light, withParams(['imageId']));
    v1.addResource('patients').addResource('{patientKey}').addResource('images')
      .addMethod('GET', light, withParams(['patientKey'], ['limit', 'nextToken', 'order']));
    v1.addResource('analyze').addMethod('POST', heavy, { requestValidator: validator });

    // API Gateway writes execution logs to API-Gateway-Execution-Logs_<restApiId>/<stage>, and creates that
    // group itself (no retention, no key) unless it exists: create it first, with both.
    this.executionLogs = new logs.LogGroup(this, 'ExecutionLogs', {
      logGroupName: `API-Gateway-Execution-Logs_${this.api.restApiId}/${API_STAGE}`,
      retention, encryptionKey: key, removalPolicy: RemovalPolicy.RETAIN,
    });
    this.api.deploymentStage.node.addDependency(this.executionLogs);

    /** For callers' IAM policies: `execute-api:Invoke` on this resource covers every method of the API. */
    this.invokeArn = this.api.arnForExecuteApi('*', '/v1/*', API_STAGE);
  }
}

/** `<LogicalId.Arn>` as cdk-nag renders a resource's ARN in IAM5 finding ids. */
function arnRef(resource: IConstruct): string {
  const cfn = resource.node.defaultChild as CfnResource;
  return `<${Stack.of(resource).getLogicalId(cfn)}.Arn>`;
}

/** cdk-nag findings of this construct that are intended, each with its reason (the style of cdk/lib/nag.ts). */
export function apiNagAcknowledgements(api: ApiConstruct): { construct: IConstruct; id: string; reason: string }[] {
  const acks: { construct: IConstruct; id: string; reason: string }[] = [];
  const ack = (construct: IConstruct, id: string, reason: string) => { acks.push({ construct, id, reason }); };
  for (const policy of [api.apiPolicy, api.analyzePolicy]) {
    ack(policy, 'AwsSolutions-IAM5[Resource::*]',
      'xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions; the statement holds only these two actions.');
  }
  ack(api.apiPolicy, `AwsSolutions-IAM5[Resource::${arnRef(api.uploadsBucket)}/${UPLOAD_PREFIX}*]`,
    'The API presigns PUTs of new uploads under uploads/<uuid>/<name> (keys made per request): s3:PutObject under the uploads/ prefix only.');
  ack(api.apiPolicy, `AwsSolutions-IAM5[Resource::${arnRef(api.resultsBucket)}/${RESULTS_PREFIX}*]`,
    'The API presigns GETs of results/<imageId>/<file> (imageId known only at run time): s3:GetObject under the results/ prefix only.');
  ack(api.apiFunction, 'AwsSolutions-L1',
    'nodejs22.x on purpose: the same Node major as the segment/score functions and the analyze image (public.ecr.aws/lambda/nodejs:22), which share src/ code.');
  const stage = api.api.deploymentStage;
  ack(stage, 'AwsSolutions-APIG3',
    'Every method requires IAM (SigV4) authorisation, so unauthenticated traffic is refused before any integration; the stage is throttled. A WAF web ACL can be associated per deployment where policy asks for one.');
  ack(stage, 'HIPAA.Security-APIGWCacheEnabledAndEncrypted',
    'No stage cache on purpose: responses carry per-request presigned URLs and results that change while an image is processed; caching would serve stale or expired links.');
  ack(stage, 'HIPAA.Security-APIGWSSLEnabled',
    'A backend client certificate authenticates API Gateway to HTTP backends; the only integrations here are Lambda proxy integrations, invoked over AWS APIs with IAM. Clients reach the API over TLS only.');
  for (const m of api.api.methods) {
    ack(m, 'AwsSolutions-COG4',
      'Authorised with IAM (SigV4, authorizationType AWS_IAM) instead of a Cognito user pool: callers are AWS principals of the team\'s accounts (issue 5 allows IAM or Cognito).');
  }
  for (const fn of [api.apiFunction, api.analyzeFunction]) {
    ack(fn, 'HIPAA.Security-LambdaDLQ',
      'Invoked synchronously by API Gateway; a function DLQ applies only to asynchronous invocations. Errors go back to the caller as JSON.');
    ack(fn, 'HIPAA.Security-LambdaInsideVPC',
      'The function reaches only AWS APIs (S3, DynamoDB, X-Ray) over TLS with IAM auth and exposes no network endpoint; a VPC would add NAT or interface-endpoint cost without a network boundary to protect.');
  }
  ack(api.apiFunction, 'HIPAA.Security-LambdaConcurrency',
    'Bounded by the API stage throttling (rate and burst) rather than reserved concurrency, which would take capacity from the account pool for a function that answers in milliseconds.');
  const cwRole = api.api.node.tryFindChild('CloudWatchRole');
  if (cwRole) {
    ack(cwRole, 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      'API Gateway\'s account-level role for execution logs, created by CDK with the AWS managed policy that the service documents for it.');
  }
  return acks;
}

export function acknowledgeApiNagFindings(api: ApiConstruct): void {
  for (const a of apiNagAcknowledgements(api)) Validations.of(a.construct).acknowledge({ id: a.id, reason: a.reason });
}
