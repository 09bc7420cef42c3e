// A 20-epoch run keeps its memory flat: the live tensor count is constant after the first
// epochs, and resident memory does not creep (sampled after every epoch).
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { MergeNetTrainer } from "../src/core/mergenet";
import { tinySetup } from "./helpers/tiny";

describe("a long run", () => {
  it("keeps tensors and RSS flat over 20 epochs", async () => {
    const s = tinySetup({ seed: 8, momentum: 0.9 });
    const t = new MergeNetTrainer(s.source, s.target, { pairs: [{ source: "classifier/kernel", target: "fc2/kernel" }], cycle: 1, adapter: { layers: 1, heads: 2 } });
    const tensors: number[] = [];
    const rssMb: number[] = [];
    for (let epoch = 0; epoch < 20; epoch++) {
      await t.trainEpoch();
      tensors.push(tf.memory().numTensors);
      rssMb.push(process.memoryUsage().rss / 2 ** 20);
    }
    t.dispose();
    s.dispose();
    // After two epochs (optimiser slots, the in-memory good state) nothing more is allocated for good.
    expect(new Set(tensors.slice(2)).size, `tensor counts per epoch: ${tensors.join(", ")}`).toBe(1);
    // RSS: the last five epochs within 30 MB of epochs 5..9 (allocator noise, no per-epoch growth).
    const early = Math.max(...rssMb.slice(5, 10));
    const late = Math.max(...rssMb.slice(15));
    expect(late - early, `RSS per epoch (MB): ${rssMb.map((v) => v.toFixed(0)).join(", ")}`).toBeLessThan(30);
  });
});
