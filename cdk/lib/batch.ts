/**
 * Large batches on a GPU SageMaker asynchronous inference endpoint that scales to zero when idle.
 *
 *   uploads bucket  batches/<manifest>.json|.csv --(S3 notification, wired by the stack)--> router Lambda
 *   router -> ingest queue (small batches: the Lambda path)   or
 *          -> results bucket batches/requests/<batchId>/<imageId>.json + InvokeEndpointAsync (large batches)
 *   endpoint (functions/sagemaker serving container) -> masks in results/, StageMessage in batches/outputs/
 *   SNS success / error topics -> batch-result Lambda -> score queue (the same score function as the Lambda path)
 *
 * Scaling: Application Auto Scaling on the variant's instance count, MinCapacity 0; target tracking on
 * ApproximateBacklogSizePerInstance, and a step policy on HasBacklogWithoutCapacity to start the first
 * instance when requests wait and no instance runs (target tracking cannot scale out from zero), and one
 * back to exactly zero after a few idle minutes (scaleInToZeroWhenIdle), also right after the deploy.
 *
 * IAM follows the pipeline's pattern: one role per principal with one customer-managed policy written out
 * statement by statement; `batchNagAcknowledgements` lists the intended cdk-nag findings with reasons.
 */
import * as path from 'node:path';
import { Aws, Duration, IgnoreMode, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import { DICOM_IDENTITY_ENV, type IdentityMode } from '../../src/core/dicom-out/identity';
import { DEFAULT_MAX_INPUT_BYTES } from '../../src/limits';
import { NodeFunction } from './bundling';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** Prefix of batch manifests in the uploads bucket: the stack sends ObjectCreated there to `routerFunction`. */
export {
  BATCH_FAILURES_PREFIX, BATCH_IMAGE_PREFIX, BATCH_MANIFEST_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX,
} from '../../src/pipeline/storage-layout';
import {
  BATCH_FAILURES_PREFIX, BATCH_IMAGE_PREFIX, BATCH_MANIFEST_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX,
  RESULTS_PREFIX,
} from '../../src/pipeline/storage-layout';
const VARIANT = 'AllTraffic';

export interface BatchInferenceProps {
  readonly uploadsBucket: s3.IBucket;
  readonly resultsBucket: s3.IBucket;
  /** Data key: buckets, secret, async output, logs, environment. */
  readonly key: kms.IKey;
  /** Key of queues and topics (default: `key`). */
  readonly messagingKey?: kms.IKey;
  /** The segment function's queue (Lambda path). */
  readonly ingestQueue: sqs.IQueue;
  /** The score function's queue: both paths end there. */
  readonly scoreQueue: sqs.IQueue;
  readonly pseudonymSecret: secretsmanager.ISecret;
  /** Default ml.g4dn.xlarge (NVIDIA T4). */
  readonly instanceType?: string;
  /** Default 2. */
  readonly maxInstances?: number;
  /** Requests SageMaker hands one instance at once (default 4). */
  readonly maxConcurrentInvocationsPerInstance?: number;
  /** Target of ApproximateBacklogSizePerInstance (default 8). */
  readonly backlogPerInstanceTarget?: number;
  /** Minutes without any queued or running request before the endpoint goes back to zero instances (default 5). */
  readonly idleMinutesBeforeZero?: number;
  /** Router thresholds (defaults 50 images, 500 queued messages). */
  readonly batchThreshold?: number;
  readonly backlogThreshold?: number;
  /** Prefixes of the uploads bucket batch images may use (default [BATCH_IMAGE_PREFIX]). */
  readonly imagePrefixes?: string[];
  /** Build the GPU image (CUDA runtime base + onnxruntime CUDA provider). Default true; false builds the CPU image. */
  readonly gpu?: boolean;
  /** Model manifest inside the image (default /app/models/cxr-unet-r18.json). */
  readonly modelManifest?: string;
  /** Reserved concurrency of the router (default 2: batches are few, each invocation works through one) and of batch-result (default 10). */
  readonly routerConcurrency?: number;
  readonly batchResultConcurrency?: number;
  /** Log retention of the two functions (default one year). */
  readonly logRetention?: logs.RetentionDays;
  /** KEEP_SOURCE_KEYS for the router and the serving container (config keepSourceKeys; default false). */
  readonly keepSourceKeys?: boolean;
  /** DICOM_IDENTITY of the serving container: identity of seg.dcm / sr.dcm (config dicomIdentity; default off). */
  readonly dicomIdentity?: IdentityMode;
  /** MAX_INPUT_BYTES of the serving container (config maxInputBytes; default src/limits.ts). */
  readonly maxInputBytes?: number;
  /** Bucket for the endpoint VPC's flow logs (the stack passes its access-logs bucket); without it they go to a log group. */
  readonly flowLogsBucket?: s3.IBucket;
}

export class BatchInferenceConstruct extends Construct {
  readonly routerFunction: nodejs.NodejsFunction;
  readonly batchResultFunction: nodejs.NodejsFunction;
  readonly routerRole: iam.Role;
  readonly routerPolicy: iam.ManagedPolicy;
  readonly batchResultRole: iam.Role;
  readonly batchResultPolicy: iam.ManagedPolicy;
  readonly sagemakerRole: iam.Role;
  readonly sagemakerPolicy: iam.ManagedPolicy;
  readonly image: ecrAssets.DockerImageAsset;
  readonly model: sagemaker.CfnModel;
  /** The serving container's network: isolated subnets (no route out), S3 and Secrets Manager through VPC endpoints. */
  readonly vpc: ec2.Vpc;
  readonly endpointSecurityGroup: ec2.SecurityGroup;
  readonly endpointConfig: sagemaker.CfnEndpointConfig;
  readonly endpoint: sagemaker.CfnEndpoint;
  readonly endpointName: string;
  readonly successTopic: sns.Topic;
  readonly errorTopic: sns.Topic;
  /** Failed asynchronous invocations of the two functions (after Lambda's retries). */
  readonly deadLetterQueue: sqs.Queue;
  readonly scalingTarget: appscaling.ScalableTarget;
  readonly hasBacklogWithoutCapacityAlarm: cloudwatch.Alarm;
  /** No request queued or in progress for idleMinutesBeforeZero minutes: back to zero instances. */
  readonly idleAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: BatchInferenceProps) {
    super(scope, id);
    const { uploadsBucket, resultsBucket, key, ingestQueue, scoreQueue, pseudonymSecret } = props;
    const messagingKey = props.messagingKey ?? key;
    const gpu = props.gpu ?? true;
    const instanceType = props.instanceType ?? 'ml.g4dn.xlarge';
    const maxConcurrent = props.maxConcurrentInvocationsPerInstance ?? 4;
    const imagePrefixes = props.imagePrefixes ?? [BATCH_IMAGE_PREFIX];
    const keys = messagingKey === key ? [key.keyArn] : [key.keyArn, messagingKey.keyArn];

    ({ successTopic: this.successTopic, errorTopic: this.errorTopic, deadLetterQueue: this.deadLetterQueue } = this.notifications(messagingKey));

    // ---- the serving container and the endpoint's execution role ----
    this.image = new ecrAssets.DockerImageAsset(this, 'ServingImage', {
      directory: REPO_ROOT,
      file: 'functions/sagemaker/Dockerfile',
      platform: ecrAssets.Platform.LINUX_AMD64,
      ignoreMode: IgnoreMode.DOCKER, // the root .dockerignore lets only package files, src/, layers/, functions/ and models/*.json|onnx through
      buildArgs: gpu ? { RUNTIME_BASE: 'nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04', ORT_INSTALL: 'cuda12' } : { ORT_INSTALL: 'skip' },
    });

    const sagemakerStatements = [
      new iam.PolicyStatement({
        sid: 'PullServingImage',
        actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
        resources: [this.image.repository.repositoryArn],
      }),
      new iam.PolicyStatement({ sid: 'EcrAuth', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
      new iam.PolicyStatement({
        sid: 'ReadBatchImages',
        actions: ['s3:GetObject'],
        resources: imagePrefixes.map((p) => uploadsBucket.arnForObjects(`${p}*`)),
      }),
      new iam.PolicyStatement({
        sid: 'ReadRequests',
        actions: ['s3:GetObject'],
        resources: [resultsBucket.arnForObjects(`${BATCH_REQUESTS_PREFIX}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'WriteMasksAndOutputs',
        actions: ['s3:PutObject'],
        resources: [RESULTS_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_FAILURES_PREFIX].map((p) => resultsBucket.arnForObjects(`${p}*`)),
      }),
      new iam.PolicyStatement({
        sid: 'ReadPseudonymKey',
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        resources: [pseudonymSecret.secretArn],
      }),
      new iam.PolicyStatement({
        sid: 'NotifyResults',
        actions: ['sns:Publish'],
        resources: [this.successTopic.topicArn, this.errorTopic.topicArn],
      }),
      new iam.PolicyStatement({
        sid: 'UseKeys',
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: keys,
      }),
      new iam.PolicyStatement({
        sid: 'EndpointLogs',
        actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
        resources: [`arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/*`],
      }),
      new iam.PolicyStatement({
        sid: 'EndpointMetrics',
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': ['/aws/sagemaker/Endpoints', 'AWS/SageMaker'] } },
      }),
    ];
    // ---- the serving container's network ----
    // Network isolation is not possible: the container itself reads the batch images and requests from S3,
    // writes the masks to S3 and reads the pseudonym secret. So it runs in a VPC whose isolated subnets have
    // no route out at all (no internet or NAT gateway): S3 through a gateway endpoint, Secrets Manager
    // through an interface endpoint, nothing else. SageMaker pulls the image and moves the async
    // requests, outputs and notifications through its own channel.
    this.vpc = new ec2.Vpc(this, 'EndpointVpc', {
      ipAddresses: ec2.IpAddresses.cidr('10.80.0.0/24'),
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'endpoint', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 26 }],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      // Nothing is attached to the default security group; closing it needs a custom-resource Lambda.
      restrictDefaultSecurityGroup: false,
    });
    this.vpc.addFlowLog('FlowLogs', { trafficType: ec2.FlowLogTrafficType.ALL, destination: flowLogDestination(this, props, key) });
    this.endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: this.vpc, allowAllOutbound: false,
      description: 'cxr-opacity serving container: HTTPS to the VPC endpoints only',
    });
    // The subnets have no route but to the VPC endpoints, so HTTPS "anywhere" reaches S3 and Secrets Manager only.
    this.endpointSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to the S3 gateway endpoint and the Secrets Manager endpoint');
    const secretsEndpoint = this.vpc.addInterfaceEndpoint('SecretsManagerEndpoint', {
      service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
      privateDnsEnabled: true,
      subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      // Not the whole VPC CIDR: only the serving container's security group may reach it (below).
      open: false,
    });
    secretsEndpoint.connections.allowFrom(this.endpointSecurityGroup, ec2.Port.tcp(443), 'HTTPS from the serving container');
    sagemakerStatements.push(new iam.PolicyStatement({
      sid: 'VpcNetworkInterfaces',
      actions: [
        'ec2:CreateNetworkInterface', 'ec2:CreateNetworkInterfacePermission', 'ec2:DeleteNetworkInterface',
        'ec2:DeleteNetworkInterfacePermission', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeVpcs',
        'ec2:DescribeDhcpOptions', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups',
      ],
      resources: ['*'],
    }));

    this.sagemakerRole = new iam.Role(this, 'EndpointRole', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: 'cxr-opacity batch inference endpoint (serving container and async notifications)',
    });
    this.sagemakerPolicy = new iam.ManagedPolicy(this, 'EndpointRolePolicy', {
      description: 'cxr-opacity batch inference endpoint: least privilege', statements: sagemakerStatements, roles: [this.sagemakerRole],
    });

    this.model = new sagemaker.CfnModel(this, 'Model', {
      executionRoleArn: this.sagemakerRole.roleArn,
      vpcConfig: {
        securityGroupIds: [this.endpointSecurityGroup.securityGroupId],
        subnets: this.vpc.isolatedSubnets.map((s) => s.subnetId),
      },
      primaryContainer: {
        image: this.image.imageUri,
        environment: {
          RESULTS_BUCKET: resultsBucket.bucketName,
          SOURCE_BUCKETS: uploadsBucket.bucketName,
          PSEUDONYM_SECRET_ARN: pseudonymSecret.secretArn,
          KEEP_SOURCE_KEYS: String(props.keepSourceKeys ?? false),
          [DICOM_IDENTITY_ENV]: props.dicomIdentity ?? 'off',
          MAX_INPUT_BYTES: String(props.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES),
          MODEL_MANIFEST: props.modelManifest ?? '/app/models/cxr-unet-r18.json',
          USE_CUDA: gpu ? '1' : '0',
          MAX_CONCURRENT: String(maxConcurrent),
          MAX_BATCH: gpu ? '8' : '1',
          AWS_REGION: Aws.REGION,
        },
      },
    });
    // SageMaker pulls the image with the role when it creates the model.
    this.model.node.addDependency(this.sagemakerPolicy);
    this.model.node.addDependency(secretsEndpoint);

    this.endpointConfig = new sagemaker.CfnEndpointConfig(this, 'EndpointConfig', {
      productionVariants: [{
        variantName: VARIANT,
        modelName: this.model.attrModelName,
        instanceType,
        initialInstanceCount: 1,
        initialVariantWeight: 1,
      }],
      // No KmsKeyId for the ML volume: g4dn/g5 instances have local NVMe instance storage, which SageMaker
      // encrypts with a hardware key and for which it refuses a KMS key. The async output is KMS-encrypted.
      asyncInferenceConfig: {
        clientConfig: { maxConcurrentInvocationsPerInstance: maxConcurrent },
        outputConfig: {
          s3OutputPath: resultsBucket.s3UrlForObject(BATCH_OUTPUTS_PREFIX),
          s3FailurePath: resultsBucket.s3UrlForObject(BATCH_FAILURES_PREFIX),
          kmsKeyId: key.keyArn,
          notificationConfig: { successTopic: this.successTopic.topicArn, errorTopic: this.errorTopic.topicArn },
        },
      },
    });
    this.endpoint = new sagemaker.CfnEndpoint(this, 'Endpoint', { endpointConfigName: this.endpointConfig.attrEndpointConfigName });
    this.endpointName = this.endpoint.attrEndpointName;

    ({ scalingTarget: this.scalingTarget, hasBacklogWithoutCapacityAlarm: this.hasBacklogWithoutCapacityAlarm, idleAlarm: this.idleAlarm } = this.scaling(props));

    // ---- the two functions ----
    const xray = () => new iam.PolicyStatement({ sid: 'XRayTraces', actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], resources: ['*'] });
    const useKeys = () => new iam.PolicyStatement({
      sid: 'UseKeys', actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'], resources: keys,
    });
    const logGroup = (lid: string) => new logs.LogGroup(this, lid, { retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR, encryptionKey: key });
    const writeLogs = (lg: logs.ILogGroup) => new iam.PolicyStatement({ sid: 'WriteLogs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [lg.logGroupArn] });
    const toDlq = () => new iam.PolicyStatement({ sid: 'DeadLetters', actions: ['sqs:SendMessage'], resources: [this.deadLetterQueue.queueArn] });
    const role = (rid: string, description: string, statements: iam.PolicyStatement[]) => {
      const r = new iam.Role(this, rid, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description });
      const p = new iam.ManagedPolicy(this, `${rid}Policy`, { description: `${description}: least privilege`, statements, roles: [r] });
      return { role: r, policy: p };
    };
    const fnDefaults = (lg: logs.ILogGroup, r: iam.Role) => ({
      role: r.withoutPolicyUpdates(),
      logGroup: lg,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      environmentEncryption: key,
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: 2,
      // Bundled by NodeFunction (cdk/lib/bundling.ts): the Node 22 runtime ships AWS SDK v3, including the
      // SageMaker runtime client.
    });

    const routerLogs = logGroup('RouterLogs');
    const router = role('RouterRole', 'cxr-opacity batch router', [
      writeLogs(routerLogs),
      new iam.PolicyStatement({
        sid: 'ReadManifestsAndImages',
        // GetObject also authorises HeadObject, which the router uses to check images and read their ETags.
        actions: ['s3:GetObject'],
        resources: [BATCH_MANIFEST_PREFIX, ...imagePrefixes].map((p) => uploadsBucket.arnForObjects(`${p}*`)),
      }),
      new iam.PolicyStatement({
        sid: 'RequestsAndStatus',
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX].map((p) => resultsBucket.arnForObjects(`${p}*`)),
      }),
      new iam.PolicyStatement({
        sid: 'IngestQueue',
        actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
        resources: [ingestQueue.queueArn],
      }),
      new iam.PolicyStatement({
        sid: 'InvokeEndpointAsync',
        actions: ['sagemaker:InvokeEndpointAsync'],
        resources: [this.endpoint.ref], // Ref of AWS::SageMaker::Endpoint is its ARN
      }),
      new iam.PolicyStatement({
        // Manifest patient/study ids are pseudonymised before the router writes or sends anything.
        sid: 'ReadPseudonymKey',
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        resources: [pseudonymSecret.secretArn],
      }),
      toDlq(), useKeys(), xray(),
    ]);
    this.routerRole = router.role;
    this.routerPolicy = router.policy;
    this.routerFunction = new NodeFunction(this, 'RouterFunction', {
      ...fnDefaults(routerLogs, router.role),
      description: 'cxr-opacity: route a batch manifest to the Lambda path or the SageMaker async endpoint',
      entry: 'functions/router/handler.ts',
      memorySize: 512,
      timeout: Duration.minutes(15),
      reservedConcurrentExecutions: props.routerConcurrency ?? 2,
      environment: {
        INGEST_QUEUE_URL: ingestQueue.queueUrl,
        ENDPOINT_NAME: this.endpointName,
        WORK_BUCKET: resultsBucket.bucketName,
        PSEUDONYM_SECRET_ARN: pseudonymSecret.secretArn,
        KEEP_SOURCE_KEYS: String(props.keepSourceKeys ?? false),
        IMAGE_PREFIXES: imagePrefixes.join(','),
        BATCH_THRESHOLD: String(props.batchThreshold ?? 50),
        BACKLOG_THRESHOLD: String(props.backlogThreshold ?? 500),
        POWERTOOLS_SERVICE_NAME: 'cxr-opacity-batch-router',
        POWERTOOLS_METRICS_NAMESPACE: 'CxrOpacity',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      },
    });
    this.routerFunction.node.addDependency(this.routerPolicy);

    const resultLogs = logGroup('BatchResultLogs');
    const result = role('BatchResultRole', 'cxr-opacity batch result hand-off', [
      writeLogs(resultLogs),
      new iam.PolicyStatement({
        sid: 'ReadAsyncOutputs',
        actions: ['s3:GetObject'],
        resources: [BATCH_OUTPUTS_PREFIX, BATCH_FAILURES_PREFIX, BATCH_REQUESTS_PREFIX].map((p) => resultsBucket.arnForObjects(`${p}*`)),
      }),
      new iam.PolicyStatement({ sid: 'SendToScoreQueue', actions: ['sqs:SendMessage'], resources: [scoreQueue.queueArn] }),
      toDlq(), useKeys(), xray(),
    ]);
    this.batchResultRole = result.role;
    this.batchResultPolicy = result.policy;
    this.batchResultFunction = new NodeFunction(this, 'BatchResultFunction', {
      ...fnDefaults(resultLogs, result.role),
      description: 'cxr-opacity: forward SageMaker async results (success or error) to the score queue',
      entry: 'functions/batch-result/handler.ts',
      memorySize: 256,
      timeout: Duration.seconds(30),
      // Throttled SNS deliveries wait in Lambda's asynchronous queue (up to 6 h) and are retried.
      reservedConcurrentExecutions: props.batchResultConcurrency ?? 10,
      environment: {
        SCORE_QUEUE_URL: scoreQueue.queueUrl,
        POWERTOOLS_SERVICE_NAME: 'cxr-opacity-batch-result',
        POWERTOOLS_METRICS_NAMESPACE: 'CxrOpacity',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      },
    });
    this.batchResultFunction.node.addDependency(this.batchResultPolicy);
    for (const t of [this.successTopic, this.errorTopic]) {
      t.addSubscription(new subs.LambdaSubscription(this.batchResultFunction, { deadLetterQueue: this.deadLetterQueue }));
    }
  }

  /** The endpoint's success and error topics and the functions' dead-letter queue, encrypted with the messaging key. */
  private notifications(messagingKey: kms.IKey): { successTopic: sns.Topic; errorTopic: sns.Topic; deadLetterQueue: sqs.Queue } {
    const topic = (tid: string, name: string) => new sns.Topic(this, tid, {
      displayName: `cxr-opacity batch inference ${name}`, masterKey: messagingKey, enforceSSL: true,
    });
    const successTopic = topic('SuccessTopic', 'success');
    const errorTopic = topic('ErrorTopic', 'error');
    const deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: messagingKey, enforceSSL: true, retentionPeriod: Duration.days(14),
    });

    // SNS moves undeliverable notifications to the (KMS-encrypted) dead-letter queue itself.
    messagingKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AllowSnsToBatchDeadLetterQueue',
      principals: [new iam.ServicePrincipal('sns.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: ['*'],
      // The topics' own ARNs would make a cycle (the topics are encrypted with this key): this account's topics.
      conditions: { ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:sns:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` } },
    }), true);
    return { successTopic, errorTopic, deadLetterQueue };
  }

  /**
   * 0..maxInstances instances: target tracking on the backlog per instance, a step out of zero when requests
   * wait with no instance, and back to zero when idle (scaleInToZeroWhenIdle).
   */
  private scaling(props: BatchInferenceProps): { scalingTarget: appscaling.ScalableTarget; hasBacklogWithoutCapacityAlarm: cloudwatch.Alarm; idleAlarm: cloudwatch.Alarm } {
    const scalingTarget = new appscaling.ScalableTarget(this, 'ScalingTarget', {
      serviceNamespace: appscaling.ServiceNamespace.SAGEMAKER,
      resourceId: `endpoint/${this.endpointName}/variant/${VARIANT}`,
      scalableDimension: 'sagemaker:variant:DesiredInstanceCount',
      minCapacity: 0,
      maxCapacity: props.maxInstances ?? 2,
    });
    scalingTarget.node.addDependency(this.endpoint);
    const endpointMetric = (metricName: string, statistic: string) => new cloudwatch.Metric({
      namespace: 'AWS/SageMaker', metricName, dimensionsMap: { EndpointName: this.endpointName }, statistic, period: Duration.minutes(1),
    });
    scalingTarget.scaleToTrackMetric('BacklogPerInstance', {
      targetValue: props.backlogPerInstanceTarget ?? 8,
      customMetric: endpointMetric('ApproximateBacklogSizePerInstance', 'Average'),
      scaleOutCooldown: Duration.minutes(2),
      scaleInCooldown: Duration.minutes(10),
    });
    const fromZero = new appscaling.StepScalingAction(this, 'ScaleOutFromZero', {
      scalingTarget: scalingTarget,
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
      cooldown: Duration.minutes(5),
    });
    fromZero.addAdjustment({ adjustment: 1, lowerBound: 0 });
    const hasBacklogWithoutCapacityAlarm = new cloudwatch.Alarm(this, 'HasBacklogWithoutCapacity', {
      alarmDescription: 'Requests wait on the batch endpoint and no instance runs: start one (scale out from zero)',
      metric: endpointMetric('HasBacklogWithoutCapacity', 'Maximum'),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    hasBacklogWithoutCapacityAlarm.addAlarmAction(new cwActions.ApplicationScalingAction(fromZero));
    const idleAlarm = this.scaleInToZeroWhenIdle(scalingTarget, endpointMetric, props.idleMinutesBeforeZero ?? 5);
    return { scalingTarget, hasBacklogWithoutCapacityAlarm, idleAlarm };
  }

  /**
   * Zero instances while no batch is there. SageMaker creates an endpoint with at least one instance
   * (CreateEndpointConfig: InitialInstanceCount >= 1) and target tracking alone scales in only after
   * 15 quiet minutes; so a step policy sets the count to exactly 0 once ApproximateBacklogSize (queued +
   * in progress) has been 0 for `idleMinutes`: right after the deploy, and after every batch. The first
   * request then finds no capacity and HasBacklogWithoutCapacity starts one instance (ScaleOutFromZero).
   */
  private scaleInToZeroWhenIdle(scalingTarget: appscaling.ScalableTarget, endpointMetric: (name: string, statistic: string) => cloudwatch.Metric, idleMinutes: number): cloudwatch.Alarm {
    const toZero = new appscaling.StepScalingAction(this, 'ScaleInToZero', {
      scalingTarget,
      adjustmentType: appscaling.AdjustmentType.EXACT_CAPACITY,
      metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
      cooldown: Duration.minutes(idleMinutes),
    });
    toZero.addAdjustment({ adjustment: 0, upperBound: 0 });
    const alarm = new cloudwatch.Alarm(this, 'IdleNoBacklog', {
      alarmDescription: `No request queued or in progress on the batch endpoint for ${idleMinutes} minutes: scale in to zero instances`,
      metric: endpointMetric('ApproximateBacklogSize', 'Maximum'),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: idleMinutes,
      datapointsToAlarm: idleMinutes,
      // An idle endpoint may publish nothing: no data is no backlog.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    alarm.addAlarmAction(new cwActions.ApplicationScalingAction(toZero));
    return alarm;
  }
}

export interface BatchNagAcknowledgement {
  readonly construct: IConstruct;
  readonly id: string;
  readonly reason: string;
}

/** The cdk-nag findings of this construct that are intended, each with its reason (apply with Validations.of(c).acknowledge). */
export function batchNagAcknowledgements(b: BatchInferenceConstruct, resultsBucket: s3.IBucket, uploadsBucket: s3.IBucket): BatchNagAcknowledgement[] {
  const acks: BatchNagAcknowledgement[] = [];
  const ack = (construct: IConstruct, id: string, reason: string) => acks.push({ construct, id, reason });
  const arnRef = (c: IConstruct) => `<${Stack.of(c).getLogicalId(c.node.defaultChild as never)}.Arn>`;
  const prefixes = (policy: iam.ManagedPolicy, bucket: s3.IBucket, list: string[], why: string) => {
    for (const p of list) ack(policy, `AwsSolutions-IAM5[Resource::${arnRef(bucket)}/${p}*]`, why);
  };
  for (const p of [b.routerPolicy, b.batchResultPolicy]) {
    ack(p, 'AwsSolutions-IAM5[Resource::*]', 'xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions; the statement holds only these two actions.');
  }
  ack(b.sagemakerPolicy, 'AwsSolutions-IAM5[Resource::*]',
    'ecr:GetAuthorizationToken, cloudwatch:PutMetricData and the ec2 network-interface actions SageMaker needs for VpcConfig support no resource-level permissions; PutMetricData is limited to the SageMaker namespaces by condition.');
  ack(b.sagemakerPolicy, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*]`,
    'SageMaker names the endpoint log group after the endpoint, which CloudFormation names at deploy time.');
  const objectKeys = 'Object keys hold ids known only at run time (batch id, image id, uploader-chosen names); access is limited to these prefixes and actions.';
  prefixes(b.sagemakerPolicy, uploadsBucket, [BATCH_IMAGE_PREFIX], objectKeys);
  prefixes(b.sagemakerPolicy, resultsBucket, [BATCH_REQUESTS_PREFIX, RESULTS_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_FAILURES_PREFIX], objectKeys);
  prefixes(b.routerPolicy, uploadsBucket, [BATCH_MANIFEST_PREFIX, BATCH_IMAGE_PREFIX], objectKeys);
  prefixes(b.routerPolicy, resultsBucket, [BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX], objectKeys);
  prefixes(b.batchResultPolicy, resultsBucket, [BATCH_OUTPUTS_PREFIX, BATCH_FAILURES_PREFIX, BATCH_REQUESTS_PREFIX], objectKeys);
  ack(b.deadLetterQueue, 'AwsSolutions-SQS3', 'This queue is itself the dead-letter queue of the batch functions and subscriptions.');
  for (const fn of [b.routerFunction, b.batchResultFunction]) {
    ack(fn, 'AwsSolutions-L1', 'nodejs22.x on purpose: the same Node major as the other functions and the serving container, which share src/ code.');
    ack(fn, 'HIPAA.Security-LambdaInsideVPC',
      'The function reaches only AWS APIs (S3, SQS, SageMaker runtime, X-Ray) over TLS with IAM auth and exposes no network endpoint.');
  }
  ack(b.vpc, 'HIPAA.Security-VPCDefaultSecurityGroupClosed',
    'Nothing in the endpoint VPC uses its default security group (the serving container has its own, HTTPS to the VPC endpoints only), and the subnets have no route out; closing it would add a custom-resource Lambda.');
  ack(b.endpointConfig, 'AwsSolutions-SM2',
    'GPU instances with local NVMe storage (ml.g4dn, ml.g5) refuse a volume KMS key; their instance storage is hardware-encrypted. Async outputs are KMS-encrypted (OutputConfig.KmsKeyId).');
  ack(b.endpointConfig, 'HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured',
    'GPU instances with local NVMe storage (ml.g4dn, ml.g5) refuse a volume KMS key; their instance storage is hardware-encrypted. Async outputs are KMS-encrypted (OutputConfig.KmsKeyId).');
  return acks;
}

/**
 * Where the endpoint VPC's flow logs go: the given bucket (no role needed), else a log group of ours, written
 * by a role with one customer-managed policy (CDK's default would be an inline policy).
 */
function flowLogDestination(scope: Construct, props: BatchInferenceProps, key: kms.IKey): ec2.FlowLogDestination {
  if (props.flowLogsBucket) return ec2.FlowLogDestination.toS3(props.flowLogsBucket, 'vpc-flow-logs/');
  const logGroup = new logs.LogGroup(scope, 'FlowLogGroup', { retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR, encryptionKey: key });
  const role = new iam.Role(scope, 'FlowLogRole', { assumedBy: new iam.ServicePrincipal('vpc-flow-logs.amazonaws.com'), description: 'cxr-opacity endpoint VPC flow logs' });
  new iam.ManagedPolicy(scope, 'FlowLogRolePolicy', {
    description: 'cxr-opacity endpoint VPC flow logs: write to their log group',
    roles: [role],
    statements: [new iam.PolicyStatement({
      sid: 'WriteFlowLogs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'], resources: [logGroup.logGroupArn],
    })],
  });
  return ec2.FlowLogDestination.toCloudWatchLogs(logGroup, role.withoutPolicyUpdates() as iam.IRole);
}
