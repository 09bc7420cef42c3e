import { describe, expect, it } from "vitest";
import * as os from "os";
import * as path from "path";
import * as fs from "fs";
import { tf } from "../src/backend/index";
import { SharingTrainer } from "../src/baselines/sharing";
import { attentionRelativeEntropy, writeCosine } from "../src/core/diagnostics";
import { paramRef, readMatrix } from "../src/core/params";
import { MergeNetTrainer, type MergeNetConfig } from "../src/core/mergenet";
import { permuteHiddenUnits } from "../src/models/permute";
import { makeTrainer } from "../src/experiments/methods";
import { runExperiment } from "../src/experiments/runner";
import { getScenario } from "../src/experiments/scenario";
import "../src/experiments/scenarios";
import { clearPretrainedSources, POSITIVE_CONTROL_PAIRS } from "../src/experiments/scenarios/positive-control";
import { expectNoTensorLeak } from "./helpers/leaks";
import { disposedAfterEach } from "./helpers/disposed";
import { registerTinyScenario, tinyMlp, weightsOf, type TinySetup } from "./helpers/tiny";

const setup = disposedAfterEach();
const PAIR = { source: "classifier/kernel", target: "fc2/kernel" }; // [4,16] -> [8,10]

function trainer(s: TinySetup, config: Partial<MergeNetConfig> = {}): MergeNetTrainer {
  return new MergeNetTrainer(s.source, s.target, { pairs: [PAIR], adapter: { layers: 1, heads: 2 }, seed: 3, ...config });
}

const matrix = (model: tf.LayersModel, name: string): number[][] => {
  const m = readMatrix(paramRef(model, name));
  const rows = m.arraySync();
  m.dispose();
  return rows;
};

describe("permuted hidden units", () => {
  it("compute the same function with every hidden-to-hidden weight reordered", () => {
    const model = tinyMlp(12, [10, 8], 4, 5);
    const x = tf.randomNormal([6, 12], 0, 1, "float32", 1);
    const before = model.predict(x) as tf.Tensor;
    const fc2Before = matrix(model, "fc2/kernel");
    const perms = permuteHiddenUnits(model, ["fc1", "fc2"], "classifier", 7);
    const after = model.predict(x) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(before, after))).dataSync()[0]).toBeLessThan(1e-5);
    expect(perms.map((p) => p.length)).toEqual([10, 8]);
    const fc2After = matrix(model, "fc2/kernel"); // [out 8, in 10]
    expect(fc2After).not.toEqual(fc2Before);
    // New unit j of fc2 is old unit perm[j], reading new input i = old input perm1[i].
    expect(fc2After[3][2]).toBeCloseTo(fc2Before[perms[1][3]][perms[0][2]], 6);
    tf.dispose([x, before, after]);
    model.dispose();
  });

  it("refuses a layer the model does not have, naming the layers it has", () => {
    const model = tinyMlp(12, [10], 4, 5);
    expect(() => permuteHiddenUnits(model, ["fc9"], "classifier", 1)).toThrow(/no layer 'fc9'.*fc1/);
    model.dispose();
  });
});

describe("the positive-control scenario", () => {
  const small = { targetTrain: 64, sourceTrain: 256, sourceEpochs: 1, testImages: 200 };

  it("source B (units permuted) computes source A's function; both are frozen; the source starts from the target's own weights", async () => {
    const scenario = getScenario("positive-control");
    const a = await scenario.build(0, { ...small, sourceUnits: "aligned" });
    const b = await scenario.build(0, { ...small, sourceUnits: "permuted" });
    const x = tf.randomUniform([32, 28, 28, 1], 0, 1, "float32", 3);
    const outA = a.source.model.predict(x) as tf.Tensor;
    const outB = b.source.model.predict(x) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(outA, outB))).dataSync()[0]).toBeLessThan(1e-5);
    expect(matrix(a.source.model, "fc2/kernel")).not.toEqual(matrix(b.source.model, "fc2/kernel"));
    expect(a.frozenSource).toBe(true);
    // Aligned: pre-training moved the source only a little from the target's initial weights.
    const s = readMatrix(paramRef(a.source.model, "fc2/kernel"));
    const t = readMatrix(paramRef(a.target.model, "fc2/kernel"));
    const relative = tf.div(tf.norm(tf.sub(s, t)), tf.norm(t)).dataSync()[0];
    expect(relative).toBeGreaterThan(0);
    expect(relative).toBeLessThan(0.5);
    const mergenet = makeTrainer({ name: "m", kind: "mergenet", mergenet: { pairs: [POSITIVE_CONTROL_PAIRS.fc2], adapter: { layers: 1 } } }, a);
    const sourceBefore = weightsOf(a.source.model);
    run(mergenet, 3);
    expect(weightsOf(a.source.model)).toEqual(sourceBefore);
    mergenet.dispose();
    tf.dispose([x, outA, outB, s, t]);
    a.dispose();
    b.dispose();
  });

  it("refuses an unknown option, listing the known ones", async () => {
    await expect(getScenario("positive-control").build(0, { targetTrian: 10 })).rejects.toThrow(/unknown option 'targetTrian'.*targetTrain/);
  });

  it("stores its pre-trained source in the results folder, and a new process's build loads the same weights", async () => {
    const scenario = getScenario("positive-control");
    const resultsDir = fs.mkdtempSync(path.join(os.tmpdir(), "positive-control-store-"));
    const options = { ...small, sourceEpochs: 2 };
    try {
      clearPretrainedSources();
      const trained = await scenario.build(1, options, { resultsDir });
      const stores = fs.readdirSync(path.join(resultsDir, "pretrained-sources"));
      expect(stores).toHaveLength(1);
      expect(stores[0]).toMatch(/^positive-control-seed-1-[0-9a-f]{16}$/);
      const file = path.join(resultsDir, "pretrained-sources", stores[0], "weights.f32");
      const before = fs.statSync(file);
      clearPretrainedSources(); // as a new worker process: nothing kept in memory
      const loaded = await scenario.build(1, options, { resultsDir });
      expect(weightsOf(loaded.source.model)).toEqual(weightsOf(trained.source.model));
      expect(fs.statSync(file).ino).toBe(before.ino); // loaded, not pre-trained and written again
      clearPretrainedSources();
      const alone = await scenario.build(1, options); // no results folder: pre-trains, the same weights
      expect(weightsOf(alone.source.model)).toEqual(weightsOf(trained.source.model));
      [trained, loaded, alone].forEach((i) => i.dispose());
    } finally {
      clearPretrainedSources();
      fs.rmSync(resultsDir, { recursive: true, force: true });
    }
  });
});

describe("soft copy", () => {
  const pair = { source: "fc1/kernel", target: "fc1/kernel" }; // [16,12] and [10,12]: the overlap is [10,12]
  const shareOnce = (strength: number | undefined) => {
    const s = setup({ seed: 2 });
    const before = matrix(s.target.model, "fc1/kernel");
    const source = matrix(s.source.model, "fc1/kernel");
    const trainer = new SharingTrainer(s.source, s.target, { pairs: [pair], mode: "copy", cycle: 1, strength, freezeSource: true });
    (trainer as unknown as { share(): void }).share();
    const after = matrix(s.target.model, "fc1/kernel");
    trainer.dispose();
    return { before, source, after };
  };

  it("with g = 1 is naive sharing's copy, and g = 0.5 moves the weight halfway to the source's", () => {
    const plain = shareOnce(undefined);
    expect(shareOnce(1).after).toEqual(plain.after);
    expect(plain.after).toEqual(plain.source.slice(0, 10));
    const half = shareOnce(0.5);
    half.after.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(half.before[i][j] + 0.5 * (half.source[i][j] - half.before[i][j]), 6)));
  });

  it("refuses a strength outside (0, 1] and a strength with 'average'", () => {
    const s = setup();
    const pairs = [{ source: "fc1/kernel", target: "fc1/kernel" }];
    expect(() => new SharingTrainer(s.source, s.target, { pairs, mode: "copy", cycle: 1, strength: 1.5 })).toThrow(/strength must be a number in \(0, 1\]/);
    expect(() => new SharingTrainer(s.source, s.target, { pairs, mode: "average", cycle: 1, strength: 0.5 })).toThrow(/applies to mode 'copy'/);
  });
});

describe("adapter diagnostics", () => {
  it("uniform attention has relative entropy 1, one-hot 0, and a half-and-half row over four keys 0.5", () => {
    expect(attentionRelativeEntropy([[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]])).toBeCloseTo(1, 10);
    expect(attentionRelativeEntropy([[0, 1, 0, 0], [1, 0, 0, 0]])).toBe(0);
    expect(attentionRelativeEntropy([[0.5, 0.5, 0, 0]])).toBeCloseTo(0.5, 10);
    expect(() => attentionRelativeEntropy([[0.5, 0.5], [1]])).toThrow(/rectangular/);
  });

  it("a write equal to S − T has cosine 1 toward the source; its opposite −1; an orthogonal write 0", () => {
    const t = tf.tensor2d([[1, 2], [3, 4]]);
    const s = tf.tensor2d([[2, 2], [3, 6]]); // S − T = [[1, 0], [0, 2]]
    expect(writeCosine(s, t, s).dataSync()[0]).toBeCloseTo(1, 6);
    expect(writeCosine(tf.sub(tf.mul(t, 2), s) as tf.Tensor2D, t, s).dataSync()[0]).toBeCloseTo(-1, 6);
    expect(writeCosine(tf.add(t, tf.tensor2d([[0, 1], [1, 0]])) as tf.Tensor2D, t, s).dataSync()[0]).toBeCloseTo(0, 6);
    expect(() => writeCosine(t, t, tf.zeros([3, 2]) as tf.Tensor2D)).toThrow(/must be equal/);
  });

  it("are saved with every MergeNet run: entropy in [0, 1], gate, write size, one adapter update per transfer", async () => {
    registerTinyScenario("tiny-diagnostics");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "diag-"));
    const result = await runExperiment({
      name: "diag", scenario: "tiny-diagnostics", scenarioOptions: {}, epochs: 2, seeds: [0, 1],
      methods: [{ name: "m", kind: "mergenet", mergenet: { pairs: [PAIR], adapter: { layers: 1, heads: 2 } } }],
    }, { resultsDir: dir, progress: false });
    for (const run of result.runs) {
      const d = run.diagnostics!;
      expect(Object.keys(d.attentionEntropy).sort()).toEqual(["cols_cols", "cols_rows", "rows_cols", "rows_rows"]);
      for (const h of Object.values(d.attentionEntropy)) expect(h).toBeGreaterThanOrEqual(0), expect(h).toBeLessThanOrEqual(1);
      expect(d.gate).toBeGreaterThan(0.002);
      expect(d.adapterUpdates).toBe(d.transfers);
      expect(d.transfers).toBe(run.transfers.step.length);
      expect(d.writeSize.mean).toBeGreaterThan(0);
      expect(d.towardSource).toBeUndefined(); // [4,16] and [8,10]: no common axes
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the write direction is recorded where the pair's shapes agree (positive control, fc2 ↔ fc2), NaN where they differ", async () => {
    const instance = await getScenario("positive-control").build(0, { targetTrain: 64, sourceTrain: 256, sourceEpochs: 1, testImages: 100 });
    const t = makeTrainer({ name: "m", kind: "mergenet", mergenet: { pairs: [POSITIVE_CONTROL_PAIRS.fc2], adapter: { layers: 1 }, gateInit: 0 } }, instance) as MergeNetTrainer;
    run(t, 4);
    const cosines = t.history.transfers.map((r) => r.towardSource);
    expect(cosines.length).toBe(2);
    for (const c of cosines) expect(Math.abs(c)).toBeLessThanOrEqual(1 + 1e-6);
    t.dispose();
    instance.dispose();
    const s = setup();
    const other = trainer(s);
    run(other, 2);
    expect(other.history.transfers.every((r) => Number.isNaN(r.towardSource))).toBe(true);
    other.dispose();
  });
});

describe("write strength and adapter-update options (beyond the paper, off by default)", () => {
  it("gateInit sets the starting gate; freezeGate keeps it through training", async () => {
    const s = setup();
    const t = trainer(s, { gateInit: -3, freezeGate: true, cycle: 1 });
    const g0 = 1 / (1 + Math.exp(3));
    expect(t.adapters.length).toBe(1);
    await t.fit(2);
    expect(t.history.epochs.map((e) => e.gates["0:forward:0"])).toEqual([expect.closeTo(g0, 6), expect.closeTo(g0, 6)]);
    t.dispose();
  });

  it("gateLearningRate moves the gate by about that rate per update (Adam), the adapter's rate far less", async () => {
    const s = setup();
    const slow = trainer(s, { cycle: 1 });
    run(slow, 1);
    const thetaSlow = logit(gateOf(slow));
    slow.dispose();
    const s2 = setup();
    const fast = trainer(s2, { cycle: 1, gateLearningRate: 0.1 });
    run(fast, 1);
    const thetaFast = logit(gateOf(fast));
    fast.dispose();
    expect(Math.abs(thetaSlow + 6)).toBeLessThan(1.5e-3);
    expect(Math.abs(thetaFast + 6)).toBeGreaterThan(0.05);
    expect(Math.abs(thetaFast + 6)).toBeLessThan(0.11);
  });

  it("updatesPerTransfer k makes k adapter updates per transfer; 1 is the default, bit for bit", async () => {
    const a = setup();
    const b = setup();
    const c = setup();
    const base = trainer(a, { cycle: 2 });
    const one = trainer(b, { cycle: 2, updatesPerTransfer: 1 });
    const three = trainer(c, { cycle: 2, updatesPerTransfer: 3, rule: "exact" });
    for (const t of [base, one, three]) run(t, 6);
    expect(weightsOf(b.target.model)).toEqual(weightsOf(a.target.model));
    expect(three.adapterUpdates).toBe(3 * three.history.transfers.length);
    expect(weightsOf(c.target.model)).not.toEqual(weightsOf(a.target.model));
    for (const t of [base, one, three]) t.dispose();
  });

  it("leak no tensor across steps (extra updates, gate learning rate, both rules)", async () => {
    for (const rule of ["hypernet", "exact"] as const) {
      const s = setup();
      const t = trainer(s, { cycle: 1, updatesPerTransfer: 2, gateLearningRate: 0.05, rule });
      await expectNoTensorLeak(() => run(t, 2), { warmup: 1, repeats: 3 });
      t.dispose();
    }
  });

  it("are refused where they make no sense, in words", () => {
    const s = setup();
    expect(() => trainer(s, { output: "matched", gateInit: 0 })).toThrow(/no gate/);
    expect(() => trainer(s, { freezeGate: true, gateLearningRate: 0.1 })).toThrow(/contradict/);
    expect(() => trainer(s, { updatesPerTransfer: 0 })).toThrow(/updatesPerTransfer must be a whole number >= 1/);
    expect(() => trainer(s, { gateLearningRate: -1 })).toThrow(/gateLearningRate must be a number > 0/);
  });
});

function gateOf(t: MergeNetTrainer): number {
  return (t as unknown as { gates(): Record<string, number> }).gates()["0:forward:0"];
}

function logit(g: number): number {
  return Math.log(g / (1 - g));
}

/** n global steps, then the history's pending statistics read (as an epoch's end does). */
function run(t: { trainStep(): void }, n: number): void {
  for (let i = 0; i < n; i++) t.trainStep();
  (t as unknown as { flush(): void }).flush();
}
