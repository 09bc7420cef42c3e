/**
 * Cross-task scenarios (notebook for issue 5): two text models that solve DIFFERENT tasks
 * train side by side, so no label is shared (sharedLabels false: logit distillation and
 * mutual learning do not apply) and only MergeNet's weight-space channel can carry anything.
 *
 *   sentiment-site    the UCI sentences (src/data/sentiment.ts), one set of sentences with two
 *                     labelings: task A sentiment (2 classes), task B site (amazon / imdb /
 *                     yelp, 3 classes). `direction` says which task the source solves.
 *   brown-pos-genre   the Brown corpus (src/data/brown.ts): task C part-of-speech tagging
 *                     (12 universal tags, per token), task D genre of a passage (4 coarse
 *                     groups by default). `direction` says which is the source.
 *
 * Both models read the same kind of input (token ids over one vocabulary built from the
 * training split), but each has its own model family (src/models/text.ts), its own data
 * stream and its own loss. The source keeps all of its training data; the target trains on
 * `trainFraction` of its own (a stratified subset seeded by the run seed, for the low-data
 * sweep 0.1 / 0.3 / 1). The split itself is fixed by `splitSeed` (default 0), so every seed
 * and method is scored on the same test items. Both sides' evaluate() report { accuracy } on
 * their test split (for the tagger: per-token accuracy over real tokens).
 *
 * Optimiser (a measured choice; see data/README.md for the timings): Adam, learning rate 2e-3
 * for both models (plain tf.train.adam, one per model), batch 32, no weight decay by
 * default (`weightDecay` adds the trainer's L2 term to the gradient). Embedding models learn
 * much faster with Adam than with SGD at these sizes.
 *
 * Suggested layer pairs (`sentimentSitePairs`, `brownPosGenrePairs`): for each model family
 * an "entry" weight, the first learned map out of the word-embedding space (bow fc1, cnn
 * conv1, transformer block0_mlp1, tagger conv1), and a "head" (classifier or tag_head). The
 * embedding matrices themselves ([vocab, 64], vocab in the thousands) are left out: the
 * adapter's column tokens would be thousands wide and its projections millions of numbers.
 */
import { choiceProblem, unknownKeyProblems } from "../../config-checks";
import { tf } from "../../backend/index";
import type { ModelSide } from "../../core/loop";
import { accuracyEvaluator, sparseCrossEntropy, type LossFn } from "../../core/losses";
import { batchStream } from "../../data/batches";
import {
  BROWN_GENRE_DEFAULTS, BROWN_TAGGING_DEFAULTS, UNIVERSAL_TAGS, genreTensors, loadBrownGenre, loadBrownTagging,
  selectGenreRows, selectTaggingRows, taggingTensors, type BrownGenreDataset, type BrownTaggingDataset, type GenreGrouping, type SplitCaps,
} from "../../data/brown";
import { SENTIMENT_CLASSES, SENTIMENT_SITES, loadSentimentDataset, selectSentimentRows, sentimentTensors, type SentimentTask } from "../../data/sentiment";
import { seededSample, stratifiedSubset } from "../../data/text";
import { TEXT_FAMILIES, maskedTokenCrossEntropy, tagger, textClassifier, tokenAccuracyEvaluator, type TaggerEncoder, type TextFamily } from "../../models/text";
import { registerScenario, type ScenarioInstance } from "../scenario";

/** A suggested layer pair with the reason to try it. */
export interface SuggestedPair {
  /** Short id for tables, e.g. "entry->entry". */
  name: string;
  source: string;
  target: string;
  why: string;
}

interface CommonOptions {
  /** Fraction of the target's training data used (stratified, seeded by the run seed); default 1. */
  trainFraction?: number;
  /** Default 32. */
  batchSize?: number;
  /** Adam learning rates; default 2e-3 each. */
  sourceLearningRate?: number;
  targetLearningRate?: number;
  /** L2 decay added to both models' gradients; default 0. */
  weightDecay?: number;
  /** Seed of the train / validation / test split (not of the run); default 0. */
  splitSeed?: number;
}

const COMMON_DEFAULTS: Required<CommonOptions> = {
  trainFraction: 1,
  batchSize: 32,
  sourceLearningRate: 2e-3,
  targetLearningRate: 2e-3,
  weightDecay: 0,
  splitSeed: 0,
};

export type SentimentSiteDirection = "site->sentiment" | "sentiment->site";

export interface SentimentSiteOptions extends CommonOptions {
  /** Which task the source solves -> which the target solves; default "site->sentiment". */
  direction?: SentimentSiteDirection;
  /** Model family of each side; defaults "cnn" (source) and "bow" (target). */
  sourceModel?: TextFamily;
  targetModel?: TextFamily;
  /** Token ids per sentence; default 32. */
  maxLen?: number;
}

export const SENTIMENT_SITE_DEFAULTS: Required<SentimentSiteOptions> = {
  ...COMMON_DEFAULTS,
  direction: "site->sentiment",
  sourceModel: "cnn",
  targetModel: "bow",
  maxLen: 32,
};

export type BrownPosGenreDirection = "pos->genre" | "genre->pos";

export interface BrownPosGenreOptions extends CommonOptions {
  /** Which task the source solves -> which the target solves; default "pos->genre". */
  direction?: BrownPosGenreDirection;
  /** Family of the genre classifier; default "bow". */
  genreModel?: TextFamily;
  /** Encoder of the tagger; default "cnn". */
  taggerEncoder?: TaggerEncoder;
  /** Genre labels: "coarse" (4 groups, default) or "fine" (15 genres). */
  genres?: GenreGrouping;
  /** Sentence caps [train, validation, test] for tagging; default [8000, 1000, 2000]. */
  taggingCaps?: SplitCaps;
  /** Passage caps [train, validation, test] for genre; default [6000, 1000, 2000]. */
  genreCaps?: SplitCaps;
}

export const BROWN_POS_GENRE_DEFAULTS: Required<BrownPosGenreOptions> = {
  ...COMMON_DEFAULTS,
  direction: "pos->genre",
  genreModel: "bow",
  taggerEncoder: "cnn",
  genres: BROWN_GENRE_DEFAULTS.genres,
  taggingCaps: BROWN_TAGGING_DEFAULTS.caps,
  genreCaps: BROWN_GENRE_DEFAULTS.caps,
};

/** Validates options against their defaults: unknown keys and bad values are errors that say what to use. */
function resolveOptions<T extends object>(
  scenario: string,
  defaults: Required<T>,
  options: Partial<T>,
  choices: Partial<Record<keyof T, readonly unknown[]>>,
): Required<T> {
  const problems = optionProblemsOf(defaults, options, choices);
  if (problems.length) throw new Error(`invalid options for scenario '${scenario}':\n  - ${problems.join("\n  - ")}`);
  return { ...defaults, ...options } as Required<T>;
}

/** Every problem of the options at once (none: valid). */
function optionProblemsOf<T extends object>(defaults: Required<T>, options: Partial<T>, choices: Partial<Record<keyof T, readonly unknown[]>>): string[] {
  const problems = unknownKeyProblems(options, Object.keys(defaults), "", "option");
  const settings = { ...defaults, ...options } as Required<T>;
  for (const [key, allowed] of Object.entries(choices) as [keyof T, readonly unknown[]][]) {
    const problem = choiceProblem(String(key), settings[key], allowed);
    if (problem) problems.push(problem);
  }
  const common = settings as unknown as Required<CommonOptions>;
  if (typeof common.trainFraction !== "number" || !(common.trainFraction > 0 && common.trainFraction <= 1)) {
    problems.push(`trainFraction must be a number in (0, 1], got ${common.trainFraction}`);
  }
  if (!Number.isInteger(common.batchSize) || common.batchSize < 1) problems.push(`batchSize must be a whole number >= 1, got ${common.batchSize}`);
  for (const key of ["sourceLearningRate", "targetLearningRate"] as const) {
    if (typeof common[key] !== "number" || !(common[key] > 0)) problems.push(`${key} must be a number > 0, got ${common[key]}`);
  }
  if (typeof common.weightDecay !== "number" || !(common.weightDecay >= 0)) problems.push(`weightDecay must be a number >= 0, got ${common.weightDecay}`);
  if (!Number.isInteger(common.splitSeed)) problems.push(`splitSeed must be an integer, got ${common.splitSeed}`);
  return problems;
}

/** The "entry" weight of each family: the first learned map out of the embedding space. */
const ENTRY: Record<TextFamily, string> = { bow: "fc1/kernel", cnn: "conv1/kernel", transformer: "block0_mlp1/kernel" };
const TAGGER_ENTRY: Record<TaggerEncoder, string> = { cnn: "conv1/kernel", transformer: "block0_mlp1/kernel" };

interface PairEnds {
  entry: string;
  head: string;
  /** e.g. "the site classifier's" */
  label: string;
}

function pairsBetween(source: PairEnds, target: PairEnds): SuggestedPair[] {
  return [
    {
      name: "entry->entry", source: source.entry, target: target.entry,
      why: `the first learned map out of the word-embedding space on both sides (${source.label} and ` +
          `${target.label}): the layers nearest to what the two tasks share, the words; small adapter`,
    },
    {
      name: "head->entry", source: source.head, target: target.entry,
      why: `the released code's kind of pair: ${source.label} output layer into ${target.label} first hidden map`,
    },
    {
      name: "head->head", source: source.head, target: target.head,
      why: `output layer to output layer, the smallest adapter; the classes differ between the tasks, so no row of ` +
          `one means a row of the other (a check that structure alone does not help)`,
    },
  ];
}

/** Layer pairs worth trying on sentiment-site for these options (source -> target). */
export function sentimentSitePairs(options: SentimentSiteOptions = {}): SuggestedPair[] {
  const settings = { ...SENTIMENT_SITE_DEFAULTS, ...options };
  const [sourceTask, targetTask] = settings.direction === "site->sentiment" ? ["site", "sentiment"] : ["sentiment", "site"];
  return pairsBetween(
    { entry: ENTRY[settings.sourceModel], head: "classifier/kernel", label: `the ${sourceTask} ${settings.sourceModel}'s` },
    { entry: ENTRY[settings.targetModel], head: "classifier/kernel", label: `the ${targetTask} ${settings.targetModel}'s` },
  );
}

/** Layer pairs worth trying on brown-pos-genre for these options (source -> target). */
export function brownPosGenrePairs(options: BrownPosGenreOptions = {}): SuggestedPair[] {
  const settings = { ...BROWN_POS_GENRE_DEFAULTS, ...options };
  const tag: PairEnds = { entry: TAGGER_ENTRY[settings.taggerEncoder], head: "tag_head/kernel", label: `the ${settings.taggerEncoder} tagger's` };
  const genre: PairEnds = { entry: ENTRY[settings.genreModel], head: "classifier/kernel", label: `the genre ${settings.genreModel}'s` };
  return settings.direction === "pos->genre" ? pairsBetween(tag, genre) : pairsBetween(genre, tag);
}

/** Suggested pairs for the default options of each scenario. */
export const SENTIMENT_SITE_PAIRS: readonly SuggestedPair[] = sentimentSitePairs();
export const BROWN_POS_GENRE_PAIRS: readonly SuggestedPair[] = brownPosGenrePairs();

interface SideData {
  x: tf.Tensor;
  y: tf.Tensor;
  testX: tf.Tensor;
  testY: tf.Tensor;
}

/** A model side: Adam, its loss, a seeded stream over its training tensors, test-set evaluation. */
function makeSide(
  model: tf.LayersModel,
  data: SideData,
  loss: LossFn,
  evaluate: ModelSide["evaluate"],
  learningRate: number,
  settings: Required<CommonOptions>,
  streamSeed: number,
): ModelSide {
  return {
    model,
    optimizer: tf.train.adam(learningRate),
    weightDecay: settings.weightDecay,
    loss,
    data: batchStream(data.x, data.y, { batchSize: settings.batchSize, seed: streamSeed }),
    evaluate,
  };
}

function instance(source: ModelSide, target: ModelSide, owned: tf.Tensor[]): ScenarioInstance {
  return {
    source,
    target,
    sharedLabels: false,
    metric: "accuracy",
    dispose() {
      source.model.dispose();
      target.model.dispose();
      source.optimizer.dispose();
      target.optimizer.dispose();
      tf.dispose(owned);
    },
  };
}

/** Seeds of one run, derived from the run seed (models, streams, the target's subset). */
function runSeeds(seed: number) {
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  return { sourceModel: seed * 10 + 1, targetModel: seed * 10 + 2, sourceStream: seed * 10 + 3, targetStream: seed * 10 + 4, subset: seed * 10 + 5 };
}

const SENTIMENT_CHOICES = { direction: ["site->sentiment", "sentiment->site"], sourceModel: TEXT_FAMILIES, targetModel: TEXT_FAMILIES };
const BROWN_CHOICES = { direction: ["pos->genre", "genre->pos"], genreModel: TEXT_FAMILIES, taggerEncoder: ["cnn", "transformer"], genres: ["coarse", "fine"] };

export const sentimentSiteScenario = registerScenario<SentimentSiteOptions>({
  name: "sentiment-site",
  optionProblems: (options) => optionProblemsOf(SENTIMENT_SITE_DEFAULTS, options, SENTIMENT_CHOICES),
  description: "UCI sentences: a model of one task (site, 3 classes / sentiment, 2 classes) lends knowledge to a model of the other",
  async build(seed, options): Promise<ScenarioInstance> {
    const settings = resolveOptions("sentiment-site", SENTIMENT_SITE_DEFAULTS, options, SENTIMENT_CHOICES);
    if (!Number.isInteger(settings.maxLen) || settings.maxLen < 1) throw new Error(`invalid options for scenario 'sentiment-site': ` +
        `maxLen must be a whole number >= 1, got ${settings.maxLen}`);
    const seeds = runSeeds(seed);
    const data = loadSentimentDataset({ splitSeed: settings.splitSeed, maxLen: settings.maxLen });
    const [sourceTask, targetTask]: SentimentTask[] = settings.direction === "site->sentiment" ? ["site", "sentiment"] : ["sentiment", "site"];
    const classes = (task: SentimentTask) => (task === "site" ? SENTIMENT_SITES.length : SENTIMENT_CLASSES.length);
    const positions = data.train.indices.map((_, p) => p);
    const group = (p: number) => data.train.site[p] * SENTIMENT_CLASSES.length + data.train.sentiment[p]; // the split's six strata
    const targetTrain = selectSentimentRows(data.train, stratifiedSubset(positions, group, settings.trainFraction, seeds.subset));
    const tensorsOf = (task: SentimentTask, train: typeof data.train): SideData => {
      const { x, y } = sentimentTensors(train, task, settings.maxLen);
      const test = sentimentTensors(data.test, task, settings.maxLen);
      return { x, y, testX: test.x, testY: test.y };
    };
    const sourceData = tensorsOf(sourceTask, data.train);
    const targetData = tensorsOf(targetTask, targetTrain);
    const vocab = data.vocab.tokens.length;
    const { maxLen } = settings;
    const classifier = (kind: typeof settings.sourceModel, task: SentimentTask, seed: number) =>
      textClassifier(kind, { name: `${task}_${kind}`, vocab, maxLen, classes: classes(task), seed });
    const sourceModel = classifier(settings.sourceModel, sourceTask, seeds.sourceModel);
    const targetModel = classifier(settings.targetModel, targetTask, seeds.targetModel);
    const side = (model: tf.LayersModel, d: SideData, lr: number, streamSeed: number) =>
      makeSide(model, d, sparseCrossEntropy, accuracyEvaluator(d.testX, d.testY), lr, settings, streamSeed);
    return instance(
      side(sourceModel, sourceData, settings.sourceLearningRate, seeds.sourceStream),
      side(targetModel, targetData, settings.targetLearningRate, seeds.targetStream),
      [sourceData, targetData].flatMap((d) => [d.x, d.y, d.testX, d.testY]),
    );
  },
});

/**
 * The two Brown datasets per split options, kept by this process: they depend on no run seed,
 * and building them (split, vocabulary, encoding) took about half a second of every run's build.
 * Only read here (the builds select rows into new splits). A few option sets at most.
 */
const brownDatasets = new Map<string, { tagging: BrownTaggingDataset; genre: BrownGenreDataset }>();

function brownDatasetsFor(splitSeed: number, taggingCaps: SplitCaps, genreCaps: SplitCaps, genres: GenreGrouping): { tagging: BrownTaggingDataset; genre: BrownGenreDataset } {
  const key = JSON.stringify([splitSeed, taggingCaps, genreCaps, genres]);
  let datasets = brownDatasets.get(key);
  if (!datasets) {
    datasets = {
      tagging: loadBrownTagging({ splitSeed, caps: taggingCaps }),
      genre: loadBrownGenre({ splitSeed, caps: genreCaps, genres }),
    };
    if (brownDatasets.size >= 4) brownDatasets.clear();
    brownDatasets.set(key, datasets);
  }
  return datasets;
}

export const brownPosGenreScenario = registerScenario<BrownPosGenreOptions>({
  name: "brown-pos-genre",
  optionProblems: (options) => optionProblemsOf(BROWN_POS_GENRE_DEFAULTS, options, BROWN_CHOICES),
  description: "Brown corpus: a part-of-speech tagger and a passage-genre classifier, one lending knowledge to the other",
  async build(seed, options): Promise<ScenarioInstance> {
    const settings = resolveOptions("brown-pos-genre", BROWN_POS_GENRE_DEFAULTS, options, BROWN_CHOICES);
    const seeds = runSeeds(seed);
    const posIsSource = settings.direction === "pos->genre";
    const { tagging, genre } = brownDatasetsFor(settings.splitSeed, settings.taggingCaps, settings.genreCaps, settings.genres);
    // Same split options -> one vocabulary for both tasks (src/data/brown.ts).
    const vocab = tagging.vocab.tokens.length;

    const taggingPositions = tagging.train.ids.map((_, p) => p);
    const taggingTrain = posIsSource
      ? tagging.train
      : selectTaggingRows(
          tagging.train,
          seededSample(taggingPositions, Math.max(1, Math.round(taggingPositions.length * settings.trainFraction)), seeds.subset),
        );
    const genrePositions = genre.train.ids.map((_, p) => p);
    const genreTrain = posIsSource
      ? selectGenreRows(genre.train, stratifiedSubset(genrePositions, (p) => genre.train.genre[p], settings.trainFraction, seeds.subset))
      : genre.train;

    const tagTrain = taggingTensors(taggingTrain, tagging.maxLen);
    const tagTest = taggingTensors(tagging.test, tagging.maxLen);
    const genreTrainTensors = genreTensors(genreTrain, genre.maxLen);
    const genreTest = genreTensors(genre.test, genre.maxLen);
    const tagData: SideData = { x: tagTrain.x, y: tagTrain.y, testX: tagTest.x, testY: tagTest.y };
    const genreData: SideData = { x: genreTrainTensors.x, y: genreTrainTensors.y, testX: genreTest.x, testY: genreTest.y };

    const [tagSeed, genreSeed] = posIsSource ? [seeds.sourceModel, seeds.targetModel] : [seeds.targetModel, seeds.sourceModel];
    const encoder = settings.taggerEncoder;
    const tagModel = tagger({ name: `pos_${encoder}`, vocab, maxLen: tagging.maxLen, tags: UNIVERSAL_TAGS.length, encoder, seed: tagSeed });
    const genreModel = textClassifier(settings.genreModel, {
      name: `genre_${settings.genreModel}`,
      vocab,
      maxLen: genre.maxLen,
      classes: genre.genreNames.length,
      seed: genreSeed,
    });
    const [tagStream, genreStream] = posIsSource ? [seeds.sourceStream, seeds.targetStream] : [seeds.targetStream, seeds.sourceStream];
    const { sourceLearningRate, targetLearningRate } = settings;
    const [tagLr, genreLr] = posIsSource ? [sourceLearningRate, targetLearningRate] : [targetLearningRate, sourceLearningRate];
    const tagSide = makeSide(tagModel, tagData, maskedTokenCrossEntropy, tokenAccuracyEvaluator(tagData.testX, tagData.testY), tagLr, settings, tagStream);
    const genreSide = makeSide(genreModel, genreData, sparseCrossEntropy, accuracyEvaluator(genreData.testX, genreData.testY), genreLr, settings, genreStream);
    const owned = [tagData, genreData].flatMap((d) => [d.x, d.y, d.testX, d.testY]);
    return posIsSource ? instance(tagSide, genreSide, owned) : instance(genreSide, tagSide, owned);
  },
});
