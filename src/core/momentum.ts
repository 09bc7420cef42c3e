/**
 * SGD with momentum whose dispose() frees everything it made, and whose step with weight decay
 * runs over all of a model's variables at once.
 *
 * tfjs 4.22's MomentumOptimizer overrides SGDOptimizer.dispose() without calling it, so the
 * learning-rate scalar it keeps (`c`) stays alive: one tensor per optimiser. Scenarios build an
 * optimiser per model per run, so that showed as slow tensor growth across an experiment.
 * Same constructor and update rule as tf.train.momentum.
 *
 * Speed (issue 16): trainStep's weight decay (2 ops per variable) and tfjs's momentum update
 * (4 ops per variable) cost six native ops per variable, each a fixed 20-30 µs on the
 * `tensorflow` backend, far more than their arithmetic on these small models.
 * `applyDecayedGradients` does the same arithmetic on one flat vector over all variables: the
 * gradients concatenated (a Reshape per matrix and one Concat), the same six ops once, one
 * Split and a Reshape per matrix back; the flat weights and the flat accumulation are kept
 * between steps while nobody else wrote the variables (checked by identity of their data, as
 * AdamW does). The bench MLP's step goes from 36 such ops to 14. Every element sees the same
 * float32 operations with the same operands as in the per-variable form (element-wise ops,
 * one kernel each), so the numbers are the same to the last bit.
 *
 * The per-variable accumulations that tfjs's getWeights/setWeights (and so checkpoints and the
 * loop's last good state) read and write are brought up to date from the flat one when asked
 * for (getWeights, or a step through the stock per-variable path); setWeights drops the flat
 * state, so the next step reads the restored accumulations.
 */
import { tf } from "../backend/index";

/** Up to this many elements the flat weights are kept between steps (as AdamW does). */
const KEEP_WEIGHTS_MAX_ELEMENTS = 1 << 24;

/** tfjs internals this class reads: the momentum and -learning-rate scalars, the per-variable accumulations. */
interface MomentumInternals {
  m: tf.Scalar;
  c: tf.Scalar;
  useNesterov: boolean;
  accumulations: { originalName: string; variable: tf.Variable }[];
}

/** The flat step's state over one list of variables. */
interface FlatState {
  names: string[];
  shapes: number[][];
  sizes: number[];
  /** [total] the accumulation, authoritative over the per-variable ones while defined. */
  accumulation?: tf.Tensor1D;
  /** [total] the weights the last step wrote and the data each variable then held: reused while they match. */
  weights?: { flat: tf.Tensor1D; dataIds: object[] };
}

/** A tensor as a vector: [..] -> [size] (no op for a vector). */
function flat(x: tf.Tensor): tf.Tensor1D {
  return (x.rank === 1 ? x : tf.reshape(x, [x.size])) as tf.Tensor1D;
}

export class LeakFreeMomentum extends tf.MomentumOptimizer {
  private flatState: FlatState | undefined;
  private decayScalar: { value: number; tensor: tf.Scalar } | undefined;

  private get internals(): MomentumInternals {
    return this as unknown as MomentumInternals;
  }

  /**
   * One step of `variables` (all float32) with gradients `grads` (keyed by variable name) plus
   * L2 weight decay (`grad + weightDecay * weight`, PyTorch SGD's weight_decay), as trainStep
   * did per variable followed by applyGradients: same numbers. Returns false, doing nothing,
   * where the flat form does not apply (a gradient missing, Nesterov momentum, a non-float32
   * variable, an accumulation of another shape): the caller then takes the stock path.
   */
  applyDecayedGradients(variables: tf.Variable[], grads: tf.NamedTensorMap, weightDecay: number): boolean {
    const own = this.internals;
    if (own.useNesterov || variables.length === 0) return false;
    if (variables.some((v) => v.dtype !== "float32" || grads[v.name] === undefined || grads[v.name].dtype !== "float32")) return false;
    const names = variables.map((v) => v.name);
    let state = this.flatState;
    if (state && (state.names.length !== names.length || state.names.some((n, i) => n !== names[i]))) {
      this.settle();
      this.dropFlat();
      state = undefined;
    }
    const saved = own.accumulations;
    if (!state?.accumulation && variables.some((v, i) => saved[i] && saved[i].variable.shape.join() !== v.shape.join())) return false;
    if (!state) state = this.flatState = { names, shapes: variables.map((v) => [...v.shape]), sizes: variables.map((v) => v.size) };
    const current = state;
    const decay = weightDecay > 0 ? this.decayTensor(weightDecay) : undefined;
    tf.tidy(() => {
      const gradient = tf.concat(variables.map((v) => flat(grads[v.name])));
      const weights = current.weights && variables.every((v, i) => v.dataId === current.weights!.dataIds[i]) ? current.weights.flat : tf.concat(variables.map(flat));
      const accumulation = current.accumulation ?? tf.concat(variables.map((v, i) => (saved[i] ? flat(saved[i].variable) : tf.zeros([v.size]))));
      // The per-variable form, element by element: decayed = grad + weight * wd (trainStep),
      // then tfjs's momentum: acc' = m * acc + decayed; weight' = c * acc' + weight (c = -lr).
      const decayed = decay ? tf.add(gradient, tf.mul(weights, decay)) : gradient;
      const nextAccumulation = tf.add(tf.mul(own.m, accumulation), decayed) as tf.Tensor1D;
      const nextWeights = tf.add(tf.mul(own.c, nextAccumulation), weights) as tf.Tensor1D;
      const pieces = tf.split(nextWeights, current.sizes);
      variables.forEach((v, i) => v.assign(v.rank === 1 ? pieces[i] : tf.reshape(pieces[i], v.shape)));
      if (current.accumulation) current.accumulation.dispose();
      current.accumulation = tf.keep(nextAccumulation);
      current.weights?.flat.dispose();
      current.weights = nextWeights.size <= KEEP_WEIGHTS_MAX_ELEMENTS ? { flat: tf.keep(nextWeights), dataIds: variables.map((v) => v.dataId) } : undefined;
    });
    this.incrementIterations();
    return true;
  }

  /** The weight-decay factor as a kept scalar (made once per value, not per step). */
  private decayTensor(value: number): tf.Scalar {
    if (this.decayScalar?.value !== value) {
      this.decayScalar?.tensor.dispose();
      this.decayScalar = { value, tensor: tf.keep(tf.scalar(value)) };
    }
    return this.decayScalar.tensor;
  }

  /** Writes the flat accumulation into tfjs's per-variable accumulations (creating them as tfjs would) and drops it. */
  private settle(): void {
    const state = this.flatState;
    if (!state?.accumulation) return;
    const own = this.internals;
    const accumulation = state.accumulation;
    tf.tidy(() => {
      const pieces = tf.split(accumulation, state.sizes);
      state.names.forEach((name, i) => {
        const shape = state.shapes[i];
        const value = shape.length === 1 ? pieces[i] : tf.reshape(pieces[i], shape);
        if (own.accumulations[i]) own.accumulations[i].variable.assign(value);
        else own.accumulations[i] = { originalName: `${name}/momentum`, variable: value.variable(false) };
      });
    });
    accumulation.dispose();
    state.accumulation = undefined;
  }

  private dropFlat(): void {
    const state = this.flatState;
    if (!state) return;
    tf.dispose([state.accumulation ?? [], state.weights?.flat ?? []]);
    this.flatState = undefined;
  }

  override applyGradients(variableGradients: Parameters<tf.MomentumOptimizer["applyGradients"]>[0]): void {
    this.settle();
    super.applyGradients(variableGradients);
  }

  override async getWeights(): ReturnType<tf.MomentumOptimizer["getWeights"]> {
    this.settle();
    return super.getWeights();
  }

  override async setWeights(weightValues: Parameters<tf.MomentumOptimizer["setWeights"]>[0]): Promise<void> {
    this.dropFlat();
    await super.setWeights(weightValues);
  }

  override dispose(): void {
    this.dropFlat();
    this.decayScalar?.tensor.dispose();
    this.decayScalar = undefined;
    super.dispose();
    // `c` is SGDOptimizer's kept learning-rate scalar; MomentumOptimizer.dispose forgets it.
    const rate = (this as unknown as { c?: tf.Scalar }).c;
    if (rate && !rate.isDisposed) rate.dispose();
  }
}

/**
 * Whether `optimizer` is a LeakFreeMomentum. Not `instanceof`: tfjs gives tf.Optimizer a
 * Symbol.hasInstance that accepts any optimiser, and subclasses inherit it.
 */
export function isLeakFreeMomentum(optimizer: tf.Optimizer): optimizer is LeakFreeMomentum {
  return typeof (optimizer as Partial<LeakFreeMomentum>).applyDecayedGradients === "function";
}

/** tf.train.momentum(learningRate, momentum) without the leak. */
export function momentum(learningRate: number, momentumValue: number, useNesterov = false): tf.MomentumOptimizer {
  return new LeakFreeMomentum(learningRate, momentumValue, useNesterov);
}
