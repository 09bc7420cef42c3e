/**
 * The positive control (notebook 05): a setting where knowledge is demonstrably in the
 * source's weight, so a null result elsewhere can be read against it.
 *
 * - Target: the MLP 784-256-128-10 on `targetTrain` (default 1,000) seeded training images,
 *   tested on the 10,000 official test images.
 * - Source: the same architecture, started from the target's own initial weights (same
 *   seed), pre-trained on `sourceTrain` (default 10,000) images for `sourceEpochs` epochs, and
 *   frozen: it only lends knowledge. Its hidden units line up with the target's, so its
 *   `fc2/kernel` is, entry for entry, a better version of the target's.
 * - `sourceUnits: "permuted"`: the same source with its hidden units permuted by a seeded
 *   permutation (src/models/permute.ts): the same function and knowledge, unaligned axes,
 *   which is what a heterogeneous pair looks like.
 *
 * The pre-trained source is kept per (seed, options) in this process as plain arrays, so the
 * methods of one seed do not pre-train it again (`clearPretrainedSources` empties the store),
 * and, when the runner says where the run's results go, stored there (pretrained-sources.ts), so
 * that the worker processes of later experiments load it instead of pre-training it again.
 */
import { choiceProblem, describeValue, isWholeAtLeast, unknownKeyProblems } from "../../config-checks";
import { tf } from "../../backend/index";
import { IndependentTrainer } from "../../baselines/independent";
import { accuracyEvaluator, sparseCrossEntropy } from "../../core/losses";
import { momentum } from "../../core/momentum";
import { batchStream } from "../../data/batches";
import { loadImageDataset } from "../../data/images";
import { permuteHiddenUnits } from "../../models/permute";
import { mlp } from "../../models/zoo";
import { registerScenario, type ScenarioInstance } from "../scenario";
import { pretrainOnce, storedSourcePlan } from "../pretrained-sources";

export interface PositiveControlOptions {
  /** `aligned` (source A): hidden units line up with the target's; `permuted` (source B): the same source, units shuffled. */
  sourceUnits?: "aligned" | "permuted";
  /** Training images of the target (seeded subset). Default 1000. */
  targetTrain?: number;
  /** Training images the source is pre-trained on (seeded subset, drawn independently). Default 10000. */
  sourceTrain?: number;
  /** Epochs of the source's pre-training. Default 5. */
  sourceEpochs?: number;
  /** First official test images used for evaluation. Default 10000. */
  testImages?: number;
  batchSize?: number;
  /** SGD learning rate of both MLPs (momentum 0.9, weight decay 5e-4). Default 0.05. */
  learningRate?: number;
}

export const POSITIVE_CONTROL_DEFAULTS: Required<PositiveControlOptions> = {
  sourceUnits: "aligned",
  targetTrain: 1000,
  sourceTrain: 10000,
  sourceEpochs: 5,
  testImages: 10000,
  batchSize: 64,
  learningRate: 0.05,
};

/** Pairs with a meaning here: the middle weight (aligned axes in source A only) and the classifier (class rows always aligned). */
export const POSITIVE_CONTROL_PAIRS = {
  fc2: { source: "fc2/kernel", target: "fc2/kernel" }, // [128,256] -> [128,256]
  classifier: { source: "classifier/kernel", target: "classifier/kernel" }, // [10,128] -> [10,128]
} as const;

const HIDDEN = [256, 128];
const OPTION_KEYS = Object.keys(POSITIVE_CONTROL_DEFAULTS);

function resolve(options: PositiveControlOptions): Required<PositiveControlOptions> {
  const problems = positiveControlOptionProblems(options);
  if (problems.length) throw new Error(`invalid options for scenario 'positive-control':\n  - ${problems.join("\n  - ")}`);
  return { ...POSITIVE_CONTROL_DEFAULTS, ...options };
}

/** Every problem of the options at once (none: valid). */
function positiveControlOptionProblems(options: PositiveControlOptions): string[] {
  const problems = unknownKeyProblems(options, OPTION_KEYS, "", "option");
  const o = { ...POSITIVE_CONTROL_DEFAULTS, ...options };
  const units = choiceProblem("sourceUnits", o.sourceUnits, ["aligned", "permuted"]);
  if (units) problems.push(units);
  for (const key of ["targetTrain", "sourceTrain", "sourceEpochs", "testImages", "batchSize"] as const) {
    if (!isWholeAtLeast(o[key], 1)) problems.push(`${key} must be a whole number >= 1, got ${describeValue(o[key])}`);
  }
  if (!(typeof o.learningRate === "number" && o.learningRate > 0)) problems.push(`learningRate must be a number > 0, got ${describeValue(o.learningRate)}`);
  return problems;
}

/** Pre-trained (aligned) source weights per seed and pre-training options, as plain arrays. */
const pretrained = new Map<string, { values: Float32Array; shape: number[] }[]>();

/** Forgets the pre-trained sources kept by this process. */
export function clearPretrainedSources(): void {
  pretrained.clear();
}

function targetSeed(seed: number): number {
  return seed * 10 + 2;
}

/** Source A's weights for this seed: the target's initial MLP, trained on the source's images. */
async function pretrainedWeights(
  seed: number,
  o: Required<PositiveControlOptions>,
  resultsDir: string | undefined,
): Promise<{ values: Float32Array; shape: number[] }[]> {
  const what = { seed, sourceTrain: o.sourceTrain, sourceEpochs: o.sourceEpochs, batchSize: o.batchSize, learningRate: o.learningRate };
  const key = JSON.stringify(what);
  const cached = pretrained.get(key);
  if (cached) return cached;
  const model = mlp({ inputShape: [28, 28, 1], hidden: HIDDEN, classes: 10, seed: targetSeed(seed), name: "source" });
  const optimizer = momentum(o.learningRate, 0.9);
  try {
    // Another process's run of this seed (a worker of another experiment) may have stored it: pretrained-sources.ts.
    const plan = resultsDir === undefined ? undefined : storedSourcePlan(resultsDir, `positive-control-seed-${seed}`, what, model);
    await pretrainOnce(plan, model, async () => {
      const data = await loadImageDataset("mnist", { trainLimit: o.sourceTrain, testLimit: 1, seed: seed * 2 + 1 });
      const trainer = new IndependentTrainer(undefined, {
        model, optimizer, weightDecay: 5e-4, loss: sparseCrossEntropy,
        data: batchStream(data.train.x, data.train.y, { batchSize: o.batchSize, seed: seed * 2 + 101 }),
      });
      try {
        await trainer.fit(o.sourceEpochs);
      } finally {
        trainer.dispose();
        data.dispose();
      }
    });
    const weights = model.getWeights().map((w) => ({ values: w.dataSync() as Float32Array, shape: w.shape }));
    pretrained.set(key, weights);
    return weights;
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

export const positiveControlScenario = registerScenario<PositiveControlOptions>({
  name: "positive-control",
  description:
    "a frozen MLP pre-trained from the target's own initial weights (aligned hidden units, or the same units permuted) " +
    "lends knowledge to that MLP trained on few images",
  optionProblems: positiveControlOptionProblems,
  async build(seed, options, context): Promise<ScenarioInstance> {
    const o = resolve(options);
    const targetData = await loadImageDataset("mnist", { trainLimit: o.targetTrain, testLimit: o.testImages, seed: seed * 2 + 2 });
    const made: { dispose(): void }[] = [targetData];
    try {
      const weights = await pretrainedWeights(seed, o, context?.resultsDir);
      const sourceModel = mlp({ inputShape: [28, 28, 1], hidden: HIDDEN, classes: 10, seed: targetSeed(seed), name: "source" });
      made.push(sourceModel);
      const values = weights.map((w) => tf.tensor(w.values, w.shape));
      sourceModel.setWeights(values);
      tf.dispose(values);
      if (o.sourceUnits === "permuted") permuteHiddenUnits(sourceModel, ["fc1", "fc2"], "classifier", seed);
      const targetModel = mlp({ inputShape: [28, 28, 1], hidden: HIDDEN, classes: 10, seed: targetSeed(seed), name: "target" });
      made.push(targetModel);
      const evaluate = accuracyEvaluator(targetData.test.x, targetData.test.y);
      const side = (model: tf.LayersModel, streamSeed: number) => {
        const optimizer = momentum(o.learningRate, 0.9);
        made.push(optimizer);
        return {
          model, optimizer, weightDecay: 5e-4, loss: sparseCrossEntropy, evaluate,
          // The frozen source never draws a batch; its stream exists because a side has one.
          data: batchStream(targetData.train.x, targetData.train.y, { batchSize: o.batchSize, seed: streamSeed }),
        };
      };
      return {
        source: side(sourceModel, seed * 2 + 101),
        target: side(targetModel, seed * 2 + 102),
        sharedLabels: true,
        frozenSource: true,
        metric: "accuracy",
        dispose() {
          made.reverse().forEach((m) => m.dispose());
        },
      };
    } catch (err) {
      made.reverse().forEach((m) => m.dispose());
      throw err;
    }
  },
});
