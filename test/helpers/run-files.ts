// The small experiment and the result-file comparison shared by the executor tests
// (test/pool.test.ts, test/queue.test.ts): results that must be bit-identical whatever trains
// them are compared without what records when and how long.
import * as fs from "fs";
import * as path from "path";
import { expect } from "vitest";
import type { ExperimentConfig, RunResult } from "../../src/experiments/records";

/** test/fixtures/pool-scenarios.ts: the module the workers import to register the tiny scenarios. */
export const POOL_SCENARIOS = path.join(__dirname, "..", "fixtures", "pool-scenarios.ts");

export const TINY_PAIR = { source: "classifier/kernel", target: "fc2/kernel" };

/** 8 runs of the tiny pair (4 methods x 2 seeds, 2 epochs): seconds in all. */
export function tinyExperiment(extra: Partial<ExperimentConfig> = {}): ExperimentConfig {
  return {
    name: "pool-test",
    scenario: "pool-tiny",
    scenarioOptions: {},
    epochs: 2,
    seeds: [0, 1],
    methods: [
      { name: "target alone", kind: "target-alone" },
      { name: "MergeNet", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter: { layers: 1, heads: 2 } } },
      { name: "control: random source", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter: { layers: 1, heads: 2 }, sourceInput: "random" } },
      { name: "KD", kind: "kd" },
    ],
    ...extra,
  };
}

/** A run without what records when and how long (wallSeconds, createdAt, each epoch's seconds). */
export function withoutTime(run: RunResult): Omit<RunResult, "wallSeconds" | "createdAt"> {
  const { wallSeconds: _w, createdAt: _c, ...rest } = run;
  return { ...rest, epochs: run.epochs.map(({ seconds: _s, ...epoch }) => epoch as RunResult["epochs"][number]) };
}
export const withoutTimes = (runs: RunResult[]) => runs.map(withoutTime);

/** Every result file under `dir`: relative path -> its JSON text without the times. */
export function resultFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.set(path.relative(dir, full), JSON.stringify(withoutTime(JSON.parse(fs.readFileSync(full, "utf8")))));
    }
  };
  walk(path.join(dir, "runs"));
  return files;
}

/** Both folders hold the same `count` result files, equal but for their times. */
export function expectSameResultFiles(dirA: string, dirB: string, count: number): void {
  const a = resultFiles(dirA);
  const b = resultFiles(dirB);
  expect(a.size).toBe(count);
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [file, json] of a) expect(b.get(file), file).toBe(json);
}
