/**
 * What an experiment is and what its runs leave behind: the configuration (ExperimentConfig),
 * one run's result file (RunResult) and an experiment's results. Types only, so that the
 * runner, its executors (pool.ts, queue.ts), the tables (results.ts) and the analyses read
 * one definition without importing each other.
 */
import type { EpochRecord } from "../core/loop";
import type { MethodSpec } from "./methods";

export interface ExperimentConfig {
  /** Folder name under results/runs/; letters, digits, - and _. */
  name: string;
  scenario: string;
  scenarioOptions: Record<string, unknown>;
  methods: MethodSpec[];
  epochs: number;
  seeds: number[];
  /** Optional recordings for analysis (notebook 04); part of every run's cache key when set. */
  record?: RecordingConfig;
}

/**
 * What a run records beyond its metrics. Weights are read from the model trained in the
 * target's slot, as [out, in] views; `source-alone` runs record nothing (they train no target).
 */
export interface RecordingConfig {
  /** Target weights (`layer/weight`) whose singular values are stored before and after training, in every run. */
  weights?: string[];
  /** Methods whose first-seed run also stores each of `weights` before training and after every epoch (for PCA trajectories). */
  trajectories?: string[];
  /** Store the trainer's wall milliseconds per phase of a step (its profile), for cost per step. */
  phases?: boolean;
}

export interface RunResult {
  experiment: string;
  method: string;
  kind: MethodSpec["kind"];
  seed: number;
  configHash: string;
  runnerVersion: number;
  backend: string;
  /** TensorFlow's intra-op thread setting of the process (TF_NUM_INTRAOP_THREADS), or "default". */
  threads?: string;
  /**
   * The processor that trained the run (run-files.ts processorId: model name, and on Linux its
   * family, model and stepping). Another processor may round TensorFlow's kernels differently, so
   * a run reproduces to the last bit on its own kind of processor. Absent in older result files.
   */
  processor?: string;
  createdAt: string;
  wallSeconds: number;
  /**
   * Set when this result is a copy of a twin run's (twin-runs.ts: the same training under another
   * experiment's or method's name): the twin's result file, relative to the results folder.
   */
  copiedFrom?: string;
  /** Set when the method does not apply to the scenario: the reason, in words; nothing was trained. */
  notApplicable?: string;
  metric: string;
  /**
   * One record per epoch. The source's metrics are in the last epoch's only (`{}` before it):
   * results read no other, and evaluating the source every epoch cost up to 40 % of a run.
   * Result files written before this rule hold them at every epoch (the same values).
   */
  epochs: EpochRecord[];
  /** The target's training loss, one value per step. */
  targetLoss: number[];
  /** Transfers (MergeNet, naive sharing): step, relative change of the written weight, adapter gradient norm. */
  transfers: { step: number[]; relativeChange: number[]; gradNorm: number[] };
  /** MergeNet, first seed only: layer 0's attention maps (averaged over heads) of the first pair's adapter after training. */
  attention?: Record<string, number[][]>;
  /** Steps whose loss became NaN or infinite and were recovered from (restored state, halved adapter learning rate). */
  divergences?: { step: number; restoredFrom: number; action: string }[];
  /** Final target and source metrics (last epoch). */
  final: { target: Record<string, number>; source: Record<string, number> };
  /** MergeNet: trainable parameters of its adapters (the write-back gates, one number each, not counted). */
  adapterParameters?: number;
  /** With `record.weights`: per weight, its spectra before and after training (and its trajectory where asked). */
  weights?: Record<string, WeightRecord>;
  /** With `record.phases`: wall milliseconds and calls per phase of a step, over the whole run (pre-training excluded). */
  phases?: Record<string, { ms: number; calls: number }>;
  /** MergeNet: what its first pair's adapter did (src/core/diagnostics.ts), every seed. */
  diagnostics?: AdapterDiagnostics;
}

/**
 * Whether the adapter attends, writes, and writes toward the source; for the first pair's
 * forward link. Attention: layer 0, head-averaged, at the run's end, on exactly what the
 * adapter reads (under a control: its stand-in). Write size and direction: over the run's
 * transfers of that pair.
 */
export interface AdapterDiagnostics {
  /** Per enabled block, H / log(keys) of the head-averaged attention (1 = uniform). */
  attentionEntropy: Record<string, number>;
  /** The write-back gate g at the end (interp, residual); absent for replace and matched. */
  gate?: number;
  /** ‖W' − T‖ / ‖T‖: mean over transfers and the last one. */
  writeSize: { mean: number; last: number };
  /** cos(W' − T, S − T) toward the source model's own weight: mean and last; absent where the pair's shapes differ. */
  towardSource?: { mean: number; last: number };
  /** AdamW updates of all adapters over the run. */
  adapterUpdates: number;
  /** Transfers of the first pair (forward). */
  transfers: number;
}

export interface ExperimentResult {
  config: ExperimentConfig;
  runs: RunResult[];
}

/** What the runner stores per recorded weight of a run (RunResult.weights). */
export interface WeightRecord {
  /** The weight's [out, in] view shape. */
  shape: [number, number];
  /** Singular values of the [out, in] view, descending, before the first step and after the last. */
  singularValues: { before: number[]; after: number[] };
  /** Trajectory runs only: the view flattened row-major, before training (index 0) and after each epoch. */
  trajectory?: number[][];
}
