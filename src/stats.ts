/**
 * Small, dependency-free statistics shared by the severity calibration and the model evaluator: a seeded PRNG, ROC AUC, percentile
 * bootstrap (by cluster), a two-parameter logistic regression, Wilson intervals, correlations.
 * Everything is deterministic for a given seed.
 */

/** mulberry32: a tiny seeded PRNG with 32-bit state; uniform in [0, 1). */
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

/** Midranks (1-based) of xs, ties sharing their mean rank. */
export function ranks(xs: number[]): number[] {
  const idx = xs.map((_, i) => i).sort((i, j) => xs[i] - xs[j]);
  const r = new Array<number>(xs.length);
  for (let k = 0; k < idx.length; ) {
    let e = k;
    while (e + 1 < idx.length && xs[idx[e + 1]] === xs[idx[k]]) e++;
    const mid = (k + e) / 2 + 1;
    for (let q = k; q <= e; q++) r[idx[q]] = mid;
    k = e + 1;
  }
  return r;
}

/** ROC AUC = P(score of a positive > score of a negative) + 0.5 P(tie) (Mann-Whitney). NaN without both classes. */
export function auc(score: number[], y: number[]): number {
  const r = ranks(score);
  let nPos = 0;
  let sumPos = 0;
  for (let i = 0; i < y.length; i++) if (y[i]) { nPos++; sumPos += r[i]; }
  const nNeg = y.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (sumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

export interface Estimate {
  value: number;
  ci95: [number, number];
  /** Bootstrap resamples that gave a finite statistic (e.g. both classes present). */
  resamples: number;
}

/**
 * Percentile bootstrap of `stat` over clusters: each resample draws clusters (e.g. patients) with replacement
 * and passes the row indices of the drawn clusters (repeats included) to `stat`.
 */
export function bootstrap(clusters: number[][], stat: (rows: number[]) => number, opts: { n: number; seed: number }): Estimate {
  const all = clusters.flat();
  const value = stat(all);
  const rnd = prng(opts.seed);
  const vals: number[] = [];
  for (let b = 0; b < opts.n; b++) {
    const rows: number[] = [];
    for (let k = 0; k < clusters.length; k++) rows.push(...clusters[Math.floor(rnd() * clusters.length)]);
    const v = stat(rows);
    if (Number.isFinite(v)) vals.push(v);
  }
  vals.sort((a, b) => a - b);
  return { value, ci95: [quantile(vals, 0.025), quantile(vals, 0.975)], resamples: vals.length };
}

/** Wilson score interval for k successes of n. */
export function wilson(k: number, n: number, z = 1.959963984540054): [number, number] {
  if (n === 0) return [NaN, NaN];
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

export const sigmoid = (t: number): number => 1 / (1 + Math.exp(-t));

export interface LogisticFit {
  intercept: number;
  coef: number;
  iterations: number;
  converged: boolean;
}

/**
 * Maximum-likelihood logistic regression with one feature, y ~ sigmoid(b0 + b1 x), by Newton-Raphson (= IRLS).
 * Hand-written on purpose: with two parameters the Hessian is a 2x2 matrix inverted in closed form, and a
 * dependency would not make it clearer. Step-halving keeps the log-likelihood non-decreasing. The feature is
 * centred and scaled internally for conditioning; the returned coefficients are on the original scale.
 */
export function fitLogistic(x: number[], y: number[], maxIter = 100, tol = 1e-10): LogisticFit {
  const n = x.length;
  const mean = x.reduce((s, v) => s + v, 0) / n;
  const sd = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / n) || 1;
  const z = x.map((v) => (v - mean) / sd);
  const ll = (a: number, b: number): number => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const t = a + b * z[i];
      // log(1 + e^t) computed stably
      const log1pe = t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t));
      s += y[i] * t - log1pe;
    }
    return s;
  };
  const ybar = y.reduce((s, v) => s + v, 0) / n;
  let a = Math.log(Math.max(ybar, 1e-6) / Math.max(1 - ybar, 1e-6));
  let b = 0;
  let cur = ll(a, b);
  let it = 0;
  let converged = false;
  for (; it < maxIter; it++) {
    let g0 = 0, g1 = 0, h00 = 0, h01 = 0, h11 = 0;
    for (let i = 0; i < n; i++) {
      const p = sigmoid(a + b * z[i]);
      const w = p * (1 - p);
      g0 += y[i] - p;
      g1 += (y[i] - p) * z[i];
      h00 += w;
      h01 += w * z[i];
      h11 += w * z[i] * z[i];
    }
    const det = h00 * h11 - h01 * h01;
    if (!(det > 0)) break;
    let da = (h11 * g0 - h01 * g1) / det;
    let db = (h00 * g1 - h01 * g0) / det;
    let step = 1;
    let next = ll(a + da, b + db);
    while (next < cur - 1e-12 && step > 1e-6) {
      step /= 2;
      next = ll(a + step * da, b + step * db);
    }
    da *= step;
    db *= step;
    a += da;
    b += db;
    const gain = next - cur;
    cur = next;
    if (Math.abs(da) + Math.abs(db) < tol || Math.abs(gain) < tol * 1e-2) {
      converged = true;
      it++;
      break;
    }
  }
  return { intercept: a - (b * mean) / sd, coef: b / sd, iterations: it, converged };
}

export function pearson(x: number[], y: number[]): number {
  const n = x.length;
  const mx = x.reduce((s, v) => s + v, 0) / n;
  const my = y.reduce((s, v) => s + v, 0) / n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : NaN;
}

export const spearman = (x: number[], y: number[]): number => pearson(ranks(x), ranks(y));

export const mean = (xs: number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
export const median = (xs: number[]): number => quantile([...xs].sort((a, b) => a - b), 0.5);
