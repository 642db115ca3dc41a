/**
 * From the model's probability maps (S x S) to clean binary masks at the original image size:
 * bilinear upsampling of the probabilities (so edges are placed with sub-pixel accuracy), thresholds
 * from the manifest, each pixel given to the more probable lung, the largest component of each lung
 * kept and its holes filled, and opacity restricted to the lungs.
 */
import { fillHoles, keepLargestComponent } from './morphology';
import type { Mask, ModelManifest, SegmentationMasks } from './types';

interface Axis { i0: Int32Array; i1: Int32Array; f: Float32Array }

/** Source sample positions for resizing n -> m with half-pixel centres (as PyTorch align_corners=False). */
function axis(src: number, dst: number): Axis {
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const f = new Float32Array(dst);
  const scale = src / dst;
  for (let d = 0; d < dst; d++) {
    let s = (d + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    if (s > src - 1) s = src - 1;
    const a = Math.floor(s);
    i0[d] = a;
    i1[d] = Math.min(a + 1, src - 1);
    f[d] = s - a;
  }
  return { i0, i1, f };
}

/**
 * @param probs model output for one image: [3, S, S] (lung_right, lung_left, opacity)
 */
export function probabilitiesToMasks(
  probs: Float32Array,
  S: number,
  width: number,
  height: number,
  thresholds: ModelManifest['thresholds'],
): SegmentationMasks {
  if (probs.length !== 3 * S * S) throw new Error(`expected 3x${S}x${S} probabilities, got ${probs.length}`);
  const ax = axis(S, width);
  const ay = axis(S, height);
  const n = width * height;
  const right = new Uint8Array(n);
  const left = new Uint8Array(n);
  const opac = new Uint8Array(n);
  const plane = S * S;
  const { lung_right: tR, lung_left: tL, opacity: tO } = thresholds;
  for (let y = 0; y < height; y++) {
    const r0 = ay.i0[y] * S;
    const r1 = ay.i1[y] * S;
    const fy = ay.f[y];
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const c0 = ax.i0[x];
      const c1 = ax.i1[x];
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
