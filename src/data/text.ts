/**
 * Text to integer ids: a tokenizer, a vocabulary built from training text, and fixed-length
 * encoding, shared by every text dataset of the project (src/data/sentiment.ts,
 * src/data/brown.ts).
 *
 * Tokenizer (`tokenize`), choices recorded here:
 *   - lower-cases the text (`toLowerCase`, locale-independent);
 *   - typographic apostrophes (U+2018, U+2019, U+02BC) become the ASCII `'`;
 *   - a token is a maximal run of letters and digits (Unicode classes L and N), where an
 *     apostrophe BETWEEN two letters/digits stays inside the token: "don't" and "phone's" are
 *     one token each; a leading or trailing apostrophe is dropped ("'quoted'" -> "quoted",
 *     "dogs'" -> "dogs");
 *   - everything else (spaces, punctuation, hyphens, symbols) separates tokens and is dropped:
 *     "slow-moving" -> "slow", "moving"; "45 minutes.MAJOR" -> "45", "minutes", "major".
 *   Dropping punctuation is a choice for sentence classification, where "!!!" or "..." would
 *   mostly add noise to a bag of words; Brown's tagging keeps its own tokens (src/data/brown.ts
 *   normalises them with `normalizeToken` only, since punctuation has tags there).
 *
 * Vocabulary (`buildVocabulary`): counts tokens over the TRAINING split only (so nothing of
 * the validation or test text leaks into the model's inputs), keeps tokens seen at least
 * `minFrequency` times (default 2), optionally only the `maxSize` most frequent. Ids:
 *   0 = PAD_TOKEN "<pad>" (padding; the models mask it), 1 = UNK_TOKEN "<unk>" (any token
 *   outside the vocabulary), then the kept tokens by descending count, ties broken by code-unit
 *   order of the token, so the same text always gives the same ids.
 *
 * Encoding (`encodeTokens`): a token list becomes exactly `maxLen` ids. Longer lists are
 * truncated at the END (the first `maxLen` tokens are kept: a sentence's opening usually
 * carries its subject, and POS tags stay aligned with their tokens); shorter ones are padded
 * with 0 at the END (post-padding), so position i is always the i-th token.
 *
 * Seeded index helpers shared by the text datasets: `stratifiedSplit` (train / validation /
 * test within each stratum), `stratifiedSubset` (a fraction of each stratum, for low-data
 * runs) and `seededSample` (a fixed-size cap). All use mulberry32 (src/util/random.ts) and
 * return ascending index lists, so a split depends on its seed only.
 */
import { tf } from "../backend/index";
import { mulberry32 } from "../util/random";

export const PAD_TOKEN = "<pad>";
export const UNK_TOKEN = "<unk>";
export const PAD_ID = 0;
export const UNK_ID = 1;

/** Letters/digits with apostrophes only between them; `u` flag for Unicode classes. */
const TOKEN_PATTERN = /[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*/gu;
const TYPOGRAPHIC_APOSTROPHES = /[\u2018\u2019\u02bc]/g;

/** Lower-cases one already-separated token and unifies apostrophes (no splitting). */
export function normalizeToken(token: string): string {
  return token.toLowerCase().replace(TYPOGRAPHIC_APOSTROPHES, "'");
}

/** Splits raw text into lower-case tokens (see the module comment for the rules). */
export function tokenize(text: string): string[] {
  if (typeof text !== "string") throw new Error(`tokenize expects a string, got ${typeof text}`);
  return normalizeToken(text).match(TOKEN_PATTERN) ?? [];
}

/** Token strings by id (`tokens[0]` = "<pad>", `tokens[1]` = "<unk>") and the reverse map. */
export interface Vocabulary {
  readonly tokens: readonly string[];
  readonly ids: ReadonlyMap<string, number>;
  /** Training-split count of each token by id (0 for "<pad>"; the count of dropped tokens for "<unk>"). */
  readonly counts: readonly number[];
}

export interface VocabularyOptions {
  /** Keep tokens seen at least this often in the training text; default 2. */
  minFrequency?: number;
  /** Keep at most this many tokens besides "<pad>" and "<unk>" (the most frequent); default no limit. */
  maxSize?: number;
}

/** Builds a vocabulary from the token lists of the training split (see the module comment). */
export function buildVocabulary(trainingTokens: Iterable<readonly string[]>, options: VocabularyOptions = {}): Vocabulary {
  const minFrequency = options.minFrequency ?? 2;
  const maxSize = options.maxSize ?? Infinity;
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new Error(`minFrequency must be a whole number >= 1, got ${minFrequency}`);
  if (maxSize !== Infinity && (!Number.isInteger(maxSize) || maxSize < 1)) throw new Error(`maxSize must be a whole number >= 1 (or left out), got ${maxSize}`);
  const counts = new Map<string, number>();
  for (const list of trainingTokens) {
    for (const token of list) counts.set(token, (counts.get(token) ?? 0) + 1);
  }
  counts.delete(PAD_TOKEN);
  counts.delete(UNK_TOKEN);
  const ranked = [...counts.entries()]
    .filter(([, count]) => count >= minFrequency)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, maxSize);
  const keptTotal = ranked.reduce((sum, [, count]) => sum + count, 0);
  const allTotal = [...counts.values()].reduce((sum, count) => sum + count, 0);
  const tokens = [PAD_TOKEN, UNK_TOKEN, ...ranked.map(([token]) => token)];
  const ids = new Map(tokens.map((token, id) => [token, id]));
  return { tokens, ids, counts: [0, allTotal - keptTotal, ...ranked.map(([, count]) => count)] };
}

function checkMaxLen(maxLen: number): void {
  if (!Number.isInteger(maxLen) || maxLen < 1) throw new Error(`maxLen must be a whole number >= 1, got ${maxLen}`);
}

/** Ids of `tokens`, truncated or padded at the end to exactly `maxLen` (unknown tokens -> 1). */
export function encodeTokens(vocab: Vocabulary, tokens: readonly string[], maxLen: number): Int32Array {
  checkMaxLen(maxLen);
  const out = new Int32Array(maxLen); // zeros = padding
  const n = Math.min(maxLen, tokens.length);
  for (let i = 0; i < n; i++) out[i] = vocab.ids.get(tokens[i]) ?? UNK_ID;
  return out;
}

/** Tokens of `ids` up to the first padding id (for inspection and tests). */
export function decodeIds(vocab: Vocabulary, ids: ArrayLike<number>): string[] {
  const out: string[] = [];
  for (let i = 0; i < ids.length && ids[i] !== PAD_ID; i++) {
    const token = vocab.tokens[ids[i]];
    if (token === undefined) throw new Error(`id ${ids[i]} at position ${i} is outside the vocabulary (size ${vocab.tokens.length})`);
    out.push(token);
  }
  return out;
}

/** Fraction of the tokens in `lists` that the vocabulary does not know (maps to "<unk>"). */
export function unknownRate(vocab: Vocabulary, lists: Iterable<readonly string[]>): number {
  let unknown = 0;
  let total = 0;
  for (const list of lists) {
    for (const token of list) {
      total += 1;
      if (!vocab.ids.has(token)) unknown += 1;
    }
  }
  return total === 0 ? 0 : unknown / total;
}

/**
 * Rows of equal length (e.g. `encodeTokens` outputs, or per-token labels) stacked into one
 * [rows, maxLen] int32 tensor; the caller disposes it. An empty list needs `maxLen`.
 */
export function toIdTensor(rows: readonly Int32Array[], maxLen?: number): tf.Tensor2D {
  const width = maxLen ?? rows[0]?.length;
  if (width === undefined) throw new Error("toIdTensor: no rows and no maxLen; pass maxLen for an empty list");
  const flat = new Int32Array(rows.length * width);
  rows.forEach((row, i) => {
    if (row.length !== width) throw new Error(`toIdTensor: row ${i} has ${row.length} ids, expected ${width}; encode every row with the same maxLen`);
    flat.set(row, i * width);
  });
  return tf.tensor2d(flat, [rows.length, width], "int32");
}

/** Integer labels as a [n] int32 tensor; the caller disposes it. */
export function toLabelTensor(labels: ArrayLike<number>): tf.Tensor1D {
  return tf.tensor1d(Int32Array.from(labels), "int32");
}

/** Seeded, stratified train / validation / test index lists (each sorted ascending). */
export interface SplitIndices {
  train: number[];
  validation: number[];
  test: number[];
}

export interface SplitFractions {
  train: number;
  validation: number;
  /** The rest, 1 - train - validation. */
}

function checkFraction(label: string, value: number, allowZero: boolean): void {
  if (typeof value !== "number" || !(allowZero ? value >= 0 : value > 0) || value > 1) {
    throw new Error(`${label} must be a number in ${allowZero ? "[0, 1]" : "(0, 1]"}, got ${value}`);
  }
}

/** `items` grouped by stratum key, keys in ascending order (so the draw order is fixed). */
function strata(items: readonly number[], strataOf: (item: number) => number | string): (readonly number[])[] {
  const groups = new Map<number | string, number[]>();
  for (const item of items) {
    const key = strataOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return [...groups.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((key) => groups.get(key)!);
}

/** A copy of `items` in seeded random order (Fisher-Yates on `rand`). */
function shuffled(items: readonly number[], rand: () => number): number[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * Splits the items 0..strataKeys.length-1 into train / validation / test, stratified: within
 * each stratum (equal key) the items are shuffled with a generator seeded by `seed`, then the
 * first round(n * train) go to train, the next round(n * validation) to validation, the rest
 * to test. So every split keeps the strata's proportions, and the split depends on `seed` only.
 */
export function stratifiedSplit(strataKeys: readonly (number | string)[], fractions: SplitFractions, seed: number): SplitIndices {
  checkFraction("train fraction", fractions.train, false);
  checkFraction("validation fraction", fractions.validation, true);
  if (fractions.train + fractions.validation >= 1) throw new Error(`train (${fractions.train}) + validation ` +
      `(${fractions.validation}) fractions must leave a test split (sum below 1)`);
  if (!Number.isInteger(seed)) throw new Error(`split seed must be an integer, got ${seed}`);
  const rand = mulberry32(seed);
  const out: SplitIndices = { train: [], validation: [], test: [] };
  const items = strataKeys.map((_, i) => i);
  for (const group of strata(items, (i) => strataKeys[i])) {
    const order = shuffled(group, rand);
    const nTrain = Math.round(order.length * fractions.train);
    const nValidation = Math.round(order.length * fractions.validation);
    out.train.push(...order.slice(0, nTrain));
    out.validation.push(...order.slice(nTrain, nTrain + nValidation));
    out.test.push(...order.slice(nTrain + nValidation));
  }
  const ascending = (a: number, b: number) => a - b;
  return { train: out.train.sort(ascending), validation: out.validation.sort(ascending), test: out.test.sort(ascending) };
}

/**
 * A seeded subset of `items` holding `fraction` of each stratum (round(n * fraction), at
 * least one per stratum), sorted ascending. fraction 1 returns all items.
 */
export function stratifiedSubset(items: readonly number[], strataOf: (item: number) => number | string, fraction: number, seed: number): number[] {
  checkFraction("fraction", fraction, false);
  if (!Number.isInteger(seed)) throw new Error(`subset seed must be an integer, got ${seed}`);
  if (fraction === 1) return [...items].sort((a, b) => a - b);
  const rand = mulberry32(seed);
  const out: number[] = [];
  for (const group of strata(items, strataOf)) {
    const keep = Math.max(1, Math.round(group.length * fraction));
    out.push(...shuffled(group, rand).slice(0, keep));
  }
  return out.sort((a, b) => a - b);
}

/** The first `count` items of a seeded shuffle of `items`, sorted ascending (all when count >= length). */
export function seededSample(items: readonly number[], count: number, seed: number): number[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`sample size must be a whole number >= 1, got ${count}`);
  if (!Number.isInteger(seed)) throw new Error(`sample seed must be an integer, got ${seed}`);
  if (count >= items.length) return [...items].sort((a, b) => a - b);
  return shuffled(items, mulberry32(seed)).slice(0, count).sort((a, b) => a - b);
}
