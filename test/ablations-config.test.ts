import * as fs from "fs";
import * as path from "path";
import { afterEach, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { describeMatrices } from "../src/core/params";
import * as analysis from "../src/experiments/analysis";
import * as specs from "../src/plots/specs";
import * as cfg from "../src/experiments/configs/ablations";
import { validateExperiment } from "../src/experiments/runner";
import { type ExperimentConfig } from "../src/experiments/records";
import { getScenario } from "../src/experiments/scenario";
import "../src/experiments/scenarios/index";
import { withFactorizedDense } from "../src/experiments/scenarios/cross-architecture";
import { mlp } from "../src/models/zoo";

const NOTEBOOK = path.join(__dirname, "..", "notebooks", "04-ablations.ipynb");
const savedQuick = process.env.MERGENET_QUICK;
afterEach(() => {
  if (savedQuick === undefined) delete process.env.MERGENET_QUICK;
  else process.env.MERGENET_QUICK = savedQuick;
});

function inMode<T>(quick: boolean, fn: () => T): T {
  process.env.MERGENET_QUICK = quick ? "1" : "0";
  return fn();
}

const allExperiments = (): ExperimentConfig[] => [cfg.ablations(), cfg.cycleLrGrid(), ...cfg.factorizedRanks(), ...cfg.sourceCapacity()];
const names = (e: ExperimentConfig): string[] => e.methods.map((m) => m.name);

/** Every method name the notebook derives from the config module, with the experiment it must be in. */
function namesTheNotebookUses(): { experiment: ExperimentConfig; methods: string[] }[] {
  const main = cfg.ablations();
  const grid = cfg.cycleLrGrid();
  return [
    {
      experiment: main,
      methods: [
        cfg.ALONE, cfg.PAIR_ONLY, cfg.REFERENCE, cfg.CONTROL, cfg.PERMUTED, cfg.EXACT, cfg.EXACT_CONTROL, cfg.TWO_WAY, cfg.FROZEN,
        ...cfg.usableRanks().flatMap((r) => [cfg.svdMethod(r), cfg.svdControl(r)]),
        ...cfg.layerPairs().flatMap(([s, t]) => [cfg.pairMethod(s, t), cfg.pairControl(s, t)]),
        ...cfg.adapterVariants().map((m) => m.name),
        ...cfg.transferEpochsK().map(cfg.earlyMethod),
      ],
    },
    { experiment: grid, methods: [cfg.ALONE, ...cfg.gridCycles().flatMap((c) => cfg.gridLearningRates().map((lr) => cfg.gridMethod(c, lr)))] },
    ...cfg.factorizedRanks().map((experiment) => ({ experiment, methods: [cfg.ALONE, cfg.FACTORIZED, cfg.FACTORIZED_CONTROL] })),
    ...cfg.sourceCapacity().map((experiment) => ({ experiment, methods: [cfg.ALONE, cfg.REFERENCE, cfg.CONTROL] })),
  ];
}

function notebookCode(): string {
  const notebook = JSON.parse(fs.readFileSync(NOTEBOOK, "utf8")) as { cells: { cell_type: string; source: string[] }[] };
  return notebook.cells.filter((c) => c.cell_type === "code").map((c) => c.source.join("")).join("\n");
}

describe.each([true, false])("ablation configs (quick mode: %s)", (quick) => {
  it("validate, with unique experiment names", () => {
    inMode(quick, () => {
      const experiments = allExperiments();
      experiments.forEach((e) => expect(() => validateExperiment(e)).not.toThrow());
      expect(new Set(experiments.map((e) => e.name)).size).toBe(experiments.length);
    });
  });

  it("contain every method name the notebook derives", () => {
    inMode(quick, () => {
      for (const { experiment, methods } of namesTheNotebookUses()) {
        const missing = methods.filter((m) => !names(experiment).includes(m));
        expect(missing, `${experiment.name} lacks ${missing.join(", ")}`).toEqual([]);
      }
    });
  });

  it("share the scenario options, so paired targets are the same model on the same data", () => {
    inMode(quick, () => {
      const base = cfg.ablations().scenarioOptions;
      expect(cfg.cycleLrGrid().scenarioOptions).toEqual(base);
      for (const e of [...cfg.factorizedRanks(), ...cfg.sourceCapacity()]) {
        const { factorized, sourceFilters, sourceHidden, ...rest } = e.scenarioOptions;
        expect(rest).toEqual(base);
        expect(factorized !== undefined || (sourceFilters !== undefined && sourceHidden !== undefined)).toBe(true);
      }
    });
  });
});

describe("ablation configs in each mode", () => {
  it("default mode runs the full design on 3 seeds", () => {
    inMode(false, () => {
      allExperiments().forEach((e) => expect(e.seeds.length).toBeGreaterThanOrEqual(3));
      expect(cfg.gridCycles()).toEqual([1, 2, 4, 8, 16]);
      expect(cfg.gridLearningRates()).toEqual([1e-1, 1e-2, 1e-3, 1e-4]);
      expect(cfg.cycleLrGrid().methods.length).toBe(1 + 2 * 20); // each cell beside its matched control
      expect(cfg.usableRanks()).toEqual([1, 2, 4, 8]); // 16 and 32 exceed the source classifier's 10 rows
      expect(cfg.layerPairs().length).toBe(9);
      expect(cfg.adapterVariants().map((m) => m.name)).toEqual([
        "adapter 2 layers", "adapter 3 layers", "adapter 1 heads", "adapter 2 heads", "adapter 4 heads", "no spectral norm",
        "without rows_rows", "without rows_cols", "without cols_rows", "without cols_cols", "learned block weighting",
      ].flatMap((name) => [name, cfg.controlOf(name)]));
      expect(cfg.sourceSizes()).toEqual(["equal", "larger"]);
      expect(cfg.gridEpochs()).toBeLessThan(cfg.epochs());
    });
  });

  it("quick mode trims the grid to 2×2 and trains one seed briefly", () => {
    inMode(true, () => {
      expect(cfg.cycleLrGrid().methods.length).toBe(1 + 2 * 4);
      allExperiments().forEach((e) => {
        expect(e.seeds).toEqual([0]);
        expect(e.epochs).toBe(1);
      });
    });
  });

  it("the reference is the released configuration, and each variant changes one setting of it", () => {
    inMode(false, () => {
      const byName = new Map(cfg.ablations().methods.map((m) => [m.name, m]));
      const reference = byName.get(cfg.REFERENCE);
      expect(reference).toMatchObject({ kind: "mergenet", mergenet: { pairs: [cfg.REFERENCE_PAIR], cycle: 2, rule: "hypernet", output: "interp", adapter: { layers: 1 } } });
      expect(byName.get(cfg.CONTROL)).toMatchObject({ mergenet: { ...(reference as { mergenet: object }).mergenet, sourceInput: "random" } });
      expect(byName.get(cfg.PERMUTED)).toMatchObject({ mergenet: { ...(reference as { mergenet: object }).mergenet, sourceInput: "permuted" } });
      expect(byName.get(cfg.svdControl(4))).toMatchObject({ mergenet: { pairs: [{ ...cfg.REFERENCE_PAIR, form: "svd", rank: 4 }], sourceInput: "random" } });
      for (const experiment of cfg.factorizedRanks()) {
        const [factorized, control] = [cfg.FACTORIZED, cfg.FACTORIZED_CONTROL].map((name) => experiment.methods.find((m) => m.name === name) as { mergenet: object });
        expect(control).toMatchObject({ mergenet: { ...factorized.mergenet, sourceInput: "random" } });
      }
      expect(byName.get(cfg.EXACT)).toMatchObject({ mergenet: { rule: "exact" } });
      expect(byName.get(cfg.FROZEN)).toMatchObject({ pretrainSourceEpochs: 3 });
      expect(byName.get("without cols_rows")).toMatchObject({ mergenet: { adapter: { layers: 1, blocks: { colsRows: false } } } });
      expect(byName.get(cfg.svdMethod(4))).toMatchObject({ mergenet: { pairs: [{ ...cfg.REFERENCE_PAIR, form: "svd", rank: 4 }] } });
      expect(cfg.pairMethod("classifier", "fc2")).toBe(cfg.REFERENCE);
      expect(cfg.pairControl("classifier", "fc2")).toBe(cfg.CONTROL);
      expect(cfg.ablations().record).toEqual({ weights: [cfg.PAIRED_WEIGHT], trajectories: [cfg.ALONE, cfg.REFERENCE, cfg.CONTROL], phases: true });
    });
  });
});

describe("notebook 04 against the configs", () => {
  it("names only methods that exist in the configs", () => {
    const code = notebookCode();
    const known = new Set([false, true].flatMap((quick) => inMode(quick, () => allExperiments().flatMap(names))));
    const literals = [...code.matchAll(/"([^"\n]*)"/g)].map((m) => m[1]);
    const methodLike = literals.filter((s) => /^(control: |pair \w+ -> |svd rank |cycle \d|adapter \d|without |transfer first |MergeNet( factorized)?$|target alone$|two-way$|exact rule$|frozen pre-trained source$)/.test(s));
    expect(methodLike.filter((s) => !known.has(s))).toEqual([]);
  });

  it("uses only exports that exist in the config and analysis modules (and the chart builders of plots/specs that its `an` carries)", () => {
    const code = notebookCode();
    const used = (prefix: string) => [...new Set([...code.matchAll(new RegExp(`\\b${prefix}\\.(\\w+)`, "g"))].map((m) => m[1]))];
    expect(used("cfg").length).toBeGreaterThan(10);
    expect(used("cfg").filter((name) => !(name in cfg))).toEqual([]);
    expect(used("an").filter((name) => !(name in analysis) && !(name in specs))).toEqual([]);
  });
});

describe("scenario options for the ablations", () => {
  it("builds the chosen dense layers as W = B·A and keeps every other weight", () => {
    const original = mlp({ inputShape: [28, 28, 1], hidden: [256, 128], classes: 10, seed: 5 });
    const copy = mlp({ inputShape: [28, 28, 1], hidden: [256, 128], classes: 10, seed: 5 });
    const factorized = withFactorizedDense(copy, ["fc2"], 4, 1);
    expect(describeMatrices(factorized).map((m) => `${m.weight} ${m.view}`)).toEqual(["fc1/kernel [256, 784]", "fc2/lora_a [4, 256]", "fc2/lora_b [128, 4]", "classifier/kernel [10, 128]"]);
    for (const layer of ["fc1", "classifier"]) {
      const [a, b] = [original, factorized].map((m) => m.getLayer(layer).getWeights()[0]);
      expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBe(0);
    }
    const tiny = mlp({ inputShape: [4], hidden: [3], classes: 2, seed: 1 });
    expect(() => withFactorizedDense(tiny, ["fc9"], 1, 1)).toThrow(/has no layer 'fc9'; its layers are/);
    expect(() => withFactorizedDense(tiny, ["fc1"], 4, 1)).toThrow(/rank 4 does not fit layer 'fc1' \(kernel \[4, 3\]\); use a whole number in \[1, 3\]/);
    expect(tiny.getLayer("fc1").getWeights()[0].isDisposed).toBe(false); // a refused request leaves the model to the caller
    tiny.dispose();
    original.dispose();
    factorized.dispose();
  });

  it("passes the source's size and the factorized rank through the scenario", async () => {
    const small = { sourceTrain: 64, targetTrain: 64, testImages: 10 };
    const sized = await getScenario("image-cnn-to-x").build(0, { ...small, sourceFilters: [8, 16], sourceHidden: 32 });
    expect(describeMatrices(sized.source.model).map((m) => m.view)).toEqual(["[8, 9]", "[16, 72]", "[32, 784]", "[10, 32]"]);
    sized.dispose();
    const factorized = await getScenario("image-cnn-to-x").build(0, { ...small, factorized: { rank: 2 } });
    expect(describeMatrices(factorized.source.model).filter((m) => m.weight.startsWith("classifier")).map((m) => m.view)).toEqual(["[2, 128]", "[10, 2]"]);
    expect(describeMatrices(factorized.target.model).filter((m) => m.weight.startsWith("fc2")).map((m) => m.view)).toEqual(["[2, 256]", "[128, 2]"]);
    factorized.dispose();
    await expect(getScenario("image-cnn-to-x").build(0, { ...small, target: "vit", factorized: { rank: 2 } })).rejects.toThrow(/only the MLP target can be built factorized/);
    for (const { sourceFilters, sourceHidden, parameters } of Object.values(cfg.SOURCE_SIZES)) {
      const instance = await getScenario("image-cnn-to-x").build(0, { ...small, sourceFilters, sourceHidden });
      expect(Math.abs(instance.source.model.countParams() / 1e6 - parseFloat(parameters))).toBeLessThan(0.05); // the label the notebook prints
      instance.dispose();
    }
  });
});
