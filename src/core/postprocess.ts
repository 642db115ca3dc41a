/**
 * From the model's probability maps (S x S) to clean binary masks on a bounded working grid: bilinear
 * upsampling of the probabilities to the grid (edges placed with sub-pixel accuracy of the model's output),
 * thresholds from the manifest, each pixel given to the more probable lung, the largest component of each lung
 * kept and its holes filled, and opacity restricted to the lungs.
 *
 * The grid is the image's own size up to WORKING_MAX_SIDE on the long side, and the image's aspect ratio
 * scaled down beyond that: the model sees 256 x 256, so a 3000-pixel grid adds no information, only
 * 100x the pixels to label and fill. Scores come from counts on this grid (core/score.ts countMasks, which
 * scales areas to the image's pixels); full-size mask pictures are upsampled from it (core/upsample.ts).
 * test/working-resolution.test.ts shows opacity % and scores do not move against the full-size grid.
 */
import { fillHoles, keepLargestComponent } from './morphology';
import { fitLongSide, resampleAxis } from './upsample';
import type { Mask, ModelManifest, SegmentationMasks } from './types';

/** The long side of the working grid at most, in pixels. */
export const WORKING_MAX_SIDE = 512;

/** The working grid for an image: its own size, or scaled down (aspect kept) so the long side is maxSide. */
export function workingGrid(width: number, height: number, maxSide = WORKING_MAX_SIDE): { width: number; height: number } {
  return fitLongSide(width, height, maxSide);
}

/**
 * @param probs model output for one image: [3, S, S] (lung_right, lung_left, opacity)
 * @param imageWidth the image's width (the masks come back at workingGrid(imageWidth, imageHeight, maxSide))
 * @param maxSide the working grid's long side at most; Infinity gives masks at the image's own size
 */
export function probabilitiesToMasks(
  probs: Float32Array,
  S: number,
  imageWidth: number,
  imageHeight: number,
  thresholds: ModelManifest['thresholds'],
  maxSide = WORKING_MAX_SIDE,
): SegmentationMasks {
  if (probs.length !== 3 * S * S) throw new Error(`expected 3x${S}x${S} probabilities, got ${probs.length}`);
  const { width, height } = workingGrid(imageWidth, imageHeight, maxSide);
  const ax = resampleAxis(S, width);
  const ay = resampleAxis(S, height);
  const n = width * height;
  const right = new Uint8Array(n);
  const left = new Uint8Array(n);
  const opac = new Uint8Array(n);
  const plane = S * S;
  const { lung_right: tR, lung_left: tL, opacity: tO } = thresholds;
  for (let y = 0; y < height; y++) {
    const r0 = ay.i0[y] * S;
    const r1 = Math.min(ay.i0[y] + 1, S - 1) * S;
    const fy = ay.f[y];
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const c0 = ax.i0[x];
      const c1 = c0 + 1 < S ? c0 + 1 : c0;
      const fx = ax.f[x];
      const w00 = (1 - fy) * (1 - fx);
      const w01 = (1 - fy) * fx;
      const w10 = fy * (1 - fx);
      const w11 = fy * fx;
      const a = r0 + c0, b = r0 + c1, c = r1 + c0, d = r1 + c1;
      const pR = w00 * probs[a] + w01 * probs[b] + w10 * probs[c] + w11 * probs[d];
      const pL = w00 * probs[plane + a] + w01 * probs[plane + b] + w10 * probs[plane + c] + w11 * probs[plane + d];
      const o = 2 * plane;
      const pO = w00 * probs[o + a] + w01 * probs[o + b] + w10 * probs[o + c] + w11 * probs[o + d];
      const i = row + x;
      if (pR >= tR && pR >= pL) right[i] = 1;
      else if (pL >= tL) left[i] = 1;
      if (pO >= tO) opac[i] = 1;
    }
  }
  const clean = (data: Uint8Array): Mask => fillHoles(keepLargestComponent({ width, height, data }));
  const lungRight = clean(right);
  const lungLeft = clean(left);
  // Hole filling can make the two lungs overlap only if one encloses the other; the right lung wins.
  for (let i = 0; i < n; i++) {
    if (lungRight.data[i]) lungLeft.data[i] = 0;
    opac[i] = opac[i] & (lungRight.data[i] | lungLeft.data[i]);
  }
  return { lungRight, lungLeft, opacity: { width, height, data: opac } };
}
