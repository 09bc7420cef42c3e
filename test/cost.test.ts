// What a cell will cost (src/experiments/cost.ts): counts of saved and pending runs, and the
// estimate from recorded wall times, on a real tiny experiment in a temporary results folder.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { costText, machineText } from "../src/experiments/cost";
import { costOf, runExperiment } from "../src/experiments/runner";
import { runFile } from "../src/experiments/run-files";
import type { RunResult } from "../src/experiments/records";
import { initBackend } from "../src/backend/index";
import { registerTinyScenario } from "./helpers/tiny";
import { tinyExperiment } from "./helpers/run-files";

registerTinyScenario("cost-tiny");

describe("costOf / costText", () => {
  it("counts saved runs, estimates the others from the same method's recorded times, and says when it cannot", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-cost-"));
    const config = tinyExperiment({ name: "cost-test", scenario: "cost-tiny", seeds: [0] });
    const before = costOf(config, { resultsDir: dir, workers: 1 });
    expect(before).toMatchObject({ runs: 4, cached: 0, toTrain: 4, unknown: 4 });
    expect(before.trainSeconds).toBeNaN();
    expect(costText(before)).toContain("an unknown time (4 of them have no recorded run");

    // The runner says the same before it trains anything.
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
    let done;
    try {
      done = await runExperiment(config, { resultsDir: dir, workers: 1 });
    } finally {
      process.stderr.write = write;
    }
    expect(lines[0]).toBe(`[cost-test] ${costText(before)}\n`);
    // Set each saved run's recorded time, so the estimate can be checked exactly.
    const seconds: Record<string, number> = { "target alone": 10, MergeNet: 100, "control: random source": 120, KD: 30 };
    for (const method of config.methods) {
      const file = runFile(dir, config, method, 0);
      const run = JSON.parse(fs.readFileSync(file, "utf8")) as RunResult;
      fs.writeFileSync(file, JSON.stringify({ ...run, wallSeconds: seconds[method.name] }));
    }
    expect(done.runs).toHaveLength(4);
    const cached = costOf(config, { resultsDir: dir, workers: 1 });
    expect(cached).toMatchObject({ runs: 4, cached: 4, toTrain: 0, cachedSeconds: 260, trainSeconds: 0 });
    expect(costText(cached)).toBe("4 runs: 4 saved (they took 4m20s to train when they ran); nothing to train, this cell only loads them.");

    // Two more seeds: each pending run is estimated by its own method's recorded time, and two workers halve the wall time.
    const more = costOf({ ...config, seeds: [0, 1, 2] }, { resultsDir: dir, workers: 2 });
    expect(more).toMatchObject({ runs: 12, cached: 4, toTrain: 8, trainSeconds: 2 * 260, unknown: 0, workers: 2 });
    expect(costText(more)).toContain("8 to train, about 4m20s in 2 workers");

    // A new MergeNet variant with no runs of its own: the median of the experiment's MergeNet runs (100, 120).
    const variant = { ...config.methods[1], name: "MergeNet, new variant" };
    const added = costOf({ ...config, methods: [...config.methods, variant] }, { resultsDir: dir, workers: 1 });
    expect(added).toMatchObject({ toTrain: 1, trainSeconds: 110, unknown: 0 });
  });
});

describe("machineText", () => {
  it("names the backend, tfjs version, cores, Node and the date", async () => {
    await initBackend();
    const text = machineText(new Date("2026-12-03T12:00:00Z"));
    expect(text).toMatch(/^backend (tensorflow|wasm|cpu|tensorflow-gpu) \(tfjs \d+\.\d+\.\d+/);
    expect(text).toContain(`${os.cpus().length} cores`);
    expect(text).toContain(`Node ${process.versions.node}`);
    expect(text).toMatch(/2026-12-03$/);
  });
});
