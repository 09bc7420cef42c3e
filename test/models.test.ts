import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { gatherImages, readImageArrays, toImageSplit } from "../src/data/images";
import { LayerNorm, MultiHeadSelfAttention } from "../src/models/vit-layers";
import { BENCH_PAIR, benchSource, benchTarget, cnn, loadModel, mlp, saveModel, vit, VitOptions } from "../src/models/zoo";

const SMALL_VIT: VitOptions = { inputShape: [28, 28, 1], patch: 7, dim: 32, depth: 2, heads: 4, classes: 10 };

const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

type Builder = (seed?: number) => tf.LayersModel;
const BUILDERS: Record<string, Builder> = {
  cnn: (seed) => cnn({ inputShape: [28, 28, 1], classes: 10, seed }),
  mlp: (seed) => mlp({ inputShape: [28, 28, 1], hidden: [64, 32], classes: 10, seed }),
  vit: (seed) => vit({ ...SMALL_VIT, seed }),
};

function weightsByName(model: tf.LayersModel): Map<string, tf.LayerVariable> {
  return new Map(model.weights.map((w) => [w.originalName, w]));
}

function sameValues(a: tf.Tensor, b: tf.Tensor): boolean {
  return tf.tidy(() => tf.equal(a, b).all().dataSync()[0] === 1);
}

function predictArray(model: tf.LayersModel, x: tf.Tensor): number[] {
  return tf.tidy(() => Array.from((model.predict(x) as tf.Tensor).dataSync()));
}

describe("shapes and names", () => {
  it("each model maps [n, 28, 28, 1] to [n, classes] logits", () => {
    const x = tf.randomUniform([3, 28, 28, 1], 0, 1, "float32", 1);
    for (const build of Object.values(BUILDERS)) {
      const model = build(1);
      const y = model.predict(x) as tf.Tensor;
      expect(y.shape).toEqual([3, 10]);
      y.dispose();
      model.dispose();
    }
    const wide = cnn({ inputShape: [32, 32, 3], classes: 5, filters: [8, 16], hidden: 24, seed: 1 });
    const rgb = tf.zeros([2, 32, 32, 3]);
    const out = wide.predict(rgb) as tf.Tensor;
    expect(out.shape).toEqual([2, 5]);
    expect(weightsByName(wide).get("fc1/kernel")!.shape).toEqual([8 * 8 * 16, 24]);
    tf.dispose([x, rgb, out]);
    wide.dispose();
  });

  it("the CNN and MLP carry the documented layer and weight names", () => {
    const source = benchSource(1);
    const target = benchTarget(1);
    expect(source.layers.map((l) => l.name)).toEqual(["input", "conv1", "pool1", "conv2", "pool2", "flatten", "fc1", "classifier"]);
    expect(target.layers.map((l) => l.name)).toEqual(["input", "flatten", "fc1", "fc2", "classifier"]);
    const shapes = (m: tf.LayersModel): Record<string, tf.Shape> => Object.fromEntries(m.weights.map((w) => [w.originalName, w.shape]));
    expect(shapes(source)).toEqual({
      "conv1/kernel": [3, 3, 1, 32], "conv1/bias": [32],
      "conv2/kernel": [3, 3, 32, 64], "conv2/bias": [64],
      "fc1/kernel": [7 * 7 * 64, 128], "fc1/bias": [128],
      "classifier/kernel": [128, 10], "classifier/bias": [10],
    });
    expect(shapes(target)).toEqual({
      "fc1/kernel": [784, 256], "fc1/bias": [256],
      "fc2/kernel": [256, 128], "fc2/bias": [128],
      "classifier/kernel": [128, 10], "classifier/bias": [10],
    });
    // The bench pair: [10, 128] as [out, in] -> [128, 256] as [out, in].
    expect(weightsByName(source).get(BENCH_PAIR.source)!.shape).toEqual([128, 10]);
    expect(weightsByName(target).get(BENCH_PAIR.target)!.shape).toEqual([256, 128]);
    source.dispose();
    target.dispose();
  });

  it("the ViT carries the documented weight names, attention matrices as [dim, dim]", () => {
    const model = vit({ ...SMALL_VIT, mlpDim: 48, seed: 1 });
    const names = model.weights.map((w) => w.originalName);
    const block = (i: number): string[] => [
      `block${i}_norm1/gamma`, `block${i}_norm1/beta`,
      ...["q", "k", "v", "out"].flatMap((p) => [`block${i}_attn/${p}_kernel`, `block${i}_attn/${p}_bias`]),
      `block${i}_norm2/gamma`, `block${i}_norm2/beta`,
      `block${i}_mlp1/kernel`, `block${i}_mlp1/bias`, `block${i}_mlp2/kernel`, `block${i}_mlp2/bias`,
    ];
    expect(names).toEqual([
      "patch_embed/kernel", "patch_embed/bias", "pos_embed/embeddings", ...block(0), ...block(1),
      "final_norm/gamma", "final_norm/beta", "classifier/kernel", "classifier/bias",
    ]);
    const byName = weightsByName(model);
    expect(byName.get("patch_embed/kernel")!.shape).toEqual([7, 7, 1, 32]);
    expect(byName.get("pos_embed/embeddings")!.shape).toEqual([16, 32]);
    expect(byName.get("block1_attn/v_kernel")!.shape).toEqual([32, 32]);
    expect(byName.get("block0_mlp1/kernel")!.shape).toEqual([32, 48]);
    expect(byName.get("block0_mlp2/kernel")!.shape).toEqual([48, 32]);
    model.dispose();
  });

  it("bad options are errors that say what to change", () => {
    expect(() => vit({ ...SMALL_VIT, patch: 5 })).toThrow(/patch 5 must divide/);
    expect(() => vit({ ...SMALL_VIT, heads: 5 })).toThrow(/dim 32 must be divisible by heads 5/);
    expect(() => mlp({ inputShape: [784], hidden: [0], classes: 10 })).toThrow(/mlp hidden\[0\] must be a positive integer/);
    expect(() => cnn({ inputShape: [2, 2, 1], classes: 10 })).toThrow(/at least 4/);
    expect(() => cnn({ inputShape: [28, 28, 1], classes: 10, seed: 0.5 })).toThrow(/seed must be an integer/);
  });
});

describe("seeds and variable names", () => {
  it("the same seed gives identical weights, another seed different kernels", () => {
    for (const [kind, build] of Object.entries(BUILDERS)) {
      const a = build(11);
      const b = build(11);
      const c = build(12);
      const wb = weightsByName(b);
      const wc = weightsByName(c);
      for (const w of a.weights) {
        expect(sameValues(w.read(), wb.get(w.originalName)!.read()), `${kind} ${w.originalName}`).toBe(true);
        const isKernel = /kernel|embeddings/.test(w.originalName);
        if (isKernel) expect(sameValues(w.read(), wc.get(w.originalName)!.read()), `${kind} ${w.originalName}`).toBe(false);
      }
      for (const m of [a, b, c]) m.dispose();
    }
  });

  it("two kernels of one model get different initial values (per-weight seeds)", () => {
    const model = vit({ ...SMALL_VIT, seed: 3 });
    const byName = weightsByName(model);
    expect(sameValues(byName.get("block0_attn/q_kernel")!.read(), byName.get("block0_attn/k_kernel")!.read())).toBe(false);
    model.dispose();
  });

  it("two models of the same kind share weight addresses but never engine variable names", () => {
    for (const build of Object.values(BUILDERS)) {
      const first = build(1);
      const second = build(1);
      expect(second.weights.map((w) => w.originalName)).toEqual(first.weights.map((w) => w.originalName));
      const engineNames = [...first.weights, ...second.weights].map((w) => w.name);
      expect(new Set(engineNames).size).toBe(engineNames.length);
      first.dispose();
      second.dispose();
    }
  });
});

describe("custom layers", () => {
  it("LayerNorm matches tfjs's layerNormalization in value and input gradient", () => {
    const x = tf.randomNormal([2, 3, 5], 0, 2, "float32", 4);
    const gamma = tf.randomNormal([5], 1, 0.3, "float32", 5);
    const beta = tf.randomNormal([5], 0, 0.3, "float32", 6);
    const ours = new LayerNorm({ name: "ln_check", epsilon: 1e-6 });
    const theirs = tf.layers.layerNormalization({ name: "ln_reference", epsilon: 1e-6 });
    for (const layer of [ours, theirs]) {
      layer.apply(x);
      layer.setWeights([gamma, beta]);
    }
    const lossOf = (layer: tf.layers.Layer) => (input: tf.Tensor) => tf.sum(tf.square(layer.apply(input) as tf.Tensor));
    const [valueOurs, valueTheirs] = [ours, theirs].map((layer) => tf.tidy(() => Array.from((layer.apply(x) as tf.Tensor).dataSync())));
    const [gradOurs, gradTheirs] = [ours, theirs].map((layer) => tf.tidy(() => Array.from(tf.grad(lossOf(layer))(x).dataSync())));
    valueOurs.forEach((v, i) => expect(v).toBeCloseTo(valueTheirs[i], 4));
    gradOurs.forEach((g, i) => expect(g).toBeCloseTo(gradTheirs[i], 3));
    expect(ours.weights.map((w) => w.originalName)).toEqual(["ln_check/gamma", "ln_check/beta"]);
    tf.dispose([x, gamma, beta]);
    ours.dispose();
    theirs.dispose();
  });

  it("MultiHeadSelfAttention matches a plain-JS computation with contiguous heads", () => {
    const [tokens, dim, heads] = [3, 4, 2];
    const headWidth = dim / heads;
    const input = tf.input({ shape: [tokens, dim] });
    const layer = new MultiHeadSelfAttention({ name: "attn_check", heads, seed: 5 });
    const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
    const w = Object.fromEntries(model.weights.map((v) => [v.originalName.split("/")[1], Array.from(v.read().dataSync())]));
    // Non-zero biases so their placement is checked too.
    for (const p of ["q", "k", "v", "out"]) {
      const bias = model.weights.find((v) => v.originalName === `attn_check/${p}_bias`)!;
      w[`${p}_bias`] = [0.1, -0.2, 0.3, -0.4].map((b, i) => b * (p.length + i));
      const value = tf.tensor1d(w[`${p}_bias`]);
      bias.write(value);
      value.dispose();
    }
    const x = [0.5, -1, 2, 0.25, 1.5, 0.3, -0.7, 1, -0.2, 0.9, 0.4, -1.3];
    const project = (kernel: number[], bias: number[], rows: number[]): number[] =>
      Array.from({ length: tokens * dim }, (_, idx) => {
        const [t, o] = [Math.floor(idx / dim), idx % dim];
        let sum = bias[o];
        for (let i = 0; i < dim; i++) sum += rows[t * dim + i] * kernel[i * dim + o];
        return sum;
      });
    const q = project(w.q_kernel, w.q_bias, x);
    const k = project(w.k_kernel, w.k_bias, x);
    const v = project(w.v_kernel, w.v_bias, x);
    const merged = new Array<number>(tokens * dim).fill(0);
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < tokens; t++) {
        const scores = Array.from({ length: tokens }, (_, s) => {
          let dot = 0;
          for (let j = 0; j < headWidth; j++) dot += q[t * dim + h * headWidth + j] * k[s * dim + h * headWidth + j];
          return dot / Math.sqrt(headWidth);
        });
        const top = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - top));
        const total = exps.reduce((a, b) => a + b, 0);
        for (let j = 0; j < headWidth; j++) {
          merged[t * dim + h * headWidth + j] = exps.reduce((acc, e, s) => acc + (e / total) * v[s * dim + h * headWidth + j], 0);
        }
      }
    }
    const expected = project(w.out_kernel, w.out_bias, merged);
    const xs = tf.tensor3d(x, [1, tokens, dim]);
    const actual = predictArray(model, xs);
    actual.forEach((value, i) => expect(value).toBeCloseTo(expected[i], 5));
    xs.dispose();
    model.dispose();
  });
});

describe("training on real MNIST", () => {
  let x: tf.Tensor4D;
  let oneHot: tf.Tensor2D;

  beforeAll(() => {
    const mnist = readImageArrays("mnist");
    const split = toImageSplit(gatherImages(mnist.train, Array.from({ length: 512 }, (_, i) => i)));
    x = split.x;
    oneHot = tf.oneHot(split.y, 10) as tf.Tensor2D;
    split.y.dispose();
  });

  const loss = (model: tf.LayersModel, xs: tf.Tensor, ys: tf.Tensor): tf.Scalar =>
    tf.losses.softmaxCrossEntropy(ys, model.apply(xs) as tf.Tensor) as tf.Scalar;

  for (const kind of Object.keys(BUILDERS)) {
    it(`${kind}: 16 Adam steps on 512 images lower the loss by at least 15%`, () => {
      const model = BUILDERS[kind](1);
      const optimizer = tf.train.adam(1e-3);
      const fullLoss = (): number => tf.tidy(() => loss(model, x, oneHot).dataSync()[0]);
      const before = fullLoss();
      for (let step = 0; step < 16; step++) {
        const start = (step % 8) * 64;
        tf.tidy(() => {
          const xb = x.slice([start, 0, 0, 0], [64, 28, 28, 1]); // [64, 28, 28, 1]
          const yb = oneHot.slice([start, 0], [64, 10]); // [64, 10]
          optimizer.minimize(() => loss(model, xb, yb));
        });
      }
      const after = fullLoss();
      expect(Number.isFinite(after)).toBe(true);
      expect(after).toBeLessThan(0.85 * before);
      optimizer.dispose();
      model.dispose();
    });
  }
});

describe("save, load and memory", () => {
  it("a saved model loads with the same weights and the same outputs (CNN, MLP, ViT)", async () => {
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, "float32", 2);
    for (const [kind, build] of Object.entries(BUILDERS)) {
      const model = build(21);
      const dir = tempDir(`mergenet-${kind}-`);
      await saveModel(model, dir);
      expect(fs.readdirSync(dir).sort()).toEqual(["model.json", "weights.bin"]);
      const loaded = await loadModel(dir);
      expect(loaded.weights.map((w) => w.originalName)).toEqual(model.weights.map((w) => w.originalName));
      expect(predictArray(loaded, x)).toEqual(predictArray(model, x));
      model.dispose();
      loaded.dispose();
    }
    x.dispose();
  });

  it("loading from a folder without a model is a clear error", async () => {
    await expect(loadModel(tempDir("mergenet-empty-"))).rejects.toThrow(/no model\.json in .*saveModel/);
  });

  it("repeated predict calls leave the tensor count unchanged", () => {
    const x = tf.randomUniform([2, 28, 28, 1], 0, 1, "float32", 3);
    for (const build of Object.values(BUILDERS)) {
      const model = build(1);
      predictArray(model, x);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 5; i++) predictArray(model, x);
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    }
    x.dispose();
  });
});
