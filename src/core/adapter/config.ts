/**
 * The adapter's configuration: its options, their defaults, every check of a configuration
 * (resolveAdapterConfig), and the geometry that the source and target shapes fix: the four
 * blocks (which axis of X queries which axis of S) and their head widths.
 *
 * - Per-head width d = floor(max(floor((d_q + d_k) / 2), 128) / h), per block; q, k, v
 *   project to h*d columns and head j owns the contiguous columns j*d .. j*d+d-1.
 * - Ablation: a disabled block has no parameters (its names are absent) and the average
 *   runs over the enabled blocks. With blockWeighting "learned", each layer holds
 *   `layer{i}.block_logits` [number of enabled blocks, in BLOCK_NAMES order], init 0, and
 *   the blocks are weighted by their softmax.
 *
 * Beyond the paper (positive-control search, issue 13; why: parameter-adapter.ts), each off by
 * default: inputScaling, attentionTemperature and identityInit, described at their options.
 */

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
  /**
   * Beyond the paper (default "none"): standardises the inputs before layer 0, as
   * (x − mean) / sqrt(var + 1e-12) with the population variance, so that the logits are of
   * order one whatever the weights' scale. "matrix": mean and variance over all entries of
   * S, and of T, separately. "token": each token over its own width, in the orientation
   * the block reads it: the rows of S (keys of the *_rows blocks) over their ns entries, the
   * columns of S (keys of the *_cols blocks) over their ms entries, the rows of T (layer 0's
   * queries and residual in rows_*) over nt, the columns of T (layer 0's in cols_*) over mt.
   * The keys of every layer are the scaled S; the queries of layers after 0 are the previous
   * layer's output, as before. A constant matrix or token scales to 0 (a one-entry token
   * always does). Plain tf ops, so autodiff carries a gradient into S and T through the
   * statistics too.
   */
  inputScaling?: InputScaling;
  /** Beyond the paper: "fixed" (default) or "learned" (`layer{i}.log_temperature`, init 0). */
  attentionTemperature?: AttentionTemperature;
  /**
   * Beyond the paper (default false): the q, k, v and output kernels of every block start as a
   * partial identity, K[i][i] = 1 for i < min(in, out), 0 elsewhere (biases 0 as always;
   * the FFN stays Glorot): with identity q/k a target token attends to the source tokens it
   * resembles, and with identity v/out what it retrieves is the source token itself. Head j
   * owns projected columns j*d .. j*d+d-1, so only the heads whose columns overlap the first
   * min(in, h*d) input features see the tokens at init; the rest start with zero q, k, v
   * (uniform attention, zero context) until training moves them.
   */
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

/** The smallest projection width before the split into heads (docs/METHOD.md §3). */
export const MIN_ATTENTION_WIDTH = 128;

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
          `(floor(max(floor((${geometry[b].queryWidth} + ${geometry[b].keyWidth}) / 2), ${MIN_ATTENTION_WIDTH}) / heads)); ` +
          `use at most ${MIN_ATTENTION_WIDTH} heads`,
      );
    }
  }
  return resolved;
}
