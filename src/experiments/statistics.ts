/**
 * The statistics of the project, in one place: mean ± standard deviation over seeds, Student-t
 * tails, quantiles and intervals, and the one classifier of comparisons (issue 14): every
 * "does this variant beat that one" in the notebooks is answered by `classify`, and the
 * notebooks only display the answer. Pure numbers: the runs these numbers come from are read
 * in results.ts (paired differences) and verdicts.ts (which comparisons to make).
 *
 * A comparison is a list of differences paired by seed (variant − reference on the same seed:
 * same data subset, same initial target). From it: the mean, the two-sided 95 % Student-t
 * confidence interval, and one verdict among
 *
 *   better        the interval lies above 0 (two-sided t test, p < 0.05, mean > 0);
 *   worse         the interval lies below 0;
 *   equivalent    within ±δ by two one-sided tests, each at 2.5 % (TOST): the same 95 %
 *                 interval lies inside (−δ, +δ), and not better or worse;
 *   inconclusive  none of these: the seeds cannot tell.
 *
 * The usual TOST runs each one-sided test at 5 % (the 90 % interval inside ±δ). Here each runs
 * at 2.5 %, which is stricter: then the one interval every table and figure shows decides every
 * verdict, and a row drawn reaching past the ±δ band is never called equivalent.
 *
 * δ is the smallest effect worth calling transfer, stated per scenario with its reason
 * (`smallestEffect`). A difference can be both significant and smaller than δ: its verdict is
 * better or worse, flagged `belowDelta` and said in words ("real, but smaller than δ").
 *
 */

export interface Stats {
  mean: number;
  /** Sample standard deviation (n − 1); 0 for one value. */
  std: number;
  n: number;
}

export function stats(values: number[]): Stats {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(variance), n };
}

export function formatStats(s: Stats, digits = 4): string {
  if (s.n === 0 || !Number.isFinite(s.mean)) return "n/a";
  return s.n > 1 ? `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}` : s.mean.toFixed(digits);
}

/** ln Γ(x) for x a positive multiple of 1/2 (all a t distribution with whole degrees of freedom needs), by Γ(x + 1) = x Γ(x). */
function logGammaHalf(x: number): number {
  if (!(x > 0) || !Number.isInteger(2 * x)) throw new Error(`logGammaHalf needs a positive multiple of 1/2, got ${x}`);
  let value = Number.isInteger(x) ? 0 : 0.5 * Math.log(Math.PI); // Γ(1) = 1, Γ(1/2) = √π
  for (let k = Number.isInteger(x) ? 1 : 0.5; k < x; k++) value += Math.log(k);
  return value;
}

/**
 * P(T > t) for Student's t with `df` whole degrees of freedom, t ≥ 0 (Infinity allowed).
 * With x = √df·tan θ the density becomes C·√df·cos^(df−1) θ on [0, π/2), smooth and bounded,
 * so Simpson's rule is accurate for any t, however large.
 */
export function studentTail(t: number, df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new Error(`studentTail: df must be a whole number >= 1, got ${df}`);
  if (!(t >= 0)) throw new Error(`studentTail: t must be >= 0, got ${t}`);
  const logC = logGammaHalf((df + 1) / 2) - logGammaHalf(df / 2) - 0.5 * Math.log(df * Math.PI);
  const scale = Math.exp(logC) * Math.sqrt(df);
  const density = (theta: number): number => scale * Math.pow(Math.cos(theta), df - 1);
  const end = Math.atan(t / Math.sqrt(df));
  const steps = 2000; // even
  const h = end / steps;
  let area = density(0) + density(end);
  for (let i = 1; i < steps; i++) area += (i % 2 ? 4 : 2) * density(i * h);
  return Math.min(0.5, Math.max(0, 0.5 - (area * h) / 3));
}

/** The t with P(T > t) = p for Student's t with `df` degrees of freedom (0 < p < 0.5), by bisection on studentTail. */
export function studentQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 0.5)) throw new Error(`studentQuantile: p must be in (0, 0.5), got ${p}`);
  let low = 0;
  let high = 1;
  while (studentTail(high, df) > p) high *= 2;
  for (let i = 0; i < 60; i++) {
    const mid = (low + high) / 2;
    if (studentTail(mid, df) > p) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

/** The two-sided `level` (default 95 %) Student-t confidence interval of a mean from its Stats (n ≥ 2). */
export function confidenceInterval(s: Stats, level = 0.95): { low: number; high: number } {
  if (s.n < 2) return { low: NaN, high: NaN };
  const half = studentQuantile((1 - level) / 2, s.n - 1) * (s.std / Math.sqrt(s.n));
  return { low: s.mean - half, high: s.mean + half };
}

export type Verdict = "better" | "worse" | "equivalent" | "inconclusive";

/** The significance level of the two-sided test for better / worse; each one-sided test of TOST runs at ALPHA / 2 (see the module comment). */
export const ALPHA = 0.05;

/** A classified comparison: the paired differences' Stats, the 95 % interval and the verdict. */
export interface Comparison extends Stats {
  /** Two-sided 95 % Student-t interval of the mean (NaN with fewer than 2 seeds). */
  low: number;
  high: number;
  /** Two-sided p of "mean = 0" (NaN with fewer than 2 seeds). */
  p: number;
  /** TOST p of "|mean| ≥ δ": the larger of the two one-sided p's (NaN with fewer than 2 seeds). */
  pEquivalence: number;
  delta: number;
  verdict: Verdict;
  /** better / worse, yet the interval lies inside ±δ: a real difference smaller than worth calling transfer. */
  belowDelta: boolean;
}

/** P(T > t) for any real t (studentTail takes t ≥ 0). */
function upperTail(t: number, df: number): number {
  if (t === Infinity) return 0;
  if (t === -Infinity) return 1;
  return t >= 0 ? studentTail(t, df) : 1 - studentTail(-t, df);
}

/** Classifies paired differences against 0 and ±δ (see the module comment). */
export function classify(differences: number[], delta: number): Comparison {
  if (!(delta >= 0) || !Number.isFinite(delta)) throw new Error(`classify: δ must be a finite number >= 0, got ${delta}`);
  if (differences.some((d) => !Number.isFinite(d))) throw new Error(`classify: the differences must be finite numbers, got ${JSON.stringify(differences)}`);
  const s = stats(differences);
  if (s.n < 2) return { ...s, low: NaN, high: NaN, p: NaN, pEquivalence: NaN, delta, verdict: "inconclusive", belowDelta: false };
  const df = s.n - 1;
  const se = s.std / Math.sqrt(s.n);
  // se = 0 (every seed gave the same difference): the t statistics are ±∞ or 0/0; the limits are what the tests mean.
  const tOf = (x: number): number => (se > 0 ? x / se : x > 0 ? Infinity : x < 0 ? -Infinity : 0);
  const half = se > 0 ? studentQuantile(ALPHA / 2, df) * se : 0;
  const low = s.mean - half;
  const high = s.mean + half;
  const p = Math.min(1, 2 * upperTail(Math.abs(tOf(s.mean)), df));
  // TOST: H0 mean ≤ −δ rejected when P(T > (mean + δ)/se) < α/2; H0 mean ≥ δ when P(T > (δ − mean)/se) < α/2.
  const pEquivalence = delta > 0 ? Math.max(upperTail(tOf(s.mean + delta), df), upperTail(tOf(delta - s.mean), df)) : 1;
  const equivalent = pEquivalence < ALPHA / 2;
  const better = low > 0;
  const worse = high < 0;
  const verdict: Verdict = better ? "better" : worse ? "worse" : equivalent ? "equivalent" : "inconclusive";
  return { ...s, low, high, p, pEquivalence, delta, verdict, belowDelta: (better || worse) && equivalent };
}

/** A number with its sign, "+0.0123" or "−0.0123" (a true minus sign). */
export const signedNumber = (x: number, digits = 4): string => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(digits)}`;

/** A signed mean, with ± its standard deviation over seeds where n > 1: "+0.0012 ± 0.0030"; "n/a" without values. */
export function formatSignedStats(s: Stats, digits = 4): string {
  if (s.n === 0 || !Number.isFinite(s.mean)) return "n/a";
  const value = signedNumber(s.mean, digits);
  return s.n > 1 ? `${value} ± ${s.std.toFixed(digits)}` : value;
}

/** "+0.0123 [−0.0010, +0.0256]": the mean and its 95 % interval; the mean alone (and "1 seed") for one seed. */
export function intervalText(c: Pick<Comparison, "mean" | "low" | "high" | "n">): string {
  if (c.n === 0 || !Number.isFinite(c.mean)) return "n/a";
  return Number.isFinite(c.low) ? `${signedNumber(c.mean)} [${signedNumber(c.low)}, ${signedNumber(c.high)}]` : `${signedNumber(c.mean)} (1 seed)`;
}

/** The verdict in a few words, with δ where it matters: "better", "equivalent within ±0.0050", "better, but by less than δ". */
export function verdictText(c: Comparison): string {
  if (c.n < 2) return "one seed: no verdict";
  if (c.belowDelta) return `${c.verdict}, but by less than δ = ${c.delta.toFixed(4)}`;
  if (c.verdict === "equivalent") return `equivalent within ±${c.delta.toFixed(4)}`;
  return c.verdict;
}

/** Binomial P(X ≥ k) for X ~ Bin(n, p). */
export function binomialAtLeast(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  let term = Math.pow(1 - p, n);
  let total = 0;
  for (let i = 0; i <= n; i++) {
    if (i >= k) total += term;
    term *= ((n - i) / (i + 1)) * (p / (1 - p));
  }
  return Math.min(1, total);
}
