/**
 * Cross-modality scenarios (issue 6): two models that read different kinds of input but
 * predict the same classes.
 *
 *   emoji-image-text     an image CNN (emoji picture -> category) and a bag-of-words MLP
 *                        (label + keywords -> category), src/data/emoji.ts. Item-aligned: the
 *                        two training sets are the same emoji, row for row, so logit
 *                        distillation and mutual learning apply once each model reads its own
 *                        modality of the same items (`CrossModalPairing`).
 *   digits-image-audio   an MNIST model and a model of spoken-digit log-mel spectrograms
 *                        (synthetic speech, src/data/audio.ts). Paired by CLASS only: no image
 *                        belongs to any utterance, so there is no item on which one model could
 *                        teach the other; `sharedLabels` is false and KD / DML do not apply.
 *
 * The image model of emoji-image-text trains on one vendor's rendering (`trainVendor`) and is
 * evaluated on the OTHER vendor's rendering of held-out emoji (`accuracy`), with the same
 * vendor's rendering of the held-out emoji as a second number (`sameVendorAccuracy`) showing
 * the size of the shift. An epoch is one pass over the target's training data; the source's
 * stream wraps on its own. The run seed sets the weights, the batch orders and the data split
 * (emoji split by emoji, spoken digits by speaker, MNIST subset).
 *
 * Models (src/models/zoo.ts, layer names fixed there): image CNN conv1/conv2/fc1/classifier;
 * text MLP fc1/classifier; audio CNN over [32 frames, 40 mels, 1] conv1/conv2/fc1/classifier;
 * MNIST `mlp` 784-256-128-10 (fc1/fc2/classifier, bench-mnist's target) or `cnn`.
 * All sides: SGD momentum 0.9, weight decay 5e-4, cross-entropy.
 */
import { tf } from "../../backend/index";
import { momentum } from "../../core/momentum";
import type { ModelSide } from "../../core/loop";
import { accuracyEvaluator, sparseCrossEntropy } from "../../core/losses";
import type { LayerPair } from "../../core/mergenet";
import { loadSpokenDigits, type SpokenDigitsData } from "../../data/audio";
import { choiceProblem, describeValue, unknownKeyProblems } from "../../config-checks";
import { checkDataset } from "../../data/check";
import type { Batch, BatchStream } from "../../core/batch-stream";
import { batchStream, type BatchStreamOptions } from "../../data/batches";
import { EMOJI_VENDORS, loadEmojiDataset, type EmojiVendor } from "../../data/emoji";
import { loadImageDataset } from "../../data/images";
import { cnn, mlp } from "../../models/zoo";
import { registerScenario, type ScenarioInstance } from "../scenario";

// ---------------------------------------------------------------------------------------
// Item-aligned pairing

/**
 * For item-aligned scenarios: the other modality's input for the very items of a batch.
 * Both sides' training streams draw rows of one shared item list (row i of the image set and
 * row i of the text set are the same emoji); each batch a stream hands out is remembered
 * with its items, so a cross-modal baseline can run the other model on the same items:
 *
 *   const batch = target.data.next();                       // target's own modality
 *   const teacherInput = pairing.sourceInputFor(batch);     // source's modality, same rows
 *   const teacher = source.model.predict(teacherInput);     // logits for the same items
 *   teacherInput.dispose();
 *
 * The returned tensors belong to the caller. Asking with a batch that did not come from the
 * named side's stream (or with a copy of its x) is an Error.
 */
export interface CrossModalPairing {
  /** The source model's input [rows, ...] for the items of a batch from the TARGET's stream. */
  sourceInputFor(targetBatch: Batch): tf.Tensor;
  /** The target model's input [rows, ...] for the items of a batch from the SOURCE's stream. */
  targetInputFor(sourceBatch: Batch): tf.Tensor;
  /** Rows of the shared training item list behind a batch from either stream, in batch order. */
  itemsOf(batch: Batch): Int32Array;
}

type SideName = "source" | "target";
/** Which stream drew each training batch (keyed by the batch's x), and which rows of its data. */
type SeenBatches = WeakMap<tf.Tensor, { side: SideName; rows: Int32Array }>;

const pairings = new WeakMap<ScenarioInstance, CrossModalPairing>();

/** The pairing of an item-aligned scenario instance; undefined where the modalities are not item-aligned. */
export function crossModalPairing(instance: ScenarioInstance): CrossModalPairing | undefined {
  return pairings.get(instance);
}

/**
 * A BatchStream over (x, y) that hands out exactly the batches `batchStream(x, y, options)`
 * would (it shuffles an index vector with the same seed) and records each batch's rows.
 * Owns the index vector: call `disposeIndex` when done.
 */
function recordingStream(
  side: SideName,
  x: tf.Tensor,
  y: tf.Tensor,
  options: BatchStreamOptions,
  seen: SeenBatches,
): BatchStream & { disposeIndex(): void } {
  const index = tf.range(0, x.shape[0], 1, "int32"); // [n]
  const inner = batchStream(index, y, options);
  return {
    size: inner.size,
    batchSize: inner.batchSize,
    batchesPerEpoch: inner.batchesPerEpoch,
    next(): Batch {
      const drawn = inner.next(); // x: [batch] row indices
      const rows = Int32Array.from(drawn.x.dataSync());
      const batchX = tf.gather(x, drawn.x); // [batch, ...]
      drawn.x.dispose();
      seen.set(batchX, { side, rows });
      return { x: batchX, y: drawn.y };
    },
    position: () => inner.position(),
    seek: (position) => inner.seek(position),
    check: (expect) => checkDataset(x, y, expect),
    disposeIndex: () => index.dispose(),
  };
}

function makePairing(sourceX: tf.Tensor, targetX: tf.Tensor, seen: SeenBatches): CrossModalPairing {
  const lookup = (batch: Batch, side?: SideName): Int32Array => {
    const entry = seen.get(batch.x);
    if (!entry) {
      throw new Error(
        "this batch did not come from this scenario's training streams (pass the batch object that data.next() returned, not a copy of its tensors)",
      );
    }
    if (side && entry.side !== side) throw new Error(`this batch came from the ${entry.side}'s stream, not the ` +
        `${side}'s; use ${entry.side === "source" ? "targetInputFor" : "sourceInputFor"}`);
    return entry.rows;
  };
  const gatherRows = (x: tf.Tensor, rows: Int32Array) => tf.tidy(() => tf.gather(x, tf.tensor1d(rows, "int32")));
  return {
    sourceInputFor: (batch) => gatherRows(sourceX, lookup(batch, "target")),
    targetInputFor: (batch) => gatherRows(targetX, lookup(batch, "source")),
    itemsOf: (batch) => Int32Array.from(lookup(batch)),
  };
}

// ---------------------------------------------------------------------------------------
// Shared pieces

/** Every problem of a scenario's options against its defaults (the known keys) and fixed choices. */
function optionProblemsOf(options: object, defaults: Record<string, unknown>, choices: Record<string, readonly unknown[]>): string[] {
  const problems = unknownKeyProblems(options, Object.keys(defaults), "", "option");
  for (const [key, value] of Object.entries(options ?? {})) {
    if (!(key in defaults) || value === undefined) continue;
    if (key in choices) {
      const problem = choiceProblem(key, value, choices[key]);
      if (problem) problems.push(problem);
    } else if (typeof defaults[key] === "number") {
      const whole = Number.isInteger(defaults[key]);
      const valid = typeof value === "number" && value > 0 && (!whole || Number.isInteger(value));
      if (!valid) problems.push(`${key} must be a positive ${whole ? "whole " : ""}number, got ${describeValue(value)}`);
    }
  }
  return problems;
}

function checkOptions(scenario: string, options: object, defaults: Record<string, unknown>, choices: Record<string, readonly unknown[]>): void {
  const problems = optionProblemsOf(options, defaults, choices);
  if (problems.length) throw new Error(`invalid options for scenario '${scenario}':\n  - ${problems.join("\n  - ")}`);
}

function sgdSide(model: tf.LayersModel, learningRate: number, data: BatchStream, evaluate: ModelSide["evaluate"]): ModelSide {
  return { model, optimizer: momentum(learningRate, 0.9), weightDecay: 5e-4, loss: sparseCrossEntropy, data, evaluate };
}

/** Accuracy on a held-out set under several keys at once (e.g. two test renderings). */
function accuracies(sets: Record<string, { x: tf.Tensor; y: tf.Tensor }>): NonNullable<ModelSide["evaluate"]> {
  const evaluators = Object.entries(sets).map(([key, set]) => accuracyEvaluator(set.x, set.y, 1000, key));
  return async (model) => Object.assign({}, ...(await Promise.all(evaluators.map((evaluate) => evaluate(model)))));
}

// ---------------------------------------------------------------------------------------
// emoji-image-text

export type EmojiDirection = "text->image" | "image->text";

export interface EmojiImageTextOptions {
  /** Which modality lends (source) and which receives (target). Default "text->image". */
  direction?: EmojiDirection;
  /** The image model trains on this vendor's rendering and is tested on the other's. Default "google". */
  trainVendor?: EmojiVendor;
  /**
   * Image side: 32 (the sheet's) or 16 (2x2 averages). Default 16: measured (seed 0, 10
   * epochs) it generalises better across vendors (0.41-0.48 vs 0.37-0.45 at 32 px) and an
   * epoch takes half the time.
   */
  imageSide?: 16 | 32;
  /** Fraction of each category's emoji held out. Default 0.25. */
  testFraction?: number;
  /** Bag-of-words columns at most. Default 1000. */
  maxVocabulary?: number;
  /** Default 32. */
  batchSize?: number;
  /** SGD learning rate of the image CNN. Default 0.01 (0.05 overfits the training vendor's style within a few epochs). */
  imageLearningRate?: number;
  /** SGD learning rate of the text MLP. Default 0.1. */
  textLearningRate?: number;
}

export const EMOJI_IMAGE_TEXT_DEFAULTS: Required<EmojiImageTextOptions> = {
  direction: "text->image",
  trainVendor: "google",
  imageSide: 16,
  testFraction: 0.25,
  maxVocabulary: 1000,
  batchSize: 32,
  imageLearningRate: 0.01,
  textLearningRate: 0.1,
};

/** The image CNN: filters [16, 32], fc1 64 wide. */
export const EMOJI_IMAGE_MODEL = { filters: [16, 32] as [number, number], hidden: 64 };
/** The text MLP: one hidden layer fc1, 128 wide. */
export const EMOJI_TEXT_MODEL = { hidden: [128] };

/**
 * Weight pairs worth trying, per direction, with why; shapes are [out, in] views at the
 * defaults (V = vocabulary size, 1000 at the default maxVocabulary).
 * - `classifier`: classifier ↔ classifier; rows are the 9 categories in both models, the one
 *   axis whose meaning is shared (docs/METHOD.md §3b).
 * - `released`: the released code's kind of pair, the source's classifier into a hidden
 *   weight of the target (a conv kernel in the image CNN, as the released code wrote into a
 *   conv; fc1 in the text MLP); the hidden axes share no coordinate system.
 */
export const EMOJI_PAIRS: Record<EmojiDirection, Record<"classifier" | "released", LayerPair>> = {
  "text->image": {
    classifier: { source: "classifier/kernel", target: "classifier/kernel" }, // [9,128] -> [9,64]
    released: { source: "classifier/kernel", target: "conv2/kernel" }, // [9,128] -> [32,144]
  },
  "image->text": {
    classifier: { source: "classifier/kernel", target: "classifier/kernel" }, // [9,64] -> [9,128]
    released: { source: "classifier/kernel", target: "fc1/kernel" }, // [9,64] -> [128,V]
  },
};

/** An emoji-image-text instance: the scenario instance plus its item-aligned pairing. */
export interface EmojiImageTextInstance extends ScenarioInstance {
  pairing: CrossModalPairing;
  /** The dataset's vocabulary size and split sizes, for reports. */
  sizes: { train: number; test: number; vocabulary: number };
}

const EMOJI_CHOICES = { direction: ["text->image", "image->text"], trainVendor: EMOJI_VENDORS, imageSide: [16, 32] };

/** Builds emoji-image-text (also reachable as getScenario("emoji-image-text").build). */
export async function buildEmojiImageText(seed: number, options: EmojiImageTextOptions = {}): Promise<EmojiImageTextInstance> {
  checkOptions("emoji-image-text", options, EMOJI_IMAGE_TEXT_DEFAULTS, EMOJI_CHOICES);
  const o = { ...EMOJI_IMAGE_TEXT_DEFAULTS, ...options };
  if (!(o.testFraction < 1)) throw new Error(`testFraction must be below 1, got ${o.testFraction}`);
  const { testFraction, trainVendor, imageSide, maxVocabulary } = o;
  const data = await loadEmojiDataset({ seed, testFraction, trainVendor, imageSide, maxVocabulary });
  const classes = data.classes.length;
  const imageModel = cnn({ name: "emoji_image", inputShape: [o.imageSide, o.imageSide, 3], classes, ...EMOJI_IMAGE_MODEL, seed: seed * 10 + 1 });
  const textModel = mlp({ name: "emoji_text", inputShape: [data.vocabulary.length], hidden: EMOJI_TEXT_MODEL.hidden, classes, seed: seed * 10 + 2 });
  const imageIsSource = o.direction === "image->text";
  const seen = new WeakMap<tf.Tensor, { side: SideName; rows: Int32Array }>();
  const imageOptions = { batchSize: o.batchSize, seed: seed * 2 + (imageIsSource ? 101 : 102) };
  const textOptions = { batchSize: o.batchSize, seed: seed * 2 + (imageIsSource ? 102 : 101) };
  const imageStream = recordingStream(imageIsSource ? "source" : "target", data.image.train.x, data.image.train.y, imageOptions, seen);
  const textStream = recordingStream(imageIsSource ? "target" : "source", data.text.train.x, data.text.train.y, textOptions, seen);
  const image = sgdSide(imageModel, o.imageLearningRate, imageStream, accuracies({ accuracy: data.image.test, sameVendorAccuracy: data.image.testSameVendor }));
  const text = sgdSide(textModel, o.textLearningRate, textStream, accuracies({ accuracy: data.text.test }));
  const pairing = imageIsSource ? makePairing(data.image.train.x, data.text.train.x, seen) : makePairing(data.text.train.x, data.image.train.x, seen);
  const instance: EmojiImageTextInstance = {
    source: imageIsSource ? image : text,
    target: imageIsSource ? text : image,
    sharedLabels: true,
    metric: "accuracy",
    pairedInput: pairing,
    pairing,
    sizes: { train: data.trainItems.length, test: data.testItems.length, vocabulary: data.vocabulary.length },
    dispose() {
      image.optimizer.dispose();
      text.optimizer.dispose();
      imageModel.dispose();
      textModel.dispose();
      imageStream.disposeIndex();
      textStream.disposeIndex();
      data.dispose();
    },
  };
  pairings.set(instance, pairing);
  return instance;
}

export const emojiImageTextScenario = registerScenario<EmojiImageTextOptions>({
  name: "emoji-image-text",
  description:
    "emoji category from the picture (CNN; trained on one vendor's rendering, tested on the other's) and from the label + keywords (bag-of-words MLP); " +
    "same 9 categories, same emoji in both training sets (item-aligned: KD / DML need each model fed its own modality, see CrossModalPairing)",
  build: buildEmojiImageText,
  optionProblems: (options) => optionProblemsOf(options, EMOJI_IMAGE_TEXT_DEFAULTS, EMOJI_CHOICES),
});

// ---------------------------------------------------------------------------------------
// digits-image-audio

export type DigitsDirection = "image->audio" | "audio->image";

export interface DigitsImageAudioOptions {
  /** Which modality lends (source) and which receives (target). Default "image->audio". */
  direction?: DigitsDirection;
  /** The MNIST model: "mlp" (784-256-128-10, bench-mnist's target) or "cnn". Default "mlp". */
  imageModel?: "mlp" | "cnn";
  /** MNIST training images (a seeded subset). Default 5000. */
  imageTrain?: number;
  /** First official MNIST test images used for evaluation. Default 5000. */
  testImages?: number;
  /** Synthetic speakers (each says the ten digits; 25% held out for testing). Default 80. */
  speakers?: number;
  /** Speakers the audio model trains on (a seeded subset of the 75% not held out). Default 60 (all of 80). */
  audioTrainSpeakers?: number;
  /** Default 32. */
  batchSize?: number;
  /** SGD learning rate of the MNIST model. Default 0.05. */
  imageLearningRate?: number;
  /** SGD learning rate of the audio CNN. Default 0.05. */
  audioLearningRate?: number;
}

export const DIGITS_IMAGE_AUDIO_DEFAULTS: Required<DigitsImageAudioOptions> = {
  direction: "image->audio",
  imageModel: "mlp",
  imageTrain: 5000,
  testImages: 5000,
  speakers: 80,
  audioTrainSpeakers: 60,
  batchSize: 32,
  imageLearningRate: 0.05,
  audioLearningRate: 0.05,
};

/** The audio CNN over [32 frames, 40 mels, 1]: filters [16, 32], fc1 64 wide. */
export const AUDIO_MODEL = { filters: [16, 32] as [number, number], hidden: 64 };

/**
 * Weight pairs worth trying, by the TARGET's model, with why; shapes are [out, in] views
 * (source classifier: [10,128] from the MNIST models, [10,64] from the audio CNN).
 * - `classifier`: classifier ↔ classifier; rows are the digits 0..9 in both models, the one
 *   axis whose meaning is shared (docs/METHOD.md §3b).
 * - `released`: the released code's kind of pair, the source's classifier into a hidden weight
 *   of the target (a conv kernel in CNNs, fc2 in the MNIST MLP as in bench-mnist); the hidden
 *   axes share no coordinate system.
 */
export const DIGITS_PAIRS: Record<"audio" | "mnist-mlp" | "mnist-cnn", Record<"classifier" | "released", LayerPair>> = {
  audio: {
    classifier: { source: "classifier/kernel", target: "classifier/kernel" }, // [10,128] -> [10,64]
    released: { source: "classifier/kernel", target: "conv2/kernel" }, // [10,128] -> [32,144]
  },
  "mnist-mlp": {
    classifier: { source: "classifier/kernel", target: "classifier/kernel" }, // [10,64] -> [10,128]
    released: { source: "classifier/kernel", target: "fc2/kernel" }, // [10,64] -> [128,256]
  },
  "mnist-cnn": {
    classifier: { source: "classifier/kernel", target: "classifier/kernel" }, // [10,64] -> [10,128]
    released: { source: "classifier/kernel", target: "conv2/kernel" }, // [10,64] -> [64,288]
  },
};

/** The key of DIGITS_PAIRS that fits a digits-image-audio configuration. */
export function digitsPairsFor(options: DigitsImageAudioOptions = {}): Record<"classifier" | "released", LayerPair> {
  const o = { ...DIGITS_IMAGE_AUDIO_DEFAULTS, ...options };
  return DIGITS_PAIRS[o.direction === "image->audio" ? "audio" : o.imageModel === "mlp" ? "mnist-mlp" : "mnist-cnn"];
}

const DIGITS_CHOICES = { direction: ["image->audio", "audio->image"], imageModel: ["mlp", "cnn"] };

/** Builds digits-image-audio (also reachable as getScenario("digits-image-audio").build). */
export async function buildDigitsImageAudio(seed: number, options: DigitsImageAudioOptions = {}): Promise<ScenarioInstance> {
  checkOptions("digits-image-audio", options, DIGITS_IMAGE_AUDIO_DEFAULTS, DIGITS_CHOICES);
  const o = { ...DIGITS_IMAGE_AUDIO_DEFAULTS, ...options };
  const images = await loadImageDataset("mnist", { trainLimit: o.imageTrain, testLimit: o.testImages, seed: seed * 2 + 1 });
  let audio: SpokenDigitsData;
  try {
    audio = await loadSpokenDigits({ speakers: o.speakers, trainSpeakers: o.audioTrainSpeakers, splitSeed: seed });
  } catch (err) {
    images.dispose();
    throw err;
  }
  const imageModel = o.imageModel === "mlp"
    ? mlp({ name: "digits_image", inputShape: [28, 28, 1], hidden: [256, 128], classes: 10, seed: seed * 10 + 1 })
    : cnn({ name: "digits_image", inputShape: [28, 28, 1], classes: 10, seed: seed * 10 + 1 });
  const [frames, mels] = audio.featureShape;
  const audioModel = cnn({ name: "digits_audio", inputShape: [frames, mels, 1], classes: 10, ...AUDIO_MODEL, seed: seed * 10 + 2 });
  const imageIsSource = o.direction === "image->audio";
  const image = sgdSide(imageModel, o.imageLearningRate,
    batchStream(images.train.x, images.train.y, { batchSize: o.batchSize, seed: seed * 2 + (imageIsSource ? 101 : 102) }),
    accuracyEvaluator(images.test.x, images.test.y));
  const spoken = sgdSide(audioModel, o.audioLearningRate,
    batchStream(audio.train.x, audio.train.y, { batchSize: o.batchSize, seed: seed * 2 + (imageIsSource ? 102 : 101) }),
    accuracyEvaluator(audio.test.x, audio.test.y));
  return {
    source: imageIsSource ? image : spoken,
    target: imageIsSource ? spoken : image,
    sharedLabels: false,
    metric: "accuracy",
    dispose() {
      image.optimizer.dispose();
      spoken.optimizer.dispose();
      imageModel.dispose();
      audioModel.dispose();
      images.dispose();
      audio.dispose();
    },
  };
}

export const digitsImageAudioScenario = registerScenario<DigitsImageAudioOptions>({
  name: "digits-image-audio",
  description:
    "MNIST digits (image model) and synthetic spoken digits 'zero'..'nine' (espeak-ng, log-mel CNN); same 10 classes but paired by class only, " +
    "no image belongs to any utterance, so logit distillation and mutual learning have no shared item to teach on (sharedLabels false)",
  build: buildDigitsImageAudio,
  optionProblems: (options) => optionProblemsOf(options, DIGITS_IMAGE_AUDIO_DEFAULTS, DIGITS_CHOICES),
});
