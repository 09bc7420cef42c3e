/**
 * Mini-batch streams over tensors already in memory. A batch is a gather from the one
 * dataset tensor (no per-batch copy of the whole set, no re-upload), and the order is a
 * seeded permutation per epoch, so a run is reproducible and a stream's order depends on
 * its own seed only (two models' streams never disturb each other).
 */
import { tf } from "../backend/index";
import { seededPermutation } from "../util/random";
import { checkDataset, type DataExpectation } from "./check";

export interface BatchStreamOptions {
  batchSize: number;
  /** Shuffle each epoch with this seed; undefined keeps the stored order (bench-mnist). */
  seed?: number;
  /** What the data is, for messages about it (e.g. "mnist, 1000 training images"). */
  name?: string;
}

/**
 * A stream over `x` (first axis = examples) and `y`; the stream does not own x and y. It is a
 * core/batch-stream.ts BatchStream (by its shape: data/ imports nothing of core/).
 */
export function batchStream(x: tf.Tensor, y: tf.Tensor, options: BatchStreamOptions) {
  const size = x.shape[0];
  const { batchSize, seed } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  if (y.shape[0] !== size) throw new Error(`x has ${size} examples but y has ${y.shape[0]}`);
  if (size === 0) throw new Error("cannot make batches from an empty dataset");
  const batchesPerEpoch = Math.ceil(size / batchSize);
  let epoch = 0;
  let index = 0;
  let order = permutation(size, seed, epoch);

  function permutation(n: number, s: number | undefined, e: number): Int32Array {
    return s === undefined ? Int32Array.from({ length: n }, (_, i) => i) : seededPermutation(n, s * 1_000_003 + e);
  }

  return {
    size,
    batchSize,
    batchesPerEpoch,
    next(): { x: tf.Tensor; y: tf.Tensor } {
      const start = index * batchSize;
      const end = Math.min(size, start + batchSize);
      const batch = tf.tidy(() => {
        if (seed === undefined) {
          // Contiguous slice: cheaper than a gather when the order is fixed.
          return { x: x.slice(start, end - start), y: y.slice(start, end - start) };
        }
        const ids = tf.tensor1d(order.subarray(start, end), "int32");
        return { x: tf.gather(x, ids), y: tf.gather(y, ids) };
      });
      index += 1;
      if (index === batchesPerEpoch) {
        index = 0;
        epoch += 1;
        order = permutation(size, seed, epoch);
      }
      return batch;
    },
    position: () => ({ epoch, index }),
    check: (expect: DataExpectation) => checkDataset(x, y, options.name ? { ...expect, name: `${expect.name} (${options.name})` } : expect),
    seek(p: { epoch: number; index: number }) {
      if (!(p.index >= 0 && p.index < batchesPerEpoch)) throw new Error(`batch index ${p.index} is outside 0..${batchesPerEpoch - 1}`);
      epoch = p.epoch;
      index = p.index;
      order = permutation(size, seed, epoch);
    },
  };
}
