/**
 * One run, trained: the scenario built for its seed, the method's trainer made, resumed from
 * its checkpoint or started (pre-training the source where the method asks), trained epoch by
 * epoch with its weights recorded where the experiment asks, and its result assembled. The
 * runner (runner.ts) calls it for a serial run, the workers (worker.ts, queue-worker.ts) for
 * theirs; whoever calls it writes the result file.
 */
import * as fs from "fs";
import { tf } from "../backend/index";
import { logger } from "../log";
import { IndependentTrainer } from "../baselines/independent";
import { SourceReplayInvalid, TrainingStopped, type EpochRecord, type JointLoop } from "../core/loop";
import { MergeNetTrainer } from "../core/mergenet";
import { paramRef, readMatrix } from "../core/params";
import { attentionRelativeEntropy } from "../core/diagnostics";
import { checkpointExists } from "../core/checkpoint";
import { WeightRecorder } from "./recorder";
import { makeTrainer, methodNotApplicable, type MethodSpec } from "./methods";
import { checkpointDir, recordingPlan, RUNNER_VERSION, trainingSetting } from "./run-files";
import { loadTrajectory, replayPlan, saveTrajectory } from "./source-replay";
import { pretrainedPlan, pretrainOnce } from "./pretrained-sources";
import type { Scenario, ScenarioInstance } from "./scenario";
import type { AdapterDiagnostics, ExperimentConfig, RunResult, WeightRecord } from "./records";

/** The first pair's adapter attention maps for the current weights (layer 0, averaged over heads). */
function attentionMaps(trainer: MergeNetTrainer, instance: ScenarioInstance): Record<string, number[][]> | undefined {
  const pair = trainer.config.pairs[0];
  if (!pair || (pair.form ?? "full") !== "full" || trainer.config.sourceInput !== "model") return undefined;
  const adapter = trainer.adapters[0];
  const source = readMatrix(paramRef(instance.source.model, pair.source));
  const target = readMatrix(paramRef(instance.target.model, pair.target));
  const trace = adapter.inspect(source, target);
  const maps: Record<string, number[][]> = {};
  for (const [block, map] of Object.entries(trace.attention[0])) {
    if (map) maps[block] = (map.arraySync() as number[][]).map((row) => row.map(round4));
  }
  tf.dispose([source, target, trace]);
  return maps;
}

/** The first pair's diagnostics after training (see AdapterDiagnostics). */
function adapterDiagnostics(trainer: MergeNetTrainer): AdapterDiagnostics {
  const trace = trainer.inspectLink(0);
  const attentionEntropy: Record<string, number> = {};
  for (const [block, map] of Object.entries(trace.attention[0])) {
    if (map) attentionEntropy[block] = round4(attentionRelativeEntropy(map.arraySync() as number[][]));
  }
  tf.dispose(trace);
  const first = trainer.history.transfers.filter((t) => t.pair === 0 && t.direction === "forward");
  const summary = (values: number[]) => ({ mean: round4(values.reduce((a, b) => a + b, 0) / values.length), last: round4(values[values.length - 1]) });
  const cosines = first.map((t) => t.towardSource).filter((v) => Number.isFinite(v));
  const gates = Object.entries(trainer.history.epochs[trainer.history.epochs.length - 1]?.gates ?? {});
  const gate = gates.find(([key]) => key === "0:forward:0")?.[1];
  return {
    attentionEntropy,
    gate: gate === undefined ? undefined : Math.round(gate * 1e6) / 1e6,
    writeSize: first.length ? summary(first.map((t) => t.relativeChange)) : { mean: NaN, last: NaN },
    towardSource: cosines.length ? summary(cosines) : undefined,
    adapterUpdates: trainer.adapterUpdates,
    transfers: first.length,
  };
}

const round4 = (v: number): number => Math.round(v * 1e4) / 1e4;

/** One run to train: its experiment, method and seed, and where its checkpoint lives. */
export interface RunJob {
  config: ExperimentConfig;
  method: MethodSpec;
  seed: number;
  /** The run's configuration hash (run-files.ts runHash), computed once by whoever planned the run. */
  configHash: string;
  /** The results folder: the run's checkpoint lives under it. */
  resultsDir: string;
}

/** What a run reports while it trains, and how it learns that it should stop. */
export interface RunHooks {
  /** Called at each epoch's end. */
  epoch(record: EpochRecord, epochs: number): void;
  /**
   * True once the run should stop (the runner's first SIGINT/SIGTERM): a resumable run then
   * checkpoints at the end of its current step. Default: never.
   */
  stopped?: () => boolean;
}

/**
 * Trains one run on `scenario` (the experiment's, resolved once by the caller) and returns its
 * result; writes no result file. Runs in the runner's process or in a worker's.
 */
export async function trainOne(scenario: Scenario, job: RunJob, hooks: RunHooks): Promise<RunResult> {
  try {
    return await trainOnce(scenario, job, hooks, true);
  } catch (err) {
    if (!(err instanceof SourceReplayInvalid)) throw err;
    logger.warn(`${job.method.name} seed ${job.seed}: ${err.message}; training it again with its source`);
    return await trainOnce(scenario, job, hooks, false);
  }
}

async function trainOnce(scenario: Scenario, job: RunJob, hooks: RunHooks, replayAllowed: boolean): Promise<RunResult> {
  const { config, method, seed, configHash, resultsDir } = job;
  const started = Date.now();
  const stopped = hooks.stopped ?? ((): boolean => false);
  const instance = await scenario.build(seed, config.scenarioOptions, { resultsDir });
  const base = {
    experiment: config.name, method: method.name, kind: method.kind, seed, configHash,
    runnerVersion: RUNNER_VERSION, ...trainingSetting(), createdAt: new Date().toISOString(), metric: instance.metric,
  };
  const reason = methodNotApplicable(method, instance);
  if (reason) {
    instance.dispose();
    const transfers = { step: [], relativeChange: [], gradNorm: [] };
    return { ...base, wallSeconds: 0, notApplicable: reason, epochs: [], targetLoss: [], transfers, final: { target: {}, source: {} } };
  }
  let trainer: JointLoop | undefined;
  try {
    trainer = makeTrainer(method, instance);
    const plan = recordingPlan(config, method, seed);
    // Source replay (source-replay.ts): not for runs that time their own phases (a replayed source costs nothing).
    const replay = replayAllowed && !plan?.phases ? replayPlan(resultsDir, config, method, seed, trainer, instance.target.data.batchesPerEpoch) : undefined;
    const record = replay && loadTrajectory(replay);
    if (record) trainer.replaySource(record);
    // Runs that record weights along training restart from scratch when interrupted; the others
    // checkpoint at an epoch's end on SIGINT/SIGTERM and resume from there.
    const resumable = !plan;
    const ckpt = checkpointDir(resultsDir, config, method, seed, configHash);
    await resumeOrStart(trainer, job, instance, resumable ? ckpt : undefined, stopped);
    if (replay && !record && trainer.steps === 0) trainer.recordSource();
    const recorder = new WeightRecorder(instance.target.model, plan?.weights ?? [], plan?.trajectory ?? false);
    if (plan?.phases) trainer.startProfiling();
    const running = trainer;
    const interrupt = async (): Promise<never> => {
      if (!resumable) throw new Error(`interrupted: ${method.name} seed ${seed} records weights along training, so it starts over when run again`);
      await running.saveCheckpoint(ckpt);
      const done = `${running.history.epochs.length} of ${config.epochs} epochs done`;
      throw new Error(`interrupted: ${method.name} seed ${seed} saved at step ${running.steps} (${done}) in ${ckpt}; run the same command again to resume`);
    };
    trainer.stopWhen = stopped;
    // Results read the source's metrics at the last epoch only (final.source); evaluating it at
    // every epoch cost up to 40 % of a run (docs/PERFORMANCE.md). Training is unchanged.
    trainer.evaluateSourceAt = (epoch) => epoch === config.epochs - 1;
    while (trainer.history.epochs.length < config.epochs) {
      let epochRecord: EpochRecord;
      try {
        epochRecord = await trainer.trainEpoch();
      } catch (err) {
        if (err instanceof TrainingStopped) await interrupt();
        if (err instanceof SourceReplayInvalid) fs.rmSync(ckpt, { recursive: true, force: true }); // its source did not train
        throw err;
      }
      recorder.epochEnded();
      hooks.epoch(epochRecord, config.epochs);
      if (stopped() && trainer.history.epochs.length < config.epochs) await interrupt();
    }
    // A non-finite loss that the trainer did not recover from (and record) is an error.
    const recovered = new Set(trainer.history.divergences.map((d) => d.step));
    for (const [i, loss] of trainer.history.targetLoss.entries()) {
      if (!Number.isFinite(loss) && !recovered.has(i)) {
        throw new Error(`the target's loss became ${loss} at step ${i}; lower a learning rate or use output 'interp'`);
      }
    }
    const weights = recorder.finish();
    const recorded = replay && !record ? trainer.sourceRecording() : undefined;
    if (replay && recorded) {
      try {
        saveTrajectory(replay, recorded);
      } catch (err) {
        // The run itself is done: a record that cannot be written costs later runs time, not this one its result.
        logger.warn(`source trajectory ${replay.dir} not saved (${(err as Error).message.split("\n")[0]}); later runs of seed ${seed} train their source`);
      }
    }
    return runResult(base, started, trainer, instance, seed === config.seeds[0], weights, plan?.phases ?? false);
  } finally {
    trainer?.dispose();
    instance.dispose();
  }
}

/**
 * Resumes `trainer` from the checkpoint in `ckpt` where there is a usable one (undefined: the
 * run is not resumable), and otherwise starts it: pre-trains the source where the method asks,
 * or loads the same pre-training stored by an earlier run of the seed (pretrained-sources.ts).
 */
async function resumeOrStart(
  trainer: JointLoop,
  job: RunJob,
  instance: ScenarioInstance,
  ckpt: string | undefined,
  stopped: () => boolean,
): Promise<void> {
  const { method, seed } = job;
  let resumed = false;
  if (ckpt !== undefined && checkpointExists(ckpt)) {
    try {
      await trainer.loadCheckpoint(ckpt);
      resumed = true;
      logger.info(`${method.name} seed ${seed}: resuming from the checkpoint at step ${trainer.steps} (after ${trainer.history.epochs.length} epochs)`);
    } catch (err) {
      // loadCheckpoint checks everything before it changes anything: the trainer is still fresh.
      logger.warn(`checkpoint ${ckpt} cannot be used (${(err as Error).message.split("\n")[0]}); that run starts over`);
      fs.rmSync(ckpt, { recursive: true, force: true });
    }
  }
  const epochs = method.pretrainSourceEpochs;
  if (!epochs || resumed) return;
  const plan = pretrainedPlan(job.resultsDir, job.config, seed, epochs, instance.source.model);
  await pretrainOnce(plan, instance.source.model, async () => {
    const pre = new IndependentTrainer(undefined, { ...instance.source, evaluate: undefined }); // its epochs are not kept: no evaluation
    pre.stopWhen = stopped;
    try {
      await pre.fit(epochs);
    } catch (err) {
      if (err instanceof TrainingStopped) {
        throw new Error(`interrupted: ${method.name} seed ${seed} stopped while pre-training its source, so it starts over when run again`);
      }
      throw err;
    } finally {
      pre.dispose();
    }
  });
}

/** The adapters' trainable parameters, all links together. */
function adapterParameters(trainer: MergeNetTrainer): number {
  return trainer.adapters.reduce((sum, a) => sum + a.variables.reduce((n, v) => n + v.size, 0), 0);
}

/** A trained run's result file: `base` (what the run is) with what training left behind. */
function runResult(
  base: Omit<RunResult, "wallSeconds" | "epochs" | "targetLoss" | "transfers" | "final">,
  started: number,
  trainer: JointLoop,
  instance: ScenarioInstance,
  firstSeed: boolean,
  weights: Record<string, WeightRecord> | undefined,
  phases: boolean,
): RunResult {
  const history = trainer.history;
  const last = history.epochs[history.epochs.length - 1];
  const attention = trainer instanceof MergeNetTrainer && firstSeed ? attentionMaps(trainer, instance) : undefined;
  return {
    ...base,
    wallSeconds: (Date.now() - started) / 1000,
    epochs: history.epochs,
    targetLoss: history.targetLoss.map((v) => Math.round(v * 1e5) / 1e5),
    transfers: {
      step: history.transfers.map((t) => t.step),
      relativeChange: history.transfers.map((t) => t.relativeChange),
      gradNorm: history.transfers.map((t) => t.gradNorm),
    },
    attention,
    divergences: history.divergences.length ? history.divergences : undefined,
    final: { target: last?.target ?? {}, source: last?.source ?? {} },
    adapterParameters: trainer instanceof MergeNetTrainer ? adapterParameters(trainer) : undefined,
    diagnostics: trainer instanceof MergeNetTrainer && trainer.config.pairs.length > 0 ? adapterDiagnostics(trainer) : undefined,
    weights,
    phases: phases ? trainer.profile() : undefined,
  };
}
