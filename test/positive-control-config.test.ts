import { describe, expect, it } from "vitest";
import * as pc from "../src/experiments/configs/positive-control";
import { chooseForConfirmation, positiveControlVerdicts, verdictRows } from "../src/experiments/positive-control-verdicts";
import { confidenceInterval, studentQuantile } from "../src/experiments/statistics";
import { validateExperiment } from "../src/experiments/runner";
import { type ExperimentResult, type RunResult } from "../src/experiments/records";
import type { MethodSpec } from "../src/experiments/methods";
import "../src/experiments/scenarios";

/** A result with the given final accuracies per method (one per seed) and optional diagnostics. */
function fakeResult(finals: Record<string, number[]>, diagnostics: Partial<RunResult["diagnostics"]> = {}): ExperimentResult {
  const methods = Object.keys(finals).map((name) => ({ name, kind: "mergenet" }) as MethodSpec);
  const runs = Object.entries(finals).flatMap(([method, values]) =>
    values.map((accuracy, seed) => ({
      method, seed, metric: "accuracy", final: { target: { accuracy }, source: {} },
      diagnostics: { attentionEntropy: { rows_rows: 1 }, gate: 0.0025, writeSize: { mean: 1e-3, last: 1e-3 }, towardSource: { mean: 0.01, last: 0 }, adapterUpdates: 80, transfers: 80, ...diagnostics },
    }) as unknown as RunResult),
  );
  return { config: { name: "x", scenario: "positive-control", scenarioOptions: {}, methods, epochs: 1, seeds: [] }, runs };
}

const seeds = (base: number, jitter: number[]) => jitter.map((j) => base + j);
const noise = [0.001, -0.002, 0.0015, 0, -0.001, 0.002, -0.0005, 0.0005, -0.0015, 0.001];

describe("Student-t intervals", () => {
  it("match the tables: t(0.025, 9) = 2.262, t(0.025, 2) = 4.303", () => {
    expect(studentQuantile(0.025, 9)).toBeCloseTo(2.262, 3);
    expect(studentQuantile(0.025, 2)).toBeCloseTo(4.303, 3);
  });

  it("a 95 % interval is mean ± t·s/√n, and undefined for one value", () => {
    const ci = confidenceInterval({ mean: 1, std: 2, n: 10 });
    expect(ci.high - 1).toBeCloseTo((2.262 * 2) / Math.sqrt(10), 3);
    expect(ci.low).toBeCloseTo(2 - ci.high, 10);
    expect(Number.isNaN(confidenceInterval({ mean: 1, std: 0, n: 1 }).low)).toBe(true);
  });
});

describe("the positive control's bar", () => {
  const references = fakeResult({ "target alone": seeds(0.9, noise), "soft copy": seeds(0.92, noise) }); // gain +0.02 on every seed
  const verdictFor = (mergenet: number[], control: number[]) => {
    const search = fakeResult({ "target alone": seeds(0.9, noise), m: mergenet, "m: random source": control });
    return positiveControlVerdicts(search, [{ mergenet: "m", control: "m: random source" }], references, ["soft copy"]).verdicts[0];
  };

  it("is cleared by a variant with half the soft copy's gain that beats its control on every seed", () => {
    const v = verdictFor(seeds(0.912, noise), seeds(0.9, noise.map((x) => -x)));
    expect(v.share).toBeCloseTo(0.6, 6);
    expect(v.overControl.low).toBeGreaterThan(0);
    expect(v.clears).toBe(true);
    expect(v.words).toMatch(/^clears the bar: 60 %/);
  });

  it("is not cleared by a large gain that the control gets too (regularisation, not transfer)", () => {
    const v = verdictFor(seeds(0.915, noise), seeds(0.915, noise.map((x) => x * 0.5)));
    expect(v.share).toBeGreaterThan(0.5);
    expect(v.clears).toBe(false);
    expect(v.words).toMatch(/does not clear the bar/);
  });

  it("is not cleared by a variant that beats its control but recovers too little, and the words name uniform attention", () => {
    const v = verdictFor(seeds(0.903, noise), seeds(0.899, noise));
    expect(v.overControl.low).toBeGreaterThan(0);
    expect(v.clears).toBe(false);
    expect(v.words).toMatch(/too small.*attention is uniform/);
    expect(verdictRows([v])[0].bar).toBe("no");
  });

  it("the confirmation takes the candidates furthest above their own controls, skipping the ones named", () => {
    const search = fakeResult({
      "target alone": seeds(0.9, noise), a: seeds(0.9, noise), "a: c": seeds(0.905, noise),
      b: seeds(0.91, noise), "b: c": seeds(0.9, noise), faithful: seeds(0.93, noise), "faithful: c": seeds(0.9, noise),
    });
    const { verdicts } = positiveControlVerdicts(search, ["a", "b", "faithful"].map((m) => ({ mergenet: m, control: `${m}: c` })), references, ["soft copy"]);
    expect(chooseForConfirmation(verdicts, 2, ["faithful"])).toEqual(["b", "a"]);
    expect(chooseForConfirmation(verdicts, 1)).toEqual(["faithful"]);
  });
});

describe("notebook 05's experiments", () => {
  const all = [pc.referencesAligned(), pc.referencesPermuted(), pc.faithfulAligned(), pc.faithfulPermuted(), pc.search(), pc.confirmation(pc.SEARCH_CANDIDATES.slice(1, 3)), pc.onPermutedSource(pc.SEARCH_CANDIDATES.slice(1, 2))];

  it("are valid configurations of the positive-control scenario, with ten seeds on the main comparisons", () => {
    for (const config of all) expect(() => validateExperiment(config)).not.toThrow();
    expect(pc.referencesAligned().seeds).toHaveLength(10);
    expect(pc.faithfulAligned().seeds).toHaveLength(10);
    expect(pc.confirmation([]).seeds).toHaveLength(10);
    expect(pc.search().seeds).toEqual(pc.SEARCH_SEEDS);
  });

  it("pair every search candidate with a control that differs only in what the adapter reads", () => {
    const methods = new Map(pc.search().methods.map((m) => [m.name, m]));
    for (const c of pc.SEARCH_CANDIDATES) {
      const names = pc.candidateMethods(c);
      const m = methods.get(names.mergenet) as Extract<MethodSpec, { kind: "mergenet" }>;
      const control = methods.get(names.control) as Extract<MethodSpec, { kind: "mergenet" }>;
      expect({ ...control.mergenet, sourceInput: undefined }).toEqual({ ...m.mergenet, sourceInput: undefined });
      expect(control.mergenet.sourceInput).toBe("random");
      expect(m.mergenet.sourceInput).toBeUndefined();
    }
  });

  it("keep the faithful candidate the method as published: no option beyond the paper", () => {
    const faithful = pc.search().methods.find((m) => m.name === "faithful") as Extract<MethodSpec, { kind: "mergenet" }>;
    expect(faithful.mergenet).toEqual({ ...pc.FAITHFUL, adapter: { layers: 1 }, pairs: [{ source: "fc2/kernel", target: "fc2/kernel" }] });
  });

  it("name candidates by their labels and refuse an unknown one, listing the known", () => {
    expect(pc.candidatesNamed(["matched"]).map((c) => c.options)).toEqual([{ output: "matched" }]);
    expect(() => pc.candidatesNamed(["matchd"])).toThrow(/no search candidate 'matchd'.*matched/);
  });
});
