/**
 * What an experiment will cost before it runs: how many of its runs are already saved, how
 * many will train, and about how long that takes, estimated from the wall times the runner
 * records in every result (`wallSeconds`). A notebook prints this above each cell that trains,
 * with `machineText()` once at its top, so a reader knows what pressing Run means here.
 *
 * The estimate of a run that is not saved, in order of preference: the median recorded time of
 * the same method on other seeds (of this configuration, or an earlier one with the same
 * experiment and method names); else the median of the experiment's saved runs of the same
 * family (MergeNet or not); else nothing (the text says the cost is unknown). Recorded times
 * come from the machine and load they ran under, so the text says so.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { backendInfo, tf } from "../backend/index";
import type { ExperimentConfig, RunResult } from "./records";
import type { MethodSpec } from "./methods";
import { duration } from "./progress";

export interface CostEstimate {
  /** Runs the experiments hold (methods × seeds, summed). */
  runs: number;
  /** Runs saved for exactly their configuration: they load, they do not train. */
  cached: number;
  /** Runs that will train. */
  toTrain: number;
  /** Training time the saved runs took when they ran (seconds). */
  cachedSeconds: number;
  /** Estimated training time of the runs that will train, one after another (seconds); NaN when some have no basis. */
  trainSeconds: number;
  /** Runs to train whose time has no recorded basis. */
  unknown: number;
  /** Worker processes the runs are spread over (`MERGENET_WORKERS` / `--workers`). */
  workers: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

/** Recorded wall seconds of every result file in a folder (any configuration; damaged files skipped). */
function recordedSeconds(folder: string): number[] {
  if (!fs.existsSync(folder)) return [];
  const seconds: number[] = [];
  for (const name of fs.readdirSync(folder)) {
    if (!name.endsWith(".json")) continue;
    try {
      const run = JSON.parse(fs.readFileSync(path.join(folder, name), "utf8")) as Partial<RunResult>;
      if (typeof run.wallSeconds === "number" && Number.isFinite(run.wallSeconds) && !run.notApplicable) seconds.push(run.wallSeconds);
    } catch {
      // a damaged file has no time to offer; the runner reports it when it reruns that run
    }
  }
  return seconds;
}

/** One planned run: its method and seed, and its saved result if there is one. */
export interface PlannedRun {
  method: MethodSpec;
  seed: number;
  cached?: Pick<RunResult, "wallSeconds">;
}

/** An empty estimate, to add experiments to with addToEstimate. */
export const emptyEstimate = (workers: number): CostEstimate => ({ runs: 0, cached: 0, toTrain: 0, cachedSeconds: 0, trainSeconds: 0, unknown: 0, workers });

/**
 * Adds one experiment's planned runs to `estimate`. `folderOf(method)` is the folder holding that
 * method's result files (one per seed, any configuration), whose recorded times are the basis.
 */
export function addToEstimate(estimate: CostEstimate, config: ExperimentConfig, plan: PlannedRun[], folderOf: (method: MethodSpec) => string): CostEstimate {
  const isMergeNet = (method: MethodSpec) => method.kind === "mergenet";
  const families = new Map<boolean, number>();
  const familyMedian = (mergenet: boolean): number => {
    if (!families.has(mergenet)) {
      const family = config.methods.filter((m) => isMergeNet(m) === mergenet);
      families.set(mergenet, median(family.flatMap((m) => recordedSeconds(folderOf(m)))));
    }
    return families.get(mergenet)!;
  };
  const sameMethod = new Map<string, number>();
  for (const run of plan) {
    estimate.runs++;
    if (run.cached) {
      estimate.cached++;
      estimate.cachedSeconds += run.cached.wallSeconds;
      continue;
    }
    estimate.toTrain++;
    if (!sameMethod.has(run.method.name)) sameMethod.set(run.method.name, median(recordedSeconds(folderOf(run.method))));
    let seconds = sameMethod.get(run.method.name)!;
    if (!Number.isFinite(seconds)) seconds = familyMedian(isMergeNet(run.method));
    if (Number.isFinite(seconds)) estimate.trainSeconds += seconds;
    else estimate.unknown++;
  }
  if (estimate.unknown) estimate.trainSeconds = NaN;
  return estimate;
}

/** One sentence for a notebook: "24 runs: 24 saved (they took 41m10s to train), nothing to train." */
export function costText(estimate: CostEstimate): string {
  const saved = estimate.cached ? `${estimate.cached} saved (they took ${duration(estimate.cachedSeconds)} to train when they ran)` : "none saved";
  if (!estimate.toTrain) return `${estimate.runs} runs: ${saved}; nothing to train, this cell only loads them.`;
  const spread = estimate.workers > 1 ? ` in ${estimate.workers} workers` : "";
  const time = Number.isFinite(estimate.trainSeconds)
    ? `about ${duration(estimate.trainSeconds / estimate.workers)}${spread}, ` +
      "judged by the times runs of these methods took when they last ran (on whatever machine and load that was)"
    : `an unknown time (${estimate.unknown} of them ${estimate.unknown === 1 ? "has" : "have"} no recorded run to go by)`;
  return `${estimate.runs} runs: ${saved}; ${estimate.toTrain} to train, ${time}.`;
}

/** Where a notebook ran: backend, library versions, CPU, cores, memory, Node, date. */
export function machineText(now = new Date()): string {
  const info = backendInfo();
  const cpu = os.cpus()[0]?.model?.trim() ?? "unknown CPU";
  const versions = tf.version as Record<string, string>;
  const native = versions["tfjs-node"] ? `, tfjs-node ${versions["tfjs-node"]}` : "";
  return (
    `backend ${info?.name ?? tf.getBackend()} (tfjs ${versions["tfjs-core"] ?? versions.tfjs}${native}); ` +
    `${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; ` +
    `Node ${process.versions.node}; ${os.platform()} ${os.release()}; ${now.toISOString().slice(0, 10)}`
  );
}
