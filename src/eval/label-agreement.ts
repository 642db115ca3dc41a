/**
 * `npx tsx src/eval/label-agreement.ts`: how well do two data sets' MANUAL masks agree on the same images?
 * gb_covid_seg and external22 share some source files (gb's `in_haimingt_test` rows); their lung and opacity
 * masks were drawn by different annotators with different lung definitions. The Dice between them is the
 * ceiling a model trained on one set's labels can reach on the other's. Nothing here trains or tunes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
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
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
