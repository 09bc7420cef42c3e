import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { IndependentTrainer } from "../src/baselines/independent";
import { AdamW } from "../src/core/adamw";
import { ParameterAdapter } from "../src/core/adapter/parameter-adapter";
import { paramRef, readMatrix, toMatrix, writeMatrix } from "../src/core/params";
import { trainStep, variableOf } from "../src/core/step";
import { MergeNetTrainer, resolveMergeNetConfig, type MergeNetConfig } from "../src/core/mergenet";
import { WriteBack } from "../src/core/writeback";
import { expectNoTensorLeak } from "./helpers/leaks";
import { disposedAfterEach } from "./helpers/disposed";
import { weightsOf, type TinySetup } from "./helpers/tiny";

// The pair used throughout: source classifier [4,16] (as [out, in]) -> target fc2 [8,10].
const PAIR = { source: "classifier/kernel", target: "fc2/kernel" };
const SMALL_ADAPTER = { layers: 1, heads: 2 };

const setup = disposedAfterEach();

function trainer(s: TinySetup, config: Partial<MergeNetConfig> = {}): MergeNetTrainer {
  return new MergeNetTrainer(s.source, s.target, { pairs: [PAIR], adapter: SMALL_ADAPTER, seed: 3, ...config });
}

describe("the hypernet rule's identity", () => {
  it("with plain SGD at rate η, (W_gen − W_after)/η is the target-loss gradient at W_gen, so both rules' adapter gradients agree up to η", () => {
    const eta = 0.1;
    const s = setup({ targetLr: eta });
    const ref = paramRef(s.target.model, PAIR.target);
    const source = readMatrix(paramRef(s.source.model, PAIR.source));
    const target = readMatrix(ref);
    const adapter = new ParameterAdapter({ sourceShape: [4, 16], targetShape: [8, 10], ...SMALL_ADAPTER, seed: 5 });
    const writeback = new WriteBack("interp", { initialTheta: 0 });
    const generate = () => writeback.apply(adapter.forward(source, target, { training: true, dropoutSeed: 9, updateSpectral: false }), target);
    const wGen = tf.tidy(generate);
    writeMatrix(ref, wGen);
    const batch = s.target.data.next();
    const name = variableOf(ref.variable).name;
    const step = trainStep({ ...s.target, weightDecay: 0 }, batch.x, batch.y, new Set([name]));
    const after = readMatrix(ref);
    const hyper = tf.tidy(() => tf.div(tf.sub(wGen, after), eta));
    const exact = toMatrix(ref, step.kept[name]);
    expect(tf.max(tf.abs(tf.sub(hyper, exact))).dataSync()[0]).toBeLessThan(1e-4);
    expect(tf.max(tf.abs(exact)).dataSync()[0]).toBeGreaterThan(1e-4); // not trivially zero

    const vars = [...adapter.variables, ...writeback.variables];
    const gradsFor = (cot: tf.Tensor) => tf.variableGrads(() => tf.sum(tf.mul(generate(), cot)) as tf.Scalar, vars).grads;
    const gHyper = gradsFor(tf.sub(wGen, after));
    const gExact = gradsFor(exact);
    for (const v of vars) {
      const scaled = tf.div(gHyper[v.name], eta);
      const tol = 1e-4 * (1 + tf.max(tf.abs(gExact[v.name])).dataSync()[0]);
      expect(tf.max(tf.abs(tf.sub(scaled, gExact[v.name]))).dataSync()[0]).toBeLessThan(tol);
    }
    tf.dispose([source, target, wGen, after, hyper, exact, gHyper, gExact, batch.x, batch.y, step.loss, step.kept]);
    adapter.dispose();
    writeback.dispose();
  });
});

describe("one forward pass per transfer", () => {
  // The trainer computes W_gen once, on the gradient tape, and takes the adapter's gradient
  // after the target step. Reference: the two-pass form (forward, write, step, a second
  // forward with the same function, VJP with the rule's cotangent, AdamW), written out here.
  // Dropout is off so the reference needs no access to the trainer's dropout seeds.
  it.each(["hypernet", "exact"] as const)("gives the same written weight, target step and adapter update as two passes (%s)", (rule) => {
    const adapterConfig = { ...SMALL_ADAPTER, attentionDropout: 0, ffnDropout: 0 };
    const a = setup({ seed: 5, momentum: 0.9, weightDecay: 5e-4 });
    const b = setup({ seed: 5, momentum: 0.9, weightDecay: 5e-4 });
    const t = trainer(a, { cycle: 1, rule, freezeSource: true, adapter: adapterConfig, adapterOptimizer: { learningRate: 1e-2 } });

    const sourceRef = paramRef(b.source.model, PAIR.source);
    const targetRef = paramRef(b.target.model, PAIR.target);
    const adapter = new ParameterAdapter({ sourceShape: [4, 16], targetShape: [8, 10], ...adapterConfig, seed: 3 * 7919, name: "reference_adapter" });
    const writeback = new WriteBack("interp");
    const vars = [...adapter.variables, ...writeback.variables];
    const optimizer = new AdamW(vars, { learningRate: 1e-2 });
    const initial = adapter.variables[0].clone();
    const s = readMatrix(sourceRef);
    const before = readMatrix(targetRef);
    const generate = (updateSpectral: boolean) => writeback.apply(adapter.forward(s, before, { training: true, updateSpectral }), before);
    const wGen = tf.tidy(() => generate(true));
    writeMatrix(targetRef, wGen);
    const batch = b.target.data.next();
    const name = variableOf(targetRef.variable).name;
    const step = trainStep({ ...b.target, weightDecay: 5e-4 }, batch.x, batch.y, new Set(rule === "exact" ? [name] : []));
    const cotangent = tf.tidy(() => (rule === "exact" ? toMatrix(targetRef, step.kept[name]) : tf.sub(wGen, readMatrix(targetRef))));
    const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(generate(false), cotangent)) as tf.Scalar, vars);
    tf.dispose(optimizer.step(grads));

    t.trainStep();
    expect(weightsOf(a.target.model)).toEqual(weightsOf(b.target.model));
    const trained = [...t.adapters[0].variables];
    expect(trained.length + 1).toBe(vars.length);
    trained.forEach((v, i) => {
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(v, vars[i]))).dataSync()[0]);
      expect(diff, adapter.parameterNames()[i]).toBeLessThan(1e-7);
    });
    const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(trained[0], initial))).dataSync()[0]);
    expect(moved).toBeGreaterThan(0); // the update did happen
    tf.dispose([initial, s, before, wGen, batch.x, batch.y, step.loss, step.kept, cotangent, grads, value]);
    optimizer.dispose();
    adapter.dispose();
    writeback.dispose();
    t.dispose();
  });
});

describe("MergeNetTrainer schedule", () => {
  it("overwrites the target weight exactly at the steps where t % cycle == 0", () => {
    // Target learning rate 0: the target's own steps leave the weight alone; only transfers move it.
    const s = setup({ targetLr: 0 });
    const t = trainer(s, { cycle: 3, freezeSource: true, adapterOptimizer: { learningRate: 1e-3 } });
    const ref = paramRef(s.target.model, PAIR.target);
    let before = Array.from(readMatrix(ref).dataSync());
    for (let step = 0; step < 10; step++) {
      t.trainStep();
      const now = Array.from(readMatrix(ref).dataSync());
      const changed = now.some((v, i) => v !== before[i]);
      expect(changed, `step ${step}`).toBe(step % 3 === 0);
      before = now;
    }
    t.dispose();
  });

  it("never changes a frozen source", () => {
    const s = setup();
    const before = weightsOf(s.source.model);
    const t = trainer(s, { cycle: 1, freezeSource: true });
    for (let i = 0; i < 6; i++) t.trainStep();
    expect(weightsOf(s.source.model)).toEqual(before);
    t.dispose();
  });

  it("with no layer pair reproduces target-alone bit for bit", async () => {
    const a = setup({ seed: 4 });
    const b = setup({ seed: 4 });
    const merged = new MergeNetTrainer(a.source, a.target, { pairs: [], seed: 3 });
    const alone = new IndependentTrainer(undefined, b.target);
    await merged.fit(2);
    await alone.fit(2);
    expect(weightsOf(a.target.model)).toEqual(weightsOf(b.target.model));
    expect(merged.history.targetLoss).toEqual(alone.history.targetLoss);
    merged.dispose();
    alone.dispose();
  });

  it("gives the same history for the same seed, and a different one for another seed", async () => {
    const run = async (seed: number) => {
      const s = setup({ seed: 2 });
      const t = trainer(s, { cycle: 2, seed });
      await t.fit(2);
      t.dispose();
      return { losses: t.history.targetLoss, transfers: t.history.transfers.map((r) => r.relativeChange) };
    };
    const first = await run(7);
    expect(await run(7)).toEqual(first);
    expect((await run(8)).transfers).not.toEqual(first.transfers);
  });

  it.each(["hypernet", "exact"] as const)("updates the adapter with the %s rule: finite, non-zero gradient norms", async (rule) => {
    const s = setup();
    const t = trainer(s, { cycle: 1, rule });
    await t.fit(1);
    expect(t.history.transfers.length).toBe(5);
    for (const r of t.history.transfers) {
      expect(Number.isFinite(r.gradNorm)).toBe(true);
      expect(r.gradNorm).toBeGreaterThan(0);
      expect(r.relativeChange).toBeGreaterThan(0);
    }
    t.dispose();
  });

  it("transfers only during the first K epochs when asked", async () => {
    const s = setup();
    const t = trainer(s, { cycle: 1, transferEpochs: 1 });
    await t.fit(3);
    expect(t.history.transfers.map((r) => r.step)).toEqual([0, 1, 2, 3, 4]);
    t.dispose();
  });

  it("writes into both models with two-way transfer", () => {
    const s = setup();
    const t = trainer(s, { cycle: 1, direction: "two-way" });
    t.trainStep();
    t.dispose(); // flushes the step's statistics into the history
    expect(t.history.transfers.map((r) => r.direction)).toEqual(["forward", "backward"]);
  });

  it.each([
    [{ form: "svd" as const, rank: 2 }, 1],
  ])("supports the %o form", (form) => {
    const s = setup();
    const t = new MergeNetTrainer(s.source, s.target, { pairs: [{ ...PAIR, ...form }], adapter: SMALL_ADAPTER, cycle: 1 });
    for (let i = 0; i < 3; i++) t.trainStep();
    t.dispose();
    expect(t.history.transfers.length).toBe(3);
    expect(t.history.transfers.every((r) => r.relativeChange > 0 && Number.isFinite(r.gradNorm))).toBe(true);
  });

  /** What the trainer's first link hands the adapter on the source side, and the link's fixed permutation. */
  function adapterInput(t: MergeNetTrainer): { read: number[]; permutation?: number[] } {
    const inner = t as unknown as { links: { permutations?: tf.Tensor1D[] }[]; sourceParts(link: unknown): tf.Tensor2D[] };
    const parts = inner.sourceParts(inner.links[0]);
    const read = Array.from(parts[0].dataSync());
    tf.dispose(parts);
    const perm = inner.links[0].permutations?.[0];
    return { read, permutation: perm ? Array.from(perm.dataSync()) : undefined };
  }
  const sourceWeight = (s: TinySetup): number[] => {
    const m = readMatrix(paramRef(s.source.model, PAIR.source));
    const values = Array.from(m.dataSync());
    m.dispose();
    return values;
  };
  const sorted = (v: number[]): number[] => [...v].sort((a, b) => a - b);

  it("feeds the random-source control a fixed matrix of the source's std, not the source weight", () => {
    const s = setup();
    const t = trainer(s, { cycle: 1, sourceInput: "random" });
    const first = adapterInput(t).read;
    const source = sourceWeight(s);
    for (let i = 0; i < 3; i++) t.trainStep();
    expect(sourceWeight(s)).not.toEqual(source); // the source trained...
    expect(adapterInput(t).read).toEqual(first); // ...the control's input did not move
    expect(sorted(first)).not.toEqual(sorted(source));
    const std = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length - (v.reduce((a, x) => a + x, 0) / v.length) ** 2);
    expect(std(first) / std(source)).toBeGreaterThan(0.7);
    expect(std(first) / std(source)).toBeLessThan(1.3);
    t.dispose();
    expect(t.history.transfers.length).toBe(3);
  });

  it("feeds the permuted-source control the live source weight under one fixed shuffle of its entries", () => {
    const s = setup();
    const t = trainer(s, { cycle: 1, sourceInput: "permuted" });
    const before = adapterInput(t);
    const perm = before.permutation!;
    expect(sorted(perm)).toEqual(perm.map((_, i) => i)); // a permutation...
    expect(perm.filter((p, i) => p === i).length).toBeLessThan(perm.length / 4); // ...that moves most entries
    expect(before.read).toEqual(perm.map((p) => sourceWeight(s)[p]));
    for (let i = 0; i < 3; i++) t.trainStep();
    const after = adapterInput(t);
    expect(after.permutation).toEqual(perm); // the same shuffle...
    const source = sourceWeight(s);
    expect(after.read).toEqual(perm.map((p) => source[p])); // ...of the weight as it is now
    expect(after.read).not.toEqual(before.read);
    t.dispose();
    expect(t.history.transfers.length).toBe(3);
  });

  it("leaks no tensor across 50 steps", async () => {
    const s = setup();
    const t = trainer(s, { cycle: 2, rule: "exact", direction: "two-way" });
    // Epochs of 5 steps, 10 epochs: losses and transfer statistics are flushed at each epoch's end.
    // Two warm-up epochs: the first creates the optimisers' slots, the second the in-memory good-state copy of them.
    await expectNoTensorLeak(async () => { await t.trainEpoch(); }, { warmup: 2, repeats: 10 });
    t.dispose();
  });
});

describe("MergeNet configuration errors", () => {
  const cases: [string, Partial<MergeNetConfig>, RegExp][] = [
    ["cycle 0", { cycle: 0 }, /cycle must be a whole number >= 1/],
    ["cycle 1.5", { cycle: 1.5 }, /cycle must be a whole number >= 1/],
    ["unknown rule", { rule: "magic" as never }, /rule must be 'hypernet' or 'exact'/],
    ["unknown output", { output: "paste" as never }, /output must be one of replace, matched, residual, interp/],
    ["two-way with a frozen source", { direction: "two-way", freezeSource: true }, /a frozen source cannot receive knowledge/],
    ["transferEpochs 0", { transferEpochs: 0 }, /transferEpochs must be a whole number >= 1/],
    ["svd without rank", { pairs: [{ ...PAIR, form: "svd" }] }, /needs a whole-number rank >= 1/],
    ["bad source input", { sourceInput: "noise" as never }, /sourceInput must be 'model', 'random' or 'permuted'/],
  ];
  it.each(cases)("%s", (_, config, message) => {
    expect(() => resolveMergeNetConfig({ pairs: [PAIR], ...config })).toThrow(message);
  });

  it("names the valid layers when a layer name is wrong", () => {
    const s = setup();
    expect(() => trainer(s, { pairs: [{ source: "classifer/kernel", target: "fc2/kernel" }] })).toThrow(/pairs\[0\]: source .*classifier\/kernel/s);
  });

  it("refuses an svd rank above the matrices' smallest side", () => {
    const s = setup();
    expect(() => trainer(s, { pairs: [{ ...PAIR, form: "svd", rank: 5 }] })).toThrow(/rank 5 exceeds .* use a rank <= 4/);
  });
});

describe("checkpoints", () => {
  const fs = require("fs") as typeof import("fs");
  const os = require("os") as typeof import("os");
  const path = require("path") as typeof import("path");
  const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-ckpt-"));

  it("resume after a save reproduces an uninterrupted run exactly", async () => {
    const config = { cycle: 2, rule: "exact" as const, sourceInput: "random" as const };
    const straight = setup({ seed: 6, momentum: 0.9 });
    const a = trainer(straight, config);
    await a.fit(3);

    const dir = path.join(tmp(), "ckpt");
    const first = setup({ seed: 6, momentum: 0.9 });
    const b = trainer(first, config);
    await b.fit(1);
    b.trainStep(); // mid-epoch
    await b.saveCheckpoint(dir);

    const resumed = setup({ seed: 6, modelSeed: 99, momentum: 0.9 }); // different initial weights: all must come from the checkpoint
    const c = trainer(resumed, config);
    await c.loadCheckpoint(dir);
    await c.fit(2);
    expect(weightsOf(resumed.target.model)).toEqual(weightsOf(straight.target.model));
    expect(weightsOf(resumed.source.model)).toEqual(weightsOf(straight.source.model));
    expect(c.history.targetLoss).toEqual(a.history.targetLoss);
    expect(c.history.epochs.map((e) => e.targetLoss)).toEqual(a.history.epochs.map((e) => e.targetLoss));
    [a, b, c].forEach((t) => t.dispose());
  });

  it("detects a corrupt checkpoint and names the folder", async () => {
    const dir = path.join(tmp(), "ckpt");
    const s = setup();
    const t = trainer(s);
    t.trainStep();
    await t.saveCheckpoint(dir);
    const blob = path.join(dir, "tensors.bin");
    const bytes = fs.readFileSync(blob);
    bytes[10] ^= 0xff;
    fs.writeFileSync(blob, bytes);
    await expect(t.loadCheckpoint(dir)).rejects.toThrow(/checkpoint at .*ckpt is damaged \(tensors.bin fails its checksum\)/);
    fs.writeFileSync(blob, bytes.subarray(0, 20));
    await expect(t.loadCheckpoint(dir)).rejects.toThrow(/is damaged \(tensors.bin holds 20 bytes/);
    fs.writeFileSync(path.join(dir, "manifest.json"), "{ not json");
    await expect(t.loadCheckpoint(dir)).rejects.toThrow(/manifest.json is not valid JSON/);
    t.dispose();
  });

  it("refuses a checkpoint made with another configuration", async () => {
    const dir = path.join(tmp(), "ckpt");
    const s = setup();
    const t = trainer(s, { cycle: 2 });
    await t.saveCheckpoint(dir);
    const other = trainer(setup(), { cycle: 3 });
    await expect(other.loadCheckpoint(dir)).rejects.toThrow(/different MergeNet configuration/);
    t.dispose();
    other.dispose();
  });
});
