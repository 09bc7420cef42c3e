/**
 * Plot builders: pure functions from result rows to figure specs. They read numbers and
 * return JSON; they never touch a model or a tensor, and they draw nothing (src/plots/render.ts
 * and src/notebook/display.ts do).
 *
 * Design choices:
 * - Input is tidy rows (one object per measurement), the shape result files and tables
 *   already have, so any experiment can feed any builder.
 * - Summary statistics (mean, std over seeds) are computed here in TypeScript rather than by
 *   vega-lite transforms: the numbers are testable and the spec carries them for tooltips.
 *   Std is the sample standard deviation (n - 1), 0 for a single seed.
 * - Line charts and bars are vega-lite (small JSON, a static SVG without a browser); matrices
 *   and 2-D paths are plotly (hover over thousands of cells, pan and zoom).
 * - Methods get the same colours in both libraries: vega-lite colours methods with its
 *   default `tableau10` palette in sorted order; the plotly builders add traces in sorted
 *   order with that palette as the layout's colorway.
 */
import type { PlotlyFigure, VegaLiteSpec } from "./render";

const VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json";
const DEFAULT_WIDTH = 400;
const DEFAULT_HEIGHT = 250;
/** Vega's default categorical palette (`tableau10`), given to plotly so methods match. */
const METHOD_COLORS = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"];

/** Tableau's 20-colour palette (vega's `tableau20`): 20 distinct colours for figures with more than 10 methods. */
const METHOD_COLORS_20 = ["#4c78a8", "#9ecae9", "#f58518", "#ffbf79", "#54a24b", "#88d27a", "#b79a20", "#f2cf5b", "#439894", "#83bcb6",
  "#e45756", "#ff9d98", "#79706e", "#bab0ac", "#d67195", "#fcbfd2", "#b279a2", "#d6a5c9", "#9e765f", "#d8b5a5"];

/** Is `name` a random-source (or permuted) control? ("control: …", or "… : random source"). */
function isControl(name: string): boolean {
  return /^control:/.test(name) || /: random source$/.test(name);
}

/** What a control's name says it controls: its words minus "control", "random source" and punctuation. */
function controlKey(name: string): string {
  return name.replace(/^control:\s*/, "").replace(/:?,?\s*random source/, "").replace(/^MergeNet\s*/, "").replace(/[,:]/g, " ").replace(/\s+/g, " ").trim();
}

function variantKey(name: string): string {
  return name.replace(/^MergeNet\s*/, "").replace(/[,:]/g, " ").replace(/\s+/g, " ").trim();
}

/**
 * Methods in sorted order with each random-source control moved right after the MergeNet
 * variant it controls, so that the two sit side by side in legends and bars. A control is
 * matched by name ("control: classifier pair, random source" ↔ "MergeNet classifier pair";
 * "X: random source" ↔ "X"); the bare "control: random source" goes with the reference
 * ("MergeNet", else "MergeNet hypernet", else the only variant left without a control).
 */
export function methodOrder(methods: string[]): string[] {
  const sorted = [...new Set(methods.map(String))].sort();
  const controls = sorted.filter(isControl);
  const others = sorted.filter((m) => !isControl(m));
  const controlFor = new Map<string, string>();
  const bare: string[] = [];
  for (const control of controls) {
    const key = controlKey(control);
    const variant = key ? others.find((m) => variantKey(m) === key && !controlFor.has(m)) : undefined;
    if (variant) controlFor.set(variant, control);
    else bare.push(control);
  }
  const unpaired: string[] = [];
  for (const control of bare) {
    if (controlKey(control)) { unpaired.push(control); continue; }
    const free = others.filter((m) => /^MergeNet\b/.test(m) && !controlFor.has(m));
    const variant = free.find((m) => m === "MergeNet") ?? free.find((m) => m === "MergeNet hypernet") ?? (free.length === 1 ? free[0] : undefined);
    if (variant) controlFor.set(variant, control);
    else unpaired.push(control);
  }
  return [...others.flatMap((m) => (controlFor.has(m) ? [m, controlFor.get(m) as string] : [m])), ...unpaired];
}

/** `n` distinct colours: tableau10 up to 10 categories, tableau20 up to 20 (shapes or dashes must tell more apart). */
export function categoryColors(n: number): string[] {
  const palette = n <= METHOD_COLORS.length ? METHOD_COLORS : METHOD_COLORS_20;
  return Array.from({ length: n }, (_, i) => palette[i % palette.length]);
}

/** A vega-lite colour encoding for methods: MergeNet beside its control, one colour each, full legend labels. */
function methodColor(field: string, title: string | null, names: string[], legend: Record<string, unknown> = {}): Record<string, unknown> {
  const domain = methodOrder(names);
  return {
    field, type: "nominal", title, sort: domain,
    scale: { domain, range: categoryColors(domain.length) },
    legend: { labelLimit: 0, symbolOpacity: 1, ...legend },
  };
}

/** One measurement of a metric along training. Give `step` or `epoch`. */
export interface CurveRow {
  method: string;
  seed: number | string;
  step?: number;
  epoch?: number;
  value: number;
}

/** Mean and spread of one method at one x over its seeds. */
export interface CurvePoint {
  method: string;
  x: number;
  mean: number;
  std: number;
  lo: number;
  hi: number;
  /** How many seeds the point averages. */
  n: number;
}

export interface LearningCurveOptions {
  /** The metric's name, used as the y-axis title ("test accuracy"). */
  metric: string;
  /** `std` draws mean ± one std over seeds as a band (default); `none` draws only the mean. */
  band?: "std" | "none";
  /** Which field is the x axis; default `step` when every row has one, else `epoch`. */
  x?: "step" | "epoch";
  /** `log` suits losses that fall over orders of magnitude (default `linear`). */
  yScale?: "linear" | "log";
  title?: string;
  width?: number;
  height?: number;
}

function requireRows<T>(rows: T[], builder: string): void {
  if (!Array.isArray(rows) || rows.length === 0) throw new Error(`${builder}: rows must be a non-empty array`);
}

function requireFinite(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`${what} must be a finite number, got ${String(value)}`);
  }
  return value;
}

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

function sampleStd(values: number[]): number {
  if (values.length < 2) return 0;
  const m = mean(values);
  return Math.sqrt(values.reduce((sum, v) => sum + (v - m) ** 2, 0) / (values.length - 1));
}

function pickCurveX(rows: CurveRow[], x: LearningCurveOptions["x"]): "step" | "epoch" {
  if (x) return x;
  if (rows.every((row) => typeof row.step === "number")) return "step";
  if (rows.every((row) => typeof row.epoch === "number")) return "epoch";
  throw new Error("learningCurves: every row needs a numeric `step`, or every row a numeric `epoch`");
}

/** Mean ± std over seeds for each (method, x), sorted by method then x. */
export function summarizeOverSeeds(rows: CurveRow[], x: "step" | "epoch"): CurvePoint[] {
  const groups = new Map<string, { method: string; x: number; values: number[] }>();
  rows.forEach((row, i) => {
    const at = requireFinite(row[x], `learningCurves: row ${i} field '${x}'`);
    const value = requireFinite(row.value, `learningCurves: row ${i} field 'value'`);
    const key = JSON.stringify([row.method, at]);
    const group = groups.get(key) ?? { method: String(row.method), x: at, values: [] };
    group.values.push(value);
    groups.set(key, group);
  });
  return [...groups.values()]
    .map(({ method, x: at, values }) => {
      const m = mean(values);
      const s = sampleStd(values);
      return { method, x: at, mean: m, std: s, lo: m - s, hi: m + s, n: values.length };
    })
    .sort((a, b) => (a.method < b.method ? -1 : a.method > b.method ? 1 : a.x - b.x));
}

/** Whole-number ticks over the values' range, at most 16, on a step of 1, 2, 5, 10, 20, … */
export function integerTicks(values: number[]): number[] {
  const lo = Math.floor(Math.min(...values));
  const hi = Math.ceil(Math.max(...values));
  let step = 1;
  for (let k = 1; (hi - lo) / step > 15; k++) step = [1, 2, 5][k % 3] * 10 ** Math.floor(k / 3);
  const first = Math.ceil(lo / step) * step;
  return Array.from({ length: Math.floor((hi - first) / step) + 1 }, (_, i) => first + i * step);
}

/** What every vega-lite chart here starts with: schema, optional title, size and inline data. */
function frame(options: { title?: string; width?: number; height?: number }, values: unknown[]): Record<string, unknown> {
  return {
    $schema: VEGA_LITE_SCHEMA,
    ...(options.title ? { title: options.title } : {}),
    width: options.width ?? DEFAULT_WIDTH,
    height: options.height ?? DEFAULT_HEIGHT,
    data: { values },
  };
}

/** Learning curves: the mean over seeds per method as a line, mean ± std as a band. */
export function learningCurves(rows: CurveRow[], options: LearningCurveOptions): VegaLiteSpec {
  requireRows(rows, "learningCurves");
  if (!options || typeof options.metric !== "string") throw new Error("learningCurves: options.metric (the y-axis name) is required");
  const bandKind = options.band ?? "std";
  if (bandKind !== "std" && bandKind !== "none") throw new Error(`learningCurves: band must be 'std' or 'none', got '${String(bandKind)}'`);
  const xField = pickCurveX(rows, options.x);
  const points = summarizeOverSeeds(rows, xField);
  const logY = options.yScale === "log";
  if (logY && points.some((p) => p.mean <= 0)) throw new Error("learningCurves: yScale 'log' needs every mean to be positive");
  const yScale = logY ? { type: "log" as const } : { zero: false };
  // On a log axis mean - std can be <= 0: the band's lower edge is then clipped at mean / 10.
  const values = points.map((p) => ({ ...p, bandLo: logY ? Math.max(p.lo, p.mean / 10) : p.lo }));
  // Epochs are whole numbers: no tick at 1.2 epochs.
  const epochAxis = { axis: { values: integerTicks(points.map((p) => p.x)), format: "d" } };
  const x = { field: "x", type: "quantitative" as const, title: xField, ...(xField === "epoch" ? epochAxis : {}) };
  const color = methodColor("method", "method", points.map((p) => p.method), { symbolType: "stroke", symbolStrokeWidth: 3 });
  const line = {
    mark: { type: "line" as const, point: points.length <= 60 },
    encoding: {
      x,
      y: { field: "mean", type: "quantitative" as const, title: options.metric, scale: yScale },
      color,
      tooltip: [
        { field: "method", type: "nominal" as const },
        { field: "x", type: "quantitative" as const, title: xField },
        { field: "mean", type: "quantitative" as const, format: ".4g" },
        { field: "std", type: "quantitative" as const, format: ".3g" },
        { field: "n", type: "quantitative" as const, title: "seeds" },
      ],
    },
  };
  const band = {
    mark: { type: "area" as const, opacity: 0.2 },
    encoding: { x, y: { field: "bandLo", type: "quantitative" as const, scale: yScale }, y2: { field: "hi" }, color },
  };
  return {
    ...frame(options, values),
    layer: bandKind === "std" ? [band, line] : [line],
  };
}

/** One bar: a method's summary in one group (a dataset, a setting). */
export interface BarRow {
  group: string;
  method: string;
  mean: number;
  /** Drawn as an error bar of ± std; omit for none. */
  std?: number;
}

export interface GroupedBarOptions {
  /** y-axis title (default "value"). */
  metric?: string;
  /** x-axis title (default "group"). */
  groupTitle?: string;
  title?: string;
  width?: number;
  height?: number;
}

/** Grouped bars (groups along x, one bar per method) with ± std error bars. */
export function groupedBars(rows: BarRow[], options: GroupedBarOptions = {}): VegaLiteSpec {
  requireRows(rows, "groupedBars");
  const values = rows.map((row, i) => {
    const m = requireFinite(row.mean, `groupedBars: row ${i} field 'mean'`);
    const s = row.std === undefined ? 0 : requireFinite(row.std, `groupedBars: row ${i} field 'std'`);
    if (s < 0) throw new Error(`groupedBars: row ${i} has a negative std (${s})`);
    return { group: String(row.group), method: String(row.method), mean: m, std: s, lo: m - s, hi: m + s };
  });
  const groups = [...new Set(values.map((v) => v.group))];
  const x = { field: "group", type: "nominal" as const, title: options.groupTitle ?? "group", sort: groups, axis: { labelAngle: 0 } };
  const color = methodColor("method", "method", values.map((v) => v.method));
  const xOffset = { field: "method", type: "nominal" as const, sort: color.sort };
  const metric = options.metric ?? "value";
  return {
    ...frame(options, values),
    layer: [
      {
        mark: { type: "bar" },
        encoding: {
          x,
          xOffset,
          y: { field: "mean", type: "quantitative", title: metric },
          color,
          tooltip: [
            { field: "group", type: "nominal" },
            { field: "method", type: "nominal" },
            { field: "mean", type: "quantitative", format: ".4g" },
            { field: "std", type: "quantitative", format: ".3g" },
          ],
        },
      },
      {
        mark: { type: "rule", color: "black" },
        encoding: { x, xOffset, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" } },
      },
    ],
  };
}

/** The point shape of each verdict of src/experiments/statistics.ts, the same in every effects figure. */
const VERDICT_SHAPES = new Map([
  ["better", "triangle-up"],
  ["worse", "triangle-down"],
  ["equivalent", "square"],
  ["inconclusive", "circle"],
  ["one seed", "diamond"],
]);

/** One effect with its 95 % interval: a gain over a reference, paired by seed. */
export interface EffectRow {
  /** The comparison's row on the y axis (a variant; full name). */
  label: string;
  /** What was subtracted from what: one colour per series (e.g. "MergeNet − its control"). */
  series: string;
  /** Facet (a notebook, a scenario); rows of one group share a panel. */
  group?: string;
  mean: number;
  /** 95 % interval; NaN or absent with one seed (the point is drawn alone). */
  low?: number;
  high?: number;
  /** The smallest effect worth calling transfer in this row's scenario: drawn as a ±δ band. */
  delta?: number;
  /** The classifier's verdict, for the tooltip and the point's shape. */
  verdict?: string;
  n?: number;
}

export interface EffectsPlotOptions {
  /** x-axis title (default "difference in target accuracy (paired by seed)"). */
  metric?: string;
  title?: string;
  width?: number;
  /** Height of one y row in pixels (default 22). */
  rowStep?: number;
}

/**
 * A forest plot of effects: each row's mean as a point, its 95 % interval as a line, a zero
 * line, and the row's ±δ band (grey). One y row per (label, series), labelled in full
 * ("label: series"); series told apart by colour too, verdicts by the point's shape. Rows keep
 * the order given; with groups, one panel per group.
 */
export function effectsPlot(rows: EffectRow[], options: EffectsPlotOptions = {}): VegaLiteSpec {
  requireRows(rows, "effectsPlot");
  const seenBand = new Set<string>();
  const values = rows.map((row, i) => {
    const m = requireFinite(row.mean, `effectsPlot: row ${i} ('${row.label}') field 'mean'`);
    const hasInterval = Number.isFinite(row.low) && Number.isFinite(row.high);
    const key = `${row.label}: ${row.series}`;
    const bandKey = `${row.group ?? ""}\u0000${key}`;
    const band = row.delta !== undefined && Number.isFinite(row.delta) && !seenBand.has(bandKey);
    if (band) seenBand.add(bandKey);
    return {
      order: i, key, label: String(row.label), series: String(row.series), group: row.group ?? "", mean: m,
      low: hasInterval ? row.low : m, high: hasInterval ? row.high : m, interval: hasInterval,
      band, bandLow: band ? -(row.delta as number) : 0, bandHigh: band ? (row.delta as number) : 0,
      delta: row.delta ?? null, verdict: row.verdict ?? (hasInterval ? "" : "one seed"), n: row.n ?? null,
    };
  });
  const series = [...new Set(values.map((v) => v.series))];
  const grouped = values.some((v) => v.group !== "");
  const step = options.rowStep ?? 22;
  // Rows keep the order given within each panel (a sort list would follow first appearance across panels).
  const y = { field: "key", type: "nominal" as const, title: null, sort: { field: "order", op: "min" as const }, axis: { labelLimit: 0 } };
  const x = { type: "quantitative" as const, title: options.metric ?? "difference in target accuracy (paired by seed)" };
  const color = {
    field: "series",
    type: "nominal" as const,
    title: null,
    sort: series,
    scale: { domain: series, range: categoryColors(series.length) },
    legend: { orient: "top" as const, labelLimit: 0, direction: "vertical" as const },
  };
  const layer = [
    {
      transform: [{ filter: "datum.band" }],
      mark: { type: "bar" as const, color: "#bbbbbb", opacity: 0.35 },
      encoding: { y, x: { ...x, field: "bandLow" }, x2: { field: "bandHigh" } },
    },
    { mark: { type: "rule" as const, color: "black" }, encoding: { x: { ...x, datum: 0 } } },
    { mark: { type: "rule" as const, strokeWidth: 2 }, encoding: { y, color, x: { ...x, field: "low" }, x2: { field: "high" } } },
    {
      mark: { type: "point" as const, filled: true, size: 60 },
      encoding: {
        y, color, x: { ...x, field: "mean" },
        // One shape per verdict in every figure (not by order of appearance).
        shape: {
          field: "verdict",
          type: "nominal" as const,
          title: "verdict",
          legend: { orient: "top" as const },
          scale: { domain: [...VERDICT_SHAPES.keys()], range: [...VERDICT_SHAPES.values()] },
        },
        tooltip: [
          { field: "label", type: "nominal" as const, title: "comparison" },
          { field: "series", type: "nominal" as const },
          { field: "mean", type: "quantitative" as const, format: "+.4f" },
          { field: "low", type: "quantitative" as const, format: "+.4f", title: "95 % low" },
          { field: "high", type: "quantitative" as const, format: "+.4f", title: "95 % high" },
          { field: "delta", type: "quantitative" as const, format: ".4f", title: "δ" },
          { field: "verdict", type: "nominal" as const },
          { field: "n", type: "quantitative" as const, title: "seeds" },
        ],
      },
    },
  ];
  const width = options.width ?? 460;
  if (!grouped) return { ...frame({ title: options.title, width, height: 0 }, values), height: { step }, layer };
  const groups = [...new Set(values.map((v) => v.group))];
  return {
    $schema: VEGA_LITE_SCHEMA,
    ...(options.title ? { title: options.title } : {}),
    data: { values },
    facet: {
      row: {
        field: "group",
        type: "nominal",
        title: null,
        sort: groups,
        header: { labelOrient: "top", labelAngle: 0, labelAnchor: "start", labelFontWeight: "bold", labelFontSize: 12, labelLimit: 800 },
      },
    },
    spec: { width, height: { step }, layer },
    resolve: { scale: { y: "independent" } },
  };
}

export interface HeatmapOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Tick labels for columns and rows (default 0..n-1). */
  xTicks?: string[];
  yTicks?: string[];
  /** Plotly colour scale name (default "Viridis"; "RdBu" suits signed values with zmid 0). */
  colorscale?: string;
  /** Value at the middle of the colour scale (e.g. 0 for weights). */
  zmid?: number;
  /** A fixed colour range (both, or neither): colours then mean the same in every figure. */
  zmin?: number;
  zmax?: number;
  /** Colour bar: its title, and ticks with their labels (e.g. the uniform level). */
  colorbarTitle?: string;
  colorbarTicks?: { values: number[]; labels: string[] };
  width?: number;
  height?: number;
}

/**
 * A plotly title broken onto lines (`<br>`) that fit `widthPx`: plotly neither wraps nor
 * shrinks titles, so a long one is cut off at the figure's edges. Greedy on spaces; the
 * average glyph is taken as 0.55 × the font size (plotly's default title font is 17 px).
 */
export function wrapTitle(text: string, widthPx: number, fontPx = 17): string {
  const perLine = Math.max(10, Math.floor((widthPx - 20) / (fontPx * 0.55)));
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > perLine) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join("<br>");
}

/** A heatmap of a matrix, row 0 at the top as the matrix is written. */
export function heatmap(matrix: number[][], options: HeatmapOptions = {}): PlotlyFigure {
  if (!Array.isArray(matrix) || matrix.length === 0 || !Array.isArray(matrix[0]) || matrix[0].length === 0) {
    throw new Error("heatmap: matrix must be a non-empty array of non-empty rows (number[][])");
  }
  const cols = matrix[0].length;
  matrix.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== cols) {
      throw new Error(`heatmap: row ${r} has ${Array.isArray(row) ? row.length : "no"} columns, row 0 has ${cols}; the matrix must be rectangular`);
    }
    row.forEach((v, c) => requireFinite(v, `heatmap: matrix[${r}][${c}]`));
  });
  if (options.xTicks && options.xTicks.length !== cols) throw new Error(`heatmap: ${options.xTicks.length} xTicks for ${cols} columns`);
  if (options.yTicks && options.yTicks.length !== matrix.length) throw new Error(`heatmap: ${options.yTicks.length} yTicks for ${matrix.length} rows`);
  if ((options.zmin === undefined) !== (options.zmax === undefined)) throw new Error("heatmap: give zmin and zmax together");
  if (options.zmin !== undefined && !(options.zmin < (options.zmax as number))) {
    throw new Error(`heatmap: zmin (${options.zmin}) must be below zmax (${options.zmax})`);
  }
  const trace: Record<string, unknown> = {
    type: "heatmap",
    z: matrix,
    colorscale: options.colorscale ?? "Viridis",
    ...(options.xTicks ? { x: options.xTicks } : {}),
    ...(options.yTicks ? { y: options.yTicks } : {}),
    ...(options.zmid !== undefined ? { zmid: options.zmid } : {}),
    ...(options.zmin !== undefined && options.zmax !== undefined ? { zmin: options.zmin, zmax: options.zmax, zauto: false } : {}),
    ...(options.colorbarTitle || options.colorbarTicks ? { colorbar: {
      ...(options.colorbarTitle ? { title: { text: options.colorbarTitle } } : {}),
      ...(options.colorbarTicks ? { tickmode: "array", tickvals: options.colorbarTicks.values, ticktext: options.colorbarTicks.labels } : {}),
    } } : {}),
  };
  return {
    data: [trace],
    layout: {
      ...(options.title ? { title: { text: wrapTitle(options.title, options.width ?? 520) } } : {}),
      xaxis: { title: { text: options.xLabel ?? "" }, ...(options.xTicks ? { type: "category" } : {}) },
      yaxis: { title: { text: options.yLabel ?? "" }, autorange: "reversed", ...(options.yTicks ? { type: "category" } : {}) },
      width: options.width ?? 520,
      height: options.height ?? 450,
    },
  };
}

/** One point of a method's 2-D trajectory (e.g. weights projected on two directions). */
export interface PathRow {
  method: string;
  x: number;
  y: number;
  /** Order along the path (default: the order of the rows). */
  step?: number;
}

export interface ScatterPathOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
}

/** 2-D trajectories, one line with markers per method (own colour, shape and dash); the start is an open marker, the end a large filled one. */
export function scatterPath(rows: PathRow[], options: ScatterPathOptions = {}): PlotlyFigure {
  requireRows(rows, "scatterPath");
  const paths = new Map<string, { step: number; x: number; y: number }[]>();
  rows.forEach((row, i) => {
    const point = {
      step: row.step === undefined ? i : requireFinite(row.step, `scatterPath: row ${i} field 'step'`),
      x: requireFinite(row.x, `scatterPath: row ${i} field 'x'`),
      y: requireFinite(row.y, `scatterPath: row ${i} field 'y'`),
    };
    const method = String(row.method);
    paths.set(method, [...(paths.get(method) ?? []), point]);
  });
  // Paths that run on top of each other (MergeNet and its control) stay visible: each method has
  // its own colour, marker shape and dash, and the first drawn is the widest.
  const order = methodOrder([...paths.keys()]);
  const colors = categoryColors(order.length);
  const symbols = ["circle", "square", "diamond", "triangle-up", "x", "cross", "star", "triangle-down"];
  const dashes = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
  const data = order.map((method, k) => {
    const points = [...(paths.get(method) ?? [])].sort((a, b) => a.step - b.step);
    const last = points.length - 1;
    const symbol = symbols[k % symbols.length];
    return {
      type: "scatter",
      mode: "lines+markers",
      name: method,
      x: points.map((p) => p.x),
      y: points.map((p) => p.y),
      text: points.map((p) => `step ${p.step}`),
      hovertemplate: "%{text}<br>(%{x:.4g}, %{y:.4g})",
      line: { color: colors[k], dash: dashes[k % dashes.length], width: Math.max(1.5, 5 - 1.5 * k) },
      marker: {
        color: colors[k],
        size: points.map((_, i) => (i === 0 || i === last ? 12 : 7) + Math.max(0, 2 * (order.length - 1 - k))),
        symbol: points.map((_, i) => (i === 0 ? `${symbol}-open` : symbol)),
      },
    };
  });
  return {
    data,
    layout: {
      ...(options.title ? { title: { text: wrapTitle(options.title, options.width ?? 600) } } : {}),
      xaxis: { title: { text: options.xLabel ?? "x" } },
      yaxis: { title: { text: options.yLabel ?? "y" } },
      colorway: METHOD_COLORS,
      width: options.width ?? 600,
      height: options.height ?? 450,
    },
  };
}

// ---- figures of the analysis of finished runs (notebook 04, experiments/analysis.ts) ---------

/** One point of a spectrum line: singular value `index` (1 = largest) of a weight. */
export interface SpectrumRow {
  /** e.g. "MergeNet, after training". */
  series: string;
  index: number;
  mean: number;
  std: number;
  n: number;
}

/** Spectrum lines (vega-lite): singular value by index, log y, one line per series with a ± std band. */
export function spectrumChart(rows: SpectrumRow[], options: { title?: string; width?: number; height?: number } = {}): VegaLiteSpec {
  if (rows.length === 0) throw new Error("spectrumChart: rows must be a non-empty array");
  const values = rows.map((r) => ({ ...r, lo: Math.max(r.mean - r.std, r.mean / 10), hi: r.mean + r.std }));
  // The axis starts at the first index, 1 (a quantitative scale would start at 0 and leave a gap).
  const x = { field: "index", type: "quantitative" as const, title: "singular value index (1 = largest)", scale: { zero: false, nice: false } };
  const color = methodColor("series", "weight", rows.map((r) => r.series), { symbolType: "stroke", symbolStrokeWidth: 3 });
  // Lines that coincide (MergeNet, its control and target alone end with nearly one spectrum)
  // stay visible: each series has its own dash pattern, and the first drawn is the widest.
  const order = color.sort as string[];
  const dashes = [[1, 0], [8, 4], [2, 3], [12, 3, 3, 3], [4, 4], [1, 5]];
  const bySeries = { field: "series", type: "nominal" as const, title: "weight", sort: order };
  const strokeDash = { ...bySeries, scale: { domain: order, range: order.map((_, i) => dashes[i % dashes.length]) } };
  const strokeWidth = { ...bySeries, scale: { type: "ordinal" as const, domain: order, range: order.map((_, i) => Math.max(1.5, 6 - 1.5 * i)) } };
  const y = { type: "log" as const, nice: false }; // the data's range, not whole decades (0.1 to 10 for values 0.35 to 2.5)
  // Drawn in legend order (vega draws the series in the order the data holds them): widest first, below.
  values.sort((a, b) => order.indexOf(a.series) - order.indexOf(b.series) || a.index - b.index);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    ...(options.title ? { title: options.title } : {}),
    width: options.width ?? 400,
    height: options.height ?? 250,
    data: { values },
    layer: [
      { mark: { type: "area", opacity: 0.2 }, encoding: { x, y: { field: "lo", type: "quantitative", scale: y }, y2: { field: "hi" }, color } },
      {
        mark: { type: "line" },
        encoding: {
          x,
          y: { field: "mean", type: "quantitative", title: "singular value", scale: y },
          color,
          strokeDash,
          strokeWidth,
          tooltip: [
            { field: "series", type: "nominal" },
            { field: "index", type: "quantitative" },
            { field: "mean", type: "quantitative", format: ".4g" },
            { field: "std", type: "quantitative", format: ".3g" },
          ],
        },
      },
    ],
  } as VegaLiteSpec;
}

/** A vega-lite layered chart with its x labels tilted by `angle` degrees, x labels kept up to 320 px and legend labels whole. */
export function readableBars(spec: VegaLiteSpec, angle = -30): VegaLiteSpec {
  type Encoding = { x?: { axis?: object }; color?: { legend?: object } };
  const layers = (spec as { layer?: { encoding?: Encoding }[] }).layer;
  if (!Array.isArray(layers)) throw new Error("readableBars: the spec must be a layered chart (as groupedBars returns)");
  const tilt = (encoding: Encoding = {}): Encoding => ({
    ...encoding,
    ...(encoding.x ? { x: { ...encoding.x, axis: { ...encoding.x.axis, labelAngle: angle, labelAlign: "right", labelLimit: 320 } } } : {}),
    ...(encoding.color ? { color: { ...encoding.color, legend: { ...encoding.color.legend, labelLimit: 0 } } } : {}),
  });
  return { ...spec, layer: layers.map((layer) => ({ ...layer, encoding: tilt(layer.encoding) })) } as VegaLiteSpec;
}

/** A plotly heatmap (`heatmap`) with each cell's text written on it. */
export function annotatedHeatmap(matrix: number[][], labels: string[][], options: HeatmapOptions = {}): PlotlyFigure {
  if (labels.length !== matrix.length || labels.some((row, r) => row.length !== matrix[r].length)) {
    throw new Error("annotatedHeatmap: labels must have the matrix's shape (one string per cell)");
  }
  const figure = heatmap(matrix, options);
  const [trace, ...rest] = figure.data;
  const annotated = { ...(trace as Record<string, unknown>), text: labels, texttemplate: "%{text}", hovertemplate: "%{y} × %{x}<br>%{text}<extra></extra>" };
  return { ...figure, data: [annotated, ...rest] };
}


/**
 * An attention matrix (each row a distribution over its columns) on a fixed scale centred on
 * the uniform level 1/columns: white is uniform, red above, blue below, and the scale spans
 * 0 to 2/columns (wider only if a weight lies outside). Auto-scaled colours would stretch
 * 0.097–0.103 over the whole palette and show stripes that are not there.
 */
export function attentionHeatmap(
  matrix: number[][],
  options: Omit<HeatmapOptions, "zmin" | "zmax" | "zmid" | "colorscale" | "colorbarTicks"> = {},
): PlotlyFigure {
  const cols = Array.isArray(matrix) && Array.isArray(matrix[0]) ? matrix[0].length : 0;
  if (cols === 0) throw new Error("attentionHeatmap: matrix must be a non-empty array of non-empty rows (number[][])");
  const uniform = 1 / cols;
  const finite = matrix.flat().filter((v) => Number.isFinite(v));
  const reach = Math.max(uniform, ...finite.map((v) => Math.abs(v - uniform)));
  const zmin = uniform - reach;
  const zmax = uniform + reach;
  const fmt = (v: number) => Number(v.toPrecision(3)).toString();
  return heatmap(matrix, {
    ...options,
    colorscale: "RdBu",
    zmin,
    zmax,
    colorbarTitle: options.colorbarTitle ?? "attention",
    colorbarTicks: { values: [zmin, uniform, zmax], labels: [fmt(zmin), `uniform (1/${cols} = ${fmt(uniform)})`, fmt(zmax)] },
  });
}
