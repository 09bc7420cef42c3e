// The one classifier of comparisons (src/experiments/statistics.ts; the comparisons to make: verdicts.ts): hand-made differences with
// known answers, the interval against closed forms, TOST against a worked example, the counts
// against chance, and the rule that every MergeNet variant of every configuration has a
// matched control (a new variant without one fails here).
import { afterEach, describe, expect, it } from "vitest";
import * as crossArchitecture from "../src/experiments/configs/cross-architecture";
import * as crossTask from "../src/experiments/configs/cross-task";
import * as crossModality from "../src/experiments/configs/cross-modality";
import * as ablations from "../src/experiments/configs/ablations";
import * as positiveControl from "../src/experiments/configs/positive-control";
import type { ExperimentConfig, ExperimentResult, RunResult } from "../src/experiments/records";
import {
  candidatesToConfirm, confirmCandidates, confirmationOf, countVerdicts, countsText, FRESH_SEEDS, matchedControls, narrowed, smallestEffect, type VariantVerdict,
} from "../src/experiments/verdicts";
import { binomialAtLeast, classify, verdictText } from "../src/experiments/statistics";

const savedQuick = process.env.MERGENET_QUICK;
afterEach(() => {
  if (savedQuick === undefined) delete process.env.MERGENET_QUICK;
  else process.env.MERGENET_QUICK = savedQuick;
});

/** n values with the given mean and sample standard deviation (symmetric around the mean). */
function withMeanStd(n: number, mean: number, std: number): number[] {
  const base = Array.from({ length: n }, (_, i) => i - (n - 1) / 2);
  const s = Math.sqrt(base.reduce((a, b) => a + b * b, 0) / (n - 1));
  return base.map((b) => mean + (b / s) * std);
}

describe("classify", () => {
  it("calls a clear gain better and a clear loss worse (n = 10)", () => {
    const gain = classify(withMeanStd(10, 0.02, 0.005), 0.004);
    expect(gain.verdict).toBe("better");
    expect(gain.low).toBeGreaterThan(0);
    expect(gain.belowDelta).toBe(false);
    const loss = classify(withMeanStd(10, -0.02, 0.005), 0.004);
    expect(loss.verdict).toBe("worse");
    expect(loss.high).toBeLessThan(0);
  });

  it("calls a tight zero equivalent within δ, and the same data inconclusive with a smaller δ", () => {
    const diffs = withMeanStd(10, 0.0005, 0.001);
    expect(classify(diffs, 0.003).verdict).toBe("equivalent");
    expect(classify(diffs, 0.0005).verdict).toBe("inconclusive");
    expect(verdictText(classify(diffs, 0.003))).toBe("equivalent within ±0.0030");
  });

  it("calls wide noise inconclusive, and n = 2 as the t distribution with 1 degree of freedom says", () => {
    expect(classify(withMeanStd(10, 0.001, 0.02), 0.002).verdict).toBe("inconclusive");
    // n = 2: t(0.025, 1) = tan(π (0.5 − 0.025)) = 12.706; mean 1, std 0.1 → half-width 12.706 · 0.1 / √2 = 0.8985.
    const two = classify([1 - 0.1 / Math.SQRT2, 1 + 0.1 / Math.SQRT2], 0.5);
    const half = Math.tan(Math.PI * 0.475) * (0.1 / Math.SQRT2);
    expect(two.low).toBeCloseTo(1 - half, 6);
    expect(two.high).toBeCloseTo(1 + half, 6);
    expect(two.verdict).toBe("better");
  });

  it("gives no verdict on one seed", () => {
    const one = classify([0.05], 0.01);
    expect(one.verdict).toBe("inconclusive");
    expect(Number.isNaN(one.low)).toBe(true);
    expect(verdictText(one)).toBe("one seed: no verdict");
  });

  it("matches the closed-form interval with 10 seeds: mean ± t(0.025, 9) · s / √n, t = 2.2622", () => {
    const c = classify(withMeanStd(10, 0.01, 0.004), 0.001);
    const half = 2.262157 * (0.004 / Math.sqrt(10));
    expect(c.low).toBeCloseTo(0.01 - half, 6);
    expect(c.high).toBeCloseTo(0.01 + half, 6);
    expect(c.mean).toBeCloseTo(0.01, 12);
    expect(c.std).toBeCloseTo(0.004, 12);
  });

  it("agrees with a worked TOST example (n = 10, mean 0.001, s 0.002, δ 0.003), each side at 2.5 %", () => {
    // se = 0.002/√10 = 6.325e-4; t_upper = (0.003 − 0.001)/se = 3.162, t_lower = (0.001 + 0.003)/se = 6.325;
    // p = P(T9 > 3.162) = 0.005754 (scipy.stats.t.sf); the 95 % interval [−4.3e-4, 2.43e-3] lies inside ±0.003.
    const c = classify(withMeanStd(10, 0.001, 0.002), 0.003);
    expect(c.pEquivalence).toBeCloseTo(0.00576, 4);
    expect(c.verdict).toBe("equivalent");
    expect(c.p).toBeCloseTo(0.14830, 4); // t = 1.5811, df 9: two-sided 0.14830 (scipy.stats.t.sf(1.5811, 9) · 2)
    // δ = 0.0023: the usual TOST at 5 % would call it equivalent (90 % interval's upper end 0.00216 < δ;
    // p = P(T9 > 2.055) = 0.0349), but the 95 % interval's upper end 0.00243 exceeds δ: inconclusive here.
    const between = classify(withMeanStd(10, 0.001, 0.002), 0.0023);
    expect(between.pEquivalence).toBeGreaterThan(0.025);
    expect(between.pEquivalence).toBeLessThan(0.05);
    expect(between.high).toBeGreaterThan(0.0023);
    expect(between.verdict).toBe("inconclusive");
  });

  it("flags a significant difference smaller than δ", () => {
    const c = classify(withMeanStd(10, 0.002, 0.0005), 0.01);
    expect(c.verdict).toBe("better");
    expect(c.belowDelta).toBe(true);
    expect(verdictText(c)).toBe("better, but by less than δ = 0.0100");
  });

  it("handles seeds that all gave the same difference", () => {
    expect(classify([0.01, 0.01, 0.01], 0.001).verdict).toBe("better");
    expect(classify([0, 0, 0], 0.001).verdict).toBe("equivalent");
  });

  it("refuses a bad δ and non-finite differences, saying what it got", () => {
    expect(() => classify([0.1, 0.2], -1)).toThrow(/δ must be a finite number >= 0, got -1/);
    expect(() => classify([0.1, NaN], 0.01)).toThrow(/must be finite/);
  });
});

describe("smallestEffect", () => {
  const fallback = { delta: 0.01, reason: "one point" };
  it("is a fifth of distillation's gain, or one test item where that is larger, or the fallback", () => {
    expect(smallestEffect({ distillationGain: { method: "KD", gain: 0.05 }, testItems: 1000, fallback }).delta).toBeCloseTo(0.01, 12);
    const item = smallestEffect({ distillationGain: { method: "KD", gain: 0.002 }, testItems: 600, fallback });
    expect(item.delta).toBeCloseTo(1 / 600, 12);
    expect(item.reason).toMatch(/one test item/);
    expect(smallestEffect({ distillationGain: { method: "KD", gain: -0.01 }, testItems: 600, fallback })).toEqual(fallback);
    expect(smallestEffect({ fallback, testItems: 50 }).delta).toBeCloseTo(0.02, 12);
  });
});

describe("counts against chance", () => {
  it("computes the binomial tail", () => {
    expect(binomialAtLeast(0, 10, 0.05)).toBe(1);
    expect(binomialAtLeast(1, 10, 0.05)).toBeCloseTo(1 - 0.95 ** 10, 12);
    expect(binomialAtLeast(2, 3, 0.5)).toBeCloseTo(0.5, 12);
  });
  it("counts verdicts two-sided: better and worse both leave 'inconclusive'", () => {
    const cs = [classify(withMeanStd(10, 0.02, 0.005), 0.004), classify(withMeanStd(10, -0.02, 0.005), 0.004), classify(withMeanStd(10, 0, 0.001), 0.004), classify(withMeanStd(10, 0, 0.05), 0.004), classify([0.3], 0.004)];
    const counts = countVerdicts(cs);
    expect(counts).toMatchObject({ comparisons: 5, better: 1, worse: 1, equivalent: 1, inconclusive: 2, tested: 4 });
    expect(counts.expectedByChance).toBeCloseTo(0.2, 12);
    expect(counts.pAtLeast).toBeCloseTo(binomialAtLeast(2, 4, 0.05), 12);
    expect(countsText(counts)).toMatch(/1 better, 1 worse, 1 equivalent within ±δ, 2 inconclusive/);
  });
});

/** Every experiment configuration of every notebook, in both modes. */
function everyConfig(): ExperimentConfig[] {
  const ca = [crossArchitecture.cnnToMlp(), crossArchitecture.cnnToVit(), crossArchitecture.cnnToMlpMain(), crossArchitecture.cnnToVitMain()];
  const main = [crossTask.siteToSentiment(), crossTask.sentimentToSite(), crossTask.posToGenre(), crossTask.genreToPos()];
  const ct = [...main, ...crossTask.SWEEP_SCENARIOS.flatMap((s) => crossTask.lowDataSweep(s)), crossTask.brownMain(crossTask.posToGenre()), crossTask.brownMain(crossTask.genreToPos())];
  const cm = crossModality.crossModalityExperiments().flatMap(({ config }) => [config, crossModality.mainComparisons(config)]);
  const ab = [ablations.ablations(), ablations.ablationsMain(), ablations.cycleLrGrid(), ...ablations.factorizedRanks(), ...ablations.sourceCapacity()];
  const pc = positiveControl;
  // On source B (sourceUnits "permuted") the controls are the aligned experiments': a random matrix of the
  // weight's shape and std from the same seed is the same matrix whichever source it stands for.
  const withAlignedControls = (permuted: ExperimentConfig, aligned: ExperimentConfig): ExperimentConfig =>
    ({ ...permuted, methods: [...permuted.methods, ...aligned.methods.filter((m) => m.kind === "mergenet" && m.mergenet.sourceInput === "random")] });
  const five = [
    pc.referencesAligned(), pc.referencesPermuted(), pc.faithfulAligned(), withAlignedControls(pc.faithfulPermuted(), pc.faithfulAligned()), pc.search(),
    pc.confirmation(pc.SEARCH_CANDIDATES), withAlignedControls(pc.onPermutedSource(pc.SEARCH_CANDIDATES), pc.confirmation(pc.SEARCH_CANDIDATES)),
  ];
  return [...ca, ...ct, ...cm, ...ab, ...five];
}

describe("matched controls", () => {
  for (const quick of [false, true]) {
    it(`every MergeNet variant that reads the source has a control differing only in sourceInput (${quick ? "quick" : "default"} mode)`, () => {
      if (quick) process.env.MERGENET_QUICK = "1";
      else delete process.env.MERGENET_QUICK;
      let variants = 0;
      for (const config of everyConfig()) {
        const matched = matchedControls(config); // throws, naming the variant, when one has none
        for (const { method, control } of matched) {
          const m = config.methods.find((x) => x.name === method)!;
          const c = config.methods.find((x) => x.name === control)!;
          if (m.kind !== "mergenet" || c.kind !== "mergenet") throw new Error(`${method} / ${control}: not MergeNet`);
          expect(c.mergenet.sourceInput).toBe("random");
          expect({ ...c, name: "", mergenet: { ...c.mergenet, sourceInput: undefined } }).toEqual({ ...m, name: "", mergenet: { ...m.mergenet, sourceInput: "model" === m.mergenet.sourceInput ? undefined : m.mergenet.sourceInput } });
        }
        variants += matched.length;
      }
      expect(variants).toBeGreaterThan(40);
    });
  }

  it("names a variant without a control, and finds the permuted control where there is one", () => {
    const mergenet = (name: string, sourceInput?: "random" | "permuted", cycle = 2) => ({ name, kind: "mergenet" as const, mergenet: { pairs: [{ source: "a/kernel", target: "b/kernel" }], cycle, ...(sourceInput ? { sourceInput } : {}) } });
    const config = { name: "x", methods: [mergenet("M"), mergenet("M random", "random"), mergenet("M permuted", "permuted"), mergenet("N", undefined, 4)] };
    expect(() => matchedControls(config)).toThrow(/'N' has no matched random-source control/);
    expect(matchedControls({ ...config, methods: config.methods.slice(0, 3) })).toEqual([{ method: "M", control: "M random", permuted: "M permuted" }]);
  });

  it("narrowed keeps the experiment's name and options, and refuses unknown methods", () => {
    const full = crossArchitecture.cnnToMlp();
    const main = narrowed(full, ["target alone"], [0, 1]);
    expect(main).toMatchObject({ name: full.name, scenarioOptions: full.scenarioOptions, epochs: full.epochs, seeds: [0, 1] });
    expect(main.methods.map((m) => m.name)).toEqual(["target alone"]);
    expect(() => narrowed(full, ["nope"], [0])).toThrow(/has no method 'nope'/);
    expect(() => narrowed(full, ["target alone"], [1, 2])).toThrow(/must start with the experiment's first seed/);
  });

  it("confirms on fresh seeds only what is better or worse on ten seeds, as an experiment of its own", () => {
    const verdict = (method: string, differences: number[]): VariantVerdict => {
      const c = classify(differences, 0.001);
      return { method, control: `${method} control`, overAlone: c, controlOverAlone: c, overControl: c, words: "" };
    };
    const ten = (x: number) => Array.from({ length: 10 }, (_, i) => x + (i % 2 ? 1e-4 : -1e-4));
    const chosen = candidatesToConfirm([
      verdict("better on 10", ten(0.01)), verdict("worse on 10", ten(-0.01)), verdict("equivalent on 10", ten(0)),
      verdict("better on 3", [0.01, 0.0101, 0.0099]),
    ]);
    expect(chosen.map((v) => v.method)).toEqual(["better on 10", "worse on 10"]);

    const full = crossModality.emojiTextToImage();
    const [candidate] = matchedControls(full);
    const confirmation = confirmationOf(full, candidate);
    expect(confirmation).toMatchObject({ name: `${full.name}-confirmation`, scenario: full.scenario, scenarioOptions: full.scenarioOptions, epochs: full.epochs });
    expect(confirmation.seeds).toEqual([...FRESH_SEEDS]);
    expect(confirmation.seeds.some((s) => full.seeds.includes(s))).toBe(false);
    expect(confirmation.methods.map((m) => m.name).sort()).toEqual(["target alone", candidate.method, candidate.control].sort());
    expect(() => confirmationOf(full, { method: "nope", control: candidate.control })).toThrow(/has no method 'nope'/);
  });

  it("confirmCandidates runs each candidate's confirmation and judges it there with the same δ", async () => {
    const full = crossModality.emojiTextToImage();
    const [first, second] = matchedControls(full);
    const verdict = (m: { method: string; control: string }, x: number): VariantVerdict => {
      const c = classify(Array.from({ length: 10 }, (_, i) => x + (i % 2 ? 1e-4 : -1e-4)), 0.001);
      return { ...m, overAlone: c, controlOverAlone: c, overControl: c, words: "" };
    };
    // Fresh seeds: the first candidate's gain over its control vanishes (equivalent within δ).
    const accuracy: Record<string, number> = { "target alone": 0.5, [first.method]: 0.5, [first.control]: 0.5 };
    const ran: ExperimentConfig[] = [];
    const run = async (config: ExperimentConfig): Promise<ExperimentResult> => {
      ran.push(config);
      const runs = config.seeds.flatMap((seed) => config.methods.map((m) => ({
        method: m.name, seed, metric: "accuracy", final: { target: { accuracy: (accuracy[m.name] ?? 0) + (seed % 2 ? 1e-4 : -1e-4) * (m.name === first.method ? 1 : 0) }, source: {} },
      }) as unknown as RunResult));
      return { config, runs } as unknown as ExperimentResult;
    };
    const confirmations = await confirmCandidates(full, [verdict(first, 0.01), verdict(second, 0)], 0.001, run);
    expect(ran.map((c) => c.name)).toEqual([`${full.name}-confirmation`]);
    expect(ran[0].seeds).toEqual([...FRESH_SEEDS]);
    expect(confirmations).toHaveLength(1);
    expect(confirmations[0].found.method).toBe(first.method);
    expect(confirmations[0].fresh).toMatchObject({ method: first.method, control: first.control });
    expect(confirmations[0].fresh.overControl.n).toBe(FRESH_SEEDS.length);
    expect(confirmations[0].fresh.overControl.verdict).toBe("equivalent");
    await expect(confirmCandidates(full, [verdict(second, 0)], 0.001, run)).resolves.toEqual([]);
  });
});
