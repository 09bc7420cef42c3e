/**
 * Cross-architecture scenarios (notebook 01): a CNN lends knowledge to a model of another
 * family on the same image task. The setting gives transfer room to help: the source sees
 * many images, the target few (options `sourceTrain`, `targetTrain`), so a stronger model
 * exists whose knowledge the target lacks. Both predict the same 10 classes from the same
 * 28×28 input, so logit distillation and mutual learning apply and are the strong baselines.
 *
 * An epoch is one pass over the target's (small) training set; the source's stream wraps
 * on its own. Evaluation: accuracy on the first `testImages` official test images.
 *
 * Options for ablations (notebook 04): the source CNN's size (`sourceFilters`,
 * `sourceHidden`), and `factorized`, which builds chosen dense layers of either model as
 * W = B·A at a given rank (src/models/lowrank-layers.ts), the models the `factorized`
 * low-rank form of docs/METHOD.md §2 needs. A factorized model is the zoo's model rebuilt layer by
 * layer with those layers swapped; every other layer keeps the zoo's seeded weights.
 */
import { tf } from "../../backend/index";
import { momentum } from "../../core/momentum";
import { accuracyEvaluator, sparseCrossEntropy } from "../../core/losses";
import { batchStream } from "../../data/batches";
import { IMAGE_DATASET_NAMES, loadImageDataset, type ImageDatasetName } from "../../data/images";
import { choiceProblem, describeValue, isWholeAtLeast, unknownKeyProblems } from "../../config-checks";
import { lowRankDense, type ActivationName } from "../../models/lowrank-layers";
import { cnn, mlp, vit, weightSeed } from "../../models/zoo";
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
  /** Filters of the source CNN's two convolutions. Default [32, 64]. */
  sourceFilters?: [number, number];
  /** Width of the source CNN's fc1 (and so the input side of its classifier). Default 128. */
  sourceHidden?: number;
  /** Build these dense layers as W = B·A (the `factorized` form); none by default. */
  factorized?: FactorizedOptions;
}

export interface FactorizedOptions {
  /** Rank r of every factorized layer (at most the layer's smaller side). */
  rank: number;
  /** Dense layers of the source built factorized. Default ["classifier"]. */
  source?: string[];
  /** Dense layers of the target built factorized (MLP only). Default ["fc2"]. */
  target?: string[];
  /** LoRA-style scale alpha / r; omitted means scale 1 (lowrank-layers.ts). */
  alpha?: number;
}

export const IMAGE_PAIR_DEFAULTS: Required<Omit<ImagePairOptions, "factorized">> = {
  dataset: "mnist",
  target: "mlp",
  sourceTrain: 10000,
  targetTrain: 1000,
  testImages: 5000,
  batchSize: 64,
  learningRate: 0.05,
  vitLearningRate: 1e-3,
  sourceFilters: [32, 64],
  sourceHidden: 128,
};

const FACTORIZED_KEYS = ["rank", "source", "target", "alpha"];

/**
 * Every problem of the options at once (none: valid). Before this check a misspelt key
 * (`targetTrian`) ran the default, and any `target` but "mlp" built a ViT.
 */
export function imagePairOptionProblems(options: ImagePairOptions): string[] {
  const problems = unknownKeyProblems(options, [...Object.keys(IMAGE_PAIR_DEFAULTS), "factorized"], "", "option");
  const o = { ...IMAGE_PAIR_DEFAULTS, ...options };
  for (const [key, choices] of [["dataset", IMAGE_DATASET_NAMES], ["target", ["mlp", "vit"]]] as const) {
    const problem = choiceProblem(key, o[key], choices);
    if (problem) problems.push(problem);
  }
  for (const key of ["sourceTrain", "targetTrain", "testImages", "batchSize", "sourceHidden"] as const) {
    if (!isWholeAtLeast(o[key], 1)) problems.push(`${key} must be a whole number >= 1, got ${describeValue(o[key])}`);
  }
  for (const key of ["learningRate", "vitLearningRate"] as const) {
    if (!(typeof o[key] === "number" && o[key] > 0 && Number.isFinite(o[key]))) problems.push(`${key} must be a number > 0, got ${describeValue(o[key])}`);
  }
  if (!(Array.isArray(o.sourceFilters) && o.sourceFilters.length === 2 && o.sourceFilters.every((f) => isWholeAtLeast(f, 1)))) {
    problems.push(`sourceFilters must be two whole numbers >= 1 (the CNN's two convolutions), got ${describeValue(o.sourceFilters)}`);
  }
  const f = o.factorized;
  if (f !== undefined) {
    if (!f || typeof f !== "object" || Array.isArray(f)) problems.push(`factorized must be an object such as { rank: 8 }, got ${describeValue(f)}`);
    else {
      problems.push(...unknownKeyProblems(f, FACTORIZED_KEYS, "factorized: ", "option"));
      if (!isWholeAtLeast(f.rank, 1)) problems.push(`factorized.rank must be a whole number >= 1, got ${describeValue(f.rank)}`);
      for (const key of ["source", "target"] as const) {
        const names = f[key];
        if (names !== undefined && !(Array.isArray(names) && names.every((name) => typeof name === "string"))) {
          problems.push(`factorized.${key} must be a list of layer names, got ${describeValue(names)}`);
        }
      }
      if (f.alpha !== undefined && !(typeof f.alpha === "number" && f.alpha > 0)) problems.push(`factorized.alpha ` +
          `must be a number > 0, got ${describeValue(f.alpha)}`);
      if (o.target !== "mlp") {
        problems.push("factorized: only the MLP target can be built factorized (the ViT is not a single chain of layers); use target 'mlp'");
      }
    }
  }
  return problems;
}

/**
 * `model` rebuilt with the named Dense layers as LowRankDense layers of rank `rank` (same
 * units, activation and name; factors seeded from `seed` and the layer name). Every other
 * layer is re-created from its config and given the original's weights, so the two models
 * differ only in the swapped layers. Only for models whose layers form one chain (the zoo's
 * CNN and MLP). On success `model` is disposed; on a bad request nothing is made and the
 * caller keeps `model`.
 */
export function withFactorizedDense(model: tf.LayersModel, layers: string[], rank: number, seed: number, alpha?: number): tf.LayersModel {
  const names = model.layers.map((l) => l.name);
  const unknown = layers.filter((name) => !names.includes(name));
  if (unknown.length) {
    throw new Error(`factorized: model '${model.name}' has no layer ${unknown.map((n) => `'${n}'`).join(", ")}; its layers are ${names.join(", ")}`);
  }
  // Each layer's one input is the layer before it.
  const readsPrevious = (layer: tf.layers.Layer, i: number): boolean => {
    const nodes = layer.inboundNodes;
    return nodes.length === 1 && nodes[0].inboundLayers.length === 1 && nodes[0].inboundLayers[0] === model.layers[i - 1];
  };
  const chain = model.layers.every((layer, i) => i === 0 || readsPrevious(layer, i));
  if (!chain) throw new Error(`factorized: model '${model.name}' is not a single chain of layers; only the CNN and the MLP can be built factorized`);
  for (const name of layers) {
    const layer = model.getLayer(name);
    if (layer.getClassName() !== "Dense") throw new Error(`factorized: layer '${name}' is a ${layer.getClassName()}, not a Dense layer`);
    const [fanIn, units] = layer.getWeights()[0].shape; // kernel [in, out]
    if (!Number.isInteger(rank) || rank < 1 || rank > Math.min(fanIn, units)) {
      throw new Error(`factorized: rank ${rank} does not fit layer '${name}' (kernel [${fanIn}, ${units}]); use a ` +
          `whole number in [1, ${Math.min(fanIn, units)}]`);
    }
  }
  const input = tf.input({ shape: model.inputs[0].shape.slice(1) as number[], name: model.layers[0].name });
  let h: tf.SymbolicTensor = input;
  const copies: [tf.layers.Layer, tf.layers.Layer][] = [];
  for (const layer of model.layers.slice(1)) {
    let made: tf.layers.Layer;
    if (layers.includes(layer.name)) {
      const config = layer.getConfig();
      made = lowRankDense({
        name: layer.name, units: config.units as number, activation: config.activation as ActivationName, rank, alpha,
        seed: weightSeed(seed, `${layer.name}/lora`),
      });
    } else {
      const registered = tf.serialization.SerializationMap.getMap().classNameMap[layer.getClassName()];
      if (!registered) throw new Error(`factorized: layer '${layer.name}' of class ${layer.getClassName()} is not ` +
          `registered with tf.serialization, so it cannot be re-created`);
      const [cls, fromConfig] = registered;
      made = fromConfig(cls, layer.getConfig()) as tf.layers.Layer;
      copies.push([layer, made]);
    }
    h = made.apply(h) as tf.SymbolicTensor;
  }
  const rebuilt = tf.model({ name: model.name, inputs: input, outputs: h });
  for (const [original, made] of copies) made.setWeights(original.getWeights());
  model.dispose();
  return rebuilt;
}

/**
 * Weight pairs worth trying, with why. Shapes are [out, in] views.
 * - `released`: the released code's kind of pair, the source's classifier into a hidden layer
 *   of the target; the hidden axes of two networks share no coordinate system.
 * - `classifier`: classifier ↔ classifier; the rows are the 10 classes in both models, the one
 *   axis whose meaning is shared (docs/METHOD.md §3b).
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

/** The seeded source CNN and target model of one run, factorized where the options ask; nothing is left allocated on failure. */
function buildModels(seed: number, o: ImagePairOptions & typeof IMAGE_PAIR_DEFAULTS): { sourceModel: tf.LayersModel; targetModel: tf.LayersModel } {
  const input: [number, number, number] = [28, 28, 1];
  let sourceModel = cnn({ inputShape: input, classes: 10, filters: o.sourceFilters, hidden: o.sourceHidden, seed: seed * 10 + 1 });
  let targetModel: tf.LayersModel | undefined;
  try {
    targetModel =
      o.target === "mlp"
        ? mlp({ inputShape: input, hidden: [256, 128], classes: 10, seed: seed * 10 + 2 })
        : vit({ inputShape: input, patch: 7, dim: 64, depth: 2, heads: 4, classes: 10, seed: seed * 10 + 2 });
    if (o.factorized) {
      const f = o.factorized;
      sourceModel = withFactorizedDense(sourceModel, f.source ?? ["classifier"], f.rank, seed * 10 + 1, f.alpha);
      targetModel = withFactorizedDense(targetModel, f.target ?? ["fc2"], f.rank, seed * 10 + 2, f.alpha);
    }
    return { sourceModel, targetModel };
  } catch (err) {
    sourceModel.dispose();
    targetModel?.dispose();
    throw err;
  }
}

export const imagePairScenario = registerScenario<ImagePairOptions>({
  name: "image-cnn-to-x",
  description: "a CNN trained on many images lends knowledge to an MLP or a small ViT trained on few, same 10 classes",
  optionProblems: imagePairOptionProblems,
  async build(seed, options): Promise<ScenarioInstance> {
    const problems = imagePairOptionProblems(options);
    if (problems.length) throw new Error(`invalid options for scenario 'image-cnn-to-x':\n  - ${problems.join("\n  - ")}`);
    const o = { ...IMAGE_PAIR_DEFAULTS, ...options };
    const sourceData = await loadImageDataset(o.dataset, { trainLimit: o.sourceTrain, testLimit: o.testImages, seed: seed * 2 + 1 });
    const targetData = await loadImageDataset(o.dataset, { trainLimit: o.targetTrain, testLimit: 1, seed: seed * 2 + 2 });
    let models: { sourceModel: tf.LayersModel; targetModel: tf.LayersModel };
    try {
      models = buildModels(seed, o);
    } catch (err) {
      sourceData.dispose();
      targetData.dispose();
      throw err;
    }
    const { sourceModel, targetModel } = models;
    const evaluate = accuracyEvaluator(sourceData.test.x, sourceData.test.y);
    const optimizers: tf.Optimizer[] = [];
    const optimizer = (adam: boolean): tf.Optimizer => {
      const made = adam ? tf.train.adam(o.vitLearningRate) : momentum(o.learningRate, 0.9);
      optimizers.push(made);
      return made;
    };
    const side = (model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, streamSeed: number, adam = false) => ({
      model,
      optimizer: optimizer(adam),
      weightDecay: adam ? 0 : 5e-4,
      loss: sparseCrossEntropy,
      data: batchStream(x, y, { batchSize: o.batchSize, seed: streamSeed, name: `${o.dataset}, ${x.shape[0]} training images` }),
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
