/**
 * Analysts' path, locally: a small results table on dynalite → `npm run export` layout (DynamoDB
 * ExportTableToPointInTime, DYNAMODB_JSON) → every item round-trips → the named queries of analytics/
 * run in DuckDB over the export and give the expected answers.
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { parse } from 'csv-parse/sync';
import { DynamoResults } from '../src/aws/results-table';
import { ExportDatabase, main as analyticsMain, namedQueries } from '../src/export/analytics';
import { exportTable, main as exportMain, type ExportResult, type ManifestFileEntry } from '../src/export/export';
import { LOCAL_NAMES, startLocalStack, type LocalStack } from '../src/local/stack';
import type { ResultItem } from '../src/pipeline/messages';

const id = (n: number) => createHash('sha256').update(String(n)).digest('hex').slice(0, 32);
const GRADE = (pct: number) => (pct >= 50 ? 'critical' : pct >= 30 ? 'severe' : pct >= 15 ? 'moderate' : pct >= 1 ? 'mild' : 'none');

const keyPseudonym = (n: number) => `src_${createHash('sha256').update(`k${n}`).digest('base64url').slice(0, 22)}`;

/** `studyDate`: the patient's shifted study day, as the pipeline stores it (never the real date). */
function scored(n: number, patientKey: string, pct: number, when: { studyDate?: string; createdAt: string }, right: number | null = pct * 2): ResultItem {
  const imageId = id(n);
  const at = when.studyDate ?? when.createdAt;
  return {
    imageId, status: 'SCORED', patientKey, studyKey: 'st_x', sortKey: `${at}#${imageId}`,
    ...(when.studyDate ? { studyDate: when.studyDate } : {}), createdAt: when.createdAt,
    source: { bucket: 'cxr-uploads', keyPseudonym: keyPseudonym(n), etag: 'abc', size: 1234 }, path: 'lambda',
    meta: { format: 'png' }, model: { name: 'cxr-unet-r18', version: '1.0.0' },
    opacityPctTotal: pct, opacityPctRight: right, opacityPctLeft: 0.125, geographicExtent: 3, zoneScore: 5,
    grade: GRADE(pct), riskIcu: 0.25, riskMortality: null, modelVersion: 'cxr-unet-r18@1.0.0', severityVersion: '0.1.0',
    keys: { lung: 'a', lungRight: 'b', lungLeft: 'c', opacity: 'd', overlay: 'e', result: 'f' },
    timingsMs: { decode: 1.5, inference: 20.25, total: 30 },
  };
}
function failed(n: number, code: string, reason: string, createdAt: string): ResultItem {
  const imageId = id(n);
  return {
    imageId, status: 'FAILED', patientKey: 'UNKNOWN', studyKey: 'UNKNOWN', sortKey: `${createdAt}#${imageId}`, createdAt,
    source: { bucket: 'cxr-uploads', keyPseudonym: keyPseudonym(n) }, path: 'local', errorCode: code, errorReason: reason, timingsMs: { total: 2 },
  };
}

const ITEMS: ResultItem[] = [
  // Recorded on the days they were taken; their study days are shifted back (here by 1124 days).
  scored(1, 'pt_a', 10, { studyDate: '2021-02-01', createdAt: '2024-03-01T10:00:00.000Z' }),
  scored(2, 'pt_a', 35, { studyDate: '2021-02-03', createdAt: '2024-03-03T10:00:01.000Z' }, null),
  scored(3, 'pt_a', 55.5, { studyDate: '2021-02-05', createdAt: '2024-03-05T10:00:02.000Z' }),
  scored(4, 'pt_b', 5, { createdAt: '2024-03-03T12:00:00.000Z' }),
  scored(5, 'UNKNOWN', 40, { createdAt: '2024-03-01T15:00:00.000Z' }),
  failed(6, 'UNRECOGNISED_FORMAT', 'not a PNG, JPEG or DICOM file', '2024-03-02T08:00:00.000Z'),
  failed(7, 'NOT_FRONTAL', 'ViewPosition LL: lateral views cannot be analysed', '2024-03-04T08:00:00.000Z'),
  failed(8, 'NOT_FRONTAL', 'ViewPosition LATERAL: lateral views cannot be analysed', '2024-03-04T09:00:00.000Z'),
];

describe('analyst export (DynamoDB export layout) and named queries (DuckDB)', () => {
  let stack: LocalStack;
  let out: string;
  let result: ExportResult;
  let db: ExportDatabase;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-export-'));
    stack = await startLocalStack({ dataDir: join(dir, 'stack') });
    const results = new DynamoResults(stack.ddb, LOCAL_NAMES.resultsTable);
    for (const item of ITEMS) assert.equal(await results.putIfAbsent(item), 'created');
    out = join(dir, 'export');
    result = await exportTable({ ddb: stack.ddb, tableName: LOCAL_NAMES.resultsTable, outDir: out, itemsPerFile: 3 });
    db = await ExportDatabase.open(out);
  });
  afterAll(async () => {
    db?.close();
    await stack?.stop();
  });

  test('writes the ExportTableToPointInTime layout: manifests with checksums and gzipped DynamoDB JSON lines', () => {
    assert.match(result.exportId, /^\d{14}-[0-9a-f]{8}$/);
    const exportDir = join(out, 'AWSDynamoDB', result.exportId);
    assert.equal(result.exportDir, exportDir);
    for (const f of ['_started', 'manifest-summary.json', 'manifest-summary.checksum', 'manifest-files.json', 'manifest-files.checksum']) {
      assert.ok(existsSync(join(exportDir, f)), f);
    }
    const summaryText = readFileSync(join(exportDir, 'manifest-summary.json'), 'utf8');
    assert.equal(readFileSync(join(exportDir, 'manifest-summary.checksum'), 'utf8'), createHash('md5').update(summaryText).digest('hex'));
    const summary = JSON.parse(summaryText);
    assert.equal(summary.version, '2020-06-30');
    assert.equal(summary.outputFormat, 'DYNAMODB_JSON');
    assert.equal(summary.exportType, 'FULL_EXPORT');
    assert.equal(summary.itemCount, ITEMS.length);
    assert.equal(summary.manifestFilesS3Key, `AWSDynamoDB/${result.exportId}/manifest-files.json`);
    assert.match(summary.exportArn, new RegExp(`:table/${LOCAL_NAMES.resultsTable}/export/${result.exportId}$`));
    assert.ok(summary.billedSizeBytes > 0);

    const filesText = readFileSync(join(exportDir, 'manifest-files.json'), 'utf8');
    assert.equal(readFileSync(join(exportDir, 'manifest-files.checksum'), 'utf8'), createHash('md5').update(filesText).digest('hex'));
    const entries = filesText.trim().split('\n').map((l) => JSON.parse(l) as ManifestFileEntry);
    assert.equal(entries.length, 3, '8 items at 3 per file');
    assert.deepEqual([...readdirSync(join(exportDir, 'data'))].sort(), entries.map((e) => e.dataFileS3Key.split('/').pop()).sort());
    let count = 0;
    for (const e of entries) {
      assert.match(e.dataFileS3Key, new RegExp(`^AWSDynamoDB/${result.exportId}/data/[0-9a-f]+\\.json\\.gz$`));
      const gz = readFileSync(join(out, e.dataFileS3Key));
      assert.equal(e.md5Checksum, createHash('md5').update(gz).digest('base64'));
      assert.equal(e.etag, createHash('md5').update(gz).digest('hex'));
      const lines = gunzipSync(gz).toString('utf8').trim().split('\n');
      assert.equal(lines.length, e.itemCount);
      count += e.itemCount;
    }
    assert.equal(count, ITEMS.length);
  });

  test('every item round-trips through the export', () => {
    const exported = result.dataFiles.flatMap((f) => gunzipSync(readFileSync(f)).toString('utf8').trim().split('\n'))
      .map((l) => JSON.parse(l) as { Item: Record<string, unknown> });
    for (const line of exported) assert.deepEqual(Object.keys(line), ['Item']);
    const first = exported.find((l) => (l.Item.imageId as { S: string }).S === id(2))!;
    assert.deepEqual(first.Item.opacityPctRight, { NULL: true }, 'null as DynamoDB JSON');
    assert.deepEqual(first.Item.opacityPctTotal, { N: '35' });
    const back = new Map(exported.map((l) => {
      const item = unmarshall(l.Item as Parameters<typeof unmarshall>[0]) as ResultItem;
      return [item.imageId, item];
    }));
    assert.equal(back.size, ITEMS.length);
    for (const item of ITEMS) assert.deepEqual(back.get(item.imageId), JSON.parse(JSON.stringify(item)));
  });

  test('opacity_trend_per_patient: known patients, time order, change since the previous image', async () => {
    const rows = await db.run('opacity_trend_per_patient');
    assert.deepEqual(rows.map((r) => [r.patient_key, r.image_number, r.image_id, r.opacity_pct_total, r.grade, r.change_pct_points]), [
      ['pt_a', 1, id(1), 10, 'mild', null],
      ['pt_a', 2, id(2), 35, 'severe', 25],
      ['pt_a', 3, id(3), 55.5, 'critical', 20.5],
      ['pt_b', 1, id(4), 5, 'mild', null],
    ]);
    assert.equal(rows[0].taken_at, '2021-02-01', 'the shifted study day first');
    assert.equal(rows[3].taken_at, '2024-03-03T12:00:00.000Z', 'else the processing time');
  });

  test('severe_share_per_day: severe and critical over scored images, per processing day', async () => {
    const rows = await db.run('severe_share_per_day');
    assert.deepEqual(rows, [
      { day: '2024-03-01', scored_images: 2, severe_images: 1, severe_share: 0.5 },
      { day: '2024-03-03', scored_images: 2, severe_images: 1, severe_share: 0.5 },
      { day: '2024-03-05', scored_images: 1, severe_images: 1, severe_share: 1 },
    ]);
  });

  test('failed_images: newest first, with code, reason and count per code', async () => {
    const rows = await db.run('failed_images');
    assert.deepEqual(rows.map((r) => [r.image_id, r.error_code, r.images_with_code]), [
      [id(8), 'NOT_FRONTAL', 2],
      [id(7), 'NOT_FRONTAL', 2],
      [id(6), 'UNRECOGNISED_FORMAT', 1],
    ]);
    assert.match(String(rows[2].error_reason), /not a PNG/);
  });

  test('the view types numbers and keeps NULLs; each named query has a file and runs', async () => {
    const [row] = await db.query(`SELECT opacity_pct_right, risk_mortality, geographic_extent, processing_path FROM results WHERE image_id = '${id(2)}'`);
    assert.deepEqual(row, { opacity_pct_right: null, risk_mortality: null, geographic_extent: 3, processing_path: 'lambda' });
    assert.deepEqual([...namedQueries()], ['failed_images', 'opacity_trend_per_patient', 'results_flat', 'severe_share_per_day']);
  });

  test('results_flat: every image, flat, named by the source key pseudonym only (no file names in the export)', async () => {
    const rows = await db.run('results_flat');
    assert.equal(rows.length, ITEMS.length);
    assert.equal(rows.find((r) => r.image_id === id(2))!.source_key_pseudonym, keyPseudonym(2));
    assert.ok(rows.every((r) => r.source_key === null), 'keys are not kept by default');
    assert.ok(!('source_file' in rows[0]), 'file names only with a local mapping');
  });

  test('CLIs: npm run export (against a running endpoint) then npm run analytics: CSV per query, --sql, Parquet, --mapping', async () => {
    const printed: string[] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => { printed.push(a.join(' ')); };
    try {
      const out2 = mkdtempSync(join(tmpdir(), 'cxr-export-cli-'));
      assert.equal(await exportMain(['--out', out2, '--endpoint', stack.ddbEndpoint]), 0);
      assert.match(printed.join('\n'), /exported 8 item\(s\)/);
      printed.length = 0;
      assert.equal(await analyticsMain(['--export', out2, '--format', 'csv', 'severe_share_per_day']), 0);
      assert.equal(printed.join('\n').split('\n')[0], 'day,scored_images,severe_images,severe_share');
      assert.match(printed.join('\n'), /\n2024-03-01,2,1,0.5\n/);

      // One valid CSV file per query; a header-only file for no rows; no comment lines.
      const tables = join(out2, 'tables');
      printed.length = 0;
      assert.equal(await analyticsMain(['--export', out2, '--format', 'csv', '--out', tables, 'failed_images', 'results_flat',
        '--sql', "SELECT image_id, grade FROM results WHERE grade = 'no such grade'"]), 0);
      assert.deepEqual([...readdirSync(tables)].sort(), ['failed_images.csv', 'results_flat.csv', 'sql.csv']);
      assert.equal(readFileSync(join(tables, 'sql.csv'), 'utf8'), 'image_id,grade\n');
      for (const f of readdirSync(tables)) {
        const text = readFileSync(join(tables, f), 'utf8');
        assert.doesNotMatch(text, /^#|\(no rows\)/m, f);
        const rows = parse(text, { columns: true }) as Record<string, string>[];
        assert.equal(rows.length, f === 'results_flat.csv' ? ITEMS.length : f === 'failed_images.csv' ? 3 : 0, f);
      }
      assert.equal(await analyticsMain(['--export', out2, '--format', 'csv', 'failed_images', 'results_flat']), 2, 'several CSVs need --out');

      // Parquet (DuckDB's writer), read back with its types.
      assert.equal(await analyticsMain(['--export', out2, '--format', 'parquet', '--out', tables, 'results_flat']), 0);
      const conn = await (await DuckDBInstance.create(':memory:')).connect();
      const back = (await conn.runAndReadAll(`SELECT image_id, opacity_pct_total, geographic_extent FROM read_parquet('${join(tables, 'results_flat.parquet')}') WHERE image_id = '${id(3)}'`)).getRowObjectsJS();
      assert.deepEqual(back, [{ image_id: id(3), opacity_pct_total: 55.5, geographic_extent: 3 }]);

      // --mapping: npm start's local file -> pseudonym mapping adds source_file (locally only).
      const mapping = join(out2, 'source-mapping.json');
      writeFileSync(mapping, JSON.stringify({ note: 'x', images: [{ file: 'in/chest 1.png', output: 'chest 1.png', imageId: id(1), keyPseudonym: keyPseudonym(1), status: 'SCORED' }] }));
      printed.length = 0;
      assert.equal(await analyticsMain(['--export', out2, '--mapping', mapping, '--format', 'json', '--sql', 'SELECT image_id, source_file FROM results ORDER BY created_at LIMIT 2']), 0);
      assert.deepEqual(JSON.parse(printed.join('\n')), [{ image_id: id(1), source_file: 'in/chest 1.png' }, { image_id: id(5), source_file: null }]);
      // Tables written with the mapping may name patients: owner-only, as the mapping (without it: 0644).
      assert.equal(statSync(join(tables, 'results_flat.csv')).mode & 0o777, 0o644);
      for (const format of ['csv', 'parquet']) {
        assert.equal(await analyticsMain(['--export', out2, '--mapping', mapping, '--format', format, '--out', tables, 'results_flat']), 0);
        assert.equal(statSync(join(tables, `results_flat.${format}`)).mode & 0o777, 0o600, format);
      }
    } finally {
      console.log = orig;
    }
  });
});
