// Bad training data is named as bad data, before the first step, the same on every backend
// (issue 19): non-finite inputs, labels out of range, float or one-hot labels, inputs of the
// wrong shape. A loss that still goes bad names its side, and says "check the data" where
// a recovery cannot help.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { IndependentTrainer } from "../src/baselines/independent";
import type { ModelSide } from "../src/core/loop";
import type { LossFn } from "../src/core/losses";
import { MergeNetTrainer } from "../src/core/mergenet";
import { batchStream } from "../src/data/batches";
import { runExperiment } from "../src/experiments/runner";
import { registerWasmGradients } from "../src/backend/wasm-gradients";
import { disposedAfterEach } from "./helpers/disposed";
import { expectNoTensorLeak } from "./helpers/leaks";
import { registerAdaptedTinyScenario } from "./helpers/tiny";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

require("@tensorflow/tfjs-backend-wasm");
registerWasmGradients();

const PAIR = { source: "classifier/kernel", target: "fc2/kernel" };
const setup = disposedAfterEach();

/** The side with its stream replaced by one over `x`, `y` (tensors the test disposes). */
function withData(side: ModelSide, x: tf.Tensor, y: tf.Tensor): ModelSide {
  return { ...side, data: batchStream(x, y, { batchSize: 8, seed: 1 }) };
}

/** 40 examples of 12 inputs with labels 0..3, as the tiny models read them, edited as asked. */
function data(edit: { x?: (x: Float32Array) => void; y?: (y: Float32Array) => void; xShape?: number[]; oneHot?: boolean } = {}): { x: tf.Tensor; y: tf.Tensor } {
  const shape = edit.xShape ?? [40, 12];
  const xs = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i));
  edit.x?.(xs);
  const ys = Float32Array.from({ length: 40 }, (_, i) => i % 4);
  edit.y?.(ys);
  return { x: tf.tensor(xs, shape), y: edit.oneHot ? tf.oneHot(tf.tensor1d(ys, "int32"), 4) : tf.tensor1d(ys, "float32") };
}

describe.each(["tensorflow", "wasm", "cpu"])("training data checked at the door (%s)", (backend) => {
  let previous: string;
  beforeAll(async () => {
    previous = tf.getBackend();
    await tf.setBackend(backend);
  });
  afterAll(async () => {
    await tf.setBackend(previous);
  });

  const cases: [string, Parameters<typeof data>[0], "source" | "target", RegExp][] = [
    ["a NaN pixel in the target's inputs", { x: (x) => (x[5 * 12 + 3] = NaN) }, "target", /the target's training data: example 5 has NaN at position 3 of its input/],
    ["an infinite value in the source's inputs", { x: (x) => (x[2 * 12] = -Infinity) }, "source", /the source's training data: example 2 has -Infinity at position 0/],
    ["a label equal to the class count", { y: (y) => (y[7] = 4) }, "target", /example 7 has label 4, outside 0\.\.3 \(the model has 4 outputs\)/],
    ["a label of -1", { y: (y) => (y[0] = -1) }, "source", /example 0 has label -1, outside 0\.\.3/],
    ["a float label", { y: (y) => (y[3] = 2.7) }, "target", /example 3 has label 2\.7(0+\d*)?, not a whole number/],
    ["one-hot labels", { oneHot: true }, "target", /labels are one-hot \(\[40,4\]\); give one class index per example/],
    ["inputs of another shape", { xShape: [40, 13] }, "target", /each example has shape \[13\] but the model reads \[12\]/],
  ];
  it.each(cases)("%s", async (_, edit, side, message) => {
    const s = setup();
    const bad = data(edit);
    const sides = { source: s.source, target: s.target };
    sides[side] = withData(sides[side], bad.x, bad.y);
    await expectNoTensorLeak(() => {
      expect(() => new MergeNetTrainer(sides.source, sides.target, { pairs: [PAIR] })).toThrow(message);
    });
    if (side === "target") expect(() => new IndependentTrainer(undefined, sides.target)).toThrow(message);
    tf.dispose([bad.x, bad.y]);
  });

  it("accepts clean data, and checks a dataset once", async () => {
    const s = setup();
    const clean = data();
    const target = withData(s.target, clean.x, clean.y);
    const kernels = async (fn: () => void) => (await tf.profile(() => fn())).kernels.map((k) => k.name);
    expect(await kernels(() => new MergeNetTrainer(s.source, target, { pairs: [PAIR] }).dispose())).toContain("IsFinite");
    expect(await kernels(() => new IndependentTrainer(undefined, target).dispose())).not.toContain("IsFinite");
    tf.dispose([clean.x, clean.y]);
  });
});

/** A loss that is NaN on the listed calls (0-based) and the real loss otherwise. */
function poisoned(loss: LossFn, badCalls: number[]): LossFn {
  let call = 0;
  return (logits, labels) => {
    const value = loss(logits, labels);
    return badCalls.includes(call++) ? (tf.tidy(() => tf.mul(value, NaN)) as tf.Scalar) : value;
  };
}

describe("a loss that goes bad names its side", () => {
  it("on the first step: check the data, no recovery attempted", async () => {
    const s = setup();
    const t = new MergeNetTrainer(s.source, { ...s.target, loss: poisoned(s.target.loss, [0]) }, { pairs: [PAIR] });
    await expect(t.fit(1)).rejects.toThrow(/the target's loss became NaN or infinite at step 0, on the first step: check the data/);
    expect(t.history.divergences).toEqual([]);
    t.dispose();
  });

  it("in a model no adapter writes into (target alone, MergeNet's one-way source): check the data, not the adapter", async () => {
    const s = setup();
    const alone = new IndependentTrainer(undefined, { ...s.target, loss: poisoned(s.target.loss, [6]) });
    await expect(alone.fit(2)).rejects.toThrow(/the target's loss became NaN or infinite at step 6, in a model that no adapter writes into: check the data/);
    alone.dispose();
    expect(s.target.model.getWeights().every((w) => w.dataSync().every(Number.isFinite))).toBe(true); // left at its last good state
    const t = new MergeNetTrainer({ ...s.source, loss: poisoned(s.source.loss, [6]) }, s.target, { pairs: [PAIR], adapter: { layers: 1, heads: 2 } });
    await expect(t.fit(2)).rejects.toThrow(/the source's loss became NaN or infinite at step 6, in a model that no adapter writes into/);
    expect(t.history.divergences).toEqual([]); // the adapter's learning rate was not halved for the source's fault
    t.dispose();
  });
});

describe("through the runner", () => {
  registerAdaptedTinyScenario("data-check-bad-labels", "the tiny scenario with one target label equal to the class count", (instance) => {
    const bad = data({ y: (y) => (y[9] = 4) });
    const dispose = instance.dispose;
    return { ...instance, target: withData(instance.target, bad.x, bad.y), dispose: () => { dispose(); tf.dispose([bad.x, bad.y]); } };
  });

  it("stops before any training, naming the data, the example and the label, once (not once per method)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-data-check-"));
    const run = runExperiment(
      { name: "bad-labels", scenario: "data-check-bad-labels", scenarioOptions: {}, epochs: 1, seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }, { name: "MergeNet", kind: "mergenet", mergenet: { pairs: [PAIR], adapter: { layers: 1, heads: 2 } } }] },
      { resultsDir: dir, progress: false, workers: 1 },
    );
    await expect(run).rejects.toThrow(/^invalid experiment 'bad-labels' \(checked before any training; nothing was run\):\n {2}- the target's training data: example 9 has label 4, outside 0\.\.3 \(the model has 4 outputs\); [^\n]*$/);
    expect(fs.existsSync(path.join(dir, "runs"))).toBe(false);
  });
});
