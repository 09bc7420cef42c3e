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
 *
 * The call path goes down: runExperiment validates the configuration and resolves its
 * scenario once, plans the runs against their files (run-files.ts), builds every method once
 * (preflight), then trains each pending run here (train-run.ts) or hands it to an executor.
 */
import * as fs from "fs";
import * as path from "path";
import { backendInfo, initBackend } from "../backend/index";
import { logger, messageOf } from "../log";
import { checkSideData, type EpochRecord, type JointLoop } from "../core/loop";
import { makeTrainer, methodNotApplicable, methodProblems, type MethodSpec } from "./methods";
import { describeValue, unknownKeyProblems } from "../config-checks";
import { defaultWorkers, explicitWorkers, label, LocalPool, resolveThreadsPerWorker, type PoolJob, type RunExecutor } from "./pool";
import { RedisExecutor, resolveRedis } from "./queue";
import { Progress } from "./progress";
import { addToEstimate, costText, emptyEstimate, type CostEstimate, type PlannedRun } from "./cost";
import { checkResultsFolder, codeOf, tryLockRun, waitForUnlock, type LockAttempt } from "./run-lock";
import { checkpointDir, methodFolder, readCached, RUNNER_VERSION, runFile, runHash, writeJsonAtomic } from "./run-files";
import { trainOne } from "./train-run";
import { copyTwin, indexRun } from "./twin-runs";
import { getScenario, isBuiltInScenario, type Scenario, type ScenarioInstance } from "./scenario";
import type { ExperimentConfig, ExperimentResult, RecordingConfig, RunResult } from "./records";
import { resultsRoot } from "../paths";

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
   * not override a `workers` given here, and does not apply to a scenario registered only in
   * this process without `scenarioModules`: that trains here); each queue worker uses its own
   * thread setting (`--threads`, default 1). Redis is reached only when a run is pending.
   */
  redis?: string;
}

/**
 * Checks an experiment configuration before any training; messages say what to change.
 * Returns its scenario, resolved once here for the whole experiment.
 */
export function validateExperiment(config: ExperimentConfig): Scenario {
  const problems: string[] = [];
  if (typeof config.name !== "string" || !/^[A-Za-z0-9_-]+$/.test(config.name)) {
    problems.push(`name must use letters, digits, - and _ only (it names a folder); got ${JSON.stringify(config.name)}`);
  }
  if (!Number.isInteger(config.epochs) || config.epochs < 1) problems.push(`epochs must be a whole number >= 1, got ${describeValue(config.epochs)}`);
  if (!Array.isArray(config.seeds) || config.seeds.length === 0 || !config.seeds.every(Number.isInteger)) {
    problems.push(`seeds must be a non-empty list of integers, got ${JSON.stringify(config.seeds)}`);
  } else if (new Set(config.seeds).size !== config.seeds.length) problems.push("seeds must not repeat");
  if (!config.scenarioOptions || typeof config.scenarioOptions !== "object") problems.push("scenarioOptions must be an object (use {} for none)");
  if (!Array.isArray(config.methods) || config.methods.length === 0) problems.push("methods must be a non-empty list");
  else {
    problems.push(...methodProblems(config.methods));
    if (config.record !== undefined) problems.push(...recordingProblems(config.record, config.methods));
  }
  problems.unshift(...unknownKeyProblems(config, EXPERIMENT_KEYS));
  const { scenario, problems: scenarioIssues } = checkScenario(config);
  problems.push(...scenarioIssues);
  if (problems.length || !scenario) throw new Error(`invalid experiment '${config.name}':\n  - ${problems.join("\n  - ")}`);
  return scenario;
}

const EXPERIMENT_KEYS = ["name", "scenario", "scenarioOptions", "methods", "epochs", "seeds", "record"];

/** The experiment's scenario, with what its own check finds wrong with the options (where it has one); none if unknown. */
function checkScenario(config: ExperimentConfig): { scenario?: Scenario; problems: string[] } {
  let scenario: Scenario;
  try {
    scenario = getScenario(config.scenario);
  } catch (err) {
    return { problems: [messageOf(err)] };
  }
  const options = config.scenarioOptions;
  if (!options || typeof options !== "object" || !scenario.optionProblems) return { scenario, problems: [] };
  return { scenario, problems: scenario.optionProblems(options).map((p) => `scenarioOptions: ${p}`) };
}

function recordingProblems(record: RecordingConfig, methods: MethodSpec[]): string[] {
  if (!record || typeof record !== "object") {
    return ['record must be an object such as { weights: ["fc2/kernel"], trajectories: ["target alone"], phases: true }'];
  }
  const problems: string[] = unknownKeyProblems(record, ["weights", "trajectories", "phases"], "record: ");
  const weights = record.weights ?? [];
  if (!Array.isArray(weights) || !weights.every((w) => typeof w === "string" && w.includes("/"))) {
    problems.push(`record.weights must be a list of 'layer/weight' names, got ${JSON.stringify(record.weights)}`);
  }
  if (record.trajectories !== undefined) {
    if (!Array.isArray(record.trajectories)) problems.push("record.trajectories must be a list of method names");
    else {
      if (weights.length === 0) problems.push("record.trajectories needs record.weights: name the weights whose trajectories to store");
      const names = new Set(methods.map((m) => m.name));
      const unknown = record.trajectories.filter((m) => !names.has(m));
      if (unknown.length) problems.push(`record.trajectories names methods that are not in the experiment: ${unknown.join(", ")}`);
    }
  }
  if (record.phases !== undefined && typeof record.phases !== "boolean") {
    problems.push(`record.phases must be true or false, got ${JSON.stringify(record.phases)}`);
  }
  return problems;
}

/** Adds one experiment's planned runs to `estimate`, each method's recorded times read from its folder. */
function estimateRuns(estimate: CostEstimate, config: ExperimentConfig, plan: PlannedRun[], resultsDir: string): CostEstimate {
  return addToEstimate(estimate, config, plan, (method) => methodFolder(resultsDir, config, method));
}

/**
 * What running `configs` now will cost (src/experiments/cost.ts): saved runs, runs to train and
 * their estimated time from the recorded times of earlier runs. Reads files only; trains nothing.
 */
export function costOf(configs: ExperimentConfig | ExperimentConfig[], options: { resultsDir?: string; workers?: number } = {}): CostEstimate {
  const resultsDir = options.resultsDir ?? resultsRoot();
  const estimate = emptyEstimate(workersFor(configs, options));
  for (const config of Array.isArray(configs) ? configs : [configs]) estimateRuns(estimate, config, planRuns(config, resultsDir, { quiet: true }), resultsDir);
  return estimate;
}

/** Set by the first SIGINT/SIGTERM while an experiment runs: the current run checkpoints at the end of its current step. */
let stopRequested = false;

/**
 * The worker processes for these experiments: the count asked for (RunOptions.workers, else
 * MERGENET_WORKERS), else the machine's default, except that under the default an experiment
 * whose scenario only this process has registered (a notebook cell's, without
 * scenarioModules) trains here, serially: a worker could not build it.
 */
function workersFor(configs: ExperimentConfig | ExperimentConfig[], options: Pick<RunOptions, "workers" | "scenarioModules">): number {
  const asked = explicitWorkers(options.workers);
  if (asked !== undefined) return asked;
  return [configs].flat().every((config) => workersKnowScenario(config, options)) ? defaultWorkers() : 1;
}

/** Whether a worker process can build the experiment's scenario: a built-in one, or one registered by `scenarioModules`. */
function workersKnowScenario(config: ExperimentConfig, options: Pick<RunOptions, "scenarioModules">): boolean {
  return (options.scenarioModules?.length ?? 0) > 0 || isBuiltInScenario(config.scenario);
}

/**
 * Runs every (method, seed) of an experiment, reusing cached results; returns them all.
 * The backend is initialised if it was not yet.
 */
export async function runExperiment(config: ExperimentConfig, options: RunOptions = {}): Promise<ExperimentResult> {
  const scenario = validateExperiment(config);
  const workers = workersFor(config, options);
  const threadsPerWorker = resolveThreadsPerWorker(options.threadsPerWorker);
  await initBackend();
  const resultsDir = options.resultsDir ?? resultsRoot();
  const progress = new Progress(config.name, config.methods.length * config.seeds.length, options.progress ?? true);
  // MERGENET_REDIS, like the default worker count, applies only to scenarios a worker can build.
  const redis = options.redis ?? (workersKnowScenario(config, options) ? resolveRedis(undefined, options.workers) : undefined);
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
    return await runJobs(config, scenario, options, resultsDir, progress, makeExecutor, stop.signal, costWorkers);
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
async function preflight(config: ExperimentConfig, scenario: Scenario, methods: MethodSpec[], seed: number, resultsDir: string): Promise<void> {
  const problems: string[] = [];
  let instance: ScenarioInstance;
  try {
    instance = await scenario.build(seed, config.scenarioOptions, { resultsDir });
  } catch (err) {
    const why = messageOf(err);
    throw new Error(`invalid experiment '${config.name}': scenario '${config.scenario}' cannot be built from its scenarioOptions: ${why}`, { cause: err });
  }
  try {
    try {
      if (!instance.frozenSource) checkSideData("source", instance.source);
      checkSideData("target", instance.target);
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

/** One (method, seed) of the experiment as planned: its result file, configuration hash and cached result (if reused). */
interface RunPlan extends PlannedRun {
  file: string;
  hash: string;
  cached?: RunResult;
}

/** Every (method, seed) of `config` against its result file: the cached result where one is reused (none with `force`). */
function planRuns(config: ExperimentConfig, resultsDir: string, options: { force?: boolean; quiet?: boolean } = {}): RunPlan[] {
  return config.methods.flatMap((method) =>
    config.seeds.map((seed) => {
      const file = runFile(resultsDir, config, method, seed);
      const hash = runHash(config, method, seed);
      return { method, seed, file, hash, cached: options.force ? undefined : readCached(file, hash, config, method, seed, options.quiet) };
    }),
  );
}

async function runJobs(
  config: ExperimentConfig,
  scenario: Scenario,
  options: RunOptions,
  resultsDir: string,
  progress: Progress,
  makeExecutor: () => Promise<RunExecutor | undefined>,
  stop: AbortSignal,
  costWorkers: number,
): Promise<ExperimentResult> {
  const force = options.force ?? process.env.MERGENET_FORCE === "1";
  const planned = planRuns(config, resultsDir, { force });
  if (!force && !options.cachedOnly) reuseTwins(config, planned, resultsDir);
  const pending = planned.filter((job) => !job.cached);
  if (pending.length && options.cachedOnly) {
    const names = pending.slice(0, 5).map((job) => `'${job.method.name}' seed ${job.seed}`).join(", ");
    throw new MissingRunsError(
      `[${config.name}] ${pending.length} of ${planned.length} runs are not in ${resultsDir} (${names}${pending.length > 5 ? ", ..." : ""}) ` +
        `and this call trains nothing (cachedOnly); ${options.cachedOnlyHint ?? "run the experiment first"}`,
    );
  }
  if (pending.length) {
    checkResultsFolder(resultsDir);
    // Before anything trains: what it will cost (saved runs, runs to train, time from recorded runs).
    progress.note(costText(estimateRuns(emptyEstimate(costWorkers), config, planned, resultsDir)));
  }
  const executor = pending.length ? await makeExecutor() : undefined; // before the preflight: an unreachable Redis fails at once
  if (pending.length) await preflight(config, scenario, [...new Set(pending.map((job) => job.method))], pending[0].seed, resultsDir);
  if (executor) return runWithExecutor(config, planned, resultsDir, progress, executor, stop, force);
  const runs: RunResult[] = [];
  let trainedHere = 0;
  for (const plan of planned) {
    const { method, seed, cached } = plan;
    if (cached) {
      runs.push(cached);
      progress.cached(`${method.name} seed ${seed}`, cached.wallSeconds);
      continue;
    }
    const { run, trained } = await trainUnderLock(config, scenario, plan, resultsDir, progress, force);
    runs.push(run);
    if (trained) {
      trainedHere += 1;
      progress.done(runSummary(run));
    } else progress.cached(`${method.name} seed ${seed}`, run.wallSeconds);
  }
  progress.finish();
  warnMixedSettings(config, runs, trainedHere);
  return { config, runs };
}

/**
 * Twin runs (twin-runs.ts): indexes the saved results that are not yet indexed (results saved
 * before the index existed), then gives each pending run whose training an indexed result of
 * another experiment or method already did a copy of that result.
 */
function reuseTwins(config: ExperimentConfig, planned: RunPlan[], resultsDir: string): void {
  let copied = 0;
  for (const plan of planned) {
    if (plan.cached) {
      indexRun(resultsDir, config, plan.method, plan.seed, plan.file, plan.cached, { ifMissing: true });
      continue;
    }
    plan.cached = copyTwin(resultsDir, config, plan.method, plan.seed, plan.hash, plan.file);
    if (plan.cached) copied += 1;
  }
  if (copied) logger.info(`[${config.name}] ${copied} run(s) are the same training as saved runs of other experiments or methods: their results are copied (each file's copiedFrom names its twin)`);
}

/**
 * Warns when the runs of an experiment that trained some of them just now come from more than
 * one TensorFlow thread setting (RunResult.threads) or kind of processor (RunResult.processor).
 * The cache key leaves both out (a cached run is reused whatever trained it), but TensorFlow's
 * kernels may round differently under each: say so rather than mix them in silently.
 */
function warnMixedSettings(config: ExperimentConfig, runs: RunResult[], trained: number): void {
  if (trained === 0) return;
  const trainedRuns = runs.filter((run) => !run.notApplicable);
  /** "n with/on value, ..." when the runs hold two or more values of `valueOf`, else undefined. */
  const mix = (valueOf: (run: RunResult) => string | undefined, describe: (value: string, n: number) => string): string | undefined => {
    const counts = new Map<string, number>();
    for (const run of trainedRuns) {
      const value = valueOf(run);
      if (value !== undefined) counts.set(value, (counts.get(value) ?? 0) + 1);
    }
    return counts.size < 2 ? undefined : [...counts].map(([value, n]) => describe(value, n)).join(", ");
  };
  const setting = (threads: string): string => {
    if (threads === "default") return "the default setting (all cores)";
    if (threads === "unrecorded") return "an unrecorded setting (older results)";
    return `${threads} thread${threads === "1" ? "" : "s"}`;
  };
  const threads = mix((run) => run.threads ?? "unrecorded", (value, n) => `${n} with ${setting(value)}`);
  if (threads) {
    logger.warn(
      `[${config.name}] the runs mix TensorFlow thread settings (${threads}): results of different settings differ in their last bits, ` +
        "so these runs are not bit-identical to a run of one setting; " +
        "retrain them all with one setting with RunOptions.force (MERGENET_FORCE=1) if that matters",
    );
  }
  // Result files older than the field say nothing of their processor: they are left out.
  const processors = mix((run) => run.processor, (value, n) => `${n} on ${value}`);
  if (processors) {
    logger.warn(
      `[${config.name}] the runs were trained on different processors (${processors}): TensorFlow's kernels may round differently ` +
        "on each, so these runs are not bit-identical to a run on one machine; " +
        "retrain them all on one with RunOptions.force (MERGENET_FORCE=1) if that matters",
    );
  }
}

/**
 * Trains one run holding its lock (run-lock.ts), so that another process running the same
 * experiment into the same folder does not train it too. While another live process holds
 * it, waits, then takes that process's result (`trained` false), or trains the run itself
 * if that process stopped without one.
 */
async function trainUnderLock(
  config: ExperimentConfig,
  scenario: Scenario,
  plan: RunPlan,
  resultsDir: string,
  progress: Progress,
  force: boolean,
): Promise<{ run: RunResult; trained: boolean }> {
  const { method, seed, file, hash } = plan;
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
      const done = waited || !force ? readCached(file, hash, config, method, seed, !waited) : undefined;
      if (done) return { run: done, trained: false };
      progress.start(label);
      let run: RunResult;
      try {
        const hooks = { epoch: (record: EpochRecord, epochs: number) => progress.epoch(record, epochs), stopped: () => stopRequested };
        run = await trainOne(scenario, { config, method, seed, configHash: hash, resultsDir }, hooks);
      } catch (err) {
        if (err instanceof Error && err.message.startsWith("interrupted:")) throw err;
        // Name the run that failed; the original error (and its stack) is the cause.
        throw new Error(`[${config.name}] '${method.name}' seed ${seed} failed: ${messageOf(err)}`, { cause: err });
      }
      saveRun(resultsDir, config, plan, run);
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
    logger.warn(
      `${label}: another process (pid ${owner.pid} on ${owner.host}, since ${owner.since}) is training this run into ${resultsDir}; ` +
        "waiting for its result rather than training it twice",
    );
  }
  return lock;
}

/** Writes a finished run's result file (atomically, in this process); its checkpoint, if any, is no longer needed. */
function saveRun(resultsDir: string, config: ExperimentConfig, plan: RunPlan, run: RunResult): void {
  const { method, seed, file, hash } = plan;
  try {
    writeJsonAtomic(file, run);
    indexRun(resultsDir, config, method, seed, file, run);
  } catch (err) {
    throw new Error(
      `[${config.name}] '${method.name}' seed ${seed} trained, but its result could not be written to ${file} (${codeOf(err)}); ` +
        "the results folder must be writable with room to spare",
      { cause: err },
    );
  }
  fs.rmSync(checkpointDir(resultsDir, config, method, seed, hash), { recursive: true, force: true });
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
async function runWithExecutor(
  config: ExperimentConfig,
  planned: RunPlan[],
  resultsDir: string,
  progress: Progress,
  executor: RunExecutor,
  stop: AbortSignal,
  force: boolean,
): Promise<ExperimentResult> {
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
        const { method, seed, file, hash } = planned[key];
        const name = `${method.name} seed ${seed}`;
        const lock = lockRun(file, name, resultsDir);
        if (!lock.release) {
          theirs.push(key);
          continue;
        }
        // Another process may have finished the run since the plan was made (quiet: the plan reported what it found).
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
                saveRun(resultsDir, config, planned[job.key], run);
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
  warnMixedSettings(config, runs as RunResult[], trainedHere);
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
