/**
 * `npx tsx src/eval/label-agreement.ts`: how well do two data sets' MANUAL masks agree on the same images?
 * 1. gb_covid_seg and external22 share some source files (gb's `in_haimingt_test` rows).
 * 2. covidqu_infection and gb_covid_seg share some radiographs (covidqu's `possible_dup_of_shared` rows whose
 *    `dup_best_match` is a gb_covid_seg image; covidqu is 256x256 squashed, so both masks are compared at 256x256).
 * Their masks were drawn by different annotators with different lung definitions. The Dice between them is the
 * ceiling a model trained on one set's labels can reach on the other's, and it decided which sets train the lung
 * channels of model v2 (models/MODEL_CARD.md). Nothing here trains or tunes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import sharp from 'sharp';
import { pngToMask, type Mask } from '../core';
import { dice, mean, overlap } from './metrics';

const DATA = resolve(__dirname, '..', '..', '..', 'shared', 'data');

async function main() {
  const rows = (set: string) => parse(readFileSync(join(DATA, set, 'manifest.csv')), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  const ext = new Map(rows('external22').map((r) => [r.source_file, r.id]));
  const pairs = rows('gb_covid_seg').filter((r) => ext.has(r.source_file)).map((r) => [r.id, ext.get(r.source_file)!] as const);
  const read = async (set: string, kind: string, id: string): Promise<Mask | null> => {
    const p = join(DATA, set, 'masks', kind, `${id}.png`);
    return existsSync(p) ? pngToMask(readFileSync(p)) : null;
  };
  const res: Record<string, number[]> = { lung: [], lung_right: [], lung_left: [], opacity: [] };
  for (const [gb, ex] of pairs) {
    for (const kind of Object.keys(res)) {
      const a = await read('gb_covid_seg', kind, gb);
      const b = await read('external22', kind, ex);
      if (!a || !b || a.width !== b.width || a.height !== b.height) continue;
      res[kind].push(dice(overlap(a, b)));
    }
  }
  console.log(`images in both gb_covid_seg and external22: ${pairs.length}`);
  for (const [k, v] of Object.entries(res)) console.log(`${k}: mean Dice ${mean(v).toFixed(3)} (n=${v.length}, min ${Math.min(...v).toFixed(3)})`);

  // covidqu vs gb_covid_seg on the same radiographs, both stretched to 256x256 (bilinear, threshold at half)
  const at256 = async (set: string, kind: string, id: string): Promise<Mask | null> => {
    const p = join(DATA, set, 'masks', kind, `${id}.png`);
    if (!existsSync(p)) return null;
    const { data } = await sharp(p).greyscale().resize(256, 256, { fit: 'fill', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
    return { width: 256, height: 256, data: Uint8Array.from(data, (v) => (v >= 128 ? 1 : 0)) };
  };
  const qu = rows('covidqu_infection').filter((r) => r.possible_dup_of_shared === '1' && r.dup_best_match.startsWith('gb_covid_seg/'));
  const res2: Record<string, number[]> = { lung: [], lung_right: [], lung_left: [], opacity: [] };
  for (const r of qu) {
    const gb = r.dup_best_match.split('/')[1];
    for (const kind of Object.keys(res2)) {
      const a = await at256('covidqu_infection', kind, r.id);
      const b = await at256('gb_covid_seg', kind, gb);
      if (a && b) res2[kind].push(dice(overlap(a, b)));
    }
  }
  console.log(`radiographs in both covidqu_infection and gb_covid_seg: ${qu.length}`);
  for (const [k, v] of Object.entries(res2)) console.log(`${k}: mean Dice ${mean(v).toFixed(3)} (n=${v.length}, min ${Math.min(...v).toFixed(3)})`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
