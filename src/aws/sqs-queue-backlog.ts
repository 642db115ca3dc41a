/** QueueBacklog over Amazon SQS: the queue's ApproximateNumberOfMessages. */
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { QueueBacklog } from '../pipeline/ports';

export class SqsQueueBacklog implements QueueBacklog {
  constructor(private readonly sqs: SQSClient, private readonly queueUrl: string) {}

  async waiting(): Promise<number> {
    const attrs = await this.sqs.send(new GetQueueAttributesCommand({ QueueUrl: this.queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
    return Number(attrs.Attributes?.ApproximateNumberOfMessages ?? 0);
  }
}
