// Configuration mistakes a hostile but realistic user makes (issue 19): each is refused before
// any work, every problem of a configuration is listed at once, typos get the likely name.
import { describe, expect, it } from "vitest";
import { describeValue, editDistance, nearestName } from "../src/config-checks";
import { validateExperiment } from "../src/experiments/runner";
import { type ExperimentConfig } from "../src/experiments/records";
import { NotebookRunError } from "../scripts/run-notebooks";
import "../src/experiments/scenarios/index";

const PAIR = { source: "classifier/kernel", target: "fc2/kernel" };

describe("typo suggestions", () => {
  it("counts a swap of neighbours as one edit and suggests only close names", () => {
    expect(editDistance("cylce", "cycle")).toBe(1);
    expect(nearestName("cylce", ["cycle", "rule", "output"])).toBe("cycle");
    expect(nearestName("targetTrian", ["sourceTrain", "targetTrain", "target"])).toBe("targetTrain");
    expect(nearestName("zzz", ["cycle", "rule"])).toBeUndefined();
    expect(describeValue("2")).toBe('the string "2"');
  });
});

describe("validateExperiment", () => {
  const config = (extra: Partial<ExperimentConfig> = {}): ExperimentConfig => ({
    name: "typos",
    scenario: "image-cnn-to-x",
    scenarioOptions: {},
    epochs: 1,
    seeds: [0],
    methods: [{ name: "MergeNet", kind: "mergenet", mergenet: { pairs: [PAIR] } }],
    ...extra,
  });
  const problemsOf = (c: unknown): string[] => {
    try {
      validateExperiment(c as ExperimentConfig);
    } catch (err) {
      const message = (err as Error).message;
      expect(message).toMatch(/^invalid experiment 'typos':\n/);
      return message.split("\n").slice(1).map((line) => line.replace(/^ {2}- /, ""));
    }
    return [];
  };

  it("accepts a valid configuration", () => {
    expect(problemsOf(config())).toEqual([]);
  });

  it("lists every problem at once: typos with the likely key, a string for a number, empty pairs, a value outside its set", () => {
    const problems = problemsOf({
      ...config({
        scenarioOptions: { targetTrian: 10, target: "cnn" },
        methods: [
          { name: "a", kind: "mergenet", mergenet: { pairs: [PAIR], cylce: 5 } as never },
          { name: "b", kind: "mergenet", mergenet: { pairs: [PAIR], cycle: "2" as never, adapter: { layer: 1 } as never } },
          { name: "c", kind: "mergenet", mergenet: { pairs: [] } },
          { name: "d", kind: "kd", distilation: {} } as never,
        ],
      }),
      epoch: 3,
    });
    expect(problems).toEqual([
      "unknown key 'epoch': did you mean 'epochs'?",
      "methods[0] ('a'): mergenet: unknown key 'cylce': did you mean 'cycle'?",
      "methods[1] ('b'): mergenet: cycle must be a whole number >= 1 (transfer every cycle steps), got the string \"2\"",
      "methods[1] ('b'): mergenet: adapter: unknown key 'layer': did you mean 'layers'?",
      expect.stringMatching(/^methods\[2\] \('c'\): mergenet.pairs is empty, .*use kind 'pair' for that baseline$/),
      "methods[3] ('d'): unknown key 'distilation': did you mean 'distillation'?",
      "scenarioOptions: unknown option 'targetTrian': did you mean 'targetTrain'?",
      'scenarioOptions: target must be one of "mlp", "vit"; got the string "cnn"',
    ]);
  });

  it("checks every registered scenario's options at the door", () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["positive-control", { sourceUnit: "aligned" }, /unknown option 'sourceUnit': did you mean 'sourceUnits'\?/],
      ["sentiment-site", { trainFracton: 0.5, direction: "up" }, /unknown option 'trainFracton': did you mean 'trainFraction'\?[^]*direction must be one of/],
      ["digits-image-audio", { imageModel: "vit" }, /imageModel must be one of "mlp", "cnn"/],
      ["image-cnn-to-x", { batchSize: "64", factorized: { rnak: 4 } }, /batchSize must be a whole number >= 1, got the string "64"[^]*factorized: unknown option 'rnak': did you mean 'rank'\?/],
    ];
    for (const [scenario, scenarioOptions, message] of cases) expect(problemsOf(config({ scenario, scenarioOptions })).join("\n")).toMatch(message);
  });
});

describe("the notebook runner's summary", () => {
  it("names the error once, with every line of a multi-line message", () => {
    const error = new NotebookRunError([{ file: "nb.ipynb", seconds: 1, failure: { cell: 2, source: "await runExperiment(x)", ename: "Error", evalue: "Error: invalid experiment 'x': / - a / - b" } }]);
    expect(error.message).toBe("nb.ipynb: cell 2 (\"await runExperiment(x)\") failed: Error: invalid experiment 'x': / - a / - b");
  });
});
