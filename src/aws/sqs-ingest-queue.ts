/**
 * IngestQueue over Amazon SQS: each image becomes one S3 ObjectCreated notification (src/aws/s3-notification.ts,
 * with the manifest's pseudonyms), which the segment function reads exactly as it reads S3's own. Sent ten to a
 * SendMessageBatch (SQS's limit); entries SQS refuses are sent again, up to three tries in all.
 */
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { IngestQueue, IngestRequest } from '../pipeline/ports';
import { s3Notification } from './s3-notification';

const BATCH = 10;
const TRIES = 3;

export interface SqsIngestQueueOptions {
  /** Who the notifications say wrote them (userIdentity, configurationId, request ids). */
  principal: string;
  /** The notifications' event time (default: now). */
  now?: () => Date;
}

export class SqsIngestQueue implements IngestQueue {
  constructor(private readonly sqs: SQSClient, private readonly queueUrl: string, private readonly options: SqsIngestQueueOptions) {}

  async send(requests: IngestRequest[]): Promise<(string | undefined)[]> {
    const out = requests.map((): string | undefined => 'SQS: no answer for this message');
    if (requests.length === 0) return out;
    const region = await this.sqs.config.region();
    const time = () => (this.options.now?.() ?? new Date()).toISOString();
    for (let i = 0; i < requests.length; i += BATCH) {
      const chunk = requests.slice(i, i + BATCH).map((r, j) => ({ id: String(j), index: i + j, r }));
      let pending = chunk;
      for (let attempt = 0; attempt < TRIES && pending.length > 0; attempt++) {
        const res = await this.sqs.send(new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: pending.map((p) => ({ Id: p.id, MessageBody: s3Notification([p.r], { region, time: time(), principal: this.options.principal }) })),
        }));
        for (const ok of res.Successful ?? []) out[chunk[Number(ok.Id)]!.index] = undefined;
        const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f]));
        pending = pending.filter((p) => failed.has(p.id));
        for (const p of pending) {
          const f = failed.get(p.id)!;
          out[p.index] = `SQS: ${f.Code} ${f.Message ?? ''}`.trim();
        }
      }
    }
    return out;
  }
}
