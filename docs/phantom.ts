/**
 * The synthetic chest phantom of the documentation pictures (no patient image may be redistributed here):
 * a body, two lung fields with faint ribs, a mediastinum and a hazy patch in the patient's right lower
 * zone (image left, as on a PA film). `phantomMasks` gives the drawing's own lung fields and haze as masks.
 */
import type { SegmentationMasks } from '../src/core/types';

const body = (u: number, v: number) => ((u - 0.5) / 0.47) ** 2 + ((v - 0.6) / 0.55) ** 2;
const lung = (u: number, v: number, cx: number) => ((u - cx) / 0.17) ** 2 + ((v - 0.47) / 0.33) ** 2 * (v < 0.47 ? 1.6 : 1);
const haze = (u: number, v: number) => ((u - 0.3) / 0.1) ** 2 + ((v - 0.62) / 0.1) ** 2;
const mediastinum = (u: number, v: number) => Math.abs(u - 0.5) < 0.05 + 0.06 * Math.max(0, v - 0.55);

/** 8-bit gray pixels, row-major (not blurred). */
export function phantom(W: number, H: number): Buffer {
  const px = Buffer.alloc(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const u = x / W, v = y / H;
    let g = 0.08;
    const b = body(u, v);
    if (b < 1) {
      g = 0.78 - 0.12 * b;
      const l = Math.min(lung(u, v, 0.31), lung(u, v, 0.69));
      if (l < 1) g = 0.2 + 0.22 * l ** 2 + 0.06 * Math.max(0, Math.sin(v * 55 + Math.abs(u - 0.5) * 8));
      const h = haze(u, v);
      if (l < 1 && h < 1) g += 0.28 * (1 - h);
      if (mediastinum(u, v)) g = Math.max(g, 0.88);
    }
    px[y * W + x] = Math.round(Math.min(1, Math.max(0, g)) * 255);
  }
  return px;
}

/** The phantom's drawn lung fields (patient's right = image left) and its haze, as binary masks. */
export function phantomMasks(W: number, H: number): SegmentationMasks {
  const mk = () => ({ width: W, height: H, data: new Uint8Array(W * H) });
  const m = { lungRight: mk(), lungLeft: mk(), opacity: mk() };
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const u = x / W, v = y / H, p = y * W + x;
    if (body(u, v) >= 1 || mediastinum(u, v)) continue;
    if (lung(u, v, 0.31) < 1) {
      m.lungRight.data[p] = 1;
      if (haze(u, v) < 0.8) m.opacity.data[p] = 1;
    } else if (lung(u, v, 0.69) < 1) m.lungLeft.data[p] = 1;
  }
  return m;
}
