/**
 * The experiment runner: one typed configuration (a scenario, its options, the methods,
 * epochs and seeds), validated at the door; every (method, seed) run trained, its result
 * written to results/runs/<experiment>/<method>/seed-<n>.json, and reused when the same
 * configuration is asked again (same hash), so re-running a notebook is fast. A result
 * file that is unreadable or belongs to another configuration is named in a warning and
 * redone; nothing else is touched.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { backendInfo, initBackend, tf } from "../backend";
import { logger } from "../log";
import { IndependentTrainer } from "../baselines/independent";
import type { EpochRecord, JointLoop } from "../core/joint";
import { MergeNetTrainer } from "../core/trainer";
import { paramRef, readMatrix } from "../core/params";
import { makeTrainer, methodNotApplicable, validateMethods, type MethodSpec } from "./methods";
import { Progress } from "./progress";
import { getScenario, type ScenarioInstance } from "./scenario";
import { resultsRoot } from "../paths";

/** Bump when a change to the code makes earlier cached results wrong to reuse. */
export const RUNNER_VERSION = 1;


export interface ExperimentConfig {
  /** Folder name under results/runs/; letters, digits, - and _. */
  name: string;
  scenario: string;
  scenarioOptions: Record<string, unknown>;
  methods: MethodSpec[];
  epochs: number;
  seeds: number[];
}

export interface RunResult {
  experiment: string;
  method: string;
  kind: MethodSpec["kind"];
  seed: number;
  configHash: string;
  runnerVersion: number;
  backend: string;
  createdAt: string;
  wallSeconds: number;
  /** Set when the method does not apply to the scenario: the reason, in words; nothing was trained. */
  notApplicable?: string;
  metric: string;
  epochs: EpochRecord[];
  /** The target's training loss, one value per step. */
  targetLoss: number[];
  /** Transfers (MergeNet, naive sharing): step, relative change of the written weight, adapter gradient norm. */
  transfers: { step: number[]; relativeChange: number[]; gradNorm: number[] };
  /** MergeNet, first seed only: layer 0's attention maps (averaged over heads) of the first pair's adapter after training. */
  attention?: Record<string, number[][]>;
  /** Final target and source metrics (last epoch). */
  final: { target: Record<string, number>; source: Record<string, number> };
}

export interface ExperimentResult {
  config: ExperimentConfig;
  runs: RunResult[];
}

export interface RunOptions {
  /** Retrain even when a cached result exists. */
  force?: boolean;
  /** Where results go (default results/, or results/quick/ in quick mode). */
  resultsDir?: string;
  /** Print progress (default true). */
  progress?: boolean;
}

/** JSON with sorted keys, so equal configurations hash equally. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function runHash(config: ExperimentConfig, method: MethodSpec, seed: number): string {
  const key = { runnerVersion: RUNNER_VERSION, scenario: config.scenario, scenarioOptions: config.scenarioOptions, method, epochs: config.epochs, seed };
  return crypto.createHash("sha256").update(stableStringify(key)).digest("hex").slice(0, 16);
}

/** Checks an experiment configuration before any training; messages say what to change. */
export function validateExperiment(config: ExperimentConfig): void {
  const problems: string[] = [];
  if (typeof config.name !== "string" || !/^[A-Za-z0-9_-]+$/.test(config.name)) problems.push(`name must use letters, digits, - and _ only (it names a folder); got ${JSON.stringify(config.name)}`);
  if (!Number.isInteger(config.epochs) || config.epochs < 1) problems.push(`epochs must be a whole number >= 1, got ${config.epochs}`);
  if (!Array.isArray(config.seeds) || config.seeds.length === 0 || !config.seeds.every(Number.isInteger)) problems.push(`seeds must be a non-empty list of integers, got ${JSON.stringify(config.seeds)}`);
  else if (new Set(config.seeds).size !== config.seeds.length) problems.push("seeds must not repeat");
  if (!config.scenarioOptions || typeof config.scenarioOptions !== "object") problems.push("scenarioOptions must be an object (use {} for none)");
  if (!Array.isArray(config.methods) || config.methods.length === 0) problems.push("methods must be a non-empty list");
  if (problems.length) throw new Error(`invalid experiment '${config.name}':\n  - ${problems.join("\n  - ")}`);
  getScenario(config.scenario);
  validateMethods(config.methods);
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

export function runFile(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number): string {
  return path.join(resultsDir, "runs", config.name, slug(method.name), `seed-${seed}.json`);
}

/** Writes JSON atomically: a temporary file beside the target, then a rename. */
export function writeJsonAtomic(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(value)}\n`);
  fs.renameSync(tmp, file);
}

/** A cached result if the file holds a complete run of exactly this configuration. */
function readCached(file: string, hash: string): RunResult | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    const run = JSON.parse(fs.readFileSync(file, "utf8")) as RunResult;
    if (run.configHash === hash && run.runnerVersion === RUNNER_VERSION && Array.isArray(run.epochs) && run.final) return run;
    logger.info(`result ${file} belongs to another configuration; rerunning it`);
  } catch {
    logger.warn(`result file ${file} is damaged (not valid JSON); rerunning that run only`);
  }
  return undefined;
}

/** The first pair's adapter attention maps for the current weights (layer 0, averaged over heads). */
function attentionMaps(trainer: MergeNetTrainer, instance: ScenarioInstance): Record<string, number[][]> | undefined {
  const pair = trainer.config.pairs[0];
  if (!pair || (pair.form ?? "full") !== "full" || trainer.config.sourceInput !== "model") return undefined;
  const adapter = trainer.adapters[0];
  const source = readMatrix(paramRef(instance.source.model, pair.source));
  const target = readMatrix(paramRef(instance.target.model, pair.target));
  const trace = adapter.inspect(source, target);
  const maps: Record<string, number[][]> = {};
  for (const [block, map] of Object.entries(trace.attention[0])) {
    if (map) maps[block] = (map.arraySync() as number[][]).map((row) => row.map((v) => Math.round(v * 1e4) / 1e4));
  }
  tf.dispose([source, target, trace]);
  return maps;
}

async function trainOne(config: ExperimentConfig, method: MethodSpec, seed: number, progress: Progress): Promise<RunResult> {
  const started = Date.now();
  const scenario = getScenario(config.scenario);
  const instance = await scenario.build(seed, config.scenarioOptions);
  const base = {
    experiment: config.name, method: method.name, kind: method.kind, seed, configHash: runHash(config, method, seed),
    runnerVersion: RUNNER_VERSION, backend: backendInfo()?.name ?? "unknown", createdAt: new Date().toISOString(), metric: instance.metric,
  };
  const reason = methodNotApplicable(method, instance);
  if (reason) {
    instance.dispose();
    return { ...base, wallSeconds: 0, notApplicable: reason, epochs: [], targetLoss: [], transfers: { step: [], relativeChange: [], gradNorm: [] }, final: { target: {}, source: {} } };
  }
  let trainer: JointLoop | undefined;
  try {
    if (method.pretrainSourceEpochs) {
      const pre = new IndependentTrainer(undefined, instance.source);
      await pre.fit(method.pretrainSourceEpochs);
      pre.dispose();
    }
    trainer = makeTrainer(method, instance);
    const history = await trainer.fit(config.epochs, (record) => progress.epoch(record, config.epochs));
    for (const [i, loss] of history.targetLoss.entries()) {
      if (!Number.isFinite(loss)) throw new Error(`the target's loss became ${loss} at step ${i}; lower a learning rate or use output 'interp'`);
    }
    const last = history.epochs[history.epochs.length - 1];
    const attention = trainer instanceof MergeNetTrainer && seed === config.seeds[0] ? attentionMaps(trainer, instance) : undefined;
    return {
      ...base,
      wallSeconds: (Date.now() - started) / 1000,
      epochs: history.epochs,
      targetLoss: history.targetLoss.map((v) => Math.round(v * 1e5) / 1e5),
      transfers: {
        step: history.transfers.map((t) => t.step),
        relativeChange: history.transfers.map((t) => t.relativeChange),
        gradNorm: history.transfers.map((t) => t.gradNorm),
      },
      attention,
      final: { target: last?.target ?? {}, source: last?.source ?? {} },
    };
  } finally {
    trainer?.dispose();
    instance.dispose();
  }
}

/**
 * Runs every (method, seed) of an experiment, reusing cached results; returns them all.
 * The backend is initialised if it was not yet.
 */
export async function runExperiment(config: ExperimentConfig, options: RunOptions = {}): Promise<ExperimentResult> {
  validateExperiment(config);
  await initBackend();
  const resultsDir = options.resultsDir ?? resultsRoot();
  const jobs = config.methods.flatMap((method) => config.seeds.map((seed) => ({ method, seed })));
  const progress = new Progress(config.name, jobs.length, options.progress ?? true);
  const runs: RunResult[] = [];
  for (const { method, seed } of jobs) {
    const file = runFile(resultsDir, config, method, seed);
    const hash = runHash(config, method, seed);
    const cached = options.force ? undefined : readCached(file, hash);
    if (cached) {
      runs.push(cached);
      progress.cached(`${method.name} seed ${seed}`);
      continue;
    }
    progress.start(`${method.name} seed ${seed}`);
    const run = await trainOne(config, method, seed, progress);
    writeJsonAtomic(file, run);
    runs.push(run);
    progress.done(run.notApplicable ? "not applicable" : `${run.metric} ${run.final.target[run.metric]?.toFixed(4) ?? "-"}`);
  }
  progress.finish();
  return { config, runs };
}

/** Reads `MERGENET_QUICK`: notebooks and `npm start -- --quick` use it to pick smaller settings. */
export function isQuick(): boolean {
  return process.env.MERGENET_QUICK === "1";
}

/** `quick` in quick mode, `full` otherwise. */
export function pick<T>(quick: T, full: T): T {
  return isQuick() ? quick : full;
}
