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
 *   the share of that zone's lung area that is opaque, on the config's scale (severity.ts zoneLevel: levels fitted
 *   to radiologists' scores, with a minimum involved share so that a speck is not involvement).
 * - Sides are the patient's and come from the masks as given.
 *
 * countMasks makes one pass over the pixels and keeps only counts (per lung, per zone); scoreCounts computes
 * every number from them, so the score stage needs the counts, not the masks.
 */
import type { Mask, OpacityScore, SegmentationMasks, Sides, ZoneScores } from './types';
import { extentLevel, gradeFor, riskFor, zoneLevel, type SeverityConfig } from './severity';

/** Pixel counts of one lung: its area, its opaque area, and both per zone (upper, middle, lower third). */
export interface SideCounts {
  lung: number;
  opacity: number;
  zoneLung: [number, number, number];
  zoneOpacity: [number, number, number];
}

/**
 * Everything the score needs from the masks, as pixel counts (small enough to travel in a stage message).
 * `lung`/`opacity` are over the union of the lungs (a pixel claimed by both lungs counts once).
 * `width` x `height` is the grid the masks were counted on; `image`, when given, is the size of the image that
 * grid covers (core/postprocess.ts counts on a working grid), and areas in pixels are reported in the image's
 * pixels (count x image area / grid area).
 */
export interface MaskCounts {
  width: number;
  height: number;
  image?: { width: number; height: number };
  lung: number;
  opacity: number;
  right: SideCounts;
  left: SideCounts;
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

/** Per-zone sums from per-row counts: thirds of the lung's own vertical extent. */
function sideCounts(lungRows: Int32Array, opacRows: Int32Array): SideCounts {
  const h = lungRows.length;
  let top = -1;
  let bottom = -1;
  let lung = 0;
  let opacity = 0;
  for (let y = 0; y < h; y++) {
    lung += lungRows[y];
    opacity += opacRows[y];
    if (lungRows[y] > 0) {
      if (top < 0) top = y;
      bottom = y;
    }
  }
  const zoneLung: [number, number, number] = [0, 0, 0];
  const zoneOpacity: [number, number, number] = [0, 0, 0];
  if (top >= 0) {
    const extent = bottom - top + 1;
    for (let y = top; y <= bottom; y++) {
      const z = Math.floor((3 * (y - top)) / extent);
      zoneLung[z] += lungRows[y];
      zoneOpacity[z] += opacRows[y];
    }
  }
  return { lung, opacity, zoneLung, zoneOpacity };
}

/**
 * One linear pass over the masks: the counts every score is computed from.
 * @param image the size of the image the masks cover, when they are on a smaller working grid
 */
export function countMasks(masks: SegmentationMasks, image?: { width: number; height: number }): MaskCounts {
  const { width, height } = checkSizes(masks);
  const lr = masks.lungRight.data;
  const ll = masks.lungLeft.data;
  const op = masks.opacity.data;
  const rL = new Int32Array(height), rO = new Int32Array(height);
  const lL = new Int32Array(height), lO = new Int32Array(height);
  let lung = 0;
  let opacity = 0;
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
    rL[y] = rl; rO[y] = ro; lL[y] = ql; lO[y] = qo;
    lung += ul;
    opacity += uo;
  }
  const sides = { lung, opacity, right: sideCounts(rL, rO), left: sideCounts(lL, lO) };
  if (!image || (image.width === width && image.height === height)) return { width, height, ...sides };
  if (!(Number.isInteger(image.width) && Number.isInteger(image.height) && image.width >= width && image.height >= height)) {
    throw new Error(`countMasks: image ${image.width}x${image.height} must be whole pixels and at least the ${width}x${height} grid`);
  }
  return { width, height, image: { width: image.width, height: image.height }, ...sides };
}

const pct = (part: number, whole: number): number | null => (whole > 0 ? (100 * part) / whole : null);
const round2 = (x: number): number => Math.round(x * 100) / 100;

/** Opacity as % of lung area (total over the union of the lungs, and per lung); null where a lung area is 0. */
export function opacityPctOf(c: MaskCounts): Sides<number | null> {
  return { total: pct(c.opacity, c.lung), right: pct(c.right.opacity, c.right.lung), left: pct(c.left.opacity, c.left.lung) };
}

/**
 * The score from pixel counts. `pixelSpacingMm` is [row, column] spacing of the image's pixels (`c.image`, or
 * the counted grid when it has none); when given, areas are also reported in mm² (rounded to 0.01 mm²).
 */
export function scoreCounts(c: MaskCounts, cfg: SeverityConfig, pixelSpacingMm?: [number, number]): OpacityScore {
  // Grid pixels -> image pixels (1 when the masks were counted at the image's size).
  const k = c.image ? (c.image.width * c.image.height) / (c.width * c.height) : 1;
  const sides = (t: number, r: number, l: number): Sides<number> => ({ total: t * k, right: r * k, left: l * k });
  const rawLung = sides(c.lung, c.right.lung, c.left.lung);
  const rawOpacity = sides(c.opacity, c.right.opacity, c.left.opacity);
  const whole = (s: Sides<number>): Sides<number> => ({ total: Math.round(s.total), right: Math.round(s.right), left: Math.round(s.left) });
  const lungAreaPx = whole(rawLung);
  const opacityAreaPx = whole(rawOpacity);
  const opacityPct = opacityPctOf(c);
  const exR = extentLevel(c.right.opacity, c.right.lung, cfg);
  const exL = extentLevel(c.left.opacity, c.left.lung, cfg);
  const z = (s: SideCounts) => ({
    upper: zoneLevel(s.zoneOpacity[0], s.zoneLung[0], cfg),
    middle: zoneLevel(s.zoneOpacity[1], s.zoneLung[1], cfg),
    lower: zoneLevel(s.zoneOpacity[2], s.zoneLung[2], cfg),
  });
  const zr = z(c.right);
  const zl = z(c.left);
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
    out.lungAreaMm2 = mm2(rawLung);
    out.opacityAreaMm2 = mm2(rawOpacity);
  }
  return out;
}

/**
 * Scores already-separated masks (patient's right and left lung, opacity), all of the same size.
 * `pixelSpacingMm` is [row, column] spacing; when given, areas are also reported in mm² (rounded to 0.01 mm²).
 */
export function scoreMasks(masks: SegmentationMasks, cfg: SeverityConfig, pixelSpacingMm?: [number, number]): OpacityScore {
  return scoreCounts(countMasks(masks), cfg, pixelSpacingMm);
}
