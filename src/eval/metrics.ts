/** Segmentation and agreement metrics for the evaluator (plain functions, tested in test/eval.test.ts). */
import type { Mask } from '../core/types';

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

export const mean = (xs: number[]): number => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);

export function pearson(x: number[], y: number[]): number {
  const mx = mean(x), my = mean(y);
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < x.length; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy);
}

/** Average ranks (ties share their mean rank). */
export function ranks(x: number[]): number[] {
  const idx = x.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(x.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && idx[j + 1][0] === idx[i][0]) j++;
    for (let k = i; k <= j; k++) r[idx[k][1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

export const spearman = (x: number[], y: number[]): number => pearson(ranks(x), ranks(y));

/** Deterministic PRNG (mulberry32) so bootstrap intervals are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
