/** MessageSink over Amazon SQS: the segment stage's hand-off to the score queue. */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { StageMessage } from '../pipeline/messages';
import type { MessageSink } from '../pipeline/ports';

export class SqsSink implements MessageSink {
  constructor(private readonly sqs: SQSClient, private readonly queueUrl: string) {}

  async send(message: StageMessage): Promise<void> {
    await this.sqs.send(new SendMessageCommand({
      QueueUrl: this.queueUrl,
      MessageBody: JSON.stringify(message),
      MessageAttributes: { status: { DataType: 'String', StringValue: message.status } },
    }));
  }
}
