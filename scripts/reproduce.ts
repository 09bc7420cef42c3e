/**
 * `npm start [-- --quick] [--workers N] [--redis URL]`: reproduces every notebook and figure
 * headlessly, then writes results/REPORT.md (every saved table and figure with one line on
 * what it shows). `--workers N` trains each experiment's runs in N worker processes at once
 * (MERGENET_WORKERS, passed to the notebook kernels; default one per core, each with one
 * TensorFlow thread: defaultWorkers in src/experiments/pool.ts; `--workers 1` trains in the
 * kernel, serially). `--redis
 * URL` puts them on that Redis's queue instead, for `npm run worker -- --redis URL` processes
 * on any machine (MERGENET_REDIS; src/experiments/queue.ts); this process still writes
 * every result. The URL is checked first: an unreachable Redis fails at once.
 *
 * Default mode executes notebooks/*.ipynb in place: that is the reproduction whose outputs
 * are committed. Quick mode (what CI runs) executes copies in results/quick/notebooks/ with
 * MERGENET_QUICK=1 (one seed, few epochs), leaving the committed notebooks untouched.
 * System packages and the Jupyter environment are set up first when missing.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { checkRedis, resolveRedis } from "../src/experiments/queue";
import { buildReport, readReportIndex } from "../src/notebook/report";
import { resultsRoot } from "../src/paths";
import { closeRenderer } from "../src/plots/render";
import { defaultNotebooks, NotebookRunError, REPO_ROOT, runNotebooks } from "./run-notebooks";

const USAGE = "usage: npm start [-- --quick] [--workers N] [--redis redis://host:port]";

function parseArgs(args: string[]): { quick: boolean; workers?: number; redis?: string } {
  let quick = false;
  let workers: number | undefined;
  let redis: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--quick") quick = true;
    else if (args[i] === "--workers") {
      workers = Number(args[++i]);
      if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers needs a whole number >= 1, got '${args[i] ?? ""}'; ${USAGE}`);
    } else if (args[i] === "--redis") {
      redis = args[++i];
      if (!redis) throw new Error(`--redis needs a URL (redis://host:port); ${USAGE}`);
    } else throw new Error(`unknown argument ${args[i]}; ${USAGE}`);
  }
  return { quick, workers, redis };
}

async function main(): Promise<void> {
  const { quick, workers, redis } = parseArgs(process.argv.slice(2));
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
  let failed = false;
  try {
    await runNotebooks(notebooks, { quick });
  } catch (err) {
    if (!(err instanceof NotebookRunError)) throw err;
    process.stderr.write(`${err.message}\n`);
    failed = true;
  } finally {
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
