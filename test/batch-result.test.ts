/**
 * The batch-result function: SageMaker async notifications (success and error) become StageMessages on
 * the score queue, and a SageMaker result goes through the same score stage as a Lambda one.
 */
import { beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import type { SNSEvent } from 'aws-lambda';
import { loadModel } from '../layers/onnx/session';
import { loadSeverityConfig } from '../src/core';
import { dicomIdentityFromEnv, readSegFrames } from '../src/core/dicom-out';
import { SqsSink } from '../src/aws/sqs-sink';
import { MemoryObjects, MemoryResults, MemorySink, silentLogger } from '../src/pipeline/memory';
import { imageIdFor, storedSource, type StageMessage } from '../src/pipeline/messages';
import { pseudonymise } from '../src/core/pseudonym';
import { parseStageMessage } from '../src/pipeline/message-schema';
import { runScoreStage } from '../src/pipeline/score-stage';
import { runSegmentStage } from '../src/pipeline/segment-stage';
import { createBatchResultHandler, handleAsyncNotification, parseS3Uri } from '../functions/batch-result/batch-result';
import { writeTinyModel } from './helpers/tiny-model';
import { makeDicom } from './helpers/fixtures';
import { chestPng } from './helpers/synthetic';

const UPLOADS = 'cxr-uploads';
const RESULTS = 'cxr-results';
const KEY = 'test-pseudonym-key-0123456789';

const snsEvent = (message: unknown): SNSEvent => ({
  Records: [{
    EventSource: 'aws:sns', EventVersion: '1.0', EventSubscriptionArn: 'arn:aws:sns:eu-west-1:123456789012:t:1',
    Sns: {
      Type: 'Notification', MessageId: '1', TopicArn: 'arn:aws:sns:eu-west-1:123456789012:t', Subject: '', Message: JSON.stringify(message),
      Timestamp: new Date().toISOString(), SignatureVersion: '1', Signature: 'x', SigningCertUrl: 'x', UnsubscribeUrl: 'x', MessageAttributes: {},
    },
  }],
});

const success = (inputLocation: string, outputLocation: string, inferenceId = 'i-1') => ({
  awsRegion: 'eu-west-1', eventTime: '2026-11-27T03:00:00.000Z', receivedTime: '2026-11-27T02:59:59.000Z', invocationStatus: 'Completed',
  requestParameters: { contentType: 'application/json', endpointName: 'cxr-async', inputLocation },
  responseParameters: { contentType: 'application/json', outputLocation },
  inferenceId, eventVersion: '1.0', eventSource: 'aws:sagemaker', eventName: 'InferenceResult',
});
const failure = (inputLocation: string, failureReason: string, failureLocation?: string) => ({
  awsRegion: 'eu-west-1', eventTime: '2026-11-27T03:00:00.000Z', invocationStatus: 'Failed', failureReason,
  requestParameters: { endpointName: 'cxr-async', inputLocation },
  ...(failureLocation ? { responseParameters: { failureLocation } } : {}),
  inferenceId: 'i-2', eventVersion: '1.0', eventSource: 'aws:sagemaker', eventName: 'InferenceResult',
});

describe('batch-result: SageMaker async notifications to the score queue', () => {
  const objects = new MemoryObjects();
  let segmented: StageMessage;
  const source = { bucket: UPLOADS, key: 'batch-images/a.png', etag: 'abc123' };
  const requestUri = `s3://${RESULTS}/batches/requests/b1/${imageIdFor(source)}.json`;

  beforeAll(async () => {
    const model = await loadModel(writeTinyModel(join(mkdtempSync(join(tmpdir(), 'cxr-br-')), 'model')), { threads: 1 });
    await objects.put(UPLOADS, source.key, await chestPng({ rightOpacity: 0.25 }), 'image/png');
    // What the serving container returns for this request, as SageMaker stores it.
    segmented = await runSegmentStage(source, {
      objects, sink: new MemorySink(), model, pseudonymKey: KEY, resultsBucket: RESULTS, log: silentLogger, path: 'sagemaker',
    });
    await model.release();
    const { key } = parseS3Uri(requestUri);
    // As the router writes it: pseudonyms only, and the source as results may keep it.
    await objects.put(RESULTS, key, JSON.stringify({
      source, patientKey: pseudonymise(KEY, 'patient', 'P-1'), stored: storedSource(KEY, source), batchId: 'b1',
    }), 'application/json');
    await objects.put(RESULTS, 'batches/outputs/i-1.out', JSON.stringify(segmented), 'application/json');
  });

  test('success: the output StageMessage is forwarded as is and scores like a Lambda result', async () => {
    const sink = new MemorySink();
    const handler = createBatchResultHandler(() => ({ objects, sink, log: silentLogger }));
    const out = await handler(snsEvent(success(requestUri, `s3://${RESULTS}/batches/outputs/i-1.out`)));
    assert.deepEqual(out.forwarded, [{ imageId: segmented.imageId, status: 'SEGMENTED' }]);
    assert.deepEqual(sink.messages, [JSON.parse(JSON.stringify(segmented))]);
    const results = new MemoryResults();
    const { item } = await runScoreStage(sink.messages[0]!, { objects, results, severity: loadSeverityConfig(), resultsBucket: RESULTS, log: silentLogger });
    assert.equal(item.status, 'SCORED');
    assert.equal(item.path, 'sagemaker', 'the path is recorded on the item');
    assert.equal(item.imageId, imageIdFor(source));
    assert.ok(item.opacityPctTotal! > 5 && item.opacityPctTotal! < 40, `scored from the masks the endpoint wrote, got ${item.opacityPctTotal}%`);
  });

  test('a DICOM on the GPU batch path: the endpoint\'s seg.dcm and sr.dcm are forwarded and listed on the scored item and result.json', async () => {
    const dcm = { bucket: UPLOADS, key: 'batch-images/chest.dcm', etag: 'dcm123' };
    await objects.put(UPLOADS, dcm.key, makeDicom({ rows: 160, cols: 192 }), 'application/dicom');
    const model = await loadModel(writeTinyModel(join(mkdtempSync(join(tmpdir(), 'cxr-br-')), 'model')), { threads: 1 });
    // As the serving container does with DICOM_IDENTITY (functions/sagemaker/main.ts: dicomIdentityFromEnv).
    const out = await runSegmentStage(dcm, {
      objects, sink: new MemorySink(), model, pseudonymKey: KEY, resultsBucket: RESULTS, log: silentLogger, path: 'sagemaker',
      dicomOutputs: { identity: dicomIdentityFromEnv({ DICOM_IDENTITY: 'deidentified' }), severity: loadSeverityConfig() },
    });
    await model.release();
    const req = `s3://${RESULTS}/batches/requests/b1/${imageIdFor(dcm)}.json`;
    await objects.put(RESULTS, parseS3Uri(req).key, JSON.stringify({ source: dcm, stored: storedSource(KEY, dcm), batchId: 'b1' }), 'application/json');
    await objects.put(RESULTS, 'batches/outputs/i-dcm.out', JSON.stringify(out), 'application/json');
    const sink = new MemorySink();
    await createBatchResultHandler(() => ({ objects, sink, log: silentLogger }))(snsEvent(success(req, `s3://${RESULTS}/batches/outputs/i-dcm.out`, 'i-dcm')));
    const { item } = await runScoreStage(sink.messages[0]!, { objects, results: new MemoryResults(), severity: loadSeverityConfig(), resultsBucket: RESULTS, log: silentLogger });
    assert.equal(item.status, 'SCORED');
    assert.equal(item.path, 'sagemaker');
    assert.ok(item.keys?.seg && item.keys.sr, 'seg and sr are listed on the item');
    const stored = JSON.parse(Buffer.from((await objects.get(RESULTS, item.keys.result)).body).toString('utf8')) as { keys: { seg?: string; sr?: string } };
    assert.equal(stored.keys.seg, item.keys.seg, 'and in result.json');
    const seg = readSegFrames((await objects.get(RESULTS, item.keys.seg)).body);
    assert.equal(seg.dataset.Modality, 'SEG');
    assert.match(String(seg.dataset.PatientID), /^pt_/, 'in the identity mode of the container');
    assert.equal(seg.frames.length, 3);
    assert.ok((await objects.get(RESULTS, item.keys.sr)).body.length > 1000);
  });

  test('error topic: a FAILED message with code INTERNAL and the reasons, for the image of the request', async () => {
    const sink = new MemorySink();
    await objects.put(RESULTS, 'batches/failures/i-2.out', JSON.stringify({ error: 'SOURCE_NOT_FOUND', message: 'the source object does not exist in bucket up\r\nFORGED' }), 'application/json');
    const msg = await handleAsyncNotification(JSON.stringify(failure(requestUri, 'ClientError: Received client error (404) from primary', `s3://${RESULTS}/batches/failures/i-2.out`)), { objects, sink, log: silentLogger });
    assert.equal(msg.status, 'FAILED');
    assert.equal(msg.imageId, imageIdFor(source));
    assert.equal(msg.path, 'sagemaker');
    if (msg.status !== 'FAILED') return;
    assert.equal(msg.error.code, 'INTERNAL');
    assert.match(msg.error.reason, /Received client error \(404\).*SOURCE_NOT_FOUND: the source object/);
    assert.doesNotMatch(msg.error.reason, /[\r\n]/, 'control characters of the container body are stripped');
    assert.equal(msg.patientKey, pseudonymise(KEY, 'patient', 'P-1'), 'the patient pseudonym of the request is kept');
    assert.deepEqual(msg.source, storedSource(KEY, source));
    assert.ok(!JSON.stringify(msg).includes('batch-images/a.png'), 'the FAILED message holds no upload key');
    assert.deepEqual(parseStageMessage(JSON.stringify(sink.messages[0])), msg, 'a valid stage message');
    const { item } = await runScoreStage(msg, { objects, results: new MemoryResults(), severity: loadSeverityConfig(), resultsBucket: RESULTS, log: silentLogger });
    assert.equal(item.status, 'FAILED');
    assert.equal(item.errorCode, 'INTERNAL');
  });

  test('an invalid output becomes a FAILED message; a malformed notification or missing output throws (retried)', async () => {
    const sink = new MemorySink();
    await objects.put(RESULTS, 'batches/outputs/bad.out', JSON.stringify({ status: 'SEGMENTED', imageId: 'nope' }), 'application/json');
    const msg = await handleAsyncNotification(JSON.stringify(success(requestUri, `s3://${RESULTS}/batches/outputs/bad.out`)), { objects, sink, log: silentLogger });
    assert.equal(msg.status, 'FAILED');
    if (msg.status === 'FAILED') assert.match(msg.error.reason, /not a valid stage message/);
    await assert.rejects(handleAsyncNotification('{"hello":1}', { objects, sink, log: silentLogger }));
    await assert.rejects(handleAsyncNotification(JSON.stringify(success(requestUri, `s3://${RESULTS}/batches/outputs/missing.out`)), { objects, sink, log: silentLogger }), /no object/);
    assert.equal(sink.messages.length, 1);
  });

  test('the AWS wiring sends the message to the score queue (SqsSink, aws-sdk-client-mock)', async () => {
    const sqs = new SQSClient({ region: 'eu-west-1' });
    const m = mockClient(sqs);
    m.on(SendMessageCommand).resolves({ MessageId: 'm1' });
    const handler = createBatchResultHandler(() => ({ objects, sink: new SqsSink(sqs, 'https://sqs/score'), log: silentLogger }));
    await handler(snsEvent(success(requestUri, `s3://${RESULTS}/batches/outputs/i-1.out`)));
    const sent = m.commandCalls(SendMessageCommand)[0]!.args[0].input;
    assert.equal(sent.QueueUrl, 'https://sqs/score');
    assert.deepEqual(parseStageMessage(sent.MessageBody!), JSON.parse(JSON.stringify(segmented)));
    m.restore();
  });
});
