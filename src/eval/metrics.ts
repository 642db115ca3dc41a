/** Segmentation and agreement metrics for the evaluator (plain functions, tested in test/eval.test.ts). */
import type { Mask } from '../core/types';
import { mean, pearson, prng, ranks, spearman } from '../stats';

export { mean, pearson, ranks, spearman };

export interface Overlap { inter: number; a: number; b: number }

export function overlap(pred: Mask | Uint8Array, truth: Mask | Uint8Array): Overlap {
  const p = pred instanceof Uint8Array ? pred : pred.data;
  const t = truth instanceof Uint8Array ? truth : truth.data;
  if (p.length !== t.length) throw new Error(`mask sizes differ: ${p.length} vs ${t.length}`);
  let inter = 0, a = 0, b = 0;
  for (let i = 0; i < p.length; i++) {
    const x = p[i] ? 1 : 0, y = t[i] ? 1 : 0;
    a += x; b += y; inter += x & y;
  }
  return { inter, a, b };
}

/** Dice; two empty masks agree perfectly (1). */
export const dice = (o: Overlap): number => (o.a + o.b === 0 ? 1 : (2 * o.inter) / (o.a + o.b));
/** IoU; two empty masks agree perfectly (1). */
export const iou = (o: Overlap): number => (o.a + o.b - o.inter === 0 ? 1 : o.inter / (o.a + o.b - o.inter));

export function pooled(os: Overlap[]): Overlap {
  return os.reduce((s, o) => ({ inter: s.inter + o.inter, a: s.a + o.a, b: s.b + o.b }), { inter: 0, a: 0, b: 0 });
}

/** Percentile bootstrap 95% CI of a statistic over resampled items. */
export function bootstrapCi<T>(items: T[], stat: (sample: T[]) => number, reps = 2000, seed = 42): [number, number] {
  if (items.length === 0) return [NaN, NaN];
  const rnd = prng(seed);
  const vals: number[] = [];
  for (let r = 0; r < reps; r++) {
    const sample = Array.from({ length: items.length }, () => items[Math.floor(rnd() * items.length)]);
    const v = stat(sample);
    if (Number.isFinite(v)) vals.push(v);
  }
  vals.sort((a, b) => a - b);
  const q = (p: number) => vals[Math.min(vals.length - 1, Math.max(0, Math.floor(p * vals.length)))];
  return [q(0.025), q(0.975)];
}
