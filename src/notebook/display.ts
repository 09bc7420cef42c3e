/**
 * Figures and tables in notebooks run by the tslab kernel.
 *
 * Each figure goes out as ONE Jupyter `display_data` output holding three representations:
 * the interactive spec (JupyterLab draws it), a static image (GitHub, nbconvert and any viewer
 * without the renderer show it) and a line of text (terminals). tslab's public `display` sends
 * one MIME type per output, so figures go through tslab's internal per-cell writer,
 * `require("tslab/dist/jupyter").lastWriteDisplayData` (tslab 1.0.22). That internal API is
 * used here and nowhere else: a tslab upgrade that changes it breaks this one file, and
 * test/notebook.test.ts notices.
 *
 * Design choices:
 * - tslab is never loaded from here: the kernel has already loaded it, so its module is looked
 *   up in Node's require cache (whichever copy of tslab runs the kernel). Outside a kernel (vitest, a CLI) nothing is found and the show
 *   functions only build their bundle (and save files if asked) without crashing; this also
 *   keeps tslab's native zeromq binding out of tests and scripts.
 * - The show functions resolve to nothing: tslab prints a cell's last value, and a returned
 *   bundle would print a page of JSON under every figure. `vegaLiteBundle` and `plotlyBundle`
 *   build exactly what is sent, for tests and for other front ends.
 * - Vega-lite's fallback is SVG (sharp, small); plotly's is PNG, because plotly's SVG relies
 *   on browser fonts and CSS that static viewers lack.
 */
import * as path from "path";
import {
  plotlyToPng,
  savePlotly,
  saveVegaLite,
  vegaLiteToSvg,
  type PlotlyFigure,
  type SavedFigure,
  type VegaLiteSpec,
} from "../plots/render";
import { resultsRoot } from "../paths";
import { recordReportEntry } from "./report";

export const VEGA_LITE_MIME = "application/vnd.vegalite.v5+json";
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** One Jupyter display_data message body: MIME type -> representation. */
export interface DisplayBundle {
  /** JSON specs as objects; images as SVG text or base64 PNG; text as a string. */
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

export interface ShowOptions {
  /** Also save the figure as results/figures/<saveAs>.svg and .png, and list it in results/REPORT.md. */
  saveAs?: string;
  /** With saveAs: one line on what the figure shows (required; REPORT.md prints it). */
  caption?: string;
  /** Folder for saveAs (default results/figures). */
  dir?: string;
}

/** Saves a figure (if asked) and records it for REPORT.md. */
async function saveFigure(options: ShowOptions, save: (name: string, dir?: string) => Promise<SavedFigure>): Promise<void> {
  if (!options.saveAs) return;
  if (!options.caption) throw new Error(`figure '${options.saveAs}' is saved without a caption: pass { caption: "what it shows" }`);
  const saved = await save(options.saveAs, options.dir);
  if (options.dir === undefined) {
    recordReportEntry({ name: options.saveAs, kind: "figure", caption: options.caption, content: path.relative(resultsRoot(), saved.png) });
  }
}

interface TslabJupyterModule {
  lastWriteDisplayData:
    | ((message: { data: Record<string, unknown>; metadata: Record<string, unknown>; transient: Record<string, unknown> }, update: boolean) => void)
    | null;
}

interface TslabDisplay {
  markdown(text: string): void;
}

const TSLAB_JUPYTER_FILE = path.join("tslab", "dist", "jupyter.js");

/** The path of tslab's jupyter module as loaded by the running kernel; undefined outside tslab. */
function loadedTslabJupyterFile(): string | undefined {
  return Object.keys(require.cache).find((file) => file.endsWith(TSLAB_JUPYTER_FILE));
}

/** tslab's writer for the cell being executed, or undefined outside a tslab kernel. */
function tslabWriter(): NonNullable<TslabJupyterModule["lastWriteDisplayData"]> | undefined {
  const file = loadedTslabJupyterFile();
  const jupyter = file ? (require.cache[file]?.exports as TslabJupyterModule | undefined) : undefined;
  return jupyter?.lastWriteDisplayData ?? undefined;
}

/** True when running inside a tslab kernel that is executing a cell. */
export function inTslab(): boolean {
  return tslabWriter() !== undefined;
}

/** Sends one display_data output with every MIME type of the bundle; false outside tslab. */
export function sendBundle(bundle: DisplayBundle): boolean {
  const write = tslabWriter();
  if (!write) return false;
  write({ data: bundle.data, metadata: bundle.metadata, transient: {} }, false);
  return true;
}

function figureLabel(kind: string, title: unknown): string {
  const text = typeof title === "string" ? title : (title as { text?: unknown } | undefined)?.text;
  return typeof text === "string" && text.length > 0 ? `<${kind}: ${text}>` : `<${kind}>`;
}

/** The bundle showVegaLite sends: vega-lite spec + SVG + text. */
export async function vegaLiteBundle(spec: VegaLiteSpec): Promise<DisplayBundle> {
  const svg = await vegaLiteToSvg(spec);
  return {
    data: {
      [VEGA_LITE_MIME]: spec,
      "image/svg+xml": svg,
      "text/plain": figureLabel("vega-lite chart", (spec as { title?: unknown }).title),
    },
    metadata: {},
  };
}

/** The bundle showPlotly sends: plotly figure + PNG (base64) + text. */
export async function plotlyBundle(figure: PlotlyFigure): Promise<DisplayBundle> {
  const png = await plotlyToPng(figure);
  return {
    data: {
      [PLOTLY_MIME]: { data: figure.data, layout: figure.layout ?? {}, config: figure.config ?? {} },
      "image/png": png.toString("base64"),
      "text/plain": figureLabel("plotly figure", figure.layout?.title),
    },
    metadata: {},
  };
}

/** Shows a vega-lite chart (interactive in JupyterLab, SVG elsewhere); saves it if asked. */
export async function showVegaLite(spec: VegaLiteSpec, options: ShowOptions = {}): Promise<void> {
  const saving = saveFigure(options, (name, dir) => saveVegaLite(spec, name, dir));
  sendBundle(await vegaLiteBundle(spec));
  await saving;
}

/** Shows a plotly figure (interactive in JupyterLab, PNG elsewhere); saves it if asked. */
export async function showPlotly(figure: PlotlyFigure, options: ShowOptions = {}): Promise<void> {
  const saving = saveFigure(options, (name, dir) => savePlotly(figure, name, dir));
  sendBundle(await plotlyBundle(figure));
  await saving;
}

export interface TableOptions {
  /** Columns in order (default: keys of the first row, then any new keys in later rows). */
  columns?: string[];
  /** Significant digits for non-integer numbers (default 4). */
  digits?: number;
  /** Also list the table in results/REPORT.md under this name (needs a caption). */
  saveAs?: string;
  /** With saveAs: one line on what the table shows. */
  caption?: string;
}

function formatCell(value: unknown, digits: number): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value) || !Number.isFinite(value)) return String(value);
    return String(Number(value.toPrecision(digits)));
  }
  return String(value);
}

function escapeMarkdownCell(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, "<br>");
}

/** A markdown table of rows (what showTable displays). */
export function markdownTable(rows: Record<string, unknown>[], options: TableOptions = {}): string {
  if (!Array.isArray(rows) || rows.length === 0) throw new Error("markdownTable needs a non-empty array of row objects");
  const digits = options.digits ?? 4;
  const columns = options.columns ?? [...new Set(rows.flatMap((row) => Object.keys(row)))];
  if (columns.length === 0) throw new Error("markdownTable: the rows have no columns");
  const line = (cells: string[]): string => `| ${cells.map(escapeMarkdownCell).join(" | ")} |`;
  const numeric = columns.map((c) => rows.every((row) => row[c] === undefined || row[c] === null || typeof row[c] === "number"));
  return [
    line(columns),
    `|${numeric.map((isNumber) => (isNumber ? " ---: " : " --- ")).join("|")}|`,
    ...rows.map((row) => line(columns.map((c) => formatCell(row[c], digits)))),
  ].join("\n");
}

/** tslab's public display of the running kernel (its own copy of tslab), or undefined outside tslab. */
function tslabDisplay(): TslabDisplay | undefined {
  const file = loadedTslabJupyterFile();
  if (!file || !inTslab()) return undefined;
  return (require(path.join(path.dirname(file), "public.js")) as { display: TslabDisplay }).display;
}

/** Shows rows as a table (markdown: rendered by JupyterLab, GitHub and nbconvert alike). */
export function showTable(rows: Record<string, unknown>[], options: TableOptions = {}): void {
  const table = markdownTable(rows, options);
  if (options.saveAs) recordReportEntry({ name: options.saveAs, kind: "table", caption: options.caption ?? "", content: table });
  showMarkdown(table);
}

/** Shows markdown text as a rendered output. */
export function showMarkdown(text: string): void {
  tslabDisplay()?.markdown(text);
}
