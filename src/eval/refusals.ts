/**
 * How many real frontal chest films the refusal checks turn away (issue 9: at most 1%), and which warnings the
 * accepted ones carry. Runs the production path (decodeImage -> segmentImage, guard and plausibility included) over
 * every image of every set in ../shared/data and writes models/eval/refusals.json (counts, refused ids and codes).
 *
 *   npx tsx src/eval/refusals.ts [--data ../shared/data] [--model MANIFEST (default: the default model)] [--out models/eval]
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_MANIFEST, loadModel } from '../../layers/onnx/session';
import { countMasks, decodeImage, isInputError, segmentImage } from '../core';
import { parseCsv } from '../../models/severity/data';

const SETS = ['external22', 'gb_covid_seg', 'v7labs_lungs', 'covidqu_infection', 'mcsz'];

export async function measureRefusals(dataDir: string, manifest: string) {
  const model = await loadModel(manifest, { threads: 2 });
  const perSet: Record<string, { films: number; refused: number; warnings: Record<string, number> }> = {};
  const refused: Array<{ image: string; code: string }> = [];
  const notChest: number[] = [];
  // the plausibility features of every accepted film (src/core/guard.ts PLAUSIBILITY is set against these)
  const feat = { rightShare: [] as number[], leftShare: [] as number[], bothShare: [] as number[], sideRatio: [] as number[] };
  for (const set of SETS) {
    const file = join(dataDir, set, 'manifest.csv');
    if (!existsSync(file)) continue;
    const s = (perSet[set] = { films: 0, refused: 0, warnings: {} as Record<string, number> });
    for (const row of parseCsv(readFileSync(file, 'utf8'))) {
      s.films++;
      try {
        const { quality, masks } = await segmentImage(await decodeImage(readFileSync(join(dataDir, set, 'images', `${row.id}.png`))), model);
        const c = countMasks(masks);
        const n = c.width * c.height;
        feat.rightShare.push(c.right.lung / n);
        feat.leftShare.push(c.left.lung / n);
        feat.bothShare.push((c.right.lung + c.left.lung) / n);
        feat.sideRatio.push(Math.min(c.right.lung, c.left.lung) / Math.max(1, c.right.lung, c.left.lung));
        for (const w of quality.warnings) s.warnings[w.code] = (s.warnings[w.code] ?? 0) + 1;
        if (quality.guard) notChest.push(quality.guard.notChest);
      } catch (e) {
        if (!isInputError(e)) throw e;
        s.refused++;
        refused.push({ image: `${set}/${row.id}`, code: e.code });
      }
    }
  }
  await model.release();
  const films = Object.values(perSet).reduce((a, s) => a + s.films, 0);
  notChest.sort((a, b) => a - b);
  const pct = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    const at = (q: number) => Number(v[Math.min(v.length - 1, Math.floor(q * v.length))].toFixed(4));
    return { min: at(0), p001: at(0.001), p01: at(0.01), p50: at(0.5), p99: at(0.99), max: at(1) };
  };
  return {
    model: `${model.manifest.name}@${model.manifest.version}`,
    guard: model.guard ? `${model.guard.manifest.name}@${model.guard.manifest.version}` : null,
    films,
    refused: refused.length,
    refusedShare: Number((refused.length / Math.max(1, films)).toFixed(4)),
    perSet,
    refusedImages: refused,
    acceptedFilmFeatures: Object.fromEntries(Object.entries(feat).map(([k, v]) => [k, pct(v)])),
    acceptedNotChestProbability: { p50: notChest[Math.floor(notChest.length * 0.5)], p99: notChest[Math.floor(notChest.length * 0.99)], max: notChest[notChest.length - 1] },
  };
}

async function main(): Promise<void> {
  const repo = resolve(__dirname, '..', '..');
  const { values } = parseArgs({ options: { data: { type: 'string' }, model: { type: 'string' }, out: { type: 'string' } } });
  const r = await measureRefusals(resolve(values.data ?? join(repo, '..', 'shared', 'data')), resolve(values.model ?? DEFAULT_MODEL_MANIFEST));
  const out = join(resolve(values.out ?? join(repo, 'models', 'eval')), 'refusals.json');
  writeFileSync(out, JSON.stringify(r, null, 2) + '\n');
  console.log(`${r.refused} of ${r.films} real frontal films refused (${(100 * r.refusedShare).toFixed(2)}%); wrote ${out}`);
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
