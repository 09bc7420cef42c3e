/**
 * AdamW (Loshchilov & Hutter) for the adapter, with global-norm gradient clipping, as the
 * released code trains its adapter: lr 1e-3, weight decay 5e-4 applied only to matrices
 * (biases, LayerNorm gains and gates are not decayed), gradients clipped to norm 50.
 *
 * tfjs has no AdamW; this one keeps its moments as plain tensors so its state can be saved
 * in a checkpoint and restored exactly.
 *
 * Design choice (speed): the adapter has about fifty small variables, and on the native
 * backend every tensor op costs a fixed 20-30 µs of dispatch, far more than the arithmetic.
 * A per-variable update took about 840 ops per step. Here the moments live in two flat
 * vectors over all variables (in the order given), the gradients are concatenated into one
 * vector, and the whole update (norm, clip, moments, bias correction, decoupled decay via a
 * per-element decay vector, step) runs as about a dozen ops on it; the new values are split
 * back into the variables: about 60 ops per step. One more saving (issue 16): the flat vector
 * of new weights is kept for the next step, which reuses it while every variable still holds
 * the value this optimiser wrote (checked by identity of the variable's data, so a variable
 * assigned elsewhere, by a checkpoint restore for example, is read afresh): 20 ops fewer
 * (a Reshape per matrix and a Concat over all elements). Tried and not kept: flattening the
 * gradients with one op (TensorFlow's DynamicStitch, 19 ops fewer) took longer, 3.8 ms against
 * 2.4 ms for the reshapes and concat at bench-mnist's 584k elements (its copy goes element by
 * element). Every element sees the same float32
 * operations in the same order as the per-variable form; only the global norm's summation
 * order differs (one sum over all elements instead of a sum of per-variable sums).
 */
import { tf } from "../backend/index";

/**
 * Up to this many elements the flat weights are kept between steps (4 bytes per element);
 * larger adapters, whose step is dominated by arithmetic, not by the op count, read them
 * afresh and keep no extra copy.
 */
const KEEP_WEIGHTS_MAX_ELEMENTS = 1 << 24;

export interface AdamWConfig {
  learningRate: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Clip the gradients' global L2 norm to this value; Infinity disables clipping. */
  clipNorm: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = {
  learningRate: 1e-3,
  weightDecay: 5e-4,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  clipNorm: 50,
};

export interface AdamWState {
  step: number;
  learningRate: number;
  /** First and second moments, in the order of the optimiser's variables. */
  moments: { m: tf.Tensor; v: tf.Tensor }[];
}

/** A tensor as a vector: [..] -> [size] (no op for a vector). */
function flat(x: tf.Tensor): tf.Tensor1D {
  return (x.rank === 1 ? x : tf.reshape(x, [x.size])) as tf.Tensor1D;
}

export class AdamW {
  readonly config: AdamWConfig;
  private readonly variables: tf.Variable[];
  /** Element count of each variable, in order (the split of the flat vectors). */
  private readonly sizes: number[];
  /** [total] weight decay per element: weightDecay on matrices, 0 elsewhere; undefined when nothing decays. */
  private readonly decay: tf.Tensor1D | undefined;
  /** [total] learning-rate multiple per element (a separate gate learning rate); undefined when all are 1. */
  private readonly rateScale: tf.Tensor1D | undefined;
  /** [total] first and second moments over all variables, concatenated in order. */
  private firstMoment: tf.Tensor1D;
  private secondMoment: tf.Tensor1D;
  private stepCount = 0;
  private lr: number;
  /** [total] the weights this optimiser last wrote, and the data each variable then held: reused while they match. */
  private lastWeights: { flat: tf.Tensor1D; dataIds: object[] } | undefined;

  /**
   * `rateScales`: one learning-rate multiple per variable (default all 1), so one optimiser
   * can give a variable, such as the write-back gate, its own learning rate.
   */
  constructor(variables: tf.Variable[], config: Partial<AdamWConfig> = {}, opts: { rateScales?: number[] } = {}) {
    this.config = { ...ADAMW_DEFAULTS, ...config };
    if (!(this.config.learningRate > 0)) throw new Error(`adapter learning rate must be > 0, got ${this.config.learningRate}`);
    if (!(this.config.weightDecay >= 0)) throw new Error(`adapter weight decay must be >= 0, got ${this.config.weightDecay}`);
    if (!(this.config.clipNorm > 0)) throw new Error(`gradient clip norm must be > 0 (Infinity disables it), got ${this.config.clipNorm}`);
    this.variables = variables;
    this.lr = this.config.learningRate;
    this.sizes = variables.map((v) => v.size);
    const total = this.sizes.reduce((a, b) => a + b, 0);
    const { weightDecay } = this.config;
    if (weightDecay > 0 && variables.some((v) => v.rank >= 2)) {
      const perElement = new Float32Array(total);
      let offset = 0;
      variables.forEach((v) => {
        if (v.rank >= 2) perElement.fill(weightDecay, offset, offset + v.size);
        offset += v.size;
      });
      this.decay = tf.keep(tf.tensor1d(perElement));
    }
    const scales = opts.rateScales;
    if (scales !== undefined && (scales.length !== variables.length || !scales.every((x) => x > 0 && Number.isFinite(x)))) {
      throw new Error(`AdamW rateScales needs one finite number > 0 per variable (${variables.length}), got ${JSON.stringify(scales)}`);
    }
    if (scales?.some((x) => x !== 1)) {
      const perElement = new Float32Array(total);
      let offset = 0;
      variables.forEach((v, i) => {
        perElement.fill(scales[i], offset, offset + v.size);
        offset += v.size;
      });
      this.rateScale = tf.keep(tf.tensor1d(perElement));
    }
    this.firstMoment = tf.keep(tf.zeros([total]));
    this.secondMoment = tf.keep(tf.zeros([total]));
  }

  get learningRate(): number {
    return this.lr;
  }

  /** Changes the learning rate from the next step on (used when a run diverges). */
  set learningRate(value: number) {
    if (!(value > 0)) throw new Error(`learning rate must be > 0, got ${value}`);
    this.lr = value;
  }

  get steps(): number {
    return this.stepCount;
  }

  /**
   * One update from `grads` (keyed by variable name; a variable with no entry is left as it
   * is, moments included, and adds nothing to the norm). Returns the global gradient norm
   * before clipping, as a scalar tensor the caller owns.
   */
  step(grads: Record<string, tf.Tensor>): tf.Scalar {
    this.stepCount += 1;
    const { beta1, beta2, epsilon, clipNorm } = this.config;
    const t = this.stepCount;
    const lr = this.lr;
    const correction1 = 1 - Math.pow(beta1, t);
    const correction2 = 1 - Math.pow(beta2, t);
    const present = this.variables.map((v) => grads[v.name] !== undefined);
    if (!present.some((p) => p)) return tf.scalar(0);
    const all = present.every((p) => p);
    return tf.tidy(() => {
      // [total]: the gradients in variable order (zeros for an absent one).
      const g = tf.concat(this.variables.map((v, i) => (present[i] ? flat(grads[v.name]) : tf.zeros([v.size]))));
      const norm = tf.sqrt(tf.sum(tf.square(g))) as tf.Scalar;
      // scale = min(1, clipNorm / norm): clipping by the global norm, as torch's clip_grad_norm_.
      const clipped = Number.isFinite(clipNorm) ? tf.mul(g, tf.minimum(1, tf.div(clipNorm, tf.add(norm, 1e-6)))) : g;
      let m = tf.add(tf.mul(this.firstMoment, beta1), tf.mul(clipped, 1 - beta1));
      let s = tf.add(tf.mul(this.secondMoment, beta2), tf.mul(tf.square(clipped), 1 - beta2));
      const update = tf.div(tf.div(m, correction1), tf.add(tf.sqrt(tf.div(s, correction2)), epsilon));
      const weights = this.currentWeights(); // [total]
      // Decoupled weight decay on matrices only: w <- w - lr * (update + wd * w).
      const decayed = this.decay ? tf.add(update, tf.mul(weights, this.decay)) : update;
      const scaled = this.rateScale ? tf.mul(decayed, this.rateScale) : decayed;
      const nextFlat = tf.sub(weights, tf.mul(scaled, lr)) as tf.Tensor1D;
      const next = tf.split(nextFlat, this.sizes);
      if (!all) {
        // Absent variables keep their moments: select the old entries for them.
        const mask = new Uint8Array(g.size);
        let offset = 0;
        this.sizes.forEach((n, i) => {
          if (present[i]) mask.fill(1, offset, offset + n);
          offset += n;
        });
        const keepNew = tf.tensor1d(mask, "bool");
        m = tf.where(keepNew, m, this.firstMoment);
        s = tf.where(keepNew, s, this.secondMoment);
      }
      this.variables.forEach((v, i) => {
        if (present[i]) v.assign(v.rank === 1 ? next[i] : tf.reshape(next[i], v.shape));
      });
      this.firstMoment.dispose();
      this.secondMoment.dispose();
      this.firstMoment = tf.keep(m as tf.Tensor1D);
      this.secondMoment = tf.keep(s as tf.Tensor1D);
      this.lastWeights?.flat.dispose();
      // With a variable absent the flat vector holds a value it was not given: not kept.
      const keep = all && g.size <= KEEP_WEIGHTS_MAX_ELEMENTS;
      this.lastWeights = keep ? { flat: tf.keep(nextFlat), dataIds: this.variables.map((v) => v.dataId) } : undefined;
      return norm;
    });
  }

  /** [total] the variables' values: the vector of the last step while no variable was assigned since, else read afresh. */
  private currentWeights(): tf.Tensor1D {
    const last = this.lastWeights;
    if (last && this.variables.every((v, i) => v.dataId === last.dataIds[i])) return last.flat;
    return tf.concat(this.variables.map((v) => flat(v)));
  }

  /** A copy of the state (tensors owned by the caller). */
  getState(): AdamWState {
    const moments = tf.tidy(() => {
      const m = tf.split(this.firstMoment, this.sizes);
      const s = tf.split(this.secondMoment, this.sizes);
      return this.variables.map((v, i) => ({ m: tf.keep(tf.reshape(m[i], v.shape)), v: tf.keep(tf.reshape(s[i], v.shape)) }));
    });
    return { step: this.stepCount, learningRate: this.lr, moments };
  }

  /**
   * Restores a state taken by getState (copies; the caller keeps ownership of `state`).
   * Moments match variables by position, so a state saved in another process (where tfjs
   * may have named the variables differently) restores into an adapter built the same way.
   */
  setState(state: AdamWState): void {
    if (state.moments.length !== this.variables.length) {
      throw new Error(
        `optimiser state holds ${state.moments.length} variables, this optimiser ${this.variables.length}: the checkpoint belongs to a different adapter`,
      );
    }
    for (const [i, v] of this.variables.entries()) {
      const saved = state.moments[i];
      if (saved.m.shape.join() !== v.shape.join() || saved.v.shape.join() !== v.shape.join()) {
        throw new Error(`optimiser state for '${v.name}' has shape [${saved.m.shape}], the variable [${v.shape}]`);
      }
    }
    const [m, s] = tf.tidy(() => [
      tf.keep(tf.concat(state.moments.map((x) => tf.reshape(x.m, [x.m.size]))) as tf.Tensor1D),
      tf.keep(tf.concat(state.moments.map((x) => tf.reshape(x.v, [x.v.size]))) as tf.Tensor1D),
    ]);
    this.firstMoment.dispose();
    this.secondMoment.dispose();
    this.firstMoment = m;
    this.secondMoment = s;
    this.stepCount = state.step;
    this.lr = state.learningRate;
  }

  dispose(): void {
    tf.dispose([this.firstMoment, this.secondMoment, this.decay ?? [], this.rateScale ?? [], this.lastWeights?.flat ?? []]);
    this.lastWeights = undefined;
  }
}
