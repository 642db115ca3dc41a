/**
 * The batch endpoint's serving container network (cdk/lib/batch.ts). Network isolation is not possible: the
 * container itself reads the batch images and requests from S3, writes the masks to S3 and reads the pseudonym
 * secret. So it runs in a VPC whose isolated subnets have no route out at all (no internet or NAT gateway): S3
 * through a gateway endpoint, Secrets Manager through an interface endpoint, nothing else. SageMaker pulls the
 * image and moves the async requests, outputs and notifications through its own channel.
 *
 * Built in the scope it is given (no construct level of its own), so the resources keep their logical ids.
 */
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';

export interface EndpointNetworkProps {
  /** Key of the flow-log group (when the flow logs go to a log group). */
  readonly key: kms.IKey;
  /** Bucket for the VPC's flow logs; without it they go to a log group. */
  readonly flowLogsBucket?: s3.IBucket;
  /** Retention of that log group (default one year). */
  readonly logRetention?: logs.RetentionDays;
}

export interface EndpointNetwork {
  /** Isolated subnets (no route out), S3 and Secrets Manager through VPC endpoints. */
  readonly vpc: ec2.Vpc;
  /** The serving container's: HTTPS to the VPC endpoints only. */
  readonly securityGroup: ec2.SecurityGroup;
  /** The Secrets Manager interface endpoint (the model waits for it: the container reads the secret at start). */
  readonly secretsEndpoint: ec2.InterfaceVpcEndpoint;
}

/** The VPC, its flow logs, the serving container's security group and the Secrets Manager endpoint. */
export function endpointNetwork(scope: Construct, props: EndpointNetworkProps): EndpointNetwork {
  const vpc = new ec2.Vpc(scope, 'EndpointVpc', {
    ipAddresses: ec2.IpAddresses.cidr('10.80.0.0/24'),
    maxAzs: 2,
    natGateways: 0,
    subnetConfiguration: [{ name: 'endpoint', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 26 }],
    gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    // Nothing is attached to the default security group; closing it needs a custom-resource Lambda.
    restrictDefaultSecurityGroup: false,
  });
  vpc.addFlowLog('FlowLogs', { trafficType: ec2.FlowLogTrafficType.ALL, destination: flowLogDestination(scope, props) });
  const securityGroup = new ec2.SecurityGroup(scope, 'EndpointSecurityGroup', {
    vpc, allowAllOutbound: false,
    description: 'cxr-opacity serving container: HTTPS to the VPC endpoints only',
  });
  // The subnets have no route but to the VPC endpoints, so HTTPS "anywhere" reaches S3 and Secrets Manager only.
  securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to the S3 gateway endpoint and the Secrets Manager endpoint');
  const secretsEndpoint = vpc.addInterfaceEndpoint('SecretsManagerEndpoint', {
    service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    privateDnsEnabled: true,
    subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    // Not the whole VPC CIDR: only the serving container's security group may reach it (below).
    open: false,
  });
  secretsEndpoint.connections.allowFrom(securityGroup, ec2.Port.tcp(443), 'HTTPS from the serving container');
  return { vpc, securityGroup, secretsEndpoint };
}

/** What the endpoint's execution role needs for SageMaker to attach the container to the VPC (VpcConfig). */
export function vpcNetworkInterfacesStatement(): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'VpcNetworkInterfaces',
    actions: [
      'ec2:CreateNetworkInterface', 'ec2:CreateNetworkInterfacePermission', 'ec2:DeleteNetworkInterface',
      'ec2:DeleteNetworkInterfacePermission', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeVpcs',
      'ec2:DescribeDhcpOptions', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups',
    ],
    resources: ['*'],
  });
}

/**
 * Where the endpoint VPC's flow logs go: the given bucket (no role needed), else a log group of ours, written
 * by a role with one customer-managed policy (CDK's default would be an inline policy).
 */
function flowLogDestination(scope: Construct, props: EndpointNetworkProps): ec2.FlowLogDestination {
  if (props.flowLogsBucket) return ec2.FlowLogDestination.toS3(props.flowLogsBucket, 'vpc-flow-logs/');
  const logGroup = new logs.LogGroup(scope, 'FlowLogGroup', { retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR, encryptionKey: props.key });
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
