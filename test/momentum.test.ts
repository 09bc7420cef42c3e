// The flat SGD with momentum (src/core/momentum.ts) against tfjs's per-variable
// tf.train.momentum with weight decay added to the gradients, as trainStep did before:
// the same weights to the last bit, a state tfjs's optimiser can read, and no leaks.
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { FlatMomentum, isFlatMomentum, momentum } from "../src/core/momentum";
import { fastSparseCrossEntropy, trainStep } from "../src/core/step";
import { sparseCrossEntropy } from "../src/core/losses";
import { expectNoTensorLeak } from "./helpers/leaks";

let counter = 0;
/** A small MLP (kernels and biases: six variables), the same weights for equal seeds. */
function mlp(seed: number): tf.LayersModel {
  counter += 1;
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed * 10 + k });
  return tf.sequential({
    name: `momentum_test_${counter}`,
    layers: [
      tf.layers.dense({ inputShape: [12], units: 16, activation: "relu", kernelInitializer: init(1), biasInitializer: tf.initializers.randomNormal({ seed: seed * 10 + 4 }) }),
      tf.layers.dense({ units: 8, activation: "relu", kernelInitializer: init(2) }),
      tf.layers.dense({ units: 4, kernelInitializer: init(3) }),
    ],
  });
}

/** The old path: tf.train.momentum per variable, decay added to each gradient first. */
function referenceStep(model: tf.LayersModel, opt: tf.Optimizer, x: tf.Tensor, y: tf.Tensor, wd: number): void {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => fastSparseCrossEntropy(model.apply(x, { training: true }) as tf.Tensor, y), variables);
  const decayed = tf.tidy(() => Object.fromEntries(variables.map((v) => [v.name, tf.add(grads[v.name], tf.mul(v, wd))])));
  opt.applyGradients(decayed);
  tf.dispose([value, grads, decayed]);
}

const weightsOf = (model: tf.LayersModel): Float32Array[] => model.getWeights().map((w) => w.dataSync() as Float32Array);
const bitsEqual = (a: Float32Array[], b: Float32Array[]): boolean =>
  a.length === b.length && a.every((x, i) => x.length === b[i].length && Buffer.from(x.buffer).equals(Buffer.from(b[i].buffer)));

function batch(step: number): { x: tf.Tensor; y: tf.Tensor } {
  return { x: tf.randomNormal([32, 12], 0, 1, "float32", 100 + step), y: tf.randomUniformInt([32], 0, 4, 200 + step) };
}

describe("FlatMomentum: SGD with momentum and weight decay on one flat vector per model", () => {
  it("gives tf.train.momentum's weights to the last bit, with and without decay, across an outside assign", () => {
    for (const wd of [5e-4, 0]) {
      const flatModel = mlp(1);
      const refModel = mlp(1);
      expect(bitsEqual(weightsOf(flatModel), weightsOf(refModel))).toBe(true);
      const flatOpt = momentum(0.05, 0.9);
      const refOpt = tf.train.momentum(0.05, 0.9);
      for (let step = 0; step < 12; step++) {
        const { x, y } = batch(step);
        const r = trainStep({ model: flatModel, optimizer: flatOpt, weightDecay: wd, loss: sparseCrossEntropy }, x, y);
        r.loss.dispose();
        referenceStep(refModel, refOpt, x, y, wd);
        if (step === 5) {
          // A write-back from outside (MergeNet's): the next step must read the new value.
          for (const m of [flatModel, refModel]) {
            const k = m.layers[1].getWeights()[0];
            m.layers[1].setWeights([tf.mul(k, 0.5), m.layers[1].getWeights()[1]]);
          }
        }
        tf.dispose([x, y]);
      }
      const a = weightsOf(flatModel);
      expect(bitsEqual(a, weightsOf(refModel))).toBe(true);
      expect(a[0].some((v, i) => v !== weightsOf(mlp(1))[0][i])).toBe(true); // it trained
      flatOpt.dispose();
      refOpt.dispose();
    }
  });

  it("saves its state in tfjs's layout: a checkpoint moves between the two optimisers and resumes exactly", async () => {
    const a = mlp(2);
    const b = mlp(2);
    const c = mlp(2);
    const optA = momentum(0.05, 0.9);
    const optB = momentum(0.05, 0.9);
    for (let step = 0; step < 3; step++) {
      const { x, y } = batch(step);
      for (const [m, o] of [[a, optA], [b, optB]] as const) trainStep({ model: m, optimizer: o, weightDecay: 5e-4, loss: sparseCrossEntropy }, x, y).loss.dispose();
      tf.dispose([x, y]);
    }
    const saved = await optB.getWeights();
    expect(saved.map((s) => s.name)).toEqual(["iter", ...b.trainableWeights.map((w) => `${(w.read() as tf.Variable).name}/momentum`)]);
    expect(saved.slice(1).map((s) => s.tensor.shape)).toEqual(b.trainableWeights.map((w) => w.shape));
    // tfjs's optimiser reads it, and a fresh FlatMomentum reads tfjs's back.
    const tfjsOpt = tf.train.momentum(0.05, 0.9);
    await tfjsOpt.setWeights(saved.map((s) => ({ name: s.name, tensor: s.tensor.clone() })));
    const back = momentum(0.05, 0.9);
    await back.setWeights(await tfjsOpt.getWeights());
    c.setWeights(b.getWeights());
    for (let step = 3; step < 6; step++) {
      const { x, y } = batch(step);
      trainStep({ model: a, optimizer: optA, weightDecay: 5e-4, loss: sparseCrossEntropy }, x, y).loss.dispose();
      trainStep({ model: c, optimizer: back, weightDecay: 5e-4, loss: sparseCrossEntropy }, x, y).loss.dispose();
      tf.dispose([x, y]);
    }
    expect(bitsEqual(weightsOf(a), weightsOf(c))).toBe(true);
    expect(back.iterations).toBe(optA.iterations);
    tf.dispose(saved.map((s) => s.tensor));
    for (const o of [optA, optB, tfjsOpt, back]) o.dispose();
  });

  it("refuses another model's variables or state with a message that says what to do", async () => {
    const a = mlp(3);
    const b = mlp(4);
    const opt = momentum(0.05, 0.9);
    const { x, y } = batch(0);
    trainStep({ model: a, optimizer: opt, weightDecay: 0, loss: sparseCrossEntropy }, x, y).loss.dispose();
    expect(() => trainStep({ model: b, optimizer: opt, weightDecay: 0, loss: sparseCrossEntropy }, x, y)).toThrow(/build one optimiser per model/);
    const wrong = [{ name: "iter", tensor: tf.scalar(3) }, { name: "w/momentum", tensor: tf.zeros([7]) }];
    const fresh = momentum(0.05, 0.9);
    await fresh.setWeights(wrong);
    expect(() => trainStep({ model: a, optimizer: fresh, weightDecay: 0, loss: sparseCrossEntropy }, x, y)).toThrow(/belongs to another model/);
    expect(() => new FlatMomentum(0, 0.9)).toThrow(/learning rate/);
    expect(() => new FlatMomentum(0.1, Number.NaN)).toThrow(/momentum/);
    // A state that does not fit changes nothing: the optimiser goes on as before.
    const good = momentum(0.05, 0.9);
    trainStep({ model: a, optimizer: good, weightDecay: 0, loss: sparseCrossEntropy }, x, y).loss.dispose();
    const state = (await good.getWeights()).map((w) => w.tensor.dataSync().slice());
    await expect(good.setWeights(wrong)).rejects.toThrow(/belongs to another model/);
    expect((await good.getWeights()).map((w) => w.tensor.dataSync().slice())).toEqual(state);
    tf.dispose([x, y, ...wrong.map((w) => w.tensor)]);
    opt.dispose();
    fresh.dispose();
    good.dispose();
  });

  it("owns the state it hands out, as tfjs's optimisers do: saving it each epoch (checkpoints) leaks nothing", async () => {
    const model = mlp(6);
    const opt = momentum(0.05, 0.9);
    const { x, y } = batch(0);
    await expectNoTensorLeak(async () => {
      trainStep({ model, optimizer: opt, weightDecay: 5e-4, loss: sparseCrossEntropy }, x, y).loss.dispose();
      const saved = await opt.getWeights();
      await opt.setWeights(saved); // its own state back, as a resume from a fresh capture does
      saved[0].tensor.dispose(); // the step count is made anew on each call (tfjs too); the rest is the optimiser's
    }, { warmup: 2, repeats: 4 });
    tf.dispose([x, y]);
    opt.dispose();
  });

  it("leaks no tensor across steps, and dispose frees everything it made", async () => {
    const model = mlp(5);
    const opt = momentum(0.05, 0.9);
    const { x, y } = batch(0);
    await expectNoTensorLeak(() => {
      trainStep({ model, optimizer: opt, weightDecay: 5e-4, loss: sparseCrossEntropy }, x, y).loss.dispose();
    }, { warmup: 2, repeats: 4 });
    const before = tf.memory().numTensors;
    const other = momentum(0.1, 0.9);
    const init = tf.ones([3]);
    const v = tf.variable(init);
    const g = tf.onesLike(v);
    other.applyGradients({ [v.name]: g });
    other.dispose();
    tf.dispose([g, v, init]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y]);
    opt.dispose();
  });
});

describe("isFlatMomentum", () => {
  it("tells FlatMomentum from tfjs's optimisers (which `instanceof` cannot: tf.Optimizer's Symbol.hasInstance accepts any optimiser)", () => {
    const flat = momentum(0.1, 0.9);
    const others = [tf.train.momentum(0.1, 0.9), tf.train.sgd(0.1), tf.train.adam(0.01)];
    expect(isFlatMomentum(flat)).toBe(true);
    for (const o of others) expect(isFlatMomentum(o)).toBe(false);
    expect(others[1] instanceof FlatMomentum).toBe(true); // why the helper exists; if this fails, tfjs changed
    flat.dispose();
    for (const o of others) o.dispose();
  });
});
