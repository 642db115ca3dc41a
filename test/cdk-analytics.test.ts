/**
 * The Athena named queries of the CDK analytics construct are the files of analytics/queries (what
 * `npm run analytics` runs locally), and the `results` view's DDL is deployed with them. Here they run
 * for real on DuckDB over a small table shaped like the Glue table (`snapshot` partition + `item` struct
 * of DynamoDB JSON, with ITEM_TYPE's exact types), with an older snapshot and a manifest-like null row
 * that the view must ignore.
 */
import { beforeAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ITEM_TYPE } from '../cdk/lib/analytics';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NAMED_QUERIES, RESULTS_VIEW_QUERY } from '../cdk/lib/analytics-queries';
import { namedQueries, querySql } from '../src/export/analytics';

/** The Glue (Hive) column type in DuckDB syntax. */
const duckType = (hive: string): string => hive
  .replace(/struct</g, 'STRUCT(').replace(/map<string,/g, 'MAP(VARCHAR, ').replace(/>/g, ')')
  .replace(/(\w+):/g, '"$1" ').replace(/\bstring\b/g, 'VARCHAR');

/** Top-level attribute names of ITEM_TYPE (split `struct<a:...,b:...>` at depth 1). */
function topLevelNames(hive: string): string[] {
  const body = hive.slice('struct<'.length, -1);
  const names: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= body.length; i++) {
    const ch = body[i];
    if (ch === '<') depth++;
    else if (ch === '>') depth--;
    else if ((ch === ',' && depth === 0) || i === body.length) {
      names.push(body.slice(start, i).split(':')[0]!);
      start = i + 1;
    }
  }
  return names;
}
/** DuckDB's JSON-to-struct cast wants every key: absent attributes become null, as in the SerDe. */
const complete = (item: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(topLevelNames(ITEM_TYPE).map((k) => [k, item[k] ?? null]));

const S = (s: string) => ({ s });
const N = (n: number) => ({ n: String(n) });
const ROWS: [string, Record<string, unknown> | null][] = [
  // An older export: must not be counted.
  ['2025-03-01T02:00:00Z', { imageId: S('old'), patientKey: S('p1'), status: S('SCORED'), sortKey: S('2025-02-28#old'), createdAt: S('2025-02-28T00:00:00Z'), opacityPctTotal: N(99), grade: S('critical') }],
  ['2025-03-02T02:00:00Z', { imageId: S('a'), source: { m: { keyPseudonym: S('src_a'), key: null } }, patientKey: S('p1'), studyKey: S('s1'), status: S('SCORED'), sortKey: S('2022-01-10#a'), studyDate: S('2022-01-10'), createdAt: S('2025-03-01T10:05:00Z'), opacityPctTotal: N(10), grade: S('mild') }],
  ['2025-03-02T02:00:00Z', { imageId: S('b'), patientKey: S('p1'), studyKey: S('s2'), status: S('SCORED'), sortKey: S('2022-01-11#b'), studyDate: S('2022-01-11'), createdAt: S('2025-03-02T09:01:00Z'), opacityPctTotal: N(35.5), grade: S('severe') }],
  ['2025-03-02T02:00:00Z', { imageId: S('d'), patientKey: S('p2'), status: S('SCORED'), sortKey: S('2023-07-30#d'), studyDate: S('2023-07-30'), createdAt: S('2025-03-02T11:01:00Z'), opacityPctTotal: N(0.5), grade: S('none') }],
  ['2025-03-02T02:00:00Z', { imageId: S('c'), patientKey: S('UNKNOWN'), status: S('FAILED'), sortKey: S('2025-03-02T12:00:00Z#c'), createdAt: S('2025-03-02T12:00:00Z'), errorCode: S('LATERAL_VIEW'), errorReason: S('lateral view: only frontal (PA/AP) views are measured') }],
  ['2025-03-02T02:00:00Z', { imageId: S('e'), patientKey: S('UNKNOWN'), status: S('FAILED'), sortKey: S('2025-03-02T12:30:00Z#e'), createdAt: S('2025-03-02T12:30:00Z'), errorCode: S('LATERAL_VIEW'), errorReason: S('lateral view: only frontal (PA/AP) views are measured') }],
  // A manifest file parsed by the JSON SerDe with ignore.malformed.json: a row with a null item.
  ['2025-03-02T02:00:00Z', null],
];

let conn: DuckDBConnection;
const run = async (name: string): Promise<Record<string, unknown>[]> => {
  const q = NAMED_QUERIES.find((x) => x.name === name)!;
  return (await conn.runAndReadAll(q.sql)).getRowObjectsJson() as Record<string, unknown>[];
};

beforeAll(async () => {
  conn = await (await DuckDBInstance.create(':memory:')).connect();
  await conn.run(`CREATE TABLE results_export (snapshot VARCHAR, item ${duckType(ITEM_TYPE)})`);
  for (const [snapshot, item] of ROWS) {
    const value = item ? `'${JSON.stringify(complete(item)).replace(/'/g, "''")}'::JSON::${duckType(ITEM_TYPE)}` : 'NULL';
    await conn.run(`INSERT INTO results_export VALUES ('${snapshot}', ${value})`);
  }
  await run(RESULTS_VIEW_QUERY);
});

describe('Athena named queries (run on DuckDB over a Glue-shaped table)', () => {
  test('are the files of analytics/queries, same names and text, plus the results view of analytics/schema', () => {
    const dir = join(__dirname, '..', 'analytics');
    const files = readdirSync(join(dir, 'queries')).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -4)).sort();
    assert.deepEqual(namedQueries(), files);
    assert.deepEqual(NAMED_QUERIES.map((q) => q.name), [RESULTS_VIEW_QUERY, ...files]);
    for (const name of files) assert.equal(NAMED_QUERIES.find((q) => q.name === name)!.sql, querySql(name), name);
    assert.equal(NAMED_QUERIES[0]!.sql, readFileSync(join(dir, 'schema', 'results.view.sql'), 'utf8'));
  });

  test('the results view reads only the newest snapshot and drops manifest rows', async () => {
    const rows = await run('results_flat');
    assert.deepEqual(rows.map((r) => r.image_id), ['a', 'b', 'd', 'c', 'e']);
    assert.ok(rows.every((r) => r.snapshot === '2025-03-02T02:00:00Z'));
    assert.equal(rows[0]!.source_key_pseudonym, 'src_a', 'the source pseudonym, through the Glue struct type');
    assert.equal(rows[0]!.source_key, null, 'no key unless the deployment keeps keys');
  });

  test('opacity trend per patient: scored images in time order with the change since the previous one', async () => {
    const rows = await run('opacity_trend_per_patient');
    assert.deepEqual(rows.map((r) => [r.patient_key, r.image_id, r.taken_at, r.opacity_pct_total, r.change_pct_points]), [
      ['p1', 'a', '2022-01-10', 10, null], ['p1', 'b', '2022-01-11', 35.5, 25.5], ['p2', 'd', '2023-07-30', 0.5, null],
    ]);
  });

  test('severe share per (processing) day: shifted study days do not line up across patients', async () => {
    const rows = await run('severe_share_per_day');
    assert.deepEqual(rows.map((r) => [r.day, Number(r.scored_images), Number(r.severe_images), r.severe_share]), [
      ['2025-03-01', 1, 0, 0], ['2025-03-02', 2, 1, 0.5],
    ]);
  });

  test('failed images: newest first, with the count per code', async () => {
    const rows = await run('failed_images');
    assert.deepEqual(rows.map((r) => [r.image_id, r.error_code, Number(r.images_with_code)]), [['e', 'LATERAL_VIEW', 2], ['c', 'LATERAL_VIEW', 2]]);
  });
});
