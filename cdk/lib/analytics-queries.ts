/**
 * The Athena named queries are the analysts' SQL files themselves (analytics/queries/*.sql, which
 * `npm run analytics` runs on DuckDB): one AWS::Athena::NamedQuery per file, named after the file, its
 * QueryString the file's text, its description the file's first comment line after `-- name:`. They run
 * over the `results` view (analytics/schema/results.view.sql), which reads the newest export snapshot;
 * that view's DDL is deployed as a named query too (RESULTS_VIEW_QUERY), to run once per database.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const EXPORT_TABLE = 'results_export';
export const ANALYTICS_DIR = join(__dirname, '..', '..', 'analytics');
/** The named query that creates (or replaces) the `results` view. */
export const RESULTS_VIEW_QUERY = 'create_results_view';

export interface NamedQuery {
  readonly name: string;
  readonly description: string;
  readonly sql: string;
}

/** The first comment line that is not the `-- name:` line (Athena caps descriptions at 1024 characters). */
function description(sql: string): string {
  const line = sql.split('\n').find((l) => l.startsWith('--') && !/^--\s*name:/.test(l));
  return (line ?? '').replace(/^--\s*/, '').slice(0, 1024);
}

function load(): NamedQuery[] {
  const dir = join(ANALYTICS_DIR, 'queries');
  const queries = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort().map((f) => {
    const sql = readFileSync(join(dir, f), 'utf8');
    return { name: f.slice(0, -4), description: description(sql), sql };
  });
  const view = readFileSync(join(ANALYTICS_DIR, 'schema', 'results.view.sql'), 'utf8');
  return [{ name: RESULTS_VIEW_QUERY, description: 'Run once: creates the results view (newest export snapshot, one typed row per image) the other queries read', sql: view }, ...queries];
}

export const NAMED_QUERIES: NamedQuery[] = load();
