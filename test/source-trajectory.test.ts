/**
 * A recorded source trajectory, replayed, gives the very run a trained source gives: every loss,
 * transfer statistic, metric and target weight to the last bit. And where replay cannot stand for
 * training (the source receives transfers, is frozen, the record lacks a weight read, a resume
 * without the record), the trainer says so.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { IndependentTrainer } from "../src/baselines/independent";
import type { JointLoop } from "../src/core/loop";
import { MergeNetTrainer, type MergeNetConfig } from "../src/core/mergenet";
import { accuracyEvaluator } from "../src/core/losses";
import type { SourceTrajectory } from "../src/core/source-trajectory";
import { expectNoTensorLeak } from "./helpers/leaks";
import { disposedAfterEach } from "./helpers/disposed";
import { synthetic, weightsOf, type TinySetup } from "./helpers/tiny";

const PAIR = { source: "classifier/kernel", target: "fc2/kernel" };
const SMALL_ADAPTER = { layers: 1, heads: 2 };
const EPOCHS = 3;

const setup = disposedAfterEach();

/** A tiny set-up whose two sides are evaluated (the source at the last epoch only, as the runner does). */
function evaluated(seed: number): { s: TinySetup; dispose: () => void } {
  const s = setup({ seed, momentum: 0.9 });
  const test = synthetic(30, 12, 4, seed + 70);
  s.source.evaluate = accuracyEvaluator(test.x, test.y);
  s.target.evaluate = accuracyEvaluator(test.x, test.y);
  return { s, dispose: () => tf.dispose([test.x, test.y]) };
}

function mergenet(s: TinySetup, config: Partial<MergeNetConfig>): MergeNetTrainer {
  return new MergeNetTrainer(s.source, s.target, { pairs: [PAIR], adapter: SMALL_ADAPTER, seed: 3, cycle: 2, ...config });
}

/** Trains `make`'s trainer twice on identical set-ups: recording, then replaying; returns both. */
async function recordThenReplay(make: (s: TinySetup) => JointLoop): Promise<{ trained: JointLoop; replayed: JointLoop; record: SourceTrajectory; trainedTarget: number[][]; replayedTarget: number[][] }> {
  const a = evaluated(11);
  const b = evaluated(11);
  const trained = make(a.s);
  trained.evaluateSourceAt = (epoch) => epoch === EPOCHS - 1;
  trained.recordSource();
  await trained.fit(EPOCHS);
  const record = trained.sourceRecording();
  if (!record) throw new Error("no recording");
  const replayed = make(b.s);
  replayed.evaluateSourceAt = (epoch) => epoch === EPOCHS - 1;
  replayed.replaySource(record);
  await replayed.fit(EPOCHS);
  const result = { trained, replayed, record, trainedTarget: weightsOf(a.s.target.model), replayedTarget: weightsOf(b.s.target.model) };
  a.dispose();
  b.dispose();
  return result;
}

/** History without wall times. */
function timeless(t: JointLoop): unknown {
  return { ...t.history, epochs: t.history.epochs.map((e) => ({ ...e, seconds: 0 })) };
}

describe("source trajectory: replay equals training", () => {
  const variants: [string, Partial<MergeNetConfig>][] = [
    ["MergeNet hypernet", {}],
    ["MergeNet exact", { rule: "exact" }],
    ["random-source control", { sourceInput: "random" }],
    ["permuted-source control", { sourceInput: "permuted" }],
    ["transfer in the first epoch only", { transferEpochs: 1 }],
  ];
  for (const [name, config] of variants) {
    it(`${name}: the same history and target weights, to the last bit`, async () => {
      const { trained, replayed, record, trainedTarget, replayedTarget } = await recordThenReplay((s) => mergenet(s, config));
      expect(record.weights.map((w) => w.name)).toEqual([PAIR.source]);
      expect(record.losses.length).toBe(trained.steps);
      expect(Object.keys(record.metrics)).toEqual([String(EPOCHS - 1)]);
      expect(timeless(replayed)).toEqual(timeless(trained));
      expect(replayedTarget).toEqual(trainedTarget);
      expect(trained.history.transfers.length).toBeGreaterThan(0);
      trained.dispose();
      replayed.dispose();
    });
  }

  it("the pair baseline (nothing read from the source): losses and metrics only", async () => {
    const { trained, replayed, record, trainedTarget, replayedTarget } = await recordThenReplay((s) => new IndependentTrainer(s.source, s.target));
    expect(record.weights).toEqual([]);
    expect(timeless(replayed)).toEqual(timeless(trained));
    expect(replayedTarget).toEqual(trainedTarget);
    trained.dispose();
    replayed.dispose();
  });

  it("a replayed epoch leaks no tensor", async () => {
    const recording = mergenet(setup({ seed: 11, momentum: 0.9 }), {});
    recording.recordSource();
    await recording.fit(12);
    const record = recording.sourceRecording()!;
    recording.dispose();
    const t = mergenet(setup({ seed: 11, momentum: 0.9 }), {});
    t.replaySource(record);
    await expectNoTensorLeak(async () => { await t.trainEpoch(); }, { warmup: 2, repeats: 10 }); // as the trainer's own leak test
    t.dispose();
  });
});

describe("source trajectory: where replay cannot stand for training", () => {
  it("refuses a two-way run, a frozen source and a trainer without a source", () => {
    const s = setup();
    expect(() => mergenet(s, { direction: "two-way" }).recordSource()).toThrow(/depends on the target/);
    expect(() => new IndependentTrainer(s.source, s.target, { freezeSource: true }).recordSource()).toThrow(/frozen/);
    expect(() => new IndependentTrainer(undefined, s.target).recordSource()).toThrow(/no source/);
  });

  it("refuses a record that lacks a weight the trainer reads, naming it", async () => {
    const { trained, replayed, record } = await recordThenReplay((s) => new IndependentTrainer(s.source, s.target));
    trained.dispose();
    replayed.dispose();
    const s = setup({ seed: 11 });
    expect(() => mergenet(s, {}).replaySource(record)).toThrow(/reads the source's classifier\/kernel, which the record does not hold/);
  });

  it("refuses to replay beyond the record, and to record after the first step", async () => {
    const { record, trained, replayed } = await recordThenReplay((s) => mergenet(s, {}));
    trained.dispose();
    replayed.dispose();
    const s = setup({ seed: 11, momentum: 0.9 });
    const t = mergenet(s, {});
    t.replaySource({ ...record, losses: record.losses.slice(0, 3), values: record.values.map((v) => v.slice(0, 3)) });
    for (let i = 0; i < 3; i++) t.trainStep();
    expect(() => t.trainStep()).toThrow(/covers 3 steps; step 3 is beyond it/);
    const u = mergenet(setup({ seed: 12 }), {});
    u.trainStep();
    expect(() => u.recordSource()).toThrow(/before the first step/);
  });

  it("a checkpoint of a replayed run resumes only with the record", async () => {
    const { record, trained, replayed } = await recordThenReplay((s) => mergenet(s, {}));
    trained.dispose();
    replayed.dispose();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "replay-ckpt-"));
    try {
      const s = setup({ seed: 11, momentum: 0.9 });
      const t = mergenet(s, {});
      t.replaySource(record);
      for (let i = 0; i < 4; i++) t.trainStep();
      await t.saveCheckpoint(dir);
      const plain = mergenet(setup({ seed: 11, momentum: 0.9 }), {});
      await expect(plain.loadCheckpoint(dir)).rejects.toThrow(/replayed its source's recorded trajectory/);
      const again = mergenet(setup({ seed: 11, momentum: 0.9 }), {});
      again.replaySource(record);
      await again.loadCheckpoint(dir);
      expect(again.steps).toBe(4);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
