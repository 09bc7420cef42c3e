/**
 * Analysis of finished runs (notebook 04): where a weight travelled in parameter space
 * (PCA of its per-epoch snapshots), how its spectrum changed, what each adapter cost, and
 * the matrices and rows the ablation figures are drawn from. Everything here is plain
 * numbers in, plain numbers out: no tensors, no models (the runner records the snapshots,
 * see `RecordingConfig` in ./records).
 *
 * Design choices:
 * - PCA goes through the Gram matrix: n snapshots of a d-dimensional weight (n ~ 30,
 *   d = 32,768 for a [128, 256] kernel) give an n×n eigenproblem instead of a d×d one. The
 *   principal directions are Xcᵀ·u / √λ; each is signed so that its largest-magnitude entry
 *   is positive, so the same runs always give the same picture.
 * - Singular values come from ml-matrix's SVD (float64, the library docs/METHOD.md §2 names), without
 *   the singular vectors.
 * - Summaries are mean ± sample std over seeds (./statistics); a gain is paired by seed.
 * - The figures these rows are drawn with (spectrum lines, annotated heatmaps, tilted bars) are
 *   in src/plots/specs.ts, with the other chart builders.
 */
import { EigenvalueDecomposition, Matrix, SVD } from "ml-matrix";
import type { BarRow, PathRow, SpectrumRow } from "../plots/specs";
import { confidenceInterval, formatSignedStats, formatStats, stats, type Stats } from "./statistics";
import type { WeightRecord } from "./records";
import { pairedDifference } from "./results";

/** The parts of a run this module reads (a RunResult satisfies it). */
export interface AnalysedRun {
  method: string;
  seed: number;
  metric: string;
  wallSeconds: number;
  notApplicable?: string;
  final: { target: Record<string, number>; source: Record<string, number> };
  epochs: { steps: number }[];
  transfers: { step: number[] };
  weights?: Record<string, WeightRecord>;
  phases?: Record<string, { ms: number; calls: number }>;
  adapterParameters?: number;
}

/** The parts of an experiment's result this module reads (an ExperimentResult satisfies it). */
export interface AnalysedResult {
  runs: AnalysedRun[];
}

/** Singular values of a matrix (rows of equal length), descending. */
export function singularValues(matrix: number[][]): number[] {
  if (!Array.isArray(matrix) || matrix.length === 0 || !Array.isArray(matrix[0]) || matrix[0].length === 0) {
    throw new Error("singularValues: the matrix must be a non-empty array of non-empty rows");
  }
  const cols = matrix[0].length;
  matrix.forEach((row, i) => {
    if (row.length !== cols) throw new Error(`singularValues: row ${i} has ${row.length} entries, row 0 has ${cols}; the matrix must be rectangular`);
  });
  // ml-matrix's SVD wants rows >= cols for its fast path; the spectrum of Mᵀ is M's.
  const m = new Matrix(matrix);
  const tall = m.rows >= m.columns ? m : m.transpose();
  const svd = new SVD(tall, { computeLeftSingularVectors: false, computeRightSingularVectors: false, autoTranspose: true });
  return [...svd.diagonal].sort((a, b) => b - a);
}

export interface Projection {
  /** Each input point's coordinates on the components: [n, k]. */
  scores: number[][];
  /** Unit principal directions: [k, d]. */
  components: number[][];
  /** Fraction of the total variance along each component. */
  explained: number[];
  /** The mean point that was subtracted: [d]. */
  mean: number[];
}

/** PCA of n points in d dimensions onto the top k components (see the module comment). */
export function pca(points: number[][], k = 2): Projection {
  const n = points.length;
  if (n < 2) throw new Error(`pca needs at least 2 points, got ${n}`);
  const d = points[0].length;
  points.forEach((p, i) => {
    if (p.length !== d) throw new Error(`pca: point ${i} has ${p.length} coordinates, point 0 has ${d}; every point needs the same dimension`);
  });
  if (!Number.isInteger(k) || k < 1 || k > Math.min(n - 1, d)) throw new Error(`pca: k must be a whole number in [1, ` +
      `${Math.min(n - 1, d)}] for ${n} points in ${d} dimensions, got ${k}`);
  const mean = new Float64Array(d);
  for (const p of points) for (let j = 0; j < d; j++) mean[j] += p[j] / n;
  const centred = points.map((p) => Float64Array.from(p, (v, j) => v - mean[j])); // [n, d]
  const gram = new Matrix(n, n); // Xc·Xcᵀ [n, n]
  for (let a = 0; a < n; a++) {
    for (let b = a; b < n; b++) {
      let dot = 0;
      const x = centred[a];
      const y = centred[b];
      for (let j = 0; j < d; j++) dot += x[j] * y[j];
      gram.set(a, b, dot);
      gram.set(b, a, dot);
    }
  }
  const evd = new EigenvalueDecomposition(gram, { assumeSymmetric: true });
  const order = evd.realEigenvalues.map((value, index) => ({ value: Math.max(value, 0), index })).sort((x, y) => y.value - x.value);
  const total = order.reduce((sum, e) => sum + e.value, 0);
  const vectors = evd.eigenvectorMatrix; // columns: eigenvectors of the Gram matrix [n, n]
  const components: number[][] = [];
  const scores: number[][] = points.map(() => []);
  for (const { index } of order.slice(0, k)) {
    const u = vectors.getColumn(index); // [n]
    const direction = new Float64Array(d); // Xcᵀ·u [d]
    u.forEach((weight, a) => {
      const x = centred[a];
      for (let j = 0; j < d; j++) direction[j] += weight * x[j];
    });
    const norm = Math.sqrt(direction.reduce((s, v) => s + v * v, 0));
    if (!(norm > 0)) throw new Error(`pca: the points span fewer than ${k} directions; ask for fewer components`);
    let largest = 0;
    direction.forEach((v, j) => (Math.abs(v) > Math.abs(direction[largest]) ? (largest = j) : undefined));
    const sign = direction[largest] < 0 ? -1 : 1;
    const unit = Array.from(direction, (v) => (sign * v) / norm);
    components.push(unit);
    centred.forEach((x, a) => scores[a].push(x.reduce((s, v, j) => s + v * unit[j], 0)));
  }
  return { scores, components, explained: order.slice(0, k).map((e) => (total > 0 ? e.value / total : 0)), mean: Array.from(mean) };
}

/**
 * The recorded trajectories of `weight` for `methods` on one seed (the first with a
 * trajectory for every method), projected on their joint top two principal components.
 * Rows are points of plots/specs' scatterPath (step = epoch, 0 = initial weight).
 */
export function trajectoryProjection(result: AnalysedResult, weight: string, methods: string[]): { rows: PathRow[]; explained: number[]; seed: number } {
  const bySeed = new Map<number, Map<string, number[][]>>();
  for (const run of result.runs) {
    const trajectory = run.weights?.[weight]?.trajectory;
    if (!trajectory || !methods.includes(run.method)) continue;
    const seedRuns = bySeed.get(run.seed) ?? new Map<string, number[][]>();
    seedRuns.set(run.method, trajectory);
    bySeed.set(run.seed, seedRuns);
  }
  const seed = [...bySeed.keys()].sort((a, b) => a - b).find((s) => methods.every((m) => bySeed.get(s)?.has(m)));
  if (seed === undefined) {
    throw new Error(`no seed has a recorded trajectory of '${weight}' for every method of ${JSON.stringify(methods)}; ` +
        `list them in the experiment's record.trajectories`);
  }
  const paths = methods.map((m) => bySeed.get(seed)?.get(m) as number[][]);
  const projection = pca(paths.flat(), 2);
  const rows: PathRow[] = [];
  let offset = 0;
  paths.forEach((path, i) => {
    path.forEach((_, epoch) => {
      const [x, y] = projection.scores[offset + epoch];
      rows.push({ method: methods[i], step: epoch, x, y });
    });
    offset += path.length;
  });
  return { rows, explained: projection.explained, seed };
}

/** Euclidean distance between two equally long vectors. */
function distance(a: number[], b: number[]): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return Math.sqrt(sum);
}

/**
 * Distances in the full weight space, on the seed `trajectoryProjection` would use: how far each
 * method's weight travelled from its initial value, and how far its final weight ends from the
 * first method's final weight.
 */
export function trajectoryDistances(
  result: AnalysedResult,
  weight: string,
  methods: string[],
): { seed: number; rows: { method: string; travelled: number; fromFirst: number }[] } {
  const { seed } = trajectoryProjection(result, weight, methods);
  const path = (m: string) => result.runs.find((r) => r.method === m && r.seed === seed)?.weights?.[weight]?.trajectory as number[][];
  const firstEnd = path(methods[0])[path(methods[0]).length - 1];
  return {
    seed,
    rows: methods.map((m) => {
      const p = path(m);
      return { method: m, travelled: distance(p[0], p[p.length - 1]), fromFirst: distance(firstEnd, p[p.length - 1]) };
    }),
  };
}

/** Stats over seeds of ‖σ_a − σ_b‖ / ‖σ_b‖: how different two methods' final spectra of `weight` are, paired by seed. */
export function spectrumDifference(result: AnalysedResult, weight: string, a: string, b: string): Stats {
  const after = (m: string) =>
    new Map(result.runs.filter((r) => r.method === m && r.weights?.[weight]).map((r) => [r.seed, r.weights?.[weight]?.singularValues.after as number[]]));
  const sa = after(a);
  const sb = after(b);
  const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return stats([...sa.entries()].filter(([seed]) => sb.has(seed)).map(([seed, va]) => distance(va, sb.get(seed) as number[]) / norm(sb.get(seed) as number[])));
}

/**
 * Singular-value spectra of `weight`, mean ± std over seeds: one "before training" series
 * (the initial weight, shared by every method of a seed; taken from the first method) and one
 * "after training" series per method.
 */
export function spectrumRows(result: AnalysedResult, weight: string, methods: string[]): SpectrumRow[] {
  const series = (label: string, spectra: number[][]): SpectrumRow[] => {
    if (spectra.length === 0) return [];
    const length = Math.min(...spectra.map((s) => s.length));
    return Array.from({ length }, (_, i) => {
      const s = stats(spectra.map((values) => values[i]));
      return { series: label, index: i + 1, mean: s.mean, std: s.std, n: s.n };
    });
  };
  const recorded = (method: string) => result.runs.filter((r) => r.method === method && r.weights?.[weight]).map((r) => r.weights?.[weight] as WeightRecord);
  const missing = methods.filter((m) => recorded(m).length === 0);
  if (missing.length) throw new Error(`no recorded spectrum of '${weight}' for ${missing.join(", ")}; list the weight in the experiment's record.weights`);
  return [
    ...series("before training", recorded(methods[0]).map((w) => w.singularValues.before)),
    ...methods.flatMap((m) => series(`${m}, after training`, recorded(m).map((w) => w.singularValues.after))),
  ];
}

/** Stats over seeds of singular value `index` (0 = largest) of `weight`, before or after training. */
export function singularValueStats(result: AnalysedResult, weight: string, method: string, index = 0, when: "before" | "after" = "after"): Stats {
  const recorded = result.runs.filter((r) => r.method === method && r.weights?.[weight]);
  return stats(recorded.map((r) => r.weights?.[weight]?.singularValues[when][index] ?? NaN).filter(Number.isFinite));
}

export type Side = "target" | "source";

/** Final metric per seed of one method on one side (runs that were not applicable, or lack the side's metric, are left out). */
function finals(result: AnalysedResult, method: string, side: Side = "target"): Map<number, number> {
  return new Map(
    result.runs
      .filter((r) => r.method === method && !r.notApplicable && Number.isFinite(r.final[side][r.metric]))
      .map((r) => [r.seed, r.final[side][r.metric]]),
  );
}

/** Stats over seeds of `method`'s final metric (target side by default). */
export function finalStats(result: AnalysedResult, method: string, side: Side = "target"): Stats {
  return stats([...finals(result, method, side).values()]);
}

/**
 * Stats over seeds of (method in `a`) − (baseline in `b`), paired by seed; `b` defaults to `a`.
 * Two results can be paired when their runs share seeds and the baseline's model is the same
 * model on the same data (e.g. the same target trained beside a different source).
 * One implementation: results.ts pairedDifference, under the name notebook 04 uses.
 */
export function gainStats(a: AnalysedResult, method: string, baseline: string, b: AnalysedResult = a, side: Side = "target"): Stats {
  return pairedDifference(a, method, baseline, b, side);
}

/** A gain as text: "+0.0012 ± 0.0030 (n = 3)"; "n/a" without paired runs. */
export function signedStats(s: Stats, digits = 4): string {
  const text = formatSignedStats(s, digits);
  return text === "n/a" ? text : `${text} (n = ${s.n})`;
}

/** Whether a paired difference is beyond seed noise, in words: its two-sided 95 % Student-t interval excludes 0 (n ≥ 2). */
export function noiseWords(s: Stats): string {
  if (s.n < 2) return "one seed only: no conclusion";
  const { low, high } = confidenceInterval(s);
  return low > 0 || high < 0 ? "beyond seed noise" : "within seed noise";
}

/** A bar of a method's gain over `baseline` (paired by seed) for groupedBars: `label` names the bar, `group` its group. */
export function gainBar(result: AnalysedResult, method: string, group: string, label: string, baseline = "target alone"): BarRow {
  const s = gainStats(result, method, baseline);
  if (s.n === 0) throw new Error(`gainBar: no runs of '${method}' paired with '${baseline}' in this result`);
  return { group, method: label, mean: s.mean, std: s.std };
}

/** A grid of cells from one experiment: mean final metric per cell, and "mean ± std" labels. */
export function gridMatrix(
  result: AnalysedResult,
  methodAt: (row: number, col: number) => string,
  rows: number,
  cols: number,
  digits = 3,
): { mean: number[][]; labels: string[][] } {
  const mean: number[][] = [];
  const labels: string[][] = [];
  for (let r = 0; r < rows; r++) {
    mean.push([]);
    labels.push([]);
    for (let c = 0; c < cols; c++) {
      const method = methodAt(r, c);
      const s = finalStats(result, method);
      if (s.n === 0) throw new Error(`gridMatrix: no finished runs of '${method}' (cell ${r}, ${c}) in this result`);
      mean[r].push(s.mean);
      labels[r].push(formatStats(s, digits));
    }
  }
  return { mean, labels };
}

/** What one method's runs cost, averaged over seeds. */
export interface CostRow {
  method: string;
  /** Wall seconds per run (data, training and evaluation). */
  wallSeconds: Stats;
  /** Milliseconds per global step, from the recorded phases (all phases summed). */
  msPerStep?: Stats;
  /** Milliseconds per transfer spent outside the two models' own steps (adapter forward, update, reads, SVDs). */
  adapterMsPerTransfer?: Stats;
  /** Trainable parameters of the method's adapters (with write-back gates). */
  adapterParameters?: number;
}

/** The phases that are the models' own training steps; every other recorded phase is transfer work. */
const MODEL_STEP_PHASES = new Set(["source_step", "target_step"]);

/** Cost of each method from its runs' wall time, recorded phases and adapter size. */
export function costRows(result: AnalysedResult, methods: string[]): CostRow[] {
  return methods.map((method) => {
    const runs = result.runs.filter((r) => r.method === method && !r.notApplicable);
    if (runs.length === 0) throw new Error(`costRows: no finished runs of '${method}'`);
    const profiled = runs.filter((r) => r.phases);
    const phaseMs = (r: AnalysedRun, keep: (phase: string) => boolean) =>
      Object.entries(r.phases ?? {})
        .filter(([phase]) => keep(phase))
        .reduce((sum, [, spent]) => sum + spent.ms, 0);
    const steps = (r: AnalysedRun) => r.epochs[r.epochs.length - 1]?.steps ?? 0;
    const withTransfers = profiled.filter((r) => r.transfers.step.length > 0);
    return {
      method,
      wallSeconds: stats(runs.map((r) => r.wallSeconds)),
      msPerStep: profiled.length ? stats(profiled.map((r) => phaseMs(r, () => true) / Math.max(1, steps(r)))) : undefined,
      adapterMsPerTransfer: withTransfers.length
        ? stats(withTransfers.map((r) => phaseMs(r, (phase) => !MODEL_STEP_PHASES.has(phase)) / r.transfers.step.length))
        : undefined,
      adapterParameters: runs.find((r) => r.adapterParameters !== undefined)?.adapterParameters,
    };
  });
}

/** A cost table (for showTable): one row per CostRow, `label` naming it. */
export function costTable(rows: { label: string; cost: CostRow }[]): Record<string, string>[] {
  const ms = (s?: Stats) => (s ? formatStats(s, 1) : "");
  return rows.map(({ label, cost }) => ({
    variant: label,
    "adapter parameters": cost.adapterParameters?.toLocaleString("en-US") ?? "",
    "adapter ms per transfer": ms(cost.adapterMsPerTransfer),
    "ms per step (all phases)": ms(cost.msPerStep),
    "wall s per run": formatStats(cost.wallSeconds, 1),
  }));
}

/** Mean milliseconds per global step of each recorded phase, over a method's runs (for cost bars). */
export function phaseRows(result: AnalysedResult, method: string): { phase: string; msPerStep: Stats }[] {
  const runs = result.runs.filter((r) => r.method === method && r.phases);
  if (runs.length === 0) throw new Error(`phaseRows: no runs of '${method}' recorded their phases; set record.phases in the experiment`);
  const phases = [...new Set(runs.flatMap((r) => Object.keys(r.phases ?? {})))].sort();
  return phases.map((phase) => ({
    phase,
    msPerStep: stats(runs.map((r) => (r.phases?.[phase]?.ms ?? 0) / Math.max(1, r.epochs[r.epochs.length - 1]?.steps ?? 0))),
  }));
}
