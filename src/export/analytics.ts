/**
 * The analysts' named queries (analytics/queries/*.sql) on one machine, with DuckDB reading an export
 * written by `npm run export` (or downloaded from the S3 export of the AWS table: same layout).
 *
 *   npm run analytics -- --export DIR [--format table|json|csv] [QUERY ...]
 *
 * DIR is an export (…/AWSDynamoDB/<exportId>) or the folder passed to `npm run export --out`, in which
 * case the newest export in it is used. With no QUERY, lists the named queries.
 *
 * Set-up mirrors Athena: analytics/schema/results_export.duckdb.sql defines the source relation (Athena:
 * results_export.athena.sql, a Glue table), then analytics/schema/results.view.sql and the named queries
 * run with the same text on both engines.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { csvField } from '../csv';

export const ANALYTICS_DIR = join(__dirname, '..', '..', 'analytics');
const QUERIES_DIR = join(ANALYTICS_DIR, 'queries');

export type Row = Record<string, string | number | boolean | null>;

export function namedQueries(): string[] {
  return readdirSync(QUERIES_DIR).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -4)).sort();
}

export function querySql(name: string): string {
  if (!/^[a-z0-9_]+$/.test(name) || !namedQueries().includes(name)) {
    throw new Error(`no named query '${name}' (have: ${namedQueries().join(', ')})`);
  }
  return readFileSync(join(QUERIES_DIR, `${name}.sql`), 'utf8');
}

/** An export directory (the one holding manifest-summary.json): DIR itself or the newest under DIR/AWSDynamoDB. */
export function resolveExportDir(dir: string): string {
  const abs = resolve(dir);
  if (existsSync(join(abs, 'manifest-summary.json'))) return abs;
  const root = join(abs, 'AWSDynamoDB');
  const ids = existsSync(root)
    ? readdirSync(root).filter((d) => existsSync(join(root, d, 'manifest-summary.json')))
    : [];
  if (ids.length === 0) throw new Error(`${abs} holds no DynamoDB export (no manifest-summary.json)`);
  // Export ids start with the export time in epoch millis, so the newest sorts last.
  ids.sort((a, b) => a.localeCompare(b) || statSync(join(root, a)).mtimeMs - statSync(join(root, b)).mtimeMs);
  return join(root, ids[ids.length - 1]);
}

const sqlString = (s: string) => s.replace(/'/g, "''");

/** A DuckDB session over one export, with `results_export` and the `results` view defined. */
export class ExportDatabase {
  private constructor(private readonly instance: DuckDBInstance, private readonly conn: DuckDBConnection, readonly exportDir: string) {}

  static async open(dir: string): Promise<ExportDatabase> {
    const exportDir = resolveExportDir(dir);
    const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
    const conn = await instance.connect();
    const db = new ExportDatabase(instance, conn, exportDir);
    const glob = join(exportDir, 'data', '*.json.gz');
    const source = readFileSync(join(ANALYTICS_DIR, 'schema', 'results_export.duckdb.sql'), 'utf8')
      .replaceAll('${EXPORT_DATA_GLOB}', sqlString(glob));
    await conn.run(source);
    await conn.run(readFileSync(join(ANALYTICS_DIR, 'schema', 'results.view.sql'), 'utf8'));
    return db;
  }

  async query(sql: string): Promise<Row[]> {
    const reader = await this.conn.runAndReadAll(sql);
    return reader.getRowObjectsJS().map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)])));
  }

  run(name: string): Promise<Row[]> {
    return this.query(querySql(name));
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

/** DuckDB gives BIGINT as bigint; counts here are small, so plain numbers read better. */
function plain(v: unknown): string | number | boolean | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof Date) return v.toISOString();
  return JSON.stringify(v);
}

function format(rows: Row[], how: string): string {
  if (how === 'json') return JSON.stringify(rows, null, 2);
  if (rows.length === 0) return '(no rows)';
  const cols = Object.keys(rows[0]);
  const cell = (v: Row[string]) => (v === null ? '' : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : String(v));
  if (how === 'csv') {
    return [cols.join(','), ...rows.map((r) => cols.map((c) => csvField(r[c] === null ? '' : String(r[c]))).join(','))].join('\n');
  }
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ');
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { export: { type: 'string' }, format: { type: 'string', default: 'table' }, help: { type: 'boolean' } },
  });
  if (values.help || !values.export) {
    console.error('usage: npm run analytics -- --export DIR [--format table|json|csv] [QUERY ...]');
    console.error(`named queries: ${namedQueries().join(', ')}`);
    return values.help ? 0 : 2;
  }
  if (positionals.length === 0) {
    console.log(namedQueries().join('\n'));
    return 0;
  }
  const db = await ExportDatabase.open(values.export);
  try {
    for (const name of positionals) {
      const rows = await db.run(name);
      if (positionals.length > 1) console.log(`\n# ${name}`);
      console.log(format(rows, values.format ?? 'table'));
    }
  } finally {
    db.close();
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
    console.error(`analytics failed: ${e.message}`);
    process.exitCode = 1;
  });
}
