// Divergence handling: a NaN or infinite loss restores the last good state in place, halves
// the adapter's learning rate, is recorded in the history, and after too many events stops
// training with an error naming the step.
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import type { LossFn } from "../src/core/losses";
import { MergeNetTrainer } from "../src/core/mergenet";
import { disposedAfterEach } from "./helpers/disposed";
import { weightsOf } from "./helpers/tiny";

const PAIR = { source: "classifier/kernel", target: "fc2/kernel" };
const setup = disposedAfterEach();

/** A loss that is NaN on the listed calls (0-based) and the real loss otherwise. */
function poisoned(loss: LossFn, badCalls: number[]): LossFn {
  let call = 0;
  return (logits, labels) => {
    const value = loss(logits, labels);
    const bad = badCalls.includes(call++);
    return bad ? (tf.tidy(() => tf.mul(value, NaN)) as tf.Scalar) : value;
  };
}

describe("divergence", () => {
  it("restores the last good state, halves the adapter's learning rate, records it, and trains on", async () => {
    const s = setup({ seed: 3 });
    const target = { ...s.target, loss: poisoned(s.target.loss, [7]) }; // step 7 of the first epoch of 5 steps -> epoch 1
    const t = new MergeNetTrainer(s.source, target, { pairs: [PAIR], cycle: 1, adapter: { layers: 1, heads: 2 }, adapterOptimizer: { learningRate: 1e-3 } });
    await t.fit(3);
    expect(t.history.divergences).toEqual([{ step: 7, restoredFrom: 5, action: "adapter learning rate 0.001 -> 0.0005" }]);
    expect(weightsOf(s.target.model).flat().every(Number.isFinite)).toBe(true);
    expect(weightsOf(s.source.model).flat().every(Number.isFinite)).toBe(true);
    expect(t.history.epochs.every((e) => Number.isFinite(e.targetLoss))).toBe(true);
    expect(Number.isNaN(t.history.targetLoss[7])).toBe(true); // the bad step stays in the record
    t.dispose();
  });

  it("stops with an error naming the step after too many divergences (an infinite adapter learning rate)", async () => {
    // What went bad differs by backend: wasm's ReLU turns NaN into 0, so there only the written weight shows it.
    // Infinity, not merely huge: a huge rate can be tamed by the adapter's LayerNorms on some backends
    // (wasm kept 1e30 finite), an infinite one makes NaN weights on all of them.
    const s = setup({ seed: 4 });
    const t = new MergeNetTrainer(s.source, s.target, {
      pairs: [PAIR], cycle: 1, output: "replace", adapter: { layers: 1, heads: 2, spectralNorm: false }, adapterOptimizer: { learningRate: Infinity, clipNorm: Infinity },
    });
    t.maxDivergences = 2;
    await expect(t.fit(4)).rejects.toThrow(/training diverged \((the target's loss|the target's loss and a transferred weight|a transferred weight) became NaN or infinite\) at step \d+, after 2 recoveries \(limit 2\); the last good state is from step \d+/);
    expect(t.history.divergences.length).toBe(2);
    expect(t.history.divergences[1].action).toBe("adapter learning rate Infinity -> Infinity");
    t.dispose();
  });
});
