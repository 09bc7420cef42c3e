/**
 * Pre-trained sources through the runner: the "(pre-trained source)" methods of a seed pre-train
 * the source once and the others load it, with the same result files as with
 * MERGENET_SOURCE_REPLAY=0 (every run pre-trains); a damaged store is named and the run
 * pre-trains; a store that cannot be written costs nothing but time.
 */
import * as fs from "fs";
import * as path from "path";
import { afterEach, describe, expect, it } from "vitest";
import { runExperiment } from "../src/experiments/runner";
import type { ExperimentConfig } from "../src/experiments/records";
import { loadPretrained, pretrainedPlan, savePretrained } from "../src/experiments/pretrained-sources";
import { expectSameResultFiles, TINY_PAIR } from "./helpers/run-files";
import { registerTinyScenario, tinyMlp } from "./helpers/tiny";
import { warningsOf } from "./helpers/stderr";
import { scratchDirs } from "./helpers/scratch";

registerTinyScenario("pretrained-tiny");

const adapter = { layers: 1, heads: 2 };
function experiment(): ExperimentConfig {
  return {
    name: "pretrained-test",
    scenario: "pretrained-tiny",
    scenarioOptions: {},
    epochs: 2,
    seeds: [0, 1],
    methods: [
      { name: "KD (pre-trained source)", kind: "kd", pretrainSourceEpochs: 2 },
      { name: "MergeNet (pre-trained source)", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter }, pretrainSourceEpochs: 2 },
      { name: "control (pre-trained source)", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter, sourceInput: "random" }, pretrainSourceEpochs: 2 },
      { name: "MergeNet (source pre-trained longer)", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter }, pretrainSourceEpochs: 3 },
      { name: "MergeNet", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter } },
    ],
  };
}

const { make: scratch } = scratchDirs("pretrained-runner-");
afterEach(() => {
  delete process.env.MERGENET_SOURCE_REPLAY;
});

const stores = (dir: string): string[] => {
  const root = path.join(dir, "pretrained-sources");
  return fs.existsSync(root) ? fs.readdirSync(root).sort() : [];
};

async function trainEverySource(config: ExperimentConfig): Promise<string> {
  const dir = scratch();
  process.env.MERGENET_SOURCE_REPLAY = "0";
  try {
    await runExperiment(config, { resultsDir: dir, progress: false, workers: 1 });
  } finally {
    delete process.env.MERGENET_SOURCE_REPLAY;
  }
  expect(stores(dir)).toEqual([]);
  return dir;
}

describe("pre-trained sources in the runner", () => {
  it("give the result files of pre-training in every run, pre-training once per seed and epoch count", async () => {
    const trained = await trainEverySource(experiment());
    const reused = scratch();
    await runExperiment(experiment(), { resultsDir: reused, progress: false, workers: 1 });
    expectSameResultFiles(trained, reused, 10);
    expect(stores(reused).map((name) => name.replace(/-[0-9a-f]{16}$/, ""))).toEqual([
      "pretrained-tiny-seed-0-pre-2", "pretrained-tiny-seed-0-pre-3", "pretrained-tiny-seed-1-pre-2", "pretrained-tiny-seed-1-pre-3",
    ]);
  });

  it("later runs load the store instead of pre-training again", async () => {
    const dir = scratch();
    const first = { ...experiment(), seeds: [0], methods: experiment().methods.slice(0, 1) };
    await runExperiment(first, { resultsDir: dir, progress: false, workers: 1 });
    const [store] = stores(dir);
    const file = path.join(dir, "pretrained-sources", store, "weights.f32");
    const before = fs.statSync(file);
    const rest = { ...experiment(), seeds: [0], methods: experiment().methods.slice(0, 3) };
    await runExperiment(rest, { resultsDir: dir, progress: false, workers: 1 });
    const after = fs.statSync(file);
    // A run that pre-trained would have replaced the file (a new inode: written beside it, then renamed).
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expectSameResultFiles(await trainEverySource(rest), dir, 3);
  });

  it("a damaged store is named, and the run pre-trains with the same result", async () => {
    const config = { ...experiment(), seeds: [0], methods: experiment().methods.slice(0, 2) };
    const dir = scratch();
    await runExperiment({ ...config, methods: config.methods.slice(0, 1) }, { resultsDir: dir, progress: false, workers: 1 });
    const [store] = stores(dir);
    fs.writeFileSync(path.join(dir, "pretrained-sources", store, "weights.f32"), Buffer.alloc(12));
    const warnings = await warningsOf(() => runExperiment(config, { resultsDir: dir, progress: false, workers: 1 }));
    expect(warnings).toMatch(/pre-trained source .* cannot be used \(.*weights\.f32 holds 12 bytes, not \d+\); the run pre-trains its source/);
    expectSameResultFiles(await trainEverySource(config), dir, 2);
  });

  it("a store that cannot be written is named, and the runs keep their results", async () => {
    const config = { ...experiment(), seeds: [0], methods: experiment().methods.slice(0, 2) };
    const dir = scratch();
    fs.writeFileSync(path.join(dir, "pretrained-sources"), "a file where the stores' folder goes");
    const warnings = await warningsOf(() => runExperiment(config, { resultsDir: dir, progress: false, workers: 1 }));
    expect(warnings).toMatch(/pre-trained source .* not saved \(.*\); later runs pre-train their own/);
    expectSameResultFiles(await trainEverySource(config), dir, 2);
  });
});

describe("the pre-trained source store", () => {
  const config = experiment();
  it("keys on the source's weights before pre-training, and refuses a model of other weights", async () => {
    const dir = scratch();
    const a = tinyMlp(6, [5], 3, 1);
    const b = tinyMlp(6, [5], 3, 2);
    const same = tinyMlp(6, [5], 3, 1);
    const planA = pretrainedPlan(dir, config, 0, 2, a)!;
    expect(pretrainedPlan(dir, config, 0, 2, same)!.key).toBe(planA.key);
    expect(pretrainedPlan(dir, config, 0, 2, b)!.key).not.toBe(planA.key);
    expect(pretrainedPlan(dir, config, 1, 2, a)!.key).not.toBe(planA.key);
    expect(pretrainedPlan(dir, config, 0, 3, a)!.key).not.toBe(planA.key);
    savePretrained(planA, b); // b's values under a's key: loading writes them into a model, bit for bit
    expect(loadPretrained(planA, same)).toBe(true);
    same.weights.forEach((w, i) => expect(Array.from(w.read().dataSync())).toEqual(Array.from(b.weights[i].read().dataSync())));
    const other = tinyMlp(6, [4], 3, 1);
    const before = other.weights.map((w) => Array.from(w.read().dataSync()));
    let answer = true;
    const warnings = await warningsOf(async () => {
      answer = loadPretrained(planA, other);
    });
    expect(answer).toBe(false);
    expect(warnings).toMatch(/cannot be used \(it holds .*\[6, 5\].*; the source has .*\[6, 4\]/);
    other.weights.forEach((w, i) => expect(Array.from(w.read().dataSync())).toEqual(before[i]));
    [a, b, same, other].forEach((m) => m.dispose());
  });

  it("is off with MERGENET_SOURCE_REPLAY=0", () => {
    process.env.MERGENET_SOURCE_REPLAY = "0";
    const model = tinyMlp(6, [5], 3, 1);
    expect(pretrainedPlan(scratch(), config, 0, 2, model)).toBeUndefined();
    model.dispose();
  });
});
