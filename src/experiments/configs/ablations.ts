/**
 * Notebook 04's experiments: which parts of MergeNet matter, and how sensitive it is, on
 * notebook 01's CNN → MLP MNIST scenario ("image-cnn-to-x", target: 1,000 images).
 *
 * Every variant changes one thing of one reference run, `MergeNet`: the released code's kind
 * of pair (source classifier [10, 128] → target fc2 [128, 256]), `full` form, one adapter layer
 * with 8 heads and spectral norm, `interp` write-back, `hypernet` rule, cycle 2, adapter AdamW
 * lr 1e-3, one-way, source learning alongside.
 *
 * Layout, chosen so that runs are shared and the budget holds (the runner caches by
 * experiment folder, scenario options, method, epochs and seed):
 * - `ablations()`: one experiment ("04-ablations") holding everything that runs on the default
 *   scenario options, so target alone, the reference and its random-source control are trained
 *   once and serve every question. It records the paired target weight (spectra for every run,
 *   per-epoch trajectories for three methods, first seed) and each run's phase timings.
 * - `cycleLrGrid()`: the cycle × adapter-lr grid ("04-grid"), its own folder because its epochs
 *   differ in default mode (see gridEpochs).
 * - `factorizedRanks()`: one experiment per rank ("04-factorized-rN"): the models themselves are
 *   built with W = B·A layers, so target alone is re-trained at each rank.
 * - `sourceCapacity()`: one experiment per source size ("04-source-<size>").
 *
 * Quick mode (`MERGENET_QUICK=1`) trains one seed for one epoch on a trimmed set of variants
 * (grid 2×2, two ranks, four layer pairs, ...): it checks the pipeline, its numbers are not results.
 */
import type { AdapterBlocks } from "../../core/adapter/config";
import type { LayerPair, MergeNetConfig } from "../../core/mergenet";
import type { MethodSpec } from "../methods";
import { mergenet } from "./preset";
import { isQuick, pick } from "../runner";
import { type ExperimentConfig } from "../records";
import { MAIN_SEEDS, narrowed } from "../verdicts";
import { IMAGE_PAIRS, type ImagePairOptions } from "../scenarios/cross-architecture";

export const ALONE = "target alone";
export const PAIR_ONLY = "pair (no adapter)";
export const REFERENCE = "MergeNet";
export const CONTROL = "control: random source";
/** The second control (docs/METHOD.md §3b, the permuted-source control): the live source weight, its entries shuffled by one fixed permutation. */
export const PERMUTED = "control: permuted source";
/** The reference's layer pair: source classifier [10, 128] → target fc2 [128, 256]. */
export const REFERENCE_PAIR: LayerPair = { ...IMAGE_PAIRS.mlp.released };
/** The target weight whose trajectory and spectra are recorded (the reference pair's target). */
export const PAIRED_WEIGHT = REFERENCE_PAIR.target;
/** Source pre-training epochs (over its 10,000 images) for the frozen-source variant: 3 as in notebook 01; in quick mode 1 over 3,000. */
export const pretrainEpochs = (): number => pick(1, 3);

const SCENARIO = "image-cnn-to-x";

/** The main comparison on MAIN_SEEDS (ten): the reference beside both its controls, and target alone. */
export const MAIN_METHODS = [ALONE, REFERENCE, CONTROL, PERMUTED, "logit KD (pre-trained source)"];
/** ablations() narrowed to MAIN_METHODS on ten seeds (one in quick mode). */
export function ablationsMain(): ExperimentConfig {
  return narrowed(ablations(), MAIN_METHODS, pick([0], [...MAIN_SEEDS]));
}

/** The distillation reference that sets δ (a fifth of its gain), run on the ablations' own budget. */
export const KD = "logit KD (pre-trained source)";
/** δ's fallback, should distillation gain nothing here. */
export const FALLBACK_DELTA = { delta: 0.005, reason: "half an accuracy point (distillation gains nothing here to scale it by)" };

export const seeds = (): number[] => pick([0], [0, 1, 2]);
export const epochs = (): number => pick(1, 6);

export function scenarioOptions(extra: ImagePairOptions = {}): ImagePairOptions {
  return { dataset: "mnist", target: "mlp", sourceTrain: pick(3000, 10000), targetTrain: 1000, testImages: pick(1000, 2000), ...extra };
}


export const controlOf = (name: string): string => `control: ${name}`;

/** A variant and its matched random-source control (identical but for what the adapter reads). */
function withControl(name: string, extra: Partial<MergeNetConfig> = {}, more: { pretrainSourceEpochs?: number } = {}): MethodSpec[] {
  return [mergenet(name, REFERENCE_PAIR, extra, more), mergenet(controlOf(name), REFERENCE_PAIR, { ...extra, sourceInput: "random" }, more)];
}

// ---- 1. cycle × adapter learning rate --------------------------------------------------

export const gridCycles = (): number[] => pick([1, 4], [1, 2, 4, 8, 16]);
export const gridLearningRates = (): number[] => pick([1e-2, 1e-3], [1e-1, 1e-2, 1e-3, 1e-4]);
/** The grid's epochs: fewer than the other questions' in default mode, to fit 20 cells × 3 seeds in the budget. */
export const gridEpochs = (): number => pick(1, 4);
export const gridMethod = (cycle: number, learningRate: number): string => `cycle ${cycle}, lr ${learningRate.toExponential(0)}`;

export const gridControl = (cycle: number, learningRate: number): string => controlOf(gridMethod(cycle, learningRate));

export function cycleLrGrid(): ExperimentConfig {
  const cell = (cycle: number, lr: number): MethodSpec[] => withControl(gridMethod(cycle, lr), { cycle, adapterOptimizer: { learningRate: lr } });
  const cells = gridCycles().flatMap((cycle) => gridLearningRates().flatMap((lr) => cell(cycle, lr)));
  return {
    name: "04-grid",
    scenario: SCENARIO,
    scenarioOptions: { ...scenarioOptions() },
    methods: [{ name: ALONE, kind: "target-alone" }, ...cells],
    epochs: gridEpochs(),
    seeds: seeds(),
  };
}

// ---- 2. low-rank form and rank ---------------------------------------------------------

/** The ranks the issue asks for. */
export const RANKS = [1, 2, 4, 8, 16, 32];
/** The smaller side of the reference pair's smallest matrix (the source classifier [10, 128]): no form can have a higher rank. */
export const RANK_LIMIT = 10;
/** Ranks run: those of RANKS within RANK_LIMIT (quick mode: two of them). */
export const usableRanks = (): number[] => pick([2, 8], RANKS.filter((r) => r <= RANK_LIMIT));
export const svdMethod = (rank: number): string => `svd rank ${rank}`;
/** The random-source control of the svd form at a rank: the same adapters fed random factors. */
export const svdControl = (rank: number): string => controlOf(svdMethod(rank));
export const FACTORIZED = "MergeNet factorized";
export const FACTORIZED_CONTROL = controlOf(FACTORIZED);

/** One experiment per rank: models whose paired layers are W = B·A at that rank, alone, with MergeNet and with its random-source control. */
export function factorizedRanks(): ExperimentConfig[] {
  return usableRanks().map((rank) => ({
    name: `04-factorized-r${rank}`,
    scenario: SCENARIO,
    scenarioOptions: { ...scenarioOptions({ factorized: { rank, source: ["classifier"], target: ["fc2"] } }) },
    methods: [
      { name: ALONE, kind: "target-alone" },
      mergenet(FACTORIZED, { source: "classifier", target: "fc2", form: "factorized" }),
      mergenet(FACTORIZED_CONTROL, { source: "classifier", target: "fc2", form: "factorized" }, { sourceInput: "random" }),
    ],
    epochs: epochs(),
    seeds: seeds(),
    record: { phases: true },
  }));
}

// ---- 3. which layer pair ---------------------------------------------------------------

/**
 * Early, middle and late matrices of each model. The source's fc1 ([128, 3136]) is left out: its
 * adapter has 20-30 M parameters and costs 10-20× the reference per step.
 */
export const SOURCE_LAYERS = ["conv1", "conv2", "classifier"];
export const TARGET_LAYERS = ["fc1", "fc2", "classifier"];
/** The layer pairs run (quick mode: four of them). */
export const layerPairs = (): [string, string][] => {
  const all = SOURCE_LAYERS.flatMap((s) => TARGET_LAYERS.map((t) => [s, t] as [string, string]));
  return isQuick() ? all.filter(([s, t]) => (s === "classifier" || s === "conv2") && (t === "fc2" || t === "classifier")) : all;
};
/** The method of a layer pair; the reference pair is the reference run itself. */
export const pairMethod = (source: string, target: string): string =>
  `${source}/kernel` === REFERENCE_PAIR.source && `${target}/kernel` === REFERENCE_PAIR.target ? REFERENCE : `pair ${source} -> ${target}`;
/** The random-source control of a layer pair's method. */
export const pairControl = (source: string, target: string): string =>
  pairMethod(source, target) === REFERENCE ? CONTROL : controlOf(pairMethod(source, target));

// ---- 4. adapter architecture -----------------------------------------------------------

const BLOCKS: [keyof AdapterBlocks, string][] = [["rowsRows", "rows_rows"], ["rowsCols", "rows_cols"], ["colsRows", "cols_rows"], ["colsCols", "cols_cols"]];

/** Adapter variants, each differing from the reference (1 layer, 8 heads, spectral norm, all four blocks, mean) in one setting. */
export function adapterVariants(): MethodSpec[] {
  const layers = pick([2], [2, 3]).flatMap((n) => withControl(`adapter ${n} layers`, { adapter: { layers: n } }));
  const heads = pick([2], [1, 2, 4]).flatMap((h) => withControl(`adapter ${h} heads`, { adapter: { layers: 1, heads: h } }));
  const blocks = BLOCKS.slice(0, pick(1, 4)).flatMap(([key, block]) => withControl(`without ${block}`, { adapter: { layers: 1, blocks: { [key]: false } } }));
  return [
    ...layers,
    ...heads,
    ...withControl("no spectral norm", { adapter: { layers: 1, spectralNorm: false } }),
    ...blocks,
    ...(isQuick() ? [] : withControl("learned block weighting", { adapter: { layers: 1, blockWeighting: "learned" } })),
  ];
}

// ---- 5. update rule --------------------------------------------------------------------

export const EXACT = "exact rule";
export const EXACT_CONTROL = controlOf(EXACT);

// ---- 6. direction, frozen source, source capacity --------------------------------------

export const TWO_WAY = "two-way";
export const FROZEN = "frozen pre-trained source";

/** Source sizes beside the default CNN (filters [32, 64], fc1 128: 0.42 M parameters); the target MLP has 0.24 M. */
export const SOURCE_SIZES: Record<string, Pick<ImagePairOptions, "sourceFilters" | "sourceHidden"> & { parameters: string }> = {
  equal: { sourceFilters: [16, 32], sourceHidden: 128, parameters: "0.21 M" },
  larger: { sourceFilters: [32, 64], sourceHidden: 512, parameters: "1.6 M" },
};
export const sourceSizes = (): string[] => pick(["equal"], ["equal", "larger"]);

/** One experiment per source size: target alone, the reference and its control beside that source. */
export function sourceCapacity(): ExperimentConfig[] {
  return sourceSizes().map((size) => {
    const { sourceFilters, sourceHidden } = SOURCE_SIZES[size];
    return {
      name: `04-source-${size}`,
      scenario: SCENARIO,
      scenarioOptions: { ...scenarioOptions({ sourceFilters, sourceHidden }) },
      methods: [{ name: ALONE, kind: "target-alone" }, mergenet(REFERENCE, REFERENCE_PAIR), mergenet(CONTROL, REFERENCE_PAIR, { sourceInput: "random" })],
      epochs: epochs(),
      seeds: seeds(),
    };
  });
}

// ---- 7. transfer only early ------------------------------------------------------------

export const transferEpochsK = (): number[] => pick([1], [1, 3]);
export const earlyMethod = (k: number): string => `transfer first ${k} epoch${k > 1 ? "s" : ""}`;

// ---- the shared experiment -------------------------------------------------------------

/** Everything on the default scenario options (questions 2 to 8 and the parameter-space view). */
export function ablations(): ExperimentConfig {
  const pairs = layerPairs().flatMap(([s, t]) => {
    if (pairMethod(s, t) === REFERENCE) return [];
    const pair = { source: `${s}/kernel`, target: `${t}/kernel` };
    return [mergenet(pairMethod(s, t), pair), mergenet(pairControl(s, t), pair, { sourceInput: "random" })];
  });
  const methods: MethodSpec[] = [
    { name: ALONE, kind: "target-alone" },
    { name: PAIR_ONLY, kind: "pair" },
    { name: KD, kind: "kd", pretrainSourceEpochs: pretrainEpochs() },
    mergenet(REFERENCE, REFERENCE_PAIR),
    mergenet(CONTROL, REFERENCE_PAIR, { sourceInput: "random" }),
    mergenet(PERMUTED, REFERENCE_PAIR, { sourceInput: "permuted" }),
    ...usableRanks().flatMap((rank) => [
      mergenet(svdMethod(rank), { ...REFERENCE_PAIR, form: "svd", rank }),
      mergenet(svdControl(rank), { ...REFERENCE_PAIR, form: "svd", rank }, { sourceInput: "random" }),
    ]),
    ...pairs,
    ...adapterVariants(),
    ...withControl(EXACT, { rule: "exact" }),
    ...withControl(TWO_WAY, { direction: "two-way" }),
    // The frozen source's control is pre-trained too: its random matrix takes the pre-trained weight's std.
    ...withControl(FROZEN, {}, { pretrainSourceEpochs: pretrainEpochs() }),
    ...transferEpochsK().flatMap((k) => withControl(earlyMethod(k), { transferEpochs: k })),
  ];
  return {
    name: "04-ablations",
    scenario: SCENARIO,
    scenarioOptions: { ...scenarioOptions() },
    methods,
    epochs: epochs(),
    seeds: seeds(),
    record: { weights: [PAIRED_WEIGHT], trajectories: [ALONE, REFERENCE, CONTROL], phases: true },
  };
}
