/**
 * The methods an experiment compares, as plain JSON (so a run's cache key can include
 * them), and the one function that turns a method and a scenario instance into a trainer.
 */
import { DistillationTrainer, MutualLearningTrainer, type DistillationConfig } from "../baselines/distillation";
import { IndependentTrainer } from "../baselines/independent";
import { SharingTrainer, type SharingConfig } from "../baselines/sharing";
import type { JointLoop } from "../core/loop";
import { MergeNetTrainer, mergeNetConfigProblems, type MergeNetConfig } from "../core/mergenet";
import { describeValue, isWholeAtLeast, nearestName, unknownKeyProblems } from "../config-checks";
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
    return `${method.kind === "kd" ? "logit distillation" : "deep mutual learning"} needs both models to predict the ` +
        `same classes on the same items (one input both read, or one item seen in both modalities); this scenario's ` +
        `models differ in label space or share no item`;
  }
  return undefined;
}

/** Checks a method list before any training, with messages that say what to change. */
export function validateMethods(methods: MethodSpec[]): void {
  const problems = methodProblems(methods);
  if (problems.length) throw new Error(`invalid methods:\n  - ${problems.join("\n  - ")}`);
}

/** The keys a method of each kind may have, beyond its name, kind and pretrainSourceEpochs. */
const KIND_KEYS: Record<MethodSpec["kind"], string[]> = {
  "target-alone": [], "source-alone": [], pair: [], sharing: ["sharing"], kd: ["distillation"], dml: ["distillation"], mergenet: ["mergenet"],
};
const SHARING_KEYS = ["pairs", "mode", "cycle", "strength", "freezeSource"];
const DISTILLATION_KEYS = { kd: ["temperature", "alpha", "freezeSource"], dml: ["temperature", "alpha"] };

/**
 * Every problem of a method list at once (none: it is valid), each naming its method: names,
 * kinds, unknown keys (with the name they likely meant), and each MergeNet configuration's
 * own problems. Problems only the models can reveal (layer names, ranks) wait for the
 * runner's preflight.
 */
export function methodProblems(methods: MethodSpec[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  methods.forEach((m, i) => {
    if (!m || typeof m.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9 ._()+,:\->]*$/.test(m.name)) {
      problems.push(`methods[${i}] needs a name of letters, digits, spaces and . _ ( ) + , : - >; got ${JSON.stringify(m?.name)}`);
      return;
    }
    const where = `methods[${i}] ('${m.name}')`;
    if (seen.has(m.name)) problems.push(`two methods are named '${m.name}'; names must be unique`);
    seen.add(m.name);
    if (!METHOD_KINDS.includes(m.kind)) {
      const kind: unknown = m.kind;
      const near = typeof kind === "string" ? nearestName(kind, METHOD_KINDS) : undefined;
      const shown = typeof kind === "string" ? `'${kind}'` : describeValue(kind);
      problems.push(`${where} has kind ${shown}; use one of ${METHOD_KINDS.join(", ")}${near ? ` (did you mean '${near}'?)` : ""}`);
      return;
    }
    problems.push(...unknownKeyProblems(m, ["name", "kind", "pretrainSourceEpochs", ...KIND_KEYS[m.kind]], `${where}: `));
    if (m.pretrainSourceEpochs !== undefined && !isWholeAtLeast(m.pretrainSourceEpochs, 1)) {
      problems.push(`${where}: pretrainSourceEpochs must be a whole number >= 1, got ${describeValue(m.pretrainSourceEpochs)}`);
    }
    if (m.kind === "mergenet") {
      const pairs = m.mergenet?.pairs;
      if (!Array.isArray(pairs)) problems.push(`${where} is MergeNet and needs mergenet.pairs`);
      else if (pairs.length === 0) {
        problems.push(`${where}: mergenet.pairs is empty, so nothing would be transferred and the two models' ` +
            `independent training would be saved as MergeNet; name at least one {source, target} pair, or use kind 'pair' for that baseline`);
      }
      if (m.mergenet && typeof m.mergenet === "object") {
        problems.push(...mergeNetConfigProblems({ ...m.mergenet, pairs: Array.isArray(pairs) ? pairs : [] }).map((p) => `${where}: mergenet: ${p}`));
      }
    }
    if (m.kind === "sharing") {
      if (!Array.isArray(m.sharing?.pairs)) problems.push(`${where} is naive sharing and needs sharing.pairs`);
      problems.push(...unknownKeyProblems(m.sharing, SHARING_KEYS, `${where}: sharing: `));
    }
    if (m.kind === "kd" || m.kind === "dml") problems.push(...unknownKeyProblems(m.distillation, DISTILLATION_KEYS[m.kind], `${where}: distillation: `));
  });
  return problems;
}

/**
 * The trainer for a method on a scenario instance. The source is frozen when it was
 * pre-trained. KD / DML get the instance's label-space declaration and, for item-aligned
 * cross-modal scenarios, its pairedInput.
 */
export function makeTrainer(method: MethodSpec, instance: ScenarioInstance): JointLoop {
  const frozen = method.pretrainSourceEpochs !== undefined || instance.frozenSource === true;
  // What the distillation methods need to know of the scenario's labels and inputs.
  const pairing = { sharedLabels: instance.sharedLabels, pairedInput: instance.pairedInput };
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
      const freezeSource = frozen || method.distillation?.freezeSource;
      return new DistillationTrainer(instance.source, instance.target, { ...method.distillation, freezeSource, ...pairing });
    case "dml":
      return new MutualLearningTrainer(instance.source, instance.target, { ...method.distillation, ...pairing });
    case "mergenet":
      return new MergeNetTrainer(instance.source, instance.target, { ...method.mergenet, freezeSource: frozen || method.mergenet.freezeSource });
  }
}
