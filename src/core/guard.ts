/**
 * Is this a frontal chest X-ray we can measure? Two independent checks, both plain functions:
 *
 * 1. The learned guard (models/cxr-guard.onnx, trained by models/training/guard.py) reads the same input tensor
 *    as the segmentation model and gives three class probabilities: frontal chest X-ray, the same mirrored
 *    left-right, and not a frontal chest X-ray (photographs, documents, noise, other views, rotated or inverted
 *    films). `judgeGuard` turns them into a refusal or a warning.
 * 2. Mask plausibility (`assessMasks`): what the segmentation found must look like two lungs, each of plausible
 *    size and on its own side of the image. Its limits were set on the frontal films of ../shared/data (see
 *    models/MODEL_CARD.md, "Refusals"): at most 1% of real films may be refused.
 *
 * Refusals are InputErrors with code NOT_A_CHEST_XRAY (the result is FAILED with a reason the user can act on);
 * an image that passes but looks unusual carries `quality.warnings`, which travel to the result item.
 */
import { InputError } from './errors';
import type { GrayImage, GuardManifest, GuardOutput, Mask, QualityReport, QualityWarning, SegmentationMasks } from './types';

/** Class order of the guard's output (models/cxr-guard.json `output.classes`). */
export const GUARD_CLASSES = ['frontal_cxr', 'frontal_cxr_mirrored', 'not_frontal_cxr'] as const;

/**
 * Plausibility limits, as shares of the image area. Checked on the 3,164 frontal films of ../shared/data with
 * model 2.0.0 (`npx tsx src/eval/refusals.ts`, models/eval/refusals.json): 16 films (0.5%) are refused in all, by
 * the guard and these limits together; on the accepted films the smallest shares seen are 1.0% (right lung),
 * 3.2% (left lung) and 4.9% (both), the largest 58% (both), and the side ratio's 0.1st percentile is 0.41. The
 * refusal limits sit at or below those extremes; the warning limits near the tails.
 */
export const PLAUSIBILITY = {
  /** NO_LUNGS_FOUND: both lungs together smaller than this share of the image (nothing lung-like at all). */
  noLungsBelowShare: 0.02,
  /** Refuse: a lung smaller than this share of the image (one lung missing: not a frontal chest film). */
  minLungShare: 0.01,
  /** Refuse: both lungs together smaller than this share of the image. */
  minBothLungsShare: 0.04,
  /** Refuse: both lungs together larger than this share (the "lungs" fill the picture: not a chest film). */
  maxBothLungsShare: 0.85,
  /** Warn: smaller lung / larger lung below this ratio. */
  warnSideRatio: 0.35,
  /** Warn: guard's not-a-chest probability at or above this (but below the refusal threshold). */
  warnNotChest: 0.2,
  /** Warn: lung pixels on the image's outermost rows/columns above this share of its perimeter (cut off). */
  warnBorderShare: 0.02,
  /**
   * Warn (cut off) also when a lung runs along an edge without touching it: the model closes a lung cut by the film's
   * edge a few rows short of it. "Along" is within this share of the image's height (top, bottom) or width (left,
   * right) of the edge ...
   */
  cutOffMargin: 0.04,
  /**
   * ... over more than this share of the lung's own width (bottom, top) or height (sides). The bottom's is lower: a
   * lung's lower outline is the domes of the diaphragm and the costophrenic angles, so an uncut lung meets the
   * bottom of a film in points, never in a line. Measured on 283 held-out films (covidqu and gb_covid_seg
   * validation, v7labs; not external22) and the same films cut: as they are, 1 more film warned (tightly cropped;
   * 20 of 281 in all); cut to their top half, 142 of the 166 accepted warned (4 before); top 65%, 172 of 251 (10);
   * top quarter removed, 248 of 269 (219); a fifth of a side removed, 248-250 of ~270 (231-242).
   */
  cutOffSpan: { bottom: 0.5, other: 0.6 },
} as const;

export interface GuardVerdict {
  /** Class probabilities, in GUARD_CLASSES order, and the autoencoder's reconstruction error when there is one. */
  probabilities: { frontal: number; mirrored: number; notChest: number; reconstructionError?: number };
}

/**
 * Whether the guard finds the film mirrored left-right (the heart on the image's left). Such a film is segmented
 * flipped back (core/segment.ts), since the model only knows films as acquired, and its report says so.
 */
export function looksMirrored(v: GuardVerdict | undefined): boolean {
  return v !== undefined && v.probabilities.mirrored > v.probabilities.frontal;
}

/** Coloured marks on more than this share of a film's pixels: refused (a coloured side marker or caliper is far less). */
export const MAX_COLOUR_MARKED_SHARE = 0.02;

/**
 * Refuses a film with coloured marks over more than MAX_COLOUR_MARKED_SHARE of it (GrayImage colourMarkedShare): an
 * analysis overlay (this tool's own, read back), coloured annotations or a screenshot of a viewer, whose colours would
 * be measured as X-ray density. Judged after the guard, so that a colour photograph is told it is not a chest X-ray.
 * @throws InputError UNSUPPORTED_IMAGE
 */
export function judgeColourMarks(img: GrayImage): void {
  const share = img.colourMarkedShare ?? 0;
  if (share > MAX_COLOUR_MARKED_SHARE) {
    throw new InputError('UNSUPPORTED_IMAGE', `Coloured marks cover ${(100 * share).toFixed(1)}% of the image (an analysis overlay, coloured annotations or a screenshot of a viewer, not the film itself): they would be measured as X-ray density. Upload the original film, as exported from the modality or PACS without overlays.`);
  }
}

const NOT_CHEST_ADVICE = 'photographs, documents, other body parts or modalities, lateral views and rotated or inverted ' +
  'films are not analysed. Upload a frontal (PA or AP) chest radiograph, upright and as acquired, filling the image ' +
  '(crop away wide borders or other pictures beside it); nothing was measured.';

/**
 * Reads one image's guard output (3 class probabilities, and the reconstruction error when the guard has an
 * autoencoder) and refuses when it is not a frontal chest X-ray.
 * @throws InputError NOT_A_CHEST_XRAY
 */
export function judgeGuard({ classes, reconstructionError }: GuardOutput, manifest: GuardManifest): GuardVerdict {
  if (classes.length !== 3) throw new Error(`guard output must hold 3 probabilities, got ${classes.length}`);
  const [frontal, mirrored, notChest] = Array.from(classes);
  const err = reconstructionError?.[0];
  const verdict: GuardVerdict = { probabilities: { frontal: round3(frontal), mirrored: round3(mirrored), notChest: round3(notChest) } };
  if (err !== undefined) verdict.probabilities.reconstructionError = Number(err.toPrecision(3));
  if (notChest >= manifest.thresholds.not_frontal_cxr) {
    throw new InputError('NOT_A_CHEST_XRAY', `This image does not look like a frontal chest X-ray (${Math.round(notChest * 100)}% sure it is not one): ${NOT_CHEST_ADVICE}`);
  }
  const limit = manifest.thresholds.reconstruction_error;
  if (err !== undefined && limit !== undefined && !(err <= limit)) {
    throw new InputError('NOT_A_CHEST_XRAY', `This image is unlike the frontal chest X-rays the model knows (its reconstruction error is ${(err / limit).toFixed(1)} times the limit): ${NOT_CHEST_ADVICE}`);
  }
  return verdict;
}

interface LungStats {
  area: number;
  cx: number;
  /** Lung pixels on the image's outermost rows and columns. */
  border: number;
  /** Per edge, the share of the lung's columns (top, bottom) or rows (left, right) that come within the margin. */
  along: { top: number; bottom: number; left: number; right: number };
}

function lungStats(m: Mask): LungStats {
  const { width: w, height: h, data } = m;
  const my = Math.max(1, Math.round(PLAUSIBILITY.cutOffMargin * h));
  const mx = Math.max(1, Math.round(PLAUSIBILITY.cutOffMargin * w));
  // Columns with a lung pixel in the top / bottom margin, rows with one in the left / right margin.
  const nearTop = new Uint8Array(w), nearBottom = new Uint8Array(w);
  let area = 0, sx = 0, border = 0, rows = 0, left = 0, right = 0;
  let x0 = w, x1 = -1;
  for (let y = 0, i = 0; y < h; y++) {
    const edgeRow = y === 0 || y === h - 1;
    let any = false, l = false, r = false;
    for (let x = 0; x < w; x++, i++) {
      if (data[i] === 0) continue;
      area++;
      sx += x;
      any = true;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (x < mx) l = true;
      if (x >= w - mx) r = true;
      if (y < my) nearTop[x] = 1;
      if (y >= h - my) nearBottom[x] = 1;
      if (edgeRow || x === 0 || x === w - 1) border++;
    }
    if (any) rows++;
    if (l) left++;
    if (r) right++;
  }
  let top = 0, bottom = 0;
  for (let x = 0; x < w; x++) {
    top += nearTop[x];
    bottom += nearBottom[x];
  }
  const cols = x1 - x0 + 1;
  const along = area ? { top: top / cols, bottom: bottom / cols, left: left / rows, right: right / rows } : { top: 0, bottom: 0, left: 0, right: 0 };
  return { area, cx: area ? sx / area / w : 0.5, border, along };
}

/** Whether a lung runs along an edge of the image (PLAUSIBILITY.cutOffMargin, cutOffSpan). */
function runsAlongEdge(s: LungStats): boolean {
  const { bottom, other } = PLAUSIBILITY.cutOffSpan;
  return s.along.bottom > bottom || s.along.top > other || s.along.left > other || s.along.right > other;
}

/**
 * Checks that the lung masks look like two lungs of a frontal chest film. Throws NOT_A_CHEST_XRAY when they
 * cannot be (NO_LUNGS_FOUND when there is nothing lung-like at all); returns the warnings for results that are
 * usable but unusual.
 */
export function assessMasks(masks: SegmentationMasks, guard?: GuardVerdict): QualityReport {
  const { width, height } = masks.lungRight;
  const n = width * height;
  const r = lungStats(masks.lungRight);
  const l = lungStats(masks.lungLeft);
  const both = (r.area + l.area) / n;
  const refuse = (why: string): never => {
    throw new InputError(
      'NOT_A_CHEST_XRAY',
      `No measurable pair of lungs was found (${why}); only frontal (PA or AP) chest X-rays can be analysed. ` +
        'Check that the image is a frontal chest radiograph, upright, not cropped; nothing was measured.',
    );
  };
  if (both < PLAUSIBILITY.noLungsBelowShare) {
    throw new InputError(
      'NO_LUNGS_FOUND',
      `no lung fields were found (they cover ${(both * 100).toFixed(1)}% of the image); ` +
        'only frontal (PA/AP) chest X-rays can be analysed',
    );
  }
  if (both < PLAUSIBILITY.minBothLungsShare) refuse(`the lung fields cover ${pct(both)} of the image`);
  if (r.area / n < PLAUSIBILITY.minLungShare) refuse(`the patient's right lung covers ${pct(r.area / n)} of the image`);
  if (l.area / n < PLAUSIBILITY.minLungShare) refuse(`the patient's left lung covers ${pct(l.area / n)} of the image`);
  if (both > PLAUSIBILITY.maxBothLungsShare) refuse(`the "lungs" fill ${pct(both)} of the image`);
  // The patient's right lung is on the image's left in a frontal film as acquired.
  if (!(r.cx < l.cx)) refuse("the patient's right lung is not on the image's left");

  const warnings: QualityWarning[] = [];
  const ratio = Math.min(r.area, l.area) / Math.max(r.area, l.area);
  if (ratio < PLAUSIBILITY.warnSideRatio) {
    warnings.push({ code: 'ASYMMETRIC_LUNGS', message: `one lung field is ${Math.round(ratio * 100)}% the size of the other: check the masks before relying on per-lung numbers` });
  }
  if (r.border + l.border > PLAUSIBILITY.warnBorderShare * 2 * (width + height) || runsAlongEdge(r) || runsAlongEdge(l)) {
    warnings.push({ code: 'LUNGS_CUT_OFF', message: 'the lung fields reach or run along the edge of the image: part of a lung may be outside the film, so areas may be underestimated' });
  }
  if (guard) {
    const p = guard.probabilities;
    if (looksMirrored(guard)) {
      warnings.push({ code: 'POSSIBLY_MIRRORED', message: `the film looks mirrored left-right (heart on the image's left, ${Math.round(p.mirrored * 100)}% sure): it was measured flipped back, so the lung on the image's right is reported as the patient's right; if the film is as acquired (dextrocardia, situs inversus), right and left are swapped: check the film's orientation marker` });
    }
    if (p.notChest >= PLAUSIBILITY.warnNotChest) {
      warnings.push({ code: 'ATYPICAL_IMAGE', message: `the image is unlike the chest films the model was trained on (${Math.round(p.notChest * 100)}% not a chest film): check the result` });
    }
  }
  return { guard: guard?.probabilities, warnings };
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;
const pct = (s: number): string => `${(s * 100).toFixed(1)}%`;
