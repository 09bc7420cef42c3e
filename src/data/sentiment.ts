/**
 * UCI "Sentiment Labelled Sentences" (Kotzias et al., KDD 2015): 1000 sentences from each of
 * three sites (amazon, imdb, yelp), each labelled negative (0) or positive (1), 500 of each
 * per site. Read from the copy that npm `sentiment@5.0.2` ships in
 * `test/fixtures/{amazon,imdb,yelp}.json` (pinned in package.json; nothing is downloaded).
 * Each file is a JSON list of `{text, class}` with one trailing `{"text": "", "class": null}`
 * entry, which is dropped.
 *
 * One set of sentences, two tasks (issue 5): task A = sentiment (2 classes), task B = which
 * site the sentence comes from (3 classes). Sentence index = site * 1000 + position in the
 * file, sites in SENTIMENT_SITES order.
 *
 * Split (choices recorded here): stratified by the six (site, sentiment) groups of 500, seeded
 * by `splitSeed` (default 0): 70 / 10 / 20 % -> 2100 train, 300 validation, 600 test, each
 * split balanced in both labels. The same split serves both tasks, so a model of task A and
 * one of task B never see each other's test sentences. The vocabulary is built from the
 * training sentences only (src/data/text.ts; default min frequency 2), sentences are encoded
 * to `maxLen` ids (default 32, which covers over 97% of the sentences whole; longer ones lose
 * their end).
 */
import * as fs from "fs";
import * as path from "path";
import { tf } from "../backend/index";
import { buildVocabulary, encodeTokens, stratifiedSplit, toIdTensor, toLabelTensor, tokenize, type SplitIndices, type Vocabulary } from "./text";

export const SENTIMENT_SITES = ["amazon", "imdb", "yelp"] as const;
export type SentimentSite = (typeof SENTIMENT_SITES)[number];
export const SENTIMENT_CLASSES = ["negative", "positive"] as const;
/** The package version the data was checked against (counts, labels, first sentences). */
export const SENTIMENT_PACKAGE_VERSION = "5.0.2";
export const SENTENCES_PER_SITE = 1000;

/** One labelled sentence as read from the files. */
export interface SentimentSentence {
  text: string;
  /** Index into SENTIMENT_SITES (task B's label). */
  site: number;
  /** 0 negative, 1 positive (task A's label). */
  sentiment: number;
}

export interface SentimentSourceOptions {
  /** Folder holding amazon.json, imdb.json and yelp.json; default the installed package's test/fixtures. */
  sourceDir?: string;
}

/** Which of the two tasks a tensor set is for. */
export type SentimentTask = "sentiment" | "site";

/** One split as plain arrays, aligned by position. */
export interface SentimentSplit {
  /** Sentence indices into the full list of 3000. */
  indices: number[];
  /** `maxLen` ids per sentence (0 = padding, 1 = unknown). */
  ids: Int32Array[];
  sentiment: number[];
  site: number[];
}

export interface SentimentDataset {
  vocab: Vocabulary;
  maxLen: number;
  train: SentimentSplit;
  validation: SentimentSplit;
  test: SentimentSplit;
}

export interface SentimentDatasetOptions extends SentimentSourceOptions {
  /** Seed of the stratified split; default 0. */
  splitSeed?: number;
  /** Fractions of each (site, sentiment) group for train and validation; default 0.7 / 0.1 (test gets the rest). */
  trainFraction?: number;
  validationFraction?: number;
  /** Ids per sentence; default 32. */
  maxLen?: number;
  /** Vocabulary cut-off (training split counts); default 2. */
  minFrequency?: number;
}

export const SENTIMENT_DEFAULTS = { splitSeed: 0, trainFraction: 0.7, validationFraction: 0.1, maxLen: 32, minFrequency: 2 } as const;

const INSTALL_HINT = `the sentences come from the npm package sentiment@${SENTIMENT_PACKAGE_VERSION}: run \`npm ci\` in the project folder`;

function defaultSourceDir(): string {
  let packageFile: string;
  try {
    packageFile = require.resolve("sentiment/package.json");
  } catch {
    throw new Error(`the npm package 'sentiment' is not installed; ${INSTALL_HINT}`);
  }
  const version = (JSON.parse(fs.readFileSync(packageFile, "utf8")) as { version?: string }).version;
  if (version !== SENTIMENT_PACKAGE_VERSION) {
    throw new Error(`the installed npm package 'sentiment' is version ${version}, but the data was checked against ` +
        `${SENTIMENT_PACKAGE_VERSION}; ${INSTALL_HINT}`);
  }
  return path.join(path.dirname(packageFile), "test", "fixtures");
}

/** Parses one site's file: exactly 1000 sentences after dropping trailing empty entries. */
function readSite(file: string, site: number): SentimentSentence[] {
  if (!fs.existsSync(file)) throw new Error(`${file} not found; ${INSTALL_HINT}`);
  let entries: unknown;
  try {
    entries = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${err instanceof Error ? err.message : String(err)}); reinstall with \`npm ci\``);
  }
  if (!Array.isArray(entries)) throw new Error(`${file} should hold a JSON list of {text, class}; reinstall with \`npm ci\``);
  let end = entries.length;
  while (end > 0 && (entries[end - 1] as { text?: unknown })?.text === "") end -= 1;
  if (end !== SENTENCES_PER_SITE) {
    throw new Error(`${file} holds ${end} sentences (after dropping trailing empty entries), expected ` +
        `${SENTENCES_PER_SITE}; the file is not the UCI data of sentiment@${SENTIMENT_PACKAGE_VERSION}`);
  }
  return entries.slice(0, end).map((entry: unknown, i: number) => {
    const { text, class: label } = (entry ?? {}) as { text?: unknown; class?: unknown };
    if (typeof text !== "string" || text.trim() === "" || (label !== 0 && label !== 1)) {
      throw new Error(`${file}, entry ${i}: expected {text: non-empty string, class: 0 or 1}, got ${JSON.stringify(entry)}`);
    }
    return { text, site, sentiment: label };
  });
}

/** All 3000 sentences: amazon's 1000, then imdb's, then yelp's, each in file order. */
export function readSentimentSentences(options: SentimentSourceOptions = {}): SentimentSentence[] {
  const dir = options.sourceDir ?? defaultSourceDir();
  return SENTIMENT_SITES.flatMap((site, i) => readSite(path.join(dir, `${site}.json`), i));
}

/** The stratified split of the 3000 sentence indices (see the module comment). */
export function sentimentSplit(
  sentences: readonly SentimentSentence[],
  options: Pick<SentimentDatasetOptions, "splitSeed" | "trainFraction" | "validationFraction"> = {},
): SplitIndices {
  const o = { ...SENTIMENT_DEFAULTS, ...options };
  const groups = sentences.map((s) => s.site * SENTIMENT_CLASSES.length + s.sentiment); // 6 (site, sentiment) groups
  return stratifiedSplit(groups, { train: o.trainFraction, validation: o.validationFraction }, o.splitSeed);
}

/** Reads, splits, builds the vocabulary from the training sentences and encodes every split. */
export function loadSentimentDataset(options: SentimentDatasetOptions = {}): SentimentDataset {
  const o = { ...SENTIMENT_DEFAULTS, ...options };
  const sentences = readSentimentSentences(options);
  const split = sentimentSplit(sentences, o);
  const tokens = sentences.map((s) => tokenize(s.text));
  const vocab = buildVocabulary(split.train.map((i) => tokens[i]), { minFrequency: o.minFrequency });
  const encode = (indices: number[]): SentimentSplit => ({
    indices,
    ids: indices.map((i) => encodeTokens(vocab, tokens[i], o.maxLen)),
    sentiment: indices.map((i) => sentences[i].sentiment),
    site: indices.map((i) => sentences[i].site),
  });
  return { vocab, maxLen: o.maxLen, train: encode(split.train), validation: encode(split.validation), test: encode(split.test) };
}

/** The rows `positions` (indices into the split's arrays) of a split, as a new split. */
export function selectSentimentRows(split: SentimentSplit, positions: readonly number[]): SentimentSplit {
  return {
    indices: positions.map((p) => split.indices[p]),
    ids: positions.map((p) => split.ids[p]),
    sentiment: positions.map((p) => split.sentiment[p]),
    site: positions.map((p) => split.site[p]),
  };
}

/** Tensors of a split for one task: x [n, maxLen] int32 ids, y [n] int32 labels; the caller disposes both. */
export function sentimentTensors(split: SentimentSplit, task: SentimentTask, maxLen: number): { x: tf.Tensor2D; y: tf.Tensor1D } {
  if (task !== "sentiment" && task !== "site") throw new Error(`task must be 'sentiment' or 'site', got '${task}'`);
  return { x: toIdTensor(split.ids, maxLen), y: toLabelTensor(task === "sentiment" ? split.sentiment : split.site) };
}
