/**
 * The methods an experiment compares, as plain JSON (so a run's cache key can include
 * them), and the one function that turns a method and a scenario instance into a trainer.
 */
import { DistillationTrainer, MutualLearningTrainer, type DistillationConfig } from "../baselines/distillation";
import { IndependentTrainer } from "../baselines/independent";
import { SharingTrainer, type SharingConfig } from "../baselines/sharing";
import type { JointLoop } from "../core/joint";
import { MergeNetTrainer, type MergeNetConfig } from "../core/trainer";
import type { ScenarioInstance } from "./scenario";

interface MethodBase {
  /** Unique id within an experiment, used in tables, plots and file names. */
  name: string;
  /** Train the source alone for this many epochs first, then freeze it (a finished model lending knowledge). */
  pretrainSourceEpochs?: number;
}

export type MethodSpec =
  | (MethodBase & { kind: "target-alone" })
  | (MethodBase & { kind: "source-alone" })
  | (MethodBase & { kind: "pair" })
  | (MethodBase & { kind: "sharing"; sharing: SharingConfig })
  | (MethodBase & { kind: "kd"; distillation?: Partial<Omit<DistillationConfig, "sharedLabels" | "pairedInput">> })
  | (MethodBase & { kind: "dml"; distillation?: Partial<Omit<DistillationConfig, "sharedLabels" | "freezeSource" | "pairedInput">> })
  | (MethodBase & { kind: "mergenet"; mergenet: Partial<MergeNetConfig> & { pairs: MergeNetConfig["pairs"] } });

export const METHOD_KINDS = ["target-alone", "source-alone", "pair", "sharing", "kd", "dml", "mergenet"] as const;

/** Why a method cannot run on a scenario, in words; undefined when it can. */
export function methodNotApplicable(method: MethodSpec, instance: Pick<ScenarioInstance, "sharedLabels">): string | undefined {
  if ((method.kind === "kd" || method.kind === "dml") && !instance.sharedLabels) {
    return `${method.kind === "kd" ? "logit distillation" : "deep mutual learning"} needs both models to predict the same classes on the same items (one input both read, or one item seen in both modalities); this scenario's models differ in label space or share no item`;
  }
  return undefined;
}

/** Checks a method list before any training, with messages that say what to change. */
export function validateMethods(methods: MethodSpec[]): void {
  const seen = new Set<string>();
  methods.forEach((m, i) => {
    if (!m || typeof m.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9 ._()+,:\->]*$/.test(m.name)) {
      throw new Error(`methods[${i}] needs a name of letters, digits, spaces and . _ ( ) + , : - >; got ${JSON.stringify(m?.name)}`);
    }
    if (seen.has(m.name)) throw new Error(`two methods are named '${m.name}'; names must be unique`);
    seen.add(m.name);
    if (!METHOD_KINDS.includes(m.kind)) throw new Error(`methods[${i}] ('${m.name}') has kind '${(m as { kind: string }).kind}'; use one of ${METHOD_KINDS.join(", ")}`);
    if (m.pretrainSourceEpochs !== undefined && (!Number.isInteger(m.pretrainSourceEpochs) || m.pretrainSourceEpochs < 1)) {
      throw new Error(`methods[${i}] ('${m.name}'): pretrainSourceEpochs must be a whole number >= 1`);
    }
    if (m.kind === "mergenet" && !Array.isArray(m.mergenet?.pairs)) throw new Error(`methods[${i}] ('${m.name}') is MergeNet and needs mergenet.pairs`);
    if (m.kind === "sharing" && !Array.isArray(m.sharing?.pairs)) throw new Error(`methods[${i}] ('${m.name}') is naive sharing and needs sharing.pairs`);
  });
}

/**
 * The trainer for a method on a scenario instance. The source is frozen when it was
 * pre-trained. KD / DML get the instance's label-space declaration and, for item-aligned
 * cross-modal scenarios, its pairedInput.
 */
export function makeTrainer(method: MethodSpec, instance: ScenarioInstance): JointLoop {
  const frozen = method.pretrainSourceEpochs !== undefined || instance.frozenSource === true;
  switch (method.kind) {
    case "target-alone":
      return new IndependentTrainer(undefined, instance.target);
    case "source-alone":
      return new IndependentTrainer(undefined, instance.source);
    case "pair":
      return new IndependentTrainer(instance.source, instance.target, { freezeSource: frozen });
    case "sharing":
      return new SharingTrainer(instance.source, instance.target, { ...method.sharing, freezeSource: frozen || method.sharing.freezeSource });
    case "kd":
      return new DistillationTrainer(instance.source, instance.target, { ...method.distillation, freezeSource: frozen || method.distillation?.freezeSource, sharedLabels: instance.sharedLabels, pairedInput: instance.pairedInput });
    case "dml":
      return new MutualLearningTrainer(instance.source, instance.target, { ...method.distillation, sharedLabels: instance.sharedLabels, pairedInput: instance.pairedInput });
    case "mergenet":
      return new MergeNetTrainer(instance.source, instance.target, { ...method.mergenet, freezeSource: frozen || method.mergenet.freezeSource });
  }
}
