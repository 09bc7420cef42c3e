/**
 * Summaries of an experiment's runs, as plain rows for tables and plot builders. Every
 * comparison with a baseline is paired by seed (same data subset, same initial target),
 * and reported as mean ± sample standard deviation over seeds.
 */
import type { BarRow, CurveRow } from "../plots/specs";
import type { ExperimentResult, RunResult } from "./records";
import { formatSignedStats, formatStats, stats, type Stats } from "./statistics";

function byMethod(result: ExperimentResult): Map<string, RunResult[]> {
  const groups = new Map<string, RunResult[]>();
  for (const m of result.config.methods) groups.set(m.name, []);
  for (const run of result.runs) groups.get(run.method)?.push(run);
  return groups;
}

export interface SummaryRow {
  method: string;
  /** Final target metric over seeds. */
  target: Stats;
  /** Final source metric over seeds (NaN where the method trains no source). */
  source: Stats;
  /** Target metric minus the baseline's, paired by seed. */
  gain?: Stats;
  /** Set when the method does not apply here: why. */
  notApplicable?: string;
}

/**
 * One row per method: final target (and source) metric, and the gain over `baseline`
 * (default "target alone", the name the notebooks give it) paired by seed, where that baseline is in the experiment.
 */
export function summarize(result: ExperimentResult, baseline = "target alone"): SummaryRow[] {
  const groups = byMethod(result);
  const base = new Map((groups.get(baseline) ?? []).map((r) => [r.seed, r.final.target[r.metric]]));
  return [...groups.entries()].map(([method, runs]) => {
    const skipped = runs.find((r) => r.notApplicable);
    if (skipped) return { method, target: stats([]), source: stats([]), notApplicable: skipped.notApplicable };
    // "source alone" trains the source in the target's slot: its numbers belong in the source column.
    const sourceOnly = runs.some((r) => r.kind === "source-alone");
    const target = sourceOnly ? [] : runs.map((r) => r.final.target[r.metric]);
    const source = runs
      .map((r) => (sourceOnly ? r.final.target : r.final.source)[r.metric])
      .filter((v) => v !== undefined && Number.isFinite(v));
    const paired = runs.filter((r) => base.has(r.seed)).map((r) => r.final.target[r.metric] - (base.get(r.seed) as number));
    const gain = base.size && method !== baseline && !sourceOnly ? stats(paired) : undefined;
    return { method, target: stats(target), source: stats(source), gain };
  });
}

/** The summary as table rows of strings (for showTable / markdown). */
export function summaryTable(rows: SummaryRow[], metric = "accuracy"): Record<string, string>[] {
  return rows.map((r) => ({
    method: r.method,
    [`target ${metric}`]: r.notApplicable ? "does not apply" : formatStats(r.target),
    "gain over target alone (paired by seed)": r.notApplicable ? r.notApplicable : r.gain ? formatSignedStats(r.gain) : "",
    [`source ${metric}`]: r.notApplicable ? "" : formatStats(r.source),
  }));
}

/** Per-epoch target metric per method and seed, for learningCurves. */
export function curveRows(result: ExperimentResult, side: "target" | "source" = "target"): CurveRow[] {
  return result.runs.flatMap((run) =>
    run.epochs
      .filter((e) => e[side][run.metric] !== undefined)
      .map((e) => ({ method: run.method, seed: run.seed, epoch: e.epoch + 1, value: e[side][run.metric] })),
  );
}

/** Final target metric per method as bars (mean ± std), for groupedBars. */
export function barRows(result: ExperimentResult, group: string): BarRow[] {
  return summarize(result)
    .filter((r) => !r.notApplicable && r.target.n > 0)
    .map((r) => ({ group, method: r.method, mean: r.target.mean, std: r.target.std }));
}

/** How far each transfer moved the written weight, per method and seed (relative change by step). */
export function transferRows(result: ExperimentResult): CurveRow[] {
  return result.runs.flatMap((run) =>
    run.transfers.step.map((step, i) => ({ method: run.method, seed: run.seed, step, value: run.transfers.relativeChange[i] })),
  );
}

/** The parts of a run that a paired difference reads (a RunResult satisfies it). */
export interface PairedRun {
  method: string;
  seed: number;
  metric: string;
  notApplicable?: string;
  final: { target: Record<string, number>; source: Record<string, number> };
}

/**
 * Stats over seeds of (method a − method b) in the final metric of `side` (default the
 * target's), paired by seed. `b` is read from `other` when given (another experiment on the
 * same seeds, e.g. the same scenario with another source).
 */
export function pairedDifference(
  result: { runs: PairedRun[] },
  a: string,
  b: string,
  other: { runs: PairedRun[] } = result,
  side: "target" | "source" = "target",
): Stats {
  return stats(pairedDifferences(result, a, b, other, side));
}

/**
 * The differences (a − b) of the final metric of `side`, paired by seed, in seed order; b read
 * from `other` when given. Runs that did not apply, or lack a finite metric on that side (a
 * method that trains no source), are left out.
 */
export function pairedDifferences(
  result: { runs: PairedRun[] },
  a: string,
  b: string,
  other: { runs: PairedRun[] } = result,
  side: "target" | "source" = "target",
): number[] {
  const value = (r: PairedRun): number => r.final[side][r.metric];
  const finals = (from: { runs: PairedRun[] }, method: string): PairedRun[] =>
    from.runs.filter((r) => r.method === method && !r.notApplicable && Number.isFinite(value(r)));
  const byB = new Map(finals(other, b).map((r) => [r.seed, value(r)]));
  return finals(result, a)
    .filter((r) => byB.has(r.seed))
    .sort((x, y) => x.seed - y.seed)
    .map((r) => value(r) - (byB.get(r.seed) as number));
}

/** The attention maps stored with a method's first-seed run (MergeNet with a `full` pair), if any. */
export function attentionOf(result: ExperimentResult, method: string): Record<string, number[][]> | undefined {
  return result.runs.find((r) => r.method === method && r.attention)?.attention;
}
