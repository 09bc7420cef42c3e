/**
 * The MergeNet parameter adapter (docs/METHOD.md §3; the paper's "low-rank parametric
 * knowledge adapter"). It reads a source weight matrix S [ms, ns] and the current target
 * weight matrix T [mt, nt] (both in [out, in] orientation) and produces a new matrix of
 * T's shape. The write-back of that matrix into the target lives in ../writeback.ts.
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
 * The concepts are files of this folder: config.ts (options, checks, geometry), ops.ts (the
 * custom-gradient ops), spectral.ts (spectral norm of the FFN), attention.ts (one block's
 * attention and its backward); this file holds the variables and the forward pass, run().
 *
 * Beyond the paper (positive-control search, issue 13): three options, each off by default;
 * with the defaults the adapter computes exactly the function above, op for op. Why: the
 * adapter reads raw weights (std ≈ 0.05); through Glorot q/k projections the attention
 * logits are ≈ 0.01, so every attention map is uniform and only the mean of the source
 * tokens reaches the output. Each option is a way to let the attention select tokens.
 * What each does: `inputScaling` and `identityInit` in config.ts, `attentionTemperature` in
 * attention.ts.
 */
import { tf } from "../../backend/index";
import { fnv1a } from "../../util/random";
import { freeVariablePrefix } from "../variables";
import { attend, type BlockParams } from "./attention";
import { blockGeometry, enabledBlocks, resolveAdapterConfig } from "./config";
import type { AdapterConfig, BlockGeometry, BlockName, ResolvedAdapterConfig } from "./config";
import { dropoutMask, gelu, layerNorm, standardise, type Dense, type Norm } from "./ops";
import { SPECTRAL_WARMUP_ITERATIONS, normalise, powerIterate, sigmaOf, spectralDense, type SpectralState } from "./spectral";

/** One layer's variables. */
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

/** The input tokens after inputScaling: S's rows and columns (every layer's keys) and T's (layer 0's queries). */
interface InputTokens {
  sourceRows: tf.Tensor2D; // [ms, ns]
  sourceCols: tf.Tensor2D; // [ns, ms]
  targetRows: tf.Tensor2D; // [mt, nt]
  /** T's columns [nt, mt] when scaled on their own ("token"); else transpose(targetRows). */
  targetCols?: tf.Tensor2D;
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
  /**
   * The prefix of this adapter's tfjs variable names, "<name>/<parameter name>": tfjs keeps one
   * global registry of names, so where another live adapter uses <name> a numbered suffix
   * ("adapter_2", ../variables.ts) is added. Parameter names (parameterNames()) never carry it.
   */
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

  /**
   * Initialisation (the paper's code uses torch defaults; here the tfjs dense default):
   * Glorot-uniform kernels, zero biases, gamma 1, beta 0, block logits 0. Each value is drawn
   * from a 32-bit hash of "<seed>:<parameter name>", so it depends on the seed and the name only.
   */
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
    return tf.tidy(() => sigmaOf(kernel, state).dataSync()[0]);
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

  /** Warm-up power iterations for the FFN kernels whose name passes `which`. */
  private warmUpSpectral(which: (kernelName: string) => boolean): void {
    this.layerParams.forEach((layer, i) => {
      if (!layer.spectral) return;
      if (which(`layer${i}.ffn.up.kernel`)) powerIterate(layer.up.kernel, layer.spectral.up, SPECTRAL_WARMUP_ITERATIONS);
      if (which(`layer${i}.ffn.down.kernel`)) powerIterate(layer.down.kernel, layer.spectral.down, SPECTRAL_WARMUP_ITERATIONS);
    });
  }

  private updateSpectral(iterations: number): void {
    for (const layer of this.layerParams) {
      if (!layer.spectral) continue;
      powerIterate(layer.up.kernel, layer.spectral.up, iterations);
      powerIterate(layer.down.kernel, layer.spectral.down, iterations);
    }
  }

  /** One block's attention (attention.ts), its dropout mask drawn here. */
  private attend(
    name: BlockName,
    p: BlockParams,
    query: tf.Tensor2D,
    keys: tf.Tensor2D,
    layer: number,
    opts: RunOptions,
    maps: Partial<Record<BlockName, tf.Tensor2D>> | undefined,
  ): tf.Tensor2D {
    const heads = this.config.heads;
    const mask = this.dropoutMaskFor([heads, query.shape[0], keys.shape[0]], this.config.attentionDropout, opts, layer, name);
    const logTemperature = this.layerParams[layer].logTemperature;
    return attend({ name, params: p, query, keys, heads, headWidth: this.geometry[name].headWidth, logTemperature, mask, maps });
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
   * Batching, a speed choice: the blocks that share a query orientation (rows_rows with
   * rows_cols, cols_rows with cols_cols) have outputs of one shape, so their residual,
   * LayerNorm and weighted sum run once on a stacked tensor; heads run as one batched matmul
   * [h, nq, d] x [h, nk, d]ᵀ (attention.ts). Projections stay per block (fusing them costs as
   * many concat/split ops as it saves matmuls at these sizes). Dense layers are matMul + add,
   * not tf.fused.matMul: the fused op's gradient computes the input's gradient even when the
   * input is a constant (S, T), and wraps everything in extra Identity ops.
   *
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
      const hidden = gelu(spectralDense(average, layer.up, spectral?.up)); // [mt, nt] -> [mt, 2nt]
      const branch = this.dropout(spectralDense(hidden, layer.down, spectral?.down), this.config.ffnDropout, opts, i, "ffn"); // [mt, 2nt] -> [mt, nt]
      x = layerNorm(tf.add(average, branch) as tf.Tensor2D, layer.ffnNorm.gamma, layer.ffnNorm.beta); // [mt, nt]
      record?.layerOutputs.push(x);
    });
    return x;
  }
}
