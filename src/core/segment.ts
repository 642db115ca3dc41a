/**
 * Segmentation of one decoded image: preprocess, run the model, post-process to clean masks on the working grid
 * (core/postprocess.ts: the image's size up to WORKING_MAX_SIDE on the long side). Count them with
 * countMasks(masks, image) and upsample them (core/upsample.ts) where full-size pictures are needed.
 */
import { probabilitiesToMasks } from './postprocess';
import { toModelInput } from './preprocess';
import { assessMasks, judgeGuard, type GuardVerdict } from './guard';
import type { GrayImage, QualityReport, SegmentationMasks, SegmentationModel } from './types';

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
  const probs = await model.run(input, 1);
  const inferenceMs = ms(t);
  t = process.hrtime.bigint();
  const masks = probabilitiesToMasks(probs, S, img.width, img.height, m.thresholds);
  const postprocessMs = ms(t);
  const quality = assessMasks(masks, verdict);
  return { masks, timings: { preprocessMs, inferenceMs, postprocessMs }, quality };
}
