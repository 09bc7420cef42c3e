/**
 * Emoji in two modalities, for the cross-modality experiments: each emoji as a 32x32 picture
 * (two vendors' renderings) and as text (its label and keyword tags), with one label space,
 * the emoji's category. Everything is read from installed npm packages (data/README.md):
 *
 *   emoji-datasource@16.0.0  emoji.json (sheet_x, sheet_y, category, has_img_*) and the 32 px
 *                            sprite sheets img/google/sheets/32.png (Apache-2.0) and
 *                            img/twitter/sheets/32.png (CC BY 4.0). The Apple and Facebook
 *                            sheets are never read (their images are not openly licensed).
 *   emojibase-data@17.0.0    en/data.json: each emoji's English label and keyword tags (MIT).
 *
 * Which emoji (choices recorded here):
 *   - base emoji only (emoji.json's top-level entries; skin-tone variations are left out, so
 *     no emoji appears five times in five skin tones);
 *   - with a Google AND a Twitter image (`has_img_google && has_img_twitter`): the 32 px
 *     sheets fill missing images with another vendor's fallback, which must not be learnt;
 *   - in one of the nine EMOJI_CATEGORIES: "Component" (5 skin-tone and hair swatches) is
 *     dropped; the smallest kept category, Activities, has 85 emoji, so none is tiny;
 *   - with an emojibase-data entry: joined on emoji-datasource's `unified` code points, or,
 *     where emojibase lists the emoji without its U+FE0F variation selector, on
 *     `non_qualified` (1699 + 207 of 1906 with the pinned versions; none is left unmatched).
 * The label is emoji-datasource's category (emojibase's group agrees on every kept emoji;
 * `EmojiArrays.stats` counts it). Emoji are ordered by emoji-datasource's `sort_order`.
 *
 * Pictures: a sheet is a 62x62 grid of 34 px cells; the 32x32 image of (sheet_x, sheet_y)
 * starts at (34 sheet_x + 1, 34 sheet_y + 1), inside a 1 px transparent border that is never
 * read. Transparency is blended onto white (c' = (c a + 255 (255 - a)) / 255, rounded), so a
 * fully transparent pixel is white and the models see what a reader sees. Kept as RGB (colour
 * tells flags, food and plants apart) at 32x32; `imageSide: 16` averages 2x2 blocks, 4x
 * cheaper per epoch.
 *
 * Text: `tokenize` (src/data/text.ts) of "<label> <tag> <tag> ...", e.g. "grinning face" +
 * ["face", "grin"]. A bag of words over a vocabulary built from the TRAINING emoji only
 * (each token counted once per emoji, kept when in at least `minFrequency` training emoji,
 * default 2, at most `maxVocabulary`): one 0/1 column per kept token; unknown tokens are
 * dropped (an emoji whose tokens are all unknown gets an all-zero row; counted in
 * `EmojiDataset.emptyTextRows`).
 *
 * Split, by emoji: a seeded split stratified by category puts `testFraction` (default 0.25)
 * of each category's emoji in the test set, so the same emoji never appears in both. The
 * image model trains on `trainVendor`'s rendering of the training emoji and is tested on the
 * OTHER vendor's rendering of the test emoji (new emoji, new drawing style: a real
 * distribution shift); `image.testSameVendor` holds the training vendor's rendering of the
 * test emoji, to measure the shift. The text model trains and tests on the same emoji split.
 * Training rows of both modalities are in the same order (row i is emoji trainItems[i]),
 * which is what item-aligned pairing (src/experiments/scenarios/cross-modality.ts) relies on.
 *
 * Cache: cropping needs both 2108x2108 sheets decoded (about 0.6 s); the cropped pictures and
 * the joined metadata are cached in data/cache/emoji.bin (src/data/cache.ts), keyed by the
 * source files' paths, sizes and modification times.
 */
import * as fs from "fs";
import * as path from "path";
import { PNG } from "pngjs";
import { tf } from "../backend/index";
import { mulberry32 } from "../util/random";
import { logger } from "../log";
import { readCache, writeCache } from "./cache";
import { buildVocabulary, tokenize } from "./text";

export const EMOJI_VENDORS = ["google", "twitter"] as const;
export type EmojiVendor = (typeof EMOJI_VENDORS)[number];

/** The kept categories, as emoji-datasource spells them, in emojibase's group order (= class index). */
export const EMOJI_CATEGORIES = [
  "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
  "Activities", "Objects", "Symbols", "Flags",
] as const;

/** Side of one emoji image in the 32 px sheets. */
export const EMOJI_SIDE = 32;
/** Side of one sheet cell: the image plus a 1 px border on each side. */
export const EMOJI_CELL = EMOJI_SIDE + 2;
/** The sheets are a square grid of this many cells per side. */
export const EMOJI_GRID = 62;

/** One kept emoji. */
export interface EmojiItem {
  /** emoji-datasource's code points, e.g. "1F600". */
  unified: string;
  shortName: string;
  /** Index into EMOJI_CATEGORIES. */
  category: number;
  sheetX: number;
  sheetY: number;
  /** emojibase-data's English label, e.g. "grinning face". */
  label: string;
  /** emojibase-data's keyword tags (may be empty). */
  tags: string[];
  /** Which emoji-datasource field matched emojibase's hexcode. */
  joinedBy: "unified" | "non_qualified";
}

/** What was kept and dropped, for the notebook's data section. */
export interface EmojiStats {
  /** Base entries in emoji.json. */
  entries: number;
  droppedNoImage: number;
  /** Dropped per category outside EMOJI_CATEGORIES (e.g. {"Component": 5}). */
  droppedCategory: Record<string, number>;
  droppedNoText: number;
  joinedByUnified: number;
  joinedByNonQualified: number;
  /** Kept emoji whose emojibase group names the same category. */
  groupAgrees: number;
  /** Kept emoji per category, in EMOJI_CATEGORIES order. */
  perCategory: number[];
}

/** All kept emoji with both vendors' pictures as bytes. */
export interface EmojiArrays {
  items: EmojiItem[];
  classes: string[];
  /** Per vendor: [items, 32, 32, 3] RGB bytes on white, row-major, item order. */
  images: Record<EmojiVendor, Uint8Array>;
  stats: EmojiStats;
  /** True when read from data/cache/ instead of the packages. */
  fromCache: boolean;
}

export interface EmojiSourceOptions {
  /** Where the parsed arrays are cached; default `<repo>/data/cache`. */
  cacheDir?: string;
  /** emoji-datasource's folder, overriding the installed package's. */
  datasourceDir?: string;
  /** emojibase-data's folder, overriding the installed package's. */
  emojibaseDir?: string;
}

/** A pixel buffer as pngjs decodes it: RGBA bytes, row-major. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

const CACHE_FORMAT = 1;
const DEFAULT_CACHE_DIR = path.resolve(__dirname, "..", "..", "data", "cache");
const INSTALL_HINT = "run `npm ci` in the project folder (package.json pins emoji-datasource@16.0.0 and emojibase-data@17.0.0)";

/** The fields of an emoji.json entry this module reads. */
export interface DatasourceEntry {
  unified: string;
  non_qualified?: string | null;
  short_name: string;
  category: string;
  sort_order: number;
  sheet_x: number;
  sheet_y: number;
  has_img_google?: boolean;
  has_img_twitter?: boolean;
}

/** The fields of an emojibase-data entry this module reads. */
export interface EmojibaseEntry {
  hexcode: string;
  label: string;
  tags?: string[];
  group?: number;
}

function packageDir(name: string, override: string | undefined): string {
  if (override !== undefined) return override;
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new Error(`the npm package ${name} is not installed: ${INSTALL_HINT}`);
  }
}

function sourceFiles(options: EmojiSourceOptions): { emojiJson: string; sheets: Record<EmojiVendor, string>; emojibase: string; messages: string } {
  const datasource = packageDir("emoji-datasource", options.datasourceDir);
  const emojibase = packageDir("emojibase-data", options.emojibaseDir);
  const files = {
    emojiJson: path.join(datasource, "emoji.json"),
    sheets: { google: path.join(datasource, "img", "google", "sheets", "32.png"), twitter: path.join(datasource, "img", "twitter", "sheets", "32.png") },
    emojibase: path.join(emojibase, "en", "data.json"),
    messages: path.join(emojibase, "en", "messages.json"),
  };
  for (const file of [files.emojiJson, files.sheets.google, files.sheets.twitter, files.emojibase, files.messages]) {
    if (!fs.existsSync(file)) throw new Error(`emoji data file ${file} not found: ${INSTALL_HINT}`);
  }
  return files;
}

/** Blends one RGBA pixel onto white: each channel becomes (c a + 255 (255 - a)) / 255, rounded. */
export function blendOnWhite(channel: number, alpha: number): number {
  return Math.round((channel * alpha + 255 * (255 - alpha)) / 255);
}

/**
 * The 32x32 image of cell (sheetX, sheetY) of a 32 px sprite sheet, as RGB bytes on white
 * ([32, 32, 3] row-major). Reads only the cell's interior: x from 34 sheetX + 1 to
 * 34 sheetX + 32, y likewise; the 1 px border is never read.
 */
export function cropEmoji(sheet: RgbaImage, sheetX: number, sheetY: number): Uint8Array {
  for (const [axis, value] of [["sheetX", sheetX], ["sheetY", sheetY]] as const) {
    if (!Number.isInteger(value) || value < 0 || value >= EMOJI_GRID) throw new Error(`${axis} must be an integer from 0 to ${EMOJI_GRID - 1}, got ${value}`);
  }
  if (sheet.width !== EMOJI_GRID * EMOJI_CELL || sheet.height !== EMOJI_GRID * EMOJI_CELL) {
    throw new Error(`a 32 px emoji sheet is ${EMOJI_GRID * EMOJI_CELL}x${EMOJI_GRID * EMOJI_CELL} pixels, got ` +
        `${sheet.width}x${sheet.height}; pass img/<vendor>/sheets/32.png`);
  }
  const out = new Uint8Array(EMOJI_SIDE * EMOJI_SIDE * 3);
  const left = sheetX * EMOJI_CELL + 1;
  const top = sheetY * EMOJI_CELL + 1;
  for (let y = 0; y < EMOJI_SIDE; y++) {
    for (let x = 0; x < EMOJI_SIDE; x++) {
      const src = ((top + y) * sheet.width + left + x) * 4;
      const dst = (y * EMOJI_SIDE + x) * 3;
      const alpha = sheet.data[src + 3];
      for (let c = 0; c < 3; c++) out[dst + c] = blendOnWhite(sheet.data[src + c], alpha);
    }
  }
  return out;
}

/** Parses emoji.json and emojibase's data into the kept items (see the module comment). */
export function joinEmojiMetadata(
  datasource: DatasourceEntry[],
  emojibase: EmojibaseEntry[],
  groupNames: Map<number, string>,
): { items: EmojiItem[]; stats: EmojiStats } {
  const byHexcode = new Map(emojibase.map((entry) => [entry.hexcode, entry]));
  const stats: EmojiStats = {
    entries: datasource.length, droppedNoImage: 0, droppedCategory: {}, droppedNoText: 0,
    joinedByUnified: 0, joinedByNonQualified: 0, groupAgrees: 0, perCategory: EMOJI_CATEGORIES.map(() => 0),
  };
  const items: EmojiItem[] = [];
  for (const entry of [...datasource].sort((a, b) => a.sort_order - b.sort_order)) {
    if (!(entry.has_img_google && entry.has_img_twitter)) {
      stats.droppedNoImage += 1;
      continue;
    }
    const category = (EMOJI_CATEGORIES as readonly string[]).indexOf(entry.category);
    if (category < 0) {
      stats.droppedCategory[entry.category] = (stats.droppedCategory[entry.category] ?? 0) + 1;
      continue;
    }
    let text = byHexcode.get(entry.unified);
    let joinedBy: EmojiItem["joinedBy"] = "unified";
    if (!text && entry.non_qualified) {
      text = byHexcode.get(entry.non_qualified);
      joinedBy = "non_qualified";
    }
    if (!text) {
      stats.droppedNoText += 1;
      continue;
    }
    if (joinedBy === "unified") stats.joinedByUnified += 1;
    else stats.joinedByNonQualified += 1;
    if (text.group !== undefined && groupNames.get(text.group)?.toLowerCase() === entry.category.toLowerCase()) stats.groupAgrees += 1;
    stats.perCategory[category] += 1;
    items.push({
      unified: entry.unified, shortName: entry.short_name, category, sheetX: entry.sheet_x, sheetY: entry.sheet_y,
      label: text.label, tags: text.tags ?? [], joinedBy,
    });
  }
  return { items, stats };
}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch (err) {
    throw new Error(`could not parse ${file} (${(err as Error).message}): the package is damaged; ${INSTALL_HINT}`);
  }
}

function parseSources(files: ReturnType<typeof sourceFiles>): { items: EmojiItem[]; stats: EmojiStats; images: Record<EmojiVendor, Uint8Array> } {
  const messages = readJson<{ groups: { message: string; order: number }[] }>(files.messages);
  const groupNames = new Map(messages.groups.map((g) => [g.order, g.message]));
  const { items, stats } = joinEmojiMetadata(readJson<DatasourceEntry[]>(files.emojiJson), readJson<EmojibaseEntry[]>(files.emojibase), groupNames);
  const size = EMOJI_SIDE * EMOJI_SIDE * 3;
  const images = {} as Record<EmojiVendor, Uint8Array>;
  for (const vendor of EMOJI_VENDORS) {
    const sheet = PNG.sync.read(fs.readFileSync(files.sheets[vendor]));
    const bytes = new Uint8Array(items.length * size);
    items.forEach((item, i) => bytes.set(cropEmoji(sheet, item.sheetX, item.sheetY), i * size));
    images[vendor] = bytes;
  }
  return { items, stats, images };
}

/** All kept emoji with both renderings, from the cache or parsed from the packages. */
export function readEmojiArrays(options: EmojiSourceOptions = {}): EmojiArrays {
  const start = Date.now();
  const files = sourceFiles(options);
  const sources = [files.emojiJson, files.sheets.google, files.sheets.twitter, files.emojibase, files.messages].map((file) => {
    const stat = fs.statSync(file);
    return { file, size: stat.size, mtimeMs: stat.mtimeMs };
  });
  const key = { format: CACHE_FORMAT, dataset: "emoji", sources };
  const cacheFile = path.join(options.cacheDir ?? DEFAULT_CACHE_DIR, "emoji.bin");
  const cached = readCache(cacheFile, key);
  if (cached && cached.length === 3) {
    const meta = JSON.parse(Buffer.from(cached[0]).toString("utf8")) as { items: EmojiItem[]; stats: EmojiStats };
    const size = meta.items.length * EMOJI_SIDE * EMOJI_SIDE * 3;
    if (cached[1].length === size && cached[2].length === size) {
      logger.info(`emoji: read ${meta.items.length} emoji from the cache in ${Date.now() - start} ms`);
      return { ...meta, classes: [...EMOJI_CATEGORIES], images: { google: cached[1], twitter: cached[2] }, fromCache: true };
    }
  }
  const parsed = parseSources(files);
  try {
    const meta = Buffer.from(JSON.stringify({ items: parsed.items, stats: parsed.stats }), "utf8");
    writeCache(cacheFile, key, [meta, parsed.images.google, parsed.images.twitter]);
  } catch (err) {
    logger.warn(`could not write the emoji cache ${cacheFile} (${err instanceof Error ? err.message : String(err)}); loading continues without it`);
  }
  logger.info(`emoji: parsed ${parsed.items.length} emoji and cropped both sheets in ${Date.now() - start} ms`);
  return { ...parsed, classes: [...EMOJI_CATEGORIES], fromCache: false };
}

/**
 * A seeded split by emoji, stratified by category: of each category's emoji (in item order)
 * a seeded shuffle puts round(n * testFraction) in the test set. Returns sorted item indices.
 */
export function splitEmojiItems(items: readonly EmojiItem[], seed: number, testFraction = 0.25): { train: number[]; test: number[] } {
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  if (!(testFraction > 0 && testFraction < 1)) throw new Error(`testFraction must be between 0 and 1 (exclusive), got ${testFraction}`);
  const rand = mulberry32(seed);
  const train: number[] = [];
  const test: number[] = [];
  EMOJI_CATEGORIES.forEach((_, category) => {
    const members = items.flatMap((item, i) => (item.category === category ? [i] : []));
    for (let i = members.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [members[i], members[j]] = [members[j], members[i]];
    }
    const held = Math.round(members.length * testFraction);
    test.push(...members.slice(0, held));
    train.push(...members.slice(held));
  });
  return { train: train.sort((a, b) => a - b), test: test.sort((a, b) => a - b) };
}

/** The tokens of an emoji's text: its label followed by its tags. */
export function emojiTokens(item: EmojiItem): string[] {
  return tokenize([item.label, ...item.tags].join(" "));
}

/**
 * Images of `indices` from one vendor's bytes as floats in [0, 1], [n, side, side, 3]
 * row-major; side 16 averages each 2x2 block of the 32x32 picture.
 */
export function emojiPixels(bytes: Uint8Array, indices: readonly number[], side: 16 | 32): Float32Array {
  const full = EMOJI_SIDE * EMOJI_SIDE * 3;
  const out = new Float32Array(indices.length * side * side * 3);
  const factor = EMOJI_SIDE / side;
  const scale = 1 / (255 * factor * factor);
  indices.forEach((item, n) => {
    const base = item * full;
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let dy = 0; dy < factor; dy++) {
            for (let dx = 0; dx < factor; dx++) sum += bytes[base + ((y * factor + dy) * EMOJI_SIDE + x * factor + dx) * 3 + c];
          }
          out[((n * side + y) * side + x) * 3 + c] = sum * scale;
        }
      }
    }
  });
  return out;
}

/** 0/1 bag-of-words rows [n, vocabulary.length] for token lists (unknown tokens dropped). */
export function bagOfWords(tokenLists: readonly (readonly string[])[], vocabulary: readonly string[]): Float32Array {
  const column = new Map(vocabulary.map((token, i) => [token, i]));
  const out = new Float32Array(tokenLists.length * vocabulary.length);
  tokenLists.forEach((tokens, row) => {
    for (const token of tokens) {
      const j = column.get(token);
      if (j !== undefined) out[row * vocabulary.length + j] = 1;
    }
  });
  return out;
}

export interface EmojiDatasetOptions extends EmojiSourceOptions {
  /** Seeds the split by emoji. Default 0. */
  seed?: number;
  /** Fraction of each category's emoji held out for testing. Default 0.25. */
  testFraction?: number;
  /** The vendor whose rendering the image model trains on; it is tested on the other. Default "google". */
  trainVendor?: EmojiVendor;
  /** 32 (as in the sheet) or 16 (2x2 averages). Default 32. */
  imageSide?: 16 | 32;
  /** Keep tokens found in at least this many training emoji. Default 2. */
  minFrequency?: number;
  /** Keep at most this many tokens (the most frequent). Default 1000. */
  maxVocabulary?: number;
}

export const EMOJI_DATASET_DEFAULTS: Required<Omit<EmojiDatasetOptions, keyof EmojiSourceOptions>> = {
  seed: 0,
  testFraction: 0.25,
  trainVendor: "google",
  imageSide: 32,
  minFrequency: 2,
  maxVocabulary: 1000,
};

/** Inputs and labels of one split; the dataset owns the tensors. */
export interface LabelledTensors {
  x: tf.Tensor;
  /** [n] int32 category indices. */
  y: tf.Tensor1D;
  count: number;
}

export interface EmojiDataset {
  classes: string[];
  items: EmojiItem[];
  /** Item indices of the training and test emoji (row order of every split's tensors). */
  trainItems: number[];
  testItems: number[];
  trainVendor: EmojiVendor;
  testVendor: EmojiVendor;
  imageSide: 16 | 32;
  /** The bag-of-words columns. */
  vocabulary: string[];
  /** Test rows whose tokens are all outside the vocabulary. */
  emptyTextRows: number;
  /** x: [n, side, side, 3] float32 in [0, 1]. train: trainVendor; test: the other vendor; testSameVendor: trainVendor. */
  image: { train: LabelledTensors; test: LabelledTensors; testSameVendor: LabelledTensors };
  /** x: [n, vocabulary.length] float32 0/1. */
  text: { train: LabelledTensors; test: LabelledTensors };
  stats: EmojiStats;
  dispose(): void;
}

function labelled(x: tf.Tensor, labels: number[]): LabelledTensors {
  return { x, y: tf.tensor1d(Int32Array.from(labels), "int32"), count: labels.length };
}

/** The emoji image/text dataset as tensors (see the module comment for every choice). */
export async function loadEmojiDataset(options: EmojiDatasetOptions = {}): Promise<EmojiDataset> {
  const o = { ...EMOJI_DATASET_DEFAULTS, ...options };
  if (!(EMOJI_VENDORS as readonly string[]).includes(o.trainVendor)) throw new Error(`trainVendor must be one of ` +
      `${EMOJI_VENDORS.join(", ")}, got '${o.trainVendor}'`);
  if (o.imageSide !== 16 && o.imageSide !== 32) throw new Error(`imageSide must be 16 or 32, got ${o.imageSide}`);
  if (!Number.isInteger(o.minFrequency) || o.minFrequency < 1) throw new Error(`minFrequency must be a whole number >= 1, got ${o.minFrequency}`);
  if (!Number.isInteger(o.maxVocabulary) || o.maxVocabulary < 1) throw new Error(`maxVocabulary must be a whole number >= 1, got ${o.maxVocabulary}`);
  const arrays = readEmojiArrays(options);
  const { train, test } = splitEmojiItems(arrays.items, o.seed, o.testFraction);
  const testVendor: EmojiVendor = o.trainVendor === "google" ? "twitter" : "google";
  const tokens = arrays.items.map(emojiTokens);
  // Each token once per emoji, so the vocabulary's counts are numbers of training emoji.
  const vocab = buildVocabulary(train.map((i) => [...new Set(tokens[i])]), { minFrequency: o.minFrequency, maxSize: o.maxVocabulary });
  const vocabulary = vocab.tokens.slice(2); // without "<pad>" and "<unk>"
  const known = new Set(vocabulary);
  const emptyTextRows = test.filter((i) => !tokens[i].some((t) => known.has(t))).length;
  const side = o.imageSide;
  const pixels = (vendor: EmojiVendor, indices: number[]) =>
    tf.tensor4d(emojiPixels(arrays.images[vendor], indices, side), [indices.length, side, side, 3], "float32");
  const words = (indices: number[]) => tf.tensor2d(bagOfWords(indices.map((i) => tokens[i]), vocabulary), [indices.length, vocabulary.length], "float32");
  const labelsOf = (indices: number[]) => indices.map((i) => arrays.items[i].category);
  const image = {
    train: labelled(pixels(o.trainVendor, train), labelsOf(train)),
    test: labelled(pixels(testVendor, test), labelsOf(test)),
    testSameVendor: labelled(pixels(o.trainVendor, test), labelsOf(test)),
  };
  const text = { train: labelled(words(train), labelsOf(train)), test: labelled(words(test), labelsOf(test)) };
  return {
    classes: arrays.classes, items: arrays.items, trainItems: train, testItems: test, trainVendor: o.trainVendor, testVendor,
    imageSide: side, vocabulary, emptyTextRows, image, text, stats: arrays.stats,
    dispose() {
      for (const split of [image.train, image.test, image.testSameVendor, text.train, text.test]) tf.dispose([split.x, split.y]);
    },
  };
}
