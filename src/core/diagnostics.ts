/**
 * Diagnostics of an adapter at work: does it attend, does it write, and does it write toward
 * the source? Three numbers, each on a fixed scale so runs compare at a glance:
 * - the attention's entropy relative to uniform, H(p) / log(n_keys): 1 means every query
 *   spreads its attention evenly (only the mean of the source's tokens reaches the output),
 *   0 means each query picks one key;
 * - the write size ‖W' − T‖ / ‖T‖ (the trainer records it per transfer as `relativeChange`);
 * - cos(W' − T, S − T): 1 when the write moves the weight straight toward the source's own
 *   weight, 0 when it is unrelated to it (meaningful only where the two matrices' axes line
 *   up, e.g. a source and target of one architecture with aligned hidden units).
 */
import { tf } from "../backend/index";

/**
 * Mean over query rows of H(p_row) / log(n_keys) for an attention map [nq, nk] whose rows sum
 * to 1. Applied to a head-averaged map it is an upper bound on the heads' own mean (entropy
 * is concave): a low value means sharp heads, a value near 1 allows sharp heads that disagree.
 * A map with one key has no choice to make: 0 by convention.
 */
export function attentionRelativeEntropy(map: number[][]): number {
  if (map.length === 0) throw new Error("attentionRelativeEntropy: the map has no rows");
  const keys = map[0].length;
  if (keys < 2) return 0;
  let total = 0;
  for (const row of map) {
    if (row.length !== keys) throw new Error(`attentionRelativeEntropy: rows of ${row.length} and ${keys} keys; the map must be rectangular`);
    let h = 0;
    for (const p of row) if (p > 0) h -= p * Math.log(p);
    total += h / Math.log(keys);
  }
  return total / map.length;
}

/** cos(W' − T, S − T) over all entries (0 where either difference is zero); all three [m, n]. */
export function writeCosine(written: tf.Tensor2D, target: tf.Tensor2D, source: tf.Tensor2D): tf.Scalar {
  if (!tf.util.arraysEqual(written.shape, target.shape) || !tf.util.arraysEqual(source.shape, target.shape)) {
    throw new Error(`writeCosine: shapes [${written.shape}], [${target.shape}], [${source.shape}] must be equal`);
  }
  return tf.tidy(() => {
    const write = tf.sub(written, target);
    const toward = tf.sub(source, target);
    const norms = tf.mul(tf.norm(write), tf.norm(toward));
    return tf.div(tf.sum(tf.mul(write, toward)), tf.add(norms, 1e-30)) as tf.Scalar;
  });
}
