/**
 * The data check at the door: a training set is checked once against the model that will
 * read it, before its first step, so that bad data is named as bad data. Without it, one NaN
 * pixel surfaces as a "divergence" that the trainer answers by halving the adapter's
 * learning rate (or, in the source, as a mean loss of 1e35 with no error at all); a label
 * equal to the class count is TensorFlow's raw `Invalid TF_Status: 3` on the native backend
 * and a silent loss of 0 on wasm and cpu; float, one-hot or mis-shaped data is truncated or
 * fails deep inside tfjs. Here every backend gives the same message, naming the dataset, the
 * first bad example and what is wrong with it.
 *
 * Cost: one pass over the inputs (isFinite) and one read of the labels, per dataset and
 * model signature (remembered per tensor), never per step.
 */
import { tf } from "../backend/index";

/**
 * What a dataset is checked against: core/batch-stream.ts's DataExpectation (and LabelSpec),
 * restated here so that data/ imports nothing of core/; the compiler holds the two together
 * wherever a data stream is passed to the core as a BatchStream.
 */
export interface DataExpectation {
  name: string;
  inputShape: (number | null)[];
  outputShape: (number | null)[];
  labels?: { per: "example" | "token" };
}

/** Datasets already checked, per inputs tensor: the expectations they passed. */
const checked = new WeakMap<tf.Tensor, Set<string>>();

/** Throws, naming the first bad example and what is wrong, unless `x`, `y` fit `expect`. */
export function checkDataset(x: tf.Tensor, y: tf.Tensor, expect: DataExpectation): void {
  const key = JSON.stringify([y.id, expect.inputShape, expect.outputShape, expect.labels]);
  if (checked.get(x)?.has(key)) return;
  const fail = (what: string): never => {
    throw new Error(`${expect.name}: ${what}`);
  };
  const perExample = x.shape.slice(1);
  const wanted = expect.inputShape.slice(1);
  if (perExample.length !== wanted.length || wanted.some((d, i) => d !== null && d !== perExample[i])) {
    fail(`each example has shape [${perExample}] but the model reads [${wanted.map((d) => d ?? "any")}]; resize the data or build the model for this shape`);
  }
  if (x.dtype === "float32") {
    const bad = firstNonFinite(x);
    if (bad) fail(`example ${bad.example} has ${bad.value} at position ${bad.position} of its input; inputs must be ` +
        `finite numbers: clean or drop that example`);
  }
  if (expect.labels) checkLabels(y, expect.labels, expect.outputShape[expect.outputShape.length - 1], fail);
  if (!checked.has(x)) checked.set(x, new Set());
  checked.get(x)!.add(key);
}

/** The first example with a NaN or infinite value: its index, the value and where in the example. */
function firstNonFinite(x: tf.Tensor): { example: number; position: number; value: number } | undefined {
  const n = x.shape[0];
  if (n === 0 || x.size === 0) return undefined;
  const badRows = tf.tidy(() => tf.any(tf.logicalNot(tf.isFinite(x.reshape([n, -1]))), 1).dataSync());
  const example = badRows.findIndex((b) => b !== 0);
  if (example < 0) return undefined;
  const row = tf.tidy(() => x.slice(example, 1).dataSync());
  const position = row.findIndex((v) => !Number.isFinite(v));
  return { example, position, value: row[position] };
}

function checkLabels(y: tf.Tensor, spec: NonNullable<DataExpectation["labels"]>, classes: number | null, fail: (what: string) => never): void {
  const n = y.shape[0];
  const rank = spec.per === "example" ? 1 : 2;
  if (y.rank !== rank) {
    if (spec.per === "example" && y.rank === 2 && y.shape[1] === classes) fail(`labels are one-hot ([${y.shape}]); ` +
        `give one class index per example ([${n}]), e.g. tf.argMax(y, 1)`);
    const expected = spec.per === "example" ? `one class index per example ([${n}])` : `one tag per token ([${n}, length], negative at padding)`;
    fail(`labels have shape [${y.shape}]; this loss reads ${expected}`);
  }
  const values = y.dataSync();
  const perRow = spec.per === "example" ? 1 : (y.shape[1] as number);
  const problem = (v: number): string | undefined => {
    if (!Number.isFinite(v)) return `label ${v}`;
    if (!Number.isInteger(v)) return `label ${v}, not a whole number (labels are class indices)`;
    if (spec.per === "token" && v < 0) return undefined; // padding
    if (v < 0 || (classes !== null && v >= classes)) return `label ${v}, outside 0..${(classes ?? 0) - 1} (the model has ${classes} outputs)`;
    return undefined;
  };
  for (let i = 0; i < values.length; i++) {
    const what = problem(values[i]);
    if (what) fail(`example ${Math.floor(i / perRow)} has ${what}; fix or drop that example, or build the model with as many outputs as there are classes`);
  }
}
