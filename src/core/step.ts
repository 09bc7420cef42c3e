/**
 * One optimiser step of one model on one batch: the "self-learning" step every method here
 * shares (MergeNet's two models, the target-alone baseline, the pair baseline), so that
 * they differ only in what MergeNet adds.
 *
 * Speed (measured with scripts/bench.ts on the native backend, bench-mnist): two of tfjs's
 * stock pieces cost far more than their arithmetic, so trainStep swaps in native
 * TensorFlow ops of the same value: ReLU's gradient (installFastGradients, registered in
 * backend/native-kernels.ts) and the project's cross-entropy (fastSparseCrossEntropy).
 * Together they cut the CNN's step by about 30% and the MLP's by about 25%. On other backends both fall back to tfjs's own.
 */
import { tf } from "../backend/index";
import { FAST_SPARSE_XENT_KERNEL, installFastGradients } from "../backend/native-kernels";
import { sparseCrossEntropy, type LossFn } from "./losses";

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

/**
 * `sparseCrossEntropy` (mean softmax cross-entropy of logits [n, classes] against integer
 * labels [n]) as trainStep computes it on the `tensorflow` backend: TensorFlow's
 * SparseSoftmaxCrossEntropyWithLogits gives the per-example losses and their gradient in
 * one op, so the loss and its gradient take four ops instead of about thirty-five (one-hot,
 * log-softmax, weighting, mean, and autodiff through each). Same function; float32 rounding
 * differs in the last bits. Elsewhere it is `sparseCrossEntropy` itself.
 */
export function fastSparseCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  installFastGradients();
  if (tf.getBackend() !== "tensorflow" || logits.rank !== 2 || logits.dtype !== "float32") return sparseCrossEntropy(logits, labels);
  const n = logits.shape[0];
  const ids = labels.dtype === "int32" ? labels : tf.cast(labels, "int32");
  const xent = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[1] as tf.GradSaveFunc;
    const [perExample, gradient] = tf.engine().runKernel(FAST_SPARSE_XENT_KERNEL, { logits: args[0] as tf.Tensor, labels: ids }, {}) as tf.Tensor[];
    save([gradient]);
    return {
      value: tf.mean(perExample) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => tf.mul(saved[0], tf.div(dy, n)), // [n, classes]
    };
  });
  const loss = xent(logits);
  if (ids !== labels) ids.dispose();
  return loss;
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
  installFastGradients();
  const variables = trainableVariables(side.model);
  // The project's cross-entropy runs as one native op where it can (fastSparseCrossEntropy).
  const loss = side.loss === sparseCrossEntropy ? fastSparseCrossEntropy : side.loss;
  const { value, grads } = tf.variableGrads(() => loss(side.model.apply(x, { training: true }) as tf.Tensor, y), variables);
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
