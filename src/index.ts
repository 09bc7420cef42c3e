/**
 * MergeNet in TypeScript: the public API.
 *
 * The core (parameter views, low-rank forms, the adapter, the joint trainer) sits beside
 * small models, real data loaders, baselines and plot builders. Import from here; the
 * modules behind it may move.
 */
export { tf, initBackend, backendInfo, type BackendInfo, type BackendName } from "./backend/index";

// Core: views, low-rank forms, adapter, write-back, trainer.
export { paramRef, matrixParamNames, describeMatrices, readMatrix, writeMatrix, toMatrix, fromMatrix, factorRefs, type ParamRef, type ViewKind } from "./core/params";
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
export { momentum, LeakFreeMomentum } from "./core/momentum";
export { sparseCrossEntropy, accuracy, accuracyEvaluator, type LossFn } from "./core/losses";
export { attentionRelativeEntropy, writeCosine } from "./core/diagnostics";

// Baselines.
export { IndependentTrainer } from "./baselines/independent";
export { DistillationTrainer, MutualLearningTrainer, type DistillationConfig } from "./baselines/distillation";
export { SharingTrainer, type SharingConfig } from "./baselines/sharing";

// Models and data.
export { cnn, mlp, vit, benchSource, benchTarget, saveModel, loadModel, BENCH_PAIR } from "./models/zoo";
export { lowRankDense, lowRankConv2d, LowRankDense, LowRankConv2D } from "./models/lowrank-layers";
export { loadImageDataset, benchMnist, type ImageDatasetName, type ImageData } from "./data/images";
export { batchStream } from "./data/batches";
export type { Batch, BatchStream, PairedInput } from "./core/batch-stream";
export { permuteHiddenUnits } from "./models/permute";

// Experiments.
export { benchWorkload, BENCH_MODES, type BenchMode } from "./experiments/bench-mnist";
export { runExperiment, isQuick, pick } from "./experiments/runner";
export type { ExperimentConfig, ExperimentResult, RunResult, AdapterDiagnostics } from "./experiments/records";
export type { MethodSpec } from "./experiments/methods";
export { registerScenario, getScenario, scenarioNames, type Scenario, type ScenarioInstance } from "./experiments/scenario";
export { summarize, summaryTable, curveRows, barRows, transferRows, pairedDifference } from "./experiments/results";
export { stats, confidenceInterval, classify, intervalText, verdictText, type Comparison, type Verdict } from "./experiments/statistics";
export {
  compare, matchedControls, variantVerdicts, variantWords, verdictTable, effectRows, referenceEffectRows, smallestEffect, smallestEffectOf,
  countVerdicts, countsText, seedCount, narrowed, mergedVerdicts, MAIN_SEEDS,
  type VariantVerdict, type SmallestEffect, type VerdictCounts, type MatchedControl,
} from "./experiments/verdicts";
export { positiveControlVerdicts, verdictRows, diagnosticsSummary, type CandidateVerdict } from "./experiments/positive-control-verdicts";

// Plots and notebook display.
export { learningCurves, groupedBars, heatmap, scatterPath, effectsPlot, type EffectRow } from "./plots/specs";
export { showVegaLite, showPlotly, showTable, showMarkdown } from "./notebook/display";
