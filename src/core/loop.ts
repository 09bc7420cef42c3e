/**
 * The loop every method in this project shares: a global step counter, one step of each
 * model per global step, per-step losses kept on the device and read in one sync every
 * few dozen steps, and an epoch record with both models' metrics. MergeNet and the
 * baselines differ only in what one global step does (`stepOnce`).
 */
import { tf } from "../backend/index";
import type { BatchStream } from "./batch-stream";
import { readCheckpoint, writeCheckpoint } from "./checkpoint";
import { labelsOf, type LossFn } from "./losses";
import { TrajectoryPlayer, TrajectoryRecorder, weightsByName, type SourceTrajectory } from "./source-trajectory";

/** One model in a joint run. */
export interface ModelSide {
  model: tf.LayersModel;
  optimizer: tf.Optimizer;
  /** L2 decay added to the gradient (PyTorch SGD's weight_decay). Default 0. */
  weightDecay?: number;
  loss: LossFn;
  data: BatchStream;
  /** Metrics reported at each epoch's end (e.g. test accuracy). */
  evaluate?: (model: tf.LayersModel) => Promise<Record<string, number>>;
}

export interface SideState {
  spec: ModelSide;
  weightDecay: number;
  frozen: boolean;
}

export interface TransferRecord {
  step: number;
  /** Index into the configuration's pairs. */
  pair: number;
  /** `forward` writes into the target; `backward` into the source (two-way). */
  direction: "forward" | "backward";
  /** ‖W_new − W‖ / ‖W‖ over the written matrices: how far this transfer moved the weight. */
  relativeChange: number;
  /** Global norm of the adapter's gradient before clipping (NaN where there is no adapter). */
  gradNorm: number;
  /**
   * cos(W_new − W, S − W): whether the write points from the weight toward the source's own
   * weight S (the model's, also under the random- and permuted-source controls). Only where the
   * pair's matrices have one shape (NaN elsewhere); meaningful only where their axes line up.
   */
  towardSource: number;
}

export interface EpochRecord {
  epoch: number;
  /** Global step count at the epoch's end. */
  steps: number;
  /** Mean training loss over the epoch's steps (NaN for a frozen or absent source). */
  sourceLoss: number;
  targetLoss: number;
  source: Record<string, number>;
  target: Record<string, number>;
  /** Write-back gate g per pair and direction at the epoch's end, where the mode has one. */
  gates: Record<string, number>;
  seconds: number;
}

export interface TrainerHistory {
  /** Per-step training losses (index = step; NaN where the source did not step). */
  sourceLoss: number[];
  targetLoss: number[];
  transfers: TransferRecord[];
  epochs: EpochRecord[];
  /** Steps whose loss was NaN or infinite, and what the loop did about it. */
  divergences: DivergenceRecord[];
}

export interface DivergenceRecord {
  /** The step whose loss was not finite. */
  step: number;
  /** The step of the last good state, restored in place (models, optimisers, adapters). */
  restoredFrom: number;
  /** What the trainer changed before going on (e.g. the adapter's new learning rate). */
  action: string;
}

export interface StepLosses {
  source?: tf.Scalar;
  target: tf.Scalar;
}

/** Statistics of one transfer, read from the device at the next flush. */
export interface TransferStats {
  record: Omit<TransferRecord, "relativeChange" | "gradNorm" | "towardSource">;
  change: tf.Scalar;
  gradNorm?: tf.Scalar;
  towardSource?: tf.Scalar;
}

/** What a trainer adds to a checkpoint beyond the models, their optimisers and the loop. */
export interface ExtraState {
  /** Tensors to store (read only; the trainer keeps ownership unless listed in `owned`). */
  tensors: Record<string, tf.Tensor>;
  /** Temporary copies made for the checkpoint, disposed once written. */
  owned: tf.Tensor[];
  meta: unknown;
}

interface LoopMeta {
  trainer: string;
  step: number;
  epochStartStep: number;
  history: TrainerHistory;
  streams: Record<string, { epoch: number; index: number }>;
  weights: Record<string, { name: string; shape: number[] }[]>;
  optimizerWeights: Record<string, number>;
  extra: unknown;
  /** The source followed a recorded trajectory: its stream and optimiser did not move. */
  sourceReplayed?: boolean;
}

/** Steps between two reads of the accumulated losses (one device sync each). */
const FLUSH_EVERY = 50;

/** Thrown where a run that replays its source cannot go on doing so (train it without replay). */
export class SourceReplayInvalid extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SourceReplayInvalid";
  }
}

/**
 * Thrown by trainEpoch when `stopWhen` asks to stop: the trainer stands at a step boundary
 * with every step so far checked finite, so saveCheckpoint can keep it and a resumed run goes
 * on from exactly that step.
 */
export class TrainingStopped extends Error {
  constructor(readonly step: number) {
    super(`training stopped at step ${step}, as asked`);
    this.name = "TrainingStopped";
  }
}

export abstract class JointLoop {
  readonly history: TrainerHistory = { sourceLoss: [], targetLoss: [], transfers: [], epochs: [], divergences: [] };
  /** Divergences (a NaN or infinite loss) recovered from before training stops with an error. */
  maxDivergences = 3;
  /**
   * Asked after every step once the event loop has had its turn (so a signal handler that sets
   * a flag has run): true ends trainEpoch at that step boundary with TrainingStopped. Without it
   * the loop yields only every FLUSH_EVERY steps, and a short run would never see a Ctrl-C.
   */
  stopWhen: (() => boolean) | undefined;
  /**
   * Asked at each epoch's end with the epoch's index: false skips the source's evaluation for
   * that epoch (its record's `source` is then `{}`); training is the same either way. Undefined:
   * every epoch. The experiment runner evaluates the source only at a run's last epoch, the
   * only one its results read (measured: in notebook 01 the CNN source's per-epoch evaluation on
   * 5,000 test images took about 40 % of a MergeNet run).
   */
  evaluateSourceAt: ((epoch: number) => boolean) | undefined;
  protected readonly source: SideState | undefined;
  protected readonly target: SideState;
  protected step = 0;
  private epochStartStep = 0;
  private pendingLosses: StepLosses[] = [];
  private pendingTransfers: TransferStats[] = [];
  private frozenSourceMetrics: Record<string, number> | undefined;
  private disposed = false;
  /** The last state known to be finite, kept in memory to recover from a divergence. */
  private goodState: { step: number; tensors: Map<string, tf.Tensor>; meta: LoopMeta } | undefined;
  private phaseTimes: Record<string, { ms: number; calls: number }> | undefined;
  private sourceRecorder: TrajectoryRecorder | undefined;
  private sourcePlayer: TrajectoryPlayer | undefined;
  /** Set when a recording can no longer be trusted (the loop recovered from a divergence). */
  private recordingSpoilt: string | undefined;

  protected constructor(source: ModelSide | undefined, target: ModelSide, opts: { freezeSource?: boolean } = {}) {
    if (source && source.model === target.model) throw new Error("source and target must be two different models");
    this.source = source && { spec: source, weightDecay: source.weightDecay ?? 0, frozen: opts.freezeSource ?? false };
    this.target = { spec: target, weightDecay: target.weightDecay ?? 0, frozen: false };
    for (const [label, side] of this.sides()) if (!side.frozen) checkSideData(label, side.spec); // a frozen side reads no training data
  }

  /** What one global step does; returns the step's losses (scalars the loop disposes). */
  protected abstract stepOnce(): StepLosses;

  /** Write-back gates to report at each epoch's end (none by default). */
  protected gates(): Record<string, number> {
    return {};
  }

  /** Frees what the subclass owns (adapters, optimisers). */
  protected disposeOwned(): void {}

  /** State beyond models, optimisers and loop counters (adapters etc.); none by default. */
  protected extraState(): ExtraState {
    return { tensors: {}, owned: [], meta: null };
  }

  /** Restores what extraState saved (tensors are the checkpoint's; do not keep them). */
  protected restoreExtraState(_tensors: Map<string, tf.Tensor>, _meta: unknown): void {}

  /**
   * What the trainer changes after the last good state was restored from a divergence, in
   * words for the history; nothing by default (MergeNet halves its adapters' learning rate).
   * `memo` is what divergenceMemo returned just before the restore (settings the restore
   * would otherwise roll back).
   */
  protected afterDivergence(_memo: unknown): string {
    return "no change";
  }

  /** Settings to carry across the restore of a divergence (see afterDivergence). */
  protected divergenceMemo(): unknown {
    return undefined;
  }

  /**
   * Whether the source's training depends on nothing but the source (its model, optimiser and
   * stream): true only for trainers in which nothing flows back into it. Needed to record or
   * replay it (source-trajectory.ts). False by default.
   */
  protected sourceTrainsAlone(): boolean {
    return false;
  }

  /** The source weights (originalNames) this trainer reads during training; none by default. */
  protected sourceWeightsRead(): string[] {
    return [];
  }

  /**
   * The source weights (name, element count) a record must hold for this trainer to replay its
   * source, or undefined where it cannot: no source, a frozen one, or one whose training
   * depends on the target.
   */
  sourceReplayable(): { name: string; size: number }[] | undefined {
    const source = this.source;
    if (!source || source.frozen || !this.sourceTrainsAlone()) return undefined;
    const names = this.sourceWeightsRead();
    return weightsByName(source.spec.model, names, "sourceReplayable").map((w, i) => ({ name: names[i], size: w.shape.reduce((a: number, b) => a * Number(b), 1) }));
  }

  private checkTrajectoryUse(what: string): SideState {
    const source = this.source;
    if (!source) throw new Error(`${what}: this trainer has no source`);
    if (source.frozen) throw new Error(`${what}: the source is frozen, so it does not train; there is nothing to record or replay`);
    if (!this.sourceTrainsAlone()) {
      throw new Error(`${what}: in a ${this.constructor.name} configured this way the source's training depends on the target (it receives transfers or reads the target's batches), so one run's source cannot stand for another's`);
    }
    if (this.sourceRecorder || this.sourcePlayer) throw new Error(`${what}: this trainer already records or replays its source`);
    return source;
  }

  /**
   * Records the source's trajectory from the first step on: the weights this trainer reads,
   * after every source step. `sourceRecording()` returns it once training is done.
   */
  recordSource(): void {
    const source = this.checkTrajectoryUse("recordSource");
    if (this.step !== 0) throw new Error(`recordSource: call it before the first step (this trainer is at step ${this.step})`);
    this.sourceRecorder = new TrajectoryRecorder(source.spec.model, this.sourceWeightsRead());
  }

  /** The recorded trajectory (after recordSource and training); undefined if it cannot be trusted. */
  sourceRecording(): SourceTrajectory | undefined {
    if (!this.sourceRecorder || this.recordingSpoilt) return undefined;
    this.flush();
    return this.sourceRecorder.finish(this.history.sourceLoss, this.history.epochs);
  }

  /**
   * Replays a recorded source trajectory instead of training the source: at each step the
   * recorded weights are written into the source model and the recorded loss is the source's;
   * its metrics are the record's. The record must cover every weight this trainer reads.
   */
  replaySource(trajectory: SourceTrajectory): void {
    const source = this.checkTrajectoryUse("replaySource");
    const player = new TrajectoryPlayer(source.spec.model, trajectory);
    const missing = this.sourceWeightsRead().filter((name) => !player.names.includes(name));
    if (missing.length) {
      throw new Error(`replaySource: this trainer reads the source's ${missing.join(", ")}, which the record does not hold (it holds ${player.names.join(", ")}); record a run that reads them`);
    }
    this.sourcePlayer = player;
  }

  /** For subclasses' source step: the replayed step's loss, or undefined when the source really steps. */
  protected replayedSourceStep(): tf.Scalar | undefined {
    return this.sourcePlayer?.step(this.step);
  }

  /** For subclasses, right after a real source step: records it where recording. */
  protected sourceStepped(): void {
    if (!this.recordingSpoilt) this.sourceRecorder?.stepped(this.step);
  }

  private sides(): [string, SideState][] {
    return this.source ? [["source", this.source], ["target", this.target]] : [["target", this.target]];
  }

  /**
   * Saves everything needed to continue exactly where this run stands: both models'
   * weights, their optimisers' state, data stream positions, the step counter, the history
   * and the subclass's state (adapters, their optimiser). Atomic (see checkpoint.ts).
   */
  async saveCheckpoint(dir: string): Promise<void> {
    this.flush();
    const state = await this.captureState();
    try {
      await writeCheckpoint(dir, state.tensors, state.meta);
    } finally {
      tf.dispose(state.owned);
    }
  }

  /** Everything saveCheckpoint stores: tensors (references, plus temporaries in `owned`) and JSON. */
  private async captureState(): Promise<{ tensors: Record<string, tf.Tensor>; owned: tf.Tensor[]; meta: LoopMeta }> {
    const tensors: Record<string, tf.Tensor> = {};
    const meta: LoopMeta = {
      trainer: this.constructor.name, step: this.step, epochStartStep: this.epochStartStep, history: this.history,
      streams: {}, weights: {}, optimizerWeights: {}, extra: null, sourceReplayed: this.sourcePlayer !== undefined || undefined,
    };
    const owned: tf.Tensor[] = [];
    for (const [label, side] of this.sides()) {
      side.spec.model.weights.forEach((w, i) => (tensors[`${label}.weight.${i}`] = w.read()));
      meta.weights[label] = side.spec.model.weights.map((w) => ({ name: w.originalName, shape: w.shape.map(Number) }));
      const optimizerWeights = await side.spec.optimizer.getWeights();
      optimizerWeights.forEach((nt, i) => {
        tensors[`${label}.optimizer.${i}`] = nt.tensor;
        if (nt.name === "iter") owned.push(nt.tensor); // tfjs makes this step-count scalar anew on each call
      });
      meta.optimizerWeights[label] = optimizerWeights.length;
      meta.streams[label] = side.spec.data.position();
    }
    const extra = this.extraState();
    Object.assign(tensors, extra.tensors);
    meta.extra = extra.meta;
    return { tensors, owned: [...owned, ...extra.owned], meta };
  }

  /**
   * Puts a captured state back: models, optimisers, subclass state; with `rewind` also the
   * step counter, data streams and history (a resume); without it training goes on forward
   * from the current step (a recovery).
   */
  private async applyState(tensors: Map<string, tf.Tensor>, meta: LoopMeta, where: string, rewind: boolean): Promise<void> {
    if (meta.trainer !== this.constructor.name) {
      throw new Error(`${where} was written by a ${meta.trainer}, not a ${this.constructor.name}`);
    }
    for (const [label, side] of this.sides()) {
      const saved = meta.weights[label];
      const current = side.spec.model.weights.map((w) => ({ name: w.originalName, shape: w.shape.map(Number) }));
      if (!saved || JSON.stringify(saved) !== JSON.stringify(current)) {
        const weights = (saved ?? []).map((w) => `${w.name} [${w.shape}]`).join(", ");
        throw new Error(`${where} holds a different ${label} model (its weights: ${weights}); build the same model to resume`);
      }
    }
    if (rewind && meta.sourceReplayed && !this.sourcePlayer) {
      throw new Error(`${where} comes from a run that replayed its source's recorded trajectory (its source did not train); resume it with the same record (replaySource) or start over`);
    }
    this.restoreExtraState(tensors, meta.extra);
    for (const [label, side] of this.sides()) {
      side.spec.model.weights.forEach((w, i) => w.write(tensors.get(`${label}.weight.${i}`)!));
      const count = meta.optimizerWeights[label];
      const named = Array.from({ length: count }, (_, i) => ({ name: `${label}.optimizer.${i}`, tensor: tensors.get(`${label}.optimizer.${i}`)! }));
      if (count > 0) await side.spec.optimizer.setWeights(named);
      if (rewind) side.spec.data.seek(meta.streams[label]);
    }
    if (!rewind) return;
    if (this.sourceRecorder) this.recordingSpoilt = "the run resumed from a checkpoint";
    this.flush();
    this.history.sourceLoss.splice(0, Infinity, ...meta.history.sourceLoss);
    this.history.targetLoss.splice(0, Infinity, ...meta.history.targetLoss);
    this.history.transfers.splice(0, Infinity, ...meta.history.transfers);
    this.history.epochs.splice(0, Infinity, ...meta.history.epochs);
    this.history.divergences.splice(0, Infinity, ...(meta.history.divergences ?? []));
    this.step = meta.step;
    this.epochStartStep = meta.epochStartStep;
  }

  /**
   * Continues from a checkpoint written by saveCheckpoint of a trainer built the same way
   * (same kind, same models, same configuration); a mismatch is an error that names it and
   * leaves this trainer untouched.
   */
  async loadCheckpoint(dir: string): Promise<void> {
    const { meta, tensors } = readCheckpoint(dir);
    try {
      await this.applyState(tensors, meta as LoopMeta, `checkpoint at ${dir}`, true);
    } finally {
      tf.dispose([...tensors.values()]); // variables that took these values hold their own reference
    }
  }

  /** Keeps a copy of the current state as the last good one. */
  private async rememberGoodState(): Promise<void> {
    const state = await this.captureState();
    const copies = new Map(Object.entries(state.tensors).map(([k, t]) => [k, t.clone()]));
    tf.dispose(state.owned);
    if (this.goodState) tf.dispose([...this.goodState.tensors.values()]);
    const meta = JSON.parse(JSON.stringify({ ...state.meta, history: null })) as LoopMeta;
    this.goodState = { step: this.step, tensors: copies, meta };
  }

  /**
   * What was not finite in the last step: "target" or "source" for a loss, "a transferred
   * weight" for a weight a transfer wrote in it (its relative change is NaN or infinite
   * then); empty when all is finite. One device read. The written weights must be checked on
   * their own: on some backends a NaN weight does not reach the loss (wasm's ReLU turns NaN
   * into 0).
   */
  private nonFiniteParts(): string[] {
    const last = this.pendingLosses[this.pendingLosses.length - 1];
    if (!last) return [];
    const written = this.pendingTransfers.filter((t) => t.record.step === this.step - 1).map((t) => t.change);
    const parts: [string, tf.Scalar][] = [
      ["target", last.target],
      ...(last.source ? [["source", last.source] as [string, tf.Scalar]] : []),
      ...written.map((w) => ["a transferred weight", w] as [string, tf.Scalar]),
    ];
    // One scalar (target alone, no transfer written): no Pack op for it.
    const finite = tf.tidy(() => tf.isFinite(parts.length === 1 ? parts[0][1] : tf.stack(parts.map(([, scalar]) => scalar))).dataSync());
    return [...new Set(parts.filter((_, i) => !finite[i]).map(([name]) => name))];
  }

  /**
   * Whether transfers write into this side (an adapter can have made its loss diverge); none
   * by default. A side that nothing writes into diverged on its own: its data or its
   * learning rate.
   */
  protected receivesTransfers(_side: "source" | "target"): boolean {
    return false;
  }

  /** Restores the last good state in place, lets the subclass react, records the event. */
  private async recover(bad: string[]): Promise<void> {
    const badStep = this.step - 1;
    const good = this.goodState;
    const what = bad.map((part) => (part === "a transferred weight" ? part : `the ${part}'s loss`)).join(" and ");
    const onItsOwn = bad.filter((part) => part === "source" || part === "target").some((part) => !this.receivesTransfers(part as "source" | "target"));
    if (badStep === 0 || onItsOwn) {
      // Nothing a recovery changes can help: no step has moved the models yet, or no adapter writes into the side.
      if (good) await this.applyState(good.tensors, good.meta, "the last good state", false); // leave no NaN weights behind
      const why = badStep === 0 ? "on the first step" : "in a model that no adapter writes into";
      const back = good ? ` The models are back at their state of step ${good.step}.` : "";
      throw new Error(
        `${what} became NaN or infinite at step ${badStep}, ${why}: ` +
          `check the data (inputs must be finite, labels whole numbers within the model's outputs), then that side's learning rate.${back}`,
      );
    }
    if (!good || this.history.divergences.length >= this.maxDivergences) {
      const restored = good ? `the last good state is from step ${good.step}` : "no good state was recorded";
      throw new Error(
        `training diverged (${what} became NaN or infinite) at step ${badStep}, ` +
          `after ${this.history.divergences.length} recoveries (limit ${this.maxDivergences}); ${restored}. ` +
          "Lower the learning rates, the adapter's first, or use the interp write-back; saveCheckpoint keeps a state to come back to.",
      );
    }
    if (this.sourcePlayer) {
      // A trained source would go back to the good state with the rest and then see other batches: the record no longer applies.
      throw new SourceReplayInvalid(`${what} became NaN or infinite at step ${badStep} of a run that replays its source; ` +
          "a recovery would rewind the source, which the record cannot follow: train this run without replay");
    }
    if (this.sourceRecorder) this.recordingSpoilt = `the run recovered from a divergence at step ${badStep}`;
    const memo = this.divergenceMemo();
    await this.applyState(good.tensors, good.meta, "the last good state", false);
    const action = this.afterDivergence(memo);
    this.history.divergences.push({ step: badStep, restoredFrom: good.step, action });
  }

  /**
   * Starts (or restarts) recording wall time per phase of a step, for the benchmark. On the
   * native and wasm backends ops run synchronously, so a phase's wall time is its cost.
   */
  startProfiling(): void {
    this.phaseTimes = {};
  }

  /** Milliseconds and call counts per phase since startProfiling (undefined when off). */
  profile(): Record<string, { ms: number; calls: number }> | undefined {
    return this.phaseTimes && structuredClone(this.phaseTimes);
  }

  /** Runs `fn`, adding its wall time to `name` when profiling. */
  protected timed<T>(name: string, fn: () => T): T {
    if (!this.phaseTimes) return fn();
    const start = performance.now();
    const result = fn();
    this.addPhaseTime(name, performance.now() - start);
    return result;
  }

  /** Adds `ms` (one call) to phase `name` when profiling: for work that `timed` cannot wrap. */
  protected addPhaseTime(name: string, ms: number): void {
    if (!this.phaseTimes) return;
    const entry = (this.phaseTimes[name] ??= { ms: 0, calls: 0 });
    entry.ms += ms;
    entry.calls += 1;
  }

  /** Whether startProfiling is on (so callers can skip taking timestamps otherwise). */
  protected get profiling(): boolean {
    return this.phaseTimes !== undefined;
  }

  protected requireSource(): SideState {
    if (!this.source) throw new Error("this method needs a source model");
    return this.source;
  }

  /** Keeps a transfer's statistics for the history; returns the entry to complete later. */
  protected recordTransfer(record: TransferStats["record"], change: tf.Scalar, towardSource?: tf.Scalar): TransferStats {
    const stats: TransferStats = { record, change, towardSource };
    this.pendingTransfers.push(stats);
    return stats;
  }

  /** Global steps taken so far. */
  get steps(): number {
    return this.step;
  }

  /** Current epoch (0-based): one epoch is one pass over the target's data. */
  get epoch(): number {
    return Math.floor(this.step / this.target.spec.data.batchesPerEpoch);
  }

  /** One global step. */
  trainStep(): void {
    if (this.disposed) throw new Error("this trainer was disposed; make a new one");
    this.pendingLosses.push(this.stepOnce());
    this.step += 1;
  }

  /** Reads the accumulated step losses and transfer statistics (one device sync). */
  protected flush(): void {
    const read = (scalars: (tf.Scalar | undefined)[]): number[] => {
      const present = scalars.filter((x): x is tf.Scalar => x !== undefined);
      if (present.length === 0) return scalars.map(() => NaN);
      const values = tf.tidy(() => tf.stack(present).dataSync());
      let i = 0;
      return scalars.map((x) => (x === undefined ? NaN : values[i++]));
    };
    this.history.targetLoss.push(...read(this.pendingLosses.map((l) => l.target)));
    this.history.sourceLoss.push(...read(this.pendingLosses.map((l) => l.source)));
    const changes = read(this.pendingTransfers.map((t) => t.change));
    const norms = read(this.pendingTransfers.map((t) => t.gradNorm));
    const cosines = read(this.pendingTransfers.map((t) => t.towardSource));
    this.pendingTransfers.forEach((t, i) =>
      this.history.transfers.push({ ...t.record, relativeChange: changes[i], gradNorm: norms[i], towardSource: cosines[i] }),
    );
    tf.dispose(this.pendingLosses.flatMap((l) => [l.source, l.target]).filter((x): x is tf.Scalar => x !== undefined));
    tf.dispose(this.pendingTransfers.flatMap((t) => [t.change, t.gradNorm, t.towardSource]).filter((x): x is tf.Scalar => x !== undefined));
    this.pendingLosses = [];
    this.pendingTransfers = [];
  }

  /** The source's metrics; a frozen source never changes, so it is evaluated once. */
  private async evaluateSource(epoch: number): Promise<Record<string, number>> {
    const source = this.source;
    if (this.sourcePlayer && source?.spec.evaluate) return this.sourcePlayer.metrics(epoch); // only the read weights follow the record
    if (!source?.spec.evaluate) return {};
    if (source.frozen && this.frozenSourceMetrics) return { ...this.frozenSourceMetrics };
    const metrics = await source.spec.evaluate(source.spec.model);
    if (source.frozen) this.frozenSourceMetrics = metrics;
    return metrics;
  }

  /** Runs to the end of the current epoch (a pass over the target's data), then evaluates. */
  async trainEpoch(): Promise<EpochRecord> {
    const started = Date.now();
    const epoch = this.epoch;
    const end = (epoch + 1) * this.target.spec.data.batchesPerEpoch;
    await this.rememberGoodState(); // every step so far was checked: this state is finite
    while (this.step < end) {
      this.trainStep();
      const bad = this.nonFiniteParts();
      if (bad.length) {
        await this.recover(bad);
        continue;
      }
      if (this.step % FLUSH_EVERY === 0) {
        this.flush();
        await this.rememberGoodState();
        await yieldToEventLoop(); // lets signals and progress output through
      } else if (this.stopWhen) {
        await yieldToEventLoop(); // a few microseconds against a step's milliseconds
      }
      if (this.stopWhen?.()) {
        this.flush();
        throw new TrainingStopped(this.step);
      }
    }
    this.flush();
    // Mean over the epoch's finite losses (a step that diverged is listed in history.divergences).
    const mean = (xs: number[]) => {
      const finite = xs.slice(this.epochStartStep, this.step).filter(Number.isFinite);
      return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : NaN;
    };
    const record: EpochRecord = {
      epoch,
      steps: this.step,
      sourceLoss: mean(this.history.sourceLoss),
      targetLoss: mean(this.history.targetLoss),
      source: this.evaluateSourceAt?.(epoch) === false ? {} : await this.evaluateSource(epoch),
      target: this.target.spec.evaluate ? await this.target.spec.evaluate(this.target.spec.model) : {},
      gates: this.gates(),
      seconds: (Date.now() - started) / 1000,
    };
    this.epochStartStep = this.step;
    this.history.epochs.push(record);
    return record;
  }

  /** Trains `epochs` more epochs; `onEpoch` sees each record as it completes. */
  async fit(epochs: number, onEpoch?: (record: EpochRecord) => void): Promise<TrainerHistory> {
    if (!Number.isInteger(epochs) || epochs < 0) throw new Error(`epochs must be a whole number >= 0, got ${epochs}`);
    for (let i = 0; i < epochs; i++) {
      const record = await this.trainEpoch(); // not inside onEpoch?.(…): that would skip the epoch when onEpoch is absent
      onEpoch?.(record);
    }
    return this.history;
  }

  /** Frees what the trainer owns and any unread statistics (never the models). */
  dispose(): void {
    if (this.disposed) return;
    this.flush();
    if (this.goodState) tf.dispose([...this.goodState.tensors.values()]);
    this.disposeOwned();
    this.disposed = true;
  }
}

/**
 * Checks a side's training data against its model once, before any step (data/check.ts):
 * bad data then fails as bad data, naming the side and the example, on every backend.
 * Every trainer does this when built; the runner also calls it once per experiment.
 */
export function checkSideData(label: string, side: ModelSide): void {
  const model = side.model;
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return; // nothing here has several; skip rather than guess
  const expect = { name: `the ${label}'s training data`, inputShape: model.inputs[0].shape, outputShape: model.outputs[0].shape, labels: labelsOf(side.loss) };
  side.data.check?.(expect);
}

/** One turn of the event loop: signal handlers, timers and pending output run. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
