import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { summarize, summaryTable, pairedDifference, curveRows } from "../src/experiments/results";
import { stats, studentTail } from "../src/experiments/statistics";
import { variantVerdicts } from "../src/experiments/verdicts";
import { MissingRunsError, runExperiment, validateExperiment } from "../src/experiments/runner";
import { runFile, runHash, stableStringify } from "../src/experiments/run-files";
import { type ExperimentConfig, type ExperimentResult, type RunResult } from "../src/experiments/records";
import { buildReport, readReportIndex, recordReportEntry } from "../src/notebook/report";
import { tf } from "../src/backend/index";
import type { LossFn } from "../src/core/losses";
import { momentum } from "../src/core/momentum";
import type { MethodSpec } from "../src/experiments/methods";
import { getScenario, registerScenario } from "../src/experiments/scenario";
import { registerTinyScenario } from "./helpers/tiny";
import { TINY_PAIR, tinyExperiment } from "./helpers/run-files";
import { expectNoTensorLeak } from "./helpers/leaks";

registerTinyScenario("test-tiny");

const config = (extra: Partial<ExperimentConfig> = {}): ExperimentConfig => tinyExperiment({ name: "runner-test", scenario: "test-tiny", ...extra });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-runner-"));

describe("runExperiment", () => {
  it("trains every (method, seed), writes one file each, and reuses them when asked again", async () => {
    const dir = tmp();
    const first = await runExperiment(config(), { resultsDir: dir, progress: false });
    expect(first.runs.length).toBe(8);
    for (const run of first.runs) {
      expect(run.epochs.length).toBe(2);
      expect(run.final.target.accuracy).toBeGreaterThanOrEqual(0);
      expect(fs.existsSync(runFile(dir, first.config, first.config.methods.find((m) => m.name === run.method)!, run.seed))).toBe(true);
    }
    const mergenet = first.runs.find((r) => r.method === "MergeNet" && r.seed === 0)!;
    expect(mergenet.transfers.step.length).toBeGreaterThan(0);
    expect(mergenet.attention?.rows_rows.length).toBe(8); // [target rows, source rows]
    const started = Date.now();
    const again = await runExperiment(config(), { resultsDir: dir, progress: false });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(again.runs.map((r) => r.createdAt)).toEqual(first.runs.map((r) => r.createdAt));
  });

  it("redoes only a damaged result file, and only the run whose configuration changed", async () => {
    const dir = tmp();
    const first = await runExperiment(config(), { resultsDir: dir, progress: false });
    const cfg = first.config;
    const damaged = runFile(dir, cfg, cfg.methods[1], 0);
    fs.writeFileSync(damaged, "{ truncated");
    const second = await runExperiment(cfg, { resultsDir: dir, progress: false });
    const changed = second.runs.filter((r, i) => r.createdAt !== first.runs[i].createdAt).map((r) => `${r.method}/${r.seed}`);
    expect(changed).toEqual(["MergeNet/0"]);
    expect(second.runs.find((r) => r.method === "MergeNet" && r.seed === 0)!.final).toEqual(first.runs.find((r) => r.method === "MergeNet" && r.seed === 0)!.final);
    // A third seed trains only the four new runs: the seed is part of each run's key, not the experiment's.
    const before = new Map(second.runs.map((r) => [`${r.method}/${r.seed}`, r.createdAt]));
    const three = await runExperiment({ ...cfg, seeds: [0, 1, 2] }, { resultsDir: dir, progress: false });
    const fresh = three.runs.filter((r) => before.get(`${r.method}/${r.seed}`) !== r.createdAt).map((r) => r.seed);
    expect(fresh).toEqual([2, 2, 2, 2]);
  });

  it("with cachedOnly trains nothing: missing runs are named with the hint, cached ones are read", async () => {
    const dir = tmp();
    const small = config({ seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }] });
    await expect(runExperiment(small, { resultsDir: dir, progress: false, cachedOnly: true, cachedOnlyHint: "run notebook 99 first" }))
      .rejects.toThrow(/\[runner-test\] 1 of 1 runs are not in .*'target alone' seed 0.*cachedOnly\); run notebook 99 first/);
    await expect(runExperiment(small, { resultsDir: dir, progress: false, cachedOnly: true })).rejects.toBeInstanceOf(MissingRunsError);
    expect(fs.existsSync(path.join(dir, "runs"))).toBe(false);
    const trained = await runExperiment(small, { resultsDir: dir, progress: false });
    const read = await runExperiment(small, { resultsDir: dir, progress: false, cachedOnly: true });
    expect(read.runs.map((r) => r.createdAt)).toEqual(trained.runs.map((r) => r.createdAt));
  });

  it("records, without training, that KD does not apply where labels differ", async () => {
    const result = await runExperiment(config({ scenarioOptions: { sharedLabels: false }, seeds: [0], methods: [{ name: "KD", kind: "kd" }] }), { resultsDir: tmp(), progress: false });
    expect(result.runs[0].notApplicable).toMatch(/logit distillation needs both models to predict the same classes/);
    expect(summarize(result)[0].notApplicable).toBeDefined();
  });

  it("gives the same results for the same seeds (reproducible)", async () => {
    const a = await runExperiment(config({ seeds: [3] }), { resultsDir: tmp(), progress: false });
    const b = await runExperiment(config({ seeds: [3] }), { resultsDir: tmp(), progress: false });
    expect(a.runs.map((r) => r.targetLoss)).toEqual(b.runs.map((r) => r.targetLoss));
  });
});

describe("memory across whole experiments", () => {
  it("a whole experiment (preflight, every run, both controls) leaves no tensor behind", async () => {
    const permuted: MethodSpec = { name: "control: permuted source", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter: { layers: 1, heads: 2 }, sourceInput: "permuted" } };
    const methods = [...config().methods, permuted];
    await expectNoTensorLeak(async () => {
      await runExperiment(config({ seeds: [0], epochs: 1, methods }), { resultsDir: tmp(), progress: false });
    }, { warmup: 1, repeats: 2 });
  });

  it("the momentum optimiser the scenarios use frees its learning-rate scalar (tfjs's own keeps it)", () => {
    const v = tf.variable(tf.ones([3]));
    const countAfter = (make: () => tf.Optimizer): number => {
      const before = tf.memory().numTensors;
      const opt = make();
      const grad = tf.onesLike(v);
      opt.applyGradients({ [v.name]: grad });
      grad.dispose();
      opt.dispose();
      return tf.memory().numTensors - before;
    };
    tf.engine().startScope();
    try {
      expect(countAfter(() => momentum(0.1, 0.9))).toBe(0);
      expect(countAfter(() => tf.train.momentum(0.1, 0.9))).toBe(1); // tfjs 4.22's leak; if this fails, tfjs fixed it
    } finally {
      tf.engine().endScope();
      v.dispose();
    }
  });
});

describe("errors that need the models show before any training", () => {
  it("a wrong layer name in the LAST method stops the experiment before its first run, naming method and layer", async () => {
    const dir = tmp();
    const bad = config();
    bad.methods.push({ name: "MergeNet, wrong layer", kind: "mergenet", mergenet: { pairs: [{ source: "classifier/kernel", target: "fc9/kernel" }] } });
    const failure = await runExperiment(bad, { resultsDir: dir, progress: false }).then(() => undefined, (err: unknown) => err as Error);
    expect(failure?.message).toMatch(/invalid experiment 'runner-test' \(checked before any training; nothing was run\)/);
    expect(failure?.message).toMatch(/method 'MergeNet, wrong layer': .*'fc9\/kernel'/);
    expect(fs.existsSync(path.join(dir, "runs"))).toBe(false); // not one run was trained
  });

  it("names the run that failed during training and keeps the original (tfjs) error as its cause", async () => {
    // A scenario whose target loss hits a tfjs shape error on its third call: a failure that
    // no preflight can see, deep inside a run.
    registerScenario<Record<string, never>>({
      name: "test-tiny-fails-at-step-2",
      description: "tiny pair whose target loss throws a tfjs error on its third call",
      async build(seed, options) {
        const instance = await getScenario("test-tiny").build(seed, options);
        let calls = 0;
        const loss: LossFn = (logits, labels) => {
          if (calls++ === 2) tf.tidy(() => tf.matMul(tf.ones([2, 2]), tf.ones([3, 3])));
          return instance.target.loss(logits, labels);
        };
        return { ...instance, target: { ...instance.target, loss }, dispose: () => instance.dispose() };
      },
    });
    const failing = config({ scenario: "test-tiny-fails-at-step-2", seeds: [0], methods: [{ name: "MergeNet", kind: "mergenet", mergenet: { pairs: [TINY_PAIR], adapter: { layers: 1, heads: 2 } } }] });
    const failure = await runExperiment(failing, { resultsDir: tmp(), progress: false }).then(() => undefined, (err: unknown) => err as Error);
    // The JavaScript backends word it "Error in matMul: inner shapes..."; native TensorFlow's
    // "Invalid TF_Status: 3 / Message: Matrix size-incompatible..." loses its status-code preamble.
    expect(failure?.message).toMatch(/^\[runner-test\] 'MergeNet' seed 0 failed: (Error in matMul: inner shapes \(2\) and \(3\)|TensorFlow: Matrix size-incompatible: In\[0\]: \[2,2\], In\[1\]: \[3,3\])/);
    expect(failure?.message).not.toContain("TF_Status");
    expect(failure?.cause).toBeInstanceOf(Error);
  });
});

describe("experiment validation", () => {
  const cases: [string, Partial<ExperimentConfig>, RegExp][] = [
    ["bad name", { name: "has space" }, /name must use letters, digits, - and _ only/],
    ["epochs 0", { epochs: 0 }, /epochs must be a whole number >= 1/],
    ["no seeds", { seeds: [] }, /seeds must be a non-empty list of integers/],
    ["repeated seeds", { seeds: [1, 1] }, /seeds must not repeat/],
    ["unknown scenario", { scenario: "nope" }, /unknown scenario 'nope'; registered scenarios: .*test-tiny/],
    ["duplicate method", { methods: [{ name: "a", kind: "pair" }, { name: "a", kind: "pair" }] }, /two methods are named 'a'/],
    ["bad kind", { methods: [{ name: "a", kind: "magic" as never }] }, /has kind 'magic'; use one of/],
    ["mergenet without pairs", { methods: [{ name: "m", kind: "mergenet", mergenet: {} as never }] }, /is MergeNet and needs mergenet.pairs/],
  ];
  it.each(cases)("%s", (_, extra, message) => {
    expect(() => validateExperiment(config(extra))).toThrow(message);
  });

  it("hashes configurations independently of key order", () => {
    expect(stableStringify({ b: 1, a: { d: 2, c: [3, { f: 4, e: 5 }] } })).toBe(stableStringify({ a: { c: [3, { e: 5, f: 4 }], d: 2 }, b: 1 }));
    const c = config();
    expect(runHash(c, c.methods[1], 0)).not.toBe(runHash(c, c.methods[1], 1));
    expect(runHash(c, c.methods[1], 0)).not.toBe(runHash({ ...c, epochs: 3 }, c.methods[1], 0));
  });
});

describe("results", () => {
  const run = (method: string, seed: number, acc: number): RunResult => ({
    experiment: "x", method, kind: "mergenet", seed, configHash: "", runnerVersion: 1, backend: "", createdAt: "", wallSeconds: 0, metric: "accuracy",
    epochs: [{ epoch: 0, steps: 1, sourceLoss: 0, targetLoss: 0, source: {}, target: { accuracy: acc }, gates: {}, seconds: 0 }],
    targetLoss: [], transfers: { step: [], relativeChange: [], gradNorm: [] }, final: { target: { accuracy: acc }, source: {} },
  });
  const result = (rows: [string, number, number][]): ExperimentResult => ({
    config: { name: "x", scenario: "s", scenarioOptions: {}, epochs: 1, seeds: [0, 1, 2], methods: [...new Set(rows.map((r) => r[0]))].map((name) => ({ name, kind: "mergenet", mergenet: { pairs: [] } })) },
    runs: rows.map(([m, s, a]) => run(m, s, a)),
  });
  /** "m" and its matched random-source control "c" (identical but for sourceInput). */
  const MATCHED: MethodSpec[] = [
    { name: "target alone", kind: "target-alone" },
    { name: "m", kind: "mergenet", mergenet: { pairs: [{ source: "a/kernel", target: "b/kernel" }] } },
    { name: "c", kind: "mergenet", mergenet: { pairs: [{ source: "a/kernel", target: "b/kernel" }], sourceInput: "random" } },
  ];

  it("computes sample mean and std", () => {
    const s = stats([1, 2, 3, 4]);
    expect(s.mean).toBe(2.5);
    expect(s.std).toBeCloseTo(Math.sqrt(5 / 3), 12);
    expect(stats([7]).std).toBe(0);
  });

  it("pairs differences by seed", () => {
    const r = result([["target alone", 0, 0.5], ["target alone", 1, 0.7], ["m", 1, 0.8], ["m", 0, 0.6]]);
    const d = pairedDifference(r, "m", "target alone");
    expect(d.mean).toBeCloseTo(0.1, 12);
    expect(d.std).toBeCloseTo(0, 12);
    expect(summarize(r)[1].gain!.mean).toBeCloseTo(0.1, 12);
    expect(curveRows(r).length).toBe(4);
  });

  it("prints gains with their sign, as the verdict tables do (a true minus sign)", () => {
    const r = result([["target alone", 0, 0.5], ["target alone", 1, 0.7], ["m", 0, 0.6], ["m", 1, 0.8], ["c", 0, 0.45], ["c", 1, 0.66]]);
    const gains = summaryTable(summarize(r)).map((row) => row["gain over target alone (paired by seed)"]);
    expect(gains).toEqual(["", "+0.1000 ± 0.0000", "−0.0450 ± 0.0071"]);
  });

  it("calls a gain that the random-source control matches regularisation, not transfer (verdicts.ts)", () => {
    const r = result([
      ["target alone", 0, 0.80], ["target alone", 1, 0.81], ["target alone", 2, 0.79],
      ["m", 0, 0.85], ["m", 1, 0.86], ["m", 2, 0.84],
      ["c", 0, 0.851], ["c", 1, 0.859], ["c", 2, 0.842],
    ]);
    const withControl = (res: ExperimentResult, name: string) => variantVerdicts({ ...res, config: { ...res.config, methods: MATCHED } }, 0.005).find((v) => v.method === name)!;
    expect(withControl(r, "m").words).toMatch(/Both gain over target alone: .*not knowledge transfer/);
    const better = result([
      ["target alone", 0, 0.80], ["target alone", 1, 0.81], ["target alone", 2, 0.79],
      ["m", 0, 0.85], ["m", 1, 0.86], ["m", 2, 0.84],
      ["c", 0, 0.80], ["c", 1, 0.81], ["c", 2, 0.79],
    ]);
    expect(withControl(better, "m").words).toMatch(/^Beats its random-source control \(\+0\.0500 \[/);
    expect(withControl(better, "m").overControl.verdict).toBe("better");
  });
});

describe("report index", () => {
  it("records captioned entries and builds REPORT.md grouped by notebook", () => {
    const dir = tmp();
    recordReportEntry({ name: "02-b", kind: "table", caption: "a table", content: "| a |\n| --- |\n| 1 |" }, dir);
    recordReportEntry({ name: "01-a", kind: "figure", caption: "a figure", content: "figures/01-a.png" }, dir);
    const report = buildReport(readReportIndex(dir), "# R");
    expect(report.indexOf("## Notebook 01")).toBeLessThan(report.indexOf("## Notebook 02"));
    expect(report).toContain("![01-a](figures/01-a.png)");
    expect(() => recordReportEntry({ name: "x", kind: "figure", caption: " ", content: "" }, dir)).toThrow(/has no caption/);
    fs.writeFileSync(path.join(dir, "report-index.json"), "{");
    expect(() => readReportIndex(dir)).toThrow(/is damaged .* delete it and rerun/);
  });
});

describe("forcing a rerun", () => {
  it("MERGENET_FORCE=1 retrains cached runs", async () => {
    const dir = tmp();
    const cfg = config({ seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }] });
    const first = await runExperiment(cfg, { resultsDir: dir, progress: false });
    process.env.MERGENET_FORCE = "1";
    let forced: ExperimentResult;
    try {
      forced = await runExperiment(cfg, { resultsDir: dir, progress: false });
    } finally {
      delete process.env.MERGENET_FORCE;
    }
    expect(forced.runs[0].createdAt).not.toBe(first.runs[0].createdAt);
    const cached = await runExperiment(cfg, { resultsDir: dir, progress: false });
    expect(cached.runs[0].createdAt).toBe(forced.runs[0].createdAt); // without the flag, the forced run is reused
  });
});

describe("how many wins chance gives", () => {
  it("Student's t tail matches closed forms (1 and 2 degrees of freedom) and the normal for many", () => {
    expect(studentTail(2, 1)).toBeCloseTo(0.5 - Math.atan(2) / Math.PI, 6); // Cauchy
    expect(studentTail(2, 2)).toBeCloseTo(0.5 * (1 - 2 / Math.sqrt(6)), 6);
    expect(studentTail(0, 5)).toBeCloseTo(0.5, 9);
    expect(studentTail(1.959964, 200)).toBeCloseTo(0.0253, 3); // close to the normal's 0.025
    // Far tails stay accurate: df 2 has the closed form 0.5 (1 − t / √(t² + 2)).
    expect(studentTail(40, 2)).toBeCloseTo(0.5 * (1 - 40 / Math.sqrt(1602)), 8);
    expect(studentTail(1e6, 2)).toBeLessThan(1e-9);
    expect(studentTail(Infinity, 4)).toBeCloseTo(0, 9);
  });

});
