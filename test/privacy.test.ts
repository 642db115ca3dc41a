/**
 * Privacy by default (issue 10): an image whose file name and DICOM tags are full of identifiers (name,
 * MRN, birth date, study date and time, UIDs, accession number, physician, institution) goes through the
 * CLI and through the local pipeline; no identifier may appear in table items, result.json or any other
 * object, the analytics export, or the logs. Results name the upload by a keyed pseudonym of its key,
 * dates only as the patient's shifted study day; the uploader gets the file -> imageId mapping locally.
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { analyzeMain } from '../src/cli/analyze';
import { dateShiftDays, SHIFT_MAX_DAYS, SHIFT_MIN_DAYS, shiftedStudyDate } from '../src/core/date-shift';
import { pseudonymise } from '../src/core/pseudonym';
import { exportTable } from '../src/export/export';
import { startLocalPipeline, type LocalPipeline } from '../src/local/pipeline';
import { SOURCE_MAPPING_FILE } from '../src/local/source-mapping';
import { LOCAL_NAMES } from '../src/local/stack';
import { safeText, storedMeta, storedSource, type ResultItem } from '../src/pipeline/messages';
import { parseStageMessage } from '../src/pipeline/message-schema';
import { makeDicom } from './helpers/fixtures';
import { chestPixels, chestPng } from './helpers/synthetic';
import { writeTinyModel } from './helpers/tiny-model';

const KEY = 'privacy-test-pseudonym-key-0123456789';
const FILE_NAME = 'DOE^JOHN_MRN-998877_2020-03-15.dcm';

/** The identifiers of the test patient, as they appear in the tags and the file name. */
const PHI = {
  patientName: 'DOE^JOHN^Q',
  patientId: 'MRN-998877',
  birthDate: '19511224',
  institutionName: 'Mercy General Privacy Ward',
  studyInstanceUid: '1.2.840.113619.2.55.3.998877',
  accession: 'ACC-55501',
  physician: 'HOUSE^GREGORY',
};

/** What must not appear anywhere. Long enough not to occur by chance in binary (PNG) objects. */
const SECRETS = [
  'DOE^JOHN', 'MRN-998877', '998877', '19511224', '1951-12-24', 'Mercy General', '1.2.840.113619', 'ACC-55501', 'HOUSE^GREGORY',
  // The study dates and times, in DICOM and ISO form.
  '20200315', '2020-03-15', '20200318', '2020-03-18', '101530', '10:15:30', '08:05:00',
];
/** Short ones, only checked in text (JSON, logs, the export). */
const TEXT_SECRETS = ['DOE', 'JOHN'];

function chestDicom(studyDate: string, studyTime: string, extra: Record<string, unknown> = {}): Buffer {
  const { width, height, data } = chestPixels({ width: 160, height: 128, rightOpacity: 0.5 });
  return makeDicom({
    rows: height, cols: width, pixels: Uint16Array.from(data, (v) => Math.round(v * 4095)), windowCenter: 2048, windowWidth: 4096,
    patientName: PHI.patientName, patientId: PHI.patientId, birthDate: PHI.birthDate, institutionName: PHI.institutionName,
    studyInstanceUid: `${PHI.studyInstanceUid}.${studyDate}`, studyDate, studyTime,
    acquisitionDateTime: `${studyDate}${studyTime}.250`,
    extra: { AccessionNumber: PHI.accession, ReferringPhysicianName: PHI.physician, SeriesDate: studyDate, ContentDate: studyDate, ...extra },
  });
}

function assertClean(haystacks: [string, string][], binary = false): void {
  const needles = binary ? SECRETS : [...SECRETS, ...TEXT_SECRETS];
  for (const [where, text] of haystacks) for (const s of needles) assert.ok(!text.includes(s), `${s} leaked into ${where}`);
}

const files = (dir: string): string[] => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? files(p) : [p];
});

describe('privacy: the functions that keep identifiers out', () => {
  test('a patient keeps one secret day shift: order and days between studies are exact, the real date is gone', () => {
    const pt = pseudonymise(KEY, 'patient', PHI.patientId)!;
    const shift = dateShiftDays(KEY, pt);
    assert.ok(shift >= SHIFT_MIN_DAYS && shift <= SHIFT_MAX_DAYS, `shift ${shift}`);
    const a = shiftedStudyDate(KEY, pt, '2020-03-15T10:15:30.250')!;
    const b = shiftedStudyDate(KEY, pt, '2020-03-18')!;
    const c = shiftedStudyDate(KEY, pt, '2021-01-02T03:04:05.500+01:00')!;
    assert.match(a, /^\d{4}-\d{2}-\d{2}$/, 'a day, no time');
    assert.notEqual(a, '2020-03-15');
    const days = (x: string, y: string) => (Date.parse(y) - Date.parse(x)) / 86_400_000;
    assert.equal(days(a, b), 3, 'interval kept');
    assert.equal(days(a, c), days('2020-03-15', '2021-01-02'), 'across a year end too');
    assert.equal(days(a, '2020-03-15'), shift);
    // Shifts of different patients differ (here for 200 patients: at most a few collisions out of 1461 values).
    const shifts = new Set(Array.from({ length: 200 }, (_, i) => dateShiftDays(KEY, pseudonymise(KEY, 'patient', `P${i}`)!)));
    assert.ok(shifts.size > 180, `${shifts.size} distinct shifts`);
    assert.notEqual(dateShiftDays('another-key-0123456789abcdef', pt), shift, 'the shift depends on the secret');
    assert.equal(shiftedStudyDate(KEY, undefined, '2020-03-15'), undefined, 'no patient: no date at all');
    for (const bad of [undefined, '', '2020-02-30', 'yesterday', '20200315']) assert.equal(shiftedStudyDate(KEY, pt, bad), undefined, String(bad));
  });

  test('stored meta has no acquisition time and no control characters; text is length-limited', () => {
    const meta = storedMeta({
      format: 'dicom', modality: 'DX\r\n{"level":"ERROR","message":"forged"}', viewPosition: '\u001b[31mPA', acquiredAt: '2020-03-15T10:15:30',
      pixelSpacingMm: [0.14, 0.14], window: { center: 2048, width: 4096, source: 'dicom' },
    });
    assert.equal(meta.acquiredAt, undefined);
    assert.doesNotMatch(JSON.stringify(meta), /\\r|\\n|\\u001b/);
    assert.ok(meta.modality!.length <= 64);
    assert.equal(meta.viewPosition, '[31mPA');
    assert.deepEqual(meta.pixelSpacingMm, [0.14, 0.14]);
    assert.equal(safeText('a\u0000b\u2028c'.repeat(200), 50).length, 50);
  });

  test('the stored source is the key\'s pseudonym; the key itself and the file\'s checksum (ETag) only with keepSourceKeys', () => {
    const src = { bucket: 'up', key: `uploads/${FILE_NAME}`, etag: 'e1', size: 10 };
    const s = storedSource(KEY, src);
    assert.deepEqual(Object.keys(s).sort(), ['bucket', 'keyPseudonym', 'size']);
    assert.equal(s.keyPseudonym, pseudonymise(KEY, 'source', src.key));
    assert.match(s.keyPseudonym, /^src_[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(storedSource(KEY, src, true), { ...s, key: src.key, etag: 'e1' });
  });

  test('stage messages carrying a raw key, a raw patient id or a real date-time are refused', () => {
    const ok = {
      version: 1, imageId: 'a'.repeat(32), status: 'FAILED', receivedAt: '2026-01-01T00:00:00Z', path: 'lambda', timingsMs: {},
      source: storedSource(KEY, { bucket: 'up', key: 'uploads/x.dcm' }), error: { code: 'EMPTY', reason: 'empty' },
    };
    assert.doesNotThrow(() => parseStageMessage(JSON.stringify(ok)));
    assert.throws(() => parseStageMessage(JSON.stringify({ ...ok, source: { bucket: 'up', key: 'uploads/x.dcm' } })));
    assert.throws(() => parseStageMessage(JSON.stringify({ ...ok, patientKey: PHI.patientId })));
    assert.throws(() => parseStageMessage(JSON.stringify({ ...ok, studyDate: '2020-03-15T10:15:30' })));
    assert.equal((parseStageMessage(JSON.stringify({ ...ok, acquiredAt: '2020-03-15T10:15:30' })) as { acquiredAt?: string }).acquiredAt, undefined);
  });
});

describe('privacy: identifiers in file names and tags through the local pipeline and the export', () => {
  let p: LocalPipeline;
  let dir: string;
  const logs: string[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cxr-privacy-'));
    p = await startLocalPipeline({ model: writeTinyModel(join(dir, 'model'), { size: 128 }), dataDir: join(dir, 'data'), retryDelayMs: 20, logLevel: 'DEBUG', logSink: (l) => logs.push(l) });
  });
  afterAll(async () => p?.stop());

  test('no identifier in items, result.json, other objects, the export or the logs; the trend still works', async () => {
    const first = await p.upload(`uploads/${FILE_NAME}`, chestDicom('20200315', '101530'));
    const second = await p.upload('uploads/DOE^JOHN_MRN-998877_2020-03-18.dcm', chestDicom('20200318', '080500'));
    const png = await p.upload('uploads/DOE, JOHN 19511224.png', await chestPng({ rightOpacity: 0.25 }), { 'patient-id': PHI.patientId });
    const lateral = await p.upload('uploads/DOE^JOHN lateral 2020-03-15.dcm', chestDicom('20200315', '101530', { ViewPosition: 'LL' }));
    await p.drain();

    const items = ((await p.stack.ddb.send(new ScanCommand({ TableName: LOCAL_NAMES.resultsTable }))).Items ?? []).map((i) => unmarshall(i) as ResultItem);
    assert.equal(items.length, 4);
    const byId = new Map(items.map((i) => [i.imageId, i]));
    const [a, b, c, d] = [first, second, png, lateral].map((id) => byId.get(id)!);
    assert.equal(a.status, 'SCORED', `${a.errorCode} ${a.errorReason}`);
    assert.equal(b.status, 'SCORED');
    assert.equal(d.status, 'FAILED', 'a lateral view is refused');
    for (const it of items) {
      assert.equal(it.source.key, undefined, 'no upload key in the item');
      assert.match(it.source.keyPseudonym, /^src_/);
      assert.equal((it as { acquiredAt?: string }).acquiredAt, undefined);
      assert.equal(it.meta?.acquiredAt, undefined);
    }
    // One patient whichever way the id came (tags or upload metadata); the trend keeps order and days.
    assert.equal(a.patientKey, b.patientKey);
    assert.equal(c.patientKey, a.patientKey);
    assert.match(a.studyDate!, /^\d{4}-\d{2}-\d{2}$/);
    assert.equal((Date.parse(b.studyDate!) - Date.parse(a.studyDate!)) / 86_400_000, 3, 'three days apart, as taken');
    assert.ok(a.sortKey.startsWith(`${a.studyDate}#`));
    const trend = (await p.results.listByPatient(a.patientKey)).items;
    assert.deepEqual(trend.filter((i) => i.studyDate).map((i) => i.imageId), [first, lateral, second].filter((id) => byId.get(id)!.studyDate)
      .sort((x, y) => byId.get(x)!.sortKey.localeCompare(byId.get(y)!.sortKey)));
    assert.ok(trend.findIndex((i) => i.imageId === first) < trend.findIndex((i) => i.imageId === second), 'the byPatient index keeps study order');

    const haystacks: [string, string][] = logs.map((l, i) => [`log line ${i}`, l]);
    items.forEach((i) => haystacks.push([`item ${i.imageId}`, JSON.stringify(i)]));
    const binaries: [string, string][] = [];
    const listed = await p.stack.s3.send(new ListObjectsV2Command({ Bucket: LOCAL_NAMES.resultsBucket }));
    assert.ok((listed.Contents ?? []).length >= 13);
    for (const o of listed.Contents ?? []) {
      assert.ok(!o.Key!.includes('DOE'), `object key ${o.Key}`);
      const body = Buffer.from(await (await p.stack.s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.resultsBucket, Key: o.Key! }))).Body!.transformToByteArray());
      (o.Key!.endsWith('.json') ? haystacks : binaries).push([`s3 ${o.Key}`, body.toString('latin1')]);
    }
    const exp = await exportTable({ ddb: p.stack.ddb, tableName: LOCAL_NAMES.resultsTable, outDir: join(dir, 'export') });
    assert.equal(exp.itemCount, 4);
    for (const f of files(exp.exportDir)) haystacks.push([`export ${f}`, f.endsWith('.gz') ? gunzipSync(readFileSync(f)).toString('utf8') : readFileSync(f, 'utf8')]);
    assert.ok(haystacks.some(([w, t]) => w.startsWith('export') && t.includes(a.studyDate!)), 'the export holds the shifted day');
    assert.ok(logs.length > 5);
    assertClean(haystacks);
    assertClean(binaries, true);
    assert.equal(p.ingest.deadLetters.length + p.scoring.deadLetters.length, 0);
  });
});

describe('privacy: the CLI', () => {
  test('result.json and the other outputs hold no identifier; source-mapping.json maps file -> imageId', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-privacy-cli-'));
    const input = join(dir, FILE_NAME);
    writeFileSync(input, chestDicom('20200315', '101530'));
    const out = join(dir, 'out');
    const printed: string[] = [];
    const log = console.log;
    const err = process.stderr.write.bind(process.stderr);
    console.log = (...a: unknown[]) => { printed.push(a.join(' ')); };
    process.stderr.write = (() => true) as typeof process.stderr.write;
    let code: number;
    try {
      code = await analyzeMain([input, '--out', out, '--model', writeTinyModel(join(dir, 'model'), { size: 128 }), '--format', 'json']);
    } finally {
      console.log = log;
      process.stderr.write = err;
    }
    assert.equal(code, 0, printed.join('\n'));
    const result = JSON.parse(readFileSync(join(out, FILE_NAME, 'result.json'), 'utf8')) as ResultItem & { input?: string };
    assert.equal(result.status, 'SCORED');
    assert.equal(result.input, undefined, 'no input path in result.json');
    assert.match(result.studyDate ?? '', /^\d{4}-\d{2}-\d{2}$/);
    const outputs = files(join(out, FILE_NAME));
    assertClean(outputs.filter((f) => f.endsWith('.json')).map((f) => [f.slice(out.length), readFileSync(f, 'utf8')]));
    assertClean(outputs.filter((f) => !f.endsWith('.json')).map((f) => [f.slice(out.length), readFileSync(f).toString('latin1')]), true);
    // The terminal shows the user's own file name, but nothing from the tags.
    const tagOnly = SECRETS.filter((s) => !FILE_NAME.includes(s));
    for (const s of tagOnly) assert.ok(!printed.join('\n').includes(s), `${s} printed`);
    const mapping = JSON.parse(readFileSync(join(out, SOURCE_MAPPING_FILE), 'utf8')) as { images: { file: string; imageId: string; keyPseudonym: string }[] };
    assert.deepEqual(mapping.images.map((m) => [m.file, m.imageId, m.keyPseudonym]), [[input, result.imageId, result.source.keyPseudonym]]);
    assert.equal(statSync(join(out, SOURCE_MAPPING_FILE)).mode & 0o077, 0, 'the mapping is readable by its owner only');
  });
});
