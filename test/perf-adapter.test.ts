// The adapter's hand-written gradients (src/core/adapter/ops.ts: layerNorm, gelu; attention.ts, spectral.ts) against
// autodiff through the plain formulas written out here, in the shapes the adapter uses.
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { ParameterAdapter } from "../src/core/adapter/parameter-adapter";
import { gelu, LAYER_NORM_EPSILON, layerNorm } from "../src/core/adapter/ops";
import { type AdapterConfig } from "../src/core/adapter/config";

function plainLayerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), -1, true);
  return tf.add(tf.mul(tf.div(centred, tf.sqrt(tf.add(variance, LAYER_NORM_EPSILON))), gamma), beta);
}

function plainGelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
const maxAbs = (a: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0]);

describe("adapter: hand-written gradients", () => {
  it.each([
    ["stacked blocks [2, 5, 7], gamma [2, 1, 7]", [2, 5, 7], [2, 1, 7]],
    ["FFN [6, 9], gamma [9]", [6, 9], [9]],
  ] as const)("layerNorm value and gradients match autodiff (%s)", (_label, xShape, gShape) => {
    tf.tidy(() => {
      const x = tf.randomNormal([...xShape], 0.3, 2, "float32", 1);
      const gamma = tf.randomNormal([...gShape], 1, 0.5, "float32", 2);
      const beta = tf.randomNormal([...gShape], 0, 0.5, "float32", 3);
      const weight = tf.randomNormal([...xShape], 0, 1, "float32", 4);
      const loss = (f: typeof plainLayerNorm) => (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, g, b), weight));
      expect(maxDiff(layerNorm(x, gamma, beta), plainLayerNorm(x, gamma, beta))).toBeLessThan(1e-5);
      const fast = tf.grads(loss(layerNorm))([x, gamma, beta]);
      const plain = tf.grads(loss(plainLayerNorm))([x, gamma, beta]);
      fast.forEach((g, i) => {
        expect(g.shape).toEqual(plain[i].shape);
        expect(maxDiff(g, plain[i])).toBeLessThan(1e-4 * (1 + maxAbs(plain[i])));
      });
      expect(maxAbs(plain[0])).toBeGreaterThan(1e-3); // not trivially zero
    });
  });

  it("gelu value and gradient match autodiff of the tanh form", () => {
    tf.tidy(() => {
      const x = tf.linspace(-6, 6, 97);
      expect(maxDiff(gelu(x as unknown as tf.Tensor2D), plainGelu(x))).toBeLessThan(1e-5);
      const fast = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(gelu(a as tf.Tensor2D), a)))(x);
      const plain = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(plainGelu(a), a)))(x);
      expect(maxDiff(fast, plain)).toBeLessThan(1e-4);
    });
  });
});

describe("adapter: hand-written attention gradient", () => {
  // inspect() runs the attention without the custom gradient (autodiff through the plain
  // ops); forward() in inference mode with it. Same function, so the gradients must agree.
  it.each([
    ["bench-like shapes, 1 layer", { sourceShape: [3, 8], targetShape: [6, 10], layers: 1, heads: 4 }],
    ["2 layers, learned weighting, one block off", { sourceShape: [5, 3], targetShape: [4, 6], layers: 2, blockWeighting: "learned", blocks: { colsRows: false } }],
  ] as const)("matches autodiff for every parameter (%s)", (_label, config) => {
    const adapter = new ParameterAdapter({ ...config, seed: 4 } as AdapterConfig);
    // Seeds from 1: tfjs takes a seed of 0 as none (Math.random), which made this test draw anew each run.
    const nudged = tf.tidy(() =>
      Object.fromEntries(adapter.parameterNames().map((n, i) => [n, tf.add(adapter.parameter(n), tf.randomNormal(adapter.parameter(n).shape, 0, 0.2, "float32", i + 1))])),
    );
    adapter.setParameters(nudged);
    tf.dispose(Object.values(nudged));
    const source = tf.randomNormal([...config.sourceShape], 0, 1, "float32", 1) as tf.Tensor2D;
    const target = tf.randomNormal([...config.targetShape], 0, 1, "float32", 2) as tf.Tensor2D;
    const weights = tf.randomNormal([...config.targetShape], 0, 1, "float32", 3);
    const custom = tf.variableGrads(() => tf.sum(tf.mul(adapter.forward(source, target, { training: false }), weights)) as tf.Scalar, adapter.variables);
    const plain = tf.variableGrads(() => tf.sum(tf.mul(adapter.inspect(source, target).output, weights)) as tf.Scalar, adapter.variables);
    expect(Math.abs(custom.value.dataSync()[0] - plain.value.dataSync()[0])).toBeLessThan(1e-4);
    let nonZero = 0;
    for (const v of adapter.variables) {
      const scale = 1 + maxAbs(plain.grads[v.name]);
      expect(maxDiff(custom.grads[v.name], plain.grads[v.name]), v.name).toBeLessThan(2e-5 * scale);
      if (maxAbs(plain.grads[v.name]) > 1e-6) nonZero++;
    }
    expect(nonZero).toBeGreaterThan(adapter.variables.length / 2);
    tf.dispose([source, target, weights, custom.value, custom.grads, plain.value, plain.grads]);
    adapter.dispose();
  });
});

describe("adapter: gradients into its inputs", () => {
  it("flow into the source and target matrices as autodiff of the plain pass has them", () => {
    const adapter = new ParameterAdapter({ sourceShape: [3, 5], targetShape: [4, 6], layers: 2, heads: 2, seed: 6 });
    const source = tf.randomNormal([3, 5], 0, 1, "float32", 1) as tf.Tensor2D;
    const target = tf.randomNormal([4, 6], 0, 1, "float32", 2) as tf.Tensor2D;
    const weights = tf.randomNormal([4, 6], 0, 1, "float32", 3);
    const custom = tf.grads((s: tf.Tensor, t: tf.Tensor) => tf.sum(tf.mul(adapter.forward(s as tf.Tensor2D, t as tf.Tensor2D, { training: false }), weights)))([source, target]);
    const plain = tf.grads((s: tf.Tensor, t: tf.Tensor) => tf.sum(tf.mul(adapter.inspect(s as tf.Tensor2D, t as tf.Tensor2D).output, weights)))([source, target]);
    custom.forEach((g, i) => {
      expect(maxAbs(plain[i])).toBeGreaterThan(1e-4);
      expect(maxDiff(g, plain[i])).toBeLessThan(2e-5 * (1 + maxAbs(plain[i])));
    });
    tf.dispose([source, target, weights, custom, plain]);
    adapter.dispose();
  });
});
