/**
 * A scenario is a pair of models with their data: what an experiment compares methods on.
 * It knows datasets and models, never methods; the runner (runner.ts) combines a scenario
 * with each method and seed. Scenarios register by name so that an experiment's JSON
 * configuration (and so its cache key) can name them.
 */
import type { PairedInput } from "../core/batch-stream";
import type { ModelSide } from "../core/loop";

export interface ScenarioInstance {
  /** Fresh, seeded models with their optimisers, data streams, losses and evaluators. */
  source: ModelSide;
  target: ModelSide;
  /** Whether source and target predict the same classes on inputs both can read (KD / DML apply). */
  sharedLabels: boolean;
  /**
   * Item-aligned scenarios whose models read different modalities: the source's input for the
   * items of a target batch, so KD / DML run the source on its own modality of the same items.
   * Absent where both models read the target's batch as it is, or where no item pairing exists.
   */
  pairedInput?: PairedInput;
  /**
   * The source arrives trained and stays frozen for every method (a scenario that builds a
   * finished source itself, such as the positive control); methods then never step it.
   */
  frozenSource?: boolean;
  /** The metric (a key of the evaluators' records) that the results tables report, e.g. "accuracy". */
  metric: string;
  /** Frees models and data made by build (not shared caches). */
  dispose(): void;
}

/** Where a run is built (the runner passes it; a scenario may ignore it). */
export interface BuildContext {
  /**
   * The run's results folder: a scenario may keep there what its builds of other runs can reuse
   * (the positive control's pre-trained source, as pretrained-sources.ts keys and stores it).
   */
  resultsDir?: string;
}

export interface Scenario<Options = Record<string, unknown>> {
  name: string;
  /** One line for tables and reports. */
  description: string;
  /**
   * Builds a fresh instance. `seed` sets every random choice of this run (weights, batch
   * order, data subset where the options ask for one). Options are plain JSON.
   */
  build(seed: number, options: Options, context?: BuildContext): Promise<ScenarioInstance>;
  /**
   * Every problem of `options` (none: they are valid), without building anything, so that the
   * runner reports them with the configuration's other problems before any work. Build checks
   * the same on its own; a scenario without this is checked when preflight builds it.
   */
  optionProblems?(options: Options): string[];
}

const registry = new Map<string, Scenario<never>>();
/** The scenarios of src/experiments/scenarios, which every worker process imports. */
const builtIn = new Set<Scenario<never>>();

export function registerScenario<O>(scenario: Scenario<O>): Scenario<O> {
  registry.set(scenario.name, scenario as unknown as Scenario<never>);
  return scenario;
}

/** Marks these scenarios as built in (src/experiments/scenarios/index.ts lists its own). */
export function markBuiltInScenarios(scenarios: Scenario<never>[]): void {
  for (const scenario of scenarios) builtIn.add(scenario);
}

/**
 * Whether a worker process, which imports src/experiments/scenarios, builds the scenario this
 * process has under `name` (false for one registered only here, or registered again here
 * under a built-in name).
 */
export function isBuiltInScenario(name: string): boolean {
  const scenario = registry.get(name);
  return scenario !== undefined && builtIn.has(scenario);
}

export function getScenario(name: string): Scenario<Record<string, unknown>> {
  const scenario = registry.get(name);
  if (!scenario) {
    const known = [...registry.keys()].sort().join(", ") || "(none registered: import src/experiments/scenarios first)";
    throw new Error(`unknown scenario '${name}'; registered scenarios: ${known}`);
  }
  return scenario as unknown as Scenario<Record<string, unknown>>;
}

export function scenarioNames(): string[] {
  return [...registry.keys()].sort();
}
