/**
 * `npm start -- <files or folders...> [--watch DIR] [--manifest CSV] [--out DIR] [--data-dir DIR] [--concurrency N] ...`
 * Starts the embedded S3 and DynamoDB stand-ins and feeds them the inputs: each is uploaded as the API
 * does it, the object-created events drive the same segment and score handlers as on AWS, and each
 * image's outputs are written to the output folder as soon as its result is recorded, while the next
 * images upload and process (a few ahead of the handlers, not the whole folder at once).
 *
 * A batch tool for hundreds of films: the data dir (default OUT/.local-data) is kept, so a re-run of the
 * same command reuses every result already recorded (marked "reused") and computes only the rest;
 * Ctrl-C stops at once (the images in a handler finish, the rest wait for the re-run) and leaves no
 * lock behind (src/local/resume.ts). Powertools' JSON logs go to OUT/logs/, not to the terminal.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { extname, join, relative, resolve, basename } from 'node:path';
import { parseArgs } from 'node:util';
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { watch as watchFolder } from 'chokidar';
import { objectsInS3Notification } from '../aws/s3-notification';
import { formatTable, type ResultRow } from '../cli/format';
import { checkRegularFile, collectInputs, IMAGE_EXTENSIONS, inputErrorReason, outputName, type InputFile } from '../cli/inputs';
import { formatBytes, maxInputBytes, MAX_INPUT_BYTES_ENV, tooLargeReason } from '../limits';
import { imageIdFor, keepSourceKeysFromEnv, outputFiles, outputKeysFor, type ResultItem } from '../pipeline/messages';
import { resultsCsv } from '../report/csv';
import { RESULTS_CSV, writeReport } from '../report/write';
import { mappingEntry, OutputFolders, SOURCE_MAPPING_FILE } from './source-mapping';
import { DEFAULT_MODEL_MANIFEST, startLocalPipeline } from './pipeline';
import { UPLOAD_PREFIX, uploadKeyFor } from '../pipeline/storage-layout';
import { LOCAL_NAMES } from './stack';
import { dicomIdentityFromEnv, type IdentityMode } from '../core/dicom-out';
import { manifestMetadata, readManifest, type Manifest, type ManifestRow } from './manifest';
import { clearIdempotencyRecords } from './resume';
import { formatDuration, Progress } from './progress';

const SHARED_DATA = resolve(__dirname, '..', '..', '..', 'shared', 'data');
/** The data dir's default place under the output folder (kept between runs: that is what resumes). */
export { LOCAL_DATA_DIR } from './pseudonym-key';
import { LOCAL_DATA_DIR } from './pseudonym-key';
export const LOGS_DIR = 'logs';
/** The exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const INTERRUPTED_EXIT = 130;

function usage(): string {
  const lines = [
    'npm start needs the chest X-rays to analyse: pass a folder (or files), e.g.   npm start -- path/to/films',
    '',
    'usage: npm start -- <files or folders...> [--out DIR] [--manifest CSV] [--watch DIR] [--concurrency N]',
    '                    [--data-dir DIR] [--model MANIFEST] [--dicom-identity off|linked|deidentified]',
    '',
    'Runs the cxr-opacity pipeline on this machine: embedded S3 (s3rver) and DynamoDB (dynalite) on 127.0.0.1,',
    'the same segment and score handlers as the AWS deployment. Give it frontal chest X-rays: DICOM, PNG or JPEG.',
    'Each image\'s outputs are written to DIR/<input name>/ (default ./out) as soon as it is done; at the end',
    'DIR/report.html and DIR/results.csv. A name already used by another image gets a ~<imageId> suffix.',
    'Run the same command again to resume: results recorded in DIR/.local-data (or --data-dir) are reused.',
    'Ctrl-C stops cleanly. Logs (JSON lines) go to DIR/logs/.',
    '  --manifest CSV   columns file, patient_id, study_id, acquired_at: patient, study and date for PNG/JPEG',
    '                   inputs (pseudonymised and date-shifted like DICOM tags; DICOM tags take precedence)',
    '  --watch DIR      also process files as they arrive in DIR, until Ctrl-C',
    `Files over ${formatBytes(maxInputBytes({}))} are refused unread (TOO_LARGE); set ${MAX_INPUT_BYTES_ENV}=<bytes> to change the limit.`,
    'DICOM inputs also get seg.dcm and sr.dcm; --dicom-identity (or DICOM_IDENTITY) decides what of the source\'s',
    'identity they carry: off (default), linked (the source\'s patient and study: identifiers!) or deidentified.',
  ];
  if (existsSync(SHARED_DATA)) {
    lines.push('', `Example data is here: try   npm start -- ${join(SHARED_DATA, 'external22', 'images')}`);
  }
  return lines.join('\n');
}

/** One input of the run and what became of it. */
interface Job {
  input: InputFile;
  /** Order of arrival (the report lists inputs in this order). */
  index: number;
  imageId?: string;
  key?: string;
  row?: ResultRow;
}

/** Manifest rows by input path: the exact path (relative to the manifest) or a bare file name unique among the inputs seen. */
function manifestLookup(manifest: Manifest | undefined) {
  const used = new Set<ManifestRow>();
  const byAbs = new Map(manifest?.rows.map((r) => [resolve(manifest.dir, r.file), r]));
  const bare = new Map<string, ManifestRow[]>();
  for (const r of manifest?.rows ?? []) if (!r.file.includes('/')) bare.set(r.file, [...(bare.get(r.file) ?? []), r]);
  const names = new Map<string, number>();
  return {
    seen(path: string) { names.set(basename(path), (names.get(basename(path)) ?? 0) + 1); },
    rowFor(path: string): ManifestRow | undefined {
      const named = bare.get(basename(path));
      const row = byAbs.get(resolve(path)) ?? (named?.length === 1 && names.get(basename(path)) === 1 ? named[0] : undefined);
      if (row) used.add(row);
      return row;
    },
    unmatched: () => (manifest?.rows.length ?? 0) - used.size,
    /** PNG/JPEG inputs looked up with no row (DICOM carries its own ids). */
    withoutRow: 0,
  };
}

export async function startMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: {
        out: { type: 'string', default: 'out' }, 'data-dir': { type: 'string' }, concurrency: { type: 'string', default: '1' },
        model: { type: 'string' }, 'dicom-identity': { type: 'string' }, manifest: { type: 'string' }, watch: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${usage()}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || (positionals.length === 0 && !values.watch)) {
    console.log(usage());
    return values.help ? 0 : 2;
  }
  let dicomIdentity: IdentityMode;
  let manifest: Manifest | undefined;
  let inputs: InputFile[];
  try {
    dicomIdentity = dicomIdentityFromEnv(process.env, values['dicom-identity']);
    manifest = values.manifest ? readManifest(values.manifest) : undefined;
    inputs = collectInputs(positionals, { exclude: [values.out ?? 'out'] });
    if (values.watch && !statSync(values.watch, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--watch ${values.watch}: not a folder`);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (inputs.length === 0 && !values.watch) {
    console.error('no image files found in the paths given (looked for .dcm, .png, .jpg, .jpeg and files without extension)');
    return 2;
  }
  const out = values.out ?? 'out';
  const limit = maxInputBytes();
  const dataDir = values['data-dir'] ?? join(out, LOCAL_DATA_DIR);
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(join(out, LOGS_DIR), { recursive: true });
  const logFile = join(out, LOGS_DIR, `npm-start-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`);
  const logs = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
  const started = Date.now();
  const concurrency = Math.max(1, Number(values.concurrency) || 1);
  const pipeline = await startLocalPipeline({
    dataDir, model: values.model ?? DEFAULT_MODEL_MANIFEST, concurrency, maxInputBytes: limit, dicomIdentity,
    logLevel: 'INFO', logSink: (line) => logs.write(`${line}\n`),
  });
  let stopping: (() => void) | undefined;
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    stopping?.();
  };
  process.on('SIGINT', onSigint);
  let watcher: ReturnType<typeof watchFolder> | undefined;
  try {
    const cleared = await clearIdempotencyRecords(pipeline.stack.ddb, LOCAL_NAMES.idempotencyTable);
    console.log(`local S3 at ${pipeline.stack.s3Endpoint}, DynamoDB at ${pipeline.stack.ddbEndpoint}, data in ${pipeline.stack.dataDir}`);
    console.log(`model ${pipeline.model.manifest.name}@${pipeline.model.manifest.version}; ${inputs.length} image(s) to analyse${values.watch ? `, watching ${values.watch}` : ''}; logs in ${logFile}`);
    if (cleared > 0) console.log(`resuming: ${cleared} record(s) of an interrupted run cleared`);
    console.log('');

    // Uploaded as the API does it, without the file name (which often names the patient) unless
    // KEEP_SOURCE_KEYS=true: under an id derived from the content (and manifest row), so the same film
    // gets the same key, ETag and imageId in every run: what lets a re-run find its result.
    const keep = keepSourceKeysFromEnv(process.env);
    const folders = new OutputFolders(out);
    const lookup = manifestLookup(manifest);
    const jobs: Job[] = [];
    const queue: Job[] = [];
    const inFlight = new Map<string, Job[]>();
    const progress = new Progress(inputs.length);
    const add = (input: InputFile) => {
      const job = { input, index: jobs.length };
      jobs.push(job);
      queue.push(job);
      lookup.seen(input.path);
    };
    inputs.forEach(add);
    let wake: (() => void) | undefined;
    const nap = (ms: number) => new Promise<void>((r) => {
      const t = setTimeout(() => { wake = undefined; r(); }, ms);
      wake = () => { clearTimeout(t); wake = undefined; r(); };
    });
    stopping = () => wake?.();

    // Finishing an image writes files: one at a time, so the mapping and results.csv are never written twice at once.
    let writing = Promise.resolve();
    const finish = (job: Job, row: ResultRow) => {
      job.row = row;
      writing = writing.then(() => writeOutputs(job, row)).catch((e: Error) => console.error(`${job.input.name}: outputs not written: ${e.message}`));
      return writing;
    };
    const writeOutputs = async (job: Job, row: ResultRow) => {
      const folder = folders.claim(job.input.name, job.input.path, row.item?.imageId ?? job.imageId);
      row.input = folder;
      const dir = join(out, folder);
      if (row.item) await downloadOutputs(pipeline.stack.s3, row.item, dir);
      else if (row.refused) writeRefusal(dir, row.refused);
      folders.set({ ...mappingEntry(job.input.path, folder, row.item, job.imageId), ...(row.reused ? { reused: true } : {}) });
      folders.write();
      writeFileSync(join(out, RESULTS_CSV), resultsCsv(reportRows(jobs), { fileNames: keep }));
      const it = row.item;
      const what = it?.status === 'SCORED' ? `SCORED  opacity ${it.opacityPctTotal?.toFixed(1) ?? '-'}% (${it.grade})`
        : it ? `FAILED  ${it.errorCode}: ${it.errorReason}`
          : row.refused ? `FAILED  ${row.refused.code}: ${row.refused.reason}` : `LOST  ${row.lostReason}`;
      progress.finish(it?.status === 'SCORED' ? 'scored' : it || row.refused ? 'failed' : 'lost', `${folder}  ${what}${row.reused ? '  (reused from an earlier run)' : ''}`, row.reused);
      // The upload has served its purpose (the result is recorded): drop the copy, as the uploads bucket's lifecycle rule does on AWS.
      if (job.key && row.item) await pipeline.stack.s3.send(new DeleteObjectCommand({ Bucket: LOCAL_NAMES.uploadsBucket, Key: job.key })).catch(() => undefined);
    };

    const prepare = async (job: Job) => {
      const { input } = job;
      let body: Buffer;
      try {
        checkRegularFile(input);
        const size = statSync(input.path).size;
        if (size > limit) return void finish(job, { input: input.name, refused: { code: 'TOO_LARGE', reason: tooLargeReason(size, limit) } });
        body = readFileSync(input.path);
      } catch (e) {
        return void finish(job, { input: input.name, lostReason: `not read: ${inputErrorReason(e, input)}` });
      }
      const row = lookup.rowFor(input.path);
      if (manifest && !row && /\.(png|jpe?g)$/i.test(input.path)) lookup.withoutRow++;
      const metadata = manifestMetadata(row);
      const contentId = createHash('sha256').update(body).update(JSON.stringify(metadata)).digest('hex').slice(0, 32);
      const key = keep ? `${UPLOAD_PREFIX}${input.name}` : uploadKeyFor(contentId, input.name);
      // s3rver's ETag of a single PUT is the body's MD5, as S3's is: the imageId is known before the upload.
      job.imageId = imageIdFor({ bucket: LOCAL_NAMES.uploadsBucket, key, etag: createHash('md5').update(body).digest('hex') });
      const earlier = await pipeline.results.get(job.imageId).catch(() => undefined);
      if (earlier) return void finish(job, { input: input.name, item: earlier, reused: true });
      const same = inFlight.get(job.imageId);
      if (same) return void same.push(job); // the same film twice in one run: one upload, one result
      inFlight.set(job.imageId, [job]);
      job.key = key;
      progress.started();
      try {
        const id = await pipeline.upload(key, body, metadata);
        if (id !== job.imageId) { // not expected (ETag = MD5); follow the id the upload got
          inFlight.delete(job.imageId);
          job.imageId = id;
          inFlight.set(id, [job]);
        }
      } catch (e) {
        inFlight.delete(job.imageId);
        return void finish(job, { input: input.name, lostReason: `not uploaded: ${inputErrorReason(e, input)}` });
      }
    };

    let seenIngestDead = 0;
    let seenScoreDead = 0;
    const poll = async () => {
      for (const [imageId, waiting] of [...inFlight]) {
        const item = await pipeline.results.get(imageId).catch(() => undefined);
        if (!item) continue;
        inFlight.delete(imageId);
        for (const job of waiting) await finish(job, { input: job.input.name, item });
      }
      const lost = (imageId: string, d: { receiveCount: number; lastError?: string }) => {
        const waiting = inFlight.get(imageId);
        if (!waiting) return;
        inFlight.delete(imageId);
        for (const job of waiting) void finish(job, { input: job.input.name, lostReason: `dead-lettered after ${d.receiveCount} tries: ${d.lastError ?? 'handler failure'}` });
      };
      for (const d of pipeline.ingest.deadLetters.slice(seenIngestDead)) {
        seenIngestDead++;
        for (const o of objectsInS3Notification(d.body)) lost(imageIdFor(o.source), d);
      }
      for (const d of pipeline.scoring.deadLetters.slice(seenScoreDead)) {
        seenScoreDead++;
        lost((JSON.parse(d.body) as { imageId: string }).imageId, d);
      }
    };

    if (values.watch) {
      const root = values.watch;
      const outAbs = resolve(out);
      watcher = watchFolder(root, {
        ignoreInitial: false,
        // A file being copied in is taken once its size has stopped changing.
        awaitWriteFinish: { stabilityThreshold: 500, pollInterval: 100 },
        ignored: (p, stats) => basename(p).startsWith('.') || resolve(p).startsWith(outAbs)
          || (!!stats?.isFile() && !IMAGE_EXTENSIONS.has(extname(p).toLowerCase())),
      });
      const arrived = (p: string) => {
        add({ path: p, name: outputName(relative(root, p).replace(/[\\/]/g, '__')) });
        progress.grow();
        wake?.();
      };
      watcher.on('add', arrived).on('change', arrived);
    }

    // A few images ahead of the handlers: processing starts with the first upload, and a folder of
    // hundreds of DICOMs is not copied into the local S3 all at once.
    const ahead = concurrency * 2 + 2;
    while (!interrupted) {
      while (!interrupted && queue.length > 0 && inFlight.size < ahead) await prepare(queue.shift()!);
      if (!values.watch && queue.length === 0 && inFlight.size === 0) break;
      await nap(200);
      await poll();
    }
    await watcher?.close();
    watcher = undefined;
    progress.stop();
    if (interrupted) {
      console.log('\nCtrl-C: stopping (images in a handler finish, the rest are left for the next run)...');
      await Promise.race([Promise.all([pipeline.ingest.close(), pipeline.scoring.close()]), new Promise((r) => setTimeout(r, 15_000).unref())]);
    }
    await writing;
    const rows = reportRows(jobs);
    const finished = jobs.filter((j) => j.row);
    const elapsed = (Date.now() - started) / 1000;
    let reportLine = '';
    try {
      const report = await writeReport(out, rows, { fileNames: keep });
      reportLine = `report in ${report.html} (one row per image in ${report.csv})`;
    } catch (e) {
      reportLine = `report not written: ${(e as Error).message}`;
    }
    const shown = finished.map((j) => j.row!);
    if (shown.length > 0 && shown.length <= 100) console.log(`\n${formatTable(shown)}`);
    const t = progress.tally;
    const per = finished.length > 0 ? `, ${(elapsed / finished.length).toFixed(2)} s per image` : '';
    console.log(`\n${finished.length} of ${jobs.length} image(s) done in ${formatDuration(elapsed)}${per}: ${t.scored} scored, ${t.failed} failed, ${t.lost} lost; ${t.reused} reused from an earlier run`);
    console.log(`outputs in ${out}/<input name>/ (overlay.png: orange = opacity, cyan = patient's right lung, magenta = left lung)`);
    console.log(`file name -> imageId mapping in ${join(out, SOURCE_MAPPING_FILE)} (results themselves hold no file names)`);
    console.log(reportLine);
    if (manifest && (lookup.unmatched() > 0 || lookup.withoutRow > 0)) {
      // Neither stops the run: a manifest may cover more films than one run, and a PNG without a row is still measured.
      console.log(`manifest: ${lookup.unmatched()} row(s) matched no input of this run; ${lookup.withoutRow} PNG/JPEG input(s) had no row, so no patient, study or date (check the file column: a path relative to the manifest, or a bare file name unique among the inputs)`);
    }
    console.log(`logs in ${logFile}`);
    if (interrupted && !values.watch) {
      console.log(`interrupted: ${jobs.length - finished.length} image(s) not done; run the same command again to resume (done images are reused)`);
      return INTERRUPTED_EXIT;
    }
    return shown.every((r) => r.item?.status === 'SCORED') ? 0 : 1;
  } finally {
    process.off('SIGINT', onSigint);
    await watcher?.close();
    await pipeline.stop();
    await new Promise<void>((r) => logs.end(() => r()));
  }
}

/** The report's rows: every input finished so far, in the order they came. */
function reportRows(jobs: Job[]) {
  return jobs.filter((j) => j.row).map((j) => ({ ...j.row!, imageId: j.row!.item?.imageId ?? j.imageId }));
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
  startMain(process.argv.slice(2)).then((code) => {
    // A stopped run may leave a handler's timers behind; everything worth keeping is written by now.
    process.exit(code);
  }, (e: Error) => {
    console.error(`cxr-opacity: ${e.message}`);
    process.exit(1);
  });
}
