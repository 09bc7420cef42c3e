// Shared numeric test helpers: deterministic inputs, running ops on a named backend, finite differences.
import { tf } from "../../src/backend/index";
import { mulberry32 } from "../../src/util/random";

/** Deterministic values in [-1, 1) (mulberry32), identical on every backend. */
export function uniform(shape: number[], seed: number): tf.Tensor {
  const next = mulberry32(seed);
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = 2 * next() - 1;
  return tf.tensor(values, shape, "float32");
}

/** Runs `outputs` on `backend` and returns copies of the results (no tensors kept). */
export async function runOn(backend: string, outputs: () => tf.Tensor[]): Promise<Float32Array[]> {
  if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
  const tensors = tf.tidy(outputs);
  const values = tensors.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(tensors);
  return values;
}

/** Central finite difference of `loss` in one element of `variable`. */
export function finiteDifference(loss: () => number, variable: tf.Variable, index: number, step: number): number {
  const original = variable.dataSync().slice();
  const evaluate = (delta: number): number => {
    const values = original.slice();
    values[index] += delta;
    tf.tidy(() => variable.assign(tf.tensor(values, variable.shape)));
    return loss();
  };
  const plus = evaluate(step);
  const minus = evaluate(-step);
  tf.tidy(() => variable.assign(tf.tensor(original, variable.shape)));
  return (plus - minus) / (2 * step);
}
