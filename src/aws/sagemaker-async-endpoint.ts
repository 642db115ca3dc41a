/**
 * AsyncEndpoint over a SageMaker asynchronous inference endpoint (InvokeEndpointAsync): the input is the JSON
 * request object in S3 (src/pipeline/batch-request.ts), and the answer the StageMessage the serving
 * container returns (functions/sagemaker/server.ts), which SageMaker writes to the output location.
 */
import { InvokeEndpointAsyncCommand, type SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import type { AsyncEndpoint, AsyncInvocation } from '../pipeline/ports';

export class SageMakerAsyncEndpoint implements AsyncEndpoint {
  constructor(private readonly sagemaker: SageMakerRuntimeClient, readonly endpointName: string) {}

  async invoke(r: AsyncInvocation): Promise<{ inferenceId?: string; outputLocation?: string }> {
    const res = await this.sagemaker.send(new InvokeEndpointAsyncCommand({
      EndpointName: this.endpointName, InputLocation: `s3://${r.input.bucket}/${r.input.key}`,
      ContentType: 'application/json', Accept: 'application/json', InferenceId: r.inferenceId,
      RequestTTLSeconds: r.requestTtlSeconds, InvocationTimeoutSeconds: r.invocationTimeoutSeconds,
    }));
    return { inferenceId: res.InferenceId, outputLocation: res.OutputLocation };
  }
}
