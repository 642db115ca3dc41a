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
 *
 * The serving container image, its role, model, endpoint config and endpoint are built by batch-endpoint.ts, its
 * network (VPC, security group, VPC endpoints, flow logs) by batch-network.ts, in this construct's scope.
 */
import { Aws, Duration, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import type { IdentityMode } from '../../src/core/dicom-out/identity';
import { asyncEndpoint, endpointRole, servingImage, servingModel, VARIANT } from './batch-endpoint';
import { endpointNetwork } from './batch-network';
import { NodeFunction } from './bundling';

/** Prefix of batch manifests in the uploads bucket: the stack sends ObjectCreated there to `routerFunction`. */
export {
  BATCH_FAILURES_PREFIX, BATCH_IMAGE_PREFIX, BATCH_MANIFEST_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX,
} from '../../src/pipeline/storage-layout';
import {
  BATCH_FAILURES_PREFIX, BATCH_IMAGE_PREFIX, BATCH_MANIFEST_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_REQUESTS_PREFIX, BATCH_STATUS_PREFIX,
  RESULTS_PREFIX,
} from '../../src/pipeline/storage-layout';

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
  /** Model manifest inside the image (default: the default model, /app/models/cxr-unet-r18-int8.json; layers/onnx/model-files.ts). */
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
    const { uploadsBucket, resultsBucket, key, pseudonymSecret } = props;
    const messagingKey = props.messagingKey ?? key;
    const gpu = props.gpu ?? true;
    const maxConcurrent = props.maxConcurrentInvocationsPerInstance ?? 4;
    const imagePrefixes = props.imagePrefixes ?? [BATCH_IMAGE_PREFIX];
    const keyArns = messagingKey === key ? [key.keyArn] : [key.keyArn, messagingKey.keyArn];

    ({ successTopic: this.successTopic, errorTopic: this.errorTopic, deadLetterQueue: this.deadLetterQueue } = this.notifications(messagingKey));
    // The serving container, its network, the endpoint's execution role, the model and the endpoint (batch-endpoint.ts, batch-network.ts).
    this.image = servingImage(this, gpu);
    const network = endpointNetwork(this, { key, flowLogsBucket: props.flowLogsBucket, logRetention: props.logRetention });
    ({ vpc: this.vpc, securityGroup: this.endpointSecurityGroup } = network);
    ({ role: this.sagemakerRole, policy: this.sagemakerPolicy } = endpointRole(this, {
      image: this.image, uploadsBucket, resultsBucket, imagePrefixes, pseudonymSecret, successTopic: this.successTopic, errorTopic: this.errorTopic, keyArns,
    }));
    this.model = servingModel(this, {
      image: this.image, role: this.sagemakerRole, policy: this.sagemakerPolicy, network, uploadsBucket, resultsBucket, pseudonymSecret, gpu, maxConcurrent,
      keepSourceKeys: props.keepSourceKeys, dicomIdentity: props.dicomIdentity, maxInputBytes: props.maxInputBytes, modelManifest: props.modelManifest,
    });
    ({ endpointConfig: this.endpointConfig, endpoint: this.endpoint } = asyncEndpoint(this, {
      model: this.model, instanceType: props.instanceType ?? 'ml.g4dn.xlarge', maxConcurrent, resultsBucket, key,
      successTopic: this.successTopic, errorTopic: this.errorTopic,
    }));
    this.endpointName = this.endpoint.attrEndpointName;

    ({ scalingTarget: this.scalingTarget, hasBacklogWithoutCapacityAlarm: this.hasBacklogWithoutCapacityAlarm, idleAlarm: this.idleAlarm } = this.scaling(props));

    // The two functions: the router (manifests in) and batch-result (endpoint notifications out).
    ({ fn: this.routerFunction, role: this.routerRole, policy: this.routerPolicy } = this.router(props, imagePrefixes, keyArns));
    ({ fn: this.batchResultFunction, role: this.batchResultRole, policy: this.batchResultPolicy } = this.batchResult(props, keyArns));
    for (const t of [this.successTopic, this.errorTopic]) {
      t.addSubscription(new subs.LambdaSubscription(this.batchResultFunction, { deadLetterQueue: this.deadLetterQueue }));
    }
  }

  /** The batch router: reads manifests and images, writes requests and status, sends to the ingest queue or invokes the endpoint. */
  private router(props: BatchInferenceProps, imagePrefixes: string[], keyArns: string[]): BatchFunction {
    const { uploadsBucket, resultsBucket, ingestQueue, pseudonymSecret } = props;
    const logGroup = this.functionLogGroup('RouterLogs', props);
    const { role, policy } = this.functionRole('RouterRole', 'cxr-opacity batch router', [
      writeLogsStatement(logGroup),
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
      this.deadLettersStatement(), useKeysStatement(keyArns), xrayStatement(),
    ]);
    const fn = new NodeFunction(this, 'RouterFunction', {
      ...this.functionDefaults(logGroup, role, props.key),
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
    fn.node.addDependency(policy);
    return { fn, role, policy };
  }

  /** The batch-result function: forwards the endpoint's outcomes (SNS success / error) to the score queue. */
  private batchResult(props: BatchInferenceProps, keyArns: string[]): BatchFunction {
    const { resultsBucket, scoreQueue } = props;
    const logGroup = this.functionLogGroup('BatchResultLogs', props);
    const { role, policy } = this.functionRole('BatchResultRole', 'cxr-opacity batch result hand-off', [
      writeLogsStatement(logGroup),
      new iam.PolicyStatement({
        sid: 'ReadAsyncOutputs',
        actions: ['s3:GetObject'],
        resources: [BATCH_OUTPUTS_PREFIX, BATCH_FAILURES_PREFIX, BATCH_REQUESTS_PREFIX].map((p) => resultsBucket.arnForObjects(`${p}*`)),
      }),
      new iam.PolicyStatement({ sid: 'SendToScoreQueue', actions: ['sqs:SendMessage'], resources: [scoreQueue.queueArn] }),
      this.deadLettersStatement(), useKeysStatement(keyArns), xrayStatement(),
    ]);
    const fn = new NodeFunction(this, 'BatchResultFunction', {
      ...this.functionDefaults(logGroup, role, props.key),
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
    fn.node.addDependency(policy);
    return { fn, role, policy };
  }

  private functionLogGroup(lid: string, props: BatchInferenceProps): logs.LogGroup {
    return new logs.LogGroup(this, lid, { retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR, encryptionKey: props.key });
  }

  /** A Lambda execution role with one customer-managed policy of these statements. */
  private functionRole(rid: string, description: string, statements: iam.PolicyStatement[]): { role: iam.Role; policy: iam.ManagedPolicy } {
    const role = new iam.Role(this, rid, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description });
    const policy = new iam.ManagedPolicy(this, `${rid}Policy`, { description: `${description}: least privilege`, statements, roles: [role] });
    return { role, policy };
  }

  private deadLettersStatement(): iam.PolicyStatement {
    return new iam.PolicyStatement({ sid: 'DeadLetters', actions: ['sqs:SendMessage'], resources: [this.deadLetterQueue.queueArn] });
  }

  /** What the two functions share: logging, tracing, encryption, the dead-letter queue and retries. */
  private functionDefaults(logGroup: logs.ILogGroup, role: iam.Role, key: kms.IKey) {
    return {
      role: role.withoutPolicyUpdates(),
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      environmentEncryption: key,
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: 2,
      // Bundled by NodeFunction (cdk/lib/bundling.ts): the Node 22 runtime ships AWS SDK v3, including the
      // SageMaker runtime client.
    };
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

interface BatchFunction {
  fn: nodejs.NodejsFunction;
  role: iam.Role;
  policy: iam.ManagedPolicy;
}

const xrayStatement = () => new iam.PolicyStatement({ sid: 'XRayTraces', actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], resources: ['*'] });
const useKeysStatement = (keyArns: string[]) => new iam.PolicyStatement({
  sid: 'UseKeys', actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'], resources: keyArns,
});
const writeLogsStatement = (lg: logs.ILogGroup) => new iam.PolicyStatement({ sid: 'WriteLogs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [lg.logGroupArn] });

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
