/**
 * AdamW (Loshchilov & Hutter) for the adapter, with global-norm gradient clipping, as the
 * released code trains its adapter: lr 1e-3, weight decay 5e-4 applied only to matrices
 * (biases, LayerNorm gains and gates are not decayed), gradients clipped to norm 50.
 *
 * tfjs has no AdamW; this one keeps its moments as plain tensors so its state can be saved
 * in a checkpoint and restored exactly.
 */
import { tf } from "../backend";

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

export class AdamW {
  readonly config: AdamWConfig;
  private readonly variables: tf.Variable[];
  private readonly firstMoment = new Map<string, tf.Tensor>();
  private readonly secondMoment = new Map<string, tf.Tensor>();
  private stepCount = 0;
  private lr: number;

  constructor(variables: tf.Variable[], config: Partial<AdamWConfig> = {}) {
    this.config = { ...ADAMW_DEFAULTS, ...config };
    if (!(this.config.learningRate > 0)) throw new Error(`adapter learning rate must be > 0, got ${this.config.learningRate}`);
    if (!(this.config.weightDecay >= 0)) throw new Error(`adapter weight decay must be >= 0, got ${this.config.weightDecay}`);
    if (!(this.config.clipNorm > 0)) throw new Error(`gradient clip norm must be > 0 (Infinity disables it), got ${this.config.clipNorm}`);
    this.variables = variables;
    this.lr = this.config.learningRate;
    for (const v of variables) {
      this.firstMoment.set(v.name, tf.keep(tf.zerosLike(v)));
      this.secondMoment.set(v.name, tf.keep(tf.zerosLike(v)));
    }
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
   * One update from `grads` (keyed by variable name; a missing entry counts as zero).
   * Returns the global gradient norm before clipping, as a scalar tensor the caller owns.
   */
  step(grads: Record<string, tf.Tensor>): tf.Scalar {
    this.stepCount += 1;
    const { beta1, beta2, epsilon, weightDecay, clipNorm } = this.config;
    const t = this.stepCount;
    const lr = this.lr;
    const correction1 = 1 - Math.pow(beta1, t);
    const correction2 = 1 - Math.pow(beta2, t);
    return tf.tidy(() => {
      const present = this.variables.filter((v) => grads[v.name] !== undefined);
      const squares = present.map((v) => tf.sum(tf.square(grads[v.name])));
      const norm = squares.length ? tf.sqrt(tf.addN(squares)) : tf.scalar(0);
      // scale = min(1, clipNorm / norm): clipping by the global norm, as torch's clip_grad_norm_.
      const scale = Number.isFinite(clipNorm) ? tf.minimum(1, tf.div(clipNorm, tf.add(norm, 1e-6))) : tf.scalar(1);
      for (const v of present) {
        const g = tf.mul(grads[v.name], scale);
        const m = tf.add(tf.mul(this.firstMoment.get(v.name)!, beta1), tf.mul(g, 1 - beta1));
        const s = tf.add(tf.mul(this.secondMoment.get(v.name)!, beta2), tf.mul(tf.square(g), 1 - beta2));
        const update = tf.div(tf.div(m, correction1), tf.add(tf.sqrt(tf.div(s, correction2)), epsilon));
        // Decoupled weight decay on matrices only: w <- w - lr * (update + wd * w).
        const decayed = v.rank >= 2 && weightDecay > 0 ? tf.add(update, tf.mul(v, weightDecay)) : update;
        v.assign(tf.sub(v, tf.mul(decayed, lr)));
        this.replace(this.firstMoment, v.name, m);
        this.replace(this.secondMoment, v.name, s);
      }
      return norm as tf.Scalar;
    });
  }

  private replace(store: Map<string, tf.Tensor>, name: string, value: tf.Tensor): void {
    store.get(name)!.dispose();
    store.set(name, tf.keep(value));
  }

  /** A copy of the state (tensors owned by the caller). */
  getState(): AdamWState {
    const moments = this.variables.map((v) => ({ m: this.firstMoment.get(v.name)!.clone(), v: this.secondMoment.get(v.name)!.clone() }));
    return { step: this.stepCount, learningRate: this.lr, moments };
  }

  /**
   * Restores a state taken by getState (copies; the caller keeps ownership of `state`).
   * Moments match variables by position, so a state saved in another process (where tfjs
   * may have named the variables differently) restores into an adapter built the same way.
   */
  setState(state: AdamWState): void {
    if (state.moments.length !== this.variables.length) {
      throw new Error(`optimiser state holds ${state.moments.length} variables, this optimiser ${this.variables.length}: the checkpoint belongs to a different adapter`);
    }
    for (const [i, v] of this.variables.entries()) {
      const saved = state.moments[i];
      if (saved.m.shape.join() !== v.shape.join()) {
        throw new Error(`optimiser state for '${v.name}' has shape [${saved.m.shape}], the variable [${v.shape}]`);
      }
      this.replace(this.firstMoment, v.name, saved.m.clone());
      this.replace(this.secondMoment, v.name, saved.v.clone());
    }
    this.stepCount = state.step;
    this.lr = state.learningRate;
  }

  dispose(): void {
    for (const t of [...this.firstMoment.values(), ...this.secondMoment.values()]) t.dispose();
    this.firstMoment.clear();
    this.secondMoment.clear();
  }
}
