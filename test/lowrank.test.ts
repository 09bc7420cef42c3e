import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { chooseSvdMethod, svdMerge, svdSplit, truncatedSvd } from "../src/core/lowrank";
import { LowRankConv2D, LowRankDense, lowRankConv2d, lowRankDense } from "../src/models/lowrank-layers";

const maxAbs = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
const frobenius = (a: tf.Tensor): number => tf.tidy(() => tf.norm(a).dataSync()[0]);

/** W = U diag(sigma) Vᵀ with random orthonormal U [m, k], V [n, k] (k = sigma.length). */
function withSpectrum(m: number, n: number, sigma: number[], seed: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [u] = tf.linalg.qr(tf.randomNormal([m, sigma.length], 0, 1, "float32", seed) as tf.Tensor2D);
    const [v] = tf.linalg.qr(tf.randomNormal([n, sigma.length], 0, 1, "float32", seed + 1) as tf.Tensor2D);
    return tf.matMul(tf.mul(u, tf.tensor1d(sigma)), v, false, true) as tf.Tensor2D; // [m, k]·[k, n]
  });
}

const reconstruct = (u: tf.Tensor2D, s: tf.Tensor1D, v: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => tf.matMul(tf.mul(u, s), v, false, true) as tf.Tensor2D); // [m, r]·[r, n]

describe("truncatedSvd", () => {
  const sigma = [9, 7, 5, 4, 3, 2, 1.5, 1, 0.5, 0.25];
  const w = withSpectrum(40, 30, sigma, 11);

  it("exact: recovers the spectrum, and the rank-r error is sqrt(sum of dropped sigma^2)", () => {
    for (const rank of [1, 3, 6, 10]) {
      const { u, s, v } = truncatedSvd(w, rank, { method: "exact" });
      expect(u.shape).toEqual([40, rank]);
      expect(s.shape).toEqual([rank]);
      expect(v.shape).toEqual([30, rank]);
      Array.from(s.dataSync()).forEach((value, k) => expect(value).toBeCloseTo(sigma[k], 4));
      const expected = Math.sqrt(sigma.slice(rank).reduce((acc, x) => acc + x * x, 0));
      const approx = reconstruct(u, s, v);
      const error = frobenius(tf.sub(w, approx));
      expect(Math.abs(error - expected)).toBeLessThan(1e-4 * sigma[0]);
      tf.dispose([u, s, v, approx]);
    }
  });

  it("returns orthonormal singular vectors with the largest-|u| component positive", () => {
    for (const method of ["exact", "randomized"] as const) {
      const { u, s, v } = truncatedSvd(w, 5, { method });
      const eye = tf.eye(5);
      expect(maxAbs(tf.matMul(u, u, true, false), eye), method).toBeLessThan(1e-5);
      expect(maxAbs(tf.matMul(v, v, true, false), eye), method).toBeLessThan(1e-5);
      const columns = tf.transpose(u).arraySync();
      for (const column of columns) {
        const largest = column.reduce((best, x) => (Math.abs(x) > Math.abs(best) ? x : best), 0);
        expect(largest).toBeGreaterThan(0);
      }
      tf.dispose([u, s, v, eye]);
    }
  });

  it("randomized agrees with exact on a decaying spectrum (singular values to 1e-4 relative, vectors to 1e-3)", () => {
    const decaying = Array.from({ length: 60 }, (_, k) => 10 * Math.pow(0.85, k));
    const big = withSpectrum(160, 120, decaying, 21);
    expect(chooseSvdMethod([160, 120], 8)).toBe("randomized");
    const exact = truncatedSvd(big, 8, { method: "exact" });
    const randomized = truncatedSvd(big, 8); // auto -> randomized at this size
    const se = exact.s.dataSync();
    const sr = randomized.s.dataSync();
    se.forEach((value, k) => expect(Math.abs(sr[k] - value) / value).toBeLessThan(1e-4));
    expect(maxAbs(exact.u, randomized.u)).toBeLessThan(1e-3);
    expect(maxAbs(exact.v, randomized.v)).toBeLessThan(1e-3);
    tf.dispose([big, exact.u, exact.s, exact.v, randomized.u, randomized.s, randomized.v]);
  });

  it("randomized reaches the optimal rank-r error on a matrix of known spectrum (within 1%)", () => {
    const { u, s, v } = truncatedSvd(w, 4, { method: "randomized", oversample: 6 });
    const expected = Math.sqrt(sigma.slice(4).reduce((acc, x) => acc + x * x, 0));
    const approx = reconstruct(u, s, v);
    const error = frobenius(tf.sub(w, approx));
    expect(error).toBeGreaterThanOrEqual(expected * (1 - 1e-5));
    expect(error).toBeLessThan(expected * 1.01);
    tf.dispose([u, s, v, approx]);
  });

  it("is deterministic for a seed", () => {
    const first = truncatedSvd(w, 3, { method: "randomized", seed: 5, powerIterations: 0, oversample: 1 });
    const second = truncatedSvd(w, 3, { method: "randomized", seed: 5, powerIterations: 0, oversample: 1 });
    expect(Array.from(first.u.dataSync())).toEqual(Array.from(second.u.dataSync()));
    expect(Array.from(first.s.dataSync())).toEqual(Array.from(second.s.dataSync()));
    tf.dispose([first.u, first.s, first.v, second.u, second.s, second.v]);
  });

  it("picks exact for small matrices and for sketches as large as the matrix", () => {
    expect(chooseSvdMethod([64, 512], 8)).toBe("exact");
    expect(chooseSvdMethod([128, 256], 8)).toBe("randomized");
    expect(chooseSvdMethod([128, 256], 120)).toBe("exact");
  });

  it("rejects a rank outside [1, min(m, n)], a bad method and non-finite values", () => {
    for (const rank of [0, -1, 1.5, 31]) {
      expect(() => truncatedSvd(w, rank)).toThrow(/rank must be an integer in \[1, min\(m, n\)\] = \[1, 30\]/);
    }
    expect(() => truncatedSvd(w, 2, { method: "qr" as "exact" })).toThrow(/method must be/);
    const bad = tf.tensor2d([[1, NaN], [0, 1]]);
    expect(() => truncatedSvd(bad, 1)).toThrow(/NaN or Infinity/);
    bad.dispose();
  });

  it("leaks no tensor", () => {
    const run = (): void => {
      for (const method of ["exact", "randomized"] as const) {
        const { u, s, v } = truncatedSvd(w, 4, { method });
        tf.dispose([u, s, v]);
        const { b, a, residual } = svdSplit(w, 4, { method });
        const merged = svdMerge(residual, b, a);
        tf.dispose([b, a, residual, merged]);
      }
    };
    run();
    const before = tf.memory().numTensors;
    run();
    run();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("svdSplit / svdMerge", () => {
  const sigma = [6, 4, 3, 1, 0.5];
  const w = withSpectrum(24, 18, sigma, 31);

  it("splits W into B [m, r], A [r, n] and the dropped part, and merges back to W", () => {
    const { b, a, residual } = svdSplit(w, 3);
    expect(b.shape).toEqual([24, 3]);
    expect(a.shape).toEqual([3, 18]);
    expect(residual.shape).toEqual([24, 18]);
    expect(frobenius(residual)).toBeCloseTo(Math.sqrt(0.5 * 0.5 + 1), 4);
    // B and A carry sqrt(sigma) each: column norms of B equal row norms of A.
    const bNorms = tf.norm(b, "euclidean", 0).dataSync();
    const aNorms = tf.norm(a, "euclidean", 1).dataSync();
    [6, 4, 3].forEach((value, k) => {
      expect(bNorms[k]).toBeCloseTo(Math.sqrt(value), 4);
      expect(aNorms[k]).toBeCloseTo(Math.sqrt(value), 4);
    });
    const merged = svdMerge(residual, b, a);
    expect(maxAbs(merged, w)).toBeLessThan(1e-5);
    tf.dispose([b, a, residual, merged]);
  });

  it("replaces only the rank-r part when the factors change", () => {
    const { b, a, residual } = svdSplit(w, 2);
    const zeroB = tf.zerosLike(b);
    const merged = svdMerge(residual, zeroB, a);
    const check = truncatedSvd(merged, 3, { method: "exact" });
    Array.from(check.s.dataSync()).forEach((value, k) => expect(value).toBeCloseTo([3, 1, 0.5][k], 4));
    tf.dispose([b, a, residual, zeroB, merged, check.u, check.s, check.v]);
  });

  it("rejects mismatched shapes", () => {
    const { b, a, residual } = svdSplit(w, 2);
    expect(() => svdMerge(residual, a, b)).toThrow(/need residual \[m, n\], b \[m, r\], a \[r, n\]/);
    tf.dispose([b, a, residual]);
  });
});

describe("low-rank layers", () => {
  it("LowRankDense computes x·A·B·(alpha/r) + bias", () => {
    const layer = lowRankDense({ units: 3, rank: 2, alpha: 6, inputShape: [4], seed: 1 });
    const net = tf.sequential({ layers: [layer] });
    expect(layer.scale).toBe(3);
    const bias = tf.tensor1d([0.5, -1, 2]);
    net.getLayer(layer.name).weights[2].write(bias);
    const x = tf.randomNormal([5, 4], 0, 1, "float32", 2);
    const y = (net.predict(x) as tf.Tensor).arraySync() as number[][];
    const [aT, bT] = [layer.weights[0].read().arraySync() as number[][], layer.weights[1].read().arraySync() as number[][]];
    expect(layer.weights.map((v) => v.originalName)).toEqual([`${layer.name}/lora_a`, `${layer.name}/lora_b`, `${layer.name}/bias`]);
    const xs = x.arraySync() as number[][];
    for (let i = 0; i < 5; i++) {
      for (let o = 0; o < 3; o++) {
        let sum = 0;
        for (let j = 0; j < 4; j++) for (let k = 0; k < 2; k++) sum += xs[i][j] * aT[j][k] * bT[k][o];
        expect(y[i][o]).toBeCloseTo(sum * 3 + [0.5, -1, 2][o], 4);
      }
    }
    tf.dispose([bias, x]);
  });

  it("LowRankDense applies its activation and works on [batch, time, in] inputs", () => {
    const relu = lowRankDense({ units: 5, rank: 3, activation: "relu", inputShape: [7, 4], seed: 2 });
    const net = tf.sequential({ layers: [relu] });
    const x = tf.randomNormal([2, 7, 4], 0, 1, "float32", 3);
    const y = net.predict(x) as tf.Tensor;
    expect(y.shape).toEqual([2, 7, 5]);
    expect(net.outputs[0].shape).toEqual([null, 7, 5]);
    expect(tf.min(y).dataSync()[0]).toBe(0);
    tf.dispose([x, y]);
  });

  it("LowRankConv2D equals a Conv2D whose kernel is reshape(A·B)·scale", () => {
    const lr = lowRankConv2d({ filters: 4, kernelSize: [3, 2], rank: 2, alpha: 1, strides: 2, padding: "same", inputShape: [7, 6, 3], seed: 3 });
    const net = tf.sequential({ layers: [lr] });
    const reference = tf.sequential({ layers: [tf.layers.conv2d({ filters: 4, kernelSize: [3, 2], strides: 2, padding: "same", inputShape: [7, 6, 3] })] });
    const bias = tf.tensor1d([0.1, 0.2, -0.3, 0.4]);
    lr.weights[2].write(bias);
    const kernel = tf.tidy(() => {
      const a = tf.reshape(lr.weights[0].read(), [3 * 2 * 3, 2]); // [kh, kw, cin, r] -> [kh*kw*cin, r]
      return tf.reshape(tf.mul(tf.matMul(a, lr.weights[1].read() as tf.Tensor2D), 0.5), [3, 2, 3, 4]);
    });
    reference.setWeights([kernel, bias]);
    const x = tf.randomNormal([2, 7, 6, 3], 0, 1, "float32", 4);
    const y = net.predict(x) as tf.Tensor;
    const expected = reference.predict(x) as tf.Tensor;
    expect(y.shape).toEqual([2, 4, 3, 4]);
    expect(net.outputs[0].shape).toEqual([null, 4, 3, 4]);
    expect(maxAbs(y, expected)).toBeLessThan(1e-5);
    tf.dispose([bias, kernel, x, y, expected]);
  });

  it("predicts its output shape for valid padding", () => {
    const net = tf.sequential({ layers: [lowRankConv2d({ filters: 2, kernelSize: 3, rank: 1, strides: [2, 1], inputShape: [9, 8, 1] })] });
    const x = tf.zeros([1, 9, 8, 1]);
    const y = net.predict(x) as tf.Tensor;
    expect(net.outputs[0].shape.slice(1)).toEqual(y.shape.slice(1));
    tf.dispose([x, y]);
  });

  it("sends the gradient to both factors (dense: dL/dA = scale·xᵀ·1·Bᵀ for L = sum(y))", () => {
    const layer = lowRankDense({ units: 3, rank: 2, alpha: 4, inputShape: [4], seed: 5, useBias: false });
    const net = tf.sequential({ layers: [layer] });
    const x = tf.randomNormal([6, 4], 0, 1, "float32", 6);
    const [a, b] = [layer.weights[0].read() as tf.Variable, layer.weights[1].read() as tf.Variable];
    const { grads } = tf.variableGrads(() => tf.sum(net.apply(x) as tf.Tensor) as tf.Scalar, [a, b]);
    const expectedA = tf.tidy(() => tf.mul(tf.matMul(tf.matMul(x, tf.ones([6, 3]), true, false), b, false, true), 2)); // [4, 3]·[3, 2]
    const expectedB = tf.tidy(() => tf.mul(tf.matMul(tf.matMul(x, a), tf.ones([6, 3]), true, false), 2)); // [2, 6]·[6, 3]
    expect(maxAbs(grads[a.name], expectedA)).toBeLessThan(1e-4);
    expect(maxAbs(grads[b.name], expectedB)).toBeLessThan(1e-4);
    expect(frobenius(grads[a.name])).toBeGreaterThan(0);
    expect(frobenius(grads[b.name])).toBeGreaterThan(0);

    const conv = lowRankConv2d({ filters: 3, kernelSize: 2, rank: 2, inputShape: [4, 4, 2], seed: 7 });
    const convNet = tf.sequential({ layers: [conv] });
    const image = tf.randomNormal([2, 4, 4, 2], 0, 1, "float32", 8);
    const factors = conv.weights.slice(0, 2).map((w) => w.read() as tf.Variable);
    const convGrads = tf.variableGrads(() => tf.sum(tf.square(convNet.apply(image) as tf.Tensor)) as tf.Scalar, factors).grads;
    for (const f of factors) expect(frobenius(convGrads[f.name])).toBeGreaterThan(0);
    tf.dispose([x, expectedA, expectedB, image, ...Object.values(grads), ...Object.values(convGrads)]);
  });

  it("initialises scale·B·A with the variance of a Glorot init, and reproducibly for a seed", () => {
    const build = () => tf.sequential({ layers: [lowRankDense({ units: 200, rank: 16, alpha: 32, inputShape: [300], seed: 9 })] });
    const [first, second] = [build(), build()];
    const product = (net: tf.Sequential): tf.Tensor =>
      tf.tidy(() => tf.mul(tf.matMul(net.layers[0].weights[0].read() as tf.Tensor2D, net.layers[0].weights[1].read() as tf.Tensor2D), 2));
    const w1 = product(first);
    const w2 = product(second);
    expect(Array.from(w1.dataSync())).toEqual(Array.from(w2.dataSync()));
    const variance = tf.tidy(() => tf.moments(w1).variance.dataSync()[0]);
    expect(variance / (2 / 500)).toBeGreaterThan(0.85);
    expect(variance / (2 / 500)).toBeLessThan(1.15);
    expect(frobenius(first.layers[0].weights[1].read())).toBeGreaterThan(0);
    tf.dispose([w1, w2]);
  });

  it("saves and loads (architecture, config and weights) with identical outputs", async () => {
    const net = tf.sequential({
      layers: [
        lowRankConv2d({ filters: 4, kernelSize: 3, rank: 2, alpha: 8, padding: "same", activation: "relu", inputShape: [6, 6, 1], name: "lrc" }),
        tf.layers.flatten(),
        lowRankDense({ units: 5, rank: 3, useBias: false, name: "lrd" }),
      ],
    });
    let saved: tf.io.ModelArtifacts | undefined;
    await net.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
      }),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    expect(loaded.layers[0]).toBeInstanceOf(LowRankConv2D);
    expect(loaded.layers[2]).toBeInstanceOf(LowRankDense);
    const conv = loaded.layers[0] as LowRankConv2D;
    expect([conv.rank, conv.scale, conv.padding, conv.activationName]).toEqual([2, 4, "same", "relu"]);
    expect((loaded.layers[2] as LowRankDense).useBias).toBe(false);
    expect(loaded.weights.map((w) => w.originalName)).toEqual(["lrc/lora_a", "lrc/lora_b", "lrc/bias", "lrd/lora_a", "lrd/lora_b"]);
    const x = tf.randomNormal([3, 6, 6, 1], 0, 1, "float32", 10);
    const before = net.predict(x) as tf.Tensor;
    const after = loaded.predict(x) as tf.Tensor;
    expect(Array.from(after.dataSync())).toEqual(Array.from(before.dataSync()));
    tf.dispose([x, before, after]);
  });

  it("rejects a rank larger than the matrix allows, and bad arguments", () => {
    expect(() => tf.sequential({ layers: [lowRankDense({ units: 3, rank: 4, inputShape: [8] })] })).toThrow(
      /rank 4 exceeds min\(fan_in, out\) = min\(8, 3\)/,
    );
    expect(() => lowRankDense({ units: 3, rank: 0 })).toThrow(/rank must be a positive integer/);
    expect(() => lowRankDense({ units: 3, rank: 2, alpha: -1 })).toThrow(/alpha must be a positive number/);
    expect(() => lowRankConv2d({ filters: 3, kernelSize: 2, rank: 1, padding: "causal" as "same" })).toThrow(/padding must be/);
  });
});
