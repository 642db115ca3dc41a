/**
 * Hand-off from the SageMaker async endpoint to the score stage. SageMaker publishes one SNS
 * notification per request, on the success or the error topic:
 *  - success (invocationStatus "Completed"): the output object holds the StageMessage the serving
 *    container returned; it is validated (parseStageMessage) and sent to the score queue, so results
 *    of both paths go through the same score function;
 *  - error (anything else): a FAILED StageMessage (code INTERNAL, the notification's reason, and the
 *    container's error body when SageMaker stored one) is built from the request object the router
 *    wrote, and sent to the score queue, so the image ends up as a FAILED item and nothing is lost.
 * A malformed output is recorded the same way. Storage or queue errors are thrown, so the invocation is
 * retried (and then dead-lettered); the score stage's conditional write makes a repeat harmless.
 */
import type { SNSEvent } from 'aws-lambda';
import { z } from 'zod';
import { parseStageMessage } from '../../src/pipeline/message-schema';
import { imageIdFor, safeText, type FailedMessage, type StageMessage } from '../../src/pipeline/messages';
import type { MessageSink, ObjectStore, StageLogger } from '../../src/pipeline/ports';
import { asyncRequestSchema } from '../../src/pipeline/batch-request';

/** The body SageMaker asynchronous inference publishes to its SNS topics (unknown fields kept). */
export const asyncNotificationSchema = z.object({
  invocationStatus: z.string(),
  inferenceId: z.string().optional(),
  eventTime: z.string().optional(),
  failureReason: z.string().optional(),
  requestParameters: z.object({ inputLocation: z.string(), endpointName: z.string().optional() }).passthrough(),
  responseParameters: z.object({
    outputLocation: z.string().optional(),
    failureLocation: z.string().optional(),
    contentType: z.string().optional(),
  }).passthrough().optional(),
}).passthrough();
export type AsyncNotification = z.infer<typeof asyncNotificationSchema>;

export interface BatchResultDeps {
  objects: ObjectStore;
  /** The score queue. */
  sink: MessageSink;
  log: StageLogger;
  now?: () => Date;
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m) throw new Error(`not an s3:// URI: ${uri}`);
  return { bucket: m[1]!, key: m[2]! };
}

const MAX_REASON = 1000;
const clip = (s: string) => safeText(s, MAX_REASON);

async function readText(objects: ObjectStore, uri: string): Promise<string> {
  const { bucket, key } = parseS3Uri(uri);
  return Buffer.from((await objects.get(bucket, key)).body).toString('utf8');
}

/**
 * The FAILED message for a request that produced no usable StageMessage. It keeps what the router put
 * in the request for results: the source as stored (key pseudonym) and the patient/study pseudonyms;
 * the raw key is only used for the imageId.
 */
async function failedFor(n: AsyncNotification, reason: string, deps: BatchResultDeps): Promise<FailedMessage> {
  const req = asyncRequestSchema.parse(JSON.parse(await readText(deps.objects, n.requestParameters.inputLocation)));
  if (!req.stored) throw new Error('the request object has no stored source (written by an older router?)');
  return {
    version: 1, status: 'FAILED', imageId: imageIdFor(req.source), source: req.stored,
    ...(req.patientKey ? { patientKey: req.patientKey } : {}), ...(req.studyKey ? { studyKey: req.studyKey } : {}),
    receivedAt: (deps.now?.() ?? new Date()).toISOString(), path: 'sagemaker', timingsMs: {},
    error: { code: 'INTERNAL', reason: clip(reason) },
  };
}

export async function handleAsyncNotification(body: string, deps: BatchResultDeps): Promise<StageMessage> {
  const n = asyncNotificationSchema.parse(JSON.parse(body));
  const output = n.responseParameters?.outputLocation;
  let message: StageMessage;
  if (n.invocationStatus === 'Completed' && output) {
    const text = await readText(deps.objects, output);
    try {
      message = parseStageMessage(text);
    } catch (e) {
      deps.log.error('endpoint output is not a valid stage message', { inferenceId: n.inferenceId, error: (e as Error).message });
      message = await failedFor(n, `the endpoint's output is not a valid stage message: ${(e as Error).message}`, deps);
    }
  } else {
    let reason = `SageMaker inference ${n.invocationStatus.toLowerCase()}${n.failureReason ? `: ${n.failureReason}` : ''}`;
    const failure = n.responseParameters?.failureLocation;
    if (failure) {
      // The container's own error body ({error, message}) says more than SageMaker's summary.
      try {
        const detail = await readText(deps.objects, failure);
        try {
          const parsed = JSON.parse(detail) as { message?: string; error?: string };
          reason += ` (${[parsed.error, parsed.message].filter(Boolean).join(': ') || detail})`;
        } catch {
          reason += ` (${detail.slice(0, 300)})`;
        }
      } catch (e) {
        deps.log.warn('could not read the failure output', { inferenceId: n.inferenceId, error: (e as Error).message });
      }
    }
    message = await failedFor(n, reason, deps);
    deps.log.warn('async inference failed', { inferenceId: n.inferenceId, imageId: message.imageId, reason: message.status === 'FAILED' ? message.error.reason : '' });
  }
  await deps.sink.send(message);
  deps.log.info('async result forwarded', { inferenceId: n.inferenceId, imageId: message.imageId, status: message.status });
  return message;
}

export function createBatchResultHandler(getDeps: () => Promise<BatchResultDeps> | BatchResultDeps) {
  let deps: BatchResultDeps | undefined;
  return async (event: SNSEvent): Promise<{ forwarded: { imageId: string; status: string }[] }> => {
    deps ??= await getDeps();
    const forwarded = [];
    for (const r of event.Records) {
      const m = await handleAsyncNotification(r.Sns.Message, deps);
      forwarded.push({ imageId: m.imageId, status: m.status });
    }
    return { forwarded };
  };
}
