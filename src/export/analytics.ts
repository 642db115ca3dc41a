/**
 * The analysts' named queries (analytics/queries/*.sql) on one machine, with DuckDB reading an export
 * written by `npm run export` (or downloaded from the S3 export of the AWS table: same layout).
 *
 *   npm run analytics -- --export DIR [QUERY ... | --sql TEXT] [--format table|json|csv|parquet] [--out DIR] [--mapping FILE]
 *
 * DIR is an export (…/AWSDynamoDB/<exportId>) or the folder passed to `npm run export --out`, in which
 * case the newest export in it is used. With no QUERY, lists the named queries.
 *
 * Set-up mirrors Athena: analytics/schema/results_export.duckdb.sql defines the source relation (Athena:
 * results_export.athena.sql, a Glue table), then analytics/schema/results.view.sql and the named queries
 * run with the same text on both engines.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
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

/** A query's answer with its columns, so an empty answer still has a header. */
export interface Table { columns: string[]; rows: Row[] }

export interface OpenOptions {
  /**
   * npm start's OUT/source-mapping.json: adds `source_file` (the file name each source key pseudonym was
   * uploaded from) to the `results` view. Local only: the mapping never leaves the uploader's machine,
   * and the file names it holds may name patients.
   */
  mapping?: string;
}

/** A DuckDB session over one export, with `results_export` and the `results` view defined. */
export class ExportDatabase {
  private constructor(private readonly instance: DuckDBInstance, private readonly conn: DuckDBConnection, readonly exportDir: string) {}

  static async open(dir: string, opts: OpenOptions = {}): Promise<ExportDatabase> {
    const exportDir = resolveExportDir(dir);
    const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
    const conn = await instance.connect();
    const db = new ExportDatabase(instance, conn, exportDir);
    const glob = join(exportDir, 'data', '*.json.gz');
    const source = readFileSync(join(ANALYTICS_DIR, 'schema', 'results_export.duckdb.sql'), 'utf8')
      .replaceAll('${EXPORT_DATA_GLOB}', sqlString(glob))
      .replaceAll('${SNAPSHOT}', sqlString(basename(exportDir)));
    await conn.run(source);
    await conn.run(readFileSync(join(ANALYTICS_DIR, 'schema', 'results.view.sql'), 'utf8'));
    if (opts.mapping) {
      // The mapping's images[] as (key_pseudonym, source_file); the same film under two names lists both.
      await conn.run(`CREATE TABLE source_mapping AS
        SELECT i.keyPseudonym AS key_pseudonym, string_agg(DISTINCT i.file, ' | ') AS source_file
        FROM (SELECT unnest(images) AS i FROM read_json('${sqlString(resolve(opts.mapping))}', maximum_object_size = 1073741824))
        WHERE i.keyPseudonym IS NOT NULL GROUP BY 1`);
      await conn.run('ALTER VIEW results RENAME TO results_pseudonymous');
      await conn.run(`CREATE VIEW results AS SELECT r.*, m.source_file FROM results_pseudonymous r
        LEFT JOIN source_mapping m ON m.key_pseudonym = r.source_key_pseudonym`);
    }
    return db;
  }

  async query(sql: string): Promise<Row[]> {
    return (await this.table(sql)).rows;
  }

  async table(sql: string): Promise<Table> {
    const reader = await this.conn.runAndReadAll(sql);
    const rows = reader.getRowObjectsJS().map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)])));
    return { columns: reader.columnNames(), rows };
  }

  run(name: string): Promise<Row[]> {
    return this.query(querySql(name));
  }

  /** Writes a query's answer as Parquet (DuckDB's writer), typed as the query types it. */
  async writeParquet(sql: string, file: string): Promise<void> {
    await this.conn.run(`COPY (${stripSemicolon(sql)}) TO '${sqlString(resolve(file))}' (FORMAT parquet)`);
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

const stripSemicolon = (sql: string) => sql.replace(/;\s*$/, '');

/** DuckDB gives BIGINT as bigint; counts here are small, so plain numbers read better. */
function plain(v: unknown): string | number | boolean | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof Date) return v.toISOString();
  return JSON.stringify(v);
}

/**
 * CSV of a table (RFC 4180 fields; LF line ends, as DuckDB's own COPY writes): a header always (also for
 * no rows), empty fields for NULL, numbers as DuckDB gives them.
 */
export function tableCsv(t: Table): string {
  const field = (v: Row[string]) => csvField(v === null ? '' : String(v));
  return `${[t.columns.map((c) => csvField(c)).join(','), ...t.rows.map((r) => t.columns.map((c) => field(r[c])).join(','))].join('\n')}\n`;
}

function textTable(t: Table): string {
  const cell = (v: Row[string]) => (v === null ? '' : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : String(v));
  const widths = t.columns.map((c) => Math.max(c.length, ...t.rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(t.columns), line(widths.map((w) => '-'.repeat(w))), ...t.rows.map((r) => line(t.columns.map((c) => cell(r[c])))), ...(t.rows.length === 0 ? ['(no rows)'] : [])].join('\n');
}

const USAGE = `usage: npm run analytics -- --export DIR [QUERY ... | --sql "SELECT ... FROM results"]
                             [--format table|json|csv|parquet] [--out DIR] [--mapping OUT/source-mapping.json]
  QUERY         named queries (analytics/queries/*.sql; the same text as the Athena named queries); none: list them
  --sql TEXT    an ad-hoc query over the \`results\` view (and \`results_export\`)
  --format      table (default) or json on the terminal; csv: one valid CSV per query (a header even for no rows),
                to the terminal for one query or DIR/<query>.csv with --out; parquet: DIR/<query>.parquet (needs --out)
  --mapping     npm start's source-mapping.json: adds source_file (local only; file names may name patients)`;

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      export: { type: 'string' }, format: { type: 'string', default: 'table' }, out: { type: 'string' }, sql: { type: 'string' },
      mapping: { type: 'string' }, help: { type: 'boolean' },
    },
  });
  const how = values.format ?? 'table';
  if (values.help || !values.export || !['table', 'json', 'csv', 'parquet'].includes(how)) {
    console.error(USAGE);
    console.error(`named queries: ${namedQueries().join(', ')}`);
    return values.help ? 0 : 2;
  }
  const jobs = [...positionals.map((name) => ({ name, sql: querySql(name) })), ...(values.sql ? [{ name: 'sql', sql: values.sql }] : [])];
  if (jobs.length === 0) {
    console.log(namedQueries().join('\n'));
    return 0;
  }
  if ((how === 'parquet' || (how === 'csv' && jobs.length > 1)) && !values.out) {
    console.error(`--format ${how}${how === 'csv' ? ' with several queries' : ''} writes one file per query: give --out DIR`);
    return 2;
  }
  const db = await ExportDatabase.open(values.export, { mapping: values.mapping });
  try {
    if (values.out) mkdirSync(values.out, { recursive: true });
    const json: Record<string, Row[]> = {};
    // With --mapping the tables may hold file names (which may name patients): readable by their owner only, as
    // source-mapping.json itself.
    const mode = values.mapping ? 0o600 : 0o644;
    for (const job of jobs) {
      if (how === 'parquet') {
        const file = join(values.out!, `${job.name}.parquet`);
        await db.writeParquet(job.sql, file);
        chmodSync(file, mode);
        console.log(file);
        continue;
      }
      const t = await db.table(job.sql);
      if (how === 'csv' && values.out) {
        const file = join(values.out, `${job.name}.csv`);
        writeFileSync(file, tableCsv(t), { mode });
        chmodSync(file, mode); // also when the file was there before
        console.log(`${file}  (${t.rows.length} row(s))`);
      } else if (how === 'csv') {
        console.log(tableCsv(t).slice(0, -1));
      } else if (how === 'json') {
        json[job.name] = t.rows;
      } else {
        if (jobs.length > 1) console.log(`\n== ${job.name} ==`);
        console.log(textTable(t));
      }
    }
    if (how === 'json') console.log(JSON.stringify(jobs.length === 1 ? json[jobs[0].name] : json, null, 2));
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
