import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PNG } from "pngjs";
import { afterEach, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import {
  CURVE_METHODS,
  METHOD,
  MAIN_METHODS,
  crossModalityExperiments,
  crossModalityFindings,
  gainTable,
} from "../src/experiments/configs/cross-modality";
import { emojiPredictionComparison, predictionTiles, spokenDigitExamples, vendorTiles, emojiVendorExamples } from "../src/experiments/cross-modal-examples";
import { buildEmojiImageText } from "../src/experiments/scenarios/cross-modality";
import { runExperiment, validateExperiment } from "../src/experiments/runner";
import { type ExperimentResult, type RunResult } from "../src/experiments/records";
import { imageMosaic, spectrogramPanels } from "../src/plots/images";
import { REPO_ROOT } from "../src/paths";
import "../src/experiments/scenarios/index";
import { matchedControls } from "../src/experiments/verdicts";

const savedQuick = process.env.MERGENET_QUICK;
afterEach(() => {
  if (savedQuick === undefined) delete process.env.MERGENET_QUICK;
  else process.env.MERGENET_QUICK = savedQuick;
});

function experimentsIn(mode: "quick" | "default") {
  if (mode === "quick") process.env.MERGENET_QUICK = "1";
  else delete process.env.MERGENET_QUICK;
  return crossModalityExperiments();
}

/** Code cells of notebook 03. */
function notebookCode(): string {
  const notebook = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "notebooks", "03-cross-modality.ipynb"), "utf8")) as { cells: { cell_type: string; source: string[] }[] };
  return notebook.cells.filter((c) => c.cell_type === "code").map((c) => c.source.join("")).join("\n");
}

describe("cross-modality configs", () => {
  it.each(["quick", "default"] as const)("validate in %s mode, with every method in all four experiments", (mode) => {
    const experiments = experimentsIn(mode);
    expect(experiments.map((e) => e.config.scenario)).toEqual(["emoji-image-text", "emoji-image-text", "digits-image-audio", "digits-image-audio"]);
    for (const { config } of experiments) {
      validateExperiment(config);
      expect(config.methods.map((m) => m.name).sort()).toEqual(Object.values(METHOD).sort());
      expect(config.seeds.length).toBe(mode === "quick" ? 1 : 3);
    }
  });

  it("name, in the verdicts, curves and notebook calls, only methods the experiments run", () => {
    const names = new Set(experimentsIn("default")[0].config.methods.map((m) => m.name));
    for (const check of matchedControls(experimentsIn("default")[0].config)) expect(check.control).toMatch(/^control: /);
    for (const name of MAIN_METHODS) expect(names.has(name)).toBe(true);
    for (const name of CURVE_METHODS) expect(names.has(name)).toBe(true);
    const code = notebookCode();
    // Method names the notebook passes as METHOD.<key> must exist; quoted names in verdict / attention calls too.
    const keys = [...code.matchAll(/METHOD\.(\w+)/g)].map((m) => m[1]);
    expect(keys.length).toBeGreaterThan(3);
    for (const key of keys) expect(Object.keys(METHOD)).toContain(key);
    const quoted = [...code.matchAll(/(?:compare|attentionOf)\([^)]*?"([^"]+)"/g)].map((m) => m[1]);
    for (const name of quoted) expect(names.has(name)).toBe(true);
  });
});

describe("cross-modal KD through the runner", () => {
  it("a 1-epoch emoji KD and DML run (teacher on its own modality) gives finite accuracies; digits KD is recorded as not applicable", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-xmodal-"));
    const emoji = await runExperiment({
      name: "xmodal-kd-test", scenario: "emoji-image-text", scenarioOptions: { direction: "text->image", imageSide: 16 }, epochs: 1, seeds: [0],
      methods: [{ name: "logit KD", kind: "kd" }, { name: "mutual learning", kind: "dml" }],
    }, { resultsDir: dir, progress: false });
    for (const run of emoji.runs) {
      expect(run.notApplicable).toBeUndefined();
      expect(Number.isFinite(run.final.target.accuracy)).toBe(true);
      expect(run.final.target.accuracy).toBeGreaterThan(0);
      expect(run.targetLoss.every(Number.isFinite)).toBe(true);
    }
    const digits = await runExperiment({
      name: "xmodal-kd-digits-test", scenario: "digits-image-audio", scenarioOptions: { imageTrain: 64, testImages: 10 }, epochs: 1, seeds: [0],
      methods: [{ name: "logit KD", kind: "kd" }],
    }, { resultsDir: dir, progress: false });
    expect(digits.runs[0].notApplicable).toMatch(/logit distillation needs both models to predict the same classes/);
  });
});

/** A fake run for the summary helpers. */
function run(method: string, seed: number, accuracy: number, notApplicable?: string): RunResult {
  return {
    experiment: "x", method, kind: "mergenet", seed, configHash: "", runnerVersion: 1, backend: "cpu", createdAt: "", wallSeconds: 0, metric: "accuracy",
    notApplicable, epochs: [], targetLoss: [], transfers: { step: [], relativeChange: [], gradNorm: [] },
    final: { target: notApplicable ? {} : { accuracy }, source: notApplicable ? {} : { accuracy: 0.9 } },
  };
}

describe("cross-modality summaries", () => {
  const config = experimentsIn("default")[2].config;
  const result = (kdApplies: boolean): ExperimentResult => ({
    config,
    runs: [0, 1, 2].flatMap((seed) => [
      run(METHOD.targetAlone, seed, 0.80 + seed * 0.01),
      run(METHOD.sourceAlone, seed, 0.95),
      run(METHOD.released, seed, 0.80 + seed * 0.01 + [0.001, -0.001, 0][seed]),
      run(METHOD.releasedControl, seed, 0.80 + seed * 0.01),
      run(METHOD.classifier, seed, 0.85 + seed * 0.01 + [0.001, 0, -0.001][seed]),
      run(METHOD.classifierControl, seed, 0.80 + seed * 0.01),
      run(METHOD.classifierPretrained, seed, 0.80 + seed * 0.01),
      run(METHOD.kd, seed, 0.9, kdApplies ? undefined : "no shared item"),
      run(METHOD.kdPretrained, seed, 0.9, kdApplies ? undefined : "no shared item"),
      run(METHOD.dml, seed, 0.9, kdApplies ? undefined : "no shared item"),
    ]),
  });

  it("state which variant beats its control, and that KD does not apply where it does not", () => {
    const [line] = crossModalityFindings([{ label: "digits", result: result(false) }]);
    expect(line).toMatch(/^\*\*digits\*\*: target alone 0\.8100 ± 0\.0100/);
    expect(line).toContain("logit KD and mutual learning do not apply");
    expect(line).toContain("δ = 0.0100 (one accuracy point");
    expect(line).toContain(`${METHOD.classifier} over its control +0.0500 [`);
    expect(line).toMatch(new RegExp(`${METHOD.classifier} over its control [^;]*\\(better, 3 seeds\\)`));
    expect(line).toMatch(new RegExp(`${METHOD.released} over its control \\+0\\.0000 [^;]*\\(equivalent within ±0\\.0100, 3 seeds\\)`));
    const [withKd] = crossModalityFindings([{ label: "emoji", result: result(true) }]);
    expect(withKd).toMatch(/logit KD over target alone \+0\.0900 \[[^;]*\(better, 3 seeds\)/);
    expect(withKd).toContain("δ = 0.0180 (a fifth of logit KD's gain");
  });

  it("tabulate gains per transfer, with 'does not apply' rows", () => {
    const rows = gainTable([{ label: "digits", result: result(false) }]);
    expect(rows.find((r) => r.method === METHOD.targetAlone)?.digits).toBe("0.8100 ± 0.0100");
    expect(rows.find((r) => r.method === METHOD.classifier)?.digits).toMatch(/^\+0\.0500 ± 0\.00/);
    expect(rows.find((r) => r.method === METHOD.kd)?.digits).toBe("does not apply");
  });

  it("say that one seed supports no conclusion", () => {
    const single: ExperimentResult = { config, runs: result(true).runs.filter((r) => r.seed === 0) };
    expect(crossModalityFindings([{ label: "one", result: single }])[0]).toContain("one seed only");
  });
});

describe("examples for the figures", () => {
  it("pictures: one emoji per category from both vendors, as a mosaic of equal tiles", () => {
    const examples = emojiVendorExamples(0);
    expect(examples.map((e) => e.category)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const tiles = vendorTiles(examples);
    expect(tiles.length).toBe(18);
    expect(tiles[0].pixels).not.toEqual(tiles[9].pixels); // the same emoji, drawn by two vendors
    const figure = imageMosaic(tiles, { columns: 9, scale: 2 });
    const source = String(figure.data[0].source);
    const mosaic = PNG.sync.read(Buffer.from(source.slice(source.indexOf(",") + 1), "base64"));
    expect(mosaic.width).toBe(9 * 48); // 32 px tiles + 16 px gaps
    expect([...mosaic.data.subarray(8 * 4, 8 * 4 + 3)]).toEqual([tiles[0].pixels[0], tiles[0].pixels[1], tiles[0].pixels[2]]); // tile 0 starts after half a gap
    expect(() => imageMosaic([{ pixels: [0, 0, 0], width: 2, height: 2 }])).toThrow(/expected 2x2x3 = 12/);
  });

  it("spectrograms: [40 mels][32 frames] per utterance, panels on one colour scale", async () => {
    const spoken = await spokenDigitExamples([{ digit: 3, speaker: 0 }, { digit: 8, speaker: 1 }]);
    expect(spoken.map((s) => s.word)).toEqual(["three", "eight"]);
    for (const s of spoken) {
      expect(s.matrix.length).toBe(40);
      expect(s.matrix.every((row) => row.length === 32 && row.every(Number.isFinite))).toBe(true);
    }
    const figure = spectrogramPanels(spoken.map((s) => ({ title: s.word, matrix: s.matrix })));
    expect(figure.data.length).toBe(2);
    expect(figure.data[0].zmin).toBe(figure.data[1].zmin);
    expect(figure.data[0].zmax).toBe(figure.data[1].zmax);
    await expect(spokenDigitExamples([{ digit: 10, speaker: 0 }])).rejects.toThrow(/no utterance of digit 10/);
  });

  it("predictions: two methods for one epoch, consistent counts and captions", async () => {
    // tfjs's MomentumOptimizer.dispose leaves its learning-rate scalar behind, so a bare scenario
    // build + dispose already leaves a few tensors; the comparison must leave no more than that per method.
    const bare = tf.memory().numTensors;
    (await buildEmojiImageText(0, { direction: "text->image" })).dispose();
    const perInstance = tf.memory().numTensors - bare;
    const before = tf.memory().numTensors;
    const comparison = await emojiPredictionComparison({
      seed: 0, epochs: 1, scenarioOptions: { direction: "text->image" }, count: 4,
      methods: [{ name: "target alone", kind: "target-alone" }, { name: "logit KD", kind: "kd" }],
    });
    expect(tf.memory().numTensors - before).toBe(2 * perInstance);
    expect(comparison.examples.length).toBe(4);
    const n = 478; // held-out emoji at the default split
    const [change] = comparison.changes;
    expect(Math.round((comparison.accuracy["logit KD"] - comparison.accuracy["target alone"]) * n)).toBe(change.fixed - change.broken);
    const tiles = predictionTiles(comparison, ["alone", "KD"]);
    expect(tiles[0].caption?.length).toBe(3);
    const e = comparison.examples[0];
    expect(tiles[0].captionColors?.[1]).toBe(e.predicted["target alone"] === e.truth ? "#2a7f2a" : "#c0392b");
  });
});
