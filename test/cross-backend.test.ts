// Cross-backend consistency: the same small ops and their gradients on tfjs's pure-JS cpu
// backend (the reference) and on each fast backend the project may run on:
//   tensorflow  the native library, TensorFlow 2.21 under tfjs-node's binding written for
//               2.9.1: this test is what catches drift between the two;
//   wasm        @tensorflow/tfjs-backend-wasm with the kernels src/backend/wasm-gradients.ts adds.
// Tolerance (float32 everywhere): every element satisfies |got - cpu| <= 1e-4 * (1 + |cpu|),
// i.e. 1e-4 absolute for values up to 1 and 1e-4 relative above. Inputs are in [-1, 1] and
// the shapes small, so a correct backend sits far inside it (~1e-6 seen here).
// The tensorflow part is skipped (reported as skipped) when the native backend cannot be
// loaded, unless MERGENET_REQUIRE_NATIVE=1 (CI), where it runs and fails.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { registerWasmGradients } from "../src/backend/wasm-gradients";
import { runOn, uniform } from "./helpers/numeric";

require("@tensorflow/tfjs-backend-wasm");
registerWasmGradients();

const REL_TOL = 1e-4;
const requireNative = process.env.MERGENET_REQUIRE_NATIVE === "1";

/** True when tfjs-node's native backend can be loaded and registered here. */
function nativeRegistered(): boolean {
  try {
    process.env.TF_CPP_MIN_LOG_LEVEL ??= "3";
    require("@tensorflow/tfjs-node");
  } catch {
    return false;
  }
  return tf.findBackend("tensorflow") !== null;
}
const hasNative = nativeRegistered();

function expectClose(got: Float32Array[], want: Float32Array[], what: string): void {
  expect(got.length).toBe(want.length);
  want.forEach((w, k) => {
    const g = got[k];
    expect(g.length, `${what}, output ${k}: length`).toBe(w.length);
    let worst = 0;
    let at = 0;
    for (let i = 0; i < w.length; i++) {
      const err = Math.abs(g[i] - w[i]) / (1 + Math.abs(w[i]));
      if (Number.isNaN(err) || err > worst) [worst, at] = [Number.isNaN(err) ? Infinity : err, i];
    }
    expect(worst, `${what}, output ${k}: element ${at} is ${g[at]}, cpu says ${w[at]}`).toBeLessThanOrEqual(REL_TOL);
  });
}

/** sum(f(inputs) * upstream): a scalar whose gradient is f's vector-Jacobian product. */
function weightedSum(y: tf.Tensor, seed: number): tf.Scalar {
  return tf.sum(tf.mul(y, uniform(y.shape, seed)));
}

function conv2dCase(xShape: number[], filterShape: number[], strides: number, pad: "same" | "valid") {
  return (): tf.Tensor[] => {
    const conv = (x: tf.Tensor, f: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, strides, pad);
    const x = uniform(xShape, 11);
    const f = uniform(filterShape, 12);
    // [B, H, W, CI] * [KH, KW, CI, CO] -> [B, OH, OW, CO]; gradients have x's and f's shapes
    return [conv(x, f), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => weightedSum(conv(a, b), 13))([x, f])];
  };
}

/** softmax(q k^T / sqrt(d)) v for q [B, Tq, d], k [B, Tk, d], v [B, Tk, dv] -> [B, Tq, dv]. */
function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor {
  const d = q.shape[q.shape.length - 1];
  const scores = tf.div(tf.matMul(q, k, false, true), Math.sqrt(d)); // [B, Tq, Tk]
  return tf.matMul(tf.softmax(scores), v);
}

/** (x - mean) / sqrt(var + eps) * g + b over the last axis: x [N, D], g [D], b [D] -> [N, D]. */
function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps = 1e-5): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true); // [N, 1] each
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), g), b);
}

const CASES: Record<string, () => tf.Tensor[]> = {
  "matmul and its gradient": () => {
    const a = uniform([5, 7], 1);
    const b = uniform([7, 3], 2);
    const mm = (p: tf.Tensor, q: tf.Tensor) => tf.matMul(p, q); // [5, 7] . [7, 3] -> [5, 3]
    return [mm(a, b), ...tf.grads((p: tf.Tensor, q: tf.Tensor) => weightedSum(mm(p, q), 3))([a, b])];
  },
  "batched matmul with transposes": () => {
    const a = uniform([2, 6, 4], 4);
    const b = uniform([2, 3, 6], 5);
    return [tf.matMul(a, b, true, true)]; // [2, 4, 6] . [2, 6, 3] -> [2, 4, 3]
  },
  "conv2d 3x3 stride 1 same, input and filter gradients": conv2dCase([2, 9, 9, 3], [3, 3, 3, 4], 1, "same"),
  "conv2d 3x3 stride 2 valid, input and filter gradients": conv2dCase([2, 9, 8, 2], [3, 3, 2, 5], 2, "valid"),
  "softmax attention and its gradient": () => {
    const q = uniform([2, 5, 8], 21);
    const k = uniform([2, 6, 8], 22);
    const v = uniform([2, 6, 4], 23);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => weightedSum(attention(a, b, c), 24))([q, k, v]);
    return [attention(q, k, v), ...grads];
  },
  "layer norm and its gradient": () => {
    const x = tf.mul(uniform([6, 16], 31), 3);
    const g = tf.add(uniform([16], 32), 1);
    const b = uniform([16], 33);
    const grads = tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => weightedSum(layerNorm(p, q, r), 34))([x, g, b]);
    return [layerNorm(x, g, b), ...grads];
  },
};

describe("cross-backend consistency against the cpu backend", () => {
  let previous: string;
  const reference = new Map<string, Float32Array[]>();

  beforeAll(async () => {
    previous = tf.getBackend();
    for (const [name, outputs] of Object.entries(CASES)) reference.set(name, await runOn("cpu", outputs));
  });
  afterAll(async () => {
    await tf.setBackend(previous);
  });

  describe("tensorflow (native) vs cpu", () => {
    for (const [name, outputs] of Object.entries(CASES)) {
      it.skipIf(!hasNative && !requireNative)(name, async () => {
        if (!hasNative) {
          throw new Error(
            "MERGENET_REQUIRE_NATIVE=1 but the tensorflow backend is not registered: @tensorflow/tfjs-node failed to load (see README 'Backends').",
          );
        }
        expectClose(await runOn("tensorflow", outputs), reference.get(name)!, `tensorflow: ${name}`);
      });
    }
  });

  describe("wasm vs cpu", () => {
    for (const [name, outputs] of Object.entries(CASES)) {
      it(name, async () => {
        expectClose(await runOn("wasm", outputs), reference.get(name)!, `wasm: ${name}`);
      });
    }
  });

  it("the comparison can fail: a perturbed output is caught", () => {
    const want = [new Float32Array([1, -2, 300])];
    expect(() => expectClose([new Float32Array([1, -2, 300.1])], want, "perturbed")).toThrow(/element 2/);
    expect(() => expectClose([new Float32Array([1, -2, 300.01])], want, "within tolerance")).not.toThrow();
  });
});
