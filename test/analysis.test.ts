import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Matrix, SVD } from "ml-matrix";
import { describe, expect, it } from "vitest";
import { costRows, gainBar, gainStats, gridMatrix, pca, singularValues, singularValueStats, spectrumDifference, spectrumRows, trajectoryDistances, trajectoryProjection, type AnalysedResult, type AnalysedRun } from "../src/experiments/analysis";
import { annotatedHeatmap, groupedBars, readableBars, spectrumChart } from "../src/plots/specs";
import { runExperiment, validateExperiment } from "../src/experiments/runner";
import { runHash, stableStringify, RUNNER_VERSION } from "../src/experiments/run-files";
import { type ExperimentConfig } from "../src/experiments/records";
import { vegaLiteToSvg } from "../src/plots/render";
import { registerTinyScenario } from "./helpers/tiny";
import { mulberry32 } from "../src/util/random";

const randomMatrix = (rows: number, cols: number, seed: number): number[][] => {
  const next = mulberry32(seed);
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => next() * 2 - 1));
};

describe("singularValues", () => {
  it.each([[7, 4], [4, 7], [5, 5]])("equals ml-matrix's SVD for a %ix%i matrix, descending", (rows, cols) => {
    const m = randomMatrix(rows, cols, rows * 10 + cols);
    const expected = [...new SVD(new Matrix(m), { autoTranspose: true }).diagonal].sort((a, b) => b - a);
    const got = singularValues(m);
    expect(got.length).toBe(Math.min(rows, cols));
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 10));
    got.slice(1).forEach((v, i) => expect(v).toBeLessThanOrEqual(got[i]));
  });

  it("recovers a known spectrum", () => {
    // U·diag(3, 2, 0.5)·Vᵀ with U, V permutation-and-sign matrices.
    const m = [[0, -2, 0], [3, 0, 0], [0, 0, 0.5], [0, 0, 0]];
    expect(singularValues(m).map((v) => +v.toFixed(12))).toEqual([3, 2, 0.5]);
  });

  it("rejects a ragged matrix", () => {
    expect(() => singularValues([[1, 2], [3]])).toThrow(/row 1 has 1 entries, row 0 has 2/);
  });
});

describe("pca", () => {
  it("recovers a known direction, its sign convention and the points' coordinates", () => {
    const d = 50;
    const next = mulberry32(3);
    const raw = Array.from({ length: d }, () => next() - 0.5);
    const norm = Math.hypot(...raw);
    const direction = raw.map((v) => v / norm);
    const largest = direction.reduce((best, v, j) => (Math.abs(v) > Math.abs(direction[best]) ? j : best), 0);
    const offset = Array.from({ length: d }, () => next());
    const ts = [-3, -1.5, -0.2, 0.4, 1.1, 2.6, 3.3];
    const points = ts.map((t) => offset.map((o, j) => o + t * direction[j] + 1e-4 * (next() - 0.5)));
    const p = pca(points, 2);
    const cosine = p.components[0].reduce((s, v, j) => s + v * direction[j], 0);
    expect(Math.abs(cosine)).toBeGreaterThan(0.9999);
    expect(p.components[0][largest]).toBeGreaterThan(0); // signed: largest-magnitude entry positive
    expect(p.explained[0]).toBeGreaterThan(0.9999);
    const tMean = ts.reduce((a, b) => a + b, 0) / ts.length;
    const sign = Math.sign(cosine);
    ts.forEach((t, i) => expect(p.scores[i][0]).toBeCloseTo(sign * (t - tMean), 3));
    p.mean.forEach((m, j) => expect(m).toBeCloseTo(offset[j] + tMean * direction[j], 3));
  });

  it("orders two directions by their variance", () => {
    const e1 = [0.6, 0.8, 0, 0];
    const e2 = [0, 0, -1, 0];
    const points = [[3, 1], [-3, 1], [3, -1], [-3, -1], [0, 0]].map(([a, b]) => e1.map((v, j) => a * v + b * e2[j]));
    const p = pca(points, 2);
    expect(p.components[0].map((v) => +v.toFixed(10) + 0)).toEqual([0.6, 0.8, 0, 0]); // + 0 turns -0 into 0
    expect(p.components[1].map((v) => +v.toFixed(10) + 0)).toEqual([0, 0, 1, 0]); // sign flipped so the largest entry is positive
    expect(p.explained[0]).toBeCloseTo(36 / 40, 10);
    expect(p.explained[1]).toBeCloseTo(4 / 40, 10);
  });

  it("says what is wrong with bad input", () => {
    expect(() => pca([[1, 2]], 1)).toThrow(/at least 2 points/);
    expect(() => pca([[1, 2], [3]], 1)).toThrow(/point 1 has 1 coordinates/);
    expect(() => pca([[1, 2], [3, 4]], 2)).toThrow(/k must be a whole number in \[1, 1\]/);
  });
});

/** A synthetic run for the summary helpers. */
function run(method: string, seed: number, accuracy: number, extra: Partial<AnalysedRun> = {}): AnalysedRun {
  return {
    method, seed, metric: "accuracy", wallSeconds: 2, final: { target: { accuracy }, source: { accuracy: accuracy / 2 } },
    epochs: [{ steps: 10 }], transfers: { step: [0, 2, 4, 6, 8] }, ...extra,
  };
}

describe("summaries", () => {
  const result: AnalysedResult = {
    runs: [run("alone", 0, 0.5), run("alone", 1, 0.6), run("a", 0, 0.55), run("a", 1, 0.62), run("a", 2, 0.9), run("b", 0, 0.4), run("b", 1, 0.5)],
  };

  it("pairs gains by seed, on either side", () => {
    const g = gainStats(result, "a", "alone");
    expect(g.n).toBe(2); // seed 2 has no baseline
    expect(g.mean).toBeCloseTo(0.035, 12);
    expect(gainStats(result, "a", "alone", result, "source").mean).toBeCloseTo(0.0175, 12);
    expect(gainBar(result, "b", "grp", "label", "alone")).toEqual({ group: "grp", method: "label", mean: expect.closeTo(-0.1, 12), std: 0 });
    expect(() => gainBar(result, "missing", "g", "l", "alone")).toThrow(/no runs of 'missing'/);
  });

  it("builds a grid of means with mean ± std labels, and an annotated heatmap of it", () => {
    const grid = gridMatrix(result, (r, c) => [["alone", "a"], ["b", "alone"]][r][c], 2, 2, 2);
    expect(grid.mean[0][0]).toBeCloseTo(0.55, 12);
    expect(grid.labels[1][0]).toBe("0.45 ± 0.07");
    expect(() => gridMatrix(result, () => "none", 1, 1)).toThrow(/no finished runs of 'none'/);
    const fig = annotatedHeatmap(grid.mean, grid.labels);
    expect((fig.data[0] as { text: string[][] }).text).toEqual(grid.labels);
    expect(() => annotatedHeatmap(grid.mean, [["x"]])).toThrow(/labels must have the matrix's shape/);
  });

  it("tilts the group labels of a bar chart without touching its data", () => {
    const bars = groupedBars([{ group: "a long variant name", method: "m", mean: 0.1, std: 0.01 }]);
    const tilted = readableBars(bars, -45) as unknown as { data: unknown; layer: { encoding: { x: { axis: { labelAngle: number } }; color?: { legend: { labelLimit: number } } } }[] };
    expect(tilted.data).toEqual((bars as unknown as { data: unknown }).data);
    tilted.layer.forEach((layer) => expect(layer.encoding.x.axis.labelAngle).toBe(-45));
    expect(tilted.layer[0].encoding.color?.legend.labelLimit).toBe(0); // legend labels whole
    expect(() => readableBars({ mark: "bar" } as never)).toThrow(/must be a layered chart/);
  });

  it("draws spectra on a log axis, and refuses no rows", async () => {
    const spec = spectrumChart([{ series: "s", index: 1, mean: 2, std: 0.1, n: 3 }, { series: "s", index: 2, mean: 1, std: 0.1, n: 3 }]);
    expect(JSON.stringify(spec)).toContain('"type":"log"');
    expect((await vegaLiteToSvg(spec)).length).toBeGreaterThan(1000);
    expect(() => spectrumChart([])).toThrow(/rows must be a non-empty array/);
  });

  it("costs: phase time per step and adapter time per transfer", () => {
    const phases = { source_step: { ms: 100, calls: 10 }, target_step: { ms: 20, calls: 10 }, adapter_forward: { ms: 30, calls: 5 }, adapter_update: { ms: 20, calls: 5 } };
    const costs = costRows({ runs: [run("m", 0, 0.5, { phases, adapterParameters: 1234 })] }, ["m"]);
    expect(costs[0].msPerStep?.mean).toBeCloseTo(17, 12); // 170 ms over 10 steps
    expect(costs[0].adapterMsPerTransfer?.mean).toBeCloseTo(10, 12); // 50 ms over 5 transfers
    expect(costs[0].adapterParameters).toBe(1234);
  });
});

describe("trajectories and spectra from results", () => {
  const weight = "fc2/kernel";
  const record = (trajectory: number[][] | undefined, after: number[]) => ({ [weight]: { shape: [1, 3] as [number, number], singularValues: { before: [1, 0.5], after }, trajectory } });
  const result: AnalysedResult = {
    runs: [
      run("alone", 0, 0.5, { weights: record([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [2, 1]) }),
      run("merge", 0, 0.5, { weights: record([[0, 0, 0], [1, 0.1, 0], [2, 0.4, 0]], [2, 1.2]) }),
      run("alone", 1, 0.5, { weights: record(undefined, [3, 1]) }),
      run("merge", 1, 0.5, { weights: record(undefined, [3, 1.5]) }),
    ],
  };

  it("projects every method's path of one seed on joint components", () => {
    const { rows, explained, seed } = trajectoryProjection(result, weight, ["alone", "merge"]);
    expect(seed).toBe(0);
    expect(rows.map((r) => `${r.method}:${r.step}`)).toEqual(["alone:0", "alone:1", "alone:2", "merge:0", "merge:1", "merge:2"]);
    expect(rows[0].x).toBeCloseTo(rows[3].x, 12); // same initial weight, same point
    expect(explained[0]).toBeGreaterThan(0.9);
    expect(() => trajectoryProjection(result, weight, ["alone", "other"])).toThrow(/record.trajectories/);
    const distances = trajectoryDistances(result, weight, ["alone", "merge"]);
    expect(distances.rows[0]).toEqual({ method: "alone", travelled: 2, fromFirst: 0 });
    expect(distances.rows[1].fromFirst).toBeCloseTo(0.4, 12);
  });

  it("averages spectra over seeds, and compares two methods' spectra", () => {
    const rows = spectrumRows(result, weight, ["alone", "merge"]);
    expect(rows.filter((r) => r.series === "before training").map((r) => r.mean)).toEqual([1, 0.5]);
    expect(rows.filter((r) => r.series === "merge, after training").map((r) => r.mean)).toEqual([2.5, 1.35]);
    expect(singularValueStats(result, weight, "alone").mean).toBe(2.5);
    const gap = spectrumDifference(result, weight, "merge", "alone");
    expect(gap.n).toBe(2);
    expect(gap.mean).toBeCloseTo((0.2 / Math.sqrt(5) + 0.5 / Math.sqrt(10)) / 2, 12);
    expect(() => spectrumRows(result, "other/kernel", ["alone"])).toThrow(/record.weights/);
  });
});

registerTinyScenario("test-tiny-recording", 32);

describe("runner recordings", () => {
  const pair = { source: "classifier/kernel", target: "fc2/kernel" };
  const config = (extra: Partial<ExperimentConfig> = {}): ExperimentConfig => ({
    name: "recording-test",
    scenario: "test-tiny-recording",
    scenarioOptions: {},
    epochs: 2,
    seeds: [0, 1],
    methods: [
      { name: "target alone", kind: "target-alone" },
      { name: "MergeNet", kind: "mergenet", mergenet: { pairs: [pair], adapter: { layers: 1, heads: 2 } } },
    ],
    ...extra,
  });

  it("stores spectra for every run, trajectories where asked, phases and the adapter's size", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-recording-"));
    const result = await runExperiment(config({ record: { weights: ["fc2/kernel"], trajectories: ["MergeNet"], phases: true } }), { resultsDir: dir, progress: false });
    const merge0 = result.runs.find((r) => r.method === "MergeNet" && r.seed === 0)!;
    const trajectory = merge0.weights!["fc2/kernel"].trajectory!;
    expect(merge0.weights!["fc2/kernel"].shape).toEqual([8, 10]); // [out, in] view of the [10, 8] kernel
    expect(trajectory.length).toBe(3); // before training and after each of 2 epochs
    trajectory.forEach((point) => expect(point.length).toBe(80));
    // The recorded spectra are ml-matrix's singular values of the recorded weight.
    const last = Array.from({ length: 8 }, (_, i) => trajectory[2].slice(i * 10, i * 10 + 10));
    const expected = [...new SVD(new Matrix(last), { autoTranspose: true }).diagonal].sort((a, b) => b - a);
    merge0.weights!["fc2/kernel"].singularValues.after.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
    // The recorded initial weight is the target's initial weight: the same for every method of a seed.
    const alone0 = result.runs.find((r) => r.method === "target alone" && r.seed === 0)!;
    expect(alone0.weights!["fc2/kernel"].singularValues.before).toEqual(merge0.weights!["fc2/kernel"].singularValues.before);
    expect(alone0.weights!["fc2/kernel"].trajectory).toBeUndefined(); // not a trajectory method
    expect(result.runs.find((r) => r.method === "MergeNet" && r.seed === 1)!.weights!["fc2/kernel"].trajectory).toBeUndefined(); // first seed only
    expect(merge0.phases?.source_step.calls).toBe(merge0.epochs[1].steps);
    expect(merge0.adapterParameters).toBeGreaterThan(0);
    expect(alone0.adapterParameters).toBeUndefined();
  });

  it("leaves the cache key of experiments without recordings unchanged", () => {
    const c = config();
    const method = c.methods[1];
    const before = { runnerVersion: RUNNER_VERSION, scenario: c.scenario, scenarioOptions: c.scenarioOptions, method, epochs: c.epochs, seed: 0 };
    expect(runHash(c, method, 0)).toBe(crypto.createHash("sha256").update(stableStringify(before)).digest("hex").slice(0, 16));
    const recorded = config({ record: { weights: ["fc2/kernel"], trajectories: ["MergeNet"] } });
    expect(runHash(recorded, method, 0)).not.toBe(runHash(c, method, 0));
    expect(runHash(recorded, recorded.methods[0], 1)).toBe(runHash(config({ record: { weights: ["fc2/kernel"] } }), recorded.methods[0], 1)); // trajectories only key the runs that store them
  });

  it("validates recordings with messages that say what to change", () => {
    expect(() => validateExperiment(config({ record: { weights: ["fc2/kernel"], trajectories: ["nope"] } }))).toThrow(/record.trajectories names methods that are not in the experiment: nope/);
    expect(() => validateExperiment(config({ record: { trajectories: ["MergeNet"] } }))).toThrow(/record.trajectories needs record.weights/);
    expect(() => validateExperiment(config({ record: { weights: ["fc2"] } }))).toThrow(/record.weights must be a list of 'layer\/weight' names/);
  });
});
