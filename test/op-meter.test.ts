// Issue 16: the native-op meter (src/backend/op-meter.ts) that `npm run bench` reports per step and per transfer.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { meterNativeOps } from "../src/backend/op-meter";

const native = (): boolean => tf.getBackend() === "tensorflow";
const ownEntryPoints = (): boolean[] =>
  ["executeSingleOutput", "executeMultipleOutputs"].map((k) => Object.prototype.hasOwnProperty.call(tf.backend(), k));

describe("meterNativeOps", () => {
  let x: tf.Tensor2D;
  let y: tf.Tensor2D;
  beforeAll(() => {
    x = tf.randomNormal([3, 4], 0, 1, "float32", 7) as tf.Tensor2D;
    y = tf.randomNormal([4, 5], 0, 1, "float32", 8) as tf.Tensor2D;
  });
  afterAll(() => tf.dispose([x, y]));

  it("counts the native ops a call runs, by name, and returns its result", async () => {
    const before = ownEntryPoints();
    const { result, ops } = await meterNativeOps(() => tf.tidy(() => tf.add(tf.matMul(x, y), 1).dataSync()));
    expect(result).toHaveLength(15);
    expect(ownEntryPoints()).toEqual(before); // the backend is as it was
    if (!native()) {
      expect(ops).toBeUndefined(); // no native ops on wasm/cpu: no count rather than a wrong zero
      return;
    }
    expect(ops).toBeDefined();
    // The matmul and the add (the scalar 1 is an input, not an op), each listed once.
    expect(ops!.byOp.map((s) => [s.op, s.count]).sort()).toEqual([["Add", 1], ["BatchMatMulV2", 1]]);
    expect(ops!.count).toBe(2);
    expect(ops!.ms).toBeGreaterThan(0);
    expect(ops!.byOp.every((s, i, all) => i === 0 || all[i - 1].ms >= s.ms)).toBe(true);
  });

  it("restores the backend when the call throws, and refuses to nest", async () => {
    const before = ownEntryPoints();
    await expect(meterNativeOps(() => {
      tf.tidy(() => tf.add(x, 1));
      throw new Error("boom");
    })).rejects.toThrow("boom");
    expect(ownEntryPoints()).toEqual(before);
    if (!native()) return;
    await expect(meterNativeOps(() => meterNativeOps(() => 1))).rejects.toThrow(/already metering/);
    expect(ownEntryPoints()).toEqual(before);
    const again = await meterNativeOps(() => tf.tidy(() => tf.add(x, 1)).dispose());
    expect(again.ops!.count).toBe(1); // usable after both
  });

  it("awaits an async call before it stops counting", async () => {
    const { ops } = await meterNativeOps(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      tf.tidy(() => tf.matMul(x, y)).dispose();
    });
    if (!native()) return expect(ops).toBeUndefined();
    expect(ops!.count).toBe(1);
  });
});
