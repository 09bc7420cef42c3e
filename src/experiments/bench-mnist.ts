/**
 * The fixed benchmark workload "bench-mnist" (docs/METHOD.md §7), in code, so the benchmark, the
 * tests and anyone comparing implementations run exactly the same thing:
 *
 *   data    the first 10,000 MNIST training images in [0,1], fixed order, batch 64
 *           (last partial batch kept)
 *   source  CNN conv3x3(32,same)→ReLU→maxpool2→conv3x3(64,same)→ReLU→maxpool2→dense128→ReLU→dense10
 *   target  MLP 784→256→ReLU→128→ReLU→10
 *   pair    source `classifier/kernel` ([10,128] as [out,in]) → target `fc2/kernel` ([128,256])
 *   method  `full` form, one adapter layer, 8 heads, dropout on, spectral norm (1 power
 *           iteration per call), `interp` write-back, cycle 2, `hypernet` rule
 *   optim   both models SGD lr 0.05 momentum 0.9 weight decay 5e-4; adapter AdamW lr 1e-3,
 *           weight decay 5e-4 on matrices, gradients clipped to norm 50
 *
 * Modes: "target-alone", "pair" (both models, no adapter) and "mergenet".
 */
import { tf } from "../backend/index";
import { momentum } from "../core/momentum";
import { IndependentTrainer } from "../baselines/independent";
import type { JointLoop, ModelSide } from "../core/loop";
import { sparseCrossEntropy } from "../core/losses";
import { MergeNetTrainer, type MergeNetConfig } from "../core/mergenet";
import { batchStream } from "../data/batches";
import { benchMnist } from "../data/images";
import { BENCH_PAIR, benchSource, benchTarget } from "../models/zoo";

export const BENCH_MODES = ["target-alone", "pair", "mergenet"] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

export const BENCH_BATCH = 64;
export const BENCH_SAMPLES = 10_000;

export const BENCH_MERGENET: Partial<MergeNetConfig> & { pairs: MergeNetConfig["pairs"] } = {
  pairs: [{ ...BENCH_PAIR, form: "full" }],
  cycle: 2,
  rule: "hypernet",
  output: "interp",
  adapter: { layers: 1, heads: 8, spectralNorm: true, powerIterations: 1 },
  adapterOptimizer: { learningRate: 1e-3, weightDecay: 5e-4, clipNorm: 50 },
};

export interface BenchWorkload {
  mode: BenchMode;
  trainer: JointLoop;
  source: tf.LayersModel;
  target: tf.LayersModel;
  /** Frees the trainer, both models and the data. */
  dispose(): void;
}

function side(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): ModelSide {
  return {
    model,
    optimizer: momentum(0.05, 0.9),
    weightDecay: 5e-4,
    loss: sparseCrossEntropy,
    data: batchStream(x, y, { batchSize: BENCH_BATCH }), // fixed order: no seed
  };
}

/** Builds bench-mnist in one mode; `seed` sets the models' initial weights and the adapter's. */
export async function benchWorkload(mode: BenchMode, seed = 0): Promise<BenchWorkload> {
  if (!BENCH_MODES.includes(mode)) throw new Error(`bench mode must be one of ${BENCH_MODES.join(", ")}, got '${mode}'`);
  const data = await benchMnist();
  const source = benchSource(seed);
  const target = benchTarget(seed + 1);
  const targetSide = side(target, data.x, data.y);
  let trainer: JointLoop;
  if (mode === "target-alone") trainer = new IndependentTrainer(undefined, targetSide);
  else if (mode === "pair") trainer = new IndependentTrainer(side(source, data.x, data.y), targetSide);
  else trainer = new MergeNetTrainer(side(source, data.x, data.y), targetSide, { ...BENCH_MERGENET, seed });
  return {
    mode,
    trainer,
    source,
    target,
    dispose() {
      trainer.dispose();
      source.dispose();
      target.dispose();
      tf.dispose([data.x, data.y]);
    },
  };
}
