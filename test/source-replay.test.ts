/**
 * Source replay through the runner: an experiment trained with replay (the default) writes the
 * same result files as with MERGENET_SOURCE_REPLAY=0, with the source trained once per seed; a
 * damaged record is named and the run trains its source; methods whose source depends on the
 * target, or is pre-trained, never replay.
 */
import * as fs from "fs";
import * as path from "path";
import { afterEach, describe, expect, it } from "vitest";
import { runExperiment } from "../src/experiments/runner";
import { processorId } from "../src/experiments/run-files";
import type { ExperimentConfig } from "../src/experiments/records";
import { expectSameResultFiles, TINY_PAIR } from "./helpers/run-files";
import { registerTinyScenario } from "./helpers/tiny";
import { warningsOf } from "./helpers/stderr";
import { scratchDirs } from "./helpers/scratch";

registerTinyScenario("replay-tiny");

const adapter = { layers: 1, heads: 2 };
function experiment(): ExperimentConfig {
  return {
    name: "replay-test",
    scenario: "replay-tiny",
    scenarioOptions: {},
    epochs: 3,
    seeds: [0, 1],
    methods: [
      { name: "pair", kind: "pair" },
      { name: "MergeNet", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter } },
      { name: "control: random source", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter, sourceInput: "random" } },
      { name: "MergeNet fc1", kind: "mergenet", mergenet: { pairs: [{ source: "fc1/kernel", target: "fc2/kernel" }], adapter } },
      { name: "two-way", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter, direction: "two-way" } },
      { name: "MergeNet (pre-trained source)", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter }, pretrainSourceEpochs: 1 },
      { name: "KD", kind: "kd" },
    ],
  };
}

const { make: scratch } = scratchDirs("replay-runner-");
afterEach(() => {
  delete process.env.MERGENET_SOURCE_REPLAY;
});

const records = (dir: string): string[] => {
  const root = path.join(dir, "source-trajectories");
  return fs.existsSync(root) ? fs.readdirSync(root).sort() : [];
};

describe("source replay in the runner", () => {
  it("gives the result files of training every source, recording one trajectory per seed", async () => {
    const trained = scratch();
    process.env.MERGENET_SOURCE_REPLAY = "0";
    await runExperiment(experiment(), { resultsDir: trained, progress: false, workers: 1 });
    expect(records(trained)).toEqual([]);
    delete process.env.MERGENET_SOURCE_REPLAY;
    const replayed = scratch();
    await runExperiment(experiment(), { resultsDir: replayed, progress: false, workers: 1 });
    expectSameResultFiles(trained, replayed, 14);
    const kept = records(replayed);
    expect(kept.map((name) => name.replace(/-[0-9a-f]{16}$/, ""))).toEqual(["replay-tiny-seed-0", "replay-tiny-seed-1"]);
    // The pair recorded losses and metrics; the MergeNet runs added the weights they read.
    const files = fs.readdirSync(path.join(replayed, "source-trajectories", kept[0])).sort();
    expect(files).toEqual(["classifier_kernel.f32", "fc1_kernel.f32", "meta.json"]);
  });

  it("a record that cannot be written is named, and the runs keep their results", async () => {
    const dir = scratch();
    fs.writeFileSync(path.join(dir, "source-trajectories"), "a file where the records' folder goes");
    const config = { ...experiment(), seeds: [0], methods: experiment().methods.slice(0, 2) };
    const warnings = await warningsOf(() => runExperiment(config, { resultsDir: dir, progress: false, workers: 1 }));
    expect(warnings).toMatch(/source trajectory .* not saved \(/);
    const trained = scratch();
    process.env.MERGENET_SOURCE_REPLAY = "0";
    await runExperiment(config, { resultsDir: trained, progress: false, workers: 1 });
    expectSameResultFiles(trained, dir, 2);
  });

  it("a damaged record is named, and the run trains its source with the same result", async () => {
    const first = scratch();
    const config = { ...experiment(), seeds: [0], methods: experiment().methods.slice(0, 2) };
    await runExperiment(config, { resultsDir: first, progress: false, workers: 1 });
    const [kept] = records(first);
    const weightFile = path.join(first, "source-trajectories", kept, "classifier_kernel.f32");
    fs.writeFileSync(weightFile, Buffer.alloc(12));
    fs.rmSync(path.join(first, "runs", "replay-test", "mergenet"), { recursive: true, force: true });
    const warnings = await warningsOf(() => runExperiment(config, { resultsDir: first, progress: false, workers: 1 }));
    expect(warnings).toMatch(/source trajectory .* cannot be used \(.*classifier_kernel\.f32 holds 12 bytes/);
    const again = scratch();
    process.env.MERGENET_SOURCE_REPLAY = "0";
    await runExperiment(config, { resultsDir: again, progress: false, workers: 1 });
    expectSameResultFiles(again, first, 2);
  });
});

describe("the processor in the replay and pre-training keys", () => {
  it("adds Linux's family, model and stepping to the model name, which two processor generations share", () => {
    const zen = (family: number) => `processor\t: 0\ncpu family\t: ${family}\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nstepping\t: 1\n`;
    expect(processorId(zen(25))).toMatch(/\(family 25, model 2, stepping 1\)$/);
    expect(processorId(zen(25))).not.toBe(processorId(zen(26)));
    expect(processorId("")).not.toMatch(/family/); // no /proc/cpuinfo: the name alone
  });
});
