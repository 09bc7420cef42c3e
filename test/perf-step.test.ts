// Issue 16, the small models' step: the flat momentum + weight decay step (src/core/momentum.ts)
// gives the same numbers to the last bit as the per-variable form (trainStep's decay, then
// tfjs's MomentumOptimizer), through checkpoints of the optimiser's state and weights written
// from outside; and the Reshape/Cast no-op shortcuts (src/backend/native-kernels.ts) change
// no value.
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { isLeakFreeMomentum, momentum } from "../src/core/momentum";
import { fastSparseCrossEntropy, trainStep } from "../src/core/step";
import { sparseCrossEntropy } from "../src/core/losses";
import { mlp } from "../src/models/zoo";
import { expectNoTensorLeak } from "./helpers/leaks";

/** The per-variable form the flat step replaces (trainStep before it): decay per variable, then tfjs's own momentum. */
function perVariableStep(model: tf.LayersModel, optimizer: tf.Optimizer, x: tf.Tensor, y: tf.Tensor, weightDecay: number): void {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => fastSparseCrossEntropy(model.apply(x, { training: true }) as tf.Tensor, y), variables);
  const decayed = tf.tidy(() => {
    const out: tf.NamedTensorMap = {};
    for (const v of variables) out[v.name] = tf.add(grads[v.name], tf.mul(v, weightDecay));
    return out;
  });
  tf.MomentumOptimizer.prototype.applyGradients.call(optimizer, decayed as unknown as Parameters<tf.MomentumOptimizer["applyGradients"]>[0]);
  tf.dispose([value, grads, decayed]);
}

function bitsOf(model: tf.LayersModel): number[][] {
  return model.getWeights().map((w) => Array.from(new Uint32Array((w.dataSync() as Float32Array).slice().buffer)));
}

/** Two identical small MLPs on one batch. */
function pair() {
  const make = () => mlp({ inputShape: [12], hidden: [9, 7], classes: 4, seed: 5 });
  const x = tf.randomNormal([16, 12], 0, 1, "float32", 2);
  const y = tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 4), "int32");
  return { a: make(), b: make(), x, y };
}

describe("flat momentum step (LeakFreeMomentum.applyDecayedGradients)", () => {
  it("gives the per-variable form's weights and accumulations bit for bit, over steps, a checkpoint and an outside write", async () => {
    const { a, b, x, y } = pair();
    const flatOpt = momentum(0.05, 0.9);
    const stockOpt = new tf.MomentumOptimizer(0.05, 0.9);
    const stepFlat = () => trainStep({ model: a, optimizer: flatOpt, weightDecay: 5e-4, loss: sparseCrossEntropy }, x, y).loss.dispose();
    for (let i = 0; i < 4; i++) {
      stepFlat();
      perVariableStep(b, stockOpt, x, y, 5e-4);
    }
    expect(bitsOf(a)).toEqual(bitsOf(b));
    // The accumulations tfjs exposes (checkpoints read them) are the per-variable ones.
    const flatState = await flatOpt.getWeights();
    const stockState = await stockOpt.getWeights();
    expect(flatState.map((w) => w.name.replace(/^.*\//, ""))).toEqual(stockState.map((w) => w.name.replace(/^.*\//, "")));
    expect(flatState.slice(1).map((w) => Array.from(w.tensor.dataSync()))).toEqual(stockState.slice(1).map((w) => Array.from(w.tensor.dataSync())));
    // A restore (setWeights) and a weight written from outside are read afresh.
    await flatOpt.setWeights(stockState.map((w) => ({ name: w.name, tensor: w.tensor.clone() })));
    const outside = b.getWeights().map((w) => tf.mul(w, 0.5));
    a.setWeights(outside);
    b.setWeights(outside);
    for (let i = 0; i < 3; i++) {
      stepFlat();
      perVariableStep(b, stockOpt, x, y, 5e-4);
    }
    expect(bitsOf(a)).toEqual(bitsOf(b));
    tf.dispose([...flatState.filter((w) => w.name === "iter").map((w) => w.tensor), ...stockState.filter((w) => w.name === "iter").map((w) => w.tensor), ...outside]);
    flatOpt.dispose();
    stockOpt.dispose();
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();
  });

  it("takes the flat path only for its own optimiser (tfjs's instanceof accepts any optimiser)", () => {
    expect(isLeakFreeMomentum(momentum(0.1, 0.9))).toBe(true);
    const adam = tf.train.adam(0.01);
    expect(isLeakFreeMomentum(adam)).toBe(false);
    adam.dispose();
  });

  it("leaks no tensor across steps, and dispose frees its flat state", async () => {
    const { a, b, x, y } = pair();
    b.dispose();
    const opt = momentum(0.05, 0.9);
    const step = () => trainStep({ model: a, optimizer: opt, weightDecay: 5e-4, loss: sparseCrossEntropy }, x, y).loss.dispose();
    step();
    await expectNoTensorLeak(() => {
      for (let i = 0; i < 5; i++) step();
    });
    const before = tf.memory().numTensors;
    opt.dispose();
    // Freed: the flat weights and accumulation, the decay scalar, tfjs's m and c (no per-variable accumulations were made).
    expect(tf.memory().numTensors).toBeLessThanOrEqual(before - 4);
    tf.dispose([x, y]);
    a.dispose();
  });
});

describe("Reshape and Cast no-op shortcuts", () => {
  it("same values; a reshape to the same shape and a cast to the same dtype run no native op", () => {
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
    if (tf.getBackend() === "tensorflow") {
      const backend = tf.backend() as unknown as { executeSingleOutput: (...a: unknown[]) => unknown };
      const original = backend.executeSingleOutput;
      const ran: string[] = [];
      backend.executeSingleOutput = function (this: unknown, ...args: unknown[]) {
        ran.push(args[0] as string);
        return original.apply(this, args);
      };
      try {
        tf.tidy(() => {
          tf.reshape(x, [3, 4]);
          tf.cast(x, "float32");
          tf.mean(x);
        });
      } finally {
        backend.executeSingleOutput = original;
      }
      expect(ran).toEqual(["Mean"]); // tfjs-node's Mean casts first: no Cast op now either
    }
    tf.dispose([x, same, implicit, moved, cast]);
  });
});
