/**
 * Truncated SVD and the `svd` low-rank form (docs/METHOD.md §2).
 *
 * `svd` form: a full weight W [m, n] is handed to the adapter as two factors
 *   B = U_r Σ_r^{1/2} [m, r],   A = Σ_r^{1/2} V_rᵀ [r, n],
 * and written back as W' = residual + B'·A' with residual = W − U_r Σ_r V_rᵀ, so only the
 * rank-r part is replaced (svdSplit / svdMerge).
 *
 * Truncated SVD by `exact`, `randomized` or `auto` (the method, its measured costs and the
 * choice between them: docs/METHOD.md §2). Results are deterministic: singular vectors have a
 * fixed sign, and the randomized sketch comes from this module's seeded generator, so it
 * depends on `seed` only, not on the tf backend's RNG.
 */
import { Matrix, QrDecomposition, SVD } from "ml-matrix";
import { tf } from "../backend/index";

export interface TruncatedSvd {
  /** Left singular vectors [m, r]. */
  u: tf.Tensor2D;
  /** Singular values [r], descending. */
  s: tf.Tensor1D;
  /** Right singular vectors [n, r]. */
  v: tf.Tensor2D;
}

export type SvdMethod = "auto" | "exact" | "randomized";

export interface TruncatedSvdOptions {
  /** Default `auto` (see the module comment for the rule). */
  method?: SvdMethod;
  /** Extra sketch columns beyond the rank for `randomized`; default 10. */
  oversample?: number;
  /** Power iterations for `randomized`; default 2. */
  powerIterations?: number;
  /** Seed of the Gaussian test matrix for `randomized`; default 0. */
  seed?: number;
}

const DEFAULT_OVERSAMPLE = 10;
const DEFAULT_POWER_ITERATIONS = 2;
/** `auto` uses the exact SVD up to this size of the short side (module comment). */
const EXACT_MAX_SHORT_SIDE = 64;

function checkNonNegativeInt(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new Error(`truncatedSvd: ${what} must be a non-negative integer, got ${value}`);
}

function checkRank(shape: number[], rank: number): void {
  const limit = Math.min(shape[0], shape[1]);
  if (!Number.isInteger(rank) || rank < 1 || rank > limit) {
    throw new Error(`rank must be an integer in [1, min(m, n)] = [1, ${limit}] for a [${shape}] matrix, got ${rank}`);
  }
}

function toMlMatrix(t: tf.Tensor2D): Matrix {
  const [rows, cols] = t.shape;
  const data = t.dataSync();
  const m = new Matrix(rows, cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) m.set(i, j, data[i * cols + j]);
  return m;
}

function toTensor(m: Matrix): tf.Tensor2D {
  const data = new Float32Array(m.rows * m.columns);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.columns; j++) data[i * m.columns + j] = m.get(i, j);
  return tf.tensor2d(data, [m.rows, m.columns]);
}

/** Seeded standard normal numbers: mulberry32 uniforms through Box–Muller. */
function gaussian(count: number, seed: number): Float32Array {
  let state = (seed >>> 0) ^ 0x9e3779b9;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296; // in (0, 1)
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(uniform()));
    const angle = 2 * Math.PI * uniform();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < count) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}

/** Orthonormal basis [rows, cols] of the columns of y (thin Householder Q); disposes y. */
function orthonormalise(y: tf.Tensor2D): tf.Tensor2D {
  const q = new QrDecomposition(toMlMatrix(y)).orthogonalMatrix;
  y.dispose();
  return toTensor(q);
}

interface SmallSvd {
  u: Matrix; // [m, r]
  s: number[]; // [r]
  v: Matrix; // [n, r]
}

function exactTop(w: Matrix, rank: number): SmallSvd {
  const svd = new SVD(w, { autoTranspose: true });
  return {
    u: svd.leftSingularVectors.subMatrix(0, w.rows - 1, 0, rank - 1),
    s: svd.diagonal.slice(0, rank),
    v: svd.rightSingularVectors.subMatrix(0, w.columns - 1, 0, rank - 1),
  };
}

function randomizedTop(w: tf.Tensor2D, rank: number, oversample: number, powerIterations: number, seed: number): SmallSvd {
  const [m, n] = w.shape;
  const sketch = Math.min(rank + oversample, m, n);
  const omega = tf.tensor2d(gaussian(n * sketch, seed), [n, sketch]); // [n, l]
  let q = orthonormalise(tf.matMul(w, omega) as tf.Tensor2D); // [m, l]
  omega.dispose();
  for (let i = 0; i < powerIterations; i++) {
    const z = orthonormalise(tf.matMul(w, q, true, false) as tf.Tensor2D); // Wᵀ Q: [n, l]
    q.dispose();
    q = orthonormalise(tf.matMul(w, z) as tf.Tensor2D); // W Z: [m, l]
    z.dispose();
  }
  const projected = tf.matMul(q, w, true, false) as tf.Tensor2D; // Qᵀ W: [l, n]
  const small = exactTop(toMlMatrix(projected), rank); // u: [l, r]
  projected.dispose();
  const qMatrix = toMlMatrix(q);
  q.dispose();
  return { u: qMatrix.mmul(small.u), s: small.s, v: small.v }; // u: [m, l]·[l, r] -> [m, r]
}

/** Flips each (u_k, v_k) pair so that u_k's largest-|.| component is positive. */
function fixSigns(svd: SmallSvd): void {
  for (let k = 0; k < svd.s.length; k++) {
    let best = 0;
    for (let i = 1; i < svd.u.rows; i++) if (Math.abs(svd.u.get(i, k)) > Math.abs(svd.u.get(best, k))) best = i;
    if (svd.u.get(best, k) < 0) {
      for (let i = 0; i < svd.u.rows; i++) svd.u.set(i, k, -svd.u.get(i, k));
      for (let j = 0; j < svd.v.rows; j++) svd.v.set(j, k, -svd.v.get(j, k));
    }
  }
}

/** The method `auto` resolves to for an [m, n] matrix at this rank (module comment). */
export function chooseSvdMethod(shape: [number, number], rank: number, oversample = DEFAULT_OVERSAMPLE): "exact" | "randomized" {
  const short = Math.min(shape[0], shape[1]);
  return short <= EXACT_MAX_SHORT_SIDE || rank + oversample >= short ? "exact" : "randomized";
}

/**
 * Top-`rank` singular triplets of m [rows, cols]: m ≈ u · diag(s) · vᵀ. Tensors are float32 and
 * owned by the caller; `m` is not disposed.
 */
export function truncatedSvd(m: tf.Tensor2D, rank: number, opts: TruncatedSvdOptions = {}): TruncatedSvd {
  if (m.rank !== 2) throw new Error(`truncatedSvd expects a 2-D matrix, got shape [${m.shape}]`);
  checkRank(m.shape, rank);
  const oversample = opts.oversample ?? DEFAULT_OVERSAMPLE;
  const powerIterations = opts.powerIterations ?? DEFAULT_POWER_ITERATIONS;
  const seed = opts.seed ?? 0;
  checkNonNegativeInt("oversample", oversample);
  checkNonNegativeInt("powerIterations", powerIterations);
  checkNonNegativeInt("seed", seed);
  const requested = opts.method ?? "auto";
  if (!["auto", "exact", "randomized"].includes(requested)) {
    throw new Error(`truncatedSvd: method must be 'auto', 'exact' or 'randomized', got '${requested}'`);
  }
  const values = m.dataSync();
  if (!values.every(Number.isFinite)) {
    throw new Error(`truncatedSvd: the [${m.shape}] matrix holds NaN or Infinity; an SVD of it is meaningless (check the training run that produced it)`);
  }
  const method = requested === "auto" ? chooseSvdMethod(m.shape, rank, oversample) : requested;
  const top =
    method === "exact" ? exactTop(toMlMatrix(m), rank) : randomizedTop(m, rank, oversample, powerIterations, seed);
  fixSigns(top);
  return { u: toTensor(top.u), s: tf.tensor1d(top.s), v: toTensor(top.v) };
}

/**
 * The `svd` form's split of W [m, n]: b = U_r Σ_r^{1/2} [m, r], a = Σ_r^{1/2} V_rᵀ [r, n], and
 * residual = W − b·a (= W − U_r Σ_r V_rᵀ). The caller owns all three; `w` is not disposed.
 */
export function svdSplit(w: tf.Tensor2D, rank: number, opts: TruncatedSvdOptions = {}): { b: tf.Tensor2D; a: tf.Tensor2D; residual: tf.Tensor2D } {
  const { u, s, v } = truncatedSvd(w, rank, opts);
  const parts = tf.tidy(() => {
    const root = tf.sqrt(s); // [r]
    const b = tf.mul(u, root) as tf.Tensor2D; // [m, r] * [r] -> [m, r]
    const a = tf.transpose(tf.mul(v, root)) as tf.Tensor2D; // [n, r] -> [r, n]
    const residual = tf.sub(w, tf.matMul(b, a)) as tf.Tensor2D; // [m, n]
    return { b, a, residual };
  });
  tf.dispose([u, s, v]);
  return parts;
}

/** The `svd` form's write-back: residual [m, n] + b [m, r] · a [r, n]. The caller owns the result. */
export function svdMerge(residual: tf.Tensor2D, b: tf.Tensor2D, a: tf.Tensor2D): tf.Tensor2D {
  const [m, n] = residual.shape;
  if (b.rank !== 2 || a.rank !== 2 || b.shape[0] !== m || a.shape[1] !== n || b.shape[1] !== a.shape[0]) {
    throw new Error(`svdMerge: need residual [m, n], b [m, r], a [r, n]; got residual [${residual.shape}], b [${b.shape}], a [${a.shape}]`);
  }
  return tf.tidy(() => tf.add(residual, tf.matMul(b, a)) as tf.Tensor2D); // [m, r]·[r, n] -> [m, n]
}
