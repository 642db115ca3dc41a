/**
 * `npm run export -- --out DIR [--data-dir DIR | --endpoint URL] [--table NAME]`
 *
 * Writes what the local results table holds in the layout of DynamoDB's ExportTableToPointInTime
 * (full export, DYNAMODB_JSON), so the analysts' SQL (analytics/) runs on the same files locally as on
 * the S3 export in AWS:
 *
 *   DIR/AWSDynamoDB/<exportId>/_started
 *   DIR/AWSDynamoDB/<exportId>/manifest-summary.json      (+ .checksum: MD5 hex of the file)
 *   DIR/AWSDynamoDB/<exportId>/manifest-files.json        one JSON line per data file (+ .checksum)
 *   DIR/AWSDynamoDB/<exportId>/data/<random>.json.gz      one {"Item": {...DynamoDB JSON...}} per line
 *
 * `--data-dir` is the folder given to `npm start --data-dir` (its dynalite data is opened directly, so
 * stop `npm start` first); `--endpoint` reads a DynamoDB endpoint that is running.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { DynamoDBClient, ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { LOCAL_NAMES, startLocalStack } from '../local/stack';

export interface ExportOptions {
  ddb: DynamoDBClient;
  tableName: string;
  /** The export prefix: files go under `<outDir>/AWSDynamoDB/<exportId>/`. */
  outDir: string;
  /** Items per data file (DynamoDB writes at least one file per partition). */
  itemsPerFile?: number;
  region?: string;
  accountId?: string;
  now?: () => Date;
}

export interface ExportResult {
  exportId: string;
  /** `<outDir>/AWSDynamoDB/<exportId>` */
  exportDir: string;
  itemCount: number;
  dataFiles: string[];
}

export interface ManifestFileEntry {
  itemCount: number;
  /** base64 MD5 of the data file, as DynamoDB writes it. */
  md5Checksum: string;
  /** The S3 ETag a single-part upload of the data file gets (hex MD5). */
  etag: string;
  dataFileS3Key: string;
}

/** DynamoDB export ids look like `01693685827463-2d8752fd`: epoch millis (14 digits) and 8 hex. */
export const newExportId = (now: Date): string => `${String(now.getTime()).padStart(14, '0')}-${randomBytes(4).toString('hex')}`;

/** Every item of a table, as DynamoDB JSON (the low-level client's AttributeValue maps). */
export async function* scanTable(ddb: DynamoDBClient, tableName: string): AsyncGenerator<Record<string, AttributeValue>> {
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await ddb.send(new ScanCommand({ TableName: tableName, ExclusiveStartKey: start, ConsistentRead: true }));
    for (const item of page.Items ?? []) yield item;
    start = page.LastEvaluatedKey;
  } while (start);
}

/** DynamoDB's item size rule (attribute names + values), for billedSizeBytes. */
function itemSize(item: Record<string, AttributeValue>): number {
  const value = (v: AttributeValue): number => {
    if (v.S !== undefined) return Buffer.byteLength(v.S);
    if (v.N !== undefined) return Math.ceil(v.N.replace(/^-|\.|e.*$/gi, '').length / 2) + 1;
    if (v.B !== undefined) return v.B.length;
    if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
    if (v.SS) return v.SS.reduce((n, s) => n + Buffer.byteLength(s), 0);
    if (v.NS) return v.NS.reduce((n, s) => n + s.length, 0);
    if (v.L) return 3 + v.L.reduce((n, e) => n + 1 + value(e), 0);
    if (v.M) return 3 + Object.entries(v.M).reduce((n, [k, e]) => n + 1 + Buffer.byteLength(k) + value(e), 0);
    return 0;
  };
  return Object.entries(item).reduce((n, [k, v]) => n + Buffer.byteLength(k) + value(v), 0);
}

/** The JSON form of a DynamoDB attribute value as the export writes it (binary as base64). */
function toExportJson(v: AttributeValue): unknown {
  if (v.B !== undefined) return { B: Buffer.from(v.B).toString('base64') };
  if (v.BS !== undefined) return { BS: v.BS.map((b) => Buffer.from(b).toString('base64')) };
  if (v.L !== undefined) return { L: v.L.map(toExportJson) };
  if (v.M !== undefined) return { M: Object.fromEntries(Object.entries(v.M).map(([k, e]) => [k, toExportJson(e)])) };
  const [[type, val]]: [string, unknown][] = Object.entries(v).filter(([, x]) => x !== undefined);
  return { [type]: val };
}

export async function exportTable(opts: ExportOptions): Promise<ExportResult> {
  const now = opts.now ?? (() => new Date());
  const start = now();
  const exportId = newExportId(start);
  const rel = `AWSDynamoDB/${exportId}`;
  const exportDir = join(opts.outDir, rel);
  mkdirSync(join(exportDir, 'data'), { recursive: true });
  writeFileSync(join(exportDir, '_started'), '');
  const region = opts.region ?? 'us-east-1';
  const account = opts.accountId ?? '000000000000';
  const tableArn = `arn:aws:dynamodb:${region}:${account}:table/${opts.tableName}`;
  const perFile = Math.max(1, opts.itemsPerFile ?? 10_000);

  const entries: ManifestFileEntry[] = [];
  const dataFiles: string[] = [];
  let lines: string[] = [];
  let itemCount = 0;
  let billed = 0;
  const flush = () => {
    // DynamoDB writes a file per partition even when empty; locally that is one file for an empty table.
    if (lines.length === 0 && entries.length > 0) return;
    const key = `${rel}/data/${randomBytes(12).toString('hex')}.json.gz`;
    const gz = gzipSync(Buffer.from(lines.map((l) => `${l}\n`).join('')));
    writeFileSync(join(opts.outDir, key), gz);
    entries.push({
      itemCount: lines.length,
      md5Checksum: createHash('md5').update(gz).digest('base64'),
      etag: createHash('md5').update(gz).digest('hex'),
      dataFileS3Key: key,
    });
    dataFiles.push(join(opts.outDir, key));
    lines = [];
  };
  for await (const item of scanTable(opts.ddb, opts.tableName)) {
    lines.push(JSON.stringify({ Item: Object.fromEntries(Object.entries(item).map(([k, v]) => [k, toExportJson(v)])) }));
    itemCount++;
    billed += itemSize(item);
    if (lines.length >= perFile) flush();
  }
  flush();

  const filesJson = entries.map((e) => JSON.stringify(e)).join('\n') + '\n';
  const md5hex = (s: string) => createHash('md5').update(s).digest('hex');
  writeFileSync(join(exportDir, 'manifest-files.json'), filesJson);
  writeFileSync(join(exportDir, 'manifest-files.checksum'), md5hex(filesJson));
  const end = now();
  const summary = {
    version: '2020-06-30',
    exportArn: `${tableArn}/export/${exportId}`,
    startTime: start.toISOString(),
    endTime: end.toISOString(),
    tableArn,
    tableId: createHash('sha256').update(tableArn).digest('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12}).*$/, '$1-$2-$3-$4-$5'),
    exportTime: start.toISOString(),
    s3Bucket: 'local',
    s3Prefix: null,
    s3SseAlgorithm: 'AES256',
    s3SseKmsKeyId: null,
    manifestFilesS3Key: `${rel}/manifest-files.json`,
    billedSizeBytes: billed,
    itemCount,
    outputFormat: 'DYNAMODB_JSON',
    exportType: 'FULL_EXPORT',
  };
  const summaryJson = JSON.stringify(summary);
  writeFileSync(join(exportDir, 'manifest-summary.json'), summaryJson);
  writeFileSync(join(exportDir, 'manifest-summary.checksum'), md5hex(summaryJson));
  return { exportId, exportDir, itemCount, dataFiles };
}

const USAGE = 'usage: npm run export -- --out DIR [--data-dir DIR | --endpoint URL] [--table NAME] [--items-per-file N]';

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' }, 'data-dir': { type: 'string' }, endpoint: { type: 'string' },
      table: { type: 'string', default: LOCAL_NAMES.resultsTable }, 'items-per-file': { type: 'string' }, help: { type: 'boolean' },
    },
  });
  if (values.help || !values.out || (!values['data-dir'] && !values.endpoint)) {
    console.error(USAGE);
    console.error('  --data-dir: the folder given to `npm start --data-dir` (stop npm start first); --endpoint: a running DynamoDB endpoint');
    return values.help ? 0 : 2;
  }
  const itemsPerFile = values['items-per-file'] ? Number(values['items-per-file']) : undefined;
  const outDir = resolve(values.out);
  let result: ExportResult;
  if (values.endpoint) {
    const ddb = new DynamoDBClient({ endpoint: values.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    try {
      result = await exportTable({ ddb, tableName: values.table, outDir, itemsPerFile });
    } finally {
      ddb.destroy();
    }
  } else {
    const stack = await startLocalStack({ dataDir: resolve(values['data-dir']!) });
    try {
      result = await exportTable({ ddb: stack.ddb, tableName: values.table, outDir, itemsPerFile });
    } finally {
      await stack.stop();
    }
  }
  console.log(`exported ${result.itemCount} item(s) to ${result.exportDir}`);
  console.log(`query it: npm run analytics -- --export ${result.exportDir} <query name>`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
    console.error(`export failed: ${e.message}`);
    process.exitCode = 1;
  });
}
