// The wasm fallback backend can train CNNs with the kernels src/backend/wasm-gradients.ts registers.
// Each gradient is checked against tfjs's cpu backend (the reference) on the same inputs.
// Tolerance (float32): every element satisfies |wasm - cpu| <= 1e-4 * (1 + |cpu|), i.e.
// 1e-4 absolute for values up to 1 and 1e-4 relative above (~1e-7 seen here).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { registerWasmGradients, WASM_TRAINING_KERNELS } from "../src/backend/wasm-gradients";
import { expectNoTensorLeak } from "./helpers/leaks";
import { runOn, uniform } from "./helpers/numeric";

require("@tensorflow/tfjs-backend-wasm");

// What the registry held before registerWasmGradients first ran, for the registration test.
const cpuKernelsBefore = tf.getKernelsForBackend("cpu").map((k) => [k.kernelName, k.kernelFunc]);
const wasmKernelsBefore = new Map(WASM_TRAINING_KERNELS.map((name) => [name, tf.getKernel(name, "wasm")?.kernelFunc]));
registerWasmGradients();

const REL_TOL = 1e-4;

/**
 * Every element within REL_TOL of cpu's, relative to 1 + |that element| ("element") or to
 * 1 + the largest |element| of that output ("tensor", for long float32 sums where
 * cancellation leaves some elements far smaller than the rounding of their partial sums).
 */
function expectClose(got: Float32Array[], want: Float32Array[], what: string, scale: "element" | "tensor" = "element"): void {
  expect(got.length).toBe(want.length);
  want.forEach((w, k) => {
    const g = got[k];
    expect(g.length, `${what}, output ${k}: length`).toBe(w.length);
    const largest = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    let worst = 0;
    let at = 0;
    for (let i = 0; i < w.length; i++) {
      const err = Math.abs(g[i] - w[i]) / (1 + (scale === "element" ? Math.abs(w[i]) : largest));
      if (Number.isNaN(err) || err > worst) [worst, at] = [Number.isNaN(err) ? Infinity : err, i];
    }
    expect(worst, `${what}, output ${k}: element ${at} is ${g[at]}, cpu says ${w[at]}`).toBeLessThanOrEqual(REL_TOL);
  });
}

async function expectWasmMatchesCpu(outputs: () => tf.Tensor[], what: string, scale: "element" | "tensor" = "element"): Promise<void> {
  const want = await runOn("cpu", outputs);
  const got = await runOn("wasm", outputs);
  expectClose(got, want, what, scale);
}

/** sum(y * upstream): a scalar whose gradient is y's vector-Jacobian product. */
function weightedSum(y: tf.Tensor, seed: number): tf.Scalar {
  return tf.sum(tf.mul(y, uniform(y.shape, seed)));
}

/** The undilated filter equal to `filter` at dilation `rate`: [KH, KW, C, M] -> [(KH-1)*rate+1, (KW-1)*rate+1, C, M]. */
function zeroStuffed(filter: tf.Tensor, rate: number): tf.Tensor {
  const [kh, kw, c, m] = filter.shape;
  const src = filter.dataSync();
  const eh = (kh - 1) * rate + 1;
  const ew = (kw - 1) * rate + 1;
  const out = new Float32Array(eh * ew * c * m);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      for (let k = 0; k < c * m; k++) out[(i * rate * ew + j * rate) * c * m + k] = src[(i * kw + j) * c * m + k];
    }
  }
  return tf.tensor(out, [eh, ew, c, m]);
}

type Pad = "same" | "valid" | number | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 7, 7, 1], filter: [3, 3, 1, 4], strides: 1, pad: "same" },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 5], strides: 2, pad: "same" },
  { x: [1, 9, 9, 2], filter: [2, 2, 2, 3], strides: 2, pad: "valid" },
  { x: [3, 10, 9, 2], filter: [5, 5, 2, 3], strides: 3, pad: "valid" },
  { x: [2, 6, 7, 3], filter: [3, 2, 3, 2], strides: [1, 2], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [2, 5, 5, 2], filter: [3, 3, 2, 2], strides: 2, pad: 1 },
];

function convOf(c: ConvCase) {
  const rounding = typeof c.pad === "number" ? "floor" : undefined;
  return (x: tf.Tensor, f: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad, "NHWC", 1, rounding);
}

/** A small CNN's loss: conv3x3(4, same)+relu -> maxPool2 -> conv3x3(8, same, stride 1)+relu -> maxPool2 -> dense(10) -> softmax CE. */
function smallCnnLoss(x: tf.Tensor4D, labels: tf.Tensor2D, w: tf.Tensor[]): tf.Scalar {
  const [k1, b1, k2, b2, k3, b3] = w;
  const convRelu = (h: tf.Tensor4D, k: tf.Tensor, b: tf.Tensor) => tf.relu(tf.add(tf.conv2d(h, k as tf.Tensor4D, 1, "same"), b)) as tf.Tensor4D;
  const h1 = tf.maxPool(convRelu(x, k1, b1), 2, 2, "valid"); // [B, 12, 12, 1] -> [B, 6, 6, 4]
  const h2 = tf.maxPool(convRelu(h1, k2, b2), 2, 2, "valid"); // -> [B, 3, 3, 8]
  const logits = tf.add(tf.matMul(tf.reshape(h2, [x.shape[0], 72]), k3), b3); // [B, 72] -> [B, 10]
  return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
}

function smallCnnWeights(): tf.Tensor[] {
  return [uniform([3, 3, 1, 4], 41), tf.mul(uniform([4], 42), 0.1), tf.mul(uniform([3, 3, 4, 8], 43), 0.5), tf.mul(uniform([8], 44), 0.1), tf.mul(uniform([72, 10], 45), 0.3), tf.zeros([10])];
}

/** A batch of 12x12 images: class 0 has a vertical bar, class 1 a horizontal one, plus noise. */
function barImages(count: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  return tf.tidy(() => {
    const values = new Float32Array(count * 144);
    const labels: number[] = [];
    const noise = uniform([count * 144], 7).dataSync();
    for (let n = 0; n < count; n++) {
      const label = n % 2;
      const at = 2 + ((n * 5) % 8);
      for (let i = 0; i < 12; i++) {
        for (let j = 0; j < 12; j++) {
          const onBar = label === 0 ? j === at : i === at;
          values[n * 144 + i * 12 + j] = (onBar ? 1 : 0) + 0.1 * noise[n * 144 + i * 12 + j];
        }
      }
      labels.push(label);
    }
    return { x: tf.tensor4d(values, [count, 12, 12, 1]), y: tf.oneHot(tf.tensor1d(labels, "int32"), 2).toFloat() as tf.Tensor2D };
  });
}

describe("wasm backend training kernels", () => {
  let previous: string;

  beforeAll(() => {
    previous = tf.getBackend();
  });
  afterAll(async () => {
    await tf.setBackend(previous);
  });

  it("registers its kernels for wasm only, replacing the wasm ones it fixes, and a second call changes nothing", () => {
    const registered = WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, "wasm"));
    for (const [i, name] of WASM_TRAINING_KERNELS.entries()) {
      expect(registered[i], name).toBeDefined();
      expect(registered[i]!.kernelFunc, `${name} is this project's`).not.toBe(wasmKernelsBefore.get(name));
    }
    expect(wasmKernelsBefore.get("Conv2DBackpropFilter"), "tfjs-backend-wasm 4.22 lacks Conv2DBackpropFilter").toBeUndefined();
    const wasmCount = tf.getKernelsForBackend("wasm").length;
    registerWasmGradients();
    expect(tf.getKernelsForBackend("wasm").length).toBe(wasmCount);
    WASM_TRAINING_KERNELS.forEach((name, i) => expect(tf.getKernel(name, "wasm")).toBe(registered[i]));
    expect(tf.getKernelsForBackend("cpu").map((k) => [k.kernelName, k.kernelFunc])).toEqual(cpuKernelsBefore);
  });

  for (const c of CONV_CASES) {
    it(`conv2d gradients match cpu: x [${c.x}], filter [${c.filter}], strides ${c.strides}, pad ${JSON.stringify(c.pad)}`, async () => {
      const conv = convOf(c);
      await expectWasmMatchesCpu(() => {
        const x = uniform(c.x, 1);
        const f = uniform(c.filter, 2);
        // dx [B, H, W, CI] and dfilter [KH, KW, CI, CO]
        return [conv(x, f), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => weightedSum(conv(a, b), 3))([x, f])];
      }, "conv2d");
    });
  }

  it("conv2d gradients are right when the batch is split into im2col chunks", async () => {
    // x [3, 128, 128, 8] with a 5x5 filter: im2col needs 3 * 128*128 * 200 floats, more than one
    // 2^24-float chunk. Each dW element sums 49k products in float32 (as XNNPACK and native
    // TensorFlow do; cpu sums in float64), so the tolerance is relative to the largest |dW|.
    const c: ConvCase = { x: [3, 128, 128, 8], filter: [5, 5, 8, 2], strides: 1, pad: "same" };
    const conv = convOf(c);
    await expectWasmMatchesCpu(() => {
      const x = uniform(c.x, 4);
      const f = uniform(c.filter, 5);
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => weightedSum(conv(a, b), 6))([x, f]);
    }, "chunked conv2d gradients", "tensor");
  });

  it("conv2d through a fused bias + relu (what tf.layers.conv2d runs) trains the same as cpu", async () => {
    await expectWasmMatchesCpu(() => {
      const x = uniform([2, 8, 8, 3], 51) as tf.Tensor4D;
      const f = uniform([3, 3, 3, 4], 52);
      const bias = uniform([4], 53);
      const fused = (a: tf.Tensor, b: tf.Tensor) =>
        tf.fused.conv2d({ x, filter: a as tf.Tensor4D, strides: 1, pad: "same", bias: b, activation: "relu" });
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => weightedSum(fused(a, b), 54))([f, bias]);
    }, "fused conv2d");
  });

  for (const [strides, pad, dilations] of [
    [1, "same", 1],
    [2, "valid", 1],
    [[2, 1], "same", 1],
  ] as [number | [number, number], "same" | "valid", number][]) {
    it(`depthwise conv2d gradients match cpu: strides ${strides}, pad ${pad}`, async () => {
      const dw = (x: tf.Tensor, f: tf.Tensor) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, strides, pad, "NHWC", dilations);
      await expectWasmMatchesCpu(() => {
        const x = uniform([2, 8, 7, 3], 61);
        const f = uniform([3, 3, 3, 2], 62); // channel multiplier 2
        return [dw(x, f), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => weightedSum(dw(a, b), 63))([x, f])];
      }, "depthwise conv2d");
    });
  }

  it("depthwise backprop kernels honour dilations (reference: the undilated kernel with a zero-stuffed filter, on cpu)", async () => {
    // tfjs's gradients never pass dilations > 1 and its cpu depthwise backprop kernels ignore
    // them, so the reference is the same convolution written with a 5x5 filter whose odd taps are 0.
    const x = () => uniform([2, 9, 8, 2], 71);
    const dy = () => uniform([2, 9, 8, 4], 72); // 'same', stride 1: [B, H, W, C*M]
    const small = () => uniform([3, 3, 2, 2], 73);
    const stuffed = () => zeroStuffed(small(), 2); // [3, 3, 2, 2] -> [5, 5, 2, 2]
    const runKernel = (name: string, inputs: tf.NamedTensorMap, attrs: object) =>
      tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    const want = await runOn("cpu", () => {
      const dW5 = runKernel("DepthwiseConv2dNativeBackpropFilter", { x: x(), dy: dy() }, { strides: 1, dilations: 1, pad: "same", filterShape: [5, 5, 2, 2] });
      const dWDilated = tf.stridedSlice(dW5, [0, 0, 0, 0], [5, 5, 2, 2], [2, 2, 1, 1]); // taps 0, 2, 4 -> [3, 3, 2, 2]
      const dx = runKernel("DepthwiseConv2dNativeBackpropInput", { dy: dy(), filter: stuffed() }, { strides: 1, dilations: 1, pad: "same", inputShape: [2, 9, 8, 2] });
      return [dWDilated, dx];
    });
    const got = await runOn("wasm", () => [
      runKernel("DepthwiseConv2dNativeBackpropFilter", { x: x(), dy: dy() }, { strides: 1, dilations: 2, pad: "same", filterShape: [3, 3, 2, 2] }),
      runKernel("DepthwiseConv2dNativeBackpropInput", { dy: dy(), filter: small() }, { strides: 1, dilations: 2, pad: "same", inputShape: [2, 9, 8, 2] }),
    ]);
    expectClose(got, want, "dilated depthwise backprop");
  });

  for (const [size, strides, pad] of [
    [2, 2, "valid"],
    [3, 1, "same"],
    [3, 2, "same"],
    [2, 3, "valid"],
  ] as [number, number, "same" | "valid"][]) {
    for (const kind of ["maxPool", "avgPool"] as const) {
      it(`${kind} ${size}x${size} stride ${strides} ${pad} gradient matches cpu (negative inputs included)`, async () => {
        const pool = (x: tf.Tensor) => tf[kind](x as tf.Tensor4D, size, strides, pad);
        await expectWasmMatchesCpu(() => {
          const x = uniform([2, 9, 8, 3], 81); // values in [-1, 1): some windows are all negative
          return [pool(x), tf.grad((a: tf.Tensor) => weightedSum(pool(a), 82))(x)];
        }, kind);
      });
    }
  }

  for (const [transposeA, transposeB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ]) {
    it(`matMul transposeA=${transposeA} transposeB=${transposeB} matches cpu: broadcast batch dims, and gradients`, async () => {
      // Stored shapes; a transposed operand swaps its last two axes. tfjs's matMul gradient
      // does not broadcast (on any backend), so the gradient is taken with equal batch dims.
      const swap = (shape: number[], t: boolean) => (t ? [...shape.slice(0, -2), shape[shape.length - 1], shape[shape.length - 2]] : shape);
      const mm = (p: tf.Tensor, q: tf.Tensor) => tf.matMul(p, q, transposeA, transposeB);
      await expectWasmMatchesCpu(() => {
        const broadcast = mm(uniform(swap([2, 1, 6, 5], transposeA), 111), uniform(swap([3, 5, 4], transposeB), 112)); // -> [2, 3, 6, 4]
        const a = uniform(swap([2, 6, 5], transposeA), 113);
        const b = uniform(swap([2, 5, 4], transposeB), 114);
        return [broadcast, mm(a, b), ...tf.grads((p: tf.Tensor, q: tf.Tensor) => weightedSum(mm(p, q), 115))([a, b])];
      }, "matMul");
    });
  }

  it("gather's gradient (UnsortedSegmentSum: embeddings) matches cpu, repeated and unused rows included", async () => {
    await expectWasmMatchesCpu(() => {
      const table = uniform([10, 4], 91);
      const ids = tf.tensor1d([1, 3, 3, 9, 0, 1, 3], "int32");
      return [tf.grad((t: tf.Tensor) => weightedSum(tf.gather(t, ids), 92))(table)]; // [10, 4]
    }, "gather gradient");
  });

  it("a small CNN's loss gradient w.r.t. all its weights matches cpu", async () => {
    await expectWasmMatchesCpu(() => {
      const x = uniform([4, 12, 12, 1], 101) as tf.Tensor4D;
      const labels = tf.oneHot(tf.tensor1d([0, 3, 7, 9], "int32"), 10).toFloat() as tf.Tensor2D;
      const weights = smallCnnWeights();
      const { value, grads } = tf.valueAndGrads((...w: tf.Tensor[]) => smallCnnLoss(x, labels, w))(weights);
      return [value, ...grads];
    }, "small CNN");
  });

  it("a small tf.layers CNN trains on wasm: SGD steps lower the loss, without leaking tensors", async () => {
    await tf.setBackend("wasm");
    const { x, y } = barImages(32);
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 4, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: init(1) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: init(2) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2, kernelInitializer: init(3) }),
      ],
    });
    const optimizer = tf.train.sgd(0.3);
    const loss = () => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar;
    const step = (): number => {
      const value = optimizer.minimize(loss, true)!;
      const v = value.dataSync()[0];
      value.dispose();
      return v;
    };
    try {
      const losses = Array.from({ length: 15 }, step);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[losses.length - 1]).toBeLessThan(0.5 * losses[0]); // seen here: 0.75 -> 0.12
      await expectNoTensorLeak(() => void step(), { warmup: 1, repeats: 3 });
    } finally {
      model.dispose();
      optimizer.dispose();
      tf.dispose([x, y]);
    }
  });

  it("unsupported input gets a clear error: NCHW, non-float32", async () => {
    await tf.setBackend("wasm");
    const x = tf.zeros([1, 2, 5, 5]);
    const dy = tf.zeros([1, 2, 3, 3]);
    const xInt = tf.zeros([1, 5, 5, 2], "int32");
    const dyNhwc = tf.zeros([1, 3, 3, 2]);
    try {
      expect(() =>
        tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, { strides: 1, pad: "valid", dataFormat: "NCHW", filterShape: [3, 3, 2, 2] }),
      ).toThrow(/dataFormat 'NCHW' is not supported/);
      expect(() =>
        tf.engine().runKernel("Conv2DBackpropFilter", { x: xInt, dy: dyNhwc }, { strides: 1, pad: "valid", dataFormat: "NHWC", filterShape: [3, 3, 2, 2] }),
      ).toThrow(/x has dtype int32; only float32 is supported/);
    } finally {
      tf.dispose([x, dy, xInt, dyNhwc]);
    }
  });
});
