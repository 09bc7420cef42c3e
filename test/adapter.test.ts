// The parameter adapter (docs/METHOD.md §3): golden fixture, shapes, gradients, determinism, spectral
// norm, ablations, tensor hygiene and config errors.
import * as fs from "fs";
import * as path from "path";
import { Matrix, SingularValueDecomposition } from "ml-matrix";
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { ParameterAdapter } from "../src/core/adapter/parameter-adapter";
import { dropoutMask } from "../src/core/adapter/ops";
import { AdapterConfig, BLOCK_NAMES, headWidth, resolveAdapterConfig } from "../src/core/adapter/config";
import { WriteBack } from "../src/core/writeback";
import { finiteDifference } from "./helpers/numeric";

interface StoredTensor {
  shape: number[];
  data: number[];
}

interface GoldenCase {
  name: string;
  description: string;
  config: {
    source_shape: [number, number];
    target_shape: [number, number];
    layers: number;
    heads: number;
    head_dim: Record<string, number>;
  };
  inputs: { S: StoredTensor; T: StoredTensor };
  params: Array<{ name: string; shape: number[]; data: number[] }>;
  expected: {
    output: StoredTensor;
    layer_outputs: StoredTensor[];
    layer0_blocks: Record<string, StoredTensor>;
    layer0_average: StoredTensor;
    layer0_rows_rows_attention: StoredTensor;
    writeback_interp: { theta: number; g: number; matched: StoredTensor; result: StoredTensor };
  };
  float32_check: { output_max_abs_dev: number; writeback_max_abs_dev: number };
}

const golden: { cases: GoldenCase[] } = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "adapter-golden.json"), "utf8"));

/** Agreement asked of the golden fixture (float32 against float64 expectations). */
const GOLDEN_TOLERANCE = 1e-5;

function to2d(stored: StoredTensor): tf.Tensor2D {
  return tf.tensor2d(stored.data, stored.shape as [number, number]);
}

/** Largest |actual - expected|, after checking the shapes agree. */
function maxAbsDiff(actual: tf.Tensor, expected: StoredTensor): number {
  expect(actual.shape).toEqual(expected.shape);
  const values = actual.dataSync();
  return expected.data.reduce((worst, e, i) => Math.max(worst, Math.abs(values[i] - e)), 0);
}

function maxAbsBetween(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

function randomMatrix(shape: [number, number], seed: number, std = 0.5): tf.Tensor2D {
  return tf.randomNormal(shape, 0, std, "float32", seed) as tf.Tensor2D;
}

function goldenAdapter(c: GoldenCase): ParameterAdapter {
  const adapter = new ParameterAdapter({
    sourceShape: c.config.source_shape,
    targetShape: c.config.target_shape,
    layers: c.config.layers,
    heads: c.config.heads,
    spectralNorm: false,
    blockWeighting: "mean",
  });
  const values: Record<string, tf.Tensor> = {};
  for (const p of c.params) values[p.name] = tf.tensor(p.data, p.shape);
  adapter.setParameters(values);
  tf.dispose(values);
  return adapter;
}

describe("adapter: golden fixture (independent float64 PyTorch implementation)", () => {
  it("holds four cases", () => {
    expect(golden.cases.map((c) => c.name)).toEqual(["a", "b", "c", "d"]);
  });

  describe.each(golden.cases.map((c) => [c.name, c] as const))("case %s", (_name, c) => {
    // Every case's float32_check is below 6e-7, so 1e-5 is more than ten times it.
    it("has a float32 deviation small enough for the 1e-5 tolerance", () => {
      expect(c.float32_check.output_max_abs_dev * 5).toBeLessThan(GOLDEN_TOLERANCE);
      expect(c.float32_check.writeback_max_abs_dev * 5).toBeLessThan(GOLDEN_TOLERANCE);
    });

    it("names and shapes its parameters as the fixture does, in the fixture's order", () => {
      const adapter = new ParameterAdapter({ sourceShape: c.config.source_shape, targetShape: c.config.target_shape, layers: c.config.layers });
      expect(adapter.parameterNames()).toEqual(c.params.map((p) => p.name));
      for (const p of c.params) expect(adapter.parameter(p.name).shape).toEqual(p.shape);
      for (const b of BLOCK_NAMES) expect(adapter.geometry[b].headWidth).toBe(c.config.head_dim[b]);
      adapter.dispose();
    });

    it("reproduces output, layer outputs, layer-0 blocks, average, attention and the interp write-back", () => {
      const adapter = goldenAdapter(c);
      const source = to2d(c.inputs.S);
      const target = to2d(c.inputs.T);
      const trace = adapter.inspect(source, target);
      const e = c.expected;
      expect(maxAbsDiff(trace.output, e.output)).toBeLessThan(GOLDEN_TOLERANCE);
      expect(trace.layerOutputs).toHaveLength(e.layer_outputs.length);
      e.layer_outputs.forEach((o, i) => expect(maxAbsDiff(trace.layerOutputs[i], o)).toBeLessThan(GOLDEN_TOLERANCE));
      for (const b of BLOCK_NAMES) expect(maxAbsDiff(trace.blocks[b]!, e.layer0_blocks[b])).toBeLessThan(GOLDEN_TOLERANCE);
      expect(maxAbsDiff(trace.average, e.layer0_average)).toBeLessThan(GOLDEN_TOLERANCE);
      expect(maxAbsDiff(trace.attention[0].rows_rows!, e.layer0_rows_rows_attention)).toBeLessThan(GOLDEN_TOLERANCE);
      expect(trace.attention).toHaveLength(c.config.layers);

      const writeBack = new WriteBack("interp");
      writeBack.setTheta(e.writeback_interp.theta);
      expect(writeBack.gate()).toBeCloseTo(e.writeback_interp.g, 7);
      const written = writeBack.apply(trace.output, target);
      expect(maxAbsDiff(written, e.writeback_interp.result)).toBeLessThan(GOLDEN_TOLERANCE);

      const forward = adapter.forward(source, target, { training: false });
      expect(maxAbsBetween(forward, trace.output)).toBe(0);
      tf.dispose([trace, written, forward, source, target]);
      writeBack.dispose();
      adapter.dispose();
    });
  });
});

describe("adapter: shapes", () => {
  const cases: Array<{ label: string; config: AdapterConfig }> = [
    { label: "bench pair [10,128] -> [128,256], 1 layer", config: { sourceShape: [10, 128], targetShape: [128, 256], layers: 1 } },
    { label: "[128,3136] -> [10,128], default 2 layers", config: { sourceShape: [128, 3136], targetShape: [10, 128] } },
    { label: "conv view [288,64] -> [256,784]", config: { sourceShape: [288, 64], targetShape: [256, 784], layers: 1 } },
    { label: "equal shapes [32,32] -> [32,32]", config: { sourceShape: [32, 32], targetShape: [32, 32] } },
    { label: "one-row matrices [1,16] -> [1,16]", config: { sourceShape: [1, 16], targetShape: [1, 16] } },
  ];
  it.each(cases)("$label gives T's shape, finite, in training and inference", ({ config }) => {
    const adapter = new ParameterAdapter(config);
    const source = randomMatrix(config.sourceShape, 1, 0.05);
    const target = randomMatrix(config.targetShape, 2, 0.05);
    for (const training of [true, false]) {
      const out = adapter.forward(source, target, { training, dropoutSeed: 3 });
      expect(out.shape).toEqual(config.targetShape);
      expect(tf.tidy(() => tf.all(tf.isFinite(out)).dataSync()[0])).toBe(1);
      out.dispose();
    }
    const trace = adapter.inspect(source, target);
    const [ms, ns] = config.sourceShape;
    const [mt, nt] = config.targetShape;
    expect(trace.attention[0].rows_rows!.shape).toEqual([mt, ms]);
    expect(trace.attention[0].rows_cols!.shape).toEqual([mt, ns]);
    expect(trace.attention[0].cols_rows!.shape).toEqual([nt, ms]);
    expect(trace.attention[0].cols_cols!.shape).toEqual([nt, ns]);
    expect(trace.blocks.cols_cols!.shape).toEqual([nt, mt]);
    tf.dispose([trace, source, target]);
    adapter.dispose();
  });

  it("computes the per-head width as floor(max(floor((dq + dk)/2), 128) / h)", () => {
    expect(headWidth(256, 128, 8)).toBe(24);
    expect(headWidth(256, 10, 8)).toBe(16);
    expect(headWidth(785, 64, 8)).toBe(53); // floor(424 / 8)
    expect(headWidth(7, 5, 3)).toBe(42); // floor(128 / 3)
  });
});

// float32 finite differences: step 1e-2, loss sum(R * out) of magnitude ~5 over 24
// elements. Float32 rounding of the loss (~5e-7) over 2*step gives ~3e-5 of noise and the
// step² truncation is of the same order (largest deviation seen: 8e-5);
// tolerance |fd - analytic| <= 2e-4 + 1e-2 |analytic|.
const FD_STEP = 1e-2;
const fdClose = (fd: number, analytic: number): boolean => Math.abs(fd - analytic) <= 2e-4 + 1e-2 * Math.abs(analytic);

describe("adapter: gradients against finite differences (float32)", () => {
  it("match for attention, norm, FFN (through the spectral-norm sigma) and block-logit parameters, in training mode", () => {
    const adapter = new ParameterAdapter({
      sourceShape: [5, 3],
      targetShape: [4, 6],
      layers: 2,
      blockWeighting: "learned",
      spectralNorm: true,
      seed: 11,
    });
    // Move the zero-initialised parameters so that every one of them matters, and sharpen
    // two blocks' attention (larger q, k) so their gradients are well above the FD noise.
    const moved = tf.tidy(() => ({
      "layer0.rows_rows.q.kernel": tf.mul(adapter.parameter("layer0.rows_rows.q.kernel"), 4),
      "layer0.rows_cols.k.kernel": tf.mul(adapter.parameter("layer0.rows_cols.k.kernel"), 4),
      "layer0.block_logits": tf.tensor1d([0.3, -0.2, 0.5, -0.4]),
      "layer0.rows_rows.q.bias": tf.randomNormal([128], 0, 0.3, "float32", 5),
      "layer0.cols_rows.norm.gamma": tf.tensor1d([1.1, 0.8, 1.2, 0.9]),
    }));
    adapter.setParameters(moved);
    tf.dispose(moved);
    const source = randomMatrix([5, 3], 21, 3); // spread-out keys: attention far from uniform
    const target = randomMatrix([4, 6], 22);
    const weights = randomMatrix([4, 6], 23, 1);
    const opts = { training: true, dropoutSeed: 9, updateSpectral: false };
    const lossTensor = (): tf.Scalar => tf.sum(tf.mul(adapter.forward(source, target, opts), weights));
    const loss = (): number => tf.tidy(() => lossTensor().dataSync()[0]);

    // Each parameter is checked at its two entries with the largest analytic gradient.
    const checked = [
      "layer0.rows_rows.q.kernel",
      "layer0.rows_cols.k.kernel",
      "layer0.cols_cols.v.bias",
      "layer0.cols_rows.out.kernel",
      "layer0.cols_rows.norm.gamma",
      "layer0.ffn.up.kernel",
      "layer0.block_logits",
      "layer1.ffn.down.kernel",
      "layer1.ffn.norm.beta",
      "layer1.rows_rows.norm.beta",
    ];
    const { value, grads } = tf.variableGrads(lossTensor, checked.map((name) => adapter.parameter(name)));
    value.dispose();
    let compared = 0;
    for (const name of checked) {
      const analytic = grads[adapter.parameter(name).name].dataSync();
      const largest = Array.from(analytic.keys()).sort((i, j) => Math.abs(analytic[j]) - Math.abs(analytic[i])).slice(0, 2);
      for (const index of largest) {
        const fd = finiteDifference(loss, adapter.parameter(name), index, FD_STEP);
        expect(fdClose(fd, analytic[index]), `${name}[${index}]: fd ${fd} vs analytic ${analytic[index]}`).toBe(true);
        expect(Math.abs(analytic[index]), `${name}[${index}] is too small to test`).toBeGreaterThan(1e-3);
        compared++;
      }
    }
    expect(compared).toBe(2 * checked.length);
    tf.dispose([grads, source, target, weights]);
    adapter.dispose();
  });

  it("match through the interp write-back, for the gate logit and an adapter parameter", () => {
    const adapter = new ParameterAdapter({ sourceShape: [3, 5], targetShape: [6, 4], layers: 1, seed: 4 });
    const writeBack = new WriteBack("interp", { initialTheta: -0.5 });
    const source = randomMatrix([3, 5], 31);
    const target = randomMatrix([6, 4], 32, 0.05);
    const weights = randomMatrix([6, 4], 33, 1);
    const lossTensor = (): tf.Scalar =>
      tf.sum(tf.mul(writeBack.apply(adapter.forward(source, target, { training: false }), target), weights));
    const loss = (): number => tf.tidy(() => lossTensor().dataSync()[0]);
    const theta = writeBack.variables[0];
    const kernel = adapter.parameter("layer0.rows_cols.v.kernel");
    const { value, grads } = tf.variableGrads(lossTensor, [theta, kernel]);
    value.dispose();
    // Small weights (std 0.05): the loss is ~0.1 here, so a tighter absolute tolerance applies.
    const thetaFd = finiteDifference(loss, theta, 0, FD_STEP);
    const thetaGrad = grads[theta.name].dataSync()[0];
    expect(Math.abs(thetaGrad)).toBeGreaterThan(1e-3);
    expect(Math.abs(thetaFd - thetaGrad)).toBeLessThan(2e-4 + 1e-2 * Math.abs(thetaGrad));
    const kernelGrad = grads[kernel.name].dataSync();
    for (const index of [0, 50, 333]) {
      const fd = finiteDifference(loss, kernel, index, FD_STEP);
      expect(Math.abs(fd - kernelGrad[index]), `v.kernel[${index}]: fd ${fd} vs ${kernelGrad[index]}`).toBeLessThan(2e-4 + 2e-2 * Math.abs(kernelGrad[index]));
    }
    tf.dispose([grads, source, target, weights]);
    writeBack.dispose();
    adapter.dispose();
  });
});

describe("adapter: determinism", () => {
  const config: AdapterConfig = { sourceShape: [6, 5], targetShape: [4, 7], layers: 2, seed: 3 };

  it("gives identical outputs for the same dropoutSeed and different ones for another seed", () => {
    const adapter = new ParameterAdapter(config);
    const source = randomMatrix([6, 5], 1);
    const target = randomMatrix([4, 7], 2);
    const first = adapter.forward(source, target, { training: true, dropoutSeed: 5, updateSpectral: false });
    const again = adapter.forward(source, target, { training: true, dropoutSeed: 5, updateSpectral: false });
    const other = adapter.forward(source, target, { training: true, dropoutSeed: 6, updateSpectral: false });
    const inference = adapter.forward(source, target, { training: false });
    expect(maxAbsBetween(first, again)).toBe(0);
    expect(maxAbsBetween(first, other)).toBeGreaterThan(1e-3);
    expect(maxAbsBetween(first, inference)).toBeGreaterThan(1e-3);
    tf.dispose([first, again, other, inference, source, target]);
    adapter.dispose();
  });

  it("reproduces a spectral-updating call exactly when re-run with updateSpectral: false", () => {
    const adapter = new ParameterAdapter({ ...config, powerIterations: 2 });
    const source = randomMatrix([6, 5], 1);
    const target = randomMatrix([4, 7], 2);
    const updating = adapter.forward(source, target, { training: true, dropoutSeed: 8 });
    const rerun = adapter.forward(source, target, { training: true, dropoutSeed: 8, updateSpectral: false });
    expect(maxAbsBetween(updating, rerun)).toBe(0);
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.square(adapter.forward(source, target, { training: true, dropoutSeed: 8, updateSpectral: false }))),
      adapter.variables,
    );
    expect(value.dataSync()[0]).toBe(tf.tidy(() => tf.sum(tf.square(updating)).dataSync()[0]));
    tf.dispose([updating, rerun, value, grads, source, target]);
    adapter.dispose();
  });

  it("draws dropout masks with the given rate, inverted scaling, and seeded reproducibility", () => {
    const n = 100_000;
    const rate = 0.2;
    const mask = dropoutMask([n], rate, 12345);
    const values = mask.dataSync();
    const dropped = values.filter((x) => x === 0).length;
    // Binomial(n, 0.2): standard deviation sqrt(n * 0.2 * 0.8) ≈ 126; allow 5 of them.
    expect(Math.abs(dropped - n * rate)).toBeLessThan(5 * Math.sqrt(n * rate * (1 - rate)));
    expect(values.every((x) => x === 0 || Math.abs(x - 1 / (1 - rate)) < 1e-6)).toBe(true);
    const same = dropoutMask([n], rate, 12345);
    const other = dropoutMask([n], rate, 12346);
    expect(maxAbsBetween(mask, same)).toBe(0);
    expect(maxAbsBetween(mask, other)).toBeGreaterThan(0);
    tf.dispose([mask, same, other]);
  });

  it("initialises parameters from the seed: same seed same values, another seed other values", () => {
    const a = new ParameterAdapter(config);
    const b = new ParameterAdapter(config);
    const c = new ParameterAdapter({ ...config, seed: 4 });
    const name = "layer1.cols_rows.k.kernel";
    expect(maxAbsBetween(a.parameter(name), b.parameter(name))).toBe(0);
    expect(maxAbsBetween(a.parameter(name), c.parameter(name))).toBeGreaterThan(1e-3);
    // Glorot-uniform kernels, zero biases, unit gammas.
    const limit = Math.sqrt(6 / (5 + 128));
    expect(tf.tidy(() => tf.max(tf.abs(a.parameter(name))).dataSync()[0])).toBeLessThanOrEqual(limit);
    expect(a.parameter("layer0.ffn.up.bias").dataSync().every((x) => x === 0)).toBe(true);
    expect(a.parameter("layer0.ffn.norm.gamma").dataSync().every((x) => x === 1)).toBe(true);
    // Two live adapters under one name get distinct tfjs variable names.
    expect(a.variablePrefix).not.toBe(b.variablePrefix);
    for (const x of [a, b, c]) x.dispose();
  });
});

/** The largest singular value of a tfjs matrix, by ml-matrix's full SVD (float64). */
function topSingularValue(matrix: tf.Tensor2D): number {
  const svd = new SingularValueDecomposition(new Matrix(matrix.arraySync()), { computeLeftSingularVectors: false, computeRightSingularVectors: false, autoTranspose: true });
  return svd.diagonal[0];
}

describe("adapter: spectral normalisation", () => {
  it("estimates sigma as the top singular value after many power iterations; K / sigma has top singular value 1", () => {
    const adapter = new ParameterAdapter({ sourceShape: [5, 9], targetShape: [7, 12], layers: 1, powerIterations: 100 });
    const source = randomMatrix([5, 9], 1);
    const target = randomMatrix([7, 12], 2);
    for (let i = 0; i < 3; i++) adapter.forward(source, target, { training: true, dropoutSeed: i }).dispose();
    for (const name of ["layer0.ffn.up.kernel", "layer0.ffn.down.kernel"]) {
      const kernel = adapter.parameter(name) as tf.Variable<tf.Rank.R2>;
      const sigma = adapter.spectralSigma(name);
      const reference = topSingularValue(kernel);
      expect(Math.abs(sigma - reference) / reference).toBeLessThan(1e-4);
      const normalised = tf.div(kernel, sigma) as tf.Tensor2D;
      expect(topSingularValue(normalised)).toBeCloseTo(1, 4);
      normalised.dispose();
    }
    tf.dispose([source, target]);
    adapter.dispose();
  });

  it("uses K / sigma in the FFN: equals an adapter without spectral norm holding the normalised kernels", () => {
    const config: AdapterConfig = { sourceShape: [6, 5], targetShape: [4, 7], layers: 1, seed: 2, powerIterations: 100 };
    const withNorm = new ParameterAdapter(config);
    const source = randomMatrix([6, 5], 1);
    const target = randomMatrix([4, 7], 2);
    withNorm.forward(source, target, { training: true, dropoutSeed: 0 }).dispose(); // converge u, v
    const sigmaBefore = withNorm.spectralSigma("layer0.ffn.up.kernel");
    const expected = withNorm.forward(source, target, { training: false });
    expect(withNorm.spectralSigma("layer0.ffn.up.kernel")).toBe(sigmaBefore); // inference does not update u, v
    const plain = new ParameterAdapter({ ...config, spectralNorm: false });
    const values: Record<string, tf.Tensor> = {};
    for (const name of withNorm.parameterNames()) values[name] = withNorm.parameter(name);
    values["layer0.ffn.up.kernel"] = tf.div(withNorm.parameter("layer0.ffn.up.kernel"), withNorm.spectralSigma("layer0.ffn.up.kernel"));
    values["layer0.ffn.down.kernel"] = tf.div(withNorm.parameter("layer0.ffn.down.kernel"), withNorm.spectralSigma("layer0.ffn.down.kernel"));
    plain.setParameters(values);
    const actual = plain.forward(source, target, { training: false });
    expect(maxAbsBetween(actual, expected)).toBeLessThan(1e-5);
    tf.dispose([expected, actual, values["layer0.ffn.up.kernel"], values["layer0.ffn.down.kernel"], source, target]);
    withNorm.dispose();
    plain.dispose();
  });

  it("differentiates through sigma: K / (vᵀ K u) is scale-invariant, so each FFN kernel's gradient is orthogonal to it", () => {
    const adapter = new ParameterAdapter({ sourceShape: [5, 3], targetShape: [4, 6], layers: 2, seed: 5 });
    const source = randomMatrix([5, 3], 1);
    const target = randomMatrix([4, 6], 2);
    const weights = randomMatrix([4, 6], 3, 1);
    const names = ["layer0.ffn.up.kernel", "layer0.ffn.down.kernel", "layer1.ffn.up.kernel", "layer1.ffn.down.kernel"];
    const kernels = names.map((n) => adapter.parameter(n));
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(adapter.forward(source, target, { training: true, dropoutSeed: 1, updateSpectral: false }), weights)),
      kernels,
    );
    for (const kernel of kernels) {
      const [inner, gradNorm, kernelNorm] = tf.tidy(() => [tf.sum(tf.mul(grads[kernel.name], kernel)), tf.norm(grads[kernel.name]), tf.norm(kernel)].map((t) => t.dataSync()[0]));
      expect(gradNorm).toBeGreaterThan(1e-2);
      expect(Math.abs(inner)).toBeLessThan(1e-5 * gradNorm * kernelNorm);
    }
    tf.dispose([value, grads, source, target, weights]);
    adapter.dispose();
  });

  it("rejects spectralSigma for a non-FFN name or an adapter without spectral norm", () => {
    const adapter = new ParameterAdapter({ sourceShape: [2, 3], targetShape: [3, 2], layers: 1, spectralNorm: false });
    expect(() => adapter.spectralSigma("layer0.rows_rows.q.kernel")).toThrow(/not an FFN kernel; spectral norm applies to layer0\.ffn\.up\.kernel, layer0\.ffn\.down\.kernel/);
    expect(() => adapter.spectralSigma("layer0.ffn.up.kernel")).toThrow(/built with spectralNorm: false/);
    adapter.dispose();
  });
});

describe("adapter: block ablation and weighting", () => {
  const shapes = { sourceShape: [5, 3] as [number, number], targetShape: [4, 6] as [number, number], layers: 1, spectralNorm: false };

  it("averages over the enabled blocks only, and has no parameters for disabled ones", () => {
    const adapter = new ParameterAdapter({ ...shapes, blocks: { rowsCols: false, colsCols: false } });
    expect(adapter.parameterNames().some((n) => n.includes("rows_cols") || n.includes("cols_cols"))).toBe(false);
    expect(adapter.parameterNames().filter((n) => n.includes("rows_rows"))).toHaveLength(10);
    const source = randomMatrix([5, 3], 1);
    const target = randomMatrix([4, 6], 2);
    const trace = adapter.inspect(source, target);
    expect(Object.keys(trace.blocks).sort()).toEqual(["cols_rows", "rows_rows"]);
    const expected = tf.tidy(() => tf.mul(tf.add(trace.blocks.rows_rows!, tf.transpose(trace.blocks.cols_rows!)), 0.5));
    expect(maxAbsBetween(trace.average, expected)).toBeLessThan(1e-6);
    tf.dispose([trace, expected, source, target]);
    adapter.dispose();
  });

  it("weights blocks by the softmax of learned logits (uniform at init, so equal to the mean)", () => {
    const mean = new ParameterAdapter({ ...shapes, seed: 7 });
    const learned = new ParameterAdapter({ ...shapes, seed: 7, blockWeighting: "learned" });
    expect(learned.parameterNames()).toEqual([...mean.parameterNames(), "layer0.block_logits"]);
    const source = randomMatrix([5, 3], 1);
    const target = randomMatrix([4, 6], 2);
    const a = mean.forward(source, target, { training: false });
    const b = learned.forward(source, target, { training: false });
    expect(maxAbsBetween(a, b)).toBeLessThan(1e-6);

    const logits = [1, -1, 0.5, 2];
    const logitTensor = tf.tensor1d(logits);
    learned.setParameters({ "layer0.block_logits": logitTensor });
    logitTensor.dispose();
    const trace = learned.inspect(source, target);
    const z = logits.map(Math.exp);
    const w = z.map((x) => x / z.reduce((s, y) => s + y, 0));
    const expected = tf.tidy(() =>
      tf.addN([
        tf.mul(trace.blocks.rows_rows!, w[0]),
        tf.mul(trace.blocks.rows_cols!, w[1]),
        tf.mul(tf.transpose(trace.blocks.cols_rows!), w[2]),
        tf.mul(tf.transpose(trace.blocks.cols_cols!), w[3]),
      ]),
    );
    expect(maxAbsBetween(trace.average, expected)).toBeLessThan(1e-6);
    tf.dispose([a, b, trace, expected, source, target]);
    mean.dispose();
    learned.dispose();
  });
});

describe("adapter: tensor hygiene", () => {
  it("keeps the tensor count across 20 forward calls, 20 tf.variableGrads calls and disposed traces", () => {
    const adapter = new ParameterAdapter({ sourceShape: [10, 16], targetShape: [16, 12], layers: 2, blockWeighting: "learned" });
    const writeBack = new WriteBack("interp");
    const source = randomMatrix([10, 16], 1);
    const target = randomMatrix([16, 12], 2);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) {
      adapter.forward(source, target, { training: i % 2 === 0, dropoutSeed: i }).dispose();
    }
    for (let i = 0; i < 20; i++) {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.square(writeBack.apply(adapter.forward(source, target, { training: true, dropoutSeed: i }), target))),
        [...adapter.variables, ...writeBack.variables],
      );
      value.dispose();
      tf.dispose(grads);
    }
    for (let i = 0; i < 3; i++) tf.dispose(adapter.inspect(source, target));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([source, target]);
    writeBack.dispose();
    adapter.dispose();
  });
});

describe("adapter: errors", () => {
  const base: AdapterConfig = { sourceShape: [4, 5], targetShape: [6, 7] };
  const cases: Array<[string, AdapterConfig, RegExp]> = [
    ["sourceShape of one number", { ...base, sourceShape: [4] as unknown as [number, number] }, /sourceShape must be two positive integers \[rows, cols\].*got \[4\]/],
    ["targetShape with a zero", { ...base, targetShape: [0, 7] }, /targetShape must be two positive integers.*got \[0,7\]/],
    ["targetShape with a fraction", { ...base, targetShape: [2.5, 7] }, /targetShape must be two positive integers/],
    ["layers 0", { ...base, layers: 0 }, /layers must be a positive integer, got 0/],
    ["heads 1.5", { ...base, heads: 1.5 }, /heads must be a positive integer, got 1\.5/],
    ["heads too many", { ...base, heads: 200 }, /heads=200 leaves block rows_rows a per-head width of 0.*use at most 128 heads/],
    ["attentionDropout 1", { ...base, attentionDropout: 1 }, /attentionDropout is a dropout probability and must be in \[0, 1\), got 1/],
    ["ffnDropout -0.1", { ...base, ffnDropout: -0.1 }, /ffnDropout is a dropout probability and must be in \[0, 1\), got -0\.1/],
    ["powerIterations 0", { ...base, powerIterations: 0 }, /powerIterations must be a positive integer, got 0/],
    [
      "every block off",
      { ...base, blocks: { rowsRows: false, rowsCols: false, colsRows: false, colsCols: false } },
      /switches off every block; keep at least one of rowsRows, rowsCols, colsRows, colsCols on/,
    ],
    ["unknown block", { ...base, blocks: { rowRow: false } as unknown as AdapterConfig["blocks"] }, /blocks\.rowRow is not a block; use rowsRows, rowsCols, colsRows, colsCols/],
    ["blockWeighting typo", { ...base, blockWeighting: "softmax" as "mean" }, /blockWeighting must be "mean" or "learned", got "softmax"/],
    ["spectralNorm not boolean", { ...base, spectralNorm: 1 as unknown as boolean }, /spectralNorm must be true or false, got 1/],
    ["seed not an integer", { ...base, seed: 0.5 }, /seed must be an integer, got 0\.5/],
    ["name with a slash", { ...base, name: "a/b" }, /name must be a non-empty string of letters, digits/],
  ];
  it.each(cases)("rejects %s", (_label, config, message) => {
    expect(() => resolveAdapterConfig(config)).toThrow(message);
    expect(() => new ParameterAdapter(config)).toThrow(message);
  });

  it("fills the released config's defaults", () => {
    expect(resolveAdapterConfig(base)).toEqual({
      sourceShape: [4, 5],
      targetShape: [6, 7],
      layers: 2,
      heads: 8,
      attentionDropout: 0.1,
      ffnDropout: 0.2,
      spectralNorm: true,
      powerIterations: 1,
      blocks: { rowsRows: true, rowsCols: true, colsRows: true, colsCols: true },
      blockWeighting: "mean",
      inputScaling: "none",
      attentionTemperature: "fixed",
      identityInit: false,
      seed: 0,
      name: "adapter",
    });
  });

  it("rejects inputs of the wrong shape, unknown parameter names and mis-shaped values", () => {
    const adapter = new ParameterAdapter({ ...base, layers: 1, name: "errors" });
    const source = tf.zeros([4, 5]) as tf.Tensor2D;
    const target = tf.zeros([6, 7]) as tf.Tensor2D;
    const wrong = tf.zeros([5, 4]) as tf.Tensor2D;
    expect(() => adapter.forward(wrong, target, { training: false })).toThrow(
      /adapter 'errors': source has shape \[5, 4\] but the adapter was built for sourceShape \[4, 5\]/,
    );
    expect(() => adapter.inspect(source, wrong)).toThrow(/target has shape \[5, 4\] but the adapter was built for targetShape \[6, 7\]/);
    expect(() => adapter.parameter("layer0.ffn.up.weight")).toThrow(/adapter has no parameter 'layer0\.ffn\.up\.weight'; valid names: layer0\.rows_rows\.q\.kernel, .*layer0\.ffn\.up\.kernel/);
    const before = adapter.parameter("layer0.ffn.up.bias").dataSync().slice();
    expect(() => adapter.setParameters({ "layer0.ffn.up.bias": tf.ones([14]), "layer0.ffn.up.kernel": tf.ones([3, 3]) })).toThrow(
      /adapter parameter 'layer0\.ffn\.up\.kernel' has shape \[7, 14\], but the value given has shape \[3, 3\]/,
    );
    expect(adapter.parameter("layer0.ffn.up.bias").dataSync()).toEqual(before); // nothing assigned
    tf.dispose([source, target, wrong]);
    adapter.dispose();
  });
});
