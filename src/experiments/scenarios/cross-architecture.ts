/**
 * Cross-architecture scenarios (notebook 01): a CNN lends knowledge to a model of another
 * family on the same image task. The setting gives transfer room to help: the source sees
 * many images, the target few (options `sourceTrain`, `targetTrain`), so a stronger model
 * exists whose knowledge the target lacks. Both predict the same 10 classes from the same
 * 28×28 input, so logit distillation and mutual learning apply and are the strong baselines.
 *
 * An epoch is one pass over the target's (small) training set; the source's stream wraps
 * on its own. Evaluation: accuracy on the first `testImages` official test images.
 */
import { tf } from "../../backend";
import { accuracyEvaluator, sparseCrossEntropy } from "../../core/losses";
import { batchStream } from "../../data/batches";
import { loadImageDataset, type ImageDatasetName } from "../../data/images";
import { cnn, mlp, vit } from "../../models/zoo";
import { registerScenario, type ScenarioInstance } from "../scenario";

export interface ImagePairOptions {
  dataset?: ImageDatasetName;
  /** The target's architecture. */
  target?: "mlp" | "vit";
  /** Training images of the source (a seeded subset). Default 10000. */
  sourceTrain?: number;
  /** Training images of the target (a seeded subset, drawn independently). Default 1000. */
  targetTrain?: number;
  /** First official test images used for evaluation. Default 5000. */
  testImages?: number;
  batchSize?: number;
  /** SGD learning rate of the CNN and the MLP (momentum 0.9, weight decay 5e-4). Default 0.05. */
  learningRate?: number;
  /** Adam learning rate of the ViT (transformers train poorly with plain SGD here: measured ~0.19 accuracy after 20 epochs). Default 1e-3. */
  vitLearningRate?: number;
}

export const IMAGE_PAIR_DEFAULTS: Required<ImagePairOptions> = {
  dataset: "mnist",
  target: "mlp",
  sourceTrain: 10000,
  targetTrain: 1000,
  testImages: 5000,
  batchSize: 64,
  learningRate: 0.05,
  vitLearningRate: 1e-3,
};

/**
 * Weight pairs worth trying, with why. Shapes are [out, in] views.
 * - `released`: the released code's kind of pair, the source's classifier into a hidden layer
 *   of the target; the hidden axes of two networks share no coordinate system.
 * - `classifier`: classifier ↔ classifier; the rows are the 10 classes in both models, the one
 *   axis whose meaning is shared (SPEC.md 3b).
 */
export const IMAGE_PAIRS = {
  mlp: {
    released: { source: "classifier/kernel", target: "fc2/kernel" }, // [10,128] -> [128,256]
    classifier: { source: "classifier/kernel", target: "classifier/kernel" }, // [10,128] -> [10,128]
  },
  vit: {
    released: { source: "classifier/kernel", target: "block1_mlp2/kernel" }, // [10,128] -> [64,256]
    classifier: { source: "classifier/kernel", target: "classifier/kernel" }, // [10,128] -> [10,64]
  },
} as const;

export const imagePairScenario = registerScenario<ImagePairOptions>({
  name: "image-cnn-to-x",
  description: "a CNN trained on many images lends knowledge to an MLP or a small ViT trained on few, same 10 classes",
  async build(seed, options): Promise<ScenarioInstance> {
    const o = { ...IMAGE_PAIR_DEFAULTS, ...options };
    const sourceData = await loadImageDataset(o.dataset, { trainLimit: o.sourceTrain, testLimit: o.testImages, seed: seed * 2 + 1 });
    const targetData = await loadImageDataset(o.dataset, { trainLimit: o.targetTrain, testLimit: 1, seed: seed * 2 + 2 });
    const input: [number, number, number] = [28, 28, 1];
    const sourceModel = cnn({ inputShape: input, classes: 10, seed: seed * 10 + 1 });
    const targetModel =
      o.target === "mlp"
        ? mlp({ inputShape: input, hidden: [256, 128], classes: 10, seed: seed * 10 + 2 })
        : vit({ inputShape: input, patch: 7, dim: 64, depth: 2, heads: 4, classes: 10, seed: seed * 10 + 2 });
    const evaluate = accuracyEvaluator(sourceData.test.x, sourceData.test.y);
    const optimizers: tf.Optimizer[] = [];
    const optimizer = (adam: boolean): tf.Optimizer => {
      const made = adam ? tf.train.adam(o.vitLearningRate) : tf.train.momentum(o.learningRate, 0.9);
      optimizers.push(made);
      return made;
    };
    const side = (model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, streamSeed: number, adam = false) => ({
      model,
      optimizer: optimizer(adam),
      weightDecay: adam ? 0 : 5e-4,
      loss: sparseCrossEntropy,
      data: batchStream(x, y, { batchSize: o.batchSize, seed: streamSeed }),
      evaluate,
    });
    return {
      source: side(sourceModel, sourceData.train.x, sourceData.train.y, seed * 2 + 101),
      target: side(targetModel, targetData.train.x, targetData.train.y, seed * 2 + 102, o.target === "vit"),
      sharedLabels: true,
      metric: "accuracy",
      dispose() {
        optimizers.forEach((opt) => opt.dispose());
        sourceModel.dispose();
        targetModel.dispose();
        sourceData.dispose();
        targetData.dispose();
      },
    };
  },
});
