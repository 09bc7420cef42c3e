// The worker count when nobody sets it (issue 15): one worker per core, at most one per 2 GiB,
// except that a scenario only this process has registered (a notebook cell's) trains here,
// serially, since a worker process could not build it. test/setup.ts pins MERGENET_WORKERS=1
// for the rest of the suite; this file takes it away to see the default.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultWorkers } from "../src/experiments/pool";
import { costOf, runExperiment } from "../src/experiments/runner";
import { isBuiltInScenario, registerScenario, scenarioNames, getScenario } from "../src/experiments/scenario";
import "../src/experiments/scenarios/index";
import { tinyExperiment } from "./helpers/run-files";
import { registerTinyScenario } from "./helpers/tiny";

const GiB = 1024 ** 3;
const suiteWorkers = process.env.MERGENET_WORKERS;
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "default-workers-"));

beforeEach(() => {
  delete process.env.MERGENET_WORKERS;
});
afterEach(() => {
  if (suiteWorkers === undefined) delete process.env.MERGENET_WORKERS;
  else process.env.MERGENET_WORKERS = suiteWorkers;
});

describe("the default number of workers", () => {
  it("is one per core, at most one per 2 GiB of memory, and at least one", () => {
    expect(defaultWorkers(2, 24 * GiB)).toBe(2);
    expect(defaultWorkers(64, 16 * GiB)).toBe(8);
    expect(defaultWorkers(1, 64 * GiB)).toBe(1);
    expect(defaultWorkers(8, 1 * GiB)).toBe(1);
    expect(defaultWorkers()).toBe(Math.max(1, Math.min(os.availableParallelism(), Math.floor(os.totalmem() / (2 * GiB)))));
  });

  it("knows every scenario of src/experiments/scenarios as built in, and none registered elsewhere", () => {
    const builtIn = scenarioNames();
    expect(builtIn.length).toBeGreaterThanOrEqual(6);
    expect(builtIn.filter((name) => !isBuiltInScenario(name))).toEqual([]);
    registerTinyScenario("default-workers-parent-only");
    expect(isBuiltInScenario("default-workers-parent-only")).toBe(false);
    // Registered again under a built-in name: the workers would build the other one.
    const original = getScenario("positive-control");
    registerScenario({ ...original, name: "positive-control" });
    expect(isBuiltInScenario("positive-control")).toBe(false);
    registerScenario(original);
    expect(isBuiltInScenario("positive-control")).toBe(true);
  });

  it("spreads a built-in scenario's runs over the default workers, and keeps a parent-only scenario in this process", () => {
    const builtIn = { ...tinyExperiment({ name: "default-workers-built-in" }), scenario: "positive-control", scenarioOptions: {} };
    expect(costOf(builtIn, { resultsDir: tmp() }).workers).toBe(defaultWorkers());
    registerTinyScenario("default-workers-tiny");
    const parentOnly = tinyExperiment({ name: "default-workers-parent-only", scenario: "default-workers-tiny" });
    expect(costOf(parentOnly, { resultsDir: tmp() }).workers).toBe(1);
    expect(costOf(parentOnly, { resultsDir: tmp(), workers: 2 }).workers).toBe(2); // asked for: the caller's choice
    process.env.MERGENET_WORKERS = "3";
    expect(costOf(builtIn, { resultsDir: tmp() }).workers).toBe(3);
  });

  it("trains a parent-only scenario under the default here, serially, where a worker would fail to build it", async () => {
    registerTinyScenario("default-workers-serial");
    const dir = tmp();
    const config = tinyExperiment({ name: "default-workers-serial", scenario: "default-workers-serial", seeds: [0, 1], methods: [{ name: "target alone", kind: "target-alone" }] });
    const result = await runExperiment(config, { resultsDir: dir, progress: false });
    expect(result.runs).toHaveLength(2);
    expect(result.runs.every((run) => Number.isFinite(run.final.target.accuracy))).toBe(true);
    // The pool would have named its scenario problem; serially, both runs are written.
    expect(fs.readdirSync(path.join(dir, "runs", "default-workers-serial", "target-alone")).sort()).toEqual(["seed-0.json", "seed-1.json"]);
  });
});
