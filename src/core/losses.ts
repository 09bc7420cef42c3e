/** Loss functions over logits, as the trainer and baselines use them. */
import { tf } from "../backend/index";
import type { LabelSpec } from "./batch-stream";

export type LossFn = (logits: tf.Tensor, labels: tf.Tensor) => tf.Scalar;

const labelSpecs = new WeakMap<LossFn, LabelSpec>();

/** Declares what `loss` reads as labels, so that training data is checked against it at the door (data/check.ts). */
export function declareLabels<F extends LossFn>(loss: F, spec: LabelSpec): F {
  labelSpecs.set(loss, spec);
  return loss;
}

/** What `loss` reads as labels; undefined when it declared nothing (its labels are then not checked). */
export function labelsOf(loss: LossFn): LabelSpec | undefined {
  return labelSpecs.get(loss);
}

/** Mean softmax cross-entropy of logits [n, classes] against integer labels [n]. */
export function sparseCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const classes = logits.shape[logits.shape.length - 1];
    const onehot = tf.oneHot(tf.cast(labels, "int32") as tf.Tensor1D, classes);
    return tf.losses.softmaxCrossEntropy(onehot, logits) as tf.Scalar;
  });
}
declareLabels(sparseCrossEntropy, { per: "example" });

/** Fraction of rows whose arg-max equals the integer label, as a scalar tensor. */
export function accuracy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(labels, "int32")), "float32")) as tf.Scalar);
}

/**
 * Rows per forward pass when evaluating (tfjs's `predict` defaults to 32). Measured on the zoo's
 * models: the same output bits at 32, 64, 100, 250 and 1000 rows, with one TensorFlow thread and
 * with the default; the small ViT's forward over 1,000 test images 195 → 111 ms, the MLP's
 * 16 → 9 ms, the CNN's unchanged (its convolutions are arithmetic-bound; 1,000 rows was slower).
 * `test/evaluation.test.ts` checks the bits on every model family the scenarios evaluate.
 */
export const EVAL_PREDICT_BATCH = 250;

/** Accuracy of a classifier on a held-out set, batched to bound memory. */
export function accuracyEvaluator(x: tf.Tensor, y: tf.Tensor, batchSize = 1000, key = "accuracy"): (model: tf.LayersModel) => Promise<Record<string, number>> {
  return async (model) => {
    const n = x.shape[0];
    let correct = 0;
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const acc = tf.tidy(() => accuracy(model.predict(x.slice(start, size), { batchSize: EVAL_PREDICT_BATCH }) as tf.Tensor, y.slice(start, size)));
      correct += (await acc.data())[0] * size;
      acc.dispose();
    }
    return { [key]: correct / n };
  };
}
