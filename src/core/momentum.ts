/**
 * SGD with momentum whose dispose() frees everything it made.
 *
 * tfjs 4.22's MomentumOptimizer overrides SGDOptimizer.dispose() without calling it, so the
 * learning-rate scalar it keeps (`c`) stays alive: one tensor per optimiser. Scenarios build an
 * optimiser per model per run, so that showed as slow tensor growth across an experiment.
 * Same constructor and update rule as tf.train.momentum; only dispose differs.
 */
import { tf } from "../backend/index";

export class LeakFreeMomentum extends tf.MomentumOptimizer {
  override dispose(): void {
    super.dispose();
    // `c` is SGDOptimizer's kept learning-rate scalar; MomentumOptimizer.dispose forgets it.
    const rate = (this as unknown as { c?: tf.Scalar }).c;
    if (rate && !rate.isDisposed) rate.dispose();
  }
}

/** tf.train.momentum(learningRate, momentum) without the leak. */
export function momentum(learningRate: number, momentumValue: number, useNesterov = false): tf.MomentumOptimizer {
  return new LeakFreeMomentum(learningRate, momentumValue, useNesterov);
}
