/**
 * `npm start [-- --quick] [--workers N] [--parallel N] [--sequential] [--redis URL]`:
 * reproduces every notebook and figure headlessly, then writes results/REPORT.md (every saved
 * table and figure with one line on what it shows).
 *
 * How the runs are trained:
 * - Default: a private job queue on this machine (a local redis-server and N queue workers,
 *   src/experiments/local-redis.ts startLocalQueue; N = `--workers N`, else one per core as
 *   defaultWorkers in src/experiments/pool.ts, each with one TensorFlow thread), and up to
 *   `--parallel` notebooks (default PARALLEL_NOTEBOOKS) executed at once, their kernels
 *   submitting to that queue (MERGENET_REDIS). The workers live for the whole job and are never
 *   idle while any notebook has a run waiting, where one notebook at a time leaves a worker idle
 *   whenever its experiment waits for its last run, and starts new workers for every
 *   experiment. The results are the same to the last bit: the same code trains each run with
 *   the same thread setting (src/experiments/queue.ts). The summary notebook runs last
 *   (its metadata: `after_earlier`, scripts/run-notebooks.ts).
 * - `--sequential`, or no redis-server: one notebook at a time, each experiment's runs in a
 *   worker pool of its own (src/experiments/pool.ts): the behaviour before the queue.
 * - `--workers 1`: one notebook at a time, every run trained in its kernel.
 * - `--redis URL`: the queue of that Redis, for `npm run worker -- --redis URL` processes on
 *   any machine (MERGENET_REDIS; src/experiments/queue.ts); notebooks run `--parallel` at once.
 *   The URL is checked first: an unreachable Redis fails at once.
 * This process and the notebook kernels write every result file, whatever trains the runs.
 *
 * Default mode executes notebooks/*.ipynb in place: that is the reproduction whose outputs
 * are committed. Quick mode (what CI runs) executes copies in results/quick/notebooks/ with
 * MERGENET_QUICK=1 (one seed, few epochs), leaving the committed notebooks untouched.
 * System packages and the Jupyter environment are set up first when missing.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { startLocalQueue, type LocalQueue } from "../src/experiments/local-redis";
import { defaultWorkers, resolveThreadsPerWorker } from "../src/experiments/pool";
import { checkRedis, resolveRedis } from "../src/experiments/queue";
import { buildReport, readReportIndex } from "../src/notebook/report";
import { resultsRoot } from "../src/paths";
import { closeRenderer } from "../src/plots/render";
import { defaultNotebooks, NotebookRunError, REPO_ROOT, runNotebooks, wholeNumber } from "./run-notebooks";

const USAGE = "usage: npm start [-- --quick] [--workers N] [--parallel N] [--sequential] [--redis redis://host:port]";

/** Notebooks executed at once when their runs go to a queue (`--parallel` changes it). */
export const PARALLEL_NOTEBOOKS = 4;

interface Args {
  quick: boolean;
  workers?: number;
  parallel?: number;
  sequential: boolean;
  redis?: string;
}

function parseArgs(args: string[]): Args {
  const parsed: Args = { quick: false, sequential: false };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--quick") parsed.quick = true;
    else if (args[i] === "--sequential") parsed.sequential = true;
    else if (args[i] === "--workers") parsed.workers = wholeNumber("--workers", args[++i], USAGE);
    else if (args[i] === "--parallel") parsed.parallel = wholeNumber("--parallel", args[++i], USAGE);
    else if (args[i] === "--redis") {
      parsed.redis = args[++i];
      if (!parsed.redis) throw new Error(`--redis needs a URL (redis://host:port); ${USAGE}`);
    } else throw new Error(`unknown argument ${args[i]}; ${USAGE}`);
  }
  if (parsed.sequential && parsed.redis) throw new Error(`--sequential and --redis cannot be combined (the queue runs notebooks at once; add --parallel 1 for one at a time); ${USAGE}`);
  if (parsed.sequential && parsed.parallel !== undefined && parsed.parallel > 1) throw new Error(`--sequential runs one notebook at a time; drop --parallel ${parsed.parallel}; ${USAGE}`);
  return parsed;
}

/**
 * The private queue of the default mode, or undefined for the sequential path (asked for,
 * one worker, a Redis given (`redis`: --redis or MERGENET_REDIS), or no redis-server: then a warning says so and what to install).
 */
async function privateQueue(args: Args, redis: string | undefined): Promise<LocalQueue | undefined> {
  if (args.sequential || redis) return undefined;
  const workers = args.workers ?? defaultWorkers();
  if (workers < 2) return undefined;
  try {
    const queue = await startLocalQueue({ workers, threads: resolveThreadsPerWorker() });
    process.stderr.write(`[mergenet] ${workers} queue workers (one TensorFlow thread each) on a private Redis at ${queue.url}; up to ${args.parallel ?? PARALLEL_NOTEBOOKS} notebooks at once\n`);
    return queue;
  } catch (err) {
    process.stderr.write(
      `[mergenet] no private job queue (${err instanceof Error ? err.message.split("\n")[0] : err}); ` +
        `running one notebook at a time, each experiment with its own worker pool (slower; the results are the same)\n`,
    );
    return undefined;
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const { quick, workers, redis } = args;
  if (workers !== undefined) process.env.MERGENET_WORKERS = String(workers); // the kernels inherit it
  if (redis !== undefined) process.env.MERGENET_REDIS = redis; // likewise
  const url = resolveRedis();
  if (url) await checkRedis(url); // before any notebook: a wrong URL fails in seconds
  const started = Date.now();
  for (const script of ["setup-system.sh", "setup-jupyter.sh"]) {
    execFileSync("bash", [path.join(REPO_ROOT, "scripts", script)], { stdio: "inherit" });
  }
  let notebooks = defaultNotebooks();
  if (quick) process.env.MERGENET_QUICK = "1"; // results/quick/ (src/paths.ts)
  const root = resultsRoot();
  if (quick) {
    const dir = path.join(root, "notebooks");
    fs.mkdirSync(dir, { recursive: true });
    notebooks = notebooks.map((file) => {
      const copy = path.join(dir, path.basename(file));
      fs.copyFileSync(file, copy);
      return copy;
    });
  }
  const queue = await privateQueue(args, url);
  if (queue) process.env.MERGENET_REDIS = queue.url; // the kernels submit there
  const parallel = queue || url ? (args.parallel ?? PARALLEL_NOTEBOOKS) : 1;
  let failed = false;
  try {
    await runNotebooks(notebooks, { quick, parallel });
  } catch (err) {
    if (!(err instanceof NotebookRunError)) throw err;
    process.stderr.write(`${err.message}\n`);
    failed = true;
  } finally {
    await queue?.stop();
    await closeRenderer();
  }
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  const header = [
    "# MergeNet in TypeScript: results report",
    "",
    `Written by \`npm start${quick ? " -- --quick" : ""}\` in ${minutes} min. Figures are in results/figures/; every number comes from the runs in results/runs/.`,
    quick ? "\n**Quick mode: one seed and a few epochs, to check the pipeline. These numbers are not results.**" : "",
  ].join("\n");
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, "REPORT.md"), buildReport(readReportIndex(root), header));
  process.stderr.write(`[mergenet] ${notebooks.length} notebooks in ${minutes} min; report: ${path.relative(process.cwd(), path.join(root, "REPORT.md"))}\n`);
  if (failed) process.exit(1);
}

main().catch((err) => {
  process.stderr.write(`npm start failed: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
