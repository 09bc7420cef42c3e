/**
 * SGD with momentum for the models (tf.train.momentum's update rule, PyTorch's SGD with
 * `momentum` and `weight_decay`), run on one flat vector per model.
 *
 * The rule, per element: d = g + wd·w (when weight decay is given), a ← m·a + d, w ← w + c·a
 * with c = −lr. tfjs's MomentumOptimizer runs it per variable (four ops each, six with decay),
 * so a model of n variables costs 6n native ops per step (36 for the MLP, more than half of its
 * whole step). Here the gradients are concatenated into one vector, the momentum lives in one
 * vector over all variables, and the rule runs once on them; the new weights are split back
 * into the variables. The flat vector of new weights is kept for the next step and reused while
 * every variable still holds the value this optimiser wrote (checked by identity of the
 * variable's data, as AdamW does: MergeNet's write-back or a checkpoint restore assigns a
 * variable, and it is then read afresh). Every element sees the same float32 operations in the
 * same order as tfjs's per-variable form, so the results are the same to the last bit
 * (test/momentum.test.ts checks this against tf.train.momentum).
 *
 * Its saved state (getWeights / setWeights) has tfjs's layout, `iter` then one accumulation per
 * variable named "<variable>/momentum", so checkpoints written by either class restore into
 * the other. Also fixes tfjs 4.22's leak: MomentumOptimizer.dispose() forgets its kept
 * learning-rate scalar.
 */
import { tf } from "../backend/index";

/** One named tensor of an optimiser's saved state (tfjs's NamedTensor, which the tfjs package does not export). */
interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/** A tensor as a vector: [..] -> [size] (no op for a vector). */
function flat(x: tf.Tensor): tf.Tensor1D {
  return (x.rank === 1 ? x : tf.reshape(x, [x.size])) as tf.Tensor1D;
}

/** The variables one flat state is laid out over, in order. */
interface Layout {
  names: string[];
  variables: tf.Variable[];
  sizes: number[];
}

export class FlatMomentum extends tf.Optimizer {
  static get className(): string {
    return "Momentum"; // tfjs's name: the config and the saved weights read as tf.train.momentum's
  }

  readonly learningRate: number;
  readonly momentum: number;
  private readonly rate: tf.Scalar; // c = −lr
  private readonly decayFactor: tf.Scalar; // m
  private layout: Layout | undefined;
  /** [total] the momentum over all variables, in layout order. */
  private accumulation: tf.Tensor1D | undefined;
  /** [total] the weights this optimiser last wrote, and the data each variable then held. */
  private lastWeights: { flat: tf.Tensor1D; dataIds: object[] } | undefined;
  /** Sizes of a state restored before the first step, checked against the variables on that step. */
  private pendingSizes: number[] | undefined;
  /** The per-variable accumulations the last getWeights handed out (the optimiser's, as in tfjs). */
  private exported: tf.Tensor[] = [];

  constructor(learningRate: number, momentum: number) {
    super();
    if (!(learningRate > 0) || !Number.isFinite(learningRate)) throw new Error(`SGD learning rate must be a finite number > 0, got ${learningRate}`);
    if (!(momentum >= 0) || !Number.isFinite(momentum)) throw new Error(`SGD momentum must be a finite number >= 0, got ${momentum}`);
    this.learningRate = learningRate;
    this.momentum = momentum;
    this.rate = tf.keep(tf.scalar(-learningRate));
    this.decayFactor = tf.keep(tf.scalar(momentum));
  }

  /** tf.Optimizer's entry point: one step without weight decay. */
  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const named: tf.NamedTensorMap = Array.isArray(variableGradients)
      ? Object.fromEntries(variableGradients.map((g) => [g.name, g.tensor]))
      : variableGradients;
    const names = Object.keys(named);
    const variables = names.map((name) => {
      const v = tf.engine().registeredVariables[name];
      if (!v) throw new Error(`SGD: no variable named '${name}' is registered; pass gradients keyed by the variables' names`);
      return v;
    });
    this.step(variables, named, 0);
  }

  /**
   * One step over `variables` (every one must have a gradient in `grads`, keyed by its name),
   * with L2 weight decay `weightDecay` added to the gradients first (PyTorch SGD's weight_decay).
   */
  step(variables: tf.Variable[], grads: tf.NamedTensorMap, weightDecay: number): void {
    const layout = this.layoutFor(variables);
    for (const v of variables) {
      if (!grads[v.name]) throw new Error(`SGD: no gradient for variable '${v.name}'`);
    }
    tf.tidy(() => {
      const g = tf.concat(variables.map((v) => flat(grads[v.name]))); // [total]
      const weights = this.currentWeights(layout); // [total]
      const d = weightDecay > 0 ? tf.add(g, tf.mul(weights, weightDecay)) : g;
      const before = this.accumulation ?? tf.zeros([g.size]);
      const accumulation = tf.add(tf.mul(this.decayFactor, before), d) as tf.Tensor1D;
      const next = tf.add(tf.mul(this.rate, accumulation), weights) as tf.Tensor1D;
      const parts = tf.split(next, layout.sizes);
      variables.forEach((v, i) => v.assign(v.rank === 1 ? parts[i] : tf.reshape(parts[i], v.shape)));
      this.accumulation?.dispose();
      this.accumulation = tf.keep(accumulation);
      this.lastWeights?.flat.dispose();
      this.lastWeights = { flat: tf.keep(next), dataIds: variables.map((v) => v.dataId) };
    });
    this.incrementIterations();
  }

  /** The layout of the first step; a later step must train the same variables, in the same order. */
  private layoutFor(variables: tf.Variable[]): Layout {
    const names = variables.map((v) => v.name);
    if (!this.layout) {
      const sizes = variables.map((v) => v.size);
      const restored = this.pendingSizes;
      if (restored && (restored.length !== sizes.length || restored.some((n, i) => n !== sizes[i]))) {
        throw new Error(
          `SGD state restored holds accumulations of sizes [${restored.join(", ")}], but the variables trained have sizes [${sizes.join(", ")}]: the checkpoint belongs to another model`,
        );
      }
      this.pendingSizes = undefined;
      this.layout = { names, variables, sizes };
      return this.layout;
    }
    const same = names.length === this.layout.names.length && names.every((n, i) => n === this.layout!.names[i]);
    if (!same) {
      throw new Error(
        `SGD: this optimiser trains [${this.layout.names.join(", ")}], but was given [${names.join(", ")}]; ` +
          `build one optimiser per model (its momentum is laid out over that model's variables)`,
      );
    }
    return this.layout;
  }

  /** [total] the variables' values: the vector of the last step while no variable was assigned since, else read afresh. */
  private currentWeights(layout: Layout): tf.Tensor1D {
    const last = this.lastWeights;
    if (last && layout.variables.every((v, i) => v.dataId === last.dataIds[i])) return last.flat;
    return tf.concat(layout.variables.map((v) => flat(v)));
  }

  /**
   * tfjs's layout: the step count, then one accumulation per variable ("<name>/momentum").
   * As with tfjs's optimisers, the accumulations belong to the optimiser (the caller must not
   * dispose them): they are kept until the next getWeights, setWeights or dispose. The step
   * count is made anew on each call, as tfjs does.
   */
  override async getWeights(): Promise<NamedTensor[]> {
    const iterations = await this.saveIterations();
    this.disposeExported();
    const layout = this.layout;
    if (!layout || !this.accumulation) return [iterations];
    const accumulation = this.accumulation;
    const parts = tf.tidy(() => tf.split(accumulation, layout.sizes).map((p, i) => tf.reshape(p, layout.variables[i].shape)));
    this.exported = parts;
    return [iterations, ...parts.map((tensor, i) => ({ name: `${layout.names[i]}/momentum`, tensor }))];
  }

  private disposeExported(): void {
    tf.dispose(this.exported);
    this.exported = [];
  }

  /**
   * Restores a state taken by getWeights (this class's or tf.train.momentum's). Accumulations
   * match the variables by position, as tfjs's do; their layout is checked on the next step.
   */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    // Checked before anything changes: a state that does not fit leaves this one as it was.
    const sizes = weightValues.slice(1).map((a) => a.tensor.size);
    if (this.layout && sizes.length > 0) {
      const expected = this.layout.sizes;
      if (sizes.length !== expected.length || sizes.some((n, i) => n !== expected[i])) {
        throw new Error(
          `SGD state holds accumulations of sizes [${sizes.join(", ")}], this optimiser's variables [${expected.join(", ")}]: the checkpoint belongs to another model`,
        );
      }
    }
    const accumulations = await this.extractIterations(weightValues);
    const restored = accumulations.length === 0 ? undefined : tf.keep(tf.tidy(() => tf.concat(accumulations.map((a) => flat(a.tensor)))) as tf.Tensor1D);
    this.disposeExported(); // after the concat: `weightValues` may be what getWeights handed out
    this.accumulation?.dispose();
    this.accumulation = restored;
    this.lastWeights?.flat.dispose();
    this.lastWeights = undefined;
    this.pendingSizes = this.layout || !restored ? undefined : sizes;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, momentum: this.momentum, useNesterov: false };
  }

  override dispose(): void {
    this.disposeExported();
    tf.dispose([this.rate, this.decayFactor, this.accumulation ?? [], this.lastWeights?.flat ?? []]);
    this.accumulation = undefined;
    this.lastWeights = undefined;
    super.dispose();
  }
}

/**
 * Whether `optimizer` is a FlatMomentum. Not `instanceof`: tf.Optimizer defines
 * Symbol.hasInstance to accept any object with an optimiser's methods, and its subclasses
 * inherit that, so every optimiser would pass.
 */
export function isFlatMomentum(optimizer: tf.Optimizer): optimizer is FlatMomentum {
  return Object.prototype.isPrototypeOf.call(FlatMomentum.prototype, optimizer);
}

/** tf.train.momentum(learningRate, momentum) as one flat update per model (FlatMomentum). */
export function momentum(learningRate: number, momentumValue: number): FlatMomentum {
  return new FlatMomentum(learningRate, momentumValue);
}
