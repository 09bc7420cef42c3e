/**
 * Examples for notebook 03's figures: what the two datasets look like, and what trained
 * models predict on individual test emoji. The runner keeps numbers, not models, so the
 * prediction comparison trains its own models (one seed, the same scenario and methods as the
 * experiment) and keeps only their predictions.
 *
 * Design choices:
 * - Pictures are shown at the sheets' 32 px, even when a model reads the 16 px averages: the
 *   reader should see the emoji, not the model's blur.
 * - Which test emoji are shown is a seeded random sample, never chosen by outcome; the counts
 *   over the whole test set (`changes`) say whether the sample is typical.
 * - The training here mirrors the runner (optional source pre-training, then the method's
 *   trainer for `epochs`); with seeded weights and streams it is the run of that seed, up to
 *   the backend's floating-point non-determinism.
 */
import * as fs from "fs";
import * as path from "path";
import { tf } from "../backend/index";
import { IndependentTrainer } from "../baselines/independent";
import type { JointLoop } from "../core/loop";
import { mulberry32 } from "../util/random";
import {
  DIGIT_WORDS,
  LOG_MEL_DEFAULTS,
  fitDuration,
  logMelSpectrogram,
  parseWav,
  samplesNeeded,
  synthesizeSpokenDigits,
  type SpokenDigitSpeaker,
} from "../data/audio";
import { EMOJI_CATEGORIES, EMOJI_SIDE, EMOJI_VENDORS, loadEmojiDataset, readEmojiArrays, type EmojiVendor } from "../data/emoji";
import type { ImageTile } from "../plots/images";
import { makeTrainer, methodNotApplicable, type MethodSpec } from "./methods";
import { EMOJI_IMAGE_TEXT_DEFAULTS, buildEmojiImageText, type EmojiImageTextOptions } from "./scenarios/cross-modality";

/** Short names of EMOJI_CATEGORIES (same order), for captions. */
export const EMOJI_CATEGORY_SHORT = ["Smileys", "People", "Animals", "Food", "Travel", "Activities", "Objects", "Symbols", "Flags"] as const;

const PICTURE_SIZE = EMOJI_SIDE * EMOJI_SIDE * 3;

/** One emoji as both vendors draw it. */
export interface EmojiVendorExample {
  category: number;
  label: string;
  unified: string;
  /** Per vendor: [32, 32, 3] RGB bytes on white. */
  pictures: Record<EmojiVendor, Uint8Array>;
}

/** One emoji per category (a seeded pick), with both vendors' pictures. */
export function emojiVendorExamples(seed = 0): EmojiVendorExample[] {
  const arrays = readEmojiArrays();
  const rand = mulberry32(seed);
  return EMOJI_CATEGORIES.map((_, category) => {
    const members = arrays.items.flatMap((item, i) => (item.category === category ? [i] : []));
    const i = members[Math.floor(rand() * members.length)];
    const pictures = {} as Record<EmojiVendor, Uint8Array>;
    for (const vendor of EMOJI_VENDORS) pictures[vendor] = arrays.images[vendor].slice(i * PICTURE_SIZE, (i + 1) * PICTURE_SIZE);
    return { category, label: arrays.items[i].label, unified: arrays.items[i].unified, pictures };
  });
}

/** Tiles for imageMosaic: one row per vendor, one column per example. */
export function vendorTiles(examples: EmojiVendorExample[]): ImageTile[] {
  return EMOJI_VENDORS.flatMap((vendor) =>
    examples.map((e) => ({
      pixels: e.pictures[vendor], width: EMOJI_SIDE, height: EMOJI_SIDE,
      // The same three lines under every picture: vendor, category, the emoji's name.
      caption: [vendor, EMOJI_CATEGORY_SHORT[e.category], e.label.length > 24 ? `${e.label.slice(0, 23)}…` : e.label],
    })),
  );
}

/** One utterance's log-mel spectrogram, as the audio model's features are computed (before standardisation). */
export interface SpokenDigitExample {
  word: string;
  speaker: SpokenDigitSpeaker;
  /** [mels][frames], row 0 the lowest mel band. */
  matrix: number[][];
}

/**
 * Log-mel spectrograms of chosen utterances of the project's synthetic spoken digits
 * (synthesised first if the cache lacks them; needs espeak-ng then).
 */
export async function spokenDigitExamples(picks: { digit: number; speaker: number }[]): Promise<SpokenDigitExample[]> {
  const { folder, manifest } = await synthesizeSpokenDigits();
  const length = samplesNeeded(LOG_MEL_DEFAULTS);
  return picks.map(({ digit, speaker }) => {
    const utterance = manifest.utterances.find((u) => u.digit === digit && u.speaker === speaker);
    if (!utterance) throw new Error(`no utterance of digit ${digit} by speaker ${speaker}: digits are 0-9 and speakers 0-${manifest.request.speakers - 1}`);
    const file = path.join(folder, utterance.file);
    const wave = parseWav(fs.readFileSync(file), file);
    const features = logMelSpectrogram(fitDuration(wave.samples, length)); // [frames, mels] row-major
    const { frames, mels } = LOG_MEL_DEFAULTS;
    const matrix = Array.from({ length: mels }, (_, m) => Array.from({ length: frames }, (_, t) => features[t * mels + m])); // -> [mels][frames]
    return { word: DIGIT_WORDS[digit], speaker: manifest.speakers[speaker], matrix };
  });
}

export interface PredictionComparisonOptions {
  /** The run seed (data split, weights, batch order), as in the experiment. */
  seed: number;
  epochs: number;
  /** The emoji-image-text options of the experiment. */
  scenarioOptions: EmojiImageTextOptions;
  /** Methods to train; the first is the reference ("before transfer", e.g. target alone). */
  methods: MethodSpec[];
  /** Test emoji to show (a seeded sample). Default 12. */
  count?: number;
}

export interface PredictionComparison {
  methods: string[];
  /** Category names (EMOJI_CATEGORIES). */
  classes: string[];
  /** The vendor whose drawings the test pictures are. */
  testVendor: EmojiVendor;
  /** Each method's target accuracy over the whole test set. */
  accuracy: Record<string, number>;
  /** Over the whole test set, against methods[0]: emoji it gets wrong and this method right (fixed), and the reverse (broken). */
  changes: { method: string; fixed: number; broken: number }[];
  /** The sampled test emoji: true category, each method's predicted category, the test vendor's 32 px picture. */
  examples: { unified: string; label: string; truth: number; predicted: Record<string, number>; picture: Uint8Array }[];
}

/** Trains `method` on a fresh emoji-image-text instance and returns the target's predicted class per test row. */
async function trainAndPredict(method: MethodSpec, options: PredictionComparisonOptions, testX: tf.Tensor): Promise<Int32Array> {
  const instance = await buildEmojiImageText(options.seed, options.scenarioOptions);
  let trainer: JointLoop | undefined;
  try {
    const reason = methodNotApplicable(method, instance);
    if (reason) throw new Error(`${method.name}: ${reason}`);
    if (method.pretrainSourceEpochs) {
      const pre = new IndependentTrainer(undefined, { ...instance.source, evaluate: undefined }); // only its weights are kept
      await pre.fit(method.pretrainSourceEpochs);
      pre.dispose();
    }
    trainer = makeTrainer(method, instance);
    trainer.evaluateSourceAt = () => false; // only the target's predictions are kept
    await trainer.fit(options.epochs);
    return tf.tidy(() => tf.argMax(instance.target.model.predict(testX) as tf.Tensor, -1).dataSync() as Int32Array); // [test rows, classes] -> [test rows]
  } finally {
    trainer?.dispose();
    instance.dispose();
  }
}

/**
 * Trains each method for one seed on emoji-image-text and compares their predictions on the
 * test emoji (see the module comment).
 */
export async function emojiPredictionComparison(options: PredictionComparisonOptions): Promise<PredictionComparison> {
  if (options.methods.length < 2) {
    throw new Error("emojiPredictionComparison needs at least two methods: a reference (e.g. target alone) and one to compare with it");
  }
  if (!Number.isInteger(options.epochs) || options.epochs < 1) throw new Error(`epochs must be a whole number >= 1, got ${options.epochs}`);
  const o = { ...EMOJI_IMAGE_TEXT_DEFAULTS, ...options.scenarioOptions };
  const { testFraction, trainVendor, imageSide, maxVocabulary } = o;
  const data = await loadEmojiDataset({ seed: options.seed, testFraction, trainVendor, imageSide, maxVocabulary });
  try {
    const testX = o.direction === "text->image" ? data.image.test.x : data.text.test.x;
    const truth = Int32Array.from(data.image.test.y.dataSync());
    const predicted: Record<string, Int32Array> = {};
    for (const method of options.methods) predicted[method.name] = await trainAndPredict(method, options, testX);
    const names = options.methods.map((m) => m.name);
    const correct = (name: string, i: number) => predicted[name][i] === truth[i];
    const accuracy = Object.fromEntries(names.map((name) => [name, truth.filter((_, i) => correct(name, i)).length / truth.length]));
    const changes = names.slice(1).map((name) => ({
      method: name,
      fixed: truth.filter((_, i) => !correct(names[0], i) && correct(name, i)).length,
      broken: truth.filter((_, i) => correct(names[0], i) && !correct(name, i)).length,
    }));
    const rows = Array.from({ length: truth.length }, (_, i) => i);
    const rand = mulberry32(options.seed * 7 + 3);
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [rows[i], rows[j]] = [rows[j], rows[i]];
    }
    const arrays = readEmojiArrays();
    const examples = rows.slice(0, options.count ?? 12).map((row) => {
      const item = data.testItems[row];
      return {
        unified: data.items[item].unified, label: data.items[item].label, truth: truth[row],
        predicted: Object.fromEntries(names.map((name) => [name, predicted[name][row]])),
        picture: arrays.images[data.testVendor].slice(item * PICTURE_SIZE, (item + 1) * PICTURE_SIZE),
      };
    });
    return { methods: names, classes: data.classes, testVendor: data.testVendor, accuracy, changes, examples };
  } finally {
    data.dispose();
  }
}

/**
 * Tiles for imageMosaic: each sampled test emoji with its true category and each method's
 * prediction (green when right, red when wrong). `labels` are short method names for the
 * captions, one per method (default the method names).
 */
export function predictionTiles(comparison: PredictionComparison, labels: string[] = comparison.methods): ImageTile[] {
  if (labels.length !== comparison.methods.length) throw new Error(`predictionTiles: ${labels.length} labels for ${comparison.methods.length} methods`);
  return comparison.examples.map((e) => ({
    pixels: e.picture, width: EMOJI_SIDE, height: EMOJI_SIDE,
    caption: [`true: ${EMOJI_CATEGORY_SHORT[e.truth]}`, ...comparison.methods.map((m, i) => `${labels[i]}: ${EMOJI_CATEGORY_SHORT[e.predicted[m]]}`)],
    captionColors: ["#333333", ...comparison.methods.map((m) => (e.predicted[m] === e.truth ? "#2a7f2a" : "#c0392b"))],
  }));
}
