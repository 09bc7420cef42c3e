// Property-based: random configurations thrown at the validators either pass or fail with
// one of the documented messages, never with anything else (a TypeError, an undefined).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { resolveMergeNetConfig } from "../src/core/mergenet";
import { validateExperiment } from "../src/experiments/runner";
import { type ExperimentConfig } from "../src/experiments/records";
import "../src/experiments/scenarios/index";

const anyValue = fc.oneof(
  fc.integer({ min: -5, max: 40 }),
  fc.double({ noNaN: false }),
  fc.string({ maxLength: 8 }),
  fc.constantFrom("hypernet", "exact", "interp", "replace", "matched", "residual", "one-way", "two-way", "model", "random", "svd", "full", "factorized"),
  fc.boolean(),
  fc.constant(undefined),
  fc.constant(null),
);

const pairArb = fc.record(
  { source: fc.constantFrom("classifier/kernel", "fc2/kernel", "nope"), target: fc.constantFrom("fc2/kernel", "x"), form: anyValue, rank: anyValue },
  { requiredKeys: ["source", "target"] },
);

const mergenetArb = fc.record(
  {
    pairs: fc.array(pairArb, { maxLength: 3 }),
    cycle: anyValue,
    rule: anyValue,
    output: anyValue,
    direction: anyValue,
    freezeSource: anyValue,
    transferEpochs: anyValue,
    sourceInput: anyValue,
    seed: anyValue,
  },
  { requiredKeys: ["pairs"] },
);

const MERGENET_MESSAGE = /^invalid MergeNet configuration:\n(  - (cycle|rule|output|direction|sourceInput|freezeSource|a frozen source|transferEpochs|seed|pairs)[^\n]*\n?)+$/;

describe("configuration validators under random input", () => {
  it("resolveMergeNetConfig accepts or explains", () => {
    fc.assert(
      fc.property(mergenetArb, (config) => {
        try {
          resolveMergeNetConfig(config as never);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message).toMatch(MERGENET_MESSAGE);
        }
      }),
      { numRuns: 500, seed: 7 },
    );
  });

  const methodArb = fc.oneof(
    fc.record({ name: fc.constantFrom("a", "b", "target alone", "bad/name", ""), kind: fc.constantFrom("target-alone", "pair", "kd", "dml", "magic") }),
    fc.record({ name: fc.constantFrom("m", "n"), kind: fc.constant("mergenet"), mergenet: fc.oneof(fc.constant({}), fc.record({ pairs: fc.array(pairArb, { maxLength: 2 }) })) }),
    fc.record({ name: fc.constantFrom("s"), kind: fc.constant("sharing"), sharing: fc.oneof(fc.constant({}), fc.constant({ pairs: [], mode: "copy", cycle: 1 })) }),
  );
  const experimentArb = fc.record({
    name: fc.constantFrom("ok-name", "bad name", "", "x_1"),
    scenario: fc.constantFrom("image-cnn-to-x", "sentiment-site", "nope"),
    scenarioOptions: fc.oneof(fc.constant({}), fc.constant(null)),
    methods: fc.array(methodArb, { maxLength: 4 }),
    epochs: anyValue,
    seeds: fc.oneof(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }), fc.constant("0")),
    pretrain: fc.constant(undefined),
  });
  const EXPERIMENT_MESSAGE = /^(invalid experiment '[^']*':\n  - |unknown scenario '|methods\[\d+\] |two methods are named )/;

  it("validateExperiment accepts or explains", () => {
    fc.assert(
      fc.property(experimentArb, (config) => {
        try {
          validateExperiment(config as unknown as ExperimentConfig);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message).toMatch(EXPERIMENT_MESSAGE);
        }
      }),
      { numRuns: 500, seed: 11 },
    );
  });
});
