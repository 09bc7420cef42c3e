/**
 * Source replay in the runner: the runs of one seed that train the same source on their own
 * (one-way MergeNet and its controls, the "pair" baseline) share one training of it. The first
 * such run records the source's trajectory (src/core/source-trajectory.ts) under
 * `<results>/source-trajectories/<key>/`; later runs with the same key replay it instead of
 * training the source. Their result files are the same to the last bit (test/source-replay.test.ts
 * and docs/PERFORMANCE.md), only faster.
 *
 * The key is everything the source's training depends on: the scenario and its options, the
 * seed, the number of epochs (the source's metrics are recorded at the last), the runner version,
 * the backend, the TensorFlow thread setting (the CNN rounds differently with two threads) and
 * the processor model.
 * `MERGENET_SOURCE_REPLAY=0` turns replay off (every run trains its source).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { JointLoop } from "../core/loop";
import type { SourceTrajectory } from "../core/source-trajectory";
import { logger } from "../log";
import type { MethodSpec } from "./methods";
import type { ExperimentConfig } from "./records";
import { RUNNER_VERSION, stableStringify, trainingSetting, writeFileAtomic, writeJsonAtomic } from "./run-files";

/** Largest record (recorded weights × steps, bytes) kept on disk; bigger sources just train. */
export const MAX_RECORD_BYTES = 256 * 2 ** 20;

export interface ReplayPlan {
  dir: string;
  key: string;
  /** The source weights the run reads. */
  weights: { name: string; size: number }[];
  steps: number;
}

interface StoredMeta {
  key: string;
  steps: number;
  losses: number[];
  metrics: Record<number, Record<string, number>>;
  weights: Record<string, number[]>;
}

/** Whether replay is on (MERGENET_SOURCE_REPLAY=0 turns it off). */
export function sourceReplayEnabled(): boolean {
  return process.env.MERGENET_SOURCE_REPLAY !== "0";
}

/**
 * The plan for a run whose source can be recorded or replayed, or undefined (the method
 * pre-trains or freezes its source, or the source's training depends on the target, or the
 * record would be too large).
 */
export function replayPlan(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number, trainer: JointLoop, stepsPerEpoch: number): ReplayPlan | undefined {
  if (!sourceReplayEnabled() || method.pretrainSourceEpochs !== undefined) return undefined;
  const reads = trainer.sourceReplayable();
  if (!reads) return undefined;
  const steps = config.epochs * stepsPerEpoch;
  const bytes = reads.reduce((n, w) => n + w.size, 0) * 4 * steps;
  if (bytes > MAX_RECORD_BYTES) return undefined;
  const key = crypto.createHash("sha256").update(stableStringify({
    runnerVersion: RUNNER_VERSION, scenario: config.scenario, scenarioOptions: config.scenarioOptions, seed, epochs: config.epochs,
    ...trainingSetting(), // another processor or thread setting may round the source's kernels differently (a shared results folder)
  })).digest("hex").slice(0, 16);
  return { dir: path.join(resultsDir, "source-trajectories", `${config.scenario}-seed-${seed}-${key}`), key, weights: reads, steps };
}

const fileOf = (dir: string, weight: string): string => path.join(dir, `${weight.replace(/[^A-Za-z0-9_-]+/g, "_")}.f32`);

/** The stored trajectory for `plan`, or undefined when it is missing, incomplete or damaged (then the run trains). */
export function loadTrajectory(plan: ReplayPlan): SourceTrajectory | undefined {
  const metaFile = path.join(plan.dir, "meta.json");
  if (!fs.existsSync(metaFile)) return undefined;
  try {
    const meta = JSON.parse(fs.readFileSync(metaFile, "utf8")) as StoredMeta;
    if (meta.key !== plan.key || meta.steps !== plan.steps || meta.losses.length !== plan.steps) return undefined;
    const values: Float32Array[][] = [];
    for (const w of plan.weights) {
      const shape = meta.weights[w.name];
      const file = fileOf(plan.dir, w.name);
      if (!shape || !fs.existsSync(file)) return undefined; // recorded by a run that read other weights
      const buffer = fs.readFileSync(file);
      if (buffer.byteLength !== w.size * 4 * plan.steps) throw new Error(`${file} holds ${buffer.byteLength} bytes, not ${w.size * 4 * plan.steps}`);
      const all = new Float32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 4);
      values.push(Array.from({ length: plan.steps }, (_, k) => all.slice(k * w.size, (k + 1) * w.size)));
    }
    return { weights: plan.weights.map((w) => ({ name: w.name, shape: meta.weights[w.name] })), values, losses: meta.losses, metrics: meta.metrics };
  } catch (err) {
    logger.warn(`source trajectory ${plan.dir} cannot be used (${(err as Error).message.split("\n")[0]}); the run trains its source`);
    return undefined;
  }
}

/** Stores a recorded trajectory (weights first, then the meta file that makes them visible; each write atomic). */
export function saveTrajectory(plan: ReplayPlan, t: SourceTrajectory): void {
  if (t.losses.length !== plan.steps) return; // a shorter run (stopped early) is no record of the plan
  const shapes: Record<string, number[]> = {};
  t.weights.forEach((w, i) => {
    const size = w.shape.reduce((a, b) => a * b, 1);
    const all = new Float32Array(size * t.losses.length);
    t.values[i].forEach((v, k) => all.set(v, k * size));
    writeFileAtomic(fileOf(plan.dir, w.name), new Uint8Array(all.buffer, all.byteOffset, all.byteLength));
    shapes[w.name] = w.shape;
  });
  const metaFile = path.join(plan.dir, "meta.json");
  let known: Record<string, number[]> = {};
  try {
    known = (JSON.parse(fs.readFileSync(metaFile, "utf8")) as StoredMeta).weights ?? {};
  } catch {
    // none yet, or unreadable: this record's weights stand alone
  }
  const meta: StoredMeta = { key: plan.key, steps: plan.steps, losses: t.losses, metrics: t.metrics, weights: { ...known, ...shapes } };
  writeJsonAtomic(metaFile, meta);
}
