/**
 * Compares the scores from masks post-processed on the working grid (core/postprocess.ts WORKING_MAX_SIDE)
 * with those from masks post-processed at the image's full size, on films of a data folder brought back to
 * their original acquisition size (the data sets store them downscaled to <= 1024 px; their manifests keep
 * orig_width/orig_height), so the comparison covers the 2000-3000 px films the service receives.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import sharp from 'sharp';
import { countMasks, decodeImage, scoreCounts, type SegmentationModel, type SeverityConfig } from '../../src/core';
import { probabilitiesToMasks } from '../../src/core/postprocess';
import { toModelInput } from '../../src/core/preprocess';

export interface ScoredAt {
  /** Opacity % total, right, left. */
  opacityPct: [number | null, number | null, number | null];
  extent: number;
  zones: number;
  /** Post-processing and counting time. */
  ms: number;
}

export interface WorkingResolutionRow {
  id: string;
  width: number;
  height: number;
  full: ScoredAt;
  working: ScoredAt;
}

export async function compareWorkingResolution(
  dataDir: string, model: SegmentationModel, severity: SeverityConfig, maxSides: number[],
): Promise<Map<number, WorkingResolutionRow[]>> {
  const rows = (parse(readFileSync(join(dataDir, 'manifest.csv')), { columns: true }) as Array<Record<string, string>>);
  const out = new Map<number, WorkingResolutionRow[]>(maxSides.map((m) => [m, []]));
  const m = model.manifest;
  for (const r of rows) {
    const w = Number(r.orig_width) || Number(r.width);
    const h = Number(r.orig_height) || Number(r.height);
    const png = await sharp(readFileSync(join(dataDir, 'images', `${r.id}.png`))).resize(w, h, { fit: 'fill' }).png({ compressionLevel: 1 }).toBuffer();
    const img = await decodeImage(png);
    const probs = await model.run(await toModelInput(img, m), 1);
    const score = (side: number): ScoredAt => {
      const t0 = process.hrtime.bigint();
      const masks = probabilitiesToMasks(probs, m.input.size, img.width, img.height, m.thresholds, side);
      const s = scoreCounts(countMasks(masks, { width: img.width, height: img.height }), severity);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      return { opacityPct: [s.opacityPct.total, s.opacityPct.right, s.opacityPct.left], extent: s.geographicExtent.total, zones: s.zones.total, ms };
    };
    const full = score(Infinity);
    for (const side of maxSides) {
      const wk = score(side);
      out.get(side)?.push({ id: r.id, width: img.width, height: img.height, full, working: wk });
    }
  }
  return out;
}
