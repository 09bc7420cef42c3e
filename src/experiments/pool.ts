/**
 * The embedded worker pool: an experiment's pending runs trained at once by child processes
 * on this machine (issue 15, first part). runExperiment uses it when `workers` > 1, which is
 * the default on a machine with more than one core (defaultWorkers).
 *
 * - Each worker is src/experiments/worker.ts, forked with the tsx loader from node_modules
 *   (so it works whether the parent runs under tsx, vitest or the tslab notebook kernel), with
 *   TF_NUM_INTRAOP_THREADS set in its environment before it loads TensorFlow.
 * - The parent sends a worker one run at a time (WorkerJob: plain JSON, what a queue would
 *   carry) and gets its RunResult back. The parent writes every result file (atomically, as a
 *   serial run does): results are written by the submitting process only. A worker trains
 *   exactly what a serial run trains (trainOne), so given the same thread setting a run's
 *   result does not depend on the number of workers.
 * - A run that throws fails the experiment, as in a serial run. A worker that dies (a crash,
 *   SIGKILL, out of memory) has its run retried once on a new worker; a second death fails
 *   the experiment, naming the run. On a failure and on SIGINT/SIGTERM the other workers are
 *   killed: their current runs are lost, nothing is half-written, finished runs keep their
 *   files. `run` settles only after every worker has exited.
 * - A free worker takes a run of a seed it has already built, else of a seed no other worker
 *   is on: scenarios that keep per-seed work in the process (the positive control's
 *   pre-trained source) then do it about once per seed. The order changes no result.
 * - Workers use `threadsPerWorker` TensorFlow threads (default 1), a serial run the calling
 *   process's setting (all cores unless TF_NUM_INTRAOP_THREADS says): the results of the two
 *   settings differ in their last bits. Each result records its setting (`threads`), but the
 *   cache key does not include it, so cached runs of either setting are reused (the runner
 *   warns when an experiment's runs mix settings).
 * - A worker refuses a run whose submitter has another runner version, configuration hash or
 *   TensorFlow backend (WorkerJob), in words; the run fails as a run that throws does.
 * - The runner locks each run (run-lock.ts) before handing it to an executor and releases it
 *   once the result is written: two processes running the same experiment into one folder
 *   train each run once.
 *
 * RunExecutor is the seam for other executors (queue.ts: the same WorkerJob on BullMQ across
 * machines): the runner hands an executor its jobs and writes what it reports.
 */
import { fork, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { EpochRecord } from "../core/loop";
import { backendInfo } from "../backend/index";
import { logger } from "../log";
import { REPO_ROOT } from "../paths";
import type { ExperimentConfig, RunResult } from "./records";
import type { RunJob } from "./train-run";

/** Memory set aside per worker when the default count is chosen (a worker's resident size was about 0.75 GB in a default-mode MNIST run). */
const MEMORY_PER_WORKER = 2 * 1024 ** 3;

/**
 * Worker processes of an experiment when neither RunOptions.workers nor MERGENET_WORKERS says:
 * one per core (os.availableParallelism()), at most one per 2 GiB of memory, each with one
 * TensorFlow thread. Measured on an idle 2-core machine (2026-12-03, README "Workers"): a
 * sample of the notebooks' default-mode runs took 242.6 s serially and 129.4 s with 2 workers,
 * their quick mode 109.3 s and 82.2 s. A scenario registered only in the calling process
 * (a notebook cell's) is trained serially under this default (runner.ts), since a worker
 * could not build it.
 */
export function defaultWorkers(cores: number = os.availableParallelism(), memoryBytes: number = os.totalmem()): number {
  return Math.max(1, Math.min(cores, Math.floor(memoryBytes / MEMORY_PER_WORKER)));
}

/** TensorFlow intra-op threads of each worker when neither RunOptions.threadsPerWorker nor MERGENET_WORKER_THREADS says. */
export const DEFAULT_THREADS_PER_WORKER = 1;

/** A line logged by native TensorFlow (absl), not by JavaScript. */
const NATIVE_LOG_LINE = /^(WARNING: All log messages before absl::InitializeLog\(\)|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.-]+:\d+\])/;

/** Grace before a worker that was asked to end is killed. */
const EXIT_GRACE_MS = 5000;

/** One pending run, as the runner hands it to an executor. */
export interface PoolJob extends RunJob {
  /** The run's place in the experiment's plan (unique within one `run` call). */
  key: number;
  runnerVersion: number;
  /** The submitter's TensorFlow backend (BackendInfo.name): a worker on another backend refuses the run. */
  backend: string;
}

/** What a worker receives for one run: plain JSON, everything it needs and what it must check. */
export interface WorkerJob {
  config: ExperimentConfig;
  methodName: string;
  seed: number;
  /** Where the run's checkpoint would be (a run interrupted in a serial session resumes from it). */
  resultsDir: string;
  /** Modules to import before the run, which register the scenario (absolute paths, or relative to the repository). */
  modules: string[];
  /** The submitter's: a worker whose code differs refuses the run. */
  runnerVersion: number;
  configHash: string;
  /** The submitter's TensorFlow backend ("tensorflow", "wasm", ...): a worker on another one refuses the run (results differ between backends). */
  backend: string;
}

export type ToWorker = { type: "job"; job: WorkerJob };
export type FromWorker =
  | { type: "ready" }
  | { type: "epoch"; record: EpochRecord; epochs: number }
  | { type: "result"; run: RunResult }
  | { type: "error"; message: string; stack?: string }
  | { type: "fatal"; message: string };

export interface ExecutorHooks {
  started(job: PoolJob, worker: number): void;
  epoch(job: PoolJob, record: EpochRecord, epochs: number): void;
  /** The run finished: the runner writes its file here. Throwing stops the experiment. */
  finished(job: PoolJob, run: RunResult): void;
}

/** Trains pending runs somewhere other than in the calling process. */
export interface RunExecutor {
  /** How many runs train at once. */
  readonly workers: number;
  /** What a first SIGINT/SIGTERM does, in words (logged by the runner). */
  readonly stopping: string;
  /** Resolves when every job finished; rejects with the first failure, or with "interrupted: ..." once `stop` aborts. */
  run(jobs: PoolJob[], hooks: ExecutorHooks, stop: AbortSignal): Promise<void>;
}

export interface PoolOptions {
  workers: number;
  threadsPerWorker: number;
  /** Modules the workers import (besides src/experiments/scenarios) to register the experiment's scenario. */
  modules: string[];
}

function positiveInteger(value: number | string | undefined, what: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a whole number >= 1, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * The worker count the caller asked for (the option, else MERGENET_WORKERS, which `npm start -- --workers N` sets),
 * or undefined when the default applies (runner.ts: defaultWorkers, or 1 for a scenario only the caller knows).
 */
export function explicitWorkers(option?: number): number | undefined {
  return positiveInteger(option, "RunOptions.workers") ?? positiveInteger(process.env.MERGENET_WORKERS, "MERGENET_WORKERS");
}

/** Intra-op threads per worker: the option, else MERGENET_WORKER_THREADS, else DEFAULT_THREADS_PER_WORKER. */
export function resolveThreadsPerWorker(option?: number): number {
  return (
    positiveInteger(option, "RunOptions.threadsPerWorker") ??
    positiveInteger(process.env.MERGENET_WORKER_THREADS, "MERGENET_WORKER_THREADS") ??
    DEFAULT_THREADS_PER_WORKER
  );
}

/** A failed run, worded as a serial run's failure. */
export function runFailure(job: PoolJob, message: string, cause?: unknown): Error {
  return new Error(`[${job.config.name}] '${job.method.name}' seed ${job.seed} failed: ${message}`, { cause });
}

export const label = (job: PoolJob): string => `${job.method.name} seed ${job.seed}`;

/** What a worker receives for `job`: plain JSON. */
export function workerJob(job: PoolJob, modules: string[]): WorkerJob {
  return {
    config: job.config,
    methodName: job.method.name,
    seed: job.seed,
    resultsDir: path.resolve(job.resultsDir),
    modules,
    runnerVersion: job.runnerVersion,
    configHash: job.configHash,
    backend: job.backend,
  };
}

/**
 * The worker's entry and how to start it: the .ts source through tsx's loader (whatever runs
 * this process: tsx, vitest, or tslab, whose modules do not report a .ts name), the compiled
 * .js directly where no source is beside this file (a build in dist/).
 */
function workerEntry(): { file: string; execArgv: string[] } {
  const source = path.join(__dirname, "worker.ts");
  if (fs.existsSync(source)) return { file: source, execArgv: ["--import", require.resolve("tsx")] };
  return { file: path.join(__dirname, "worker.js"), execArgv: [] };
}

interface Worker {
  /** Its slot, 1..workers (a replacement takes the dead worker's number). */
  id: number;
  child: ChildProcess;
  ready: boolean;
  job?: PoolJob;
  /** Seeds it has run (their per-process work is done). */
  seeds: Set<number>;
  /** We asked it to end: its exit is expected. */
  ending: boolean;
  /** The end of its stderr, for errors. */
  tail: string;
  exited: Promise<void>;
}

/** Child processes on this machine. */
export class LocalPool implements RunExecutor {
  constructor(private readonly options: PoolOptions) {}

  get workers(): number {
    return this.options.workers;
  }

  readonly stopping = "stopping the worker processes; the runs they are training start over next time, finished runs are kept";

  run(jobs: PoolJob[], hooks: ExecutorHooks, stop: AbortSignal): Promise<void> {
    return new PoolSession(this.options, jobs, hooks, stop).run();
  }
}

/** One `run` of the pool: its workers, queue and outcome. */
class PoolSession {
  private readonly waiting: PoolJob[];
  private readonly attempts = new Map<number, number>();
  private readonly live = new Set<Worker>();
  private finished = 0;
  private deathsWithoutRun = 0;
  private ended = false;
  private settle!: (error?: Error) => void;

  constructor(
    private readonly options: PoolOptions,
    private readonly jobs: PoolJob[],
    private readonly hooks: ExecutorHooks,
    private readonly stop: AbortSignal,
  ) {
    this.waiting = [...jobs];
  }

  run(): Promise<void> {
    const onAbort = (): void => this.end(this.interrupted());
    return new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error ? reject(error) : resolve());
      if (this.jobs.length === 0) return resolve();
      if (this.stop.aborted) return this.end(this.interrupted());
      this.stop.addEventListener("abort", onAbort);
      for (let id = 1; id <= Math.min(this.options.workers, this.jobs.length); id++) this.spawn(id);
    }).finally(() => this.stop.removeEventListener("abort", onAbort));
  }

  private spawn(id: number): void {
    const { file, execArgv } = workerEntry();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TF_NUM_INTRAOP_THREADS: String(this.options.threadsPerWorker),
      MERGENET_POOL_WORKER: "1",
      MERGENET_BACKEND: backendInfo()?.name ?? process.env.MERGENET_BACKEND,
    };
    const child = fork(file, [], { cwd: REPO_ROOT, env, execArgv, serialization: "advanced", stdio: ["ignore", "pipe", "pipe", "ipc"] });
    let exited!: () => void;
    const worker: Worker = { id, child, ready: false, seeds: new Set(), ending: false, tail: "", exited: new Promise<void>((r) => (exited = r)) };
    this.live.add(worker);
    forwardLines(child.stdout, (line) => process.stdout.write(`${line}\n`));
    forwardLines(child.stderr, (line) => {
      worker.tail = `${worker.tail}${line}\n`.slice(-2000);
      // TensorFlow's own start-up lines go where this process's own go (file descriptor 2: not
      // into a notebook's output); the worker's messages go through process.stderr, as ours do.
      if (NATIVE_LOG_LINE.test(line)) fs.writeSync(2, `${line}\n`);
      else process.stderr.write(`${line}\n`);
    });
    child.on("message", (message: FromWorker) => this.onMessage(worker, message));
    child.on("error", (err) => this.end(new Error(`cannot run a worker process (${file}): ${err.message}`, { cause: err })));
    // 'exit', not 'close': the worker's output pipes can outlive it (tsx's esbuild service inherits its stderr).
    child.on("exit", (code, signal) => {
      this.live.delete(worker);
      exited();
      this.onExit(worker, code, signal);
    });
  }

  private onMessage(worker: Worker, message: FromWorker): void {
    if (this.ended) return;
    const job = worker.job;
    switch (message.type) {
      case "ready":
        worker.ready = true;
        this.assign(worker);
        return;
      case "epoch":
        if (job) this.hooks.epoch(job, message.record, message.epochs);
        return;
      case "result":
        if (!job) return;
        worker.job = undefined;
        this.finished += 1;
        try {
          this.hooks.finished(job, message.run);
        } catch (err) {
          return this.end(err instanceof Error ? err : new Error(String(err)));
        }
        if (this.finished === this.jobs.length) return this.end();
        return this.assign(worker);
      case "error": {
        if (!job) return this.end(new Error(`a worker process failed outside any run: ${message.message}`));
        const cause = new Error(message.message);
        if (message.stack) cause.stack = message.stack;
        return this.end(runFailure(job, message.message, cause));
      }
      case "fatal":
        return this.end(new Error(`a worker process could not start: ${message.message}`));
    }
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.ended || worker.ending) return;
    const how = signal ? `killed by ${signal}` : `exit code ${code}`;
    const tail = worker.tail.trim() ? `; its last output:\n${worker.tail.trimEnd()}` : "";
    const job = worker.job;
    if (job) {
      const attempts = (this.attempts.get(job.key) ?? 0) + 1;
      this.attempts.set(job.key, attempts);
      if (attempts >= 2) return this.end(runFailure(job, `its worker process died twice (the last time: ${how})${tail}`));
      logger.warn(`worker ${worker.id} died (${how}) while training '${job.method.name}' seed ${job.seed}; that run starts again on a new worker`);
      this.waiting.unshift(job);
    } else {
      // Died while starting or idle: once may be bad luck, twice is a broken worker.
      this.deathsWithoutRun += 1;
      if (this.deathsWithoutRun >= 2) return this.end(new Error(`worker processes die before training anything (${how})${tail}`));
    }
    if (this.waiting.length) this.spawn(worker.id);
  }

  /** Gives a free, ready worker its next run, or lets it go when none is left. */
  private assign(worker: Worker): void {
    if (this.ended || !worker.ready || worker.job) return;
    if (this.waiting.length === 0) {
      worker.ending = true;
      if (worker.child.connected) worker.child.disconnect(); // the worker exits on disconnect
      return;
    }
    const busy = new Set([...this.live].flatMap((w) => (w.job ? [w.job.seed] : [])));
    let index = this.waiting.findIndex((j) => worker.seeds.has(j.seed));
    if (index < 0) index = this.waiting.findIndex((j) => !busy.has(j.seed));
    const [job] = this.waiting.splice(Math.max(index, 0), 1);
    worker.job = job;
    worker.seeds.add(job.seed);
    this.hooks.started(job, worker.id);
    const message: ToWorker = { type: "job", job: workerJob(job, this.options.modules) };
    worker.child.send(message, () => undefined); // a send to a worker that just died: its exit handles the run
  }

  private interrupted(): Error {
    const lost = [...this.live].flatMap((w) => (w.job ? [label(w.job)] : []));
    const runs = lost.length ? `; the runs they were training (${lost.join(", ")}) start over when run again` : "";
    return new Error(
      `interrupted: stopped the ${this.live.size} worker processes${runs}; ` +
        `the ${this.finished} runs finished in this session are saved; run the same command again to resume`,
    );
  }

  /** Ends the session once: stops every worker (killed on an error, let go otherwise), waits for their exits, then settles. */
  private end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    const workers = [...this.live];
    for (const w of workers) {
      w.ending = true;
      if (error) w.child.kill("SIGKILL");
      else if (w.child.connected) w.child.disconnect();
    }
    const timer = setTimeout(() => workers.forEach((w) => this.live.has(w) && w.child.kill("SIGKILL")), EXIT_GRACE_MS);
    void Promise.all(workers.map((w) => w.exited)).then(() => {
      clearTimeout(timer);
      this.settle(error);
    });
  }
}

/** Calls `onLine` with each complete line of a stream (and the rest at its end). */
export function forwardLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let rest = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    lines.forEach(onLine);
  });
  stream.on("end", () => rest && onLine(rest));
}
