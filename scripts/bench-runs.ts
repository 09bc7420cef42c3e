/**
 * `npx tsx scripts/bench-runs.ts [--workers 1,2] [--redis N] [--threads N] [--epochs 10] [--json] [--progress]`:
 * the wall time of one fixed small experiment of 8 runs (the positive control, target alone
 * and the faithful MergeNet on the fc2 pair, 4 seeds each), trained serially, with the local
 * worker pool (src/experiments/pool.ts), and with `--redis N` through a BullMQ queue on a
 * throwaway redis-server on this machine with N queue workers (src/experiments/queue.ts),
 * each from scratch in a fresh results folder. Prints one line per setting with the CPU
 * seconds used (this process and its finished child processes: not the queue workers, which
 * outlive the measurement), the machine's load average before and after (on a shared machine,
 * read the times next to it), and whether the runs' final metrics and losses equal those of
 * the first setting measured with the same TensorFlow thread setting (they should).
 * `npm run bench` runs the same measurement (serial, pool of 2, Redis with 2) as its `runs` section.
 *
 * Serial runs train in this process with its own thread setting: run the script with
 * TF_NUM_INTRAOP_THREADS=1 to compare them with the workers at the same setting. `--threads`
 * sets the threads per worker, pool's and queue's (default 1). The queue workers are started
 * (TensorFlow loaded, waiting) before their measurement starts: they are long-lived processes,
 * while the pool's workers start within the measurement, as they do in `npm start`.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { backendInfo, initBackend } from "../src/backend/index";
import { startLocalRedis, startWorkerProcess, type LocalRedis, type QueueWorkerProcess } from "../src/experiments/local-redis";
import { FAITHFUL } from "../src/experiments/configs/positive-control";
import { runExperiment } from "../src/experiments/runner";
import { type ExperimentConfig, type ExperimentResult, type RunResult } from "../src/experiments/records";
import { clearPretrainedSources, POSITIVE_CONTROL_PAIRS } from "../src/experiments/scenarios/positive-control";
import "../src/experiments/scenarios/index";

interface Args {
  workers: number[];
  /** Queue workers through Redis (0: not measured). */
  redis: number;
  threads: number;
  epochs: number;
  json: boolean;
  /** Print the experiment's progress lines (each run's time, its worker). */
  progress: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { workers: [1, 2], redis: 0, threads: 1, epochs: 10, json: false, progress: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--workers") args.workers = (argv[++i] ?? "").split(",").map(Number);
    else if (a === "--redis") args.redis = Number(argv[++i]);
    else if (a === "--threads") args.threads = Number(argv[++i]);
    else if (a === "--epochs") args.epochs = Number(argv[++i]);
    else if (a === "--json") args.json = true;
    else if (a === "--progress") args.progress = true;
    else throw new Error(`unknown argument '${a}'; use --workers 1,2 --redis N --threads N --epochs N --json --progress`);
  }
  if (!Number.isInteger(args.redis) || args.redis < 0) throw new Error(`--redis takes a whole number of queue workers >= 0, got ${JSON.stringify(argv)}`);
  for (const n of [...args.workers, args.threads, args.epochs]) if (!Number.isInteger(n) || n < 1) throw new Error(`counts must be whole numbers >= 1, got ${JSON.stringify(argv)}`);
  return args;
}

/** The fixed experiment: 2 methods x 4 seeds on a small positive control. */
export function benchRunsExperiment(epochs: number): ExperimentConfig {
  return {
    name: "bench-runs",
    scenario: "positive-control",
    scenarioOptions: { targetTrain: 1000, sourceTrain: 2000, sourceEpochs: 1, testImages: 2000 },
    methods: [
      { name: "target alone", kind: "target-alone" },
      { name: "MergeNet (fc2)", kind: "mergenet", mergenet: { ...FAITHFUL, pairs: [POSITIVE_CONTROL_PAIRS.fc2] } },
    ],
    epochs,
    seeds: [0, 1, 2, 3],
  };
}

const load = (): string => os.loadavg().map((v) => v.toFixed(2)).join(" ");

/**
 * CPU seconds used so far by this process and its finished child processes (the workers, once
 * they have exited and been waited for): /proc/self/stat's utime + stime + cutime + cstime.
 * Less sensitive to other load than wall time. Linux only (NaN elsewhere).
 */
function cpuSeconds(): number {
  try {
    const stat = fs.readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0); // fields 14..17 of proc(5)
    return ticks / 100; // USER_HZ
  } catch {
    return NaN;
  }
}
const outcome = (runs: RunResult[]) => JSON.stringify(runs.map((r) => ({ method: r.method, seed: r.seed, final: r.final, targetLoss: r.targetLoss, transfers: r.transfers })));

export interface RunsBenchOptions {
  /** Local worker counts to measure (1: serial, in this process). */
  workers: number[];
  /** Queue workers through Redis (0: not measured). */
  redis: number;
  threads: number;
  epochs: number;
  progress: boolean;
  /** Called with each row's line as it is measured. */
  onRow?: (line: string) => void;
}

export interface RunsBenchRow {
  executor: "serial" | "pool" | "redis";
  workers: number;
  threadsPerRun?: string;
  runs?: number;
  seconds?: number;
  cpuSeconds?: number;
  loadBefore: string;
  loadAfter?: string;
  /** Equal to the first measured with the same thread setting ("(reference)" for that first one). */
  sameResultsAsFirst?: string;
  /** Why this setting could not be measured (redis-server missing, say). */
  error?: string;
}

/** Measures the fixed experiment serially, with the local pool and through Redis, as `options` says; the backend must be initialised. */
export async function benchRuns(options: RunsBenchOptions): Promise<{ epochs: number; rows: RunsBenchRow[] }> {
  const config = benchRunsExperiment(options.epochs);
  const scratch = () => fs.mkdtempSync(path.join(os.tmpdir(), "bench-runs-"));
  // Warm the data caches (MNIST decoding) so no measurement pays for them.
  await runExperiment({ ...config, name: "bench-runs-warmup", methods: [config.methods[0]], seeds: [0], epochs: 1 }, { resultsDir: scratch(), progress: false, workers: 1 });
  const rows: RunsBenchRow[] = [];
  /** The first outcome measured at each thread setting: results equal only at the same setting. */
  const references = new Map<string, string>();
  const measure = async (executor: RunsBenchRow["executor"], workers: number, run: (dir: string) => Promise<ExperimentResult>): Promise<void> => {
    clearPretrainedSources(); // a serial run must not reuse sources pre-trained by an earlier measurement
    const dir = scratch();
    const loadBefore = load();
    const started = Date.now();
    const cpuBefore = cpuSeconds();
    const result = await run(dir);
    const seconds = (Date.now() - started) / 1000;
    const cpu = Math.round(cpuSeconds() - cpuBefore);
    const threads = [...new Set(result.runs.map((r) => r.threads))].join(",");
    const reference = references.get(threads);
    const same = reference === undefined ? "(reference)" : String(outcome(result.runs) === reference);
    if (reference === undefined) references.set(threads, outcome(result.runs));
    const row: RunsBenchRow = { executor, workers, threadsPerRun: threads, runs: result.runs.length, seconds: Math.round(seconds * 10) / 10, cpuSeconds: cpu, loadBefore, loadAfter: load(), sameResultsAsFirst: same };
    rows.push(row);
    options.onRow?.(`${executor} with ${workers} worker(s) (TF threads per run: ${threads}): ${row.runs} runs in ${row.seconds} s (${cpu} CPU s${executor === "redis" ? " in this process only" : ""}); load average ${loadBefore} before, ${row.loadAfter} after; same metrics and losses as the first at this thread setting: ${same}`);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const runOptions = { progress: options.progress, threadsPerWorker: options.threads };
  for (const workers of options.workers) await measure(workers > 1 ? "pool" : "serial", workers, (dir) => runExperiment(config, { ...runOptions, resultsDir: dir, workers }));
  if (options.redis > 0) {
    let redis: LocalRedis | undefined;
    const queueWorkers: QueueWorkerProcess[] = [];
    try {
      redis = await startLocalRedis();
      const env = { MERGENET_BACKEND: backendInfo()?.name, MERGENET_LOG: "" }; // their stderr is read (for "waiting for runs"), not shown
      for (let i = 0; i < options.redis; i++) queueWorkers.push(startWorkerProcess(redis.url, env, ["--threads", String(options.threads)]));
      await Promise.all(queueWorkers.map((w) => w.waitFor(/waiting for runs on/)));
      const url = redis.url;
      await measure("redis", options.redis, (dir) => runExperiment(config, { ...runOptions, resultsDir: dir, redis: url }));
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      rows.push({ executor: "redis", workers: options.redis, loadBefore: load(), error });
      options.onRow?.(`redis with ${options.redis} worker(s): not measured: ${error}`);
    } finally {
      await Promise.all(queueWorkers.map((w) => w.stop()));
      await redis?.stop();
    }
  }
  return { epochs: options.epochs, rows };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const backend = await initBackend();
  const { rows } = await benchRuns({ ...args, onRow: args.json ? undefined : (line) => process.stdout.write(`${line}\n`) });
  if (args.json) process.stdout.write(`${JSON.stringify({ backend: backend.name, cores: os.cpus().length, epochs: args.epochs, rows })}\n`);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`bench-runs failed: ${err instanceof Error ? err.message : err}\n`);
    process.exit(1);
  });
}
