// Issue 16, the small models' step: the lean Dense call (src/models/dense.ts) and the Reshape/Cast no-op shortcuts
// (src/backend/native-kernels.ts installNoOpShortcuts) change no value; the shortcuts run no native op.
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { meterNativeOps } from "../src/backend/op-meter";
import { dense } from "../src/models/dense";

describe("Reshape and Cast no-op shortcuts", () => {
  it("same values; a reshape to the same shape and a cast to the same dtype run no native op", async () => {
    const x = tf.randomNormal([3, 4], 0, 1, "float32", 7);
    const same = tf.reshape(x, [3, 4]);
    const implicit = tf.reshape(x, [-1, 4]);
    const moved = tf.reshape(x, [4, 3]);
    const cast = tf.cast(x, "float32");
    for (const t of [same, implicit, cast]) expect(Array.from(t.dataSync())).toEqual(Array.from(x.dataSync()));
    expect(moved.shape).toEqual([4, 3]);
    expect(Array.from(moved.dataSync())).toEqual(Array.from(x.dataSync()));
    // Later ops see the right shapes (the native tensor kept its own).
    expect(tf.matMul(moved, same).shape).toEqual([4, 4]);
    const { ops } = await meterNativeOps(() => tf.tidy(() => {
      tf.reshape(x, [3, 4]);
      tf.cast(x, "float32");
      tf.mean(x);
    }));
    // tfjs-node's Mean casts first: no Cast op now either. (No native ops to count on wasm/cpu.)
    if (tf.getBackend() === "tensorflow") expect(ops?.byOp.map((s) => s.op)).toEqual(["Mean"]);
    else expect(ops).toBeUndefined();
    tf.dispose([x, same, implicit, moved, cast]);
  });
});

describe("models/dense.ts: Dense as a 2-D MatMul + bias Add + activation", () => {
  const bits = (t: tf.Tensor) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));

  it.each([
    ["linear, rank 2", undefined, [16, 12]],
    ["relu, rank 2", "relu", [16, 12]],
    ["gelu, rank 3", "gelu", [4, 5, 12]],
    ["linear, rank 3", undefined, [4, 5, 12]],
  ] as const)("gives tf.layers.dense's output and gradients bit for bit (%s), in training and inference", (_, activation, shape) => {
    const make = (lean: boolean) => {
      const args = { units: 7, activation, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) };
      const layer = lean ? dense(args) : tf.layers.dense(args);
      layer.apply(tf.input({ shape: shape.slice(1) as number[] }));
      return layer;
    };
    const stock = make(false);
    const lean = make(true);
    lean.setWeights(stock.getWeights());
    const x = tf.randomNormal([...shape], 0, 1, "float32", 4);
    const dy = tf.randomNormal([...shape.slice(0, -1), 7], 0, 1, "float32", 5);
    const run = (layer: tf.layers.Layer) => {
      const variables = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, dy)) as tf.Scalar, variables);
      const inference = tf.tidy(() => layer.apply(x) as tf.Tensor);
      const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input) as tf.Tensor, dy)))(x);
      return { value: bits(value), grads: variables.map((v) => bits(grads[v.name])), inference: bits(inference), dx: bits(dx) };
    };
    expect(run(lean)).toEqual(run(stock));
    expect(lean.getClassName()).toBe("Dense");
    tf.dispose([x, dy]);
    stock.dispose();
    lean.dispose();
  });
});
