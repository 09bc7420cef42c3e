// The notebooks as people see them: JupyterLab from the project's .venv opens executed
// notebooks in Debian's Chromium (driven by playwright-core), and every vega-lite and plotly
// output must render as a chart of non-zero size. A full-page screenshot of each notebook is
// saved to results/browser/<notebook>.png.
//
// Design choices:
// - The notebooks are COPIES in a temporary root folder (JupyterLab may save the file it has
//   open), and Jupyter's own state lives in a temporary folder too (test/helpers/jupyterlab.ts).
// - Notebook windowing is off (`windowingMode: "none"` in the user settings): JupyterLab 4
//   otherwise skips rendering cells out of view, and a chart there would measure 0 x 0. Each
//   unfinished output is also scrolled into view while waiting, should a setting be ignored.
// - JupyterLab scrolls inside its own panel, so a plain full-page screenshot would show one
//   window's height: the viewport is made as tall as the notebook (with `scrollPastEnd` off,
//   else the blank space after the last cell grows with it), the charts are checked again
//   after that resize, and then the page is captured.
// - jupyterlab-plotly shows the PNG saved beside a plotly figure and builds the interactive
//   chart when the pointer enters that image; the test moves the pointer onto each plotly
//   output's image, as a person would, and asserts the interactive chart (.js-plotly-plot with
//   a .main-svg) appears. The hover is forced: the chart built on mouseenter covers the image
//   at once, and playwright's target check would otherwise retry until its timeout.
// - A chart counts as rendered when it has non-zero size AND something drawn in it (vega:
//   non-white canvas pixels or SVG paths; plotly: at least one trace), so an empty frame fails.
// - The number of rendered charts must equal the number of vega-lite / plotly outputs in the
//   notebook's JSON, so a missing renderer (JupyterLab falls back to the static image) fails.
// - Every browser request to anything but 127.0.0.1 is aborted and makes the test fail.
// - One time budget for the whole file (BUDGET_MS): each wait takes the smaller of its own
//   limit and what is left, so a slow machine fails in bounded time instead of hanging.
// - A missing .venv or Chromium FAILS the test, naming the command that installs it.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startJupyterLab, type JupyterLabServer } from "./helpers/jupyterlab";

const REPO = path.resolve(__dirname, "..");
const CHROMIUM = process.env.MERGENET_CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOT_DIR = path.join(REPO, "results", "browser");
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];
const VIEWPORT = { width: 1280, height: 900 };
/** Chromium cannot capture taller pages in one piece; longer notebooks are cut there. */
const MAX_SCREENSHOT_HEIGHT = 16_000;
const VEGA_LITE_MIME = /^application\/vnd\.vegalite\.v\d+\+json$/;
const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** The whole file, from the first hook to the last test, stays under this. */
const BUDGET_MS = 170_000;
const fileStart = Date.now();
/** The smaller of `cap` and the time left in the budget (at least 1 ms). */
function left(cap: number): number {
  return Math.max(1, Math.min(cap, fileStart + BUDGET_MS - Date.now()));
}

/** Notebook 00 must be there; notebooks 00b and 01 join when they are saved executed (have outputs). */
const REQUIRED_NOTEBOOK = "00-setup-check.ipynb";
const OPTIONAL_NOTEBOOKS = ["00b-your-own-models.ipynb", "01-cross-architecture.ipynb"];

type ChartKind = "vega-lite" | "plotly";

interface NotebookJson {
  cells: { cell_type: string; outputs?: { output_type: string; data?: Record<string, unknown> }[] }[];
}

function readNotebook(file: string): NotebookJson {
  return JSON.parse(fs.readFileSync(file, "utf8")) as NotebookJson;
}

/** "cell:kind" for every chart output in the notebook's JSON, in order. */
function expectedCharts(nb: NotebookJson): string[] {
  return nb.cells.flatMap((cell, index) =>
    (cell.outputs ?? []).flatMap((output) => {
      const mimes = Object.keys(output.data ?? {});
      if (mimes.some((m) => VEGA_LITE_MIME.test(m))) return [`${index}:vega-lite`];
      if (mimes.includes(PLOTLY_MIME)) return [`${index}:plotly`];
      return [];
    }),
  );
}

function hasOutputs(file: string): boolean {
  return fs.existsSync(file) && readNotebook(file).cells.some((c) => (c.outputs ?? []).length > 0);
}

const notebooks = [REQUIRED_NOTEBOOK, ...OPTIONAL_NOTEBOOKS.filter((name) => hasOutputs(path.join(REPO, "notebooks", name)))];

/** What is missing to run this test, each with the command that installs it. */
function missingPrerequisites(): string[] {
  const missing: string[] = [];
  const jupyterLab = path.join(REPO, ".venv", "bin", "jupyter-lab");
  if (!fs.existsSync(jupyterLab)) missing.push(`${jupyterLab} is missing: run \`npm run jupyter:setup\` (scripts/setup-jupyter.sh)`);
  if (!fs.existsSync(CHROMIUM)) {
    missing.push(`${CHROMIUM} is missing: run \`bash scripts/setup-system.sh\` (installs Debian's chromium), or set MERGENET_CHROMIUM`);
  }
  return missing;
}

/** What the page reports for one chart output. */
interface ChartStatus {
  cell: number;
  kind: ChartKind;
  ok: boolean;
  /** Plotly only: still showing the saved PNG, the interactive chart not built yet. */
  staticImage: boolean;
  detail: string;
}

// The few DOM shapes the in-page code touches (the project compiles without the DOM lib).
interface Rect {
  width: number;
  height: number;
}
interface DomElement {
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement>;
  matches(selector: string): boolean;
  getBoundingClientRect(): Rect;
  tagName: string;
}
interface DomCanvas extends DomElement {
  width: number;
  height: number;
  getContext(kind: "2d"): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}

/**
 * Runs in the page: the status of every vega-lite and plotly output of the open notebook, in
 * cell order. Self-contained (playwright sends its source to the page).
 */
function chartStatuses(): ChartStatus[] {
  const doc = (globalThis as unknown as { document: DomElement }).document;
  const panel = doc.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook");
  if (!panel) return [];
  const cells = Array.from(panel.querySelectorAll(".jp-Cell"));
  const statuses: ChartStatus[] = [];
  cells.forEach((cell, index) => {
    for (const output of Array.from(cell.querySelectorAll(".jp-OutputArea-output"))) {
      if (output.matches(".jp-RenderedVegaLite")) {
        const marks = output.querySelector("canvas.marks, svg.marks");
        const box = marks?.getBoundingClientRect();
        let drawn = 0;
        if (marks && marks.tagName.toLowerCase() === "canvas") {
          const canvas = marks as DomCanvas;
          const pixels = canvas.width > 0 && canvas.height > 0 ? canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height).data : undefined;
          for (let i = 0; pixels && i < pixels.length; i += 4) {
            if (pixels[i + 3] > 0 && (pixels[i] < 250 || pixels[i + 1] < 250 || pixels[i + 2] < 250)) drawn++;
          }
        } else if (marks) {
          drawn = marks.querySelectorAll("path").length;
        }
        const sized = !!box && box.width > 0 && box.height > 0;
        statuses.push({
          cell: index,
          kind: "vega-lite",
          ok: sized && drawn > 0,
          staticImage: false,
          detail: marks ? `${marks.tagName.toLowerCase()} ${box?.width ?? 0}x${box?.height ?? 0}, ${drawn} drawn` : "no canvas.marks or svg.marks",
        });
      } else if (output.matches(".jp-RenderedPlotly")) {
        const plot = output.matches(".js-plotly-plot") ? output : output.querySelector(".js-plotly-plot");
        const svg = plot?.querySelector(".main-svg");
        const box = svg?.getBoundingClientRect();
        const traces = plot ? plot.querySelectorAll(".trace, .hm").length : 0;
        const image = output.querySelector("img.plot-img");
        const imageBox = image?.getBoundingClientRect();
        const staticImage = !plot && !!imageBox && imageBox.width > 0;
        const sized = !!box && box.width > 0 && box.height > 0;
        statuses.push({
          cell: index,
          kind: "plotly",
          ok: sized && traces > 0,
          staticImage,
          detail: plot ? `main-svg ${box?.width ?? 0}x${box?.height ?? 0}, ${traces} traces` : staticImage ? "static PNG only" : "no .js-plotly-plot",
        });
      }
    }
  });
  return statuses;
}

function describeStatuses(statuses: ChartStatus[]): string {
  return statuses.map((s) => `cell ${s.cell} ${s.kind}: ${s.ok ? "rendered" : "NOT rendered"} (${s.detail})`).join("\n") || "no chart outputs in the page";
}

/** The failure message: what the page shows, and what is missing against the notebook's JSON. */
function chartReport(name: string, statuses: ChartStatus[], expected: string[], pageErrors: string[]): string {
  const unmatched = statuses.map((s) => `${s.cell}:${s.kind}`);
  const missing = expected.filter((chart) => {
    const at = unmatched.indexOf(chart);
    if (at >= 0) unmatched.splice(at, 1);
    return at < 0;
  });
  const lines = [`${name}:`, describeStatuses(statuses)];
  if (missing.length > 0) {
    lines.push(
      `not drawn by a chart renderer at all: ${missing.map((m) => `cell ${m.replace(":", " ")}`).join(", ")} ` +
        "(JupyterLab showed another MIME type instead: is the vega / jupyterlab-plotly extension installed? `npm run jupyter:setup`)",
    );
  }
  if (pageErrors.length > 0) lines.push(`page errors: ${pageErrors.join("; ")}`);
  return lines.join("\n");
}

/** Number of cells the open notebook shows in the DOM. Runs in the page. */
function domCellCount(): number {
  const doc = (globalThis as unknown as { document: DomElement }).document;
  return doc.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").length;
}

type DomScroller = DomElement & { scrollHeight: number; clientHeight: number; scrollTop: number };

/**
 * Height the page needs to show the whole notebook without inner scrolling; scrolls the
 * notebook back to its top. Runs in the page.
 */
function fullNotebookHeight(): number {
  const doc = (globalThis as unknown as { document: DomElement }).document;
  const view = globalThis as unknown as { innerHeight: number };
  const scroller = doc.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer") as DomScroller | null;
  if (!scroller) return view.innerHeight;
  scroller.scrollTop = 0;
  return view.innerHeight - scroller.clientHeight + scroller.scrollHeight;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until the page shows all `count` cells of the notebook; fails naming how many it shows. */
async function waitForCells(page: Page, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let shown = 0;
  while (Date.now() < deadline) {
    shown = await page.evaluate(domCellCount);
    if (shown === count) return;
    await sleep(250);
  }
  throw new Error(
    `JupyterLab shows ${shown} of the notebook's ${count} cells after ${timeoutMs} ms ` +
      "(not loaded, or cells virtualised: is the windowingMode 'none' setting applied?)",
  );
}

/** How long every chart found stays rendered, with fewer found than expected, before the wait gives up. */
const SHORT_AND_STABLE_MS = 10_000;

/**
 * Polls until `expected` charts are rendered or `timeoutMs` passes; meanwhile scrolls every
 * unfinished chart into view and moves the pointer onto plotly outputs still showing their
 * saved PNG. Gives up early when every chart found is rendered but fewer than `expected`
 * stay found for SHORT_AND_STABLE_MS: JupyterLab picks each output's renderer once, when the
 * cell appears, so the missing ones went to another renderer and will not come.
 */
async function waitForCharts(page: Page, expected: number, timeoutMs: number): Promise<ChartStatus[]> {
  const deadline = Date.now() + timeoutMs;
  const charts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").locator(".jp-RenderedVegaLite, .jp-RenderedPlotly");
  /** The last failed interaction with each chart, by index, for the failure message. */
  const interactionErrors = new Map<number, string>();
  let shortSince = Date.now();
  let statuses = await page.evaluate(chartStatuses);
  while (Date.now() < deadline && !(statuses.length === expected && statuses.every((s) => s.ok))) {
    if (!(statuses.length < expected && statuses.every((s) => s.ok))) shortSince = Date.now();
    else if (Date.now() - shortSince > SHORT_AND_STABLE_MS) break;
    for (let i = 0; i < statuses.length; i++) {
      if (statuses[i].ok) continue;
      const step = Math.max(1, Math.min(10_000, deadline - Date.now()));
      const chart = charts.nth(i);
      const interaction = statuses[i].staticImage
        ? chart.locator("img.plot-img").hover({ force: true, timeout: step })
        : chart.scrollIntoViewIfNeeded({ timeout: step });
      await interaction.then(
        () => interactionErrors.delete(i),
        (err: unknown) => interactionErrors.set(i, String(err).split("\n")[0]),
      );
    }
    await sleep(500);
    statuses = await page.evaluate(chartStatuses);
  }
  return statuses.map((s, i) => (!s.ok && interactionErrors.has(i) ? { ...s, detail: `${s.detail}; ${interactionErrors.get(i)}` } : s));
}

describe("notebooks in JupyterLab, in a real browser", () => {
  let work = "";
  let server: JupyterLabServer | undefined;
  let context: BrowserContext | undefined;
  /** Requests the page tried to send anywhere but 127.0.0.1 (all aborted). */
  const external: string[] = [];

  /** Why JupyterLab or Chromium did not start; every test fails with it (never a skip). */
  let setupError: Error | undefined;

  beforeAll(async () => {
    try {
      const missing = missingPrerequisites();
      if (missing.length > 0) throw new Error(missing.join("\n"));
      work = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-browser-"));
      const root = path.join(work, "notebooks");
      fs.mkdirSync(root);
      for (const name of notebooks) fs.copyFileSync(path.join(REPO, "notebooks", name), path.join(root, name));

      server = await startJupyterLab({
        repo: REPO,
        rootDir: root,
        stateDir: path.join(work, "jupyter"),
        settings: { "@jupyterlab/notebook-extension:tracker": { windowingMode: "none", scrollPastEnd: false } },
        startTimeoutMs: left(90_000),
      });

      const { chromium } = await import("playwright-core");
      context = await chromium.launchPersistentContext(path.join(work, "chromium-profile"), {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: VIEWPORT,
        timeout: left(60_000),
      });
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.hostname === "127.0.0.1") return route.continue();
        external.push(url.href);
        return route.abort();
      });
    } catch (err) {
      // A throwing beforeAll makes vitest report the tests as skipped: keep the error for them.
      setupError = err instanceof Error ? err : new Error(String(err));
    }
  }, 160_000);

  /** The running server and browser, or the set-up error. */
  function running(): { server: JupyterLabServer; context: BrowserContext } {
    if (setupError) throw setupError;
    if (!server || !context) throw new Error("JupyterLab or Chromium did not start, and no error was recorded");
    return { server, context };
  }

  afterAll(async () => {
    // Each step runs even when an earlier one failed; a hung browser close is abandoned after 15 s.
    await Promise.race([context?.close().catch(() => undefined), sleep(15_000)]);
    await server?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it("has its set-up: the project's .venv and Chromium", () => {
    const missing = missingPrerequisites();
    expect(missing, missing.join("\n")).toEqual([]);
  });

  it("notebook 00 has vega-lite and plotly outputs to look at", () => {
    const charts = expectedCharts(readNotebook(path.join(REPO, "notebooks", REQUIRED_NOTEBOOK)));
    expect(charts.filter((c) => c.endsWith("vega-lite")).length, "notebook 00 saved without its vega-lite output: run `npm run notebooks -- notebooks/00-setup-check.ipynb`").toBeGreaterThan(0);
    expect(charts.filter((c) => c.endsWith("plotly")).length, "notebook 00 saved without its plotly output: run `npm run notebooks -- notebooks/00-setup-check.ipynb`").toBeGreaterThan(0);
  });

  for (const name of notebooks) {
    it(`${name}: every vega-lite and plotly output renders`, async () => {
      const { server, context } = running();
      const nb = readNotebook(path.join(server.rootDir, name));
      const expected = expectedCharts(nb);
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (err) => pageErrors.push(err.message));
      try {
        await page.goto(server.urlFor(name), { waitUntil: "domcontentloaded", timeout: left(60_000) });
        await waitForCells(page, nb.cells.length, left(60_000));

        const statuses = await waitForCharts(page, expected.length, left(90_000));
        const report = chartReport(name, statuses, expected, pageErrors);
        const rendered = statuses.filter((s) => s.ok).map((s) => `${s.cell}:${s.kind}`);
        expect(rendered.filter((c) => c.endsWith("vega-lite")).length, report).toBe(expected.filter((c) => c.endsWith("vega-lite")).length);
        expect(rendered.filter((c) => c.endsWith("plotly")).length, report).toBe(expected.filter((c) => c.endsWith("plotly")).length);
        expect(rendered, report).toEqual(expected);

        // Tall enough for the whole notebook, then charts checked again after the resize.
        const height = Math.min(MAX_SCREENSHOT_HEIGHT, Math.ceil(await page.evaluate(fullNotebookHeight)));
        await page.setViewportSize({ width: VIEWPORT.width, height: Math.max(VIEWPORT.height, height) });
        const afterResize = await waitForCharts(page, expected.length, left(30_000));
        await page.evaluate(fullNotebookHeight); // back to the top, should a chart have scrolled
        await page.mouse.move(0, 0); // no hover toolbar over a chart
        expect(afterResize.filter((s) => s.ok).length, `${name} after resizing for the screenshot:\n${describeStatuses(afterResize)}`).toBe(expected.length);
        fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
        const shot = path.join(SCREENSHOT_DIR, `${path.basename(name, ".ipynb")}.png`);
        await page.screenshot({ path: shot, fullPage: true, timeout: left(30_000) });
        expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
        expect(external, "the page asked for something outside 127.0.0.1").toEqual([]);
      } finally {
        await page.close().catch(() => undefined);
      }
    }, 160_000);
  }
});
