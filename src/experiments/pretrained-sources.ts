/**
 * Pre-trained sources, trained once per seed: the "(pre-trained source)" methods of one seed
 * (logit KD, MergeNet with a frozen source, its random-source control) each pre-train the same
 * source the same way before freezing it. The first such run stores the pre-trained weights
 * under `<results>/pretrained-sources/<key>/`; later runs with the same key load them instead of
 * pre-training. A frozen source never steps and reads no training data afterwards, so loading
 * its weights leaves the run's result file the same to the last bit
 * (test/pretrained-sources.test.ts).
 *
 * The key is everything the pre-training depends on: the scenario and its options, the seed, the
 * pre-training epochs, the runner version, the backend, the TensorFlow thread setting, the
 * processor model (as for source replay, source-replay.ts) and a fingerprint of the source's
 * weights before pre-training (their names, shapes and values: a method that changed the source
 * before pre-training gets a key of its own).
 * `MERGENET_SOURCE_REPLAY=0` turns this off with replay: every run then trains its own source.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { tf } from "../backend/index";
import { logger } from "../log";
import type { ExperimentConfig } from "./records";
import { RUNNER_VERSION, stableStringify, trainingSetting, writeFileAtomic, writeJsonAtomic } from "./run-files";
import { sourceReplayEnabled } from "./source-replay";

export interface PretrainedPlan {
  dir: string;
  key: string;
}

interface StoredMeta {
  key: string;
  /** The source's weights in `model.weights` order, as stored one after another in weights.f32. */
  weights: { name: string; shape: number[] }[];
}

/** sha256 over the model's weights: names, shapes and values, in `model.weights` order. */
function weightsFingerprint(model: tf.LayersModel): string {
  const hash = crypto.createHash("sha256");
  for (const w of model.weights) {
    hash.update(`${w.originalName}:${w.shape.join("x")};`);
    const values = w.read().dataSync() as Float32Array;
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return hash.digest("hex");
}

/**
 * Where the source of this run, pre-trained for `epochs`, is (or will be) stored; undefined when
 * reuse is off. Call it with the source as the run built it, before pre-training.
 */
export function pretrainedPlan(resultsDir: string, config: ExperimentConfig, seed: number, epochs: number, source: tf.LayersModel): PretrainedPlan | undefined {
  const what = { scenario: config.scenario, scenarioOptions: config.scenarioOptions, seed, epochs };
  return storedSourcePlan(resultsDir, `${config.scenario}-seed-${seed}-pre-${epochs}`, what, source);
}

/**
 * The store for any pre-training of `source` that `what` (plain JSON) describes in full, under
 * `<resultsDir>/pretrained-sources/<label>-<key>/`; undefined when reuse is off. The key adds the
 * runner version, backend, thread setting, processor and the source's weights before training.
 * The positive control's scenario stores its pre-trained source with it.
 */
export function storedSourcePlan(resultsDir: string, label: string, what: unknown, source: tf.LayersModel): PretrainedPlan | undefined {
  if (!sourceReplayEnabled()) return undefined;
  const key = crypto.createHash("sha256").update(stableStringify({
    runnerVersion: RUNNER_VERSION, what, ...trainingSetting(), initial: weightsFingerprint(source),
  })).digest("hex").slice(0, 16);
  return { dir: path.join(resultsDir, "pretrained-sources", `${label}-${key}`), key };
}

/** The source's weights by name and (concrete) shape, in `model.weights` order. */
const weightsOf = (model: tf.LayersModel): { name: string; shape: number[] }[] => model.weights.map((w) => ({ name: w.originalName, shape: [...w.read().shape] }));

const describeWeights = (weights: { name: string; shape: number[] }[]): string => weights.map((w) => `${w.name} [${w.shape.join(", ")}]`).join(", ");

/**
 * Writes the stored pre-trained weights into `source` and returns true; false when there are none
 * yet. A damaged or mismatched store is named in a warning, left for the run to overwrite, and
 * answered with false: the run pre-trains as if there were none. Changes nothing unless it loads.
 */
export function loadPretrained(plan: PretrainedPlan, source: tf.LayersModel): boolean {
  const metaFile = path.join(plan.dir, "meta.json");
  if (!fs.existsSync(metaFile)) return false;
  try {
    const meta = JSON.parse(fs.readFileSync(metaFile, "utf8")) as StoredMeta;
    if (meta.key !== plan.key) throw new Error(`it was stored under key ${meta.key}, not ${plan.key}`);
    const expected = weightsOf(source);
    if (describeWeights(meta.weights) !== describeWeights(expected)) {
      throw new Error(`it holds ${describeWeights(meta.weights)}; the source has ${describeWeights(expected)}`);
    }
    const file = path.join(plan.dir, "weights.f32");
    const buffer = fs.readFileSync(file);
    const sizes = expected.map((w) => w.shape.reduce((a, b) => a * b, 1));
    const total = sizes.reduce((a, b) => a + b, 0);
    if (buffer.byteLength !== total * 4) throw new Error(`${file} holds ${buffer.byteLength} bytes, not ${total * 4}`);
    const all = new Float32Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
    if (!all.every(Number.isFinite)) throw new Error(`${file} holds values that are not finite`);
    let offset = 0;
    source.weights.forEach((w, i) => {
      const value = tf.tensor(all.subarray(offset, offset + sizes[i]), expected[i].shape);
      w.write(value);
      value.dispose();
      offset += sizes[i];
    });
    return true;
  } catch (err) {
    logger.warn(`pre-trained source ${plan.dir} cannot be used (${(err as Error).message.split("\n")[0]}); the run pre-trains its source`);
    return false;
  }
}

/** Stores the pre-trained source's weights (the values first, then the meta file that makes them visible; each write atomic). */
export function savePretrained(plan: PretrainedPlan, source: tf.LayersModel): void {
  const weights = weightsOf(source);
  const values = source.weights.map((w) => w.read().dataSync() as Float32Array);
  const all = new Float32Array(values.reduce((n, v) => n + v.length, 0));
  let offset = 0;
  for (const v of values) {
    all.set(v, offset);
    offset += v.length;
  }
  writeFileAtomic(path.join(plan.dir, "weights.f32"), new Uint8Array(all.buffer));
  const meta: StoredMeta = { key: plan.key, weights };
  writeJsonAtomic(path.join(plan.dir, "meta.json"), meta);
}

/**
 * Pre-trains `source` through `pretrain` unless a stored copy exists under `plan`; stores what
 * it pre-trained. A store that cannot be written costs later runs time, not this run its result.
 */
export async function pretrainOnce(plan: PretrainedPlan | undefined, source: tf.LayersModel, pretrain: () => Promise<void>): Promise<void> {
  if (plan && loadPretrained(plan, source)) return;
  await pretrain();
  if (!plan) return;
  try {
    savePretrained(plan, source);
  } catch (err) {
    logger.warn(`pre-trained source ${plan.dir} not saved (${(err as Error).message.split("\n")[0]}); later runs pre-train their own`);
  }
}
