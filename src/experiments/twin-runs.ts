/**
 * Twin runs: the same training asked for under another experiment's or method's name. Notebook 05
 * trains "target alone" in six of its experiments on the same seeds, notebooks 01 and 04 train the
 * same target alone, and 05's confirmation repeats four of its search's methods on the search's
 * seeds. A run's result depends only on what `trainingKey` hashes (the scenario and its options,
 * the method without its name, the epochs, the seed, what the run records, and, for MergeNet,
 * whether the seed is its experiment's first, which decides whether attention maps are kept),
 * never on the names.
 *
 * So every result the runner writes is indexed by that key (`results/run-index/<key>.json`,
 * naming the result file), and a run about to train whose key is indexed gets a copy of its
 * twin's result instead, under its own experiment, method and configuration hash, with
 * `copiedFrom` naming the twin's file. The numbers are the twin's to the last bit, which is what
 * training it again would give (the runner's cache reuses results across thread settings and
 * processors in the same way; RunResult.threads and .processor travel with the copy).
 *
 * A damaged, missing or changed twin (its file no longer holds the configuration hash the index
 * recorded) is ignored and the run trains; `force` (MERGENET_FORCE=1) trains every run;
 * MERGENET_TWINS=0 turns the reuse off.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { MethodSpec } from "./methods";
import type { ExperimentConfig, RunResult } from "./records";
import { recordingPlan, RUNNER_VERSION, stableStringify, writeJsonAtomic } from "./run-files";

/** Where the index lives inside a results folder. */
export const INDEX_FOLDER = "run-index";

/** What determines a run's result: its configuration hash's key without the method's name (the experiment's is not in it), plus, for MergeNet, whether the seed is the experiment's first. */
export function trainingKey(config: ExperimentConfig, method: MethodSpec, seed: number): string {
  const { name: _name, ...unnamed } = method;
  const key = {
    runnerVersion: RUNNER_VERSION,
    scenario: config.scenario,
    scenarioOptions: config.scenarioOptions,
    method: unnamed,
    epochs: config.epochs,
    seed,
    record: recordingPlan(config, method, seed),
    // A MergeNet run of its experiment's first seed keeps attention maps (train-run.ts); no other kind depends on it.
    firstSeed: method.kind === "mergenet" ? seed === config.seeds[0] : undefined,
  };
  return crypto.createHash("sha256").update(stableStringify(key)).digest("hex").slice(0, 24);
}

interface IndexEntry {
  /** The twin's result file, relative to the results folder. */
  file: string;
  /** The configuration hash that file held when indexed. */
  configHash: string;
}

const entryFile = (resultsDir: string, key: string): string => path.join(resultsDir, INDEX_FOLDER, `${key}.json`);

export const twinsEnabled = (): boolean => process.env.MERGENET_TWINS !== "0";

/**
 * Records `run`, just written to `file` (or found there), as the result of its training key; a
 * copy is not indexed (its twin is). `ifMissing`: only where the key has no usable entry (none,
 * or one whose file is gone, damaged or changed). Never throws: the index only saves time.
 */
export function indexRun(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number, file: string, run: RunResult, options: { ifMissing?: boolean } = {}): void {
  if (run.copiedFrom || run.notApplicable || !twinsEnabled()) return;
  const key = trainingKey(config, method, seed);
  const entry: IndexEntry = { file: path.relative(resultsDir, file), configHash: run.configHash };
  if (options.ifMissing) {
    const current = readEntry(resultsDir, key);
    // The common case when a cached experiment is read again: the entry names this very file and hash, and no result file need be parsed.
    if (current && ((current.file === entry.file && current.configHash === entry.configHash) || indexedTwin(resultsDir, current))) return;
  }
  try {
    writeJsonAtomic(entryFile(resultsDir, key), entry);
  } catch {
    // an unwritable index costs a retraining later, nothing else
  }
}

/** The index's entry for `key`, if there is a readable one. */
function readEntry(resultsDir: string, key: string): IndexEntry | undefined {
  try {
    return JSON.parse(fs.readFileSync(entryFile(resultsDir, key), "utf8")) as IndexEntry;
  } catch {
    return undefined; // none indexed, or a damaged entry
  }
}

/** The result `entry` names, if its file still holds what was indexed. */
function indexedTwin(resultsDir: string, entry: IndexEntry): RunResult | undefined {
  try {
    const twin = JSON.parse(fs.readFileSync(path.resolve(resultsDir, entry.file), "utf8")) as RunResult;
    return twin.configHash === entry.configHash && twin.runnerVersion === RUNNER_VERSION ? twin : undefined;
  } catch {
    return undefined; // the twin is gone or damaged
  }
}

/**
 * The twin's result as this run's (its names, its hash, `copiedFrom`), written to `file`; or
 * undefined when no usable twin is indexed (the run then trains).
 */
export function copyTwin(resultsDir: string, config: ExperimentConfig, method: MethodSpec, seed: number, configHash: string, file: string): RunResult | undefined {
  if (!twinsEnabled()) return undefined;
  const entry = readEntry(resultsDir, trainingKey(config, method, seed));
  if (!entry || path.resolve(resultsDir, entry.file) === path.resolve(file)) return undefined;
  const twin = indexedTwin(resultsDir, entry);
  if (!twin || twin.seed !== seed || twin.kind !== method.kind || twin.notApplicable || !Array.isArray(twin.epochs) || twin.epochs.length !== config.epochs) return undefined;
  const copy: RunResult = { ...twin, experiment: config.name, method: method.name, configHash, copiedFrom: entry.file };
  try {
    writeJsonAtomic(file, copy);
  } catch {
    return undefined; // the run trains, and its own write says what is wrong with the folder
  }
  return copy;
}
