/**
 * The project's summary (notebook 06): every MergeNet-versus-matched-control comparison of
 * notebooks 01 to 05, read from the runs those notebooks trained (nothing is trained here), each
 * judged by the one classifier of statistics.ts against its scenario's δ, with distillation's and
 * mutual learning's gains in the same units for scale.
 */
import * as ca from "./configs/cross-architecture";
import * as ct from "./configs/cross-task";
import * as cm from "./configs/cross-modality";
import * as ab from "./configs/ablations";
import * as pc from "./configs/positive-control";
import { chooseForConfirmation, positiveControlVerdicts } from "./positive-control-verdicts";
import { MissingRunsError, runExperiment } from "./runner";
import { type ExperimentConfig, type ExperimentResult } from "./records";
import { confirmCandidates, mergedVerdicts, smallestEffectOf, type SmallestEffect, type VariantVerdict, variantVerdicts } from "./verdicts";

/** One scenario's comparisons: where they come from, its δ, its variants' verdicts and its references' results. */
export interface ScenarioComparisons {
  notebook: string;
  scenario: string;
  delta: SmallestEffect;
  verdicts: VariantVerdict[];
  /** The experiment(s) holding the reference methods (distillation, mutual learning), and their names. */
  references: { result: ExperimentResult; methods: string[] }[];
}

/** Reads an experiment that its notebook trained; an error names the notebook to run first when a run is missing. */
async function read(config: ExperimentConfig, notebook: string): Promise<ExperimentResult> {
  return runExperiment(config, { cachedOnly: true, cachedOnlyHint: `run notebook ${notebook} first (npm start runs ` +
      `every notebook in order)`, progress: false });
}

const KD_METHODS = ["logit KD", "logit KD (pre-trained source)", "mutual learning"];

/** The comparisons of notebooks 01 to 05, and the notebooks whose runs are not there yet. */
export interface ProjectComparisons {
  scenarios: ScenarioComparisons[];
  /** A notebook left out because some of its runs are missing, with the runner's message (which names them and what to run). */
  missing: { notebook: string; message: string }[];
}

/**
 * Every scenario of notebooks 01 to 05, in the notebooks' order. A notebook whose runs are not all
 * in the results folder is left out and listed in `missing` (its message says what to run); the
 * others are still summarised. Any other error is thrown.
 */
export async function projectComparisons(): Promise<ProjectComparisons> {
  const scenarios: ScenarioComparisons[] = [];
  const missing: ProjectComparisons["missing"] = [];
  for (const [notebook, section] of [["01", notebook01], ["02", notebook02], ["03", notebook03], ["04", notebook04], ["05", notebook05]] as const) {
    try {
      scenarios.push(...(await section()));
    } catch (error) {
      if (!(error instanceof MissingRunsError)) throw error;
      missing.push({ notebook, message: error.message });
    }
  }
  return { scenarios, missing };
}

/** 01: CNN → MLP and CNN → ViT, main comparisons on ten seeds. */
async function notebook01(): Promise<ScenarioComparisons[]> {
  const out: ScenarioComparisons[] = [];
  for (const [scenario, full, main] of [["CNN → MLP", ca.cnnToMlp(), ca.cnnToMlpMain()], ["CNN → ViT", ca.cnnToVit(), ca.cnnToVitMain()]] as const) {
    const [f, m] = [await read(full, "01"), await read(main, "01")];
    const delta = smallestEffectOf(m, { distillation: ["logit KD (pre-trained source)"], testItems: ca.testImages(), fallback: ca.FALLBACK_DELTA });
    out.push({ notebook: "01", scenario, delta, verdicts: mergedVerdicts(m, f, delta.delta), references: [{ result: f, methods: KD_METHODS }] });
  }
  return out;
}

/** 02: four directions between tasks; Brown's main comparisons on ten seeds. */
async function notebook02(): Promise<ScenarioComparisons[]> {
  const out: ScenarioComparisons[] = [];
  const directions: [string, ExperimentConfig, boolean][] = [
    ["B→A site → sentiment", ct.siteToSentiment(), false], ["A→B sentiment → site", ct.sentimentToSite(), false],
    ["C→D POS → genre", ct.posToGenre(), true], ["D→C genre → POS", ct.genreToPos(), true],
  ];
  for (const [scenario, config, brown] of directions) {
    const f = await read(config, "02");
    const delta = ct.deltaOf(f);
    const verdicts = brown ? mergedVerdicts(await read(ct.brownMain(config), "02"), f, delta.delta) : variantVerdicts(f, delta.delta);
    out.push({ notebook: "02", scenario, delta, verdicts, references: [] });
  }
  return out;
}

/** 03: four transfers between modalities, main comparisons on ten seeds; a candidate's confirmation on fresh seeds beside it. */
async function notebook03(): Promise<ScenarioComparisons[]> {
  const out: ScenarioComparisons[] = [];
  for (const { label, config } of cm.crossModalityExperiments()) {
    const [f, m] = [await read(config, "03"), await read(cm.mainComparisons(config), "03")];
    const delta = cm.deltaOf(m);
    const verdicts = mergedVerdicts(m, f, delta.delta);
    const confirmed = (await confirmCandidates(config, verdicts, delta.delta, (c) => read(c, "03")))
      .map(({ fresh }) => ({ ...fresh, method: `${fresh.method} (confirmation, seeds 10–19)` }));
    const references = [{ result: m, methods: KD_METHODS }, { result: f, methods: ["mutual learning"] }];
    out.push({ notebook: "03", scenario: label, delta, verdicts: [...verdicts, ...confirmed], references });
  }
  return out;
}

/** 04: the ablations (reference on ten seeds), the factorized ranks and the source sizes; the grid has its own figure in notebook 04. */
async function notebook04(): Promise<ScenarioComparisons[]> {
  const [abFull, abMain] = [await read(ab.ablations(), "04"), await read(ab.ablationsMain(), "04")];
  const abDelta = smallestEffectOf(abMain, { distillation: [ab.KD], testItems: Number(abFull.config.scenarioOptions.testImages), fallback: ab.FALLBACK_DELTA });
  const extra: VariantVerdict[] = [];
  for (const config of [...ab.factorizedRanks(), ...ab.sourceCapacity()]) {
    const res = await read(config, "04");
    extra.push(...variantVerdicts(res, abDelta.delta).map((v) => ({ ...v, method: `${v.method} (${config.name.replace(/^04-/, "")})` })));
  }
  return [{
    notebook: "04",
    scenario: "ablations on CNN → MLP",
    delta: abDelta,
    verdicts: [...mergedVerdicts(abMain, abFull, abDelta.delta), ...extra],
    references: [{ result: abMain, methods: [ab.KD] }],
  }];
}

/** 05: the positive control (source A): the faithful adapter and the search (screening on 3 seeds, confirmation on 10). */
async function notebook05(): Promise<ScenarioComparisons[]> {
  const refA = await read(pc.referencesAligned(), "05");
  const pcDelta = smallestEffectOf(refA, {
    distillation: ["logit KD"],
    testItems: Number(refA.config.scenarioOptions.testImages),
    fallback: { delta: 0.005, reason: "half an accuracy point" },
  });
  const faithful = await read(pc.faithfulAligned(), "05");
  const search = await read(pc.search(), "05");
  // The candidates notebook 05 confirmed on ten seeds: chosen from the screening as it chooses them.
  const screening = positiveControlVerdicts(search, pc.SEARCH_CANDIDATES.map(pc.candidateMethods), refA, ["soft copy (g 1, fc2)", "soft copy (g 0.1, fc2)"]);
  const confirmedNames = chooseForConfirmation(screening.verdicts, 2, ["faithful"]);
  const confirm = await read(pc.confirmation(pc.candidatesNamed(confirmedNames)), "05");
  const screened = variantVerdicts(search, pcDelta.delta).filter((v) => !confirmedNames.includes(v.method));
  return [{
    notebook: "05", scenario: "positive control, source A", delta: pcDelta,
    verdicts: [...variantVerdicts(faithful, pcDelta.delta), ...variantVerdicts(confirm, pcDelta.delta), ...screened],
    references: [{ result: refA, methods: ["logit KD", "soft copy (g 0.1, fc2)"] }],
  }];
}
