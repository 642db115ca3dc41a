/** Reading ../shared/data for the severity analysis: CSV, masks, and scoring every study with scoreMasks. */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { scoreMasks } from '../../src/core/score';
import type { SeverityConfig } from '../../src/core/severity';
import type { Mask, OpacityScore } from '../../src/core/types';

/** Minimal RFC 4180 CSV parser (quoted fields, doubled quotes, newlines inside quotes). */
export function parseCsv(text: string): Array<Record<string, string>> {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i++; } else q = false;
      } else field += c;
    } else if (c === '"') q = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); field = '';
      rows.push(row); row = [];
    } else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  const [head, ...body] = rows.filter((r) => !(r.length === 1 && r[0] === ''));
  return body.map((r) => Object.fromEntries(head.map((h, i) => [h, r[i] ?? ''])));
}

export const readCsv = (file: string): Array<Record<string, string>> => parseCsv(readFileSync(file, 'utf8'));

/** A 0/255 PNG mask as a 0/1 Mask; null when the file does not exist. */
export async function readMask(file: string): Promise<Mask | null> {
  if (!existsSync(file)) return null;
  const { data, info } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
  const out = new Uint8Array(info.width * info.height);
  for (let i = 0; i < out.length; i++) out[i] = data[i] >= 128 ? 1 : 0;
  return { width: info.width, height: info.height, data: out };
}

export interface ScoredImage {
  id: string;
  score: OpacityScore;
  /** Which masks were missing (an absent opacity mask is read as "no opacity"). */
  missing: string[];
}

/**
 * Scores the manual masks of `ids` in `setDir/masks/{lung_right,lung_left,opacity}/<id>.png`.
 * A missing opacity mask means no opacity was annotated (an empty mask); a missing lung mask is reported in
 * `missing` and scored as an empty lung, so the caller can exclude it.
 */
export async function scoreSet(setDir: string, ids: string[], cfg: SeverityConfig, concurrency = 4): Promise<ScoredImage[]> {
  const out = new Array<ScoredImage>(ids.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const k = next++;
      const id = ids[k];
      const [r, l, o] = await Promise.all(['lung_right', 'lung_left', 'opacity'].map((kind) => readMask(path.join(setDir, 'masks', kind, `${id}.png`))));
      const ref = r ?? l ?? o;
      if (!ref) throw new Error(`no masks for ${id} in ${setDir}`);
      const empty = (): Mask => ({ width: ref.width, height: ref.height, data: new Uint8Array(ref.width * ref.height) });
      const missing = [r ? '' : 'lung_right', l ? '' : 'lung_left', o ? '' : 'opacity'].filter(Boolean);
      out[k] = { id, score: scoreMasks({ lungRight: r ?? empty(), lungLeft: l ?? empty(), opacity: o ?? empty() }, cfg), missing };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}
