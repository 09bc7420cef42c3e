import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { factorRefs, fromMatrix, matrixParamNames, paramRef, readMatrix, toMatrix, writeMatrix } from "../src/core/params";
import { lowRankConv2d, lowRankDense } from "../src/models/lowrank-layers";

/** A model with one parameter of every view kind (and biases and a norm that have none). */
function zoo(): tf.LayersModel {
  const image = tf.input({ shape: [6, 6, 3] });
  const conv = tf.layers.conv2d({ filters: 4, kernelSize: [3, 2], name: "conv" }).apply(image) as tf.SymbolicTensor;
  const lrConv = lowRankConv2d({ filters: 5, kernelSize: 2, rank: 2, alpha: 4, name: "lrconv", seed: 1 }).apply(conv) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(lrConv) as tf.SymbolicTensor;
  const fc = tf.layers.dense({ units: 7, name: "fc" }).apply(flat) as tf.SymbolicTensor;
  const norm = tf.layers.layerNormalization({ name: "norm" }).apply(fc) as tf.SymbolicTensor;
  const lr = lowRankDense({ units: 3, rank: 2, name: "lr", seed: 2 }).apply(norm) as tf.SymbolicTensor;

  const tokens = tf.input({ shape: [5] });
  const embed = tf.layers.embedding({ inputDim: 11, outputDim: 4, name: "embed" }).apply(tokens) as tf.SymbolicTensor;
  const seq = tf.layers.conv1d({ filters: 6, kernelSize: 3, name: "seq" }).apply(embed) as tf.SymbolicTensor;
  return tf.model({ inputs: [image, tokens], outputs: [lr, seq], name: "zoo" });
}

const bits = (t: tf.Tensor): number[] => Array.from(t.dataSync());

describe("parameter views", () => {
  const model = zoo();

  it("lists every matrix parameter and no bias or norm", () => {
    expect(matrixParamNames(model).sort()).toEqual([
      "conv/kernel",
      "embed/embeddings",
      "fc/kernel",
      "lr/lora_a",
      "lr/lora_b",
      "lrconv/lora_a",
      "lrconv/lora_b",
      "seq/kernel",
    ]);
  });

  it("gives each kind its [out, in] shape", () => {
    const shapes = Object.fromEntries(matrixParamNames(model).map((n) => [n, [paramRef(model, n).kind, paramRef(model, n).matrixShape]]));
    expect(shapes).toEqual({
      "conv/kernel": ["conv2d", [4, 3 * 2 * 3]],
      "lrconv/lora_a": ["factor", [2, 2 * 2 * 4]],
      "lrconv/lora_b": ["factor", [5, 2]],
      "fc/kernel": ["dense", [7, 60]],
      "lr/lora_a": ["factor", [2, 7]],
      "lr/lora_b": ["factor", [3, 2]],
      "embed/embeddings": ["embedding", [11, 4]],
      "seq/kernel": ["conv1d", [6, 3 * 4]],
    });
  });

  it("round-trips every kind bit-exactly (weights and arbitrary tensors of the stored shape)", () => {
    for (const name of matrixParamNames(model)) {
      const ref = paramRef(model, name);
      const value = tf.randomNormal(ref.tfShape, 0, 1, "float32", 7);
      const matrix = toMatrix(ref, value);
      const back = fromMatrix(ref, matrix);
      expect(back.shape, name).toEqual(ref.tfShape);
      expect(bits(back), name).toEqual(bits(value));
      const weight = readMatrix(ref);
      const before = bits(ref.variable.read());
      writeMatrix(ref, weight);
      expect(bits(ref.variable.read()), name).toEqual(before);
      tf.dispose([value, matrix, back, weight]);
    }
  });

  it("views a dense kernel as its transpose", () => {
    const ref = paramRef(model, "fc/kernel");
    const kernel = ref.variable.read().arraySync() as number[][]; // [in, out]
    const view = readMatrix(ref);
    const rows = view.arraySync();
    expect(rows[5][37]).toBe(kernel[37][5]);
    expect(rows[6][59]).toBe(kernel[59][6]);
    view.dispose();
  });

  it("puts cout in the rows of a conv view, with (kh, kw, cin) flattened in that order", () => {
    const ref = paramRef(model, "conv/kernel");
    const kernel = ref.variable.read().arraySync() as number[][][][]; // [kh=3, kw=2, cin=3, cout=4]
    const view = readMatrix(ref);
    const rows = view.arraySync();
    for (const [y, x, ci, c] of [[0, 0, 0, 0], [2, 1, 2, 3], [1, 0, 2, 1], [2, 0, 1, 2]]) {
      expect(rows[c][(y * 2 + x) * 3 + ci]).toBe(kernel[y][x][ci][c]);
    }
    const seq = paramRef(model, "seq/kernel");
    const kernel1d = seq.variable.read().arraySync() as number[][][]; // [k=3, cin=4, cout=6]
    const view1d = readMatrix(seq);
    expect(view1d.arraySync()[5][2 * 4 + 3]).toBe(kernel1d[2][3][5]);
    tf.dispose([view, view1d]);
  });

  it("views low-rank factors so that the layer's [out, in] weight is scale·B·A", () => {
    const { b, a } = factorRefs(model, "lr");
    const sub = tf.sequential({ layers: [lowRankDense({ units: 3, rank: 2, alpha: 6, inputShape: [7], useBias: false, seed: 3 })] });
    const refs = factorRefs(sub, sub.layers[0].name);
    expect([b.matrixShape, a.matrixShape]).toEqual([[3, 2], [2, 7]]);
    const gap = tf.tidy(() => {
      const composed = tf.mul(tf.matMul(readMatrix(refs.b), readMatrix(refs.a)), 6 / 2); // [out, r]·[r, in] -> [out, in]
      const kernel = sub.predict(tf.eye(7)) as tf.Tensor; // identity input: the [in, out] kernel
      return tf.max(tf.abs(tf.sub(composed, tf.transpose(kernel)))).dataSync()[0];
    });
    expect(gap).toBeLessThan(1e-6);
  });

  it("changes the model's output exactly as writing the equivalent kernel would", () => {
    const build = () =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [5, 5, 2], filters: 3, kernelSize: 2, name: "c" }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 4, name: "d" }),
        ],
      });
    const viaView = build();
    const viaKernel = build();
    viaKernel.setWeights(viaView.getWeights());
    const x = tf.randomNormal([2, 5, 5, 2], 0, 1, "float32", 3);

    const convMatrix = tf.randomNormal([3, 2 * 2 * 2], 0, 1, "float32", 4) as tf.Tensor2D;
    const denseMatrix = tf.randomNormal([4, 48], 0, 1, "float32", 5) as tf.Tensor2D;
    writeMatrix(paramRef(viaView, "c/kernel"), convMatrix);
    writeMatrix(paramRef(viaView, "d/kernel"), denseMatrix);

    // The equivalent kernels, built element by element from the definition of the views.
    const cm = convMatrix.arraySync();
    const convKernel = tf.tensor4d(
      [0, 1].map((y) => [0, 1].map((xx) => [0, 1].map((ci) => [0, 1, 2].map((c) => cm[c][(y * 2 + xx) * 2 + ci])))),
    );
    const dm = denseMatrix.arraySync();
    const denseKernel = tf.tensor2d(Array.from({ length: 48 }, (_, i) => [0, 1, 2, 3].map((o) => dm[o][i])));
    viaKernel.layers[0].setWeights([convKernel, viaKernel.layers[0].getWeights()[1]]);
    viaKernel.layers[2].setWeights([denseKernel, viaKernel.layers[2].getWeights()[1]]);

    const a = viaView.predict(x) as tf.Tensor;
    const b = viaKernel.predict(x) as tf.Tensor;
    expect(bits(a)).toEqual(bits(b));
    tf.dispose([x, convMatrix, denseMatrix, convKernel, denseKernel, a, b]);
  });

  it("keeps the variable and the optimiser state when writing", async () => {
    const net = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2, name: "w" })] });
    net.compile({ optimizer: tf.train.adam(0.01), loss: "meanSquaredError" });
    const x = tf.ones([4, 3]);
    const y = tf.zeros([4, 2]);
    await net.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
    const ref = paramRef(net, "w/kernel");
    const slots = (await net.optimizer.getWeights()).length;
    const replacement = tf.fill([2, 3], 0.5) as tf.Tensor2D;
    writeMatrix(ref, replacement);
    expect(net.getLayer("w").weights[0]).toBe(ref.variable);
    expect(bits(net.getLayer("w").getWeights()[0])).toEqual(new Array(6).fill(0.5));
    await net.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
    expect((await net.optimizer.getWeights()).length).toBe(slots);
    tf.dispose([x, y, replacement]);
  });

  it("finds the layers of a nested model", () => {
    const inner = tf.sequential({ name: "inner", layers: [tf.layers.dense({ inputShape: [4], units: 3, name: "inner_fc" })] });
    const outer = tf.sequential({ layers: [inner, tf.layers.dense({ units: 2, name: "outer_fc" })] });
    expect(matrixParamNames(outer)).toEqual(["inner_fc/kernel", "outer_fc/kernel"]);
    expect(paramRef(outer, "inner_fc/kernel").matrixShape).toEqual([3, 4]);
  });

  it("rejects a wrong name with the list of candidates", () => {
    expect(() => paramRef(model, "fc/kernal")).toThrow(/no parameter named 'fc\/kernal'.*conv\/kernel, .*fc\/kernel.*seq\/kernel/);
  });

  it("rejects a bias or a norm parameter as not a matrix", () => {
    expect(() => paramRef(model, "fc/bias")).toThrow(/'fc\/bias' is a 1-D vector .*not a matrix.*fc\/kernel/);
    expect(() => paramRef(model, "norm/gamma")).toThrow(/not a matrix/);
    expect(() => paramRef(model, "lr/bias")).toThrow(/not a matrix/);
  });

  it("rejects a layer kind without a view", () => {
    const net = tf.sequential({ layers: [tf.layers.depthwiseConv2d({ inputShape: [4, 4, 2], kernelSize: 2, name: "dw" })] });
    expect(() => paramRef(net, "dw/depthwise_kernel")).toThrow(/DepthwiseConv2D layer, which has no matrix view/);
  });

  it("rejects a write of the wrong shape or dtype", () => {
    const ref = paramRef(model, "fc/kernel");
    const wrong = tf.zeros([7, 59]) as tf.Tensor2D;
    const transposed = tf.zeros([60, 7]) as tf.Tensor2D;
    const ints = tf.zeros([7, 60], "int32") as tf.Tensor2D;
    expect(() => writeMatrix(ref, wrong)).toThrow(/viewed as a \[7,60\] matrix .*got \[7,59\]/);
    expect(() => writeMatrix(ref, transposed)).toThrow(/transposed\?/);
    expect(() => writeMatrix(ref, ints)).toThrow(/dtype int32/);
    expect(() => toMatrix(ref, wrong)).toThrow(/expected the stored shape \[60,7\]/);
    tf.dispose([wrong, transposed, ints]);
  });

  it("leaks no tensor across read/write loops", () => {
    const refs = matrixParamNames(model).map((n) => paramRef(model, n));
    const snapshot = (): void => {
      for (const ref of refs) {
        const m = readMatrix(ref);
        writeMatrix(ref, m);
        m.dispose();
      }
    };
    snapshot();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) snapshot();
    expect(tf.memory().numTensors).toBe(before);
  });
});
