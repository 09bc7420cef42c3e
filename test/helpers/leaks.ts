/**
 * Shared test helper: asserts that a function leaves no tensors behind.
 *
 * Design choices:
 * - Warm-up calls run first and are not counted, so one-off allocations that are meant to
 *   last (a cached constant, an optimizer's slot variables, a lazily built layer) do not
 *   read as leaks; only growth that repeats with every call does.
 * - It throws a plain Error rather than using a test framework's expect, so it works in any
 *   runner and in scripts; the message gives the growth per call, which names the leak's
 *   size (1 per call: one tensor escaped a tidy; 3 per call: a whole step's outputs).
 * - It counts tf.memory().numTensors, the engine's live Tensor objects on every backend.
 */
import { tf } from "../../src/backend/index";

export interface LeakCheckOptions {
  /** Calls that are counted (default 3; at least 1). */
  repeats?: number;
  /** Calls before counting starts (default 1; 0 or more). */
  warmup?: number;
}

/**
 * Runs `fn` `warmup` times, records the live tensor count, runs it `repeats` more times and
 * throws if the count grew, with the growth per call in the message.
 */
export async function expectNoTensorLeak(fn: () => void | Promise<void>, opts: LeakCheckOptions = {}): Promise<void> {
  const repeats = opts.repeats ?? 3;
  const warmup = opts.warmup ?? 1;
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new Error(`expectNoTensorLeak: repeats must be an integer >= 1, got ${repeats}`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new Error(`expectNoTensorLeak: warmup must be an integer >= 0, got ${warmup}`);
  }
  for (let i = 0; i < warmup; i++) await fn();
  const before = tf.memory().numTensors;
  for (let i = 0; i < repeats; i++) await fn();
  const after = tf.memory().numTensors;
  const growth = after - before;
  if (growth > 0) {
    const perCall = growth / repeats;
    throw new Error(
      `tensor leak: ${perCall} tensors per call (${before} -> ${after} live tensors over ${repeats} calls after ${warmup} warm-up). ` +
        "Wrap the allocations in tf.tidy or dispose them.",
    );
  }
}
