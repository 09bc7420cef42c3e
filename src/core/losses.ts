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

/** Accuracy of a classifier on a held-out set, batched to bound memory. */
export function accuracyEvaluator(x: tf.Tensor, y: tf.Tensor, batchSize = 1000, key = "accuracy"): (model: tf.LayersModel) => Promise<Record<string, number>> {
  return async (model) => {
    const n = x.shape[0];
    let correct = 0;
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const acc = tf.tidy(() => accuracy(model.predict(x.slice(start, size)) as tf.Tensor, y.slice(start, size)));
      correct += (await acc.data())[0] * size;
      acc.dispose();
    }
    return { [key]: correct / n };
  };
}
