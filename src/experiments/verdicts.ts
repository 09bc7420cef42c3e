/**
 * Verdicts on an experiment's results: which comparisons to make (a variant against target
 * alone and against its matched control), δ for a scenario, and the tables, effects and counts
 * that the notebooks show. The classifier itself and its statistics are in statistics.ts.
 *
 * Matched controls: a MergeNet variant is compared with the control that differs from it only
 * in what the adapter reads (`sourceInput`), found by `matchedControls` from the configuration
 * itself, so a variant without one is an error, not a silent comparison with the wrong control.
 */
import type { MethodSpec } from "./methods";
import { pairedDifference, pairedDifferences } from "./results";
import { ALPHA, binomialAtLeast, classify, intervalText, signedNumber, verdictText, type Comparison, type Verdict } from "./statistics";
import { runExperiment } from "./runner";
import { stableStringify } from "./run-files";
import { type ExperimentConfig, type ExperimentResult } from "./records";

/** The smallest effect worth calling transfer in one scenario, and why that size. */
export interface SmallestEffect {
  delta: number;
  reason: string;
}

/**
 * δ for one scenario: a fifth of what distillation gains over target alone there (a method
 * that demonstrably moves knowledge between these two models), or one test item where that is
 * larger. Where distillation does not apply or gains nothing, `fallback` says the size and why.
 */
export function smallestEffect(options: { distillationGain?: { method: string; gain: number }; testItems?: number; fallback: SmallestEffect }): SmallestEffect {
  const item = options.testItems && options.testItems > 0 ? 1 / options.testItems : 0;
  const kd = options.distillationGain;
  if (kd && Number.isFinite(kd.gain) && kd.gain > 0) {
    const fifth = kd.gain / 5;
    return fifth >= item
      ? { delta: fifth, reason: `a fifth of ${kd.method}'s gain over target alone here (${signedNumber(kd.gain)})` }
      : { delta: item, reason: `one test item (1/${options.testItems}), larger than a fifth of ${kd.method}'s gain (${signedNumber(kd.gain)})` };
  }
  if (options.fallback.delta >= item) return options.fallback;
  return { delta: item, reason: `one test item (1/${options.testItems}), larger than the fallback (${options.fallback.reason})` };
}

/** δ from an experiment's own runs: the best mean gain of the named distillation methods present (see smallestEffect). */
export function smallestEffectOf(
  result: ExperimentResult,
  options: { distillation: string[]; testItems?: number; fallback: SmallestEffect; baseline?: string },
): SmallestEffect {
  const baseline = options.baseline ?? "target alone";
  const gains = options.distillation
    .filter((m) => result.runs.some((r) => r.method === m && !r.notApplicable))
    .map((m) => ({ method: m, gain: pairedDifference(result, m, baseline).mean }))
    .filter((g) => Number.isFinite(g.gain));
  const best = gains.reduce<{ method: string; gain: number } | undefined>((b, g) => (!b || g.gain > b.gain ? g : b), undefined);
  return smallestEffect({ distillationGain: best, testItems: options.testItems, fallback: options.fallback });
}

/** Method a against method b of an experiment, classified. */
export function compare(result: ExperimentResult, a: string, b: string, delta: number, other: ExperimentResult = result): Comparison {
  return classify(pairedDifferences(result, a, b, other), delta);
}

// ---- matched controls ----------------------------------------------------------------------

type MergeNetSpec = Extract<MethodSpec, { kind: "mergenet" }>;
const isMergeNet = (m: MethodSpec): m is MergeNetSpec => m.kind === "mergenet";
const readsSource = (m: MergeNetSpec): boolean => (m.mergenet.sourceInput ?? "model") === "model";

/** A MergeNet method's settings without its name and source input: equal for a variant and its matched controls. */
function settingsBesidesSource(m: MergeNetSpec): string {
  const { name: _name, ...method } = m;
  return stableStringify({ ...method, mergenet: { ...m.mergenet, sourceInput: undefined } });
}

/** One MergeNet variant with its matched controls (identical but for what the adapter reads). */
export interface MatchedControl {
  method: string;
  /** `sourceInput: "random"`: a fixed random matrix of the source weight's shape and std. */
  control: string;
  /** `sourceInput: "permuted"`, where the experiment has it: the live source weight, its entries shuffled. */
  permuted?: string;
}

/**
 * Every MergeNet variant of an experiment that reads the source, with its matched random-source
 * control (and permuted control where present). Throws, naming the variant, when one has no
 * random-source control: comparing it with another variant's control would mix two changes.
 */
export function matchedControls(config: Pick<ExperimentConfig, "name" | "methods">): MatchedControl[] {
  const variants = config.methods.filter(isMergeNet);
  const missing: string[] = [];
  const found = variants.filter(readsSource).flatMap((m) => {
    const key = settingsBesidesSource(m);
    const same = (input: string) => variants.find((c) => c.mergenet.sourceInput === input && settingsBesidesSource(c) === key);
    const control = same("random");
    if (!control) {
      missing.push(m.name);
      return [];
    }
    const permuted = same("permuted");
    return [{ method: m.name, control: control.name, ...(permuted ? { permuted: permuted.name } : {}) }];
  });
  if (missing.length) {
    throw new Error(
      `experiment '${config.name}': MergeNet ${missing.length > 1 ? "methods" : "method"} ${missing.map((m) => `'${m}'`).join(", ")} ` +
        `${missing.length > 1 ? "have" : "has"} no matched random-source control ` +
        `(a method with exactly the same settings but mergenet.sourceInput: "random"); add one per variant`,
    );
  }
  return found;
}

/**
 * The same experiment narrowed to `methods` and run on `seeds`: how a notebook gives its main
 * comparisons more seeds than the rest. The runs of seeds the full experiment already trained
 * come from the cache (a run's key holds its method, scenario, epochs and seed, not the list).
 */
export function narrowed(config: ExperimentConfig, methods: string[], seeds: number[]): ExperimentConfig {
  const unknown = methods.filter((m) => !config.methods.some((x) => x.name === m));
  const quoted = (names: string[]): string => names.map((name) => `'${name}'`).join(", ");
  if (unknown.length) {
    throw new Error(`narrowed: experiment '${config.name}' has no method ${quoted(unknown)}; it has ${quoted(config.methods.map((m) => m.name))}`);
  }
  if (config.seeds.length && seeds.length && seeds[0] !== config.seeds[0]) {
    throw new Error(`narrowed: the seed list must start with the experiment's first seed (${config.seeds[0]}), which ` +
        `records the first-seed extras (attention, trajectories)`);
  }
  return { ...config, methods: config.methods.filter((m) => methods.includes(m.name)), seeds };
}

/** Ten seeds, 0 to 9: every comparison a notebook reports as a main result or a candidate. */
export const MAIN_SEEDS: readonly number[] = Array.from({ length: 10 }, (_, i) => i);

/** Seeds 10 to 19: fresh seeds on which a candidate found on MAIN_SEEDS is confirmed, independent of the seeds that chose it. */
export const FRESH_SEEDS: readonly number[] = Array.from({ length: 10 }, (_, i) => 10 + i);

/**
 * The comparisons a notebook confirms on fresh seeds: a variant better or worse than its matched
 * control on at least MAIN_SEEDS.length seeds. Found among many comparisons, such a difference is
 * partly chosen by chance (the seeds that found it also measure it); a second, independent set of
 * seeds measures it without that bias, whichever way it comes out.
 */
export function candidatesToConfirm(verdicts: VariantVerdict[]): VariantVerdict[] {
  return verdicts.filter((v) => v.overControl.n >= MAIN_SEEDS.length && (v.overControl.verdict === "better" || v.overControl.verdict === "worse"));
}

/**
 * A candidate's confirmation as an experiment of its own (`<name>-confirmation`, its own folder of
 * runs): the same scenario, options and epochs, narrowed to the baseline, the variant and its
 * matched control, on FRESH_SEEDS.
 */
export function confirmationOf(
  config: ExperimentConfig,
  candidate: MatchedControl,
  options: { baseline?: string; seeds?: readonly number[] } = {},
): ExperimentConfig {
  const names = [options.baseline ?? "target alone", candidate.method, candidate.control];
  const missing = names.filter((name) => !config.methods.some((m) => m.name === name));
  if (missing.length) throw new Error(`confirmationOf: experiment '${config.name}' has no method ${missing.map((m) => `'${m}'`).join(", ")}`);
  return {
    ...config,
    name: `${config.name}-confirmation`,
    methods: config.methods.filter((m) => names.includes(m.name)),
    seeds: [...(options.seeds ?? FRESH_SEEDS)],
  };
}

/** A candidate as its seeds found it, and the same variant judged on its confirmation's fresh seeds. */
export interface Confirmation {
  found: VariantVerdict;
  fresh: VariantVerdict;
}

/**
 * Confirms on fresh seeds every candidate among `verdicts` (candidatesToConfirm): runs each one's
 * confirmation experiment (confirmationOf `config`) with `run` and judges the variant there
 * against its matched control with the same δ. `run` is runExperiment by default; notebook 06's
 * summary passes one that only reads cached runs. Candidates come in the order of `verdicts`.
 */
export async function confirmCandidates(
  config: ExperimentConfig,
  verdicts: VariantVerdict[],
  delta: number,
  run: (config: ExperimentConfig) => Promise<ExperimentResult> = (c) => runExperiment(c),
): Promise<Confirmation[]> {
  const confirmations: Confirmation[] = [];
  for (const found of candidatesToConfirm(verdicts)) {
    const confirmation = await run(confirmationOf(config, found));
    const [fresh] = variantVerdicts(confirmation, delta, { only: [found.method] });
    if (!fresh) throw new Error(`confirmCandidates: experiment '${confirmation.config.name}' holds no paired runs of '${found.method}' and '${found.control}'`);
    confirmations.push({ found, fresh });
  }
  return confirmations;
}

// ---- counts against chance -----------------------------------------------------------------

/** The verdicts of a set of comparisons counted, with what chance alone would give. */
export interface VerdictCounts {
  comparisons: number;
  better: number;
  worse: number;
  equivalent: number;
  inconclusive: number;
  /** Comparisons with at least two seeds (the only ones a test can call better or worse). */
  tested: number;
  /** With no real effect anywhere: the expected number called better or worse (α per test, two-sided). */
  expectedByChance: number;
  /** With no real effect anywhere: P(at least better + worse of them), binomial. */
  pAtLeast: number;
}

export function countVerdicts(comparisons: Comparison[]): VerdictCounts {
  const count = (v: Verdict) => comparisons.filter((c) => c.n >= 2 && c.verdict === v).length;
  const tested = comparisons.filter((c) => c.n >= 2).length;
  const better = count("better");
  const worse = count("worse");
  return {
    comparisons: comparisons.length, better, worse, equivalent: count("equivalent"), inconclusive: comparisons.length - better - worse - count("equivalent"),
    tested, expectedByChance: tested * ALPHA, pAtLeast: binomialAtLeast(better + worse, tested, ALPHA),
  };
}

/** The counts in one sentence, against chance. */
export function countsText(c: VerdictCounts): string {
  if (c.tested === 0) return `${c.comparisons} comparisons, none with two seeds or more: no verdict.`;
  const outside = c.better + c.worse;
  return (
    `${c.comparisons} comparisons: ${c.better} better, ${c.worse} worse, ${c.equivalent} equivalent within ±δ, ${c.inconclusive} inconclusive. ` +
    `With no real effect anywhere, chance alone would call ${c.expectedByChance.toFixed(1)} of ${c.tested} better or worse (5 % each, two-sided); ` +
    (outside === 0
      ? "here none is."
      : `${outside} or more happen by chance with probability ${c.pAtLeast < 0.001 ? "< 0.001" : c.pAtLeast.toFixed(3)}` +
        `${c.pAtLeast < 0.05 ? ": more than chance gives." : ": no more than chance gives."}`)
  );
}

// ---- a MergeNet variant against its matched control ----------------------------------------

/** One MergeNet variant's comparisons: over target alone, its control over target alone, and over its control (and its permuted control). */
export interface VariantVerdict extends MatchedControl {
  overAlone: Comparison;
  controlOverAlone: Comparison;
  overControl: Comparison;
  overPermuted?: Comparison;
  /** What the comparisons mean, in one or two sentences. */
  words: string;
}

/** What a variant's comparisons mean. A gain its control also gets is never called transfer. */
export function variantWords(variant: Omit<VariantVerdict, "words">): string {
  const { overControl, overAlone, controlOverAlone, overPermuted } = variant;
  if (overControl.n < 2) return "One seed only (quick mode?): no verdict.";
  const interval = `${intervalText(overControl)}, δ = ${overControl.delta.toFixed(4)}`;
  const verdict = overControl.verdict;
  let words: string;
  if (verdict === "better" && !overControl.belowDelta) words = `Beats its random-source control (${interval}): a candidate for transfer from the source.`;
  else if (verdict === "better") words = `Above its random-source control, but by less than δ (${interval}): too small to call transfer.`;
  else if (verdict === "worse") words = `Below its random-source control (${interval}): reading the source does worse than reading noise of its shape.`;
  else if (verdict === "equivalent") words = `Equivalent to its random-source control within ±δ (${interval}): any transfer is smaller than δ.`;
  else {
    words =
      `Cannot be told from its random-source control (${interval}): ` +
      "the interval reaches beyond ±δ, so neither a gain nor its absence is shown.";
  }
  if (overAlone.verdict === "better" && controlOverAlone.verdict === "better" && verdict !== "better") {
    words += " Both gain over target alone: what any such perturbation gives (regularisation), not knowledge transfer.";
  } else if (overAlone.verdict === "worse") words += " It hurts the target compared with training alone.";
  if (overPermuted) words += ` Over its permuted-entries control: ${intervalText(overPermuted)} (${verdictText(overPermuted)}).`;
  return words;
}

/** Every matched variant of an experiment (or those named in `only`), classified against δ. */
export function variantVerdicts(result: ExperimentResult, delta: number, options: { baseline?: string; only?: string[] } = {}): VariantVerdict[] {
  const baseline = options.baseline ?? "target alone";
  const present = new Set(result.runs.map((r) => r.method));
  return matchedControls(result.config)
    .filter((m) => (options.only ? options.only.includes(m.method) : true) && present.has(m.method) && present.has(m.control))
    .map((m) => {
      const v = {
        ...m,
        overAlone: compare(result, m.method, baseline, delta),
        controlOverAlone: compare(result, m.control, baseline, delta),
        overControl: compare(result, m.method, m.control, delta),
        ...(m.permuted && present.has(m.permuted) ? { overPermuted: compare(result, m.method, m.permuted, delta) } : {}),
      };
      return { ...v, words: variantWords(v) };
    });
}

/** Table rows: one per variant, numbers as text, the verdict on the comparison with its control. */
export function verdictTable(verdicts: VariantVerdict[]): Record<string, string>[] {
  const withPermuted = verdicts.some((variant) => variant.overPermuted);
  return verdicts.map((variant) => ({
    variant: variant.method,
    seeds: String(variant.overControl.n),
    "over target alone [95 % CI]": intervalText(variant.overAlone),
    "its control over target alone": intervalText(variant.controlOverAlone),
    "over its control [95 % CI]": intervalText(variant.overControl),
    verdict: verdictText(variant.overControl),
    ...(withPermuted
      ? { "over its permuted control": variant.overPermuted ? `${intervalText(variant.overPermuted)} (${verdictText(variant.overPermuted)})` : "" }
      : {}),
  }));
}

/** The three series a variant contributes to an effects figure, in this order. */
export const EFFECT_SERIES = {
  overAlone: "MergeNet − target alone",
  controlOverAlone: "its control − target alone",
  overControl: "MergeNet − its control",
} as const;

/** Rows for effectsPlot (src/plots/specs.ts): per variant its gain, its control's gain, and their difference; `series` narrows which. */
export function effectRows(verdicts: VariantVerdict[], options: { group?: string; series?: (keyof typeof EFFECT_SERIES)[] } = {}): {
  label: string; series: string; group?: string; mean: number; low: number; high: number; delta: number; verdict: string; n: number;
}[] {
  const series = options.series ?? (Object.keys(EFFECT_SERIES) as (keyof typeof EFFECT_SERIES)[]);
  return verdicts.flatMap((v) =>
    series.filter((s) => Number.isFinite(v[s].mean)).map((s) => ({
      label: v.method, series: EFFECT_SERIES[s], ...(options.group ? { group: options.group } : {}),
      mean: v[s].mean, low: v[s].low, high: v[s].high, delta: v[s].delta, verdict: v[s].n >= 2 ? v[s].verdict : "one seed", n: v[s].n,
    })),
  );
}

/** Rows for effectsPlot of reference methods (distillation, mutual learning...): their gain over target alone, for scale. */
export function referenceEffectRows(result: ExperimentResult, methods: string[], delta: number, options: { group?: string; baseline?: string } = {}) {
  const baseline = options.baseline ?? "target alone";
  return methods
    .filter((m) => result.runs.some((r) => r.method === m && !r.notApplicable))
    .map((m) => {
      const gain = compare(result, m, baseline, delta);
      const group = options.group ? { group: options.group } : {};
      const verdict = gain.n >= 2 ? gain.verdict : "one seed";
      return { label: m, series: "reference − target alone", ...group, mean: gain.mean, low: gain.low, high: gain.high, delta, verdict, n: gain.n };
    })
    .filter((r) => Number.isFinite(r.mean));
}

/**
 * A notebook's verdicts when its main comparisons ran on more seeds (`main`, a narrowed run of
 * the same experiment) than the rest (`full`): each variant judged on the result with the most
 * seeds that holds it and its control.
 */
export function mergedVerdicts(main: ExperimentResult, full: ExperimentResult, delta: number, options: { baseline?: string } = {}): VariantVerdict[] {
  const fromMain = variantVerdicts(main, delta, options);
  const inMain = new Set(fromMain.map((v) => v.method));
  return [...fromMain, ...variantVerdicts(full, delta, options).filter((v) => !inMain.has(v.method))];
}

/** "1 seed", "10 seeds". */
export const seedCount = (n: number): string => `${n} seed${n === 1 ? "" : "s"}`;
