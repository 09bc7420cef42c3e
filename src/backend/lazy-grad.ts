/**
 * customGradLazy: tf.customGrad whose gradient is one function per input, called only for the
 * inputs the gradient is asked of. A speed choice (issue 16): tf.customGrad's gradient
 * returns every input's gradient at once, so a block of the adapter computed the gradient of
 * its queries and keys (four matmuls and an add per block) even where they are constants (the
 * source and target weights the trainer reads), and the write-back that of the target weight
 * (seven ops). tfjs's tape already asks only for the gradients of the inputs that lead back to
 * the watched tensors, calling one function per input: this wrapper hands it one function per
 * input instead of precomputed tensors. It runs through the engine's runKernelFunc, the same
 * call tf.customGrad makes (the engine keeps it out of its typings; the one use here).
 *
 * The gradient function runs inside the tape's backward scope: tensors it makes outside the
 * returned functions live until the backward pass ends (where the shared parts of the
 * gradient belong); each returned function runs in its own tidy, keeping what it returns.
 */
import { tf } from "./index";

export interface LazyGradResult {
  value: tf.Tensor;
  /** One function per input, in input order, returning that input's gradient. */
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => Array<() => tf.Tensor>;
}

interface EngineWithKernelFunc {
  runKernelFunc(params: {
    forwardFunc: (backend: unknown, save: tf.GradSaveFunc) => tf.Tensor;
    backwardsFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: Record<string, tf.Tensor>;
  }): tf.Tensor;
}

/** f(inputs, save) -> { value, gradFunc }; save as tf.customGrad's (tensors kept for the gradient). */
export function customGradLazy(f: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => LazyGradResult): (...inputs: tf.Tensor[]) => tf.Tensor {
  return (...inputs: tf.Tensor[]): tf.Tensor => {
    let result: LazyGradResult | undefined;
    const inputMap: Record<string, tf.Tensor> = {};
    inputs.forEach((input, i) => (inputMap[i] = input));
    const engine = tf.engine() as unknown as EngineWithKernelFunc;
    return engine.runKernelFunc({
      forwardFunc: (_backend, save) => {
        result = f(inputs, save);
        return result.value;
      },
      backwardsFunc: (dy, saved) => {
        const thunks = (result as LazyGradResult).gradFunc(dy, saved);
        if (thunks.length !== inputs.length) throw new Error(`customGradLazy: ${thunks.length} gradient functions for ${inputs.length} inputs`);
        const map: Record<string, () => tf.Tensor> = {};
        thunks.forEach((thunk, i) => (map[i] = thunk));
        return map;
      },
      inputs: inputMap,
    });
  };
}
