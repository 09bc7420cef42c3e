// Notebook 02's experiment configurations (src/experiments/configs/cross-task.ts): they validate
// in both modes, their layer pairs exist in the scenarios' models, every MergeNet variant has
// its control, the notebook only names methods its configurations hold, and one real
// cross-task MergeNet run goes through the runner.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { paramRef } from "../src/core/params";
import {
  fractionOf, genreToPos, lowDataSweep, posToGenre, sentimentToSite, siteToSentiment, SWEEP_FRACTIONS, SWEEP_SCENARIOS, TARGET_FRACTION,
} from "../src/experiments/configs/cross-task";
import { getScenario } from "../src/experiments/scenario";
import { matchedControls } from "../src/experiments/verdicts";
import { runExperiment, validateExperiment } from "../src/experiments/runner";
import { type ExperimentConfig } from "../src/experiments/records";
import "../src/experiments/scenarios/index";

const REPO = path.resolve(__dirname, "..");
const NOTEBOOK = path.join(REPO, "notebooks", "02-cross-task.ipynb");
const MAIN = { siteToSentiment, sentimentToSite, posToGenre, genreToPos };

const savedQuick = process.env.MERGENET_QUICK;
function setQuick(quick: boolean): void {
  if (quick) process.env.MERGENET_QUICK = "1";
  else delete process.env.MERGENET_QUICK;
}
afterEach(() => {
  if (savedQuick === undefined) delete process.env.MERGENET_QUICK;
  else process.env.MERGENET_QUICK = savedQuick;
});

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function allConfigs(): ExperimentConfig[] {
  return [...Object.values(MAIN).map((fn) => fn()), ...SWEEP_SCENARIOS.flatMap((which) => lowDataSweep(which))];
}

describe("cross-task configurations", () => {
  for (const quick of [true, false]) {
    it(`validate in ${quick ? "quick" : "default"} mode, with the seeds and epochs of that mode`, () => {
      setQuick(quick);
      const configs = allConfigs();
      expect(configs.length).toBe(4 + SWEEP_SCENARIOS.length * SWEEP_FRACTIONS.length);
      for (const config of configs) {
        expect(() => validateExperiment(config)).not.toThrow();
        if (quick) {
          expect(config.seeds).toEqual([0]);
          expect(config.epochs).toBeLessThanOrEqual(2);
        } else {
          expect(config.seeds.length).toBeGreaterThanOrEqual(3);
        }
      }
      expect(new Set(configs.map((c) => `${c.name}`)).size).toBe(configs.length - SWEEP_SCENARIOS.length); // each sweep's 10 % point reuses a main name
    });
  }

  it("give every MergeNet variant a control that differs only in its source input", () => {
    for (const config of Object.values(MAIN).map((fn) => fn())) {
      const pairs = matchedControls(config);
      expect(pairs.length).toBeGreaterThanOrEqual(4);
      for (const { method, control } of pairs) {
        const m = config.methods.find((x) => x.name === method)!;
        const c = config.methods.find((x) => x.name === control)!;
        expect(m.kind === "mergenet" && c.kind === "mergenet").toBe(true);
        if (m.kind !== "mergenet" || c.kind !== "mergenet") continue;
        expect(c.mergenet.sourceInput).toBe("random");
        expect({ ...c, name: "", mergenet: { ...c.mergenet, sourceInput: undefined } }).toEqual({ ...m, name: "", mergenet: { ...m.mergenet, sourceInput: undefined } });
      }
      expect(config.methods.filter((m) => m.kind === "kd" || m.kind === "dml").length).toBe(2);
      expect(fractionOf(config)).toBe(TARGET_FRACTION);
    }
  });

  it("make each sweep's 10 % point the main experiment itself, so its runs are shared", () => {
    const main: Record<string, ExperimentConfig> = { "site->sentiment": siteToSentiment(), "pos->genre": posToGenre() };
    for (const which of SWEEP_SCENARIOS) {
      const sweep = lowDataSweep(which);
      expect(sweep.map(fractionOf)).toEqual([...SWEEP_FRACTIONS]);
      const point = sweep.find((c) => fractionOf(c) === TARGET_FRACTION)!;
      expect(point.name).toBe(main[which].name);
      expect(point.scenarioOptions).toEqual(main[which].scenarioOptions);
      expect(point.epochs).toBe(main[which].epochs);
      for (const method of point.methods) expect(main[which].methods).toContainEqual(method);
    }
    expect(() => lowDataSweep("genre->pos" as never)).toThrow(/unknown direction/);
  });

  it("pair only weights that exist in the scenarios' models", async () => {
    setQuick(true);
    for (const config of Object.values(MAIN).map((fn) => fn())) {
      const instance = await getScenario(config.scenario).build(0, config.scenarioOptions);
      try {
        for (const method of config.methods) {
          const pairs = method.kind === "mergenet" ? method.mergenet.pairs : method.kind === "sharing" ? method.sharing.pairs : [];
          for (const pair of pairs) {
            expect(() => paramRef(instance.source.model, pair.source), `${config.name} / ${method.name}: source ${pair.source}`).not.toThrow();
            expect(() => paramRef(instance.target.model, pair.target), `${config.name} / ${method.name}: target ${pair.target}`).not.toThrow();
          }
        }
        expect(instance.sharedLabels).toBe(false);
      } finally {
        instance.dispose();
      }
    }
  });
});

/** The notebook's code cells, joined. */
function notebookCode(): string {
  const nb = JSON.parse(fs.readFileSync(NOTEBOOK, "utf8")) as { cells: { cell_type: string; source: string | string[] }[] };
  return nb.cells.filter((c) => c.cell_type === "code").map((c) => (Array.isArray(c.source) ? c.source.join("") : c.source)).join("\n");
}

interface NamedCall {
  call: string;
  /** The configurations the call's result variable stands for; undefined when unknown. */
  configs: ExperimentConfig[] | undefined;
  names: string[];
}

/**
 * Every transferVerdict / attentionOf call of the notebook with the configurations its result
 * variable stands for at that line, tracked from the notebook's own patterns:
 * `const x = siteToSentiment()` / `lowDataSweep("...")`, `const r = await runExperiment(x)`,
 * `for (const c of x) r.push(await runExperiment(c))`, and `r.map((v` (v stands for r).
 */
function namedCalls(code: string): NamedCall[] {
  const functions: Record<string, (...args: never[]) => ExperimentConfig | ExperimentConfig[]> = { ...MAIN, lowDataSweep };
  const vars = new Map<string, ExperimentConfig[]>();
  const alias = (to: string, from: string) => {
    const configs = vars.get(from);
    if (configs) vars.set(to, configs);
  };
  const calls: NamedCall[] = [];
  for (const line of code.split("\n")) {
    const made = /const (\w+) = (\w+)\(([^)]*)\);/.exec(line);
    if (made && made[2] in functions) {
      const args = made[3].trim() ? (JSON.parse(`[${made[3]}]`) as never[]) : [];
      const out = functions[made[2]](...args);
      vars.set(made[1], Array.isArray(out) ? out : [out]);
    }
    const ran = /const (\w+) = await runExperiment\((\w+)\)/.exec(line);
    if (ran) alias(ran[1], ran[2]);
    const loop = /for \(const (\w+) of (\w+)\) (\w+)\.push\(await runExperiment\((\w+)\)\)/.exec(line);
    if (loop) {
      alias(loop[1], loop[2]);
      alias(loop[3], loop[2]);
    }
    for (const each of line.matchAll(/(\w+)\.(?:map|flatMap|forEach)\(\((\w+)/g)) alias(each[2], each[1]);
    for (const found of line.matchAll(/(transferVerdict|attentionOf)\((\w+)[^,]*,\s*"([^"]+)"(?:,\s*"([^"]+)")?/g)) {
      const [, fn, variable, ...names] = found;
      calls.push({ call: `${fn}(${variable}, ...)`, configs: vars.get(variable), names: names.filter((n): n is string => n !== undefined) });
    }
  }
  return calls;
}

describe("notebook 02", () => {
  it("names, in every verdict, attention and plot call, only methods its configurations hold", () => {
    setQuick(false);
    const code = notebookCode();
    const calls = namedCalls(code);
    for (const { call, configs, names } of calls) {
      expect(configs, `${call}: cannot tell which experiment its result variable holds; name results as \`const resX = await runExperiment(expX)\``).toBeDefined();
      for (const config of configs!) {
        const methods = config.methods.map((m) => m.name);
        for (const name of names) expect(methods, `${call} names "${name}", not a method of experiment ${config.name}`).toContain(name);
      }
    }
    expect(calls.length).toBeGreaterThanOrEqual(3); // the 3 attention maps; verdicts name methods through matchedControls, which reads them from the configuration
    const mainConfigs = Object.values(MAIN).map((fn) => fn());
    let listed = 0;
    for (const list of code.matchAll(/const (\w+Methods) = \[([^\]]*)\]/g)) {
      for (const quoted of list[2].matchAll(/"([^"]+)"/g)) {
        for (const config of mainConfigs) expect(config.methods.map((m) => m.name), `${list[1]}: "${quoted[1]}" in ${config.name}`).toContain(quoted[1]);
        listed += 1;
      }
    }
    expect(listed).toBeGreaterThanOrEqual(5);
  });

  it("saves every figure under a 02- name with a caption", () => {
    const code = notebookCode();
    const shows = [...code.matchAll(/await show(VegaLite|Plotly)\(/g)].length;
    const saved = [...code.matchAll(/saveAs: [`"]02-[^`"]+[`"], caption: [`"][^`"]{20,}/g)].length;
    expect(shows).toBeGreaterThanOrEqual(8);
    expect(saved).toBeGreaterThanOrEqual(shows);
  });
});

describe("one real cross-task run", () => {
  it("MergeNet head->entry, site -> sentiment, 1 epoch, 1 seed, quick options: a finite accuracy and real transfers", async () => {
    setQuick(true);
    const base = siteToSentiment();
    const method = base.methods.find((m) => m.name === "MergeNet head->entry");
    expect(method).toBeDefined();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-cross-task-"));
    tempDirs.push(dir);
    const result = await runExperiment({ ...base, name: "cross-task-test", methods: [method!], epochs: 1, seeds: [0] }, { resultsDir: dir, progress: false });
    expect(result.runs).toHaveLength(1);
    const run = result.runs[0];
    expect(run.notApplicable).toBeUndefined();
    expect(Number.isFinite(run.final.target.accuracy)).toBe(true);
    expect(run.final.target.accuracy).toBeGreaterThan(0);
    expect(run.final.target.accuracy).toBeLessThanOrEqual(1);
    expect(Number.isFinite(run.final.source.accuracy)).toBe(true);
    expect(run.transfers.step.length).toBeGreaterThan(0);
    expect(run.attention?.rows_rows.length).toBe(64); // target fc1 rows attending over the 3 site rows
    expect(run.attention?.rows_rows[0].length).toBe(3);
  });
});
