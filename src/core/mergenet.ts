/**
 * The joint MergeNet trainer (docs/METHOD.md §4).
 *
 * Two models train at once, each with its own optimiser, data stream and loss. A global
 * step counter t drives the schedule; at each step:
 *   1. if transfer is on and t % cycle == 0: for every layer pair, W_gen = adapter(S, T)
 *      from copies of the source and target matrices taken now, written into the target by
 *      the pair's write-back mode (optimiser state untouched);
 *   2. one source step (unless the source is frozen);
 *   3. one target step;
 *   4. if step 1 happened, one adapter update. The adapter's gradient is the vector-Jacobian
 *      product of W_gen(θ) with a cotangent C:
 *        hypernet (released code, from pFedHN): C = W_gen − T_after_step3,
 *        exact (the paper's words):             C = ∂L_target/∂W at W = W_gen on the step-3
 *                                                batch (exactly the gradient step 3 used).
 * With two-way transfer a second set of adapters writes into the source the same way.
 *
 * One forward pass per transfer, a speed choice: see transferAndUpdate.
 *
 * Choices the paper leaves open, made here: an epoch is one pass over the target's data
 * (the source's stream wraps on its own); dropout seeds are a pure function of (seed, t,
 * pair), so a resumed run draws the same masks; the random-source control draws one fixed
 * Gaussian matrix per source input at the first transfer, with that input's std; the
 * permuted-source control shuffles each source input's entries by one fixed permutation,
 * a pure function of (seed, pair, input), so it needs no checkpointing.
 */
import { tf } from "../backend/index";
import { logger } from "../log";
import { describeValue, isWholeAtLeast, unknownKeyProblems } from "../config-checks";
import { ADAMW_DEFAULTS, AdamW, type AdamWConfig } from "./adamw";
import { writeCosine } from "./diagnostics";
import { ParameterAdapter, type AdapterTrace } from "./adapter/parameter-adapter";
import { ADAPTER_DEFAULTS, type AdapterConfig } from "./adapter/config";
import { JointLoop, type ExtraState, type ModelSide, type SideState, type StepLosses, type TransferStats } from "./loop";
import { factorRefs, paramRef, readMatrix, toMatrix, writeMatrix, type ParamRef } from "./params";
import { svdSplit } from "./lowrank";
import { seededPermutation } from "../util/random";
import { trainStep, variableOf, type StepResult } from "./step";
import { OUTPUT_MODES, WriteBack, writeBackWarning, type OutputMode } from "./writeback";

export type LowRankForm = "full" | "factorized" | "svd";
export type UpdateRule = "hypernet" | "exact";
export type Direction = "one-way" | "two-way";
export type SourceInput = "model" | "random" | "permuted";

/** One pair of weights: knowledge flows from `source` into `target`. */
export interface LayerPair {
  /** `layer/weight` in the source model (for `factorized`: the layer name). */
  source: string;
  /** `layer/weight` in the target model (for `factorized`: the layer name). */
  target: string;
  /** How the matrices are handed to the adapter (docs/METHOD.md §2). Default `full`. */
  form?: LowRankForm;
  /** Rank for `svd` (required there); ignored by `full`; `factorized` takes the layers' own rank. */
  rank?: number;
}

export type AdapterOptions = Omit<AdapterConfig, "sourceShape" | "targetShape" | "seed" | "name">;

/** Keys of `adapter` in a MergeNet configuration (its seed and name are the trainer's). */
const ADAPTER_OPTION_KEYS = Object.keys(ADAPTER_DEFAULTS).filter((key) => key !== "seed" && key !== "name");

export interface MergeNetConfig {
  pairs: LayerPair[];
  /** Transfer every `cycle` steps (t % cycle == 0). */
  cycle: number;
  rule: UpdateRule;
  output: OutputMode;
  direction: Direction;
  /** A frozen source only lends knowledge: it never steps. */
  freezeSource: boolean;
  /** Transfer only during the first K epochs; undefined = throughout. */
  transferEpochs?: number;
  /**
   * What the adapter reads on the source side. `model`: the source's weight. `random`: the
   * control of docs/METHOD.md §3b, a fixed random matrix of the source weight's shape and std.
   * `permuted`: the second control, the source's live weight with its entries shuffled by one
   * fixed permutation: its values, scale and their drift over training are the source's, the
   * arrangement (which entry sits where) is not.
   */
  sourceInput: SourceInput;
  adapter: AdapterOptions;
  adapterOptimizer: Partial<AdamWConfig>;
  seed: number;
  /**
   * Beyond the paper (issue 13's search for an adapter that learns), off by default: the
   * write-back gate's starting value: theta for `interp` (default −6, g ≈ 0.0025), g for
   * `residual` (default 0).
   */
  gateInit?: number;
  /**
   * Beyond the paper, off by default: the gate's own AdamW learning rate (default: the
   * adapter's). Adam moves a parameter by about its learning rate per update, so with the
   * adapter's 1e-3 and 50 to 200 updates the interp gate cannot leave ≈ 0.0025.
   */
  gateLearningRate?: number;
  /** Beyond the paper, off by default: the gate keeps its starting value (it is not trained). */
  freezeGate: boolean;
  /**
   * Beyond the paper, default 1 (the method as published): adapter updates per transfer. The
   * first is the rule's update; each further one recomputes W_gen on the same inputs (fresh
   * dropout masks) and steps again on the same objective: `hypernet` ½‖W_gen − T_after‖²
   * with T_after the weight after the target's step, `exact` ⟨W_gen, ∂L/∂W⟩ with the step's
   * gradient kept (first order). Only the first W_gen is written.
   */
  updatesPerTransfer: number;
}

export const MERGENET_DEFAULTS: Omit<MergeNetConfig, "pairs"> = {
  cycle: 2,
  rule: "hypernet",
  output: "interp",
  direction: "one-way",
  freezeSource: false,
  transferEpochs: undefined,
  sourceInput: "model",
  adapter: {},
  adapterOptimizer: {},
  seed: 0,
  gateInit: undefined,
  gateLearningRate: undefined,
  freezeGate: false,
  updatesPerTransfer: 1,
};

/** One of the two models, by its role. */
type SideName = "source" | "target";

/** The order the sides step in, within each phase of a global step. */
const SIDE_ORDER: readonly SideName[] = ["source", "target"];

/** What each side's step returned in one global step; a side that did not step (frozen) is absent. */
type SideSteps = Partial<Record<SideName, StepResult>>;

/** A pair resolved against the models, in one direction. */
interface Link {
  pairIndex: number;
  direction: "forward" | "backward";
  /** The side whose matrices the adapters write (the target, or the source for a backward link). */
  receiver: SideName;
  form: LowRankForm;
  rank: number;
  /** Source parameters read (one, or B and A for `factorized`). */
  sourceRefs: ParamRef[];
  /** Target parameters written (one, or B and A for `factorized`). */
  targetRefs: ParamRef[];
  /** One adapter (full) or two (svd, factorized: one for B, one for A). */
  adapters: ParameterAdapter[];
  writebacks: WriteBack[];
  /** The adapters' and write-backs' trainable variables, in the optimiser's order. */
  variables: tf.Variable[];
  optimizer: AdamW;
  randomSources?: tf.Tensor2D[];
  /** `permuted` control: one fixed permutation of entry indices per source part (int32, flat). */
  permutations?: tf.Tensor1D[];
}

/** A link's inputs for one transfer: constant copies taken before any write or step. */
interface TransferInput {
  link: Link;
  dropoutSeed: number;
  /** What the adapters read from the source side (one matrix, or B and A). */
  sourceParts: tf.Tensor2D[];
  /** The receiving side's current matrices (one, or B and A). */
  targetParts: tf.Tensor2D[];
  /** `svd` only: W − U_r Σ_r V_rᵀ, kept as is. */
  residual?: tf.Tensor2D;
}

/** What one transfer wrote, kept until the adapter update (step 4). */
interface PendingTransfer extends TransferInput {
  /** W_gen per written parameter, on the adapter's gradient tape. */
  written: tf.Tensor2D[];
  /** The same values read back from the written variables: constants for the tape. */
  writtenCopies: tf.Tensor2D[];
  stats: TransferStats;
}

/** Keys of a layer pair. */
const PAIR_KEYS = ["source", "target", "form", "rank"] as const;

/** Validates and fills a configuration; every message says what to change. */
export function resolveMergeNetConfig(config: Partial<MergeNetConfig> & { pairs: LayerPair[] }): MergeNetConfig {
  const problems = mergeNetConfigProblems(config);
  if (problems.length) throw new Error(`invalid MergeNet configuration:\n  - ${problems.join("\n  - ")}`);
  return { ...MERGENET_DEFAULTS, ...config };
}

/**
 * Every problem of a MergeNet configuration at once (none: it is valid): unknown keys (with
 * the name they likely meant), values of the wrong type or outside their set, contradictions.
 * An empty `pairs` is allowed here (the trainer then reproduces target-alone, which tests
 * use); an experiment refuses it (methods.ts).
 */
export function mergeNetConfigProblems(config: Partial<MergeNetConfig> & { pairs: LayerPair[] }): string[] {
  const full: MergeNetConfig = { ...MERGENET_DEFAULTS, ...config };
  const problems: string[] = unknownKeyProblems(config, ["pairs", ...Object.keys(MERGENET_DEFAULTS)]);
  const check = (ok: boolean, problem: () => string): void => {
    if (!ok) problems.push(problem());
  };
  const got = describeValue;
  check(isWholeAtLeast(full.cycle, 1), () => `cycle must be a whole number >= 1 (transfer every cycle steps), got ${got(full.cycle)}`);
  check(["hypernet", "exact"].includes(full.rule), () => `rule must be 'hypernet' or 'exact', got ${got(full.rule)}`);
  check(OUTPUT_MODES.includes(full.output), () => `output must be one of ${OUTPUT_MODES.join(", ")}; got ${got(full.output)}`);
  check(["one-way", "two-way"].includes(full.direction), () => `direction must be 'one-way' or 'two-way', got ${got(full.direction)}`);
  check(["model", "random", "permuted"].includes(full.sourceInput), () => `sourceInput must be 'model', 'random' or 'permuted', got ${got(full.sourceInput)}`);
  check(full.freezeSource === undefined || typeof full.freezeSource === "boolean", () => `freezeSource must be true or false, got ${got(full.freezeSource)}`);
  check(
    !(full.direction === "two-way" && full.freezeSource),
    () => "a frozen source cannot receive knowledge: use direction 'one-way' with freezeSource, or unfreeze the source",
  );
  check(
    full.transferEpochs === undefined || isWholeAtLeast(full.transferEpochs, 1),
    () => `transferEpochs must be a whole number >= 1 (or left out to transfer throughout), got ${got(full.transferEpochs)}`,
  );
  check(Number.isInteger(full.seed), () => `seed must be an integer, got ${got(full.seed)}`);
  const gated = full.output === "interp" || full.output === "residual";
  const { gateInit, gateLearningRate, freezeGate } = full;
  check(
    gateInit === undefined || (typeof gateInit === "number" && Number.isFinite(gateInit)),
    () => `gateInit must be a finite number (interp: theta, e.g. -6; residual: g), got ${got(gateInit)}`,
  );
  check(
    gateLearningRate === undefined || (typeof gateLearningRate === "number" && gateLearningRate > 0 && Number.isFinite(gateLearningRate)),
    () => `gateLearningRate must be a number > 0, got ${got(gateLearningRate)}`,
  );
  check(typeof freezeGate === "boolean", () => `freezeGate must be true or false, got ${got(freezeGate)}`);
  check(
    gated || (gateInit === undefined && gateLearningRate === undefined && !freezeGate),
    () => `gateInit, gateLearningRate and freezeGate apply to a gated write-back ('interp' or 'residual'); output '${full.output}' has no gate`,
  );
  check(!(freezeGate && gateLearningRate !== undefined), () => "freezeGate and gateLearningRate contradict each other: a frozen gate is not trained; drop one");
  check(isWholeAtLeast(full.updatesPerTransfer, 1), () => `updatesPerTransfer must be a whole number >= 1, got ${got(full.updatesPerTransfer)}`);
  for (const [key, known] of [["adapter", ADAPTER_OPTION_KEYS], ["adapterOptimizer", Object.keys(ADAMW_DEFAULTS)]] as const) {
    const value = full[key];
    if (!value || typeof value !== "object" || Array.isArray(value)) problems.push(`${key} must be an object (use {} for the defaults), got ${got(value)}`);
    else problems.push(...unknownKeyProblems(value, known, `${key}: `));
  }
  if (!Array.isArray(full.pairs)) problems.push(`pairs must be a list of {source, target} layer pairs, got ${got(full.pairs)}`);
  else {
    full.pairs.forEach((pair, i) => {
      if (!pair || typeof pair !== "object" || typeof pair.source !== "string" || typeof pair.target !== "string") {
        problems.push(`pairs[${i}] must be an object with source and target weight names ('layer/weight'), got ${got(pair)}`);
        return;
      }
      problems.push(...unknownKeyProblems(pair, PAIR_KEYS, `pairs[${i}]: `));
      const form = pair.form ?? "full";
      check(["full", "factorized", "svd"].includes(form), () => `pairs[${i}].form must be full, factorized or svd; got ${got(form)}`);
      check(form !== "svd" || isWholeAtLeast(pair.rank, 1), () => `pairs[${i}] uses form 'svd' and needs a whole-number rank >= 1, got ${got(pair.rank)}`);
    });
  }
  return problems;
}

/** Seeds for dropout: a pure function of (run seed, step, link) so resumed runs repeat them. */
function dropoutSeedFor(seed: number, step: number, link: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ step, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (link + 1), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) & 0x7fffffff;
}

function layerOf(name: string): string {
  return name.split("/")[0];
}

/** True when the layer right after `layerName` in the model normalises its input. */
function followedByNormalisation(model: tf.LayersModel, layerName: string): boolean {
  const index = model.layers.findIndex((l) => l.name === layerName);
  const next = model.layers[index + 1];
  return next !== undefined && /normali[sz]ation/i.test(next.getClassName());
}

export class MergeNetTrainer extends JointLoop {
  readonly config: MergeNetConfig;
  private readonly links: Link[] = [];

  constructor(source: ModelSide, target: ModelSide, config: Partial<MergeNetConfig> & { pairs: LayerPair[] }) {
    const resolved = resolveMergeNetConfig(config);
    super(source, target, { freezeSource: resolved.freezeSource });
    this.config = resolved;
    const sourceSide = this.requireSource();
    try {
      this.config.pairs.forEach((pair, i) => {
        this.links.push(this.makeLink(pair, i, "forward", sourceSide, this.target));
        if (this.config.direction === "two-way") {
          this.links.push(this.makeLink({ ...pair, source: pair.target, target: pair.source }, i, "backward", this.target, sourceSide));
        }
      });
    } catch (err) {
      this.disposeLinks();
      throw err;
    }
  }

  private makeLink(pair: LayerPair, pairIndex: number, direction: Link["direction"], from: SideState, to: SideState): Link {
    const form = pair.form ?? "full";
    const where = `pairs[${pairIndex}]${direction === "backward" ? " (two-way, backward)" : ""}`;
    const refsOf = (model: tf.LayersModel, name: string, side: string): ParamRef[] => {
      try {
        if (form === "factorized") {
          if (name.includes("/")) throw new Error(`with form 'factorized' name the layer ('${layerOf(name)}'), not one weight ('${name}')`);
          const { b, a } = factorRefs(model, name);
          return [b, a];
        }
        return [paramRef(model, name)];
      } catch (err) {
        throw new Error(`${where}: ${side} ${(err as Error).message}`);
      }
    };
    const sourceRefs = refsOf(from.spec.model, pair.source, "source");
    const targetRefs = refsOf(to.spec.model, pair.target, "target");
    let rank = 0;
    let shapes: [number, number][][]; // per adapter: [sourceShape, targetShape]
    if (form === "svd") {
      rank = pair.rank as number;
      const [ms, ns] = sourceRefs[0].matrixShape;
      const [mt, nt] = targetRefs[0].matrixShape;
      const limit = Math.min(ms, ns, mt, nt);
      if (rank > limit) {
        throw new Error(`${where}: rank ${rank} exceeds the smallest side of the paired matrices ([${ms},${ns}] and [${mt},${nt}]); use a rank <= ${limit}`);
      }
      shapes = [[[ms, rank], [mt, rank]], [[rank, ns], [rank, nt]]];
    } else if (form === "factorized") {
      rank = targetRefs[0].matrixShape[1];
      shapes = [0, 1].map((k) => [sourceRefs[k].matrixShape, targetRefs[k].matrixShape]);
    } else {
      shapes = [[sourceRefs[0].matrixShape, targetRefs[0].matrixShape]];
    }
    const warning = writeBackWarning(this.config.output, followedByNormalisation(to.spec.model, layerOf(targetRefs[0].name)), `'${targetRefs[0].name}'`);
    if (warning) logger.warn(`${where}: ${warning}`);
    const linkIndex = this.links.length;
    const adapters = shapes.map(([sourceShape, targetShape], k) =>
      new ParameterAdapter({
        ...this.config.adapter,
        sourceShape,
        targetShape,
        seed: this.config.seed * 7919 + linkIndex * 31 + k,
        name: `adapter${linkIndex}_${k}`,
      }),
    );
    const writebacks = shapes.map((_, k) => new WriteBack(this.config.output, { name: `writeback${linkIndex}_${k}`, initialTheta: this.config.gateInit }));
    const adapterVariables = adapters.flatMap((a) => a.variables);
    const gateVariables = this.config.freezeGate ? [] : writebacks.flatMap((w) => w.variables);
    const variables = [...adapterVariables, ...gateVariables];
    // A separate gate learning rate is a per-variable multiple of the adapter's (so halving it after a divergence halves both).
    const adapterRate = { ...ADAMW_DEFAULTS, ...this.config.adapterOptimizer }.learningRate;
    const gateScale = this.config.gateLearningRate === undefined ? 1 : this.config.gateLearningRate / adapterRate;
    const rateScales = [...adapterVariables.map(() => 1), ...gateVariables.map(() => gateScale)];
    const optimizer = new AdamW(variables, this.config.adapterOptimizer, { rateScales });
    const receiver: SideName = to === this.target ? "target" : "source";
    return { pairIndex, direction, receiver, form, rank, sourceRefs, targetRefs, adapters, writebacks, variables, optimizer };
  }

  /** One-way (every link writes into the target): nothing flows back into the source. */
  protected override sourceTrainsAlone(): boolean {
    return this.links.every((link) => link.receiver === "target");
  }

  /** The source weights the links read: the adapters' inputs (and the controls' statistics). */
  protected override sourceWeightsRead(): string[] {
    const names = this.links.filter((link) => link.direction === "forward").flatMap((link) => link.sourceRefs.map((ref) => ref.name));
    return [...new Set(names)];
  }

  /** All adapters (for plots and inspection). */
  get adapters(): ParameterAdapter[] {
    return this.links.flatMap((l) => l.adapters);
  }

  /** Adapter updates made so far, over all links (each AdamW step counts once). */
  get adapterUpdates(): number {
    return this.links.reduce((n, link) => n + link.optimizer.steps, 0);
  }

  /**
   * The first adapter of link `linkIndex` (default: the first pair, forward) inspected on
   * exactly what it reads now: the source side as the configuration feeds it (the model's
   * weight, or the control's random or permuted stand-in) and the receiving matrix (or its
   * first factor). Inference mode. The caller disposes the trace.
   */
  inspectLink(linkIndex = 0): AdapterTrace {
    const link = this.links[linkIndex];
    if (!link) throw new Error(`no link ${linkIndex}: this trainer has ${this.links.length}`);
    const input = this.readInputs(link, linkIndex);
    try {
      return link.adapters[0].inspect(input.sourceParts[0], input.targetParts[0]);
    } finally {
      tf.dispose([input.sourceParts, input.targetParts, input.residual ?? []]);
    }
  }

  private transferActive(): boolean {
    if (this.links.length === 0 || this.step % this.config.cycle !== 0) return false;
    return this.config.transferEpochs === undefined || this.epoch < this.config.transferEpochs;
  }

  /** One global step (docs/METHOD.md §4), phase by phase. */
  protected stepOnce(): StepLosses {
    // Read: every link copies its inputs before any link writes (two-way transfers see pre-step weights).
    const inputs = this.transferActive() ? this.links.map((link, i) => this.timed("read_inputs", () => this.readInputs(link, i))) : [];
    const receivers = SIDE_ORDER.filter((side) => inputs.some((input) => input.link.receiver === side));
    // Step the sides that receive nothing, off the adapter's gradient tape.
    const alone: SideSteps = {};
    for (const side of SIDE_ORDER) if (!receivers.includes(side)) alone[side] = this.stepSide(side, []);
    // Transfer: write W_gen, step the receivers, form the adapter's objective, update the adapters.
    const received = inputs.length > 0 ? this.transferAndUpdate(inputs, receivers) : {};
    const steps: SideSteps = { ...alone, ...received };
    for (const side of SIDE_ORDER) tf.dispose(steps[side]?.kept ?? {});
    if (!steps.target) throw new Error("internal: the target did not step");
    return { source: steps.source?.loss, target: steps.target.loss };
  }

  /**
   * One training step of `side` on its next batch (nothing for a frozen side), keeping the
   * plain-loss gradients the `exact` rule needs for the transfers in `pending`.
   */
  private stepSide(side: SideName, pending: PendingTransfer[]): StepResult | undefined {
    const state = side === "source" ? this.requireSource() : this.target;
    if (state.frozen) return undefined;
    if (side === "source") {
      const replayed = this.replayedSourceStep();
      if (replayed) return { loss: tf.keep(replayed), kept: {} };
    }
    const batch = state.spec.data.next();
    const keep = this.keepSet(pending, side);
    const r = this.timed(`${side}_step`, () => trainStep({ ...state.spec, weightDecay: state.weightDecay }, batch.x, batch.y, keep));
    tf.dispose([batch.x, batch.y]);
    if (side === "source") this.sourceStepped();
    // Kept: inside the adapter's gradient call these would otherwise die with its scope.
    tf.keep(r.loss);
    Object.values(r.kept).forEach((g) => tf.keep(g));
    return r;
  }

  /**
   * The transfer of one global step, for every link: write W_gen, step the `receivers`, form
   * the adapter's objective Σ ⟨W_gen, C⟩, update the adapters. Returns the receivers' steps.
   *
   * One forward pass per transfer (a speed choice, measured in scripts/bench.ts): the
   * cotangent C exists only after the receiver's step, but tfjs records its gradient tape only
   * inside one tf.variableGrads call. So the write, the receivers' steps and the objective run
   * inside that call: W_gen is computed once, on the tape, written, the receiving side steps,
   * and the call returns Σ ⟨W_gen, C⟩ with C built from tensors that do not depend on the
   * adapter (W_gen read back from the written variable, the weight after the step, or the
   * step's kept gradient), so its gradient is exactly the vector-Jacobian product of
   * docs/METHOD.md §4, of the very function that produced the written weight. This replaces a
   * second forward pass (same dropout seed, frozen spectral-norm vectors) that cost as much as
   * the first. Only the receiving sides' steps run on the tape; a side that receives nothing
   * has stepped before (stepOnce; the two models' steps are independent, so the order between
   * them changes no number).
   */
  private transferAndUpdate(inputs: TransferInput[], receivers: readonly SideName[]): SideSteps {
    // Wall time of the adapter's two phases, added once per transfer step when profiling.
    const clock = (): number => (this.profiling ? performance.now() : 0);
    let pending: PendingTransfer[] = [];
    const received: SideSteps = {};
    const variables = inputs.flatMap((input) => input.link.variables);
    let start = clock();
    let forwardMs = 0;
    inputs.forEach((input) => input.link.adapters.forEach((a) => a.refreshSpectral()));
    const { grads, value } = tf.variableGrads(() => {
      pending = inputs.map((input) => this.transfer(input));
      forwardMs = clock() - start;
      for (const side of receivers) received[side] = this.stepSide(side, pending);
      start = clock();
      return this.adapterObjective(pending, received);
    }, variables);
    for (const p of pending) {
      // Each link's optimiser picks its own variables' gradients out of the shared map.
      p.stats.gradNorm = p.link.optimizer.step(grads);
    }
    tf.dispose([grads, value]);
    for (let extra = 1; extra < this.config.updatesPerTransfer; extra++) {
      for (const p of pending) this.extraUpdate(p, extra, received[p.link.receiver]?.kept ?? {});
    }
    for (const p of pending) tf.dispose([p.sourceParts, p.targetParts, p.written, p.writtenCopies, p.residual ?? []]);
    this.addPhaseTime("adapter_forward", forwardMs);
    this.addPhaseTime("adapter_update", clock() - start);
    return received;
  }

  /** Σ_links Σ_k ⟨W_gen,k(θ), C_k⟩: its gradient in θ is the vector-Jacobian product the rule asks for. */
  private adapterObjective(pending: PendingTransfer[], received: SideSteps): tf.Scalar {
    const products = pending.map((p) => {
      const cotangents = this.cotangents(p, received[p.link.receiver]?.kept ?? {});
      return tf.addN(p.written.map((w, k) => tf.sum(tf.mul(w, cotangents[k]))));
    });
    return (products.length === 1 ? products[0] : tf.addN(products)) as tf.Scalar;
  }

  /**
   * One further adapter update on a transfer's inputs (`updatesPerTransfer` > 1): W_gen
   * recomputed with the adapter as it is now (dropout masks drawn afresh), nothing written.
   * hypernet: the gradient of ½‖W_gen − T_after‖² (T_after: the weight now, after the
   * receiver's step), exactly the hypernet rule's vector-Jacobian product; exact: of
   * ⟨W_gen, ∂L/∂W⟩ with the step's kept gradient.
   */
  private extraUpdate(p: PendingTransfer, extra: number, keptGrads: Record<string, tf.Tensor>): void {
    const input: TransferInput = { ...p, dropoutSeed: (p.dropoutSeed + extra * 7919) & 0x7fffffff };
    const after = this.config.rule === "hypernet" ? p.link.targetRefs.map((ref) => readMatrix(ref)) : [];
    const { grads, value } = tf.variableGrads(() => {
      const written = this.generate(input);
      const terms = written.map((w, k) => {
        if (this.config.rule === "hypernet") return tf.mul(tf.sum(tf.square(tf.sub(w, after[k]))), 0.5);
        const g = keptGrads[variableOf(p.link.targetRefs[k].variable).name];
        if (!g) throw new Error(`internal: no kept gradient for '${p.link.targetRefs[k].name}'`);
        return tf.sum(tf.mul(w, toMatrix(p.link.targetRefs[k], g)));
      });
      return (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Scalar;
    }, p.link.variables);
    p.link.optimizer.step(grads).dispose();
    tf.dispose([grads, value, after]);
  }

  /**
   * The cotangent C per written parameter, as [rows, cols], from tensors that do not depend
   * on the adapter's variables: hypernet C = W_gen − T_after (W_gen as read back from the
   * variable it was written to), exact C = ∂L/∂W at W_gen from the step's kept gradient.
   */
  private cotangents(p: PendingTransfer, keptGrads: Record<string, tf.Tensor>): tf.Tensor2D[] {
    return p.link.targetRefs.map((ref, k) => {
      if (this.config.rule === "exact") {
        const g = keptGrads[variableOf(ref.variable).name];
        if (!g) throw new Error(`internal: no kept gradient for '${ref.name}'`);
        return toMatrix(ref, g); // ∂L/∂W at W_gen, as [rows, cols]
      }
      return tf.tidy(() => tf.sub(p.writtenCopies[k], readMatrix(ref))); // W_gen − T_after
    });
  }

  /** Variables whose plain-loss gradient the `exact` rule needs from this side's step. */
  private keepSet(pending: PendingTransfer[], side: SideName): Set<string> {
    const names = new Set<string>();
    if (this.config.rule !== "exact") return names;
    for (const p of pending) if (p.link.receiver === side) for (const ref of p.link.targetRefs) names.add(variableOf(ref.variable).name);
    return names;
  }

  /** The matrices the adapters read: the source's, or the control's fixed random stand-ins. */
  private sourceParts(link: Link): tf.Tensor2D[] {
    return tf.tidy(() => {
      const raw = link.sourceRefs.map((ref) => readMatrix(ref));
      let parts = raw;
      if (link.form === "svd") {
        const split = this.timed("svd", () => svdSplit(raw[0], link.rank)); // the source's residual is not needed
        parts = [split.b, split.a];
      }
      if (this.config.sourceInput === "model") return parts;
      if (this.config.sourceInput === "permuted") {
        const permutationSeed = (k: number): number => this.config.seed * 104729 + link.pairIndex * 7919 + k + 1;
        link.permutations ??= parts.map((p, k) => tf.keep(tf.tensor1d(seededPermutation(p.size, permutationSeed(k)), "int32")));
        return parts.map((p, k) => tf.reshape(tf.gather(tf.reshape(p, [-1]), link.permutations![k]), p.shape) as tf.Tensor2D);
      }
      if (!link.randomSources) {
        link.randomSources = parts.map((p, k) => {
          const std = tf.moments(p).variance.sqrt();
          return tf.keep(tf.mul(tf.randomNormal(p.shape, 0, 1, "float32", this.config.seed * 104729 + k + 1), std) as tf.Tensor2D);
        });
      }
      return link.randomSources.map((r) => r.clone());
    });
  }

  /** W_gen for each written parameter, from fixed inputs; differentiable in the adapter's variables. */
  private generate(p: TransferInput): tf.Tensor2D[] {
    const { link } = p;
    const outs = link.adapters.map((adapter, k) => {
      // The spectral-norm vectors were refreshed before the gradient tape opened (transferAndUpdate).
      const out = adapter.forward(p.sourceParts[k], p.targetParts[k], { training: true, dropoutSeed: p.dropoutSeed + k, updateSpectral: false });
      return link.writebacks[k].apply(out, p.targetParts[k]);
    });
    if (link.form === "svd") {
      // W' = (W − U_r Σ_r V_rᵀ) + B'·A': only the rank-r part is replaced.
      return [tf.add(p.residual as tf.Tensor2D, tf.matMul(outs[0], outs[1])) as tf.Tensor2D];
    }
    return outs;
  }

  /** Step 1a: copies of the matrices the link's adapters read (constants from here on). */
  private readInputs(link: Link, linkIndex: number): TransferInput {
    const sourceParts = this.sourceParts(link);
    if (link.form !== "svd") {
      const targetParts = link.targetRefs.map((ref) => readMatrix(ref));
      return { link, dropoutSeed: dropoutSeedFor(this.config.seed, this.step, linkIndex), sourceParts, targetParts };
    }
    const current = readMatrix(link.targetRefs[0]);
    const split = this.timed("svd", () => svdSplit(current, link.rank));
    current.dispose();
    return {
      link,
      dropoutSeed: dropoutSeedFor(this.config.seed, this.step, linkIndex),
      sourceParts,
      targetParts: [split.b, split.a],
      residual: split.residual,
    };
  }

  /** Step 1b: generate W_gen and write it into the receiving model; returns what step 4 needs. */
  private transfer(input: TransferInput): PendingTransfer {
    const { link, targetParts, residual } = input;
    const written = tf.tidy(() => this.generate(input).map((w) => tf.keep(w)));
    written.forEach((w, k) => writeMatrix(link.targetRefs[k], w));
    // W_gen as stored, read back from the variables: the same values, but not on the tape.
    const writtenCopies = link.targetRefs.map((ref) => tf.keep(readMatrix(ref)));
    const change = tf.tidy(() => {
      const before = residual ? [tf.add(residual, tf.matMul(targetParts[0], targetParts[1]))] : targetParts;
      const moved = tf.addN(writtenCopies.map((w, k) => tf.sum(tf.square(tf.sub(w, before[k])))));
      const size = tf.addN(before.map((b) => tf.sum(tf.square(b))));
      return tf.keep(tf.sqrt(tf.div(moved, tf.add(size, 1e-12))) as tf.Scalar);
    });
    const stats = this.recordTransfer({ step: this.step, pair: link.pairIndex, direction: link.direction }, change, this.towardSource(input, writtenCopies));
    return { ...input, written, writtenCopies, stats };
  }

  /**
   * Diagnostic: cos(W' − T, S − T) with S the source model's own weight (whatever the adapter
   * read), for a `full` pair whose two matrices have one shape; undefined elsewhere.
   */
  private towardSource(input: TransferInput, writtenCopies: tf.Tensor2D[]): tf.Scalar | undefined {
    const { link, targetParts } = input;
    if (link.form !== "full" || !tf.util.arraysEqual(link.sourceRefs[0].matrixShape, link.targetRefs[0].matrixShape)) return undefined;
    return tf.tidy(() => {
      const source = this.config.sourceInput === "model" ? input.sourceParts[0] : readMatrix(link.sourceRefs[0]);
      return tf.keep(writeCosine(writtenCopies[0], targetParts[0], source));
    });
  }

  private disposeLinks(): void {
    for (const link of this.links) {
      link.adapters.forEach((a) => a.dispose());
      link.writebacks.forEach((w) => w.dispose());
      link.optimizer.dispose();
      tf.dispose(link.randomSources ?? []);
      tf.dispose(link.permutations ?? []);
    }
  }

  /** Write-back gates g at this moment, keyed `pair:direction:factor`. */
  protected override gates(): Record<string, number> {
    const gates: Record<string, number> = {};
    for (const link of this.links) {
      link.writebacks.forEach((w, k) => {
        const g = w.gate();
        if (g !== undefined) gates[`${link.pairIndex}:${link.direction}:${k}`] = g;
      });
    }
    return gates;
  }

  /** The adapters' learning rates before a divergence's restore (which would roll them back). */
  /** The target always; the source too with two-way transfer. */
  protected override receivesTransfers(side: "source" | "target"): boolean {
    return side === "target" || this.config.direction === "two-way";
  }

  protected override divergenceMemo(): number[] {
    return this.links.map((link) => link.optimizer.learningRate);
  }

  /** After a divergence: every adapter's learning rate is half what it was when it diverged. */
  protected override afterDivergence(memo: unknown): string {
    if (this.links.length === 0) return "no change (no adapter)";
    const rates = memo as number[];
    this.links.forEach((link, i) => (link.optimizer.learningRate = rates[i] / 2));
    return `adapter learning rate ${rates[0]} -> ${this.links[0].optimizer.learningRate}`;
  }

  protected override disposeOwned(): void {
    this.disposeLinks();
  }

  /** Adapters (trainable and spectral state), write-back gates, their optimiser, control matrices. */
  protected override extraState(): ExtraState {
    const tensors: Record<string, tf.Tensor> = {};
    const owned: tf.Tensor[] = [];
    const meta = this.links.map((link, i) => {
      link.variables.forEach((v, k) => (tensors[`link${i}.var.${k}`] = v));
      link.adapters.forEach((a, k) => a.stateVariables.forEach((v, j) => (tensors[`link${i}.adapter${k}.state.${j}`] = v)));
      const opt = link.optimizer.getState();
      opt.moments.forEach((m, k) => {
        tensors[`link${i}.adamw.m.${k}`] = m.m;
        tensors[`link${i}.adamw.v.${k}`] = m.v;
        owned.push(m.m, m.v);
      });
      (link.randomSources ?? []).forEach((r, k) => (tensors[`link${i}.random.${k}`] = r));
      return {
        shapes: link.variables.map((v) => v.shape),
        states: link.adapters.map((a) => a.stateVariables.length),
        adamw: { step: opt.step, learningRate: opt.learningRate },
        randomSources: link.randomSources?.length ?? 0,
      };
    });
    return { tensors, owned, meta: { config: this.config, links: meta } };
  }

  protected override restoreExtraState(tensors: Map<string, tf.Tensor>, rawMeta: unknown): void {
    type SavedLink = { shapes: number[][]; states: number[]; adamw: { step: number; learningRate: number }; randomSources: number };
    const meta = rawMeta as { config: MergeNetConfig; links: SavedLink[] };
    const saved = JSON.stringify(meta.config);
    const current = JSON.stringify(this.config);
    if (saved !== current) throw new Error(`the checkpoint was made with a different MergeNet configuration:
  saved:   ${saved}
  current: ${current}`);
    const get = (name: string): tf.Tensor => {
      const t = tensors.get(name);
      if (!t) throw new Error(`the checkpoint lacks '${name}'; it does not belong to this trainer`);
      return t;
    };
    this.links.forEach((link, i) => {
      const info = meta.links[i];
      if (JSON.stringify(info.shapes) !== JSON.stringify(link.variables.map((v) => v.shape))) {
        throw new Error(`the checkpoint's adapter ${i} has different parameter shapes; build the trainer with the configuration it was saved with`);
      }
      link.variables.forEach((v, k) => v.assign(get(`link${i}.var.${k}`)));
      link.adapters.forEach((a, k) => a.stateVariables.forEach((v, j) => v.assign(get(`link${i}.adapter${k}.state.${j}`))));
      link.optimizer.setState({
        ...info.adamw,
        moments: link.variables.map((_, k) => ({ m: get(`link${i}.adamw.m.${k}`), v: get(`link${i}.adamw.v.${k}`) })),
      });
      tf.dispose(link.randomSources ?? []);
      link.randomSources = info.randomSources
        ? Array.from({ length: info.randomSources }, (_, k) => get(`link${i}.random.${k}`).clone() as tf.Tensor2D)
        : undefined;
    });
  }
}
