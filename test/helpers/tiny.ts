// Tiny models and synthetic data for fast trainer tests (real-data runs live in their own tests).
import { tf } from "../../src/backend/index";
import { batchStream } from "../../src/data/batches";
import type { ModelSide } from "../../src/core/loop";
import { accuracyEvaluator, sparseCrossEntropy } from "../../src/core/losses";
import { getScenario, registerScenario, type ScenarioInstance } from "../../src/experiments/scenario";

let counter = 0;

/** An MLP [inputs] -> hidden... -> classes with layers named fc1.., classifier; seeded. */
export function tinyMlp(inputs: number, hidden: number[], classes: number, seed: number): tf.LayersModel {
  const model = tf.sequential({ name: `tiny${counter++}` });
  hidden.forEach((units, i) =>
    model.add(tf.layers.dense({
      name: `fc${i + 1}`, units, activation: "relu", inputShape: i === 0 ? [inputs] : undefined,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 100 + i }),
    })),
  );
  model.add(tf.layers.dense({ name: "classifier", units: classes, kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 100 + 99 }) }));
  return model;
}

/** Linearly separable-ish synthetic classification data, seeded. */
export function synthetic(n: number, inputs: number, classes: number, seed: number): { x: tf.Tensor2D; y: tf.Tensor1D } {
  return tf.tidy(() => {
    const x = tf.randomNormal([n, inputs], 0, 1, "float32", seed) as tf.Tensor2D;
    const w = tf.randomNormal([inputs, classes], 0, 1, "float32", seed + 1);
    const y = tf.argMax(tf.matMul(x, w), 1).toInt() as tf.Tensor1D;
    return { x, y };
  });
}

export interface TinySetup {
  source: ModelSide;
  target: ModelSide;
  dispose(): void;
}

/** A source MLP 12->16->4 and a target MLP 12->10->8->4 on synthetic data (40 examples, batch 8). */
export function tinySetup(opts: { seed?: number; modelSeed?: number; targetLr?: number; momentum?: number; weightDecay?: number } = {}): TinySetup {
  const seed = opts.seed ?? 1;
  const modelSeed = opts.modelSeed ?? seed;
  const sData = synthetic(40, 12, 4, seed + 10);
  const tData = synthetic(40, 12, 4, seed + 20);
  const sourceModel = tinyMlp(12, [16], 4, modelSeed + 30);
  const targetModel = tinyMlp(12, [10, 8], 4, modelSeed + 40);
  const targetLr = opts.targetLr ?? 0.05;
  return {
    source: {
      model: sourceModel, optimizer: tf.train.momentum(0.05, 0.9), weightDecay: 5e-4,
      loss: sparseCrossEntropy, data: batchStream(sData.x, sData.y, { batchSize: 8, seed: seed + 50 }),
    },
    target: {
      model: targetModel,
      optimizer: opts.momentum ? tf.train.momentum(targetLr, opts.momentum) : tf.train.sgd(targetLr),
      weightDecay: opts.weightDecay ?? 0,
      loss: sparseCrossEntropy, data: batchStream(tData.x, tData.y, { batchSize: 8, seed: seed + 60 }),
    },
    dispose() {
      tf.dispose([sData.x, sData.y, tData.x, tData.y]);
      sourceModel.dispose();
      targetModel.dispose();
    },
  };
}

/** All weights of a model as plain arrays (for exact comparisons). */
export function weightsOf(model: tf.LayersModel): number[][] {
  return model.getWeights().map((w) => Array.from(w.dataSync()));
}

/**
 * Registers a tiny runner scenario under `name` (synthetic data, the two MLPs above, plain
 * SGD): fast enough for tests that go through runExperiment. Option `sharedLabels` (default
 * true) lets a test make KD and DML inapplicable.
 */
export function registerTinyScenario(name: string, sourceExamples = 48): void {
  registerScenario<{ sharedLabels?: boolean }>({
    name,
    description: "tiny synthetic pair for tests",
    async build(seed, options) {
      const s = synthetic(sourceExamples, 12, 4, seed + 1);
      const t = synthetic(32, 12, 4, seed + 2);
      const test = synthetic(40, 12, 4, 999);
      const source = tinyMlp(12, [16], 4, seed + 3);
      const target = tinyMlp(12, [10, 8], 4, seed + 4);
      const evaluate = accuracyEvaluator(test.x, test.y);
      const opts = [tf.train.sgd(0.1), tf.train.sgd(0.1)];
      return {
        source: { model: source, optimizer: opts[0], loss: sparseCrossEntropy, data: batchStream(s.x, s.y, { batchSize: 8, seed }), evaluate },
        target: { model: target, optimizer: opts[1], loss: sparseCrossEntropy, data: batchStream(t.x, t.y, { batchSize: 8, seed: seed + 7 }), evaluate },
        sharedLabels: options.sharedLabels ?? true,
        metric: "accuracy",
        dispose() {
          tf.dispose([s.x, s.y, t.x, t.y, test.x, test.y]);
          opts.forEach((o) => o.dispose());
          source.dispose();
          target.dispose();
        },
      };
    },
  });
}

/**
 * Registers `name`: the tiny scenario (registered as `${name}-base`) with each built instance
 * passed through `adapt`, a test's hook into it (announce each step, poison the data...).
 */
export function registerAdaptedTinyScenario(name: string, description: string, adapt: (instance: ScenarioInstance) => ScenarioInstance): void {
  registerTinyScenario(`${name}-base`);
  registerScenario<Record<string, unknown>>({
    name,
    description,
    async build(seed, options) {
      return adapt(await getScenario(`${name}-base`).build(seed, options));
    },
  });
}
