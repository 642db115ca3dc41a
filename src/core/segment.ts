/**
 * Segmentation of one decoded image: preprocess, run the model, post-process to clean masks on the working grid
 * (core/postprocess.ts: the image's size up to WORKING_MAX_SIDE on the long side). Count them with
 * countMasks(masks, image) and upsample them (core/upsample.ts) where full-size pictures are needed.
 */
import { probabilitiesToMasks } from './postprocess';
import { toModelInput } from './preprocess';
import { assessMasks, judgeColourMarks, judgeGuard, looksMirrored, type GuardVerdict } from './guard';
import type { GrayImage, Mask, QualityReport, SegmentationMasks, SegmentationModel } from './types';

export interface SegmentTimings {
  preprocessMs: number;
  inferenceMs: number;
  postprocessMs: number;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/**
 * @throws InputError NOT_A_CHEST_XRAY when the guard or the mask plausibility check says the image is not a
 *   frontal chest X-ray (src/core/guard.ts), NO_LUNGS_FOUND when no lung fields were found at all.
 */
export async function segmentImage(
  img: GrayImage,
  model: SegmentationModel,
): Promise<{ masks: SegmentationMasks; timings: SegmentTimings; quality: QualityReport }> {
  const m = model.manifest;
  const S = m.input.size;
  let t = process.hrtime.bigint();
  const input = await toModelInput(img, m);
  const preprocessMs = ms(t);
  t = process.hrtime.bigint();
  // The guard first: a refused image costs no segmentation.
  let verdict: GuardVerdict | undefined;
  if (model.guard) verdict = judgeGuard(await model.guard.run(input, 1), model.guard.manifest);
  judgeColourMarks(img);
  // A film the guard finds mirrored left-right is segmented flipped back: the model has only seen films as acquired
  // (on the red-team's mirrored films its opacity % moved by up to 35 points). Its masks are flipped back again
  // into the image's frame, so the patient's right lung is then on the image's right (assessMasks checks the sides
  // in the flipped frame, where they are as acquired).
  const mirrored = looksMirrored(verdict);
  const probs = await model.run(mirrored ? flipRows(input, S, S) : input, 1);
  const inferenceMs = ms(t);
  t = process.hrtime.bigint();
  const asAcquired = probabilitiesToMasks(probs, S, img.width, img.height, m.thresholds);
  const postprocessMs = ms(t);
  const quality = assessMasks(asAcquired, verdict);
  const masks = mirrored ? {
    lungRight: flipMask(asAcquired.lungRight), lungLeft: flipMask(asAcquired.lungLeft), opacity: flipMask(asAcquired.opacity),
  } : asAcquired;
  return { masks, timings: { preprocessMs, inferenceMs, postprocessMs }, quality };
}

/** Each row of a width x height plane reversed (a left-right flip); a new array. */
export function flipRows<T extends Float32Array | Uint8Array>(data: T, width: number, height: number): T {
  const out = data.slice() as T;
  for (let y = 0; y < height; y++) out.subarray(y * width, (y + 1) * width).reverse();
  return out;
}

/** A mask flipped left-right. */
export function flipMask(m: Mask): Mask {
  return { width: m.width, height: m.height, data: flipRows(m.data, m.width, m.height) };
}
