// The faster kernels trainStep uses (src/core/step.ts): the ReLU gradient (same values as
// tfjs's own dy * step(x) on finite inputs) and the one-op sparse cross-entropy (same value
// and gradient as sparseCrossEntropy within float32 rounding).
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { sparseCrossEntropy } from "../src/core/losses";
import { installFastGradients } from "../src/backend/native-kernels";
import { fastSparseCrossEntropy } from "../src/core/step";
import { expectNoTensorLeak } from "./helpers/leaks";

/** tfjs's stock formula: dy * step(x). */
function reference(dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  return tf.mul(dy, tf.cast(tf.step(x), "float32"));
}

describe("fast ReLU gradient", () => {
  it("equals dy * step(x) exactly, zeros and negatives included, through tf.grad and tf.variableGrads", () => {
    installFastGradients();
    const x = tf.tensor4d([0, -0, 1.5, -2, 3, 0, -1e-30, 1e-30], [1, 2, 2, 2]);
    const dy = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
    const viaGrad = tf.grad((a: tf.Tensor) => tf.relu(a))(x, dy);
    expect(Array.from(viaGrad.dataSync())).toEqual(Array.from(reference(dy, x).dataSync()));

    const big = tf.randomNormal([8, 14, 14, 16], 0, 1, "float32", 3);
    const v = tf.variable(big, true, "fast_relu_test/v");
    const weight = tf.randomNormal(big.shape, 0, 1, "float32", 4);
    const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(tf.relu(v), weight)) as tf.Scalar, [v]);
    expect(Array.from(grads[v.name].dataSync())).toEqual(Array.from(reference(weight, big).dataSync()));
    tf.dispose([x, dy, viaGrad, big, v, weight, grads, value]);
  });

  it("the native kernel is the one in use on the tensorflow backend", async () => {
    installFastGradients();
    const x = tf.randomNormal([4, 4], 0, 1, "float32", 1);
    const profile = await tf.profile(() => tf.grad((a: tf.Tensor) => tf.relu(a))(x).dispose());
    const names = profile.kernels.map((k) => k.name);
    if (tf.getBackend() === "tensorflow") {
      expect(names).toContain("MergeNetReluGrad");
      expect(names).not.toContain("Step");
    } else {
      expect(names).toContain("Step");
    }
    x.dispose();
  });

  it("has a second-order gradient: d/d(dy) of the ReLU gradient is step(x)", () => {
    installFastGradients();
    const x = tf.tensor1d([-1, 2, 0, 3]);
    const dy = tf.tensor1d([0.5, 0.5, 0.5, 0.5]);
    // g(dy) = Σ relu'(x) dy: its gradient in dy is step(x).
    const second = tf.grad((d: tf.Tensor) => tf.sum(tf.grad((a: tf.Tensor) => tf.relu(a))(x, d)))(dy);
    expect(Array.from(second.dataSync())).toEqual([0, 1, 0, 1]);
    tf.dispose([x, dy, second]);
  });
});

describe("fast sparse cross-entropy", () => {
  it.each(["int32", "float32"] as const)("equals sparseCrossEntropy in value and gradient (labels %s)", (dtype) => {
    tf.tidy(() => {
      const logits = tf.randomNormal([7, 5], 0, 3, "float32", 1);
      const labels = tf.tensor1d([0, 4, 2, 2, 1, 3, 0], dtype);
      const fast = tf.valueAndGrad((l: tf.Tensor) => fastSparseCrossEntropy(l, labels))(logits);
      const plain = tf.valueAndGrad((l: tf.Tensor) => sparseCrossEntropy(l, labels))(logits);
      expect(Math.abs(fast.value.dataSync()[0] - plain.value.dataSync()[0])).toBeLessThan(1e-5);
      expect(tf.max(tf.abs(tf.sub(fast.grad, plain.grad))).dataSync()[0]).toBeLessThan(1e-6);
      expect(tf.max(tf.abs(plain.grad)).dataSync()[0]).toBeGreaterThan(1e-3);
    });
  });

  it("is what trainStep uses for sparseCrossEntropy on the tensorflow backend, and leaks nothing", async () => {
    const logits = tf.randomNormal([4, 3], 0, 1, "float32", 2);
    const labels = tf.tensor1d([0, 1, 2, 1], "int32");
    const profile = await tf.profile(() => tf.grad((l: tf.Tensor) => fastSparseCrossEntropy(l, labels))(logits).dispose());
    const names = profile.kernels.map((k) => k.name);
    if (tf.getBackend() === "tensorflow") expect(names).toContain("MergeNetSparseSoftmaxCrossEntropy");
    await expectNoTensorLeak(() => tf.grad((l: tf.Tensor) => fastSparseCrossEntropy(l, labels))(logits).dispose());
    tf.dispose([logits, labels]);
  });
});
