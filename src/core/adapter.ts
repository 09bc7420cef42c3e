/**
 * The MergeNet parameter adapter (SPEC.md section 3; the paper's "low-rank parametric
 * knowledge adapter"). It reads a source weight matrix S [ms, ns] and the current target
 * weight matrix T [mt, nt] (both in [out, in] orientation) and produces a new matrix of
 * T's shape. The write-back of that matrix into the target lives in ./writeback.
 *
 * One adapter layer, with X the query matrix (X = T in layer 0, layer i's output after):
 *   rows_rows = block(rows(X), rows(S))     rows_cols = block(rows(X), cols(S))
 *   cols_rows = block(cols(X), rows(S))     cols_cols = block(cols(X), cols(S))
 *   M   = average of rows_rows, rows_cols, cols_rowsᵀ, cols_colsᵀ          [mt, nt]
 *   out = LayerNorm(M + Dropout(Linear(2nt→nt)(GELU(Linear(nt→2nt)(M)))))    [mt, nt]
 * where block(Q, K) = LayerNorm(Q + Linear(MultiHeadAttention(q=Q, k=v=K))). A matrix's rows
 * are tokens of width = its column count; its columns are tokens of width = its row count.
 * test/fixtures/adapter-golden.json ("format") defines every number exactly.
 *
 * Design choices (each fixed here so the rest of the project need not know them):
 * - Per-head width d = floor(max(floor((d_q + d_k) / 2), 128) / h), per block; q, k, v
 *   project to h*d columns and head j owns the contiguous columns j*d .. j*d+d-1.
 * - LayerNorm is our own (eps 1e-12, population variance), not tf.layers' (eps 1e-3).
 * - GELU is the tanh form, computed through the identity 0.5(1 + tanh z) = sigmoid(2z):
 *   GELU(x) = x * sigmoid(x (c1 + c2 x²)), c1 = 2 sqrt(2/pi), c2 = 0.044715 c1. Same
 *   function, fewer ops.
 * - Batching: the blocks that share a query orientation (rows_rows with rows_cols,
 *   cols_rows with cols_cols) have outputs of one shape, so their residual, LayerNorm and
 *   weighted sum run once on a stacked [blocks, n, w] tensor; heads run as one batched
 *   matmul [h, nq, d] x [h, nk, d]ᵀ. Projections stay per block (fusing them costs as many
 *   concat/split ops as it saves matmuls at these sizes). Dense layers are matMul + add,
 *   not tf.fused.matMul: the fused op's gradient computes the input's gradient even when
 *   the input is a constant (S, T), and wraps everything in extra Identity ops.
 * - Hand-written gradients (tf.customGrad) for the attention of each block, LayerNorm,
 *   GELU and the spectral-normalised FFN linears: a speed choice. On the native backend each
 *   tensor op costs a fixed 20-30 µs, and autodiff through these small-matrix ops (every
 *   op's inputs copied for the tape, every broadcast and reshape its own gradient op) took
 *   three to four times the forward pass's op count; the hand-written backward passes take
 *   about one. The forward values come from the same ops as before. test/perf-adapter.test.ts
 *   checks each gradient against autodiff of the plain formulas (inspect() runs the plain
 *   attention), and the finite-difference test in test/adapter.test.ts covers the rest.
 * - Dropout (training only): rate attentionDropout on the attention probabilities, rate
 *   ffnDropout on the FFN branch before its residual; kept values are scaled by
 *   1/(1 - rate), as torch does. The masks are our own (dropoutMask, faster than
 *   tf.dropout). With `dropoutSeed` each dropout site draws from a hash of
 *   "<dropoutSeed>/layer<i>/<site>", so a call with the same seed reproduces the same masks
 *   exactly; without it the masks are fresh random draws.
 * - Spectral normalisation (switchable, on by default, as in the released code) follows
 *   torch.nn.utils.spectral_norm: for a tfjs kernel K [in, out] (torch weight W = Kᵀ)
 *   the state is u [out, 1] and v [in, 1]; one power iteration is v = normalise(K u),
 *   u = normalise(Kᵀ v); sigma = vᵀ K u (= uᵀ W v) and the layer uses K / sigma. u and v
 *   are non-trainable state (constants for the gradient); sigma is differentiable in K.
 *   `updateSpectral` (default: true in training, false in inference) runs
 *   `powerIterations` iterations and stores u, v; with false the stored u, v are reused, so
 *   a re-run computes the identical function. `refreshSpectral()` runs the iterations alone:
 *   the trainer calls it before opening its gradient tape, then runs the forward pass with
 *   `updateSpectral: false`, so the power iterations are not recorded on the tape.
 *   At construction, and when setParameters changes an FFN kernel, u and v are warmed up
 *   with 15 iterations (as torch's parametrizations.spectral_norm does) so that an
 *   inference call before any training call already sees a sensible sigma.
 * - Initialisation (the paper's code uses torch defaults; we use the tfjs dense default):
 *   Glorot-uniform kernels, zero biases, gamma 1, beta 0, block logits 0. Each value is
 *   drawn from a 32-bit hash of "<seed>:<parameter name>", so it depends on the seed and
 *   the name only.
 * - Ablation: a disabled block has no parameters (its names are absent) and the average
 *   runs over the enabled blocks. With blockWeighting "learned", each layer holds
 *   `layer{i}.block_logits` [number of enabled blocks, in BLOCK_NAMES order], init 0, and
 *   the blocks are weighted by their softmax.
 * - tfjs keeps one global registry of variable names; variables are named
 *   "<name>/<parameter name>", and if another live adapter already uses <name>, a numbered
 *   suffix ("adapter_2") is added. Parameter names (parameterNames()) never carry the prefix.
 *
 * Beyond the paper (positive-control search, issue 13): three options, each off by default;
 * with the defaults the adapter computes exactly the function above, op for op. Why: the
 * adapter reads raw weights (std ≈ 0.05); through Glorot q/k projections the attention
 * logits are ≈ 0.01, so every attention map is uniform and only the mean of the source
 * tokens reaches the output. Each option is a way to let the attention select tokens.
 * - `inputScaling` (default "none"): standardises the inputs before layer 0, as
 *   (x − mean) / sqrt(var + 1e-12) with the population variance, so that the logits are of
 *   order one whatever the weights' scale. "matrix": mean and variance over all entries of
 *   S, and of T, separately. "token": each token over its own width, in the orientation
 *   the block reads it: the rows of S (keys of the *_rows blocks) over their ns entries, the
 *   columns of S (keys of the *_cols blocks) over their ms entries, the rows of T (layer 0's
 *   queries and residual in rows_*) over nt, the columns of T (layer 0's in cols_*) over mt.
 *   The keys of every layer are the scaled S; the queries of layers after 0 are the previous
 *   layer's output, as before. A constant matrix or token scales to 0 (a one-entry token
 *   always does). Plain tf ops, so autodiff carries a gradient into S and T through the
 *   statistics too.
 * - `attentionTemperature` (default "fixed"): "learned" gives each layer one trainable
 *   scalar `layer{i}.log_temperature` (shape [], init 0), shared by the layer's blocks and
 *   heads; the logits q kᵀ/√d are multiplied by τ = exp(log_temperature), so the attention
 *   can sharpen even when the projected tokens are small. It is folded into the queries'
 *   1/√d scale (q' = q τ/√d). A scalar, so AdamW gives it no weight decay (matrices only).
 * - `identityInit` (default false): the q, k, v and output kernels of every block start as
 *   a partial identity, K[i][i] = 1 for i < min(in, out), 0 elsewhere (biases 0 as always;
 *   the FFN stays Glorot): with identity q/k a target token attends to the source tokens it
 *   resembles, and with identity v/out what it retrieves is the source token itself. Head j
 *   owns projected columns j*d .. j*d+d-1, so only the heads whose columns overlap the first
 *   min(in, h*d) input features see the tokens at init; the rest start with zero q, k, v
 *   (uniform attention, zero context) until training moves them.
 */
import { tf } from "../backend";
import { fnv1a } from "../util/random";

export const BLOCK_NAMES = ["rows_rows", "rows_cols", "cols_rows", "cols_cols"] as const;
export type BlockName = (typeof BLOCK_NAMES)[number];

/** The config keys that switch each block on or off. */
const BLOCK_KEYS: Record<BlockName, keyof AdapterBlocks> = {
  rows_rows: "rowsRows",
  rows_cols: "rowsCols",
  cols_rows: "colsRows",
  cols_cols: "colsCols",
};

export interface AdapterBlocks {
  rowsRows?: boolean;
  rowsCols?: boolean;
  colsRows?: boolean;
  colsCols?: boolean;
}

export type BlockWeighting = "mean" | "learned";
/** Beyond the paper: how S and T are standardised before layer 0 (see the header). */
export type InputScaling = "none" | "matrix" | "token";
/** Beyond the paper: a fixed 1/√d logit scale, or one times a learned per-layer temperature. */
export type AttentionTemperature = "fixed" | "learned";

export interface AdapterConfig {
  /** S is [ms, ns] ([out, in] orientation). */
  sourceShape: [number, number];
  /** T and the output are [mt, nt]. */
  targetShape: [number, number];
  /** Stacked adapter layers; default 2 (released config); bench uses 1. */
  layers?: number;
  /** Attention heads per block; default 8. */
  heads?: number;
  /** Dropout rate on the attention probabilities (training only); default 0.1. */
  attentionDropout?: number;
  /** Dropout rate on the FFN branch (training only); default 0.2. */
  ffnDropout?: number;
  /** Spectral normalisation of both FFN kernels; default true. */
  spectralNorm?: boolean;
  /** Power iterations per updating call; default 1. */
  powerIterations?: number;
  /** Ablation: switch blocks off (at least one must stay on); default all on. */
  blocks?: AdapterBlocks;
  /** "mean" (default) or "learned" (softmax over per-layer logits, init 0). */
  blockWeighting?: BlockWeighting;
  /** Beyond the paper: "none" (default), "matrix" or "token" standardisation of S and T. */
  inputScaling?: InputScaling;
  /** Beyond the paper: "fixed" (default) or "learned" (`layer{i}.log_temperature`, init 0). */
  attentionTemperature?: AttentionTemperature;
  /** Beyond the paper: q, k, v, out kernels start as a partial identity; default false (Glorot). */
  identityInit?: boolean;
  /** Parameter initialisation seed; default 0. */
  seed?: number;
  /** Prefix for tfjs variable names; default "adapter". */
  name?: string;
}

export interface ResolvedAdapterConfig {
  sourceShape: [number, number];
  targetShape: [number, number];
  layers: number;
  heads: number;
  attentionDropout: number;
  ffnDropout: number;
  spectralNorm: boolean;
  powerIterations: number;
  blocks: Required<AdapterBlocks>;
  blockWeighting: BlockWeighting;
  inputScaling: InputScaling;
  attentionTemperature: AttentionTemperature;
  identityInit: boolean;
  seed: number;
  name: string;
}

/** Every default of the adapter, in one place. */
export const ADAPTER_DEFAULTS = {
  layers: 2,
  heads: 8,
  attentionDropout: 0.1,
  ffnDropout: 0.2,
  spectralNorm: true,
  powerIterations: 1,
  blocks: { rowsRows: true, rowsCols: true, colsRows: true, colsCols: true },
  blockWeighting: "mean",
  inputScaling: "none",
  attentionTemperature: "fixed",
  identityInit: false,
  seed: 0,
  name: "adapter",
} as const satisfies Omit<ResolvedAdapterConfig, "sourceShape" | "targetShape">;

/** LayerNorm epsilon, as in the released code (PyTorch's BERT-style 1e-12). */
export const LAYER_NORM_EPSILON = 1e-12;
/** The smallest projection width before the split into heads (SPEC 3). */
export const MIN_ATTENTION_WIDTH = 128;
/** Power iterations that warm up the spectral-norm vectors at construction and on set. */
export const SPECTRAL_WARMUP_ITERATIONS = 15;
/** Variance epsilon of inputScaling's standardisation (beyond the paper). */
export const INPUT_SCALING_EPSILON = 1e-12;
/** torch.nn.functional.normalize's guard against a zero vector. */
const NORMALISE_EPSILON = 1e-12;

/** d = floor(max(floor((d_q + d_k)/2), 128) / h): the per-head width of one block. */
export function headWidth(queryWidth: number, keyWidth: number, heads: number): number {
  return Math.floor(Math.max(Math.floor((queryWidth + keyWidth) / 2), MIN_ATTENTION_WIDTH) / heads);
}

/** Token counts and widths of one block, fixed by the source and target shapes. */
export interface BlockGeometry {
  name: BlockName;
  /** Whether the queries are the rows or the columns of X. */
  queryAxis: "rows" | "cols";
  /** Whether the keys/values are the rows or the columns of S. */
  keyAxis: "rows" | "cols";
  queryTokens: number;
  queryWidth: number;
  keyTokens: number;
  keyWidth: number;
  headWidth: number;
}

/** The geometry of every block (enabled or not) for a resolved config. */
export function blockGeometry(config: ResolvedAdapterConfig): Record<BlockName, BlockGeometry> {
  const [ms, ns] = config.sourceShape;
  const [mt, nt] = config.targetShape;
  const tokens = { rows: { n: mt, w: nt }, cols: { n: nt, w: mt } };
  const keys = { rows: { n: ms, w: ns }, cols: { n: ns, w: ms } };
  const make = (name: BlockName, queryAxis: "rows" | "cols", keyAxis: "rows" | "cols"): BlockGeometry => ({
    name,
    queryAxis,
    keyAxis,
    queryTokens: tokens[queryAxis].n,
    queryWidth: tokens[queryAxis].w,
    keyTokens: keys[keyAxis].n,
    keyWidth: keys[keyAxis].w,
    headWidth: headWidth(tokens[queryAxis].w, keys[keyAxis].w, config.heads),
  });
  return {
    rows_rows: make("rows_rows", "rows", "rows"),
    rows_cols: make("rows_cols", "rows", "cols"),
    cols_rows: make("cols_rows", "cols", "rows"),
    cols_cols: make("cols_cols", "cols", "cols"),
  };
}

/** The enabled blocks, in BLOCK_NAMES order. */
export function enabledBlocks(config: ResolvedAdapterConfig): BlockName[] {
  return BLOCK_NAMES.filter((b) => config.blocks[BLOCK_KEYS[b]]);
}

function isPositiveInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x) && x > 0;
}

function checkShape(label: string, shape: unknown): [number, number] {
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every(isPositiveInt)) {
    throw new Error(
      `adapter config: ${label} must be two positive integers [rows, cols] ([out, in] orientation), got ${JSON.stringify(shape)}`,
    );
  }
  return [shape[0], shape[1]];
}

function checkPositiveInt(label: string, value: unknown): number {
  if (!isPositiveInt(value)) throw new Error(`adapter config: ${label} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

function checkRate(label: string, value: unknown): number {
  if (typeof value !== "number" || !(value >= 0 && value < 1)) {
    throw new Error(`adapter config: ${label} is a dropout probability and must be in [0, 1), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Fills in the defaults (ADAPTER_DEFAULTS) and validates; throws a message naming the field. */
export function resolveAdapterConfig(c: AdapterConfig): ResolvedAdapterConfig {
  if (c === null || typeof c !== "object") throw new Error("adapter config: expected an object with sourceShape and targetShape");
  const d = ADAPTER_DEFAULTS;
  const blocks = { ...d.blocks, ...(c.blocks ?? {}) };
  for (const [key, on] of Object.entries(blocks)) {
    if (!(key in d.blocks)) {
      throw new Error(`adapter config: blocks.${key} is not a block; use ${Object.keys(d.blocks).join(", ")}`);
    }
    if (typeof on !== "boolean") throw new Error(`adapter config: blocks.${key} must be true or false, got ${JSON.stringify(on)}`);
  }
  if (!Object.values(blocks).some((on) => on)) {
    throw new Error("adapter config: blocks switches off every block; keep at least one of rowsRows, rowsCols, colsRows, colsCols on");
  }
  const blockWeighting = c.blockWeighting ?? d.blockWeighting;
  if (blockWeighting !== "mean" && blockWeighting !== "learned") {
    throw new Error(`adapter config: blockWeighting must be "mean" or "learned", got ${JSON.stringify(blockWeighting)}`);
  }
  const inputScaling = c.inputScaling ?? d.inputScaling;
  if (inputScaling !== "none" && inputScaling !== "matrix" && inputScaling !== "token") {
    throw new Error(`adapter config: inputScaling must be "none", "matrix" or "token", got ${JSON.stringify(inputScaling)}`);
  }
  const attentionTemperature = c.attentionTemperature ?? d.attentionTemperature;
  if (attentionTemperature !== "fixed" && attentionTemperature !== "learned") {
    throw new Error(`adapter config: attentionTemperature must be "fixed" or "learned", got ${JSON.stringify(attentionTemperature)}`);
  }
  const identityInit = c.identityInit ?? d.identityInit;
  if (typeof identityInit !== "boolean") throw new Error(`adapter config: identityInit must be true or false, got ${JSON.stringify(identityInit)}`);
  const spectralNorm = c.spectralNorm ?? d.spectralNorm;
  if (typeof spectralNorm !== "boolean") throw new Error(`adapter config: spectralNorm must be true or false, got ${JSON.stringify(spectralNorm)}`);
  const seed = c.seed ?? d.seed;
  if (typeof seed !== "number" || !Number.isInteger(seed)) throw new Error(`adapter config: seed must be an integer, got ${JSON.stringify(seed)}`);
  const name = c.name ?? d.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw new Error(`adapter config: name must be a non-empty string of letters, digits, '_', '.' or '-', got ${JSON.stringify(name)}`);
  }
  const resolved: ResolvedAdapterConfig = {
    sourceShape: checkShape("sourceShape", c.sourceShape),
    targetShape: checkShape("targetShape", c.targetShape),
    layers: checkPositiveInt("layers", c.layers ?? d.layers),
    heads: checkPositiveInt("heads", c.heads ?? d.heads),
    attentionDropout: checkRate("attentionDropout", c.attentionDropout ?? d.attentionDropout),
    ffnDropout: checkRate("ffnDropout", c.ffnDropout ?? d.ffnDropout),
    spectralNorm,
    powerIterations: checkPositiveInt("powerIterations", c.powerIterations ?? d.powerIterations),
    blocks,
    blockWeighting,
    inputScaling,
    attentionTemperature,
    identityInit,
    seed,
    name,
  };
  const geometry = blockGeometry(resolved);
  for (const b of enabledBlocks(resolved)) {
    if (geometry[b].headWidth < 1) {
      throw new Error(
        `adapter config: heads=${resolved.heads} leaves block ${b} a per-head width of 0 ` +
          `(floor(max(floor((${geometry[b].queryWidth} + ${geometry[b].keyWidth}) / 2), ${MIN_ATTENTION_WIDTH}) / heads)); use at most ${MIN_ATTENTION_WIDTH} heads`,
      );
    }
  }
  return resolved;
}

/**
 * A variable-name prefix not used by any live tfjs variable: `name` itself, or `name_2`,
 * `name_3`, ... (tfjs refuses to register two variables under one name).
 */
export function freeVariablePrefix(name: string): string {
  const taken = Object.keys(tf.engine().registeredVariables);
  const used = (prefix: string): boolean => taken.some((k) => k.startsWith(`${prefix}/`));
  if (!used(name)) return name;
  for (let i = 2; ; i++) if (!used(`${name}_${i}`)) return `${name}_${i}`;
}

interface Dense {
  kernel: tf.Variable; // [in, out]
  bias: tf.Variable; // [out]
}

interface Norm {
  gamma: tf.Variable; // [width]
  beta: tf.Variable; // [width]
}

interface BlockParams {
  q: Dense;
  k: Dense;
  v: Dense;
  out: Dense;
  norm: Norm;
}

/** Power-iteration vectors of one FFN kernel K [in, out]: u [out, 1], v [in, 1]. */
interface SpectralState {
  u: tf.Variable;
  v: tf.Variable;
}

interface LayerParams {
  blocks: Partial<Record<BlockName, BlockParams>>;
  up: Dense;
  down: Dense;
  ffnNorm: Norm;
  blockLogits?: tf.Variable; // [enabled blocks]
  logTemperature?: tf.Variable; // [] (attentionTemperature "learned")
  spectral?: { up: SpectralState; down: SpectralState };
}

/** Options of one forward call. */
export interface ForwardOptions {
  /** Training mode switches dropout on (and, by default, the spectral-norm update). */
  training: boolean;
  /** Seeds every dropout mask: equal seeds give identical outputs. */
  dropoutSeed?: number;
  /** Run the power iterations and store u, v (default: `training`). */
  updateSpectral?: boolean;
}

/** Intermediates of one inference call (dispose with tf.dispose(trace)). A type alias, not
 * an interface, so that it is a tf.TensorContainer. */
export type AdapterTrace = {
  /** The last layer's output, [mt, nt] (the same tensor as the last of layerOutputs). */
  output: tf.Tensor2D;
  /** Each layer's output, [mt, nt]. */
  layerOutputs: tf.Tensor2D[];
  /** Layer 0's block outputs after their LayerNorm, in the query's orientation:
   * rows_* [mt, nt], cols_* [nt, mt]. Disabled blocks are absent. */
  blocks: Partial<Record<BlockName, tf.Tensor2D>>;
  /** Layer 0's (weighted) average M, [mt, nt]. */
  average: tf.Tensor2D;
  /** Per layer, per block: attention probabilities averaged over heads, [nq, nk]. */
  attention: Array<Partial<Record<BlockName, tf.Tensor2D>>>;
};

/** What one run records when inspecting. */
interface Recorder {
  layerOutputs: tf.Tensor2D[];
  blocks: Partial<Record<BlockName, tf.Tensor2D>>;
  averages: tf.Tensor2D[];
  attention: Array<Partial<Record<BlockName, tf.Tensor2D>>>;
}

interface RunOptions {
  training: boolean;
  dropoutSeed?: number;
}

/** x / max(||x||, eps), as torch.nn.functional.normalize (||x|| as sqrt(sum(x²)): 3 ops, where tf.norm takes 10). */
function normalise(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x))), NORMALISE_EPSILON));
}

/**
 * (x − mean) / sqrt(var + 1e-12), population variance, over the last axis (each row) or,
 * with `axis` undefined, over all entries: inputScaling's standardisation. Plain ops, so
 * autodiff differentiates through the statistics.
 */
function standardise(x: tf.Tensor2D, axis: number | undefined): tf.Tensor2D {
  const centred = tf.sub(x, tf.mean(x, axis, true)); // [n, w]
  const variance = tf.mean(tf.square(centred), axis, true); // [n, 1], or [1, 1] over all entries
  return tf.div(centred, tf.sqrt(tf.add(variance, INPUT_SCALING_EPSILON)));
}

/** The input tokens after inputScaling: S's rows and columns (every layer's keys) and T's (layer 0's queries). */
interface InputTokens {
  sourceRows: tf.Tensor2D; // [ms, ns]
  sourceCols: tf.Tensor2D; // [ns, ms]
  targetRows: tf.Tensor2D; // [mt, nt]
  /** T's columns [nt, mt] when scaled on their own ("token"); else transpose(targetRows). */
  targetCols?: tf.Tensor2D;
}

/**
 * `t` summed over the axes along which a tensor of `shape` was broadcast to t's shape (the
 * gradient of that broadcast), reshaped to `shape`.
 */
function sumToShape(t: tf.Tensor, shape: number[]): tf.Tensor {
  const offset = t.rank - shape.length;
  const axes = t.shape.map((_, i) => i).filter((i) => i < offset || shape[i - offset] === 1);
  return tf.reshape(tf.sum(t, axes), shape);
}

/**
 * LayerNorm over the last axis: (x - mean) / sqrt(var + 1e-12) * gamma + beta, var the
 * population one; gamma and beta broadcast against x.
 *
 * With a hand-written gradient (tf.customGrad): autodiff through the nine forward ops took
 * about forty ops per call (every op's saved inputs copied, every broadcast's gradient
 * summed and reshaped); this one takes about a dozen, from the saved x̂ and 1/σ:
 *   dx = (1/σ) (g − mean(g) − x̂ mean(g x̂)),  g = dy · gamma,
 *   dgamma = Σ dy x̂,  dbeta = Σ dy  (sums over gamma's broadcast axes).
 */
export function layerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor): T {
  const normalise = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, scale, shift] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const mean = tf.mean(input, -1, true);
    const centred = tf.sub(input, mean);
    const variance = tf.mean(tf.square(centred), -1, true);
    const inverseStd = tf.rsqrt(tf.add(variance, LAYER_NORM_EPSILON));
    const normalised = tf.mul(centred, inverseStd); // x̂
    save([normalised, inverseStd, scale]);
    return {
      value: tf.add(tf.mul(normalised, scale), shift),
      gradFunc: (d: tf.Tensor, saved: tf.Tensor[]) => {
        const [xHat, rstd, g] = saved;
        const dxHat = tf.mul(d, g);
        const inner = tf.sub(tf.sub(dxHat, tf.mean(dxHat, -1, true)), tf.mul(xHat, tf.mean(tf.mul(dxHat, xHat), -1, true)));
        return [tf.mul(inner, rstd), sumToShape(tf.mul(d, xHat), g.shape), sumToShape(d, shift.shape)];
      },
    };
  });
  return normalise(x, gamma, beta) as T;
}

const GELU_C1 = 2 * Math.sqrt(2 / Math.PI);
const GELU_C2 = 0.044715 * GELU_C1;

/**
 * GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x³))) = x sigmoid(x (c1 + c2 x²)).
 * Hand-written gradient (same reason as layerNorm): with s = sigmoid(z), z = x (c1 + c2 x²),
 * d/dx = s + x s (1 − s) (c1 + 3 c2 x²).
 */
export const gelu = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  const save = args[1] as tf.GradSaveFunc;
  const square = tf.square(x);
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(square, GELU_C2), GELU_C1)));
  save([x, s, square]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [input, sig, sq] = saved;
      const slope = tf.add(sig, tf.mul(tf.mul(input, tf.mul(sig, tf.sub(1, sig))), tf.add(tf.mul(sq, 3 * GELU_C2), GELU_C1)));
      return tf.mul(dy, slope);
    },
  };
}) as (x: tf.Tensor2D) => tf.Tensor2D;

/** matmul(x, kernel) + bias: [n, in] -> [n, out]. */
function dense(x: tf.Tensor2D, kernel: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D {
  return tf.add(tf.matMul(x, kernel), bias);
}

/**
 * An inverted-dropout mask [shape]: each entry 0 with probability `rate`, else 1/(1 - rate).
 * Drawn from an xorshift32 stream (seeded, or from Math.random when seed is undefined) and
 * uploaded as one tensor. Measured here at [8, 256, 128]: 1.3 ms against 3.5 ms for
 * tf.dropout (whose alea generator draws each number through a JS object); the masks are
 * the largest random draw of a training-mode forward pass.
 */
export function dropoutMask(shape: number[], rate: number, seed: number | undefined): tf.Tensor {
  let state = (seed ?? Math.random() * 2 ** 32) | 0 || 0x9e3779b9 | 0; // xorshift32 must not start at 0
  const threshold = rate * 2 ** 32;
  const kept = 1 / (1 - rate);
  const values = new Float32Array(tf.util.sizeFromShape(shape));
  for (let i = 0; i < values.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    values[i] = state >>> 0 < threshold ? 0 : kept;
  }
  return tf.tensor(values, shape);
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** The parameter adapter: its variables, spectral-norm state, and the forward pass. */
export class ParameterAdapter {
  readonly config: ResolvedAdapterConfig;
  /** Every trainable parameter, in parameterNames() order. */
  readonly variables: tf.Variable[];
  /** Per-head width of every block (enabled or not). */
  readonly geometry: Readonly<Record<BlockName, BlockGeometry>>;
  /** The prefix of this adapter's tfjs variable names. */
  readonly variablePrefix: string;

  private readonly params = new Map<string, tf.Variable>();
  private readonly spectralVectors: tf.Variable[] = [];
  private readonly layerParams: LayerParams[];
  private readonly enabled: BlockName[];
  private readonly rowBlocks: BlockName[];
  private readonly colBlocks: BlockName[];

  constructor(config: AdapterConfig) {
    this.config = resolveAdapterConfig(config);
    this.geometry = blockGeometry(this.config);
    this.enabled = enabledBlocks(this.config);
    this.rowBlocks = this.enabled.filter((b) => this.geometry[b].queryAxis === "rows");
    this.colBlocks = this.enabled.filter((b) => this.geometry[b].queryAxis === "cols");
    this.variablePrefix = freeVariablePrefix(this.config.name);
    this.layerParams = [];
    for (let i = 0; i < this.config.layers; i++) this.layerParams.push(this.buildLayer(i));
    this.variables = [...this.params.values()];
    this.warmUpSpectral(() => true);
  }

  /** The initialisation seed of one named value: depends on the config seed and the name only. */
  private seedFor(name: string): number {
    return fnv1a(`${this.config.seed}:${name}`);
  }

  private addParam(name: string, init: () => tf.Tensor): tf.Variable {
    const variable = tf.tidy(() => tf.variable(init(), true, `${this.variablePrefix}/${name}`));
    this.params.set(name, variable);
    return variable;
  }

  private glorot(name: string, fanIn: number, fanOut: number): tf.Variable {
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    return this.addParam(name, () => tf.randomUniform([fanIn, fanOut], -limit, limit, "float32", this.seedFor(name)));
  }

  /** A dense layer, zero bias; its kernel [fanIn, fanOut] Glorot-uniform or, with `identity`, 1 at (i, i) for i < min(fanIn, fanOut). */
  private dense(name: string, fanIn: number, fanOut: number, identity = false): Dense {
    const kernel = identity ? this.addParam(`${name}.kernel`, () => tf.eye(fanIn, fanOut)) : this.glorot(`${name}.kernel`, fanIn, fanOut);
    return { kernel, bias: this.addParam(`${name}.bias`, () => tf.zeros([fanOut])) };
  }

  private norm(name: string, width: number): Norm {
    return {
      gamma: this.addParam(`${name}.gamma`, () => tf.ones([width])),
      beta: this.addParam(`${name}.beta`, () => tf.zeros([width])),
    };
  }

  private spectralState(name: string, fanIn: number, fanOut: number): SpectralState {
    const make = (suffix: string, n: number): tf.Variable => {
      const variable = tf.tidy(() =>
        tf.variable(
          normalise(tf.randomNormal([n, 1], 0, 1, "float32", this.seedFor(`${name}.${suffix}`))),
          false,
          `${this.variablePrefix}/${name}.${suffix}`,
        ),
      );
      this.spectralVectors.push(variable);
      return variable;
    };
    return { u: make("spectral_u", fanOut), v: make("spectral_v", fanIn) };
  }

  private buildLayer(i: number): LayerParams {
    const blocks: Partial<Record<BlockName, BlockParams>> = {};
    for (const b of this.enabled) {
      const g = this.geometry[b];
      const p = `layer${i}.${b}`;
      const width = this.config.heads * g.headWidth;
      const identity = this.config.identityInit;
      blocks[b] = {
        q: this.dense(`${p}.q`, g.queryWidth, width, identity),
        k: this.dense(`${p}.k`, g.keyWidth, width, identity),
        v: this.dense(`${p}.v`, g.keyWidth, width, identity),
        out: this.dense(`${p}.out`, width, g.queryWidth, identity),
        norm: this.norm(`${p}.norm`, g.queryWidth),
      };
    }
    const nt = this.config.targetShape[1];
    const layer: LayerParams = {
      blocks,
      up: this.dense(`layer${i}.ffn.up`, nt, 2 * nt),
      down: this.dense(`layer${i}.ffn.down`, 2 * nt, nt),
      ffnNorm: this.norm(`layer${i}.ffn.norm`, nt),
    };
    if (this.config.blockWeighting === "learned") {
      layer.blockLogits = this.addParam(`layer${i}.block_logits`, () => tf.zeros([this.enabled.length]));
    }
    if (this.config.attentionTemperature === "learned") {
      layer.logTemperature = this.addParam(`layer${i}.log_temperature`, () => tf.scalar(0));
    }
    if (this.config.spectralNorm) {
      layer.spectral = {
        up: this.spectralState(`layer${i}.ffn.up`, nt, 2 * nt),
        down: this.spectralState(`layer${i}.ffn.down`, 2 * nt, nt),
      };
    }
    return layer;
  }

  /**
   * Non-trainable state that a checkpoint must keep for an exact resume: the spectral-norm
   * power-iteration vectors (empty without spectral norm).
   */
  get stateVariables(): readonly tf.Variable[] {
    return this.spectralVectors;
  }

  /** Trainable parameter names, in `variables` order. */
  parameterNames(): string[] {
    return [...this.params.keys()];
  }

  /** One trainable parameter by name; a wrong name is an error listing the valid ones. */
  parameter(name: string): tf.Variable {
    const variable = this.params.get(name);
    if (!variable) {
      throw new Error(`adapter has no parameter '${name}'; valid names: ${this.parameterNames().join(", ")}`);
    }
    return variable;
  }

  /**
   * Assigns parameters by name (any subset), checking every name and shape before changing
   * anything. Values are cast to float32. Re-warms the spectral-norm vectors of any FFN
   * kernel that was set.
   */
  setParameters(values: Record<string, tf.Tensor>): void {
    const entries = Object.entries(values);
    for (const [name, value] of entries) {
      const variable = this.parameter(name);
      if (!tf.util.arraysEqual(variable.shape, value.shape)) {
        throw new Error(`adapter parameter '${name}' has shape ${shapeText(variable.shape)}, but the value given has shape ${shapeText(value.shape)}`);
      }
    }
    for (const [name, value] of entries) {
      tf.tidy(() => this.parameter(name).assign(tf.cast(value, "float32")));
    }
    this.warmUpSpectral((kernelName) => kernelName in values);
  }

  /**
   * The current spectral-norm estimate sigma = vᵀ K u of an FFN kernel (e.g.
   * "layer0.ffn.up.kernel"), from the stored vectors. Reads one scalar: for tests and plots.
   */
  spectralSigma(kernelName: string): number {
    const layerIndex = this.layerParams.findIndex((_, i) => kernelName === `layer${i}.ffn.up.kernel` || kernelName === `layer${i}.ffn.down.kernel`);
    const layer = this.layerParams[layerIndex];
    if (!layer) {
      const names = this.layerParams.flatMap((_, i) => [`layer${i}.ffn.up.kernel`, `layer${i}.ffn.down.kernel`]);
      throw new Error(`'${kernelName}' is not an FFN kernel; spectral norm applies to ${names.join(", ")}`);
    }
    if (!layer.spectral) throw new Error("this adapter was built with spectralNorm: false; it keeps no spectral estimate");
    const up = kernelName.endsWith(".up.kernel");
    const kernel = up ? layer.up.kernel : layer.down.kernel;
    const state = up ? layer.spectral.up : layer.spectral.down;
    return tf.tidy(() => this.sigma(kernel, state).dataSync()[0]);
  }

  /**
   * Runs `powerIterations` power iterations on each FFN kernel and stores u, v: what a
   * training forward call does first unless told `updateSpectral: false`. Callers that take
   * the forward pass's gradient run it before opening the gradient tape, so these ops are not
   * recorded (a no-op without spectral norm).
   */
  refreshSpectral(): void {
    this.updateSpectral(this.config.powerIterations);
  }

  /** W_gen [mt, nt] before write-back. The caller disposes the result. */
  forward(source: tf.Tensor2D, target: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    this.checkInputs(source, target);
    const updateSpectral = opts.updateSpectral ?? opts.training;
    return tf.tidy(() => {
      if (updateSpectral) this.updateSpectral(this.config.powerIterations);
      return this.run(source, target, { training: opts.training, dropoutSeed: opts.dropoutSeed }, undefined);
    });
  }

  /** The inference-mode forward pass with its intermediates (dispose with tf.dispose(trace)). */
  inspect(source: tf.Tensor2D, target: tf.Tensor2D): AdapterTrace {
    this.checkInputs(source, target);
    return tf.tidy(() => {
      const record: Recorder = { layerOutputs: [], blocks: {}, averages: [], attention: [] };
      const output = this.run(source, target, { training: false }, record);
      return { output, layerOutputs: record.layerOutputs, blocks: record.blocks, average: record.averages[0], attention: record.attention };
    });
  }

  /** Disposes every variable (trainable and spectral state). */
  dispose(): void {
    for (const v of this.variables) v.dispose();
    for (const v of this.spectralVectors) v.dispose();
  }

  private checkInputs(source: tf.Tensor, target: tf.Tensor): void {
    const check = (label: string, t: tf.Tensor, expected: [number, number], key: string): void => {
      if (!tf.util.arraysEqual(t.shape, expected)) {
        throw new Error(
          `adapter '${this.variablePrefix}': ${label} has shape ${shapeText(t.shape)} but the adapter was built for ${key} ${shapeText(expected)}; ` +
            `pass the matching weight (in [out, in] orientation) or build an adapter for this shape`,
        );
      }
    };
    check("source", source, this.config.sourceShape, "sourceShape");
    check("target", target, this.config.targetShape, "targetShape");
  }

  /** sigma = vᵀ K u from the stored vectors: K [in, out], u [out, 1], v [in, 1] -> [1, 1]. */
  private sigma(kernel: tf.Variable, state: SpectralState): tf.Tensor2D {
    return tf.matMul(tf.matMul(state.v, kernel as tf.Tensor2D, true, false), state.u as tf.Tensor2D);
  }

  private powerIterate(kernel: tf.Variable, state: SpectralState, iterations: number): void {
    tf.tidy(() => {
      const k = kernel as tf.Tensor2D;
      let u = state.u as tf.Tensor2D;
      let v = state.v as tf.Tensor2D;
      for (let i = 0; i < iterations; i++) {
        v = normalise(tf.matMul(k, u)); // [in, out] x [out, 1] -> [in, 1]
        u = normalise(tf.matMul(k, v, true, false)); // [out, in] x [in, 1] -> [out, 1]
      }
      state.u.assign(u);
      state.v.assign(v);
    });
  }

  /** Warm-up power iterations for the FFN kernels whose name passes `which`. */
  private warmUpSpectral(which: (kernelName: string) => boolean): void {
    this.layerParams.forEach((layer, i) => {
      if (!layer.spectral) return;
      if (which(`layer${i}.ffn.up.kernel`)) this.powerIterate(layer.up.kernel, layer.spectral.up, SPECTRAL_WARMUP_ITERATIONS);
      if (which(`layer${i}.ffn.down.kernel`)) this.powerIterate(layer.down.kernel, layer.spectral.down, SPECTRAL_WARMUP_ITERATIONS);
    });
  }

  private updateSpectral(iterations: number): void {
    for (const layer of this.layerParams) {
      if (!layer.spectral) continue;
      this.powerIterate(layer.up.kernel, layer.spectral.up, iterations);
      this.powerIterate(layer.down.kernel, layer.spectral.down, iterations);
    }
  }

  /**
   * An FFN linear layer: x K' + b with K' = K / sigma under spectral norm (sigma = vᵀ K u, u
   * and v constants), K' = K otherwise. [n, in] -> [n, out].
   *
   * Under spectral norm the gradient is hand-written (tf.customGrad; same reason as
   * layerNorm): with G = xᵀ dy the gradient for K', dK = G / sigma − (Σ G ⊙ K) / sigma² · v uᵀ,
   * db = Σ_rows dy, dx = dy K'ᵀ.
   */
  private ffnDense(x: tf.Tensor2D, layer: Dense, state: SpectralState | undefined): tf.Tensor2D {
    if (!state) return dense(x, layer.kernel as tf.Tensor2D, layer.bias as tf.Tensor1D);
    const run = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [input, kernel, bias] = args as tf.Tensor2D[];
      const save = args[3] as tf.GradSaveFunc;
      const sigma = tf.matMul(tf.matMul(state.v, kernel, true, false), state.u as tf.Tensor2D); // [1, 1]
      const effective = tf.div(kernel, sigma); // [in, out]
      save([input, kernel, effective, sigma, state.u, state.v]);
      return {
        value: tf.add(tf.matMul(input, effective), bias),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, k, kEff, sg, u, v] = saved as tf.Tensor2D[];
          const gEff = tf.matMul(xs, dy as tf.Tensor2D, true, false); // [in, out]
          const along = tf.div(tf.sum(tf.mul(gEff, k)), tf.square(sg)); // [1, 1]
          const dKernel = tf.sub(tf.div(gEff, sg), tf.mul(tf.matMul(v, u, false, true), along)); // v uᵀ: [in, out]
          return [tf.matMul(dy as tf.Tensor2D, kEff, false, true), dKernel, tf.sum(dy, 0)];
        },
      };
    });
    return run(x, layer.kernel, layer.bias) as tf.Tensor2D;
  }

  /** The dropout mask of one site (training only), or undefined when there is no dropout. */
  private dropoutMaskFor(shape: number[], rate: number, opts: RunOptions, layer: number, site: string): tf.Tensor | undefined {
    if (!opts.training || rate === 0) return undefined;
    const seed = opts.dropoutSeed === undefined ? undefined : fnv1a(`${opts.dropoutSeed}/layer${layer}/${site}`);
    return dropoutMask(shape, rate, seed);
  }

  private dropout<T extends tf.Tensor>(x: T, rate: number, opts: RunOptions, layer: number, site: string): T {
    const mask = this.dropoutMaskFor(x.shape, rate, opts, layer, site);
    return mask ? tf.mul(x, mask) : x;
  }

  /**
   * One block's attention, before its residual and LayerNorm: [nq, dq] queries, [nk, dk]
   * keys/values -> [nq, dq]. Records the head-averaged attention map when asked.
   *
   * Hand-written gradient (tf.customGrad), a speed choice: the forward pass is some twenty
   * small ops, and autodiff through them costs about three times as many again (each op's
   * inputs copied for the tape, each broadcast's and reshape's gradient its own op). With
   * s = q kᵀ (q already scaled by c = 1/√d, or c = τ/√d with a learned temperature
   * τ = exp(log τ)), P = softmax(s), P' = P ⊙ mask, C = P' v, out = merge(C) Wo + bo:
   *   dWo = merge(C)ᵀ dout, dC = heads(dout Woᵀ), dP' = dC vᵀ, dv = P'ᵀ dC, dP = dP' ⊙ mask,
   *   ds = P ⊙ (dP − Σ_keys dP ⊙ P), dq = ds k, dk = dsᵀ q,
   * then through the projections (dQ = merge(dq) c etc.), into the queries and the keys
   * as well (both constants in the trainer, but a caller may differentiate through them).
   * The temperature: s is linear in τ, so ∂s/∂log τ = s and d log τ = Σ ds ⊙ s
   * = Σ_{i,j,c} ds_ij q_ic k_jc = Σ dq ⊙ q (the cheaper form, [h, nq, d] not [h, nq, nk]).
   */
  private attend(
    name: BlockName,
    p: BlockParams,
    query: tf.Tensor2D,
    keys: tf.Tensor2D,
    layer: number,
    opts: RunOptions,
    maps: Partial<Record<BlockName, tf.Tensor2D>> | undefined,
  ): tf.Tensor2D {
    const h = this.config.heads;
    const d = this.geometry[name].headWidth;
    const nq = query.shape[0];
    const nk = keys.shape[0];
    const scale = 1 / Math.sqrt(d);
    const logTemperature = this.layerParams[layer].logTemperature;
    const heads = (x: tf.Tensor, n: number): tf.Tensor3D => tf.transpose(tf.reshape(x, [n, h, d]), [1, 0, 2]); // [n, h*d] -> [h, n, d]
    const merge = (x: tf.Tensor, n: number): tf.Tensor2D => tf.reshape(tf.transpose(x, [1, 0, 2]), [n, h * d]); // [h, n, d] -> [n, h*d]
    const mask = this.dropoutMaskFor([h, nq, nk], this.config.attentionDropout, opts, layer, name);
    // Inputs: the queries, the keys, then Wq, bq, Wk, bk, Wv, bv, Wo, bo (kernels [in, out]),
    // then log τ [] with a learned temperature.
    const forward = (a: readonly tf.Tensor[]) => {
      const [x, kv, wq, bq, wk, bk, wv, bv, wo, bo] = a;
      const queryScale = a.length > 10 ? tf.mul(tf.exp(a[10]), scale) : scale; // [] tensor (τ/√d) or the number 1/√d
      const q = heads(tf.mul(dense(x as tf.Tensor2D, wq as tf.Tensor2D, bq as tf.Tensor1D), queryScale), nq); // [h, nq, d], scaled
      const k = heads(dense(kv as tf.Tensor2D, wk as tf.Tensor2D, bk as tf.Tensor1D), nk); // [h, nk, d]
      const v = heads(dense(kv as tf.Tensor2D, wv as tf.Tensor2D, bv as tf.Tensor1D), nk); // [h, nk, d]
      const probs = tf.softmax(tf.matMul(q, k, false, true)); // [h, nq, nk], softmax over keys
      const dropped = mask ? tf.mul(probs, mask) : probs;
      const merged = merge(tf.matMul(dropped, v), nq); // [h, nq, d] -> [nq, h*d]
      return { out: dense(merged, wo as tf.Tensor2D, bo as tf.Tensor1D), q, k, v, probs, dropped, merged, queryScale }; // out [nq, dq]
    };
    const inputs: tf.Tensor[] = [query, keys, p.q.kernel, p.q.bias, p.k.kernel, p.k.bias, p.v.kernel, p.v.bias, p.out.kernel, p.out.bias];
    if (logTemperature) inputs.push(logTemperature);
    if (maps) {
      // Inspection: the plain pass (autodiff, if anyone asks), keeping the head-averaged map.
      const result = forward(inputs);
      maps[name] = tf.mean(result.probs, 0) as tf.Tensor2D; // [h, nq, nk] -> [nq, nk]
      return result.out;
    }
    const attention = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const tensors = args.slice(0, inputs.length) as tf.Tensor[];
      const save = args[inputs.length] as tf.GradSaveFunc;
      const [x, kv, wq, , wk, , wv, , wo] = tensors;
      const r = forward(tensors);
      const learnedScale = typeof r.queryScale === "number" ? [] : [r.queryScale];
      save([x, kv, r.q, r.k, r.v, r.probs, r.dropped, r.merged, wq, wk, wv, wo, ...learnedScale, ...(mask ? [mask] : [])]);
      return {
        value: r.out,
        gradFunc: (dOut: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, ks, qh, kh, vh, pr, dr, mg, wqs, wks, wvs, wos] = saved;
          const queryScale = logTemperature ? saved[12] : scale; // [] τ/√d, or 1/√d
          const ms = mask ? saved[saved.length - 1] : undefined;
          const dContext = heads(tf.matMul(dOut, wos, false, true), nq); // [nq, dq] -> [h, nq, d]
          const dDropped = tf.matMul(dContext, vh, false, true); // [h, nq, nk]
          const dV = merge(tf.matMul(dr, dContext, true, false), nk); // [h, nk, d] -> [nk, h*d]
          const dProbs = ms ? tf.mul(dDropped, ms) : dDropped;
          const dScores = tf.mul(pr, tf.sub(dProbs, tf.sum(tf.mul(dProbs, pr), -1, true))); // softmax's VJP
          const dScaled = tf.matMul(dScores, kh); // [h, nq, d], the scaled queries' gradient
          const dQ = tf.mul(merge(dScaled, nq), queryScale); // [nq, h*d], before the scaling
          const dK = merge(tf.matMul(dScores, qh, true, false), nk); // [nk, h*d]
          return [
            tf.matMul(dQ, wqs, false, true), // the queries' gradient [nq, dq]
            tf.add(tf.matMul(dK, wks, false, true), tf.matMul(dV, wvs, false, true)), // the keys' gradient [nk, dk]
            tf.matMul(xs, dQ, true, false), tf.sum(dQ, 0),
            tf.matMul(ks, dK, true, false), tf.sum(dK, 0),
            tf.matMul(ks, dV, true, false), tf.sum(dV, 0),
            tf.matMul(mg, dOut, true, false), tf.sum(dOut, 0),
            ...(logTemperature ? [tf.sum(tf.mul(dScaled, qh))] : []), // log τ's gradient []
          ];
        },
      };
    });
    return attention(...inputs) as tf.Tensor2D;
  }

  /**
   * The blocks sharing one query orientation, stacked: residual + LayerNorm on
   * [g, nq, dq], then their sum [nq, dq], each block scaled by `weights` [g] when given.
   * Records each block's normed output.
   */
  private blockGroup(
    names: BlockName[],
    layerIndex: number,
    query: tf.Tensor2D,
    keysFor: (name: BlockName) => tf.Tensor2D,
    weights: tf.Tensor1D | undefined,
    opts: RunOptions,
    record: Recorder | undefined,
  ): tf.Tensor2D | undefined {
    if (names.length === 0) return undefined;
    const layer = this.layerParams[layerIndex];
    const maps = record?.attention[layerIndex];
    const params = names.map((b) => layer.blocks[b] as BlockParams);
    const attended = names.map((b, j) => this.attend(b, params[j], query, keysFor(b), layerIndex, opts, maps));
    const stacked = tf.stack(attended); // g x [nq, dq] -> [g, nq, dq]
    const gamma = tf.expandDims(tf.stack(params.map((p) => p.norm.gamma)), 1); // [g, 1, dq]
    const beta = tf.expandDims(tf.stack(params.map((p) => p.norm.beta)), 1); // [g, 1, dq]
    const normed = layerNorm(tf.add(stacked, query), gamma, beta); // [g, nq, dq]
    if (record && layerIndex === 0) {
      tf.unstack(normed).forEach((t, j) => (record.blocks[names[j]] = t as tf.Tensor2D));
    }
    const weighted = weights ? tf.mul(normed, tf.reshape(weights, [names.length, 1, 1])) : normed;
    return tf.sum(weighted, 0) as tf.Tensor2D; // [g, nq, dq] -> [nq, dq]
  }

  /** The tokens of S and T that layer 0 reads, after inputScaling (see the header). */
  private inputTokens(source: tf.Tensor2D, target: tf.Tensor2D): InputTokens {
    switch (this.config.inputScaling) {
      case "none":
        return { sourceRows: source, sourceCols: tf.transpose(source), targetRows: target }; // [ms, ns] -> [ns, ms]
      case "matrix": {
        const sourceRows = standardise(source, undefined); // [ms, ns]
        return { sourceRows, sourceCols: tf.transpose(sourceRows), targetRows: standardise(target, undefined) }; // [ns, ms], [mt, nt]
      }
      case "token":
        return {
          sourceRows: standardise(source, -1), // [ms, ns], each row over its ns entries
          sourceCols: standardise(tf.transpose(source), -1), // [ns, ms], each column over its ms entries
          targetRows: standardise(target, -1), // [mt, nt]
          targetCols: standardise(tf.transpose(target), -1), // [nt, mt]
        };
    }
  }

  /** The whole adapter (no tidy of its own; callers wrap it). */
  private run(source: tf.Tensor2D, target: tf.Tensor2D, opts: RunOptions, record: Recorder | undefined): tf.Tensor2D {
    const tokens = this.inputTokens(source, target);
    const keysFor = (b: BlockName): tf.Tensor2D => (this.geometry[b].keyAxis === "rows" ? tokens.sourceRows : tokens.sourceCols);
    let x = tokens.targetRows; // [mt, nt]
    this.layerParams.forEach((layer, i) => {
      record?.attention.push({});
      // Learned weighting: softmax over the enabled blocks, rows-query blocks first (BLOCK_NAMES order).
      const nRows = this.rowBlocks.length;
      const weights = layer.blockLogits && (tf.softmax(layer.blockLogits) as tf.Tensor1D); // [enabled]
      const rowWeights = weights && nRows > 0 ? tf.slice(weights, 0, nRows) : undefined;
      const colWeights = weights && this.colBlocks.length > 0 ? tf.slice(weights, nRows) : undefined;
      const rows = this.blockGroup(this.rowBlocks, i, x, keysFor, rowWeights, opts, record); // [mt, nt]
      const colsQuery = i === 0 && tokens.targetCols ? tokens.targetCols : tf.transpose(x); // [mt, nt] -> [nt, mt]
      const colsT = this.blockGroup(this.colBlocks, i, colsQuery, keysFor, colWeights, opts, record); // [nt, mt]
      const cols = colsT && tf.transpose(colsT); // [nt, mt] -> [mt, nt]
      const sum = (rows && cols ? tf.add(rows, cols) : rows ?? cols) as tf.Tensor2D; // [mt, nt]
      const average = weights ? sum : (tf.mul(sum, 1 / this.enabled.length) as tf.Tensor2D); // [mt, nt]
      record?.averages.push(average);
      const spectral = layer.spectral;
      const hidden = gelu(this.ffnDense(average, layer.up, spectral?.up)); // [mt, nt] -> [mt, 2nt]
      const branch = this.dropout(this.ffnDense(hidden, layer.down, spectral?.down), this.config.ffnDropout, opts, i, "ffn"); // [mt, 2nt] -> [mt, nt]
      x = layerNorm(tf.add(average, branch) as tf.Tensor2D, layer.ffnNorm.gamma, layer.ffnNorm.beta); // [mt, nt]
      record?.layerOutputs.push(x);
    });
    return x;
  }
}
