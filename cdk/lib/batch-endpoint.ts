/**
 * The batch path's SageMaker asynchronous inference endpoint (cdk/lib/batch.ts): the serving container image
 * (functions/sagemaker), the endpoint's execution role, the model in the endpoint VPC (cdk/lib/batch-network.ts),
 * and the endpoint config and endpoint (async outputs to the results bucket, SNS success and error topics).
 *
 * Each is built in the scope it is given (no construct level of its own), so the resources keep their logical ids.
 */
import { Aws, IgnoreMode } from 'aws-cdk-lib';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { DEFAULT_MODEL_FILE } from '../../layers/onnx/model-files';
import { DICOM_IDENTITY_ENV, type IdentityMode } from '../../src/core/dicom-out/identity';
import { DEFAULT_MAX_INPUT_BYTES } from '../../src/limits';
import {
  BATCH_FAILURES_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_REQUESTS_PREFIX, RESULTS_PREFIX,
} from '../../src/pipeline/storage-layout';
import { REPO_ROOT } from './bundling';
import { vpcNetworkInterfacesStatement, type EndpointNetwork } from './batch-network';

/** The endpoint's one production variant (the scaling target names it). */
export const VARIANT = 'AllTraffic';

/** The serving container image, built from the repository root with functions/sagemaker/Dockerfile. */
export function servingImage(scope: Construct, gpu: boolean): ecrAssets.DockerImageAsset {
  return new ecrAssets.DockerImageAsset(scope, 'ServingImage', {
    directory: REPO_ROOT,
    file: 'functions/sagemaker/Dockerfile',
    platform: ecrAssets.Platform.LINUX_AMD64,
    ignoreMode: IgnoreMode.DOCKER, // the root .dockerignore lets only package files, src/, layers/, functions/ and models/*.json|onnx through
    buildArgs: gpu ? { RUNTIME_BASE: 'nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04', ORT_INSTALL: 'cuda12' } : { ORT_INSTALL: 'skip' },
  });
}

export interface EndpointRoleProps {
  readonly image: ecrAssets.DockerImageAsset;
  readonly uploadsBucket: s3.IBucket;
  readonly resultsBucket: s3.IBucket;
  /** Prefixes of the uploads bucket batch images may use. */
  readonly imagePrefixes: string[];
  readonly pseudonymSecret: secretsmanager.ISecret;
  readonly successTopic: sns.ITopic;
  readonly errorTopic: sns.ITopic;
  /** ARNs of the keys the endpoint uses (data key, messaging key). */
  readonly keyArns: string[];
}

/** The endpoint's execution role (serving container and async notifications) with one least-privilege managed policy. */
export function endpointRole(scope: Construct, p: EndpointRoleProps): { role: iam.Role; policy: iam.ManagedPolicy } {
  const statements = [
    new iam.PolicyStatement({
      sid: 'PullServingImage',
      actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
      resources: [p.image.repository.repositoryArn],
    }),
    new iam.PolicyStatement({ sid: 'EcrAuth', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
    new iam.PolicyStatement({
      sid: 'ReadBatchImages',
      actions: ['s3:GetObject'],
      resources: p.imagePrefixes.map((prefix) => p.uploadsBucket.arnForObjects(`${prefix}*`)),
    }),
    new iam.PolicyStatement({
      sid: 'ReadRequests',
      actions: ['s3:GetObject'],
      resources: [p.resultsBucket.arnForObjects(`${BATCH_REQUESTS_PREFIX}*`)],
    }),
    new iam.PolicyStatement({
      sid: 'WriteMasksAndOutputs',
      actions: ['s3:PutObject'],
      resources: [RESULTS_PREFIX, BATCH_OUTPUTS_PREFIX, BATCH_FAILURES_PREFIX].map((prefix) => p.resultsBucket.arnForObjects(`${prefix}*`)),
    }),
    new iam.PolicyStatement({
      sid: 'ReadPseudonymKey',
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resources: [p.pseudonymSecret.secretArn],
    }),
    new iam.PolicyStatement({
      sid: 'NotifyResults',
      actions: ['sns:Publish'],
      resources: [p.successTopic.topicArn, p.errorTopic.topicArn],
    }),
    new iam.PolicyStatement({
      sid: 'UseKeys',
      actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
      resources: p.keyArns,
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
    vpcNetworkInterfacesStatement(),
  ];
  const role = new iam.Role(scope, 'EndpointRole', {
    assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
    description: 'cxr-opacity batch inference endpoint (serving container and async notifications)',
  });
  const policy = new iam.ManagedPolicy(scope, 'EndpointRolePolicy', {
    description: 'cxr-opacity batch inference endpoint: least privilege', statements, roles: [role],
  });
  return { role, policy };
}

export interface ServingModelProps {
  readonly image: ecrAssets.DockerImageAsset;
  readonly role: iam.Role;
  /** The role's policy: SageMaker pulls the image with the role when it creates the model. */
  readonly policy: iam.ManagedPolicy;
  readonly network: EndpointNetwork;
  readonly uploadsBucket: s3.IBucket;
  readonly resultsBucket: s3.IBucket;
  readonly pseudonymSecret: secretsmanager.ISecret;
  readonly gpu: boolean;
  /** MAX_CONCURRENT of the container: the requests SageMaker hands one instance at once. */
  readonly maxConcurrent: number;
  readonly keepSourceKeys?: boolean;
  readonly dicomIdentity?: IdentityMode;
  readonly maxInputBytes?: number;
  readonly modelManifest?: string;
}

/** The model: the serving container in the endpoint VPC, with its environment. */
export function servingModel(scope: Construct, p: ServingModelProps): sagemaker.CfnModel {
  const model = new sagemaker.CfnModel(scope, 'Model', {
    executionRoleArn: p.role.roleArn,
    vpcConfig: {
      securityGroupIds: [p.network.securityGroup.securityGroupId],
      subnets: p.network.vpc.isolatedSubnets.map((s) => s.subnetId),
    },
    primaryContainer: {
      image: p.image.imageUri,
      environment: {
        RESULTS_BUCKET: p.resultsBucket.bucketName,
        SOURCE_BUCKETS: p.uploadsBucket.bucketName,
        PSEUDONYM_SECRET_ARN: p.pseudonymSecret.secretArn,
        KEEP_SOURCE_KEYS: String(p.keepSourceKeys ?? false),
        [DICOM_IDENTITY_ENV]: p.dicomIdentity ?? 'off',
        MAX_INPUT_BYTES: String(p.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES),
        MODEL_MANIFEST: p.modelManifest ?? `/app/models/${DEFAULT_MODEL_FILE}`,
        USE_CUDA: p.gpu ? '1' : '0',
        MAX_CONCURRENT: String(p.maxConcurrent),
        MAX_BATCH: p.gpu ? '8' : '1',
        AWS_REGION: Aws.REGION,
      },
    },
  });
  // SageMaker pulls the image with the role when it creates the model.
  model.node.addDependency(p.policy);
  model.node.addDependency(p.network.secretsEndpoint);
  return model;
}

export interface AsyncEndpointProps {
  readonly model: sagemaker.CfnModel;
  readonly instanceType: string;
  readonly maxConcurrent: number;
  readonly resultsBucket: s3.IBucket;
  /** Encrypts the async outputs. */
  readonly key: kms.IKey;
  readonly successTopic: sns.ITopic;
  readonly errorTopic: sns.ITopic;
}

/** The endpoint config (one variant, async inference to the results bucket) and the endpoint. */
export function asyncEndpoint(scope: Construct, p: AsyncEndpointProps): { endpointConfig: sagemaker.CfnEndpointConfig; endpoint: sagemaker.CfnEndpoint } {
  const endpointConfig = new sagemaker.CfnEndpointConfig(scope, 'EndpointConfig', {
    productionVariants: [{
      variantName: VARIANT,
      modelName: p.model.attrModelName,
      instanceType: p.instanceType,
      initialInstanceCount: 1,
      initialVariantWeight: 1,
    }],
    // No KmsKeyId for the ML volume: g4dn/g5 instances have local NVMe instance storage, which SageMaker
    // encrypts with a hardware key and for which it refuses a KMS key. The async output is KMS-encrypted.
    asyncInferenceConfig: {
      clientConfig: { maxConcurrentInvocationsPerInstance: p.maxConcurrent },
      outputConfig: {
        s3OutputPath: p.resultsBucket.s3UrlForObject(BATCH_OUTPUTS_PREFIX),
        s3FailurePath: p.resultsBucket.s3UrlForObject(BATCH_FAILURES_PREFIX),
        kmsKeyId: p.key.keyArn,
        notificationConfig: { successTopic: p.successTopic.topicArn, errorTopic: p.errorTopic.topicArn },
      },
    },
  });
  const endpoint = new sagemaker.CfnEndpoint(scope, 'Endpoint', { endpointConfigName: endpointConfig.attrEndpointConfigName });
  return { endpointConfig, endpoint };
}
