// Twin runs (src/experiments/twin-runs.ts): a run whose training another experiment or method
// already did gets a copy of that result, which must be what training it would give, to the last
// bit; and only such a run: another first seed, another option, a damaged or changed twin, `force`
// and MERGENET_TWINS=0 all train.
process.env.TF_NUM_INTRAOP_THREADS = "1"; // as in test/pool.test.ts: one setting for every run here

import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { runExperiment } from "../src/experiments/runner";
import type { ExperimentConfig, RunResult } from "../src/experiments/records";
import { INDEX_FOLDER, trainingKey } from "../src/experiments/twin-runs";
import { scratchDirs } from "./helpers/scratch";
import { tinyExperiment, TINY_PAIR, withoutTime } from "./helpers/run-files";
import "./fixtures/pool-scenarios";

const scratch = scratchDirs("mergenet-twins-");
const serial = { workers: 1, progress: false } as const;

const MERGENET = { kind: "mergenet" as const, mergenet: { pairs: [TINY_PAIR], adapter: { layers: 1, heads: 2 } } };
/** Experiment A: target alone and MergeNet on seeds 0 and 1. */
const first = (extra: Partial<ExperimentConfig> = {}): ExperimentConfig =>
  tinyExperiment({ name: "twins-a", seeds: [0, 1], methods: [{ name: "target alone", kind: "target-alone" }, { name: "MergeNet", ...MERGENET }], ...extra });
/** Experiment B: the same trainings under other names. */
const second = (extra: Partial<ExperimentConfig> = {}): ExperimentConfig =>
  tinyExperiment({ name: "twins-b", seeds: [0, 1], methods: [{ name: "alone again", kind: "target-alone" }, { name: "MergeNet again", ...MERGENET }], ...extra });

/** A result without its names, hash, times and copy mark: what training determines. */
function numbers(run: RunResult): unknown {
  const { experiment: _e, method: _m, configHash: _h, copiedFrom: _c, ...rest } = withoutTime(run) as RunResult;
  return JSON.parse(JSON.stringify(rest));
}

describe("twin runs", () => {
  it("copies a twin's result, the same to the last bit as training it, naming the twin; the copy is a valid cached result", async () => {
    const dir = scratch.make();
    await runExperiment(first(), { ...serial, resultsDir: dir });
    const copied = await runExperiment(second(), { ...serial, resultsDir: dir });
    expect(copied.runs.map((r) => r.copiedFrom)).toEqual([
      path.join("runs", "twins-a", "target-alone", "seed-0.json"),
      path.join("runs", "twins-a", "target-alone", "seed-1.json"),
      path.join("runs", "twins-a", "mergenet", "seed-0.json"),
      path.join("runs", "twins-a", "mergenet", "seed-1.json"),
    ]);
    expect(copied.runs.map((r) => [r.experiment, r.method])).toEqual([
      ["twins-b", "alone again"], ["twins-b", "alone again"], ["twins-b", "MergeNet again"], ["twins-b", "MergeNet again"],
    ]);
    const trained = await runExperiment(second(), { ...serial, resultsDir: scratch.make() });
    expect(trained.runs.every((r) => r.copiedFrom === undefined)).toBe(true);
    expect(copied.runs.map(numbers)).toEqual(trained.runs.map(numbers));
    expect(copied.runs.map((r) => r.configHash)).toEqual(trained.runs.map((r) => r.configHash));
    // Read again from its files: the copies are cached results of B.
    const again = await runExperiment(second(), { ...serial, resultsDir: dir });
    expect(again.runs.map(withoutTime)).toEqual(copied.runs.map((r) => JSON.parse(JSON.stringify(withoutTime(r)))));
  });

  it("trains where the training differs: another first seed (attention maps), another epoch count or option", async () => {
    const dir = scratch.make();
    const a = await runExperiment(first(), { ...serial, resultsDir: dir });
    // Seed 1 is B's first seed but not A's: B's MergeNet seed 1 keeps its attention maps, A's does not.
    const b = await runExperiment(second({ seeds: [1] }), { ...serial, resultsDir: dir });
    expect(b.runs.map((r) => [r.method, r.copiedFrom !== undefined])).toEqual([["alone again", true], ["MergeNet again", false]]);
    expect(b.runs[1].attention).toBeDefined();
    expect(a.runs[3].attention).toBeUndefined();
    const longer = await runExperiment(second({ epochs: 3 }), { ...serial, resultsDir: dir });
    expect(longer.runs.every((r) => r.copiedFrom === undefined)).toBe(true);
    const otherGate = { name: "MergeNet again", kind: "mergenet" as const, mergenet: { ...MERGENET.mergenet, gateInit: -4 } };
    const option = await runExperiment(second({ methods: [otherGate] }), { ...serial, resultsDir: dir });
    expect(option.runs.every((r) => r.copiedFrom === undefined)).toBe(true);
    expect(trainingKey(first(), first().methods[1], 0)).not.toBe(trainingKey(second({ methods: [otherGate] }), otherGate, 0));
    expect(trainingKey(first(), first().methods[1], 0)).toBe(trainingKey(second(), second().methods[1], 0));
  });

  it("trains when the twin is damaged or was rewritten by another configuration, with force, and with MERGENET_TWINS=0", async () => {
    const dir = scratch.make();
    await runExperiment(first({ seeds: [0] }), { ...serial, resultsDir: dir });
    const twin = path.join(dir, "runs", "twins-a", "target-alone", "seed-0.json");
    const config = second({ seeds: [0], methods: [{ name: "alone again", kind: "target-alone" }] });
    const run = async (options = {}) => (await runExperiment(config, { ...serial, resultsDir: dir, ...options })).runs[0];
    const original = fs.readFileSync(twin, "utf8");
    const removeCopy = () => fs.rmSync(path.join(dir, "runs", "twins-b"), { recursive: true, force: true });

    fs.writeFileSync(twin, "{ damaged");
    expect((await run()).copiedFrom).toBeUndefined();
    removeCopy();
    fs.writeFileSync(twin, JSON.stringify({ ...JSON.parse(original), configHash: "0000000000000000" }));
    expect((await run()).copiedFrom).toBeUndefined();
    removeCopy();
    fs.writeFileSync(twin, original);
    expect((await run({ force: true })).copiedFrom).toBeUndefined();
    removeCopy();
    process.env.MERGENET_TWINS = "0";
    try {
      expect((await run()).copiedFrom).toBeUndefined();
    } finally {
      delete process.env.MERGENET_TWINS;
    }
    removeCopy(); // the index now names B's own (removed) file: reading A again indexes A's
    await runExperiment(first({ seeds: [0] }), { ...serial, resultsDir: dir });
    expect((await run()).copiedFrom).toBe(path.join("runs", "twins-a", "target-alone", "seed-0.json"));
  });

  it("indexes results saved before the index existed when their experiment is read again", async () => {
    const dir = scratch.make();
    await runExperiment(first({ seeds: [0] }), { ...serial, resultsDir: dir });
    fs.rmSync(path.join(dir, INDEX_FOLDER), { recursive: true });
    await runExperiment(first({ seeds: [0] }), { ...serial, resultsDir: dir }); // all cached: indexes them
    expect(fs.readdirSync(path.join(dir, INDEX_FOLDER))).toHaveLength(2);
    const b = await runExperiment(second({ seeds: [0] }), { ...serial, resultsDir: dir });
    expect(b.runs.every((r) => r.copiedFrom !== undefined)).toBe(true);
  });
});
