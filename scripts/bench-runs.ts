/**
 * `npx tsx scripts/bench-runs.ts [--workers 1,2] [--threads N] [--epochs 10] [--json] [--progress]`: the wall
 * time of one fixed small experiment of 8 runs (the positive control, target alone and the
 * faithful MergeNet on the fc2 pair, 4 seeds each), trained serially and with the local worker
 * pool (src/experiments/pool.ts), each from scratch in a fresh results folder. Prints one line
 * per worker count with the CPU seconds used (this process and its workers), the machine's
 * load average before and after (on a shared machine, read the times next to it), and whether the runs' final metrics and losses equal those of
 * the first setting measured (they should wherever the thread setting is the same).
 *
 * Serial runs train in this process with its own thread setting: run the script with
 * TF_NUM_INTRAOP_THREADS=1 to compare them with the pool at the same setting. `--threads`
 * sets the pool's threads per worker (default 1).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { initBackend } from "../src/backend";
import { FAITHFUL } from "../src/experiments/configs/positive-control";
import { runExperiment, type ExperimentConfig, type RunResult } from "../src/experiments/runner";
import { clearPretrainedSources, POSITIVE_CONTROL_PAIRS } from "../src/experiments/scenarios/positive-control";
import "../src/experiments/scenarios/index";

interface Args {
  workers: number[];
  threads: number;
  epochs: number;
  json: boolean;
  /** Print the experiment's progress lines (each run's time, its worker). */
  progress: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { workers: [1, 2], threads: 1, epochs: 10, json: false, progress: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--workers") args.workers = (argv[++i] ?? "").split(",").map(Number);
    else if (a === "--threads") args.threads = Number(argv[++i]);
    else if (a === "--epochs") args.epochs = Number(argv[++i]);
    else if (a === "--json") args.json = true;
    else if (a === "--progress") args.progress = true;
    else throw new Error(`unknown argument '${a}'; use --workers 1,2 --threads N --epochs N --json --progress`);
  }
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const backend = await initBackend();
  const config = benchRunsExperiment(args.epochs);
  // Warm the data caches (MNIST decoding) so no measurement pays for them.
  await runExperiment({ ...config, name: "bench-runs-warmup", methods: [config.methods[0]], seeds: [0], epochs: 1 }, { resultsDir: fs.mkdtempSync(path.join(os.tmpdir(), "bench-runs-")), progress: false, workers: 1 });
  const rows: Record<string, unknown>[] = [];
  let reference: string | undefined;
  for (const workers of args.workers) {
    clearPretrainedSources(); // a serial run must not reuse sources pre-trained by an earlier measurement
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-runs-"));
    const loadBefore = load();
    const started = Date.now();
    const cpuBefore = cpuSeconds();
    const result = await runExperiment(config, { resultsDir: dir, progress: args.progress, workers, threadsPerWorker: args.threads });
    const seconds = (Date.now() - started) / 1000;
    const cpu = Math.round(cpuSeconds() - cpuBefore);
    const threads = [...new Set(result.runs.map((r) => r.threads))].join(",");
    const same = reference === undefined ? "(reference)" : String(outcome(result.runs) === reference);
    reference ??= outcome(result.runs);
    const row = { workers, threadsPerRun: threads, runs: result.runs.length, seconds: Math.round(seconds * 10) / 10, cpuSeconds: cpu, loadBefore, loadAfter: load(), sameResultsAsFirst: same };
    rows.push(row);
    if (!args.json) process.stdout.write(`workers ${workers} (TF threads per run: ${threads}): ${row.runs} runs in ${row.seconds} s (${cpu} CPU s); load average ${loadBefore} before, ${row.loadAfter} after; same metrics and losses as the first: ${same}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ backend: backend.name, cores: os.cpus().length, epochs: args.epochs, rows })}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench-runs failed: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
