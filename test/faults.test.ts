/**
 * Issue 6: load and faults on the local pipeline. 300 concurrent uploads give 300 items; the DynamoDB
 * stand-in stopped mid-run, the S3 stand-in stopped mid-run and a handler that hangs mid-image (abandoned
 * at its timeout, like a killed Lambda) all end with exactly one result per upload.
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { startLocalPipeline, type LocalPipelineOptions } from '../src/local/pipeline';
import { LOCAL_NAMES } from '../src/local/stack';
import type { ResultItem } from '../src/pipeline/messages';
import { writeTinyModel } from './helpers/tiny-model';
import { chestPng } from './helpers/synthetic';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withPipeline(opts: Partial<LocalPipelineOptions>, fn: (p: Awaited<ReturnType<typeof startLocalPipeline>>) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'cxr-faults-'));
  const p = await startLocalPipeline({ model: writeTinyModel(join(dir, 'model'), { size: 64 }), dataDir: dir, logLevel: 'SILENT', ...opts });
  try {
    await fn(p);
  } finally {
    await p.stop();
  }
}

async function scan(p: Awaited<ReturnType<typeof startLocalPipeline>>): Promise<ResultItem[]> {
  const out: ResultItem[] = [];
  let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
  do {
    const page = await p.stack.ddb.send(new ScanCommand({ TableName: LOCAL_NAMES.resultsTable, ExclusiveStartKey: start }));
    out.push(...(page.Items ?? []).map((i) => unmarshall(i) as ResultItem));
    start = page.LastEvaluatedKey;
  } while (start);
  return out;
}

function assertExactlyOnce(items: ResultItem[], ids: string[]) {
  const counts = new Map<string, number>();
  for (const it of items) counts.set(it.imageId, (counts.get(it.imageId) ?? 0) + 1);
  for (const id of ids) assert.equal(counts.get(id), 1, `upload ${id} has ${counts.get(id) ?? 0} results`);
  assert.equal(items.length, new Set(ids).size, 'no results beyond the uploads');
}

describe('load and faults (local pipeline)', () => {
  test('300 concurrent uploads give 300 scored items, none lost or duplicated', async () => {
    await withPipeline({ concurrency: 2 }, async (p) => {
      const bodies = await Promise.all(Array.from({ length: 6 }, (_, i) => chestPng({ width: 160, height: 128, rightOpacity: i / 10 })));
      const ids = await Promise.all(Array.from({ length: 300 }, (_, i) => p.upload(`uploads/load/${i}.png`, bodies[i % bodies.length])));
      await p.drain();
      const items = await scan(p);
      assertExactlyOnce(items, ids);
      assert.ok(items.every((i) => i.status === 'SCORED'));
      assert.equal(p.ingest.deadLetters.length + p.scoring.deadLetters.length, 0);
    });
  });

  test('DynamoDB stand-in stopped mid-run and restarted: every upload has exactly one result', async () => {
    // As on AWS, a message comes back only after the function's timeout (visibility timeout >= timeout),
    // so an idempotency record left IN_PROGRESS by a failed write has expired by then.
    await withPipeline({ maxReceiveCount: 20, retryDelayMs: 1000, timeoutMs: { segment: 800, score: 800 } }, async (p) => {
      const body = await chestPng({ width: 160, height: 128, rightOpacity: 0.3 });
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push(await p.upload(`uploads/ddb/${i}.png`, body));
      await sleep(150);
      await p.stack.stopDynamo();
      console.log(`faults: DynamoDB stopped with ${p.ingest.depth} segment and ${p.scoring.depth} score messages outstanding`);
      await sleep(1500);
      await p.stack.startDynamo();
      await p.drain();
      assertExactlyOnce(await scan(p), ids);
      assert.deepEqual([...p.ingest.deadLetters, ...p.scoring.deadLetters].map((d) => d.lastError), []);
    });
  });

  test('S3 stand-in stopped mid-run and restarted: every upload has exactly one result', async () => {
    await withPipeline({ maxReceiveCount: 20, retryDelayMs: 250 }, async (p) => {
      const body = await chestPng({ width: 160, height: 128, rightOpacity: 0.3 });
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push(await p.upload(`uploads/s3/${i}.png`, body));
      await sleep(100);
      await p.stack.stopS3();
      console.log(`faults: S3 stopped with ${p.ingest.depth} segment messages outstanding`);
      await sleep(1500);
      await p.stack.startS3();
      await p.drain();
      assert.deepEqual([...p.ingest.deadLetters, ...p.scoring.deadLetters].map((d) => d.lastError), []);
      assertExactlyOnce(await scan(p), ids);
    });
  });

  test('a handler that hangs mid-image is abandoned at its timeout and the retry gives exactly one result', async () => {
    let hung = 0;
    await withPipeline({
      maxReceiveCount: 10, retryDelayMs: 200, timeoutMs: { segment: 1500, score: 5000 },
      wrapObjects: (store) => ({
        head: (b, k) => store.head(b, k),
        get: (b, k) => store.get(b, k),
        put: async (b, k, body, ct) => {
          if (k.endsWith('overlay.png') && hung < 2) {
            hung++;
            return new Promise<void>(() => undefined); // never completes, like a process killed mid-write
          }
          return store.put(b, k, body, ct);
        },
      }),
    }, async (p) => {
      const body = await chestPng({ width: 160, height: 128, rightOpacity: 0.3 });
      const ids = [await p.upload('uploads/kill/a.png', body), await p.upload('uploads/kill/b.png', body)];
      await p.drain();
      assert.equal(hung, 2);
      assertExactlyOnce(await scan(p), ids);
      assert.equal(p.ingest.deadLetters.length, 0);
    });
  });
});
