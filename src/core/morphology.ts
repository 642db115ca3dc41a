/**
 * Binary-mask operations used to clean the model's masks: connected components and hole filling.
 * Written here because they are a few dozen lines over typed arrays and no maintained Node package does
 * 2-D binary morphology on raw buffers without pulling in an image-processing runtime.
 */
import type { Mask } from './types';

/** Labels 4-connected components; returns labels (0 = background) and the size of each label. */
export function labelComponents(mask: Mask): { labels: Int32Array; sizes: number[] } {
  const { width: w, height: h, data } = mask;
  const labels = new Int32Array(w * h);
  const sizes: number[] = [0];
  const stack = new Int32Array(w * h);
  let next = 0;
  for (let start = 0; start < data.length; start++) {
    if (!data[start] || labels[start]) continue;
    next++;
    let size = 0;
    let sp = 0;
    stack[sp++] = start;
    labels[start] = next;
    while (sp > 0) {
      const p = stack[--sp];
      size++;
      const x = p % w;
      if (x > 0 && data[p - 1] && !labels[p - 1]) { labels[p - 1] = next; stack[sp++] = p - 1; }
      if (x < w - 1 && data[p + 1] && !labels[p + 1]) { labels[p + 1] = next; stack[sp++] = p + 1; }
      if (p >= w && data[p - w] && !labels[p - w]) { labels[p - w] = next; stack[sp++] = p - w; }
      if (p < w * (h - 1) && data[p + w] && !labels[p + w]) { labels[p + w] = next; stack[sp++] = p + w; }
    }
    sizes.push(size);
  }
  return { labels, sizes };
}

/** Keeps only the largest connected component (an empty mask stays empty). */
export function keepLargestComponent(mask: Mask): Mask {
  const { labels, sizes } = labelComponents(mask);
  if (sizes.length <= 2) return mask;
  let best = 1;
  for (let i = 2; i < sizes.length; i++) if (sizes[i] > sizes[best]) best = i;
  const data = new Uint8Array(mask.data.length);
  for (let i = 0; i < data.length; i++) data[i] = labels[i] === best ? 1 : 0;
  return { width: mask.width, height: mask.height, data };
}

/** Fills holes: background regions not 4-connected to the image border become foreground. */
export function fillHoles(mask: Mask): Mask {
  const { width: w, height: h } = mask;
  const outside = new Uint8Array(w * h);
  const stack = new Int32Array(w * h);
  let sp = 0;
  const seed = (p: number) => {
    if (!mask.data[p] && !outside[p]) { outside[p] = 1; stack[sp++] = p; }
  };
  for (let x = 0; x < w; x++) { seed(x); seed((h - 1) * w + x); }
  for (let y = 0; y < h; y++) { seed(y * w); seed(y * w + w - 1); }
  while (sp > 0) {
    const p = stack[--sp];
    const x = p % w;
    if (x > 0) seed(p - 1);
    if (x < w - 1) seed(p + 1);
    if (p >= w) seed(p - w);
    if (p < w * (h - 1)) seed(p + w);
  }
  const data = new Uint8Array(w * h);
  for (let i = 0; i < data.length; i++) data[i] = outside[i] ? 0 : 1;
  return { width: w, height: h, data };
}

export const countOnes = (m: Mask): number => {
  let n = 0;
  for (let i = 0; i < m.data.length; i++) n += m.data[i];
  return n;
};
