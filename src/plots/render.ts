/**
 * Static rendering of the project's figures, with no display and no browser window:
 *   vega-lite spec -> SVG  (vega-lite compiles, vega's headless View draws; no canvas needed)
 *   SVG -> PNG             (@resvg/resvg-js, a Rust rasteriser shipped inside its npm package)
 *   plotly figure -> PNG/SVG (plotly.js has no browser-free export: headless Chromium through
 *                           playwright-core runs `Plotly.toImage`)
 *
 * Design choices:
 * - One Chromium per process, started on the first plotly figure (about 2 s here, against
 *   about 25 ms per figure once running) and reused with plotly.js loaded in one page.
 *   `closeRenderer()` ends it; a command-line program calls it when done. The open browser
 *   keeps Node's event loop alive, so it also closes itself after BROWSER_IDLE_MS without a
 *   figure: a program that forgets closeRenderer lingers that long instead of forever.
 *   Playwright kills it when the process exits, so a notebook kernel never leaks one.
 * - Chromium is the system one (Debian `chromium`), never a download: playwright-core does not
 *   fetch browsers. MERGENET_CHROMIUM points at another Chrome/Chromium binary.
 * - Text in PNGs is drawn with DejaVu Sans (Debian `fonts-dejavu-core`), so images look the
 *   same on every Linux machine; vega's SVG asks for the generic `sans-serif`.
 */
import * as fs from "fs";
import * as path from "path";
import { Resvg } from "@resvg/resvg-js";
import type { Browser, Page } from "playwright-core";
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { logger } from "../log";
import { figuresDir } from "../paths";

/** A vega-lite v5 specification (the JSON a vega-lite renderer accepts). */
export type VegaLiteSpec = TopLevelSpec;

/** A plotly figure as plotly.js and JupyterLab's plotly renderer accept it. */
export interface PlotlyFigure {
  data: Record<string, unknown>[];
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

export interface PngOptions {
  /** Pixel density: 2 draws a 400-px-wide SVG as an 800-px-wide PNG (default 1). */
  scale?: number;
}

export interface PlotlyImageOptions extends PngOptions {
  /** CSS pixels; default: layout.width/height, else 700 x 450. */
  width?: number;
  height?: number;
}

/** Where saved figures go: results/figures under the repository root. */

const FONT_FAMILY = "DejaVu Sans";
const DEJAVU_FILE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const DEFAULT_CHROMIUM = "/usr/bin/chromium";
const PLOTLY_DEFAULT_SIZE = { width: 700, height: 450 };
/** Chromium closes after this long without a plotly figure. */
export const BROWSER_IDLE_MS = 20_000;

/**
 * vega-lite's compile warnings, minus one it prints for every faceted chart with independent y
 * scales (effectsPlot's panels): it only says the panels' sizes are computed per panel, which
 * is what they are. Every other warning and error still reaches stderr.
 */
const BENIGN_WARNINGS = ["Detected faceted independent scales that union domain of the same fields"];
const COMPILE_LOGGER = {
  level(): unknown { return COMPILE_LOGGER; },
  error(...args: unknown[]): unknown { console.error("ERROR", ...args); return COMPILE_LOGGER; },
  warn(...args: unknown[]): unknown {
    if (!BENIGN_WARNINGS.some((w) => String(args[0]).includes(w))) console.warn("WARN", ...args);
    return COMPILE_LOGGER;
  },
  info(): unknown { return COMPILE_LOGGER; },
  debug(): unknown { return COMPILE_LOGGER; },
};

/**
 * Compiles a vega-lite spec and draws it as an SVG document string. The background is white
 * unless the spec sets one: a transparent figure is unreadable on a dark page (GitHub's dark
 * theme shows black text on black).
 */
export async function vegaLiteToSvg(spec: VegaLiteSpec): Promise<string> {
  const vegaSpec = compile({ background: "white", ...spec }, { logger: COMPILE_LOGGER as never }).spec;
  const view = new View(parse(vegaSpec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

let fontWarned = false;

/** Rasterises an SVG document to PNG bytes. */
export function svgToPng(svg: string, options: PngOptions = {}): Buffer {
  const scale = checkScale(options.scale ?? 1);
  if (!fontWarned && process.platform === "linux" && !fs.existsSync(DEJAVU_FILE)) {
    fontWarned = true;
    logger.warn(`font ${FONT_FAMILY} not found: text in PNG figures may be missing; apt-get install fonts-dejavu-core`);
  }
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: FONT_FAMILY, sansSerifFamily: FONT_FAMILY },
  });
  return resvg.render().asPng();
}

function checkScale(scale: number): number {
  if (!(scale > 0 && scale <= 8)) throw new Error(`scale must be in (0, 8], got ${scale}`);
  return scale;
}

interface PlotlyPage {
  browser: Browser;
  page: Page;
}

let plotlyPage: Promise<PlotlyPage> | undefined;
let rendersInFlight = 0;
let idleTimer: NodeJS.Timeout | undefined;

function chromiumPath(): string {
  const file = process.env.MERGENET_CHROMIUM ?? DEFAULT_CHROMIUM;
  if (!fs.existsSync(file)) {
    throw new Error(
      `plotly figures are exported through Chromium, and ${file} does not exist. ` +
        "Install it with `apt-get install chromium` (Debian/Ubuntu), or set MERGENET_CHROMIUM to a Chrome/Chromium binary.",
    );
  }
  return file;
}

async function startPlotlyPage(): Promise<PlotlyPage> {
  const executablePath = chromiumPath();
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage();
    await page.addScriptTag({ path: require.resolve("plotly.js-dist-min") });
    return { browser, page };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/** The shared page with plotly.js loaded, started on first use. */
function getPlotlyPage(): Promise<PlotlyPage> {
  if (!plotlyPage) {
    plotlyPage = startPlotlyPage();
    plotlyPage.catch(() => {
      plotlyPage = undefined;
    });
  }
  return plotlyPage;
}

function plotlySize(figure: PlotlyFigure, options: PlotlyImageOptions): { width: number; height: number } {
  const fromLayout = (key: "width" | "height"): number | undefined => {
    const value = figure.layout?.[key];
    return typeof value === "number" ? value : undefined;
  };
  return {
    width: options.width ?? fromLayout("width") ?? PLOTLY_DEFAULT_SIZE.width,
    height: options.height ?? fromLayout("height") ?? PLOTLY_DEFAULT_SIZE.height,
  };
}

function checkPlotlyFigure(figure: PlotlyFigure): void {
  if (figure === null || typeof figure !== "object" || !Array.isArray(figure.data)) {
    throw new Error("a plotly figure must be an object with a `data` array of traces, e.g. {data: [{type: 'heatmap', z}]}");
  }
}

/** Runs Plotly.toImage in the shared page; returns a data URL. */
async function plotlyDataUrl(figure: PlotlyFigure, format: "png" | "svg", options: PlotlyImageOptions): Promise<string> {
  checkPlotlyFigure(figure);
  const { width, height } = plotlySize(figure, options);
  const scale = checkScale(options.scale ?? 1);
  clearTimeout(idleTimer);
  rendersInFlight++;
  try {
    const { page } = await getPlotlyPage();
    return await page.evaluate(
      async ({ fig, opts }) => {
        const plotly = (globalThis as unknown as { Plotly: { toImage(f: unknown, o: unknown): Promise<string> } }).Plotly;
        return plotly.toImage({ data: fig.data, layout: fig.layout ?? {} }, opts);
      },
      { fig: figure, opts: { format, width, height, scale } },
    );
  } finally {
    rendersInFlight--;
    if (rendersInFlight === 0) idleTimer = setTimeout(() => void closeRenderer(), BROWSER_IDLE_MS);
  }
}

/** Draws a plotly figure as PNG bytes. */
export async function plotlyToPng(figure: PlotlyFigure, options: PlotlyImageOptions = {}): Promise<Buffer> {
  const url = await plotlyDataUrl(figure, "png", options);
  const prefix = "data:image/png;base64,";
  if (!url.startsWith(prefix)) throw new Error(`Plotly.toImage returned an unexpected PNG data URL: ${url.slice(0, 40)}`);
  return Buffer.from(url.slice(prefix.length), "base64");
}

/** Draws a plotly figure as an SVG document string. */
export async function plotlyToSvg(figure: PlotlyFigure, options: PlotlyImageOptions = {}): Promise<string> {
  const url = await plotlyDataUrl(figure, "svg", options);
  const comma = url.indexOf(",");
  if (!url.startsWith("data:image/svg+xml") || comma < 0) {
    throw new Error(`Plotly.toImage returned an unexpected SVG data URL: ${url.slice(0, 40)}`);
  }
  const header = url.slice(0, comma);
  const body = url.slice(comma + 1);
  return header.endsWith(";base64") ? Buffer.from(body, "base64").toString("utf8") : decodeURIComponent(body);
}

/** Closes the shared Chromium, if one was started. Safe to call more than once. */
export async function closeRenderer(): Promise<void> {
  clearTimeout(idleTimer);
  const pending = plotlyPage;
  plotlyPage = undefined;
  if (!pending) return;
  const started = await pending.catch(() => undefined);
  await started?.browser.close();
}

/** Paths of a figure saved by saveVegaLite or savePlotly. */
export interface SavedFigure {
  svg: string;
  png: string;
}

/** Static images of one figure, ready to write. */
export interface FigureImages {
  svg: string;
  png: Uint8Array;
}

function figurePaths(name: string, dir: string): SavedFigure {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new Error(`figure name '${name}' must be a plain file name (letters, digits, '.', '_', '-'), without a folder or extension`);
  }
  return { svg: path.join(dir, `${name}.svg`), png: path.join(dir, `${name}.png`) };
}

/** Writes <dir>/<name>.svg and <dir>/<name>.png (dir defaults to results/figures). */
export function writeFigure(name: string, images: FigureImages, dir: string = figuresDir()): SavedFigure {
  const paths = figurePaths(name, dir);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(paths.svg, images.svg);
  fs.writeFileSync(paths.png, images.png);
  return paths;
}

/** Renders a vega-lite spec and saves it as SVG and PNG (PNG at 2x for print). */
export async function saveVegaLite(spec: VegaLiteSpec, name: string, dir: string = figuresDir()): Promise<SavedFigure> {
  figurePaths(name, dir);
  const svg = await vegaLiteToSvg(spec);
  return writeFigure(name, { svg, png: svgToPng(svg, { scale: 2 }) }, dir);
}

/** Renders a plotly figure and saves it as SVG and PNG (PNG at 2x for print). */
export async function savePlotly(figure: PlotlyFigure, name: string, dir: string = figuresDir()): Promise<SavedFigure> {
  figurePaths(name, dir);
  const [svg, png] = await Promise.all([plotlyToSvg(figure), plotlyToPng(figure, { scale: 2 })]);
  return writeFigure(name, { svg, png }, dir);
}
