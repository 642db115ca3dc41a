/**
 * Scoring of segmentation masks: lung and opacity areas, opacity % of lung area (total and per lung),
 * geographic extent 0-8, six-zone score 0-18, severity grade and outcome risk from models/severity.json.
 *
 * Definitions (also in models/SEVERITY.md):
 * - Opacity counts only inside a lung: right = opacity ∩ lungRight, left = opacity ∩ lungLeft,
 *   total = opacity ∩ (lungRight ∪ lungLeft). The total lung area is the union, so a pixel claimed by both
 *   lung masks counts once in the total (and once in each side).
 * - Zones: each lung is split into upper, middle and lower thirds of ITS OWN vertical extent (the rows from its
 *   top-most to its bottom-most pixel; row r goes to zone floor(3 (r - top) / height)); each zone scores 0-3 by
 *   the share of that zone's lung area that is opaque (see zoneScoreFromCounts).
 * - Sides are the patient's and come from the masks as given.
 *
 * One pass over the pixels gathers per-row counts; everything else is computed from the row sums,
 * so a 3000x3000 image costs one linear scan.
 */
import type { Mask, OpacityScore, SegmentationMasks, Sides, ZoneScores } from './types';
import { extentScoreFromCounts, gradeFor, riskFor, zoneScoreFromCounts, type SeverityConfig } from './severity';

interface SideRows {
  lung: Int32Array; // lung pixels per row
  opacity: Int32Array; // opacity ∩ lung pixels per row
}

function checkSizes(masks: SegmentationMasks): { width: number; height: number } {
  const { width, height } = masks.lungRight;
  for (const [name, m] of Object.entries(masks) as Array<[string, Mask]>) {
    if (m.width !== width || m.height !== height) {
      throw new Error(`scoreMasks: mask ${name} is ${m.width}x${m.height}, expected ${width}x${height} like lungRight`);
    }
    if (m.data.length !== width * height) {
      throw new Error(`scoreMasks: mask ${name} has ${m.data.length} values, expected ${width * height}`);
    }
  }
  return { width, height };
}

function zonesOf(rows: SideRows): { upper: number; middle: number; lower: number } {
  const h = rows.lung.length;
  let top = -1;
  let bottom = -1;
  for (let y = 0; y < h; y++) {
    if (rows.lung[y] > 0) {
      if (top < 0) top = y;
      bottom = y;
    }
  }
  if (top < 0) return { upper: 0, middle: 0, lower: 0 };
  const extent = bottom - top + 1;
  const area = [0, 0, 0];
  const opac = [0, 0, 0];
  for (let y = top; y <= bottom; y++) {
    const z = Math.floor((3 * (y - top)) / extent);
    area[z] += rows.lung[y];
    opac[z] += rows.opacity[y];
  }
  return {
    upper: zoneScoreFromCounts(opac[0], area[0]),
    middle: zoneScoreFromCounts(opac[1], area[1]),
    lower: zoneScoreFromCounts(opac[2], area[2]),
  };
}

const pct = (part: number, whole: number): number | null => (whole > 0 ? (100 * part) / whole : null);
const round2 = (x: number): number => Math.round(x * 100) / 100;

/**
 * Scores already-separated masks (patient's right and left lung, opacity), all of the same size.
 * `pixelSpacingMm` is [row, column] spacing; when given, areas are also reported in mm² (rounded to 0.01 mm²).
 */
export function scoreMasks(masks: SegmentationMasks, cfg: SeverityConfig, pixelSpacingMm?: [number, number]): OpacityScore {
  const { width, height } = checkSizes(masks);
  const lr = masks.lungRight.data;
  const ll = masks.lungLeft.data;
  const op = masks.opacity.data;
  const right: SideRows = { lung: new Int32Array(height), opacity: new Int32Array(height) };
  const left: SideRows = { lung: new Int32Array(height), opacity: new Int32Array(height) };
  let lungTotal = 0;
  let opacTotal = 0;
  for (let y = 0, i = 0; y < height; y++) {
    let rl = 0, ro = 0, ql = 0, qo = 0, ul = 0, uo = 0;
    for (let x = 0; x < width; x++, i++) {
      const r = lr[i] !== 0 ? 1 : 0;
      const l = ll[i] !== 0 ? 1 : 0;
      const o = op[i] !== 0 ? 1 : 0;
      rl += r;
      ro += r & o;
      ql += l;
      qo += l & o;
      const u = r | l;
      ul += u;
      uo += u & o;
    }
    right.lung[y] = rl;
    right.opacity[y] = ro;
    left.lung[y] = ql;
    left.opacity[y] = qo;
    lungTotal += ul;
    opacTotal += uo;
  }
  const sum = (a: Int32Array): number => a.reduce((s, v) => s + v, 0);
  const lungAreaPx: Sides<number> = { total: lungTotal, right: sum(right.lung), left: sum(left.lung) };
  const opacityAreaPx: Sides<number> = { total: opacTotal, right: sum(right.opacity), left: sum(left.opacity) };
  const opacityPct: Sides<number | null> = {
    total: pct(opacityAreaPx.total, lungAreaPx.total),
    right: pct(opacityAreaPx.right, lungAreaPx.right),
    left: pct(opacityAreaPx.left, lungAreaPx.left),
  };
  const exR = extentScoreFromCounts(opacityAreaPx.right, lungAreaPx.right);
  const exL = extentScoreFromCounts(opacityAreaPx.left, lungAreaPx.left);
  const zr = zonesOf(right);
  const zl = zonesOf(left);
  const zones: ZoneScores = {
    total: zr.upper + zr.middle + zr.lower + zl.upper + zl.middle + zl.lower,
    right: zr,
    left: zl,
  };
  const out: OpacityScore = {
    lungAreaPx,
    opacityAreaPx,
    opacityPct,
    geographicExtent: { total: exR + exL, right: exR, left: exL },
    zones,
    grade: gradeFor(opacityPct.total, cfg),
    risk: riskFor(opacityPct.total, cfg),
    severityVersion: cfg.version,
  };
  if (pixelSpacingMm) {
    const [sr, sc] = pixelSpacingMm;
    if (!(sr > 0 && sc > 0 && Number.isFinite(sr) && Number.isFinite(sc))) {
      throw new Error(`scoreMasks: pixel spacing must be two positive numbers, got [${sr}, ${sc}]`);
    }
    const mm2 = (s: Sides<number>): Sides<number> => ({ total: round2(s.total * sr * sc), right: round2(s.right * sr * sc), left: round2(s.left * sr * sc) });
    out.lungAreaMm2 = mm2(lungAreaPx);
    out.opacityAreaMm2 = mm2(opacityAreaPx);
  }
  return out;
}
