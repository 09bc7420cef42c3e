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
