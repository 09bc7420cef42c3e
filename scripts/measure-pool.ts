/**
 * `npx tsx scripts/measure-pool.ts [--quick] [--workers 1,2]`: how long a sample of the
 * notebooks' own runs takes serially and with the local worker pool (issue 15), each setting
 * from scratch in a fresh temporary results folder, so the README's choice of default
 * (src/experiments/pool.ts, defaultWorkers) can be checked on any machine.
 *
 * Default mode: 18 runs, 2 seeds each of notebook 01's CNN → MLP (target alone, MergeNet exact
 * and its random-source control), notebook 04's MergeNet and its control, and four methods of
 * notebook 02's site → sentiment. `--quick`: the whole quick mode (MERGENET_QUICK=1) of notebook
 * 01's CNN → MLP, notebook 04's ablations and notebook 02's site → sentiment and POS → genre.
 * Prints each experiment's wall time, the total per setting and the load average: on a shared
 * machine, read the times next to it. `--workers 1` trains in this process with its own
 * TensorFlow thread setting (all cores unless TF_NUM_INTRAOP_THREADS says); more workers use one
 * thread each.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as crossArchitecture from "../src/experiments/configs/cross-architecture";
import * as ablations from "../src/experiments/configs/ablations";
import * as crossTask from "../src/experiments/configs/cross-task";
import type { ExperimentConfig } from "../src/experiments/records";
import { runExperiment } from "../src/experiments/runner";
import "../src/experiments/scenarios/index";

interface Args {
  quick: boolean;
  workers: number[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, workers: [1, 2] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--quick") args.quick = true;
    else if (argv[i] === "--workers") args.workers = (argv[++i] ?? "").split(",").map(Number);
    else throw new Error(`unknown argument '${argv[i]}'; usage: npx tsx scripts/measure-pool.ts [--quick] [--workers 1,2]`);
  }
  if (!args.workers.length || args.workers.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--workers takes whole numbers >= 1 separated by commas, got ${JSON.stringify(argv)}`);
  return args;
}

/** `config` narrowed to the named methods and seeds (its recorded trajectories dropped: they may name other methods). */
function narrowed(config: ExperimentConfig, methods: string[], seeds: number[]): ExperimentConfig {
  const kept = config.methods.filter((method) => methods.includes(method.name));
  const missing = methods.filter((name) => !kept.some((method) => method.name === name));
  if (missing.length) throw new Error(`${config.name} has no method ${missing.map((m) => `'${m}'`).join(", ")}; its methods: ${config.methods.map((m) => m.name).join(", ")}`);
  return { ...config, record: undefined, methods: kept, seeds };
}

/** The sample of runs: built after MERGENET_QUICK is set, since the configurations read it. */
function sample(quick: boolean): ExperimentConfig[] {
  if (quick) return [crossArchitecture.cnnToMlp(), ablations.ablations(), crossTask.siteToSentiment(), crossTask.posToGenre()];
  const seeds = [0, 1];
  return [
    narrowed(crossArchitecture.cnnToMlp(), ["target alone", "MergeNet exact", "control: exact, random source"], seeds),
    narrowed(ablations.ablations(), ["MergeNet", "control: random source"], seeds),
    narrowed(crossTask.siteToSentiment(), ["target alone", "MergeNet head->entry", "control: head->entry, random source", "naive sharing (copy)"], seeds),
  ];
}

const load = (): string => os.loadavg().map((v) => v.toFixed(2)).join(" ");
const runsOf = (config: ExperimentConfig): number => config.methods.length * config.seeds.length;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.quick) process.env.MERGENET_QUICK = "1";
  const lines: string[] = [];
  for (const workers of args.workers) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `measure-pool-${workers}-`));
    const configs = sample(args.quick);
    const start = Date.now();
    const before = load();
    for (const config of configs) {
      const t = Date.now();
      await runExperiment(config, { workers, resultsDir: dir, progress: false });
      lines.push(`  ${config.name}: ${runsOf(config)} runs in ${((Date.now() - t) / 1000).toFixed(1)} s with ${workers} worker(s)`);
    }
    const runs = configs.reduce((n, config) => n + runsOf(config), 0);
    lines.push(`${args.quick ? "quick" : "default"} mode, ${workers} worker(s): ${runs} runs in ${((Date.now() - start) / 1000).toFixed(1)} s; load average ${before} before, ${load()} after`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(lines.join("\n"));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
