/**
 * An in-process stand-in for an SQS queue with a redrive policy, so the local runner drives the Lambda
 * handlers exactly as the event source mapping does: batches of SQS records, partial batch failures
 * retried after a delay, and a record that failed `maxReceiveCount` times moved to a dead-letter list.
 * (No embeddable SQS server exists on npm that we trust more than these ~80 lines.)
 */
import { randomUUID } from 'node:crypto';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

interface Pending { record: SQSRecord; receiveCount: number }

export interface LocalQueueOptions {
  name: string;
  batchSize?: number;
  maxReceiveCount?: number;
  /** Delay before a failed record is delivered again. */
  retryDelayMs?: number;
  /** How many batches may be in the handler at once. */
  concurrency?: number;
  /** Like a Lambda timeout: an invocation still running after this is abandoned and counts as failed. */
  timeoutMs?: number;
}

export class LocalQueue {
  readonly deadLetters: { body: string; receiveCount: number; lastError?: string }[] = [];
  private readonly pending: Pending[] = [];
  private inFlight = 0;
  private timers = 0;
  private idleWaiters: (() => void)[] = [];
  private handler?: SqsHandler;
  private closed = false;
  private readonly retryTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: LocalQueueOptions) {}

  /** Attaches the consumer (like an event source mapping). */
  consume(handler: SqsHandler): void {
    this.handler = handler;
    this.pump();
  }

  send(body: string): void {
    if (this.closed) return;
    const messageId = randomUUID();
    this.pending.push({
      receiveCount: 0,
      record: {
        messageId, receiptHandle: messageId, body,
        attributes: {
          ApproximateReceiveCount: '0', SentTimestamp: String(Date.now()), SenderId: 'local',
          ApproximateFirstReceiveTimestamp: String(Date.now()),
        },
        messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs',
        eventSourceARN: `arn:aws:sqs:local:000000000000:${this.opts.name}`, awsRegion: 'local',
      },
    });
    this.pump();
  }

  /** Resolves when nothing is pending, running or waiting for a retry. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Stops delivering, as a stopped process does (npm start on Ctrl-C): pending and retrying records are
   * dropped; resolves when no handler call is running any more.
   */
  close(): Promise<void> {
    this.closed = true;
    this.pending.length = 0;
    for (const t of this.retryTimers) clearTimeout(t);
    this.timers -= this.retryTimers.size;
    this.retryTimers.clear();
    return this.idle();
  }

  get depth(): number {
    return this.pending.length + this.inFlight + this.timers;
  }

  private isIdle() {
    return this.pending.length === 0 && this.inFlight === 0 && this.timers === 0;
  }

  private pump(): void {
    const handler = this.handler;
    if (!handler || this.closed) return;
    while (this.pending.length > 0 && this.inFlight < (this.opts.concurrency ?? 1)) {
      const batch = this.pending.splice(0, this.opts.batchSize ?? 1);
      this.inFlight++;
      void this.deliver(handler, batch).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.isIdle()) this.idleWaiters.splice(0).forEach((r) => r());
      });
    }
  }

  private async deliver(handler: SqsHandler, batch: Pending[]): Promise<void> {
    for (const p of batch) {
      p.receiveCount++;
      p.record.attributes.ApproximateReceiveCount = String(p.receiveCount);
    }
    let failed: Set<string>;
    let lastError: string | undefined;
    const timeoutMs = this.opts.timeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timedOut = new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`Task timed out after ${timeoutMs / 1000} seconds`)), timeoutMs);
      });
      const res = await Promise.race([handler({ Records: batch.map((p) => p.record) }, localContext(this.opts.name, timeoutMs)), timedOut]);
      failed = new Set((res?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch (e) {
      // Powertools batch throws one error for a batch that failed whole; the causes are in recordErrors.
      const causes = (e as { recordErrors?: Error[] }).recordErrors?.map((r) => `${r.name}: ${r.message}`);
      lastError = causes?.length ? causes.join('; ') : (e as Error).message;
      failed = new Set(batch.map((p) => p.record.messageId));
    } finally {
      clearTimeout(timer);
    }
    for (const p of batch) {
      if (!failed.has(p.record.messageId)) continue;
      if (p.receiveCount >= (this.opts.maxReceiveCount ?? 3)) {
        this.deadLetters.push({ body: p.record.body, receiveCount: p.receiveCount, lastError });
        continue;
      }
      this.timers++;
      const timer = setTimeout(() => {
        this.retryTimers.delete(timer);
        this.timers--;
        this.pending.push(p);
        this.pump();
      }, this.opts.retryDelayMs ?? 500);
      this.retryTimers.add(timer);
    }
  }
}

export function localContext(functionName: string, timeoutMs = 120_000): Context {
  const start = Date.now();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '3008',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, timeoutMs - (Date.now() - start)),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
