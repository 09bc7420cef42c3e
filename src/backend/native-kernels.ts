/**
 * Native TensorFlow kernels that trainStep (core/step.ts) runs on the `tensorflow` backend:
 * ReLU's gradient as one `ReluGrad` op, and softmax cross-entropy with its gradient as one
 * `SparseSoftmaxCrossEntropyWithLogits` op. Registering kernels is backend code, so it lives
 * here beside the backend's choice (index.ts) and the wasm kernels (wasm-gradients.ts);
 * the loss that runs the second kernel stays in core/step.ts.
 */
import * as tf from "@tensorflow/tfjs";

/** Kernel name of the native ReLU gradient that installFastGradients registers. */
export const FAST_RELU_GRAD_KERNEL = "MergeNetReluGrad";
/** Kernel name of the native softmax cross-entropy (loss and its gradient in one op). */
export const FAST_SPARSE_XENT_KERNEL = "MergeNetSparseSoftmaxCrossEntropy";

/** The part of tfjs-node's backend that runs one TensorFlow op by name. */
interface NativeBackend {
  binding: { TF_ATTR_TYPE: number; TF_FLOAT: number; TF_INT32: number };
  executeSingleOutput(name: string, attrs: { name: string; type: number; value: unknown }[], inputs: tf.TensorInfo[]): tf.TensorInfo;
  executeMultipleOutputs(name: string, attrs: { name: string; type: number; value: unknown }[], inputs: tf.TensorInfo[], outputs: number): tf.TensorInfo[];
}

let fastGradientsInstalled = false;

/**
 * Replaces tfjs's gradient of ReLU with a faster one of the same value, process-wide
 * (idempotent; trainStep calls it). A speed choice, measured: tfjs computes ReLU's gradient
 * as dy * step(x), and on the native backend `Step` is six ops plus a ones-tensor built in
 * JavaScript: 4.2 ms on bench-mnist's first conv activation [64, 28, 28, 32], a fifth of
 * the CNN's whole step. On the `tensorflow` backend the gradient is TensorFlow's own
 * `ReluGrad` op (one op, 0.2 ms); on other backends it stays dy * step(x). Both give
 * dy where x > 0 and 0 elsewhere; they differ only where x is NaN or dy is not finite
 * (ReluGrad gives 0 there, dy * step(x) NaN). Also registers the native kernel that
 * fastSparseCrossEntropy runs.
 */
export function installFastGradients(): void {
  if (fastGradientsInstalled) return;
  fastGradientsInstalled = true;
  tf.registerKernel({
    kernelName: FAST_RELU_GRAD_KERNEL,
    backendName: "tensorflow",
    kernelFunc: ({ inputs, backend }) => {
      const native = backend as unknown as NativeBackend;
      const type = { name: "T", type: native.binding.TF_ATTR_TYPE, value: native.binding.TF_FLOAT };
      return native.executeSingleOutput("ReluGrad", [type], [inputs.dy as tf.TensorInfo, inputs.x as tf.TensorInfo]);
    },
  });
  // Second order, for completeness: the op is linear in dy with slope step(x), flat in x.
  tf.registerGradient({
    kernelName: FAST_RELU_GRAD_KERNEL,
    inputsToSave: ["x"],
    gradFunc: (ddx, saved) => ({
      dy: () => tf.mul(ddx as tf.Tensor, tf.step(saved[0])),
      x: () => tf.zerosLike(saved[0]),
    }),
  });
  tf.registerKernel({
    kernelName: FAST_SPARSE_XENT_KERNEL,
    backendName: "tensorflow",
    kernelFunc: ({ inputs, backend }) => {
      const native = backend as unknown as NativeBackend;
      const attrs = [
        { name: "T", type: native.binding.TF_ATTR_TYPE, value: native.binding.TF_FLOAT },
        { name: "Tlabels", type: native.binding.TF_ATTR_TYPE, value: native.binding.TF_INT32 },
      ];
      return native.executeMultipleOutputs("SparseSoftmaxCrossEntropyWithLogits", attrs, [inputs.logits as tf.TensorInfo, inputs.labels as tf.TensorInfo], 2);
    },
  });
  tf.registerGradient({
    kernelName: "Relu",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      const d = dy as tf.Tensor;
      const native = tf.getBackend() === "tensorflow" && x.dtype === "float32" && d.dtype === "float32";
      return { x: () => (native ? (tf.engine().runKernel(FAST_RELU_GRAD_KERNEL, { dy: d, x }, {}) as tf.Tensor) : tf.mul(d, tf.cast(tf.step(x), "float32"))) };
    },
  });
}

let shortcutsInstalled = false;

/**
 * Makes tfjs-node's Reshape to the shape a tensor already has, and its Cast to the dtype it
 * already has, return the input itself instead of running a native op (issue 16: each native
 * op costs a fixed 20-30 µs). Both are no-ops of value, so every number stays the same to the
 * last bit; only the op count falls. tfjs runs many such ops: the gradient of a broadcasting
 * add reshapes dy to its own shape and the bias gradient's sum to the shape it has, and
 * tfjs-node's Mean casts a float32 input to float32 first. Process-wide, on the `tensorflow`
 * backend only (initBackend installs it); other backends keep their own kernels (tfjs's cpu and
 * wasm Reshape already share the data).
 */
export function installNoOpShortcuts(): void {
  if (shortcutsInstalled) return;
  shortcutsInstalled = true;
  const unchanged: Record<string, (x: tf.TensorInfo, attrs: tf.NamedAttrMap) => boolean> = {
    Reshape: (x, attrs) => {
      const shape = tf.util.inferFromImplicitShape([...(attrs.shape as number[])], tf.util.sizeFromShape(x.shape));
      return shape.length === x.shape.length && shape.every((n, i) => n === x.shape[i]);
    },
    Cast: (x, attrs) => x.dtype === attrs.dtype,
  };
  for (const [kernelName, isNoOp] of Object.entries(unchanged)) {
    const stock = tf.getKernel(kernelName, "tensorflow");
    if (!stock) continue;
    tf.unregisterKernel(kernelName, "tensorflow");
    tf.registerKernel({
      ...stock,
      kernelFunc: (args) => {
        const x = args.inputs.x as tf.TensorInfo;
        if (!isNoOp(x, args.attrs ?? {})) return stock.kernelFunc(args);
        // As tfjs-node's Identity kernel: the output shares the input's data.
        (args.backend as unknown as { incRef(dataId: tf.DataId): void }).incRef(x.dataId);
        return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
      },
    });
  }
}

/** Kernel name of the float32 mean without tfjs-node's extra Cast op (fastMean). */
export const FAST_MEAN_KERNEL = "MergeNetMean";

let fastMeanInstalled = false;

function installFastMean(): void {
  if (fastMeanInstalled) return;
  fastMeanInstalled = true;
  tf.registerKernel({
    kernelName: FAST_MEAN_KERNEL,
    backendName: "tensorflow",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const native = backend as unknown as NativeBackend & { createReductionOpAttrs(x: tf.TensorInfo, keepDims: boolean): unknown[] };
      const x = inputs.x as tf.TensorInfo;
      const { axes, keepDims } = attrs as unknown as { axes: number[]; keepDims: boolean };
      const axesTensor = tf.tensor1d(axes, "int32");
      const out = native.executeSingleOutput("Mean", native.createReductionOpAttrs(x, keepDims) as never, [x, axesTensor]);
      axesTensor.dispose();
      return out;
    },
  });
  // For completeness (the adapter calls it where no tape records): the mean's gradient, dy spread evenly.
  tf.registerGradient({
    kernelName: FAST_MEAN_KERNEL,
    inputsToSave: ["x"],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const { axes } = attrs as unknown as { axes: number[] };
      const kept = x.shape.map((n, i) => (axes.includes(i) ? 1 : n));
      const count = axes.reduce((n, a) => n * x.shape[a], 1);
      return { x: () => tf.div(tf.mul(tf.reshape(dy as tf.Tensor, kept), tf.onesLike(x)), count) };
    },
  });
}

/**
 * tf.mean of a float32 tensor, as one op on the `tensorflow` backend: tfjs-node's Mean kernel
 * runs a Cast to float32 first, a second native op even when the input is float32 already
 * (a fixed 20-30 µs each). Same values (TensorFlow's own Mean either way). Other backends and
 * dtypes: tf.mean.
 */
export function fastMean(x: tf.Tensor, axis?: number | number[], keepDims = false): tf.Tensor {
  if (tf.getBackend() !== "tensorflow" || x.dtype !== "float32") return tf.mean(x, axis, keepDims);
  installFastMean();
  const axes = axis === undefined ? x.shape.map((_, i) => i) : tf.util.parseAxisParam(axis, x.shape);
  return tf.engine().runKernel(FAST_MEAN_KERNEL, { x }, { axes, keepDims } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * tf.moments of a float32 tensor over all its entries (mean and population variance, both
 * []), in four ops on the `tensorflow` backend where tf.moments takes eight (two Casts in its
 * means, one more Cast and a Reshape of its own). Same values: the same Mean, Sub and Square.
 */
export function fastMoments(x: tf.Tensor): { mean: tf.Scalar; variance: tf.Scalar } {
  const mean = fastMean(x) as tf.Scalar;
  return { mean, variance: fastMean(tf.square(tf.sub(x, mean))) as tf.Scalar };
}
