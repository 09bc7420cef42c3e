// Issue 16, the small models' step: the Reshape/Cast no-op shortcuts
// (src/backend/native-kernels.ts installNoOpShortcuts) change no value and run no native op.
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";

describe("Reshape and Cast no-op shortcuts", () => {
  it("same values; a reshape to the same shape and a cast to the same dtype run no native op", () => {
    const x = tf.randomNormal([3, 4], 0, 1, "float32", 7);
    const same = tf.reshape(x, [3, 4]);
    const implicit = tf.reshape(x, [-1, 4]);
    const moved = tf.reshape(x, [4, 3]);
    const cast = tf.cast(x, "float32");
    for (const t of [same, implicit, cast]) expect(Array.from(t.dataSync())).toEqual(Array.from(x.dataSync()));
    expect(moved.shape).toEqual([4, 3]);
    expect(Array.from(moved.dataSync())).toEqual(Array.from(x.dataSync()));
    // Later ops see the right shapes (the native tensor kept its own).
    expect(tf.matMul(moved, same).shape).toEqual([4, 4]);
    if (tf.getBackend() === "tensorflow") {
      const backend = tf.backend() as unknown as { executeSingleOutput: (...a: unknown[]) => unknown };
      const original = backend.executeSingleOutput;
      const ran: string[] = [];
      backend.executeSingleOutput = function (this: unknown, ...args: unknown[]) {
        ran.push(args[0] as string);
        return original.apply(this, args);
      };
      try {
        tf.tidy(() => {
          tf.reshape(x, [3, 4]);
          tf.cast(x, "float32");
          tf.mean(x);
        });
      } finally {
        backend.executeSingleOutput = original;
      }
      expect(ran).toEqual(["Mean"]); // tfjs-node's Mean casts first: no Cast op now either
    }
    tf.dispose([x, same, implicit, moved, cast]);
  });
});
