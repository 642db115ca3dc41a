/**
 * `cxr-opacity analyze <paths...> [--out DIR] [--format table|json|csv] [--model manifest.json]`
 * Analyses images on this machine without any AWS stand-in: the same segment and score stages as the
 * service, over in-memory storage, writing lung.png, opacity.png, overlay.png and result.json (plus
 * the per-side lung masks) to DIR/<input name>/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_MANIFEST, loadModel } from '../../layers/onnx/session';
import { loadSeverityConfig } from '../core';
import { dicomIdentityFromEnv, type IdentityMode } from '../core/dicom-out';
import { formatBytes, maxInputBytes, MAX_INPUT_BYTES_ENV } from '../limits';
import { keepSourceKeysFromEnv } from '../pipeline/messages';
import { mappingEntry, writeSourceMapping, type SourceMappingEntry } from '../local/source-mapping';
import { writeReport } from '../report/write';
import { LOCAL_DATA_DIR, localPseudonymKey } from '../local/pseudonym-key';
import { analyzeInMemory } from '../pipeline/in-memory';
import { formatCsv, formatJson, formatTable, type ResultRow } from './format';
import { checkRegularFile, collectInputs, inputErrorReason } from './inputs';

const USAGE = `usage: cxr-opacity analyze <files or folders...> [--out DIR] [--format table|json|csv] [--model MANIFEST]
  Accepts DICOM (.dcm or no extension), PNG and JPEG frontal chest X-rays.
  Writes DIR/<input name>/{lung.png,opacity.png,overlay.png,result.json} (DIR defaults to ./out), and for
  DICOM inputs seg.dcm (DICOM SEG) and sr.dcm (TID 1500 SR). --dicom-identity off|linked|deidentified (or
  DICOM_IDENTITY; default off) sets whose patient/study those carry: see README "DICOM SEG and SR".
  Files over ${formatBytes(maxInputBytes({}))} fail TOO_LARGE without being read (set ${MAX_INPUT_BYTES_ENV}=<bytes> to change).`;

export async function analyzeMain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { out: { type: 'string', default: 'out' }, format: { type: 'string', default: 'table' }, model: { type: 'string' }, 'dicom-identity': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  const format = values.format ?? 'table';
  if (!['table', 'json', 'csv'].includes(format)) {
    console.error(`--format must be table, json or csv (got ${format})`);
    return 2;
  }
  let identity: IdentityMode;
  try {
    identity = dicomIdentityFromEnv(process.env, values['dicom-identity']);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const inputs = collectInputs(positionals, { exclude: [values.out ?? 'out'] });
  if (inputs.length === 0) {
    console.error('no image files found in the paths given (looked for .dcm, .png, .jpg, .jpeg and files without extension)');
    return 2;
  }
  const limit = maxInputBytes();
  const model = await loadModel(values.model ?? DEFAULT_MODEL_MANIFEST);
  const severity = loadSeverityConfig();
  const rows: ResultRow[] = [];
  const mapping: SourceMappingEntry[] = [];
  const keepSourceKeys = keepSourceKeysFromEnv(process.env);
  // The output folder's own key, as `npm start` keeps it (src/local/pseudonym-key.ts), or PSEUDONYM_KEY.
  const pseudonymKey = localPseudonymKey(join(values.out ?? 'out', LOCAL_DATA_DIR));
  try {
    for (const [i, input] of inputs.entries()) {
      let row: ResultRow;
      try {
        checkRegularFile(input);
        const { item, outputs } = await analyzeInMemory({ path: input.path }, {
          model, severity, pseudonymKey,
          path: 'local', maxInputBytes: limit, keepSourceKeys, dicomOutputs: { identity, severity },
        });
        const dir = join(values.out ?? 'out', input.name);
        mkdirSync(dir, { recursive: true });
        // Written side by side on libuv's threads (a DICOM's are ~20 MB); result.json is written below, last.
        await Promise.all(Object.entries(outputs).filter(([file]) => file !== 'result.json').map(([file, body]) => writeFile(join(dir, file), body)));
        // The input path only where file names are kept (KEEP_SOURCE_KEYS=true); else source-mapping.json has it.
        writeFileSync(join(dir, 'result.json'), JSON.stringify(keepSourceKeys ? { input: input.path, ...item } : item, null, 2));
        row = { input: input.name, item };
      } catch (e) {
        // One input that cannot even be read (permissions, vanished, a full disk for its outputs) is
        // reported in its row; the others still run.
        row = { input: input.name, lostReason: `not analysed: ${inputErrorReason(e, input)}` };
      }
      rows.push(row);
      mapping.push(mappingEntry(input.path, input.name, row.item));
      if (format === 'table') process.stderr.write(`[${i + 1}/${inputs.length}] ${input.name}: ${row.item?.status ?? 'LOST'}\n`);
    }
  } finally {
    await model.release();
    writeSourceMapping(values.out ?? 'out', mapping);
  }
  let reportLine: string;
  try {
    const report = await writeReport(values.out ?? 'out', rows, { fileNames: keepSourceKeys });
    reportLine = `report in ${report.html} (one row per image in ${report.csv})`;
  } catch (e) {
    reportLine = `report not written: ${(e as Error).message}`;
  }
  console.log(format === 'json' ? formatJson(rows) : format === 'csv' ? formatCsv(rows) : formatTable(rows));
  if (format === 'table') console.log(`\noutputs in ${values.out}/<input name>/ (overlay.png: orange = opacity, cyan = patient's right lung, magenta = left lung)`);
  // stdout carries the JSON or CSV itself in those formats.
  if (format === 'table') console.log(reportLine);
  else process.stderr.write(`${reportLine}\n`);
  return rows.some((r) => r.item?.status !== 'SCORED') ? 1 : 0;
}

if (require.main === module) {
  analyzeMain(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
    console.error(`cxr-opacity analyze: ${e.message}`);
    process.exitCode = 1;
  });
}
