/**
 * One optimiser step of one model on one batch: the "self-learning" step every method here
 * shares (MergeNet's two models, the target-alone baseline, the pair baseline), so that
 * they differ only in what MergeNet adds.
 */
import { tf } from "../backend";
import type { LossFn } from "./losses";

export interface StepResult {
  /** The batch loss before the step (scalar; caller disposes). */
  loss: tf.Scalar;
  /** Gradients of the plain loss (no weight decay) for the variables asked for; caller disposes. */
  kept: Record<string, tf.Tensor>;
}

export interface SteppableModel {
  model: tf.LayersModel;
  optimizer: tf.Optimizer;
  /** L2 decay added to the gradient before the optimiser (PyTorch SGD's weight_decay). */
  weightDecay: number;
  loss: LossFn;
}

/** The tf.Variable behind a layer weight (what tf.variableGrads and optimisers key on). */
export function variableOf(weight: tf.LayerVariable): tf.Variable {
  return weight.read() as tf.Variable;
}

/** The model's trainable tf.Variables. */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map(variableOf);
}

/**
 * Forward in training mode, loss, gradients, weight decay, optimiser update.
 * `keep` names variables whose plain-loss gradient the caller wants back (the `exact` rule).
 */
export function trainStep(side: SteppableModel, x: tf.Tensor, y: tf.Tensor, keep: ReadonlySet<string> = new Set()): StepResult {
  const variables = trainableVariables(side.model);
  const { value, grads } = tf.variableGrads(() => side.loss(side.model.apply(x, { training: true }) as tf.Tensor, y), variables);
  const kept: Record<string, tf.Tensor> = {};
  for (const name of keep) {
    if (!grads[name]) throw new Error(`no gradient for variable '${name}': is it trainable in this model?`);
    kept[name] = grads[name].clone();
  }
  const decayed = side.weightDecay > 0
    ? tf.tidy(() => {
        const out: tf.NamedTensorMap = {};
        for (const v of variables) out[v.name] = tf.add(grads[v.name], tf.mul(v, side.weightDecay));
        return out;
      })
    : grads;
  side.optimizer.applyGradients(decayed);
  if (decayed !== grads) tf.dispose(decayed);
  tf.dispose(grads);
  return { loss: value, kept };
}
