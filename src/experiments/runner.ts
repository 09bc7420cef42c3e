/**
 * The experiment runner: one typed configuration (a scenario, its options, the methods,
 * epochs and seeds), validated at the door; every (method, seed) run trained, its result
 * written to results/runs/<experiment>/<method>/seed-<n>.json, and reused when the same
 * configuration is asked again (same hash), so re-running a notebook is fast. A result
 * file that is unreadable or belongs to another configuration is named in a warning and
 * redone; nothing else is touched.
 *
 * Runs train in this process one after another, or with `workers` > 1 (MERGENET_WORKERS,
 * `npm start -- --workers N`) in a pool of worker processes (pool.ts), or with `redis`
 * (MERGENET_REDIS, `npm start -- --redis URL`) on queue workers on any machine (queue.ts);
 * either way this process writes every result file.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { backendInfo, initBackend, tf } from "../backend/index";
import { logger } from "../log";
import { IndependentTrainer } from "../baselines/independent";
import { TrainingStopped, checkSideData, type EpochRecord, type JointLoop } from "../core/loop";
import { MergeNetTrainer } from "../core/mergenet";
import { paramRef, readMatrix } from "../core/params";
import { WeightRecorder } from "./recorder";
import { attentionRelativeEntropy } from "../core/diagnostics";
import { checkpointExists } from "../core/checkpoint";
import { makeTrainer, methodNotApplicable, methodProblems, type MethodSpec } from "./methods";
import { describeValue, unknownKeyProblems } from "../config-checks";
import { defaultWorkers, explicitWorkers, label, LocalPool, resolveThreadsPerWorker, type PoolJob, type RunExecutor } from "./pool";
import { RedisExecutor, resolveRedis } from "./queue";
import { Progress } from "./progress";
import { addToEstimate, costText, emptyEstimate, type CostEstimate, type PlannedRun } from "./cost";
import { checkResultsFolder, codeOf, tryLockRun, waitForUnlock, type LockAttempt } from "./run-lock";
import { getScenario, isBuiltInScenario, type ScenarioInstance } from "./scenario";
import type { AdapterDiagnostics, ExperimentConfig, ExperimentResult, RecordingConfig, RunResult, WeightRecord } from "./records";
import { resultsRoot } from "../paths";

/** Bump when a change to the code makes earlier cached results wrong to reuse. */
export const RUNNER_VERSION = 1;

/** Thrown by runExperiment with `cachedOnly` when some runs are not in the results folder; the message names them and what trains them. */
export class MissingRunsError extends Error {
  override name = "MissingRunsError";
}
export interface RunOptions {
  /** Retrain even when a cached result exists (default: MERGENET_FORCE=1 in the environment, so `MERGENET_FORCE=1 npm start` reruns everything). */
  force?: boolean;
  /** Where results go (default results/, or results/quick/ in quick mode). */
  resultsDir?: string;
  /** Print progress (default true). */
  progress?: boolean;
  /**
   * Worker processes that train the pending runs at once (default: MERGENET_WORKERS, else one
   * per core, defaultWorkers in pool.ts; but 1 for a scenario registered only in this process,
   * unless scenarioModules names its module). 1 trains them in this process, one after another.
   */
  workers?: number;
  /** With workers > 1: TensorFlow intra-op threads of each worker (TF_NUM_INTRAOP_THREADS; default MERGENET_WORKER_THREADS, else 1). */
  threadsPerWorker?: number;
  /**
   * With workers > 1: modules (paths) the workers import to register the experiment's
   * scenario, besides src/experiments/scenarios, which they always import. A scenario
   * registered only in this process (in a notebook cell, say) needs workers: 1 (and no `redis`).
   */
  scenarioModules?: string[];
  /**
   * Train nothing: every run must already be cached (a summary that only reads what other
   * notebooks trained). Missing runs are an error naming them and `cachedOnlyHint`.
   */
  cachedOnly?: boolean;
  /** With cachedOnly: what trains the missing runs (e.g. "run notebook 01 first"). */
  cachedOnlyHint?: string;
  /**
   * A Redis URL (redis://host:port; default MERGENET_REDIS): the pending runs go to its BullMQ
   * queue and `npm run worker -- --redis URL` processes on any machine train them (queue.ts);
   * this process still writes every result file. Overrides `workers` (but MERGENET_REDIS does
   * not override a `workers` given here: `workers: 1` keeps a notebook-only scenario in this
   * process); each queue worker uses its own thread setting (`--threads`, default 1). Redis is
   * reached only when a run is pending.
   */
  redis?: string;
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
  // Without `record` the plan is undefined, and stableStringify drops undefined keys: such hashes are unchanged.
  const key = { runnerVersion: RUNNER_VERSION, scenario: config.scenario, scenarioOptions: config.scenarioOptions, method, epochs: config.epochs, seed, record: recordingPlan(config, method, seed) };
  return crypto.createHash("sha256").update(stableStringify(key)).digest("hex").slice(0, 16);
}

/** Checks an experiment configuration before any training; messages say what to change. */
export function validateExperiment(config: ExperimentConfig): void {
  const problems: string[] = [];
  if (typeof config.name !== "string" || !/^[A-Za-z0-9_-]+$/.test(config.name)) problems.push(`name must use letters, digits, - and _ only (it names a folder); got ${JSON.stringify(config.name)}`);
  if (!Number.isInteger(config.epochs) || config.epochs < 1) problems.push(`epochs must be a whole number >= 1, got ${describeValue(config.epochs)}`);
  if (!Array.isArray(config.seeds) || config.seeds.length === 0 || !config.seeds.every(Number.isInteger)) problems.push(`seeds must be a non-empty list of integers, got ${JSON.stringify(config.seeds)}`);
  else if (new Set(config.seeds).size !== config.seeds.length) problems.push("seeds must not repeat");
  if (!config.scenarioOptions || typeof config.scenarioOptions !== "object") problems.push("scenarioOptions must be an object (use {} for none)");
  if (!Array.isArray(config.methods) || config.methods.length === 0) problems.push("methods must be a non-empty list");
  else {
    problems.push(...methodProblems(config.methods));
    if (config.record !== undefined) problems.push(...recordingProblems(config.record, config.methods));
  }
  problems.unshift(...unknownKeyProblems(config, EXPERIMENT_KEYS));
  problems.push(...scenarioProblems(config));
  if (problems.length) throw new Error(`invalid experiment '${config.name}':\n  - ${problems.join("\n  - ")}`);
}

const EXPERIMENT_KEYS = ["name", "scenario", "scenarioOptions", "methods", "epochs", "seeds", "record"];

/** An unknown scenario, or what the scenario's own check finds wrong with the options (where it has one). */
function scenarioProblems(config: ExperimentConfig): string[] {
  let scenario: ReturnType<typeof getScenario>;
  try {
    scenario = getScenario(config.scenario);
  } catch (err) {
    return [messageOf(err)];
  }
  const options = config.scenarioOptions;
  if (!options || typeof options !== "object" || !scenario.optionProblems) return [];
  return scenario.optionProblems(options).map((p) => `scenarioOptions: ${p}`);
}

/** What one run records (undefined: nothing); only this, not the whole `record`, enters the run's cache key. */
interface RecordingPlan {
  weights: string[];
  trajectory: boolean;
  phases: boolean;
}

function recordingPlan(config: ExperimentConfig, method: MethodSpec, seed: number): RecordingPlan | undefined {
  const record = config.record;
  if (!record || method.kind === "source-alone") return undefined;
  const weights = record.weights ?? [];
  const plan = { weights, trajectory: weights.length > 0 && (record.trajectories ?? []).includes(method.name) && seed === config.seeds[0], phases: record.phases ?? false };
  return plan.weights.length > 0 || plan.phases ? plan : undefined;
}

function recordingProblems(record: RecordingConfig, methods: MethodSpec[]): string[] {
  if (!record || typeof record !== "object") return ["record must be an object such as { weights: [\"fc2/kernel\"], trajectories: [\"target alone\"], phases: true }"];
  const problems: string[] = unknownKeyProblems(record, ["weights", "trajectories", "phases"], "record: ");
  const weights = record.weights ?? [];
  if (!Array.isArray(weights) || !weights.every((w) => typeof w === "string" && w.includes("/"))) problems.push(`record.weights must be a list of 'layer/weight' names, got ${JSON.stringify(record.weights)}`);
  if (record.trajectories !== undefined) {
    if (!Array.isArray(record.trajectories)) problems.push("record.trajectories must be a list of method names");
    else {
      if (weights.length === 0) problems.push("record.trajectories needs record.weights: name the weights whose trajectories to store");
      const names = new Set(methods.map((m) => m.name));
      const unknown = record.trajectories.filter((m) => !names.has(m));
      if (unknown.length) problems.push(`record.trajectories names methods that are not in the experiment: ${unknown.join(", ")}`);
    }
  }
  if (record.phases !== undefined && typeof record.phases !== "boolean") problems.push(`record.phases must be true or false, got ${JSON.stringify(record.phases)}`);
  return problems;
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

/** The folder of one method's result files, one per seed. */
function methodFolder(resultsDir: string, config: ExperimentConfig, method: MethodSpec): string {
  return path.join(resultsDir, "runs", config.name, slug(method.name));
}

export function runFile(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number): string {
  return path.join(methodFolder(resultsDir, config, method), `seed-${seed}.json`);
}

/** Adds one experiment's planned runs to `estimate`, each method's recorded times read from its folder. */
function estimateRuns(estimate: CostEstimate, config: ExperimentConfig, plan: PlannedRun[], resultsDir: string): CostEstimate {
  return addToEstimate(estimate, config, plan, (method) => methodFolder(resultsDir, config, method));
}

/** Writes JSON atomically: a temporary file beside the target, then a rename; a failed write leaves no temporary file behind (a full disk stays no fuller). */
export function writeJsonAtomic(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, `${JSON.stringify(value)}\n`);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * A cached result if the file holds a complete run of exactly this configuration. The hash
 * says which configuration the file claims; its content must agree (a file edited by hand,
 * or cut short, can keep the right hash with empty epochs), else it is damaged and redone.
 */
function readCached(file: string, hash: string, config: ExperimentConfig, method: MethodSpec, seed: number, quiet = false): RunResult | undefined {
  if (!fs.existsSync(file)) return undefined;
  const log = quiet ? { info: () => undefined, warn: () => undefined } : logger;
  let run: RunResult;
  try {
    run = JSON.parse(fs.readFileSync(file, "utf8")) as RunResult;
  } catch {
    log.warn(`result file ${file} is damaged (not valid JSON); rerunning that run only`);
    return undefined;
  }
  if (run?.configHash !== hash || run.runnerVersion !== RUNNER_VERSION) {
    log.info(`result ${file} belongs to another configuration; rerunning it`);
    return undefined;
  }
  const mismatch = cachedMismatch(run, config, method, seed);
  if (mismatch) log.warn(`result file ${file} is damaged (${mismatch}, though its hash is this configuration's); rerunning that run only`);
  return mismatch ? undefined : run;
}

/**
 * What running `configs` now will cost (src/experiments/cost.ts): saved runs, runs to train and
 * their estimated time from the recorded times of earlier runs. Reads files only; trains nothing.
 */
export function costOf(configs: ExperimentConfig | ExperimentConfig[], options: { resultsDir?: string; workers?: number } = {}): CostEstimate {
  const resultsDir = options.resultsDir ?? resultsRoot();
  const estimate = emptyEstimate(workersFor(configs, options));
  for (const config of Array.isArray(configs) ? configs : [configs]) {
    const plan = config.methods.flatMap((method) => config.seeds.map((seed) => ({ method, seed, cached: readCached(runFile(resultsDir, config, method, seed), runHash(config, method, seed), config, method, seed, true) })));
    estimateRuns(estimate, config, plan, resultsDir);
  }
  return estimate;
}

/** How a result's content contradicts the configuration it claims (undefined: it agrees). */
function cachedMismatch(run: RunResult, config: ExperimentConfig, method: MethodSpec, seed: number): string | undefined {
  if (run.seed !== seed) return `it holds seed ${run.seed}, not ${seed}`;
  if (run.method !== method.name || run.kind !== method.kind) return `it holds method '${run.method}' (${run.kind}), not '${method.name}' (${method.kind})`;
  if (!Array.isArray(run.epochs) || !run.final || typeof run.final.target !== "object") return "it lacks its epochs or final metrics";
  const epochs = run.notApplicable ? 0 : config.epochs;
  if (run.epochs.length !== epochs) return `it holds ${run.epochs.length} epochs, not ${epochs}`;
  if (!run.notApplicable && !(run.metric in run.final.target)) return `its final metrics lack '${run.metric}'`;
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

/** The first pair's diagnostics after training (see AdapterDiagnostics). */
function adapterDiagnostics(trainer: MergeNetTrainer): AdapterDiagnostics {
  const trace = trainer.inspectLink(0);
  const attentionEntropy: Record<string, number> = {};
  for (const [block, map] of Object.entries(trace.attention[0])) {
    if (map) attentionEntropy[block] = round4(attentionRelativeEntropy(map.arraySync() as number[][]));
  }
  tf.dispose(trace);
  const first = trainer.history.transfers.filter((t) => t.pair === 0 && t.direction === "forward");
  const summary = (values: number[]) => ({ mean: round4(values.reduce((a, b) => a + b, 0) / values.length), last: round4(values[values.length - 1]) });
  const cosines = first.map((t) => t.towardSource).filter((v) => Number.isFinite(v));
  const gates = Object.entries(trainer.history.epochs[trainer.history.epochs.length - 1]?.gates ?? {});
  const gate = gates.find(([key]) => key === "0:forward:0")?.[1];
  return {
    attentionEntropy,
    gate: gate === undefined ? undefined : Math.round(gate * 1e6) / 1e6,
    writeSize: first.length ? summary(first.map((t) => t.relativeChange)) : { mean: NaN, last: NaN },
    towardSource: cosines.length ? summary(cosines) : undefined,
    adapterUpdates: trainer.adapterUpdates,
    transfers: first.length,
  };
}

const round4 = (v: number): number => Math.round(v * 1e4) / 1e4;

/** Where an interrupted run's checkpoint lives; the run's hash is in the name, so a changed configuration never resumes from it. */
export function checkpointDir(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number): string {
  return path.join(resultsDir, "checkpoints", config.name, slug(method.name), `seed-${seed}-${runHash(config, method, seed)}`);
}

/** Set by the first SIGINT/SIGTERM while an experiment runs: the current run checkpoints at the end of its current step. */
let stopRequested = false;

/** Trains one run (in this process, or in a pool's worker: worker.ts) and returns its result; writes no result file. */
export async function trainOne(config: ExperimentConfig, method: MethodSpec, seed: number, progress: Pick<Progress, "epoch">, resultsDir: string): Promise<RunResult> {
  const started = Date.now();
  const scenario = getScenario(config.scenario);
  const instance = await scenario.build(seed, config.scenarioOptions);
  const base = {
    experiment: config.name, method: method.name, kind: method.kind, seed, configHash: runHash(config, method, seed),
    runnerVersion: RUNNER_VERSION, backend: backendInfo()?.name ?? "unknown", threads: process.env.TF_NUM_INTRAOP_THREADS ?? "default",
    createdAt: new Date().toISOString(), metric: instance.metric,
  };
  const reason = methodNotApplicable(method, instance);
  if (reason) {
    instance.dispose();
    return { ...base, wallSeconds: 0, notApplicable: reason, epochs: [], targetLoss: [], transfers: { step: [], relativeChange: [], gradNorm: [] }, final: { target: {}, source: {} } };
  }
  let trainer: JointLoop | undefined;
  try {
    trainer = makeTrainer(method, instance);
    const plan = recordingPlan(config, method, seed);
    // Runs that record weights along training restart from scratch when interrupted; the others
    // checkpoint at an epoch's end on SIGINT/SIGTERM and resume from there.
    const resumable = !plan;
    const ckpt = checkpointDir(resultsDir, config, method, seed);
    await resumeOrStart(trainer, method, seed, instance, resumable ? ckpt : undefined);
    const recorder = new WeightRecorder(instance.target.model, plan?.weights ?? [], plan?.trajectory ?? false);
    if (plan?.phases) trainer.startProfiling();
    const running = trainer;
    const interrupt = async (): Promise<never> => {
      if (!resumable) throw new Error(`interrupted: ${method.name} seed ${seed} records weights along training, so it starts over when run again`);
      await running.saveCheckpoint(ckpt);
      throw new Error(`interrupted: ${method.name} seed ${seed} saved at step ${running.steps} (${running.history.epochs.length} of ${config.epochs} epochs done) in ${ckpt}; run the same command again to resume`);
    };
    trainer.stopWhen = () => stopRequested;
    while (trainer.history.epochs.length < config.epochs) {
      let record: EpochRecord;
      try {
        record = await trainer.trainEpoch();
      } catch (err) {
        if (err instanceof TrainingStopped) await interrupt();
        throw err;
      }
      recorder.epochEnded();
      progress.epoch(record, config.epochs);
      if (stopRequested && trainer.history.epochs.length < config.epochs) await interrupt();
    }
    // A non-finite loss that the trainer did not recover from (and record) is an error.
    const recovered = new Set(trainer.history.divergences.map((d) => d.step));
    for (const [i, loss] of trainer.history.targetLoss.entries()) {
      if (!Number.isFinite(loss) && !recovered.has(i)) throw new Error(`the target's loss became ${loss} at step ${i}; lower a learning rate or use output 'interp'`);
    }
    const weights = recorder.finish();
    return runResult(base, started, trainer, instance, seed === config.seeds[0], weights, plan?.phases ?? false);
  } finally {
    trainer?.dispose();
    instance.dispose();
  }
}

/**
 * Resumes `trainer` from the checkpoint in `ckpt` where there is a usable one (undefined: the
 * run is not resumable), and otherwise starts it: pre-trains the source where the method asks.
 */
async function resumeOrStart(trainer: JointLoop, method: MethodSpec, seed: number, instance: ScenarioInstance, ckpt: string | undefined): Promise<void> {
  let resumed = false;
  if (ckpt !== undefined && checkpointExists(ckpt)) {
    try {
      await trainer.loadCheckpoint(ckpt);
      resumed = true;
      logger.info(`${method.name} seed ${seed}: resuming from the checkpoint at step ${trainer.steps} (after ${trainer.history.epochs.length} epochs)`);
    } catch (err) {
      // loadCheckpoint checks everything before it changes anything: the trainer is still fresh.
      logger.warn(`checkpoint ${ckpt} cannot be used (${(err as Error).message.split("\n")[0]}); that run starts over`);
      fs.rmSync(ckpt, { recursive: true, force: true });
    }
  }
  if (method.pretrainSourceEpochs && !resumed) {
    const pre = new IndependentTrainer(undefined, instance.source);
    pre.stopWhen = () => stopRequested;
    try {
      await pre.fit(method.pretrainSourceEpochs);
    } catch (err) {
      if (err instanceof TrainingStopped) throw new Error(`interrupted: ${method.name} seed ${seed} stopped while pre-training its source, so it starts over when run again`);
      throw err;
    } finally {
      pre.dispose();
    }
  }
}

/** A trained run's result file: `base` (what the run is) with what training left behind. */
function runResult(base: Omit<RunResult, "wallSeconds" | "epochs" | "targetLoss" | "transfers" | "final">, started: number, trainer: JointLoop, instance: ScenarioInstance,
  firstSeed: boolean, weights: Record<string, WeightRecord> | undefined, phases: boolean): RunResult {
  const history = trainer.history;
  const last = history.epochs[history.epochs.length - 1];
  const attention = trainer instanceof MergeNetTrainer && firstSeed ? attentionMaps(trainer, instance) : undefined;
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
    divergences: history.divergences.length ? history.divergences : undefined,
    final: { target: last?.target ?? {}, source: last?.source ?? {} },
    adapterParameters: trainer instanceof MergeNetTrainer ? trainer.adapters.reduce((sum, a) => sum + a.variables.reduce((n, v) => n + v.size, 0), 0) : undefined,
    diagnostics: trainer instanceof MergeNetTrainer && trainer.config.pairs.length > 0 ? adapterDiagnostics(trainer) : undefined,
    weights,
    phases: phases ? trainer.profile() : undefined,
  };
}

/**
 * The worker processes for these experiments: the count asked for (RunOptions.workers, else
 * MERGENET_WORKERS), else the machine's default, except that under the default an experiment
 * whose scenario only this process has registered (a notebook cell's, without
 * scenarioModules) trains here, serially: a worker could not build it.
 */
function workersFor(configs: ExperimentConfig | ExperimentConfig[], options: Pick<RunOptions, "workers" | "scenarioModules">): number {
  const asked = explicitWorkers(options.workers);
  if (asked !== undefined) return asked;
  const workersKnow = (config: ExperimentConfig): boolean => (options.scenarioModules?.length ?? 0) > 0 || isBuiltInScenario(config.scenario);
  return [configs].flat().every(workersKnow) ? defaultWorkers() : 1;
}

/**
 * Runs every (method, seed) of an experiment, reusing cached results; returns them all.
 * The backend is initialised if it was not yet.
 */
export async function runExperiment(config: ExperimentConfig, options: RunOptions = {}): Promise<ExperimentResult> {
  validateExperiment(config);
  const workers = workersFor(config, options);
  const threadsPerWorker = resolveThreadsPerWorker(options.threadsPerWorker);
  await initBackend();
  const resultsDir = options.resultsDir ?? resultsRoot();
  const jobs = config.methods.flatMap((method) => config.seeds.map((seed) => ({ method, seed })));
  const progress = new Progress(config.name, jobs.length, options.progress ?? true);
  const redis = resolveRedis(options.redis, options.workers);
  const modules = (options.scenarioModules ?? []).map((m) => path.resolve(m));
  let executor: RunExecutor | undefined;
  /** The executor for the pending runs (none: serial), made only when some run is pending, so a cached experiment needs no Redis. */
  const makeExecutor = async (): Promise<RunExecutor | undefined> => {
    if (redis) executor = await RedisExecutor.open({ url: redis, experiment: config.name, resultsDir, modules });
    else if (workers > 1) executor = new LocalPool({ workers, threadsPerWorker, modules });
    return executor;
  };
  stopRequested = false;
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopRequested) process.exit(130); // a second signal: quit at once
    stopRequested = true;
    if (executor) logger.warn(`${signal}: ${executor.stopping}`);
    else logger.warn(`${signal}: the current run saves a checkpoint after its current step, then stops (send it again to quit at once)`);
    stop.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    // The cost line spreads the time over the pool's workers; Redis workers are not known here, so it gives the serial time.
    const costWorkers = redis ? 1 : workers;
    return await runJobs(config, jobs, options, resultsDir, progress, makeExecutor, stop.signal, costWorkers);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/**
 * Builds each method's trainer on one scenario instance, without training, so an error that
 * only the models can reveal (a layer name, a rank above a matrix's dimensions, options the
 * scenario rejects) stops the experiment before its first run rather than after the runs
 * listed before the faulty method. Costs one scenario build.
 */
async function preflight(config: ExperimentConfig, methods: MethodSpec[], seed: number): Promise<void> {
  const problems: string[] = [];
  let instance: ScenarioInstance;
  try {
    instance = await getScenario(config.scenario).build(seed, config.scenarioOptions);
  } catch (err) {
    throw new Error(`invalid experiment '${config.name}': scenario '${config.scenario}' cannot be built from its scenarioOptions: ${messageOf(err)}`, { cause: err });
  }
  try {
    try {
      for (const [label, side] of [["source", instance.source], ["target", instance.target]] as const) if (label === "target" || !instance.frozenSource) checkSideData(label, side);
    } catch (err) {
      problems.push(messageOf(err)); // once, rather than once per method
      methods = [];
    }
    for (const method of methods) {
      if (methodNotApplicable(method, instance)) continue;
      let trainer: JointLoop | undefined;
      try {
        trainer = makeTrainer(method, instance);
      } catch (err) {
        problems.push(`method '${method.name}': ${messageOf(err)}`);
      } finally {
        trainer?.dispose();
      }
    }
  } finally {
    instance.dispose();
  }
  if (problems.length) throw new Error(`invalid experiment '${config.name}' (checked before any training; nothing was run):\n  - ${problems.join("\n  - ")}`);
}

/** An error's message; native TensorFlow's "Invalid TF_Status: 3\nMessage: ..." becomes its message. */
export function messageOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^Invalid TF_Status: \d+\s*Message:\s*/, "TensorFlow: ");
}

async function runJobs(config: ExperimentConfig, jobs: { method: MethodSpec; seed: number }[], options: RunOptions, resultsDir: string, progress: Progress, makeExecutor: () => Promise<RunExecutor | undefined>, stop: AbortSignal, costWorkers: number): Promise<ExperimentResult> {
  const force = options.force ?? process.env.MERGENET_FORCE === "1";
  const planned = jobs.map((job) => {
    const file = runFile(resultsDir, config, job.method, job.seed);
    return { ...job, file, cached: force ? undefined : readCached(file, runHash(config, job.method, job.seed), config, job.method, job.seed) };
  });
  const pending = planned.filter((job) => !job.cached);
  if (pending.length && options.cachedOnly) {
    const names = pending.slice(0, 5).map((job) => `'${job.method.name}' seed ${job.seed}`).join(", ");
    throw new MissingRunsError(`[${config.name}] ${pending.length} of ${planned.length} runs are not in ${resultsDir} (${names}${pending.length > 5 ? ", ..." : ""}) and this call trains nothing (cachedOnly); ${options.cachedOnlyHint ?? "run the experiment first"}`);
  }
  if (pending.length) {
    checkResultsFolder(resultsDir);
    // Before anything trains: what it will cost (saved runs, runs to train, time from recorded runs).
    progress.note(costText(estimateRuns(emptyEstimate(costWorkers), config, planned, resultsDir)));
  }
  const executor = pending.length ? await makeExecutor() : undefined; // before the preflight: an unreachable Redis fails at once
  if (pending.length) await preflight(config, [...new Set(pending.map((job) => job.method))], pending[0].seed);
  if (executor) return runWithExecutor(config, planned, resultsDir, progress, executor, stop, force);
  const runs: RunResult[] = [];
  let trainedHere = 0;
  for (const { method, seed, file, cached } of planned) {
    if (cached) {
      runs.push(cached);
      progress.cached(`${method.name} seed ${seed}`, cached.wallSeconds);
      continue;
    }
    const { run, trained } = await trainUnderLock(config, method, seed, file, resultsDir, progress, force);
    runs.push(run);
    if (trained) {
      trainedHere += 1;
      progress.done(runSummary(run));
    } else progress.cached(`${method.name} seed ${seed}`, run.wallSeconds);
  }
  progress.finish();
  warnMixedThreads(config, runs, trainedHere);
  return { config, runs };
}

/**
 * Warns when the runs of an experiment that trained some of them just now come from more
 * than one TensorFlow thread setting (RunResult.threads). The cache key leaves the setting out
 * (a cached run is reused whatever the setting), but the results of two settings differ in
 * their last bits: say so rather than mix them in silently.
 */
function warnMixedThreads(config: ExperimentConfig, runs: RunResult[], trained: number): void {
  if (trained === 0) return;
  const counts = new Map<string, number>();
  for (const run of runs) if (!run.notApplicable) counts.set(run.threads ?? "unrecorded", (counts.get(run.threads ?? "unrecorded") ?? 0) + 1);
  if (counts.size < 2) return;
  const setting = (threads: string): string => (threads === "default" ? "the default setting (all cores)" : threads === "unrecorded" ? "an unrecorded setting (older results)" : `${threads} thread${threads === "1" ? "" : "s"}`);
  const list = [...counts].map(([threads, n]) => `${n} with ${setting(threads)}`).join(", ");
  logger.warn(`[${config.name}] the runs mix TensorFlow thread settings (${list}): results of different settings differ in their last bits, so these runs are not bit-identical to a run of one setting; retrain them all with one setting with RunOptions.force (MERGENET_FORCE=1) if that matters`);
}

/**
 * Trains one run holding its lock (run-lock.ts), so that another process running the same
 * experiment into the same folder does not train it too. While another live process holds
 * it, waits, then takes that process's result (`trained` false), or trains the run itself
 * if that process stopped without one.
 */
async function trainUnderLock(config: ExperimentConfig, method: MethodSpec, seed: number, file: string, resultsDir: string, progress: Progress, force: boolean): Promise<{ run: RunResult; trained: boolean }> {
  const label = `${method.name} seed ${seed}`;
  let waited = false;
  for (;;) {
    const lock = lockRun(file, label, resultsDir);
    if (!lock.release) {
      await waitForUnlock(file, () => stopRequested);
      waited = true;
      continue;
    }
    try {
      // Another process may have finished the run since the plan was made (quiet: the plan reported what it found).
      const done = waited || !force ? readCached(file, runHash(config, method, seed), config, method, seed, !waited) : undefined;
      if (done) return { run: done, trained: false };
      progress.start(label);
      let run: RunResult;
      try {
        run = await trainOne(config, method, seed, progress, resultsDir);
      } catch (err) {
        if (err instanceof Error && err.message.startsWith("interrupted:")) throw err;
        // Name the run that failed; the original error (and its stack) is the cause.
        throw new Error(`[${config.name}] '${method.name}' seed ${seed} failed: ${messageOf(err)}`, { cause: err });
      }
      saveRun(resultsDir, config, method, seed, file, run);
      return { run, trained: true };
    } finally {
      lock.release();
    }
  }
}

/** tryLockRun, saying what it finds: a stale lock taken over, or another live process that holds the run (the caller waits for it). */
function lockRun(file: string, label: string, resultsDir: string): LockAttempt {
  const lock = tryLockRun(file, (owner) => logger.warn(`${label}: taking over the lock of process ${owner.pid}, which no longer runs`));
  if (!lock.release) {
    const owner = lock.owner ?? { pid: NaN, host: "unknown", since: "unknown" };
    logger.warn(`${label}: another process (pid ${owner.pid} on ${owner.host}, since ${owner.since}) is training this run into ${resultsDir}; waiting for its result rather than training it twice`);
  }
  return lock;
}

/** Writes a finished run's result file (atomically, in this process); its checkpoint, if any, is no longer needed. */
function saveRun(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number, file: string, run: RunResult): void {
  try {
    writeJsonAtomic(file, run);
  } catch (err) {
    throw new Error(`[${config.name}] '${method.name}' seed ${seed} trained, but its result could not be written to ${file} (${codeOf(err)}); the results folder must be writable with room to spare`, { cause: err });
  }
  fs.rmSync(checkpointDir(resultsDir, config, method, seed), { recursive: true, force: true });
}

function runSummary(run: RunResult): string {
  return run.notApplicable ? "not applicable" : `${run.metric} ${run.final.target[run.metric]?.toFixed(4) ?? "-"}`;
}

/**
 * The pending runs trained by an executor (the worker pool, the queue's workers); this process
 * writes each result as it arrives. Each run is locked here (run-lock.ts, as a serial run is)
 * before it goes to the executor, and released once its file is written, or when the
 * experiment fails or stops: another process running the same experiment into the same folder
 * (a second notebook, `npm start`) then neither trains nor writes it too. Runs that another
 * live process holds are waited for meanwhile and read from its file; those it left without a
 * result (it stopped or died) go to the executor in a further round.
 */
async function runWithExecutor(config: ExperimentConfig, planned: { method: MethodSpec; seed: number; file: string; cached?: RunResult }[], resultsDir: string, progress: Progress, executor: RunExecutor, stop: AbortSignal, force: boolean): Promise<ExperimentResult> {
  const runs: (RunResult | undefined)[] = planned.map((job) => job.cached);
  for (const { method, seed, cached } of planned) if (cached) progress.cached(`${method.name} seed ${seed}`, cached.wallSeconds);
  const locks = new Map<number, () => void>();
  const release = (key: number): void => {
    locks.get(key)?.();
    locks.delete(key);
  };
  const backend = backendInfo()?.name ?? "unknown";
  /** Runs another process held when last looked at: their result is read from the file, never reported as "rerunning". */
  const waited = new Set<number>();
  let trainedHere = 0;
  let todo = planned.flatMap((job, key) => (job.cached ? [] : [key]));
  try {
    while (todo.length) {
      const mine: PoolJob[] = [];
      const theirs: number[] = [];
      for (const key of todo) {
        const { method, seed, file } = planned[key];
        const name = `${method.name} seed ${seed}`;
        const lock = lockRun(file, name, resultsDir);
        if (!lock.release) {
          theirs.push(key);
          continue;
        }
        // Another process may have finished the run since the plan was made (quiet: the plan reported what it found).
        const hash = runHash(config, method, seed);
        const done = waited.has(key) || !force ? readCached(file, hash, config, method, seed, !waited.has(key)) : undefined;
        if (done) {
          lock.release();
          runs[key] = done;
          progress.cached(name, done.wallSeconds);
          continue;
        }
        locks.set(key, lock.release);
        mine.push({ key, config, method, seed, resultsDir, configHash: hash, runnerVersion: RUNNER_VERSION, backend });
      }
      if (mine.length) progress.setWorkers(Math.min(executor.workers, mine.length));
      let failed = false;
      const trained = mine.length
        ? executor
            .run(mine, {
              started: (job, worker) => progress.start(label(job), worker),
              epoch: (job, record, epochs) => progress.epoch(record, epochs, label(job)),
              finished: (job, run) => {
                saveRun(resultsDir, config, job.method, job.seed, planned[job.key].file, run);
                release(job.key);
                runs[job.key] = run;
                trainedHere += 1;
                progress.done(runSummary(run), label(job));
              },
            }, stop)
            .catch((err: unknown) => {
              failed = true; // stops the waits below
              throw err;
            })
        : Promise.resolve();
      // One run at a time: all of them are needed before the next round anyway.
      const waits = (async () => {
        for (const key of theirs) await waitForUnlock(planned[key].file, () => stop.aborted || failed);
      })();
      const outcomes = await Promise.allSettled([trained, waits]);
      const rejected = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
      if (rejected) throw rejected.reason;
      theirs.forEach((key) => waited.add(key));
      todo = theirs;
    }
  } finally {
    [...locks.keys()].forEach(release); // a failure or a stop: the runs not written are free again
  }
  progress.finish();
  warnMixedThreads(config, runs as RunResult[], trainedHere);
  return { config, runs: runs as RunResult[] };
}

/** Reads `MERGENET_QUICK`: notebooks and `npm start -- --quick` use it to pick smaller settings. */
export function isQuick(): boolean {
  return process.env.MERGENET_QUICK === "1";
}

/** `quick` in quick mode, `full` otherwise. */
export function pick<T>(quick: T, full: T): T {
  return isQuick() ? quick : full;
}
