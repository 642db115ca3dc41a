/**
 * Issue 10 (a): every input ends with exactly one result whatever its name or size. Long names (234-260
 * bytes, and keys up to S3's 1024-byte limit) and a sparse file over the size cap, generated here, through
 * the local pipeline (s3rver + dynalite, real handlers), `cxr-opacity analyze` and `npm start`, with the
 * small test model. The oversized file is never read: the read path is spied on and the peak RSS bounded.
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { analyzeMain } from '../src/cli/analyze';
import { collectInputs, MAX_OUTPUT_NAME_BYTES } from '../src/cli/inputs';
import { DEFAULT_MAX_INPUT_BYTES, S3_MAX_KEY_BYTES, tooLargeReason } from '../src/limits';
import { CHUNK_BYTES, decodeKeyPath, encodeKeyPath } from '../src/local/long-keys';
import { FileBackedObjects } from '../src/pipeline/memory';
import { startLocalPipeline, type LocalPipeline } from '../src/local/pipeline';
import { LOCAL_NAMES } from '../src/local/stack';
import { startMain } from '../src/local/start';
import type { ResultItem } from '../src/pipeline/messages';
import type { ObjectStore } from '../src/pipeline/ports';
import { chestPng } from './helpers/synthetic';
import { writeTinyModel } from './helpers/tiny-model';
import { capture } from './helpers/capture';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
/** A name of exactly n UTF-8 bytes ending in `ext`, mixing ASCII and two-byte characters. */
function nameOf(n: number, ext: string, seed = 'x'): string {
  let s = '';
  while (bytes(s) + bytes(ext) + 2 <= n) s += s.length % 3 === 0 ? 'é' : seed;
  while (bytes(s) + bytes(ext) < n) s += seed;
  return s + ext;
}
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;

describe('long S3 keys in the local S3 stand-in', () => {
  test('the key <-> path encoding round-trips and keeps every path component under 255 bytes', () => {
    const keys = [
      'uploads/a.png', `uploads/${'a'.repeat(1016)}`, `uploads/${nameOf(250, '.dcm')}`, `uploads/${'\uE000'.repeat(300)}/x`,
      `uploads/${'é'.repeat(400)}\uE000/\uE000\uE000${'ü'.repeat(50)}`, 'a//b', '',
    ];
    for (let i = 0; i < 200; i++) {
      const chars = ['a', 'é', '/', '\uE000', '😀', ' ', '+'];
      keys.push(Array.from({ length: 1 + (i * 7) % 500 }, (_, j) => chars[(i * 31 + j * 17) % chars.length]).join(''));
    }
    for (const k of keys) {
      const p = encodeKeyPath(k);
      assert.equal(decodeKeyPath(p), k);
      for (const part of p.split('/')) assert.ok(bytes(part) <= CHUNK_BYTES + 4 * 2, `component of ${bytes(part)} bytes`);
    }
    assert.equal(encodeKeyPath('uploads/short.png'), 'uploads/short.png', 'ordinary keys keep their paths');
  });
});

describe('names and sizes through the local pipeline', () => {
  let p: LocalPipeline;
  const reads: string[] = [];
  const cap = 64 * 1024;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-limits-'));
    p = await startLocalPipeline({
      model: writeTinyModel(join(dir, 'model'), { size: 128 }), dataDir: dir, retryDelayMs: 20, maxInputBytes: cap,
      wrapObjects: (store): ObjectStore => ({
        head: (b, k) => store.head(b, k),
        get: (b, k) => { reads.push(k); return store.get(b, k); },
        put: (b, k, body, ct) => store.put(b, k, body, ct),
      }),
    });
  });
  afterAll(async () => p?.stop());

  test('keys of 234-260 bytes and of 1024 bytes each give one SCORED item; an object over the cap one TOO_LARGE item, unread', async () => {
    const png = await chestPng({ width: 160, height: 128, rightOpacity: 0.5 });
    const expected = new Map<string, { key: string; status: string; code?: string }>();
    for (const n of [234, 235, 240, 250, 260, S3_MAX_KEY_BYTES]) {
      const key = `uploads/${nameOf(n - 'uploads/'.length, '.png', String.fromCharCode(97 + (n % 26)))}`;
      assert.equal(bytes(key), n);
      expected.set(await p.upload(key, png), { key, status: 'SCORED' });
    }
    const bigKey = `uploads/${nameOf(240, '.dcm', 'z')}`;
    expected.set(await p.upload(bigKey, new Uint8Array(cap + 1)), { key: bigKey, status: 'FAILED', code: 'TOO_LARGE' });
    await p.drain();
    const items = ((await p.stack.ddb.send(new ScanCommand({ TableName: LOCAL_NAMES.resultsTable }))).Items ?? []).map((i) => unmarshall(i) as ResultItem);
    assert.equal(items.length, expected.size, 'one item per upload');
    for (const it of items) {
      const want = expected.get(it.imageId);
      assert.ok(want, 'an item of an upload of this test');
      assert.equal(it.status, want.status, `${bytes(want.key)}-byte key: ${it.errorCode} ${it.errorReason}`);
      if (want.code) {
        assert.equal(it.errorCode, want.code);
        assert.equal(it.errorReason, tooLargeReason(cap + 1, cap));
        assert.match(it.errorReason!, /64.0 KiB \(65537 bytes\), over the limit of 64 KiB \(65536 bytes\)/);
      }
    }
    assert.ok(!reads.includes(bigKey), 'the object over the cap was never read (HEAD only)');
    assert.equal(p.ingest.deadLetters.length + p.scoring.deadLetters.length, 0);
  });
});

describe('names and sizes through the CLI and npm start', () => {
  let dir: string;
  let model: string;
  const names = [nameOf(234, '.png', 'b'), nameOf(240, '.png', 'c'), nameOf(250, '.png', 'd'), nameOf(255, '.png', 'e')];
  const big = 'zeros.dcm';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cxr-limits-cli-'));
    mkdirSync(join(dir, 'in', nameOf(200, '', 'f')), { recursive: true });
    const png = await chestPng({ width: 160, height: 128, rightOpacity: 0.5 });
    for (const n of names) writeFileSync(join(dir, 'in', n), png);
    // Nested: its flattened output name (200 + 2 + 250 bytes) is longer than a file name may be.
    writeFileSync(join(dir, 'in', nameOf(200, '', 'f'), names[2]!), png);
    // 1 GiB of zeros that costs no disk: a sparse file.
    closeSync(openSync(join(dir, 'in', big), 'w'));
    truncateSync(join(dir, 'in', big), 1024 ** 3);
    model = writeTinyModel(join(dir, 'model'), { size: 128 });
  });

  test('output names stay within the file-system limit and unique', () => {
    const inputs = collectInputs([join(dir, 'in')]);
    assert.equal(inputs.length, names.length + 2);
    assert.equal(new Set(inputs.map((i) => i.name)).size, inputs.length);
    for (const i of inputs) assert.ok(bytes(i.name) <= MAX_OUTPUT_NAME_BYTES, `${bytes(i.name)} bytes`);
  });

  test('cxr-opacity analyze: one row per input, the 1 GiB file TOO_LARGE without being read', async () => {
    const read: string[] = [];
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with .call(this, ...)
    const get = FileBackedObjects.prototype.get;
    FileBackedObjects.prototype.get = function (this: FileBackedObjects, b: string, k: string) { read.push(k); return get.call(this, b, k); };
    const rss0 = peakRssMb();
    try {
      const out = join(dir, 'out-cli');
      const { code, out: stdout } = await capture(() => analyzeMain([join(dir, 'in'), '--out', out, '--model', model, '--format', 'json']));
      assert.equal(code, 1, 'exit 1: one input failed');
      const rows = stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(rows.length, names.length + 2, 'one row per input');
      const byStatus = rows.map((r) => `${r.status}${r.errorCode ? ` ${r.errorCode}` : ''}`).sort();
      assert.deepEqual(byStatus, [...Array(names.length + 1).fill('SCORED'), 'FAILED TOO_LARGE'].sort());
      const failed = rows.find((r) => r.status === 'FAILED');
      assert.equal(failed.input, big);
      assert.equal(failed.errorReason, tooLargeReason(1024 ** 3, DEFAULT_MAX_INPUT_BYTES));
      for (const r of rows) assert.ok(existsSync(join(out, r.input, 'result.json')), 'result.json per input');
    } finally {
      FileBackedObjects.prototype.get = get;
    }
    assert.ok(!read.some((k) => k.endsWith(big)), 'the file over the cap was never read');
    assert.ok(read.length >= names.length, 'the others were');
    assert.ok(peakRssMb() - rss0 < 512, `peak RSS grew by ${(peakRssMb() - rss0).toFixed(0)} MB`);
  });

  test('npm start: one row per input with file names as keys (234-255 bytes in s3rver), the 1 GiB file refused unread', async () => {
    const rss0 = peakRssMb();
    const before = process.env.KEEP_SOURCE_KEYS;
    process.env.KEEP_SOURCE_KEYS = 'true'; // keys carry the file names, so s3rver gets the long keys
    try {
      const out = join(dir, 'out-start');
      const { code, out: stdout } = await capture(() => startMain([join(dir, 'in'), '--out', out, '--model', model, '--data-dir', join(dir, 'data')]));
      assert.equal(code, 1, stdout);
      const table = stdout.split('\n');
      for (const i of collectInputs([join(dir, 'in')])) {
        const row = table.find((l) => l.startsWith(i.name.slice(0, 30)) && /SCORED|FAILED|LOST/.test(l) && !l.startsWith('['));
        assert.ok(row, `a row for ${bytes(i.name)}-byte name`);
        const result = JSON.parse(readFileSync(join(out, i.name, 'result.json'), 'utf8'));
        if (i.name === big) {
          assert.equal(result.status, 'FAILED');
          assert.equal(result.errorCode, 'TOO_LARGE');
          assert.match(result.errorReason, /1 GiB \(1073741824 bytes\), over the limit of 256 MiB \(268435456 bytes\)/);
        } else {
          assert.equal(result.status, 'SCORED', `${bytes(i.name)}-byte name: ${result.errorCode} ${result.errorReason}`);
        }
      }
      assert.doesNotMatch(stdout, /LOST/);
    } finally {
      if (before === undefined) delete process.env.KEEP_SOURCE_KEYS;
      else process.env.KEEP_SOURCE_KEYS = before;
    }
    assert.ok(peakRssMb() - rss0 < 512, `peak RSS grew by ${(peakRssMb() - rss0).toFixed(0)} MB: the 1 GiB file was read`);
  });
});
