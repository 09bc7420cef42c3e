/**
 * The positive control's bar, computed (issue 13): a MergeNet variant "moves knowledge that is
 * there" when, on the aligned source, it
 *   1. recovers at least half of the soft copy's gain over target alone (the best soft copy
 *      of the same weight: how much knowledge that weight demonstrably carries), and
 *   2. beats its own random-source control: the 95 % Student-t interval of the paired
 *      difference lies above 0.
 * Everything is paired by seed. Beside each verdict: the adapter's diagnostics averaged over
 * seeds, which say why a variant fails (it does not attend, does not write, or writes in a
 * direction unrelated to the source).
 */
import type { ExperimentResult, RunResult } from "./records";
import { pairedDifferences } from "./results";
import { classify, intervalText, stats, type Comparison } from "./statistics";
import { compare } from "./verdicts";

/** A classified comparison (statistics.ts); here δ is the bar's size, half the reference gain. */
export type Interval = Comparison;

export interface DiagnosticsSummary {
  /** Attention entropy relative to uniform, averaged over blocks and seeds (1 = uniform). */
  attentionEntropy: number;
  /** Final gate, mean over seeds (NaN where the write-back has none). */
  gate: number;
  /** Mean write size ‖W' − T‖ / ‖T‖ per transfer, mean over seeds. */
  writeSize: number;
  /** Mean cos(W' − T, S − T) per transfer, mean over seeds (NaN where shapes differ). */
  towardSource: number;
  /** Adapter updates per run. */
  adapterUpdates: number;
}

export interface CandidateVerdict {
  candidate: string;
  control: string;
  overAlone: Interval;
  overControl: Interval;
  /** Mean gain over target alone as a fraction of the reference (soft copy) gain. */
  share: number;
  clears: boolean;
  diagnostics: DiagnosticsSummary;
  controlDiagnostics: DiagnosticsSummary;
  /** One sentence, from the numbers. */
  words: string;
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** A method's diagnostics averaged over its seeds. */
export function diagnosticsSummary(result: ExperimentResult, method: string): DiagnosticsSummary {
  const runs = result.runs.filter((r: RunResult) => r.method === method && r.diagnostics);
  const d = runs.map((r) => r.diagnostics!);
  return {
    attentionEntropy: mean(d.map((x) => mean(Object.values(x.attentionEntropy)))),
    gate: mean(d.map((x) => x.gate ?? NaN)),
    writeSize: mean(d.map((x) => x.writeSize.mean)),
    towardSource: mean(d.map((x) => x.towardSource?.mean ?? NaN)),
    adapterUpdates: mean(d.map((x) => x.adapterUpdates)),
  };
}

/** Why a failing variant fails, from its diagnostics and its control's, in words. */
function why(d: DiagnosticsSummary, control: DiagnosticsSummary): string {
  const parts: string[] = [];
  if (d.attentionEntropy > 0.99) parts.push(`its attention is uniform (entropy ${d.attentionEntropy.toFixed(3)} of uniform)`);
  if (Number.isFinite(d.gate) && Math.abs(d.gate) < 0.01) parts.push(`its gate stays at ${d.gate.toFixed(4)}`);
  if (Number.isFinite(d.towardSource) && Number.isFinite(control.towardSource)) {
    const more = d.towardSource - control.towardSource;
    parts.push(
      Math.abs(more) < 0.05
        ? `its writes point toward the source no more than its control's do (cosine ${d.towardSource.toFixed(3)} against ${control.towardSource.toFixed(3)})`
        : `its writes point ${more > 0 ? "more" : "less"} toward the source than its control's (cosine ` +
            `${d.towardSource.toFixed(3)} against ${control.towardSource.toFixed(3)})`,
    );
  }
  return parts.length ? parts.join("; ") : "the diagnostics show no single cause";
}

/**
 * The bar for each candidate (`method`, `control` pairs in `search`), against the best
 * reference gain among `referenceMethods` in `references` (same seeds, same target).
 */
export function positiveControlVerdicts(
  search: ExperimentResult,
  candidates: { mergenet: string; control: string }[],
  references: ExperimentResult,
  referenceMethods: string[],
  baseline = "target alone",
): { reference: { method: string; gain: Interval }; verdicts: CandidateVerdict[] } {
  const referenceGains = referenceMethods.map((m) => {
    const differences = pairedDifferences(references, m, baseline);
    return { method: m, differences, mean: stats(differences).mean };
  });
  const best = referenceGains.reduce((b, r) => (r.mean > b.mean ? r : b));
  const half = Math.max(0, best.mean / 2);
  const reference = { method: best.method, gain: classify(best.differences, half) };
  const verdicts = candidates.map(({ mergenet, control }) => {
    const overAlone = compare(search, mergenet, baseline, half);
    const overControl = compare(search, mergenet, control, half);
    const share = overAlone.mean / reference.gain.mean;
    const clears = overAlone.n >= 2 && share >= 0.5 && overControl.verdict === "better";
    const diagnostics = diagnosticsSummary(search, mergenet);
    const controlDiagnostics = diagnosticsSummary(search, control);
    const side = overControl.low > 0 ? " (above it, but too small)" : overControl.high < 0 ? " (below it)" : "";
    const words = clears
      ? `clears the bar: ${Math.round(share * 100)} % of the ${reference.method} gain, and above its control (${intervalText(overControl)})`
      : overAlone.n < 2
        ? "one seed: no verdict"
        : `does not clear the bar: ${Math.round(share * 100)} % of the ${reference.method} gain (half needed); over ` +
            `its control ${intervalText(overControl)}${side}; ${why(diagnostics, controlDiagnostics)}`;
    return { candidate: mergenet, control, overAlone, overControl, share, clears, diagnostics, controlDiagnostics, words };
  });
  return { reference, verdicts };
}

/** Rows for a table: one per candidate, numbers as text. */
export function verdictRows(verdicts: CandidateVerdict[]): Record<string, string>[] {
  return verdicts.map((v) => ({
    variant: v.candidate,
    "gain over alone [95 % CI]": intervalText(v.overAlone),
    "share of soft copy's gain": Number.isFinite(v.share) ? `${Math.round(v.share * 100)} %` : "n/a",
    "over its random control [95 % CI]": intervalText(v.overControl),
    "attention entropy": v.diagnostics.attentionEntropy.toFixed(3),
    gate: Number.isFinite(v.diagnostics.gate) ? v.diagnostics.gate.toFixed(4) : "-",
    "write size": v.diagnostics.writeSize.toExponential(2),
    "cos toward S (its control)": Number.isFinite(v.diagnostics.towardSource)
      ? `${v.diagnostics.towardSource.toFixed(3)} (${v.controlDiagnostics.towardSource.toFixed(3)})`
      : "-",
    bar: v.clears ? "clears" : "no",
  }));
}

/**
 * The screening's choice for confirmation on ten seeds: the `k` candidates whose mean gain over
 * their own random-source control is largest (the bar's second half, the one a control can
 * refute), leaving out those named in `except` (already run on ten seeds).
 */
export function chooseForConfirmation(verdicts: CandidateVerdict[], k: number, except: string[] = []): string[] {
  return verdicts
    .filter((v) => !except.includes(v.candidate) && Number.isFinite(v.overControl.mean))
    .sort((a, b) => b.overControl.mean - a.overControl.mean)
    .slice(0, k)
    .map((v) => v.candidate);
}
