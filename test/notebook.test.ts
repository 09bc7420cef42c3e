// The notebook display helper (src/notebook/display.ts) and headless execution of notebook 00.
// The display tests run without Jupyter; the notebook test needs the venv from
// `npm run jupyter:setup` and Chromium (`apt-get install -y chromium`) and fails, naming the
// missing command, when either is absent.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  PLOTLY_MIME,
  VEGA_LITE_MIME,
  inTslab,
  plotlyBundle,
  showMarkdown,
  showPlotly,
  showTable,
  showVegaLite,
  vegaLiteBundle,
  markdownTable,
} from "../src/notebook/display";
import { closeRenderer } from "../src/plots/render";
import { heatmap, learningCurves } from "../src/plots/specs";
import { NotebookRunError, runNotebooks } from "../scripts/run-notebooks";

const REPO = path.resolve(__dirname, "..");
const CHROMIUM = process.env.MERGENET_CHROMIUM ?? "/usr/bin/chromium";
const PNG_BASE64_PREFIX = "iVBORw0KGgo"; // the PNG signature, base64-encoded
const spec = learningCurves([{ method: "a", seed: 0, step: 0, value: 1 }, { method: "a", seed: 0, step: 1, value: 0.5 }], {
  metric: "loss",
  title: "tiny",
});
/** A multi-line string as nbformat stores it: a string or a list of lines. */
function nbText(value: unknown): string {
  return Array.isArray(value) ? value.join("") : String(value);
}
const figure = heatmap([[1, 2], [3, 4]], { title: "tiny heatmap" });

afterAll(async () => {
  await closeRenderer();
});

describe("display bundles (no Jupyter)", () => {
  it("a vega-lite bundle carries the spec, an SVG fallback and text", async () => {
    const bundle = await vegaLiteBundle(spec);
    expect(bundle.data[VEGA_LITE_MIME]).toBe(spec);
    expect(String(bundle.data["image/svg+xml"]).startsWith("<svg")).toBe(true);
    expect(bundle.data["text/plain"]).toBe("<vega-lite chart: tiny>");
  });

  it("a plotly bundle carries the figure, a base64 PNG fallback and text", async () => {
    const bundle = await plotlyBundle(figure);
    expect(bundle.data[PLOTLY_MIME]).toMatchObject({ data: figure.data, layout: figure.layout });
    expect(String(bundle.data["image/png"]).startsWith(PNG_BASE64_PREFIX)).toBe(true);
    expect(bundle.data["text/plain"]).toBe("<plotly figure: tiny heatmap>");
  });

  it("outside tslab the show functions neither crash nor send", async () => {
    expect(inTslab()).toBe(false);
    await expect(showVegaLite(spec)).resolves.toBeUndefined();
    expect(() => showMarkdown("# hi")).not.toThrow();
    expect(markdownTable([{ method: "a|b", acc: 0.123456 }])).toBe("| method | acc |\n| --- | ---: |\n| a\\|b | 0.1235 |");
  });
});

describe("display through tslab's writer", () => {
  // A stand-in for the kernel's tslab: modules at .../tslab/dist/{jupyter,public}.js, loaded
  // the way the kernel loads tslab, so the helper finds them exactly as it would in Jupyter.
  const fake = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-fake-tslab-"));
  const dist = path.join(fake, "node_modules", "tslab", "dist");
  fs.mkdirSync(dist, { recursive: true });
  fs.writeFileSync(path.join(dist, "jupyter.js"), "exports.sent = []; exports.lastWriteDisplayData = (msg, update) => exports.sent.push(msg);\n");
  fs.writeFileSync(
    path.join(dist, "public.js"),
    'const jupyter = require("./jupyter"); exports.display = { markdown: (text) => jupyter.sent.push({ data: { "text/markdown": text } }) };\n',
  );
  const jupyterFile = path.join(dist, "jupyter.js");
  const publicFile = path.join(dist, "public.js");

  function loadFake(): { sent: { data: Record<string, unknown> }[] } {
    return require(jupyterFile);
  }

  afterEach(() => {
    delete require.cache[jupyterFile];
    delete require.cache[publicFile];
  });
  afterAll(() => fs.rmSync(fake, { recursive: true }));

  it("sends ONE output with the interactive MIME type and its static fallback", async () => {
    const fakeTslab = loadFake();
    expect(inTslab()).toBe(true);
    await showVegaLite(spec);
    await showPlotly(figure);
    expect(fakeTslab.sent).toHaveLength(2);
    const [vega, plotly] = fakeTslab.sent.map((m) => m.data);
    expect(Object.keys(vega).sort()).toEqual([VEGA_LITE_MIME, "image/svg+xml", "text/plain"].sort());
    expect(Object.keys(plotly).sort()).toEqual([PLOTLY_MIME, "image/png", "text/plain"].sort());
    expect(String(plotly["image/png"]).startsWith(PNG_BASE64_PREFIX)).toBe(true);
  });

  it("sends tables and markdown through tslab's public display", () => {
    const fakeTslab = loadFake();
    showTable([{ method: "mergenet", accuracy: 0.9 }]);
    showMarkdown("**done**");
    expect(fakeTslab.sent.map((m) => m.data["text/markdown"])).toEqual(["| method | accuracy |\n| --- | ---: |\n| mergenet | 0.9 |", "**done**"]);
  });
});

describe("notebook 00 runs headlessly", () => {
  it("has its set-up: the Jupyter venv and Chromium", () => {
    expect(fs.existsSync(path.join(REPO, ".venv", "bin", "python")), "no .venv: run `npm run jupyter:setup`").toBe(true);
    expect(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run \`apt-get install -y chromium\``).toBe(true);
  });

  it("executes without error and saves each figure with its interactive spec and a static fallback", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-nb-"));
    const copy = path.join(dir, "00-setup-check.ipynb");
    fs.copyFileSync(path.join(REPO, "notebooks", "00-setup-check.ipynb"), copy);
    await runNotebooks([copy], { quick: true, cellTimeoutSeconds: 300 });

    const nb = JSON.parse(fs.readFileSync(copy, "utf8")) as {
      cells: { cell_type: string; outputs?: { output_type: string; name?: string; data?: Record<string, unknown> }[] }[];
    };
    const outputs = nb.cells.flatMap((c) => c.outputs ?? []);
    expect(outputs.filter((o) => o.output_type === "error")).toEqual([]);
    const figures = outputs.filter((o) => o.data && (VEGA_LITE_MIME in o.data || PLOTLY_MIME in o.data));
    const vega = figures.filter((o) => VEGA_LITE_MIME in (o.data ?? {}));
    const plotly = figures.filter((o) => PLOTLY_MIME in (o.data ?? {}));
    expect(vega).toHaveLength(1);
    expect(plotly).toHaveLength(1);
    expect(nbText(vega[0].data?.["image/svg+xml"]).startsWith("<svg")).toBe(true);
    expect(nbText(vega[0].data?.["image/svg+xml"])).toContain("</svg>");
    const plotlyImage = nbText(plotly[0].data?.["image/png"] ?? plotly[0].data?.["image/svg+xml"]);
    expect(plotlyImage.startsWith(PNG_BASE64_PREFIX) || plotlyImage.startsWith("<svg")).toBe(true);
    for (const output of figures) {
      expect(output.output_type).toBe("display_data");
      expect(["image/svg+xml", "image/png"].some((mime) => mime in (output.data ?? {})), "figure output without a static fallback").toBe(true);
      expect(nbText(output.data?.["text/plain"])).toMatch(/^<(vega-lite chart|plotly figure)/);
    }
    const printed = outputs.filter((o) => o.name === "stdout").map((o) => nbText((o as { text?: unknown }).text)).join("");
    expect(printed).toMatch(/backend: \w+/);
    expect(printed).toMatch(/step 0: loss/);
    fs.rmSync(dir, { recursive: true });
  });
});

describe("run-notebooks reports failures", () => {
  /** A notebook of code cells; a source starting with "//raises-exception\n" gets that tag. */
  function writeNotebook(file: string, sources: string[]): void {
    const tag = "//raises-exception\n";
    const cells = sources.map((source) => ({
      cell_type: "code", execution_count: null, metadata: source.startsWith(tag) ? { tags: ["raises-exception"] } : {}, outputs: [], source: source.replace(tag, ""),
    }));
    const metadata = { kernelspec: { name: "mergenet-ts", display_name: "TypeScript (MergeNet)", language: "typescript" } };
    fs.writeFileSync(file, JSON.stringify({ cells, metadata, nbformat: 4, nbformat_minor: 5 }));
  }

  it("names each failing notebook, cell and error, runs the rest, and keeps the error output", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-nb-fail-"));
    const thrown = path.join(dir, "a-throws.ipynb");
    const typeError = path.join(dir, "b-type-error.ipynb");
    writeNotebook(thrown, ["const ready = 1;", 'throw new Error("deliberate failure");', 'console.log("never reached");']);
    writeNotebook(typeError, ['const n: number = "not a number";']);
    const tagged = path.join(dir, "c-tagged.ipynb");
    // tslab aborts every cell after an error, even an allowed one: those cells never ran.
    writeNotebook(tagged, ["const ok = 1;", '//raises-exception\nthrow new Error("allowed failure");', 'console.log("never printed");']);
    const failure = await runNotebooks([thrown, typeError, tagged]).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(NotebookRunError);
    const { message, results } = failure as NotebookRunError;
    expect(message).toMatch(/a-throws\.ipynb: cell 1 .*deliberate failure/);
    expect(message).toMatch(/b-type-error\.ipynb: cell 0 .*not assignable to type 'number'/);
    expect(message).toMatch(/c-tagged\.ipynb: cell 2 .* failed: CellAborted: never ran: the kernel aborted it after the error in cell 1 .*which that cell's tags allow \(Error: allowed failure\)/);
    expect(results.map((r) => r.failure?.cell)).toEqual([1, 0, 2]);
    const saved = JSON.parse(fs.readFileSync(thrown, "utf8")) as { cells: { outputs: { text?: unknown }[] }[] };
    expect(saved.cells[1].outputs.map((o) => nbText(o.text)).join("")).toContain("deliberate failure");
    expect(saved.cells[2].outputs).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });

  it("a failing cell shows the error's sentence, not a stack of tfjs internals", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-nb-sentence-"));
    const fromTfjs = path.join(dir, "a-tfjs.ipynb");
    const fromConfig = path.join(dir, "b-config.ipynb");
    writeNotebook(fromTfjs, ['import { initBackend, tf } from "./src";\nawait initBackend();', "tf.matMul(tf.ones([2, 2]), tf.ones([3, 3]));"]);
    writeNotebook(fromConfig, [
      'import { runExperiment, crossArchitecture } from "./src";\nconst { cnnToMlp } = crossArchitecture;',
      "await runExperiment({ ...cnnToMlp(), epochs: 0, seed: 3 } as never);",
    ]);
    const failure = await runNotebooks([fromTfjs, fromConfig]).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(NotebookRunError);
    // The summary names the error once and lists every problem of the configuration.
    expect((failure as Error).message).toMatch(/b-config\.ipynb: cell 1 .* failed: Error: invalid experiment '01-cnn-to-mlp': \/ - unknown key 'seed': did you mean 'seeds'\? \/ - epochs must be a whole number >= 1, got 0/);
    expect((failure as Error).message).not.toContain("Error: Error:");
    const printed = (file: string): string => {
      const saved = JSON.parse(fs.readFileSync(file, "utf8")) as { cells: { outputs: { text?: unknown }[] }[] };
      return saved.cells[1].outputs.map((o) => nbText(o.text)).join("");
    };
    const tfjs = printed(fromTfjs);
    expect(tfjs).toMatch(/^Error: (Error in matMul: inner shapes|TensorFlow: Matrix size-incompatible)/);
    const config = printed(fromConfig);
    expect(config).toMatch(/^Error: invalid experiment '01-cnn-to-mlp':\n {2}- unknown key 'seed': did you mean 'seeds'\?\n {2}- epochs must be a whole number >= 1, got 0/);
    for (const text of [tfjs, config]) {
      expect(text, text).not.toMatch(/\n\s+at /); // no stack frames
      expect(text).not.toContain("node_modules");
      expect(text).toContain("(MERGENET_DEBUG=1 shows the JavaScript stack)");
    }
    fs.rmSync(dir, { recursive: true });
  });
});
