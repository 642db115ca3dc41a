/**
 * `cxr-opacity analyze <paths...> [--out DIR] [--format table|json|csv] [--model manifest.json]`
 * Analyses images on this machine without any AWS stand-in: the same segment and score stages as the
 * service, over in-memory storage, writing lung.png, opacity.png, overlay.png and result.json (plus
 * the per-side lung masks) to DIR/<input name>/.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel } from '../../layers/onnx/session';
import { loadSeverityConfig } from '../core';
import { DEFAULT_MODEL_MANIFEST } from '../local/pipeline';
import { MemoryObjects, MemoryResults, MemorySink, silentLogger } from '../local/memory';
import { outputFiles } from '../pipeline/messages';
import { runScoreStage } from '../pipeline/score-stage';
import { runSegmentStage } from '../pipeline/segment-stage';
import { formatCsv, formatJson, formatTable, type ResultRow } from './format';
import { collectInputs } from './inputs';

const USAGE = `usage: cxr-opacity analyze <files or folders...> [--out DIR] [--format table|json|csv] [--model MANIFEST]
  Accepts DICOM (.dcm or no extension), PNG and JPEG frontal chest X-rays.
  Writes DIR/<input name>/{lung.png,opacity.png,overlay.png,result.json} (DIR defaults to ./out).`;

export async function analyzeMain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { out: { type: 'string', default: 'out' }, format: { type: 'string', default: 'table' }, model: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
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
  const inputs = collectInputs(positionals);
  if (inputs.length === 0) {
    console.error('no image files found in the paths given (looked for .dcm, .png, .jpg, .jpeg and files without extension)');
    return 2;
  }
  const model = await loadModel(values.model ?? DEFAULT_MODEL_MANIFEST);
  const severity = loadSeverityConfig();
  const objects = new MemoryObjects();
  const results = new MemoryResults();
  const rows: ResultRow[] = [];
  try {
    for (const [i, input] of inputs.entries()) {
      const sink = new MemorySink();
      await objects.put('local', input.path, readFileSync(input.path), 'application/octet-stream');
      const msg = await runSegmentStage(
        { bucket: 'local', key: input.path },
        { objects, sink, model, pseudonymKey: process.env.PSEUDONYM_KEY ?? 'cxr-opacity-local-cli-key', resultsBucket: 'local', log: silentLogger, path: 'local' },
      );
      const { item } = await runScoreStage(msg, { objects, results, severity, resultsBucket: 'local', log: silentLogger });
      const dir = join(values.out ?? 'out', input.name);
      mkdirSync(dir, { recursive: true });
      if (item.keys) {
        for (const [file, key] of Object.entries(outputFiles(item.keys))) {
          // result.json is written below, with the input path added.
          if (file !== 'result.json') writeFileSync(join(dir, file), (await objects.get('local', key)).body);
        }
      }
      writeFileSync(join(dir, 'result.json'), JSON.stringify({ input: input.path, ...item }, null, 2));
      objects.objects.clear();
      rows.push({ input: input.name, item });
      if (format === 'table') process.stderr.write(`[${i + 1}/${inputs.length}] ${input.name}: ${item.status}\n`);
    }
  } finally {
    await model.release();
  }
  console.log(format === 'json' ? formatJson(rows) : format === 'csv' ? formatCsv(rows) : formatTable(rows));
  if (format === 'table') console.log(`\noutputs in ${values.out}/<input name>/ (overlay.png: orange = opacity, cyan = patient's right lung, magenta = left lung)`);
  return rows.some((r) => r.item?.status !== 'SCORED') ? 1 : 0;
}

if (require.main === module) {
  analyzeMain(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
    console.error(`cxr-opacity analyze: ${e.message}`);
    process.exitCode = 1;
  });
}
