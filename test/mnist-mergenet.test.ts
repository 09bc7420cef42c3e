// Issue "core" done-when: MergeNet trains a CNN source and an MLP target together on real
// MNIST (the bench-mnist workload, one epoch) with both models learning and the adapter's
// gradient finite and non-zero.
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { accuracyEvaluator } from "../src/core/losses";
import { loadImageDataset } from "../src/data/images";
import { benchWorkload } from "../src/experiments/bench-mnist";

describe("MergeNet on real MNIST (bench-mnist, one epoch)", () => {
  it("trains both models well above chance with a live adapter", async () => {
    const work = await benchWorkload("mergenet", 0);
    const test = await loadImageDataset("mnist", { testLimit: 2000 });
    const record = await work.trainer.trainEpoch();
    const evaluate = accuracyEvaluator(test.test.x, test.test.y);
    const sourceAcc = (await evaluate(work.source)).accuracy;
    const targetAcc = (await evaluate(work.target)).accuracy;
    const transfers = work.trainer.history.transfers;
    work.dispose();
    test.dispose();

    expect(record.steps).toBe(157); // ceil(10000 / 64)
    expect(sourceAcc).toBeGreaterThan(0.8);
    expect(targetAcc).toBeGreaterThan(0.8);
    expect(transfers.length).toBe(79); // steps 0, 2, ..., 156
    for (const t of transfers) {
      expect(Number.isFinite(t.gradNorm)).toBe(true);
      expect(t.gradNorm).toBeGreaterThan(0);
    }
    expect(record.gates["0:forward:0"]).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBeLessThan(100);
  });
});
