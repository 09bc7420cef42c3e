import { afterEach, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { expectNoTensorLeak } from "./helpers/leaks";

describe("expectNoTensorLeak", () => {
  const escaped: tf.Tensor[] = [];
  afterEach(() => {
    for (const t of escaped.splice(0)) t.dispose();
  });

  it("passes on a function that cleans up after itself", async () => {
    const a = tf.ones([4, 4]);
    try {
      await expectNoTensorLeak(() => {
        tf.tidy(() => {
          tf.matMul(a, a).sum();
        });
        const b = tf.add(a, 1);
        b.dispose();
      });
    } finally {
      a.dispose();
    }
  });

  it("fails on a function that leaks one tensor per call, and says so", async () => {
    const leaky = (): void => {
      escaped.push(tf.zeros([3]));
    };
    await expect(expectNoTensorLeak(leaky, { repeats: 4 })).rejects.toThrow(/tensor leak: 1 tensors per call/);
  });

  it("reports the growth per call for a larger leak", async () => {
    const leaky = (): void => {
      escaped.push(tf.zeros([1]), tf.ones([1]));
    };
    await expect(expectNoTensorLeak(leaky, { repeats: 2, warmup: 0 })).rejects.toThrow(/2 tensors per call/);
  });

  it("awaits async functions: a tensor leaked after an await is caught", async () => {
    const leaky = async (): Promise<void> => {
      await Promise.resolve();
      escaped.push(tf.scalar(1));
    };
    await expect(expectNoTensorLeak(leaky)).rejects.toThrow(/tensor leak/);
  });

  it("does not count a one-off allocation made during warm-up, but does without warm-up", async () => {
    let cache: tf.Tensor | undefined;
    const lazyCache = (): void => {
      if (!cache) {
        cache = tf.ones([2]);
        escaped.push(cache);
      }
      tf.tidy(() => {
        tf.mul(cache!, 2);
      });
    };
    await expectNoTensorLeak(lazyCache, { warmup: 1 });
    cache = undefined;
    await expect(expectNoTensorLeak(lazyCache, { warmup: 0, repeats: 1 })).rejects.toThrow(/1 tensors per call/);
  });

  it("rejects nonsense options with a clear message", async () => {
    await expect(expectNoTensorLeak(() => undefined, { repeats: 0 })).rejects.toThrow(/repeats must be an integer >= 1/);
    await expect(expectNoTensorLeak(() => undefined, { warmup: -1 })).rejects.toThrow(/warmup must be an integer >= 0/);
  });
});
