/**
 * MergeNet in TypeScript: the public API.
 *
 * The core (parameter views, low-rank forms, the adapter, the joint trainer) sits beside
 * small models, real data loaders, baselines, the experiment runner with its verdicts, and
 * plot builders. Import from here (a notebook cell imports `./src`, through src.ts at the
 * repository root; a script in examples/ imports `../src`); the modules behind it may move.
 *
 * Design choices:
 * - Everything the notebooks use is here, and the notebooks import nothing else from src/
 *   (test/imports.test.ts). What only the project's own machinery needs stays out: the
 *   benchmark's workload and models (bench-mnist.ts, benchSource/benchTarget), tfjs
 *   work-arounds (wasm gradients, native kernels), the runner's executors, locks and cache
 *   keys. The one work-around exported is `momentum` (tf.train.momentum without its leak),
 *   since a model side built in a notebook or a script needs an optimiser.
 * - Each notebook's experiments (src/experiments/configs/) are a namespace named after their
 *   file (`crossArchitecture.cnnToMlp()`, `ablations.REFERENCE`): the files share names
 *   (deltaOf, FALLBACK_DELTA, MAIN_METHODS) and are read as one notebook's set. So is the
 *   analysis of finished runs (`analysis.gainStats`), which notebook 04 uses as one toolbox.
 * - Importing this module registers every scenario with the runner (scenarios/index.ts), so
 *   `runExperiment` and `getScenario` work after this one import.
 */
import "./experiments/scenarios/index";

export { tf, initBackend, backendInfo, type BackendInfo, type BackendName } from "./backend/index";

// Core: views, low-rank forms, adapter, write-back, trainer.
export {
  paramRef,
  matrixParamNames,
  readMatrix,
  writeMatrix,
  toMatrix,
  fromMatrix,
  factorRefs,
  describeMatrices,
  type ParamRef,
  type ViewKind,
} from "./core/params";
export { truncatedSvd, svdSplit, svdMerge, type SvdMethod, type TruncatedSvd } from "./core/lowrank";
export { ParameterAdapter } from "./core/adapter/parameter-adapter";
export { resolveAdapterConfig, type AdapterConfig } from "./core/adapter/config";
export { WriteBack, OUTPUT_MODES, type OutputMode } from "./core/writeback";
export {
  MergeNetTrainer,
  resolveMergeNetConfig,
  MERGENET_DEFAULTS,
  type MergeNetConfig,
  type LayerPair,
  type LowRankForm,
  type UpdateRule,
  type SourceInput,
} from "./core/mergenet";
export type { ModelSide, EpochRecord, TransferRecord, TrainerHistory, JointLoop } from "./core/loop";
export { AdamW, type AdamWConfig } from "./core/adamw";
export { sparseCrossEntropy, accuracy, accuracyEvaluator, type LossFn } from "./core/losses";
export { momentum } from "./core/momentum"; // the optimiser a model side trains with (tf.train.momentum without its leak)
export { attentionRelativeEntropy, writeCosine } from "./core/diagnostics";

// Baselines.
export { IndependentTrainer } from "./baselines/independent";
export { DistillationTrainer, MutualLearningTrainer, type DistillationConfig } from "./baselines/distillation";
export { SharingTrainer, type SharingConfig } from "./baselines/sharing";

// Models and data.
export { cnn, mlp, vit, saveModel, loadModel } from "./models/zoo";
export { lowRankDense, lowRankConv2d, LowRankDense, LowRankConv2D } from "./models/lowrank-layers";
export { loadImageDataset, type ImageDatasetName, type ImageData } from "./data/images";
export { batchStream } from "./data/batches";
export type { Batch, BatchStream, PairedInput } from "./core/batch-stream";
export { permuteHiddenUnits } from "./models/permute";
export { tokenize, decodeIds, type Vocabulary } from "./data/text";
export { loadSentimentDataset, SENTIMENT_SITES, SENTIMENT_CLASSES, type SentimentDataset } from "./data/sentiment";
export { loadBrownTagging, loadBrownGenre, UNIVERSAL_TAGS, BROWN_COARSE_GENRES, type BrownTaggingDataset, type BrownGenreDataset } from "./data/brown";
export { readEmojiArrays, loadEmojiDataset, EMOJI_CATEGORIES, type EmojiArrays, type EmojiDataset } from "./data/emoji";
export { synthesizeSpokenDigits, loadSpokenDigits, type SpokenDigitsData } from "./data/audio";

// Experiments.
export { runExperiment, costOf, isQuick, pick, type RunOptions } from "./experiments/runner";
export { costText, machineText, type CostEstimate } from "./experiments/cost";
export type { ExperimentConfig, ExperimentResult, RunResult, AdapterDiagnostics } from "./experiments/records";
export type { MethodSpec } from "./experiments/methods";
export { registerScenario, getScenario, scenarioNames, type BuildContext, type Scenario, type ScenarioInstance } from "./experiments/scenario";
export { sentimentSitePairs, brownPosGenrePairs } from "./experiments/scenarios/cross-task";
export { summarize, summaryTable, curveRows, barRows, transferRows, attentionOf, pairedDifference } from "./experiments/results";
export {
  stats,
  formatStats,
  confidenceInterval,
  classify,
  intervalText,
  verdictText,
  type Stats,
  type Comparison,
  type Verdict,
} from "./experiments/statistics";
export {
  compare, matchedControls, variantVerdicts, variantWords, verdictTable, effectRows, referenceEffectRows, smallestEffect, smallestEffectOf,
  countVerdicts, countsText, seedCount, narrowed, mergedVerdicts, confirmCandidates, MAIN_SEEDS,
  type VariantVerdict, type SmallestEffect, type VerdictCounts, type MatchedControl, type Confirmation,
} from "./experiments/verdicts";
export {
  positiveControlVerdicts,
  verdictRows,
  diagnosticsSummary,
  chooseForConfirmation,
  type CandidateVerdict,
} from "./experiments/positive-control-verdicts";
export { projectComparisons, type ProjectComparisons, type ScenarioComparisons } from "./experiments/summary";
export * as analysis from "./experiments/analysis";

// Each notebook's experiments, one namespace per file of src/experiments/configs/.
export * as crossArchitecture from "./experiments/configs/cross-architecture";
export * as crossTask from "./experiments/configs/cross-task";
export * as crossModality from "./experiments/configs/cross-modality";
export * as ablations from "./experiments/configs/ablations";
export * as positiveControl from "./experiments/configs/positive-control";
export {
  emojiVendorExamples, vendorTiles, spokenDigitExamples, emojiPredictionComparison, predictionTiles, EMOJI_CATEGORY_SHORT,
} from "./experiments/cross-modal-examples";

// Plots and notebook display.
export {
  learningCurves, groupedBars, heatmap, attentionHeatmap, annotatedHeatmap, scatterPath, effectsPlot, spectrumChart, readableBars,
  methodOrder,
  type CurveRow, type BarRow, type EffectRow, type PathRow, type SpectrumRow,
} from "./plots/specs";
export { imageMosaic, spectrogramPanels, type ImageTile } from "./plots/images";
export type { VegaLiteSpec, PlotlyFigure } from "./plots/render";
export { showVegaLite, showPlotly, showTable, showMarkdown } from "./notebook/display";
