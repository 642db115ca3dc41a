/**
 * `npm start -- <files or folders...> [--out DIR] [--data-dir DIR] [--concurrency N] [--dicom-identity MODE]`
 * Starts the embedded S3 and DynamoDB stand-ins, uploads the inputs, lets the object-created events
 * drive the same segment and score handlers as on AWS, and prints the results.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { uploadKeyFor } from '../../functions/api/app';
import { encodeS3Key } from '../aws/s3-notification';
import { formatTable, type ResultRow } from '../cli/format';
import { collectInputs } from '../cli/inputs';
import { formatBytes, maxInputBytes, MAX_INPUT_BYTES_ENV, tooLargeReason } from '../limits';
import { keepSourceKeysFromEnv, outputFiles, outputKeysFor, type ResultItem } from '../pipeline/messages';
import { writeReport } from '../report/write';
import { mappingEntry, writeSourceMapping } from './source-mapping';
import { DEFAULT_MODEL_MANIFEST, startLocalPipeline, UPLOAD_PREFIX } from './pipeline';
import { LOCAL_NAMES } from './stack';
import { dicomIdentityFromEnv, type IdentityMode } from '../core/dicom-out';

const SHARED_DATA = resolve(__dirname, '..', '..', '..', 'shared', 'data');

function usage(): string {
  const lines = [
    'usage: npm start -- <files or folders...> [--out DIR] [--data-dir DIR] [--concurrency N] [--model MANIFEST]',
    '                    [--dicom-identity off|linked|deidentified]',
    '',
    'Runs the cxr-opacity pipeline on this machine: embedded S3 (s3rver) and DynamoDB (dynalite) on 127.0.0.1,',
    'the same segment and score handlers as the AWS deployment. Give it frontal chest X-rays: DICOM, PNG or JPEG.',
    'Results are printed and written to DIR/<input name>/ (default ./out).',
    `Files over ${formatBytes(maxInputBytes({}))} are refused unread (TOO_LARGE); set ${MAX_INPUT_BYTES_ENV}=<bytes> to change the limit.`,
    'DICOM inputs also get seg.dcm and sr.dcm; --dicom-identity (or DICOM_IDENTITY) decides what of the source\'s',
    'identity they carry: off (default), linked (the source\'s patient and study: identifiers!) or deidentified.',
  ];
  if (existsSync(SHARED_DATA)) {
    lines.push('', `Example data is here: try   npm start -- ${join(SHARED_DATA, 'external22', 'images')}`);
  }
  return lines.join('\n');
}

export async function startMain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      out: { type: 'string', default: 'out' }, 'data-dir': { type: 'string' }, concurrency: { type: 'string', default: '1' },
      model: { type: 'string' }, 'dicom-identity': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(usage());
    return values.help ? 0 : 2;
  }
  let dicomIdentity: IdentityMode;
  try {
    dicomIdentity = dicomIdentityFromEnv(process.env, values['dicom-identity']);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const inputs = collectInputs(positionals);
  if (inputs.length === 0) {
    console.error('no image files found in the paths given (looked for .dcm, .png, .jpg, .jpeg and files without extension)');
    return 2;
  }
  const limit = maxInputBytes();
  const dataDir = values['data-dir'];
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const started = Date.now();
  const pipeline = await startLocalPipeline({
    dataDir, model: values.model ?? DEFAULT_MODEL_MANIFEST, concurrency: Math.max(1, Number(values.concurrency) || 1), maxInputBytes: limit,
    dicomIdentity,
  });
  console.log(`local S3 at ${pipeline.stack.s3Endpoint}, DynamoDB at ${pipeline.stack.ddbEndpoint}, data in ${pipeline.stack.dataDir}`);
  console.log(`model ${pipeline.model.manifest.name}@${pipeline.model.manifest.version}; ${inputs.length} image(s) to analyse\n`);
  const t0 = Date.now();
  const pendingIds = new Map<string, string>();
  // Uploaded as the API does it: under a random upload id, without the file name (which often names the
  // patient), unless KEEP_SOURCE_KEYS=true. The file -> imageId mapping stays in the output folder.
  const keep = keepSourceKeysFromEnv(process.env);
  const keys = new Map(inputs.map((i) => [i.name, keep ? `${UPLOAD_PREFIX}${i.name}` : uploadKeyFor(randomUUID(), i.name)]));
  // Inputs that never reach the pipeline, by name: over the size cap (refused before reading, as the
  // upload API refuses to sign an upload over it) or not uploadable at all.
  const refused = new Map<string, { code: string; reason: string }>();
  const uploadFailed = new Map<string, string>();
  try {
    for (const input of inputs) {
      const key = keys.get(input.name)!;
      try {
        const size = statSync(input.path).size;
        if (size > limit) {
          refused.set(input.name, { code: 'TOO_LARGE', reason: tooLargeReason(size, limit) });
          console.log(`[-] ${input.name}  FAILED  TOO_LARGE: ${tooLargeReason(size, limit)}`);
          continue;
        }
        pendingIds.set(input.name, await pipeline.upload(key, readFileSync(input.path)));
      } catch (e) {
        // One file that cannot be read or stored must not stop the others.
        uploadFailed.set(input.name, `not uploaded: ${(e as Error).message}`);
      }
    }
    const done = new Map<string, ResultItem>();
    const poll = setInterval(() => void report(), 250);
    const report = async () => {
      for (const [name, id] of pendingIds) {
        if (done.has(name)) continue;
        const item = await pipeline.results.get(id).catch(() => undefined);
        if (!item) continue;
        done.set(name, item);
        const what = item.status === 'SCORED' ? `opacity ${item.opacityPctTotal?.toFixed(1) ?? '-'}% (${item.grade})` : `${item.errorCode}: ${item.errorReason}`;
        console.log(`[${done.size}/${inputs.length}] ${name}  ${item.status}  ${what}`);
      }
    };
    await pipeline.drain();
    clearInterval(poll);
    await report();
    const elapsed = (Date.now() - t0) / 1000;
    const rows: ResultRow[] = [];
    for (const input of inputs) {
      const item = done.get(input.name);
      // Ingest bodies carry the key as S3 encodes it in notifications, score bodies as JSON text.
      const key = keys.get(input.name)!;
      const id = pendingIds.get(input.name);
      const lost = pipeline.ingest.deadLetters.find((d) => d.body.includes(encodeS3Key(key)))
        ?? (id ? pipeline.scoring.deadLetters.find((d) => d.body.includes(JSON.stringify(id))) : undefined);
      const gone = refused.get(input.name);
      const lostReason = uploadFailed.get(input.name)
        ?? (lost ? `dead-lettered after ${lost.receiveCount} tries: ${lost.lastError ?? 'handler failure'}` : undefined);
      rows.push({ input: input.name, item, lostReason, refused: gone });
      const dir = join(values.out ?? 'out', input.name);
      try {
        if (item) await downloadOutputs(pipeline.stack.s3, item, dir);
        else if (gone) writeRefusal(dir, gone);
      } catch (e) {
        console.error(`${input.name}: outputs not written: ${(e as Error).message}`);
      }
    }
    const mappingFile = writeSourceMapping(values.out ?? 'out', inputs.map((i) => mappingEntry(i.path, i.name, done.get(i.name), pendingIds.get(i.name))));
    let reportLine = '';
    try {
      const report = await writeReport(values.out ?? 'out', rows.map((r) => ({ ...r, imageId: pendingIds.get(r.input) })), { fileNames: keep });
      reportLine = `report in ${report.html} (one row per image in ${report.csv})`;
    } catch (e) {
      reportLine = `report not written: ${(e as Error).message}`;
    }
    console.log(`\n${formatTable(rows)}\n`);
    console.log(`${inputs.length} image(s) in ${elapsed.toFixed(1)} s (${(elapsed / inputs.length).toFixed(2)} s per image; start-up ${((t0 - started) / 1000).toFixed(1)} s)`);
    console.log(`outputs in ${values.out}/<input name>/ (overlay.png: orange = opacity, cyan = patient's right lung, magenta = left lung)`);
    console.log(`file name -> imageId mapping in ${mappingFile} (results themselves hold no file names)`);
    console.log(reportLine);
    return rows.every((r) => r.item?.status === 'SCORED') ? 0 : 1;
  } finally {
    await pipeline.stop();
  }
}

/** result.json of an input refused before upload, in the shape of a FAILED result. */
function writeRefusal(dir: string, r: { code: string; reason: string }): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'result.json'), JSON.stringify({ status: 'FAILED', errorCode: r.code, errorReason: r.reason, uploaded: false }, null, 2));
}

async function downloadOutputs(s3: S3Client, item: ResultItem, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = item.keys
    ? outputFiles(item.keys)
    : { 'result.json': outputKeysFor(item.imageId).result };
  for (const [file, key] of Object.entries(files)) {
    const res = await s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.resultsBucket, Key: key }));
    writeFileSync(join(dir, file), await res.Body!.transformToByteArray());
  }
}

if (require.main === module) {
  startMain(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
    console.error(`cxr-opacity: ${e.message}`);
    process.exitCode = 1;
  });
}
