/**
 * A run's files: where its result and checkpoint live, the key that says which configuration
 * a result belongs to, and when a saved result is reused. The runner (runner.ts), the cost
 * estimate's callers and the workers that check a job's hash (worker.ts) read them here.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { backendInfo } from "../backend/index";
import { logger } from "../log";
import type { MethodSpec } from "./methods";
import type { ExperimentConfig, RunResult } from "./records";

/** Bump when a change to the code makes earlier cached results wrong to reuse. */
export const RUNNER_VERSION = 1;

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
  const key = {
    runnerVersion: RUNNER_VERSION,
    scenario: config.scenario,
    scenarioOptions: config.scenarioOptions,
    method,
    epochs: config.epochs,
    seed,
    record: recordingPlan(config, method, seed),
  };
  return crypto.createHash("sha256").update(stableStringify(key)).digest("hex").slice(0, 16);
}

/** What one run records (undefined: nothing); only this, not the whole `record`, enters the run's cache key. */
export interface RecordingPlan {
  weights: string[];
  trajectory: boolean;
  phases: boolean;
}

export function recordingPlan(config: ExperimentConfig, method: MethodSpec, seed: number): RecordingPlan | undefined {
  const record = config.record;
  if (!record || method.kind === "source-alone") return undefined;
  const weights = record.weights ?? [];
  const trajectory = weights.length > 0 && (record.trajectories ?? []).includes(method.name) && seed === config.seeds[0];
  const plan = { weights, trajectory, phases: record.phases ?? false };
  return plan.weights.length > 0 || plan.phases ? plan : undefined;
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

/** The folder of one method's result files, one per seed. */
export function methodFolder(resultsDir: string, config: ExperimentConfig, method: MethodSpec): string {
  return path.join(resultsDir, "runs", config.name, slug(method.name));
}

export function runFile(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number): string {
  return path.join(methodFolder(resultsDir, config, method), `seed-${seed}.json`);
}

/** Writes JSON atomically (writeFileAtomic). */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value)}\n`);
}

/** Writes a file atomically: a temporary file beside the target, then a rename; a failed write leaves no temporary file behind (a full disk stays no fuller). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, data);
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
export function readCached(file: string, hash: string, config: ExperimentConfig, method: MethodSpec, seed: number, quiet = false): RunResult | undefined {
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

/** Where an interrupted run's checkpoint lives; the run's hash is in the name, so a changed configuration never resumes from it. */
export function checkpointDir(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number, hash: string): string {
  return path.join(resultsDir, "checkpoints", config.name, slug(method.name), `seed-${seed}-${hash}`);
}

/**
 * The processor as far as rounding goes: its model name and, on Linux, its family, model and
 * stepping numbers. The name alone is not enough: two machines that both report "AMD EPYC"
 * trained the same CNN to different bits (README, Results). Without an argument: this machine's,
 * read once per process.
 */
export function processorId(cpuinfo?: string): string {
  if (cpuinfo === undefined) return (thisProcessor ??= processorId(readCpuinfo() ?? ""));
  const name = os.cpus()[0]?.model?.trim() ?? "unknown";
  if (!cpuinfo) return name;
  const field = (key: string): string => cpuinfo.match(new RegExp(`^${key}\\s*:\\s*(.*)$`, "m"))?.[1].trim() ?? "?";
  return `${name} (family ${field("cpu family")}, model ${field("model")}, stepping ${field("stepping")})`;
}

let thisProcessor: string | undefined;

/**
 * What, besides the code and its inputs, decides a training's bits in this process: the
 * TensorFlow backend, its intra-op thread setting and the processor. Result files record it, and
 * the keys of stored source trainings (source-replay.ts, pretrained-sources.ts) include it.
 */
export function trainingSetting(): { backend: string; threads: string; processor: string } {
  return { backend: backendInfo()?.name ?? "unknown", threads: process.env.TF_NUM_INTRAOP_THREADS ?? "default", processor: processorId() };
}

function readCpuinfo(): string | undefined {
  try {
    return fs.readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return undefined; // not Linux: the model name stands alone
  }
}
