/**
 * Issue 6: every input, hostile or not, ends as exactly one results-table item with the right status and
 * reason; nothing crashes, poison messages end in the dead-letter list; no DICOM identifier leaks into
 * logs, S3 objects or table items. Runs the local pipeline (s3rver + dynalite, real handlers) with the
 * small test model.
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import sharp from 'sharp';
import { startLocalPipeline, type LocalPipeline } from '../src/local/pipeline';
import { LOCAL_NAMES } from '../src/local/stack';
import type { ResultItem } from '../src/pipeline/messages';
import {
  compressedVariant, DEFAULT_IDENTIFIERS, hasTool, hostileInputs, makeDicom, makePng, VARIANTS, type Variant,
} from './helpers/fixtures';
import { chestPixels } from './helpers/synthetic';
import { baseDicom, insertBeforePixelData, nestedSequences, oversizedPixelData, taggedWithControlText } from './helpers/hostile-files';
import { writeTinyModel } from './helpers/tiny-model';

/** A synthetic chest as stored DICOM values (12-bit), so DICOM inputs give known masks too. */
function chestStored(monochrome1 = false): { rows: number; cols: number; pixels: Uint16Array } {
  const { width, height, data } = chestPixels({ width: 160, height: 128, rightOpacity: 0.5 });
  return { rows: height, cols: width, pixels: Uint16Array.from(data, (v) => Math.round((monochrome1 ? 1 - v : v) * 4095)) };
}

describe('hostile and varied inputs through the local pipeline', () => {
  let p: LocalPipeline;
  const logs: string[] = [];
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-hostile-'));
    p = await startLocalPipeline({ model: writeTinyModel(join(dir, 'model'), { size: 128 }), dataDir: dir, retryDelayMs: 20, logLevel: 'INFO', logSink: (l) => logs.push(l) });
  });
  afterAll(async () => p?.stop());

  test('each input ends as exactly one item with the right status and reason', async () => {
    const expected = new Map<string, { name: string; status: 'SCORED' | 'FAILED'; code?: string }>();
    const add = async (name: string, bytes: Uint8Array, status: 'SCORED' | 'FAILED', code?: string, key = `uploads/hostile/${name}`) => {
      expected.set(await p.upload(key, bytes), { name, status, code });
    };
    for (const h of await hostileInputs()) await add(h.name, h.bytes, 'FAILED', h.code);
    const win = { windowCenter: 2048, windowWidth: 4096 };
    await add('MONOCHROME2 DICOM', makeDicom({ ...chestStored(), ...win, photometric: 'MONOCHROME2' }), 'SCORED');
    await add('MONOCHROME1 DICOM', makeDicom({ ...chestStored(true), ...win, photometric: 'MONOCHROME1' }), 'SCORED');
    await add('implicit VR DICOM', makeDicom({ ...chestStored(), ...win, transferSyntax: 'implicit' }), 'SCORED');
    const src = makeDicom({ ...chestStored(), ...win });
    for (const v of Object.keys(VARIANTS) as Variant[]) {
      if (!hasTool(VARIANTS[v].tool)) {
        console.warn(`hostile.test: ${VARIANTS[v].tool} not installed; ${v} variant not exercised`);
        continue;
      }
      await add(`${v} DICOM`, compressedVariant(src, v, { ...chestStored(), ...win }), 'SCORED');
    }
    const { width, height, data } = chestPixels({ rightOpacity: 0.5 });
    const rgb = Buffer.alloc(width * height * 3);
    data.forEach((v, i) => { rgb[3 * i] = Math.round(v * 255); rgb[3 * i + 1] = Math.round(v * 230); rgb[3 * i + 2] = Math.round(v * 200); });
    await add('RGB photograph PNG', await sharp(rgb, { raw: { width, height, channels: 3 } }).png().toBuffer(), 'SCORED');
    await add('16-bit PNG', await sharp(Uint16Array.from(data, (v) => Math.round(v * 65535)), { raw: { width, height, channels: 1 } }).toColourspace('grey16').png().toBuffer(), 'SCORED');
    await add('key with spaces + unicode', await sharp(rgb, { raw: { width, height, channels: 3 } }).jpeg().toBuffer(), 'SCORED', undefined, 'uploads/hostile/Ünïcødé name (1) + x#y.jpg');
    // A photograph with no chest in it: the model finds no lungs.
    await add('uniform grey photo', await sharp({ create: { width: 200, height: 150, channels: 3, background: { r: 200, g: 190, b: 180 } } }).jpeg().toBuffer(), 'FAILED', 'NO_LUNGS_FOUND');
    await p.drain();

    const items = ((await p.stack.ddb.send(new ScanCommand({ TableName: LOCAL_NAMES.resultsTable }))).Items ?? []).map((i) => unmarshall(i) as ResultItem);
    assert.equal(items.length, expected.size, 'one item per input, none lost, none duplicated');
    for (const it of items) {
      const want = expected.get(it.imageId);
      assert.ok(want, `unexpected item ${it.imageId}`);
      assert.equal(it.status, want.status, `${want.name}: ${it.errorCode} ${it.errorReason}`);
      if (want.code) assert.equal(it.errorCode, want.code, `${want.name}: ${it.errorReason}`);
      if (it.status === 'FAILED') assert.ok((it.errorReason ?? '').length > 15, `${want.name} has an actionable reason`);
      if (it.status === 'SCORED') assert.ok(Math.abs(it.opacityPctRight! - 50) < 8, `${want.name}: right lung half opaque, got ${it.opacityPctRight}`);
    }
    assert.equal(p.ingest.deadLetters.length + p.scoring.deadLetters.length, 0);
  });

  test('DICOM identifiers appear in no log line, S3 object or table item; only the pseudonym does', async () => {
    const id = await p.upload('uploads/phi.dcm', makeDicom({ ...chestStored(), windowCenter: 2048, windowWidth: 4096, ...DEFAULT_IDENTIFIERS }));
    await p.drain();
    const item = await p.results.get(id);
    assert.equal(item?.status, 'SCORED');
    assert.match(item!.patientKey, /^pt_/);
    assert.match(item!.studyKey, /^st_/);
    const secrets = [DEFAULT_IDENTIFIERS.patientName, 'Testperson', DEFAULT_IDENTIFIERS.patientId, DEFAULT_IDENTIFIERS.birthDate, DEFAULT_IDENTIFIERS.institutionName, DEFAULT_IDENTIFIERS.studyInstanceUid];
    const haystacks: [string, string][] = logs.map((l, i) => [`log line ${i}`, l]);
    const items = (await p.stack.ddb.send(new ScanCommand({ TableName: LOCAL_NAMES.resultsTable }))).Items ?? [];
    items.forEach((i) => haystacks.push([`item ${i.imageId?.S}`, JSON.stringify(i)]));
    const listed = await p.stack.s3.send(new ListObjectsV2Command({ Bucket: LOCAL_NAMES.resultsBucket }));
    for (const o of listed.Contents ?? []) {
      const body = await (await p.stack.s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.resultsBucket, Key: o.Key! }))).Body!.transformToByteArray();
      haystacks.push([`s3 ${o.Key}`, Buffer.from(body).toString('latin1')]);
    }
    assert.ok(haystacks.length > 10);
    for (const [where, text] of haystacks) for (const s of secrets) assert.ok(!text.includes(s), `${s} leaked into ${where}`);
  });

  test('issue 10 inputs through the local pipeline: one item each, the right code, no tag text or file name kept', async () => {
    const { width, height, data } = chestPixels({ rightOpacity: 0.5 });
    const rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      rgba.fill(Math.round(data[i] * 255), 4 * i, 4 * i + 3);
      rgba[4 * i + 3] = i % width < width / 2 ? 0 : 255;
    }
    const files: Array<[string, Uint8Array, string]> = [
      ['nested-80000.dcm', insertBeforePixelData(baseDicom(), nestedSequences(80_000, 'explicit', 'undefined')), 'TOO_COMPLEX'],
      ['doubled-rows.dcm', oversizedPixelData(2), 'UNSUPPORTED_IMAGE'],
      ['rescale-1e308.dcm', baseDicom({ rescaleSlope: 1e308, rescaleIntercept: 0 }), 'INVALID_HEADER'],
      ['eight-by-eight.dcm', makeDicom({ rows: 8, cols: 8 }), 'TOO_SMALL'],
      ['photometric-ctl.dcm', taggedWithControlText('photometric'), 'UNSUPPORTED_IMAGE'],
      ['ts-ctl.dcm', taggedWithControlText('transferSyntax'), 'UNSUPPORTED_TRANSFER_SYNTAX'],
      ['half-transparent.png', await makePng({ width, height, channels: 4, samples: rgba }), 'UNSUPPORTED_IMAGE'],
    ];
    const ids = new Map<string, string>();
    for (const [name, bytes] of files) ids.set(await p.upload(`uploads/DOE^JOHN_MRN-998877/${name}`, bytes), name);
    await p.drain();
    for (const [id, name] of ids) {
      const it = await p.results.get(id);
      assert.equal(it?.status, 'FAILED', `${name}: one FAILED item`);
      assert.equal(it!.errorCode, files.find((f) => f[0] === name)![2], `${name}: ${it!.errorReason}`);
      const text = JSON.stringify(it);
      assert.ok(!/DOE\^JOHN|998877|FORGED|forged|QQQQ|\\u001b|\\r\\n/.test(text), `${name}: the item keeps no file name or tag text: ${text}`);
    }
    for (const l of logs) assert.ok(!/DOE\^JOHN|998877|FORGED|forged/.test(l), `a log line keeps a file name or tag text: ${l}`);
  });
});
