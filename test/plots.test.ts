// Plot builders (src/plots/specs.ts) and static rendering (src/plots/render.ts): specs compile
// with vega-lite, carry what they promise (bands, error bars, trace order), and render to SVG
// and PNG; plotly figures render through Chromium, which must be installed (apt-get install chromium).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { PNG } from "pngjs";
import { compile } from "vega-lite";
import { parse, View } from "vega";
import {
  closeRenderer,
  plotlyToPng,
  plotlyToSvg,
  saveVegaLite,
  svgToPng,
  vegaLiteToSvg,
  type VegaLiteSpec,
} from "../src/plots/render";
import {
  attentionHeatmap, categoryColors, effectsPlot, groupedBars, heatmap, integerTicks, learningCurves, methodOrder, readableBars, scatterPath,
  spectrumChart, summarizeOverSeeds, wrapTitle, type CurveRow,
} from "../src/plots/specs";
import { imageMosaic, type ImageTile } from "../src/plots/images";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHROMIUM = process.env.MERGENET_CHROMIUM ?? "/usr/bin/chromium";

/** A width x height tile of one RGB colour. */
function solidTile(width: number, height: number, rgb: [number, number, number], caption?: string[]): ImageTile {
  return { width, height, pixels: Array.from({ length: width * height }, () => rgb).flat(), caption };
}

/** The PNG a mosaic stores in its image trace's `source`, decoded. */
function mosaicPicture(figure: ReturnType<typeof imageMosaic>): PNG {
  const source = String(figure.data[0].source);
  expect(source.startsWith("data:image/png;base64,")).toBe(true);
  return PNG.sync.read(Buffer.from(source.slice("data:image/png;base64,".length), "base64"));
}

/** RGB of pixel (x, y) of a decoded PNG. */
const rgbAt = (png: PNG, x: number, y: number): number[] => [...png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3)];

function expectPng(bytes: Uint8Array): void {
  expect([...bytes.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
  expect(bytes.length).toBeGreaterThan(1000);
}

/** The layers of a layered spec, typed loosely for inspection. */
function layers(spec: VegaLiteSpec): { mark: { type: string }; encoding: Record<string, { field?: string }> }[] {
  return (spec as unknown as { layer: { mark: { type: string }; encoding: Record<string, { field?: string }> }[] }).layer;
}

function dataValues(spec: VegaLiteSpec): Record<string, number | string>[] {
  return (spec as unknown as { data: { values: Record<string, number | string>[] } }).data.values;
}

const curveRows: CurveRow[] = [0, 1, 2].flatMap((seed) =>
  [0, 10, 20].flatMap((step) => [
    { method: "mergenet", seed, step, value: 1 / (step + 1) + 0.1 * seed },
    { method: "target-alone", seed, step, value: 2 / (step + 1) + 0.1 * seed },
  ]),
);

afterAll(async () => {
  await closeRenderer();
});

describe("learningCurves", () => {
  it("averages over seeds with the sample std", () => {
    const points = summarizeOverSeeds(curveRows, "step");
    expect(points).toHaveLength(6);
    const first = points[0];
    expect(first).toMatchObject({ method: "mergenet", x: 0, n: 3 });
    expect(first.mean).toBeCloseTo(1.1, 12); // 1, 1.1, 1.2
    expect(first.std).toBeCloseTo(0.1, 12); // sample std of 1, 1.1, 1.2
    expect(first.lo).toBeCloseTo(1.0, 12);
    expect(first.hi).toBeCloseTo(1.2, 12);
  });

  it("draws the mean as a line over a mean ± std band and compiles", () => {
    const spec = learningCurves(curveRows, { metric: "test loss", band: "std" });
    expect(() => compile(spec)).not.toThrow();
    const [band, line] = layers(spec);
    expect(band.mark.type).toBe("area");
    expect(band.encoding.y.field).toBe("bandLo");
    expect(band.encoding.y2.field).toBe("hi");
    expect(line.mark.type).toBe("line");
    expect(line.encoding.y.field).toBe("mean");
    expect((spec as { $schema?: string }).$schema).toContain("vega-lite/v5");
  });

  it("drops the band with band 'none' and rejects bad input clearly", () => {
    expect(layers(learningCurves(curveRows, { metric: "loss", band: "none" })).map((l) => l.mark.type)).toEqual(["line"]);
    expect(() => learningCurves([], { metric: "loss" })).toThrow(/non-empty/);
    expect(() => learningCurves([{ method: "a", seed: 0, value: 1 }], { metric: "loss" })).toThrow(/step.*epoch/);
    expect(() => learningCurves([{ method: "a", seed: 0, step: 0, value: NaN }], { metric: "loss" })).toThrow(/finite/);
    expect(() => learningCurves([{ method: "a", seed: 0, step: 0, value: -1 }], { metric: "loss", yScale: "log" })).toThrow(/positive/);
  });

  it("keeps the log-axis band above zero", () => {
    const rows: CurveRow[] = [
      { method: "a", seed: 0, step: 0, value: 0.01 },
      { method: "a", seed: 1, step: 0, value: 1 },
    ];
    const values = dataValues(learningCurves(rows, { metric: "loss", yScale: "log" }));
    expect(values[0].lo as number).toBeLessThan(0);
    expect(values[0].bandLo as number).toBeGreaterThan(0);
  });

  it("renders to SVG with a band path and to a PNG", async () => {
    const svg = await vegaLiteToSvg(learningCurves(curveRows, { metric: "test loss", title: "curves" }));
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("mark-area");
    expect(svg).toContain("mark-line");
    expect(svg).toContain("curves");
    expectPng(svgToPng(svg, { scale: 2 }));
  });
});

describe("groupedBars", () => {
  const rows = [
    { group: "MNIST", method: "mergenet", mean: 0.9, std: 0.02 },
    { group: "MNIST", method: "target-alone", mean: 0.88, std: 0.01 },
    { group: "Fashion", method: "mergenet", mean: 0.8, std: 0.03 },
    { group: "Fashion", method: "target-alone", mean: 0.79 },
  ];

  it("has one error bar (a rule from mean - std to mean + std) per bar and compiles", () => {
    const spec = groupedBars(rows, { metric: "accuracy" });
    expect(() => compile(spec)).not.toThrow();
    const [bars, errorBars] = layers(spec);
    expect(bars.mark.type).toBe("bar");
    expect(bars.encoding.xOffset.field).toBe("method");
    expect(errorBars.mark.type).toBe("rule");
    expect(errorBars.encoding.y.field).toBe("lo");
    expect(errorBars.encoding.y2.field).toBe("hi");
    const values = dataValues(spec);
    expect(values[0].lo).toBeCloseTo(0.88, 12);
    expect(values[0].hi).toBeCloseTo(0.92, 12);
    expect(values[3].std).toBe(0);
  });

  it("renders every bar and every error bar", async () => {
    const svg = await vegaLiteToSvg(groupedBars(rows));
    const ruleGroup = svg.slice(svg.indexOf("mark-rule"));
    expect(svg).toContain("mark-rect");
    expect((ruleGroup.match(/<line /g) ?? []).length).toBeGreaterThanOrEqual(rows.length);
    expectPng(svgToPng(svg));
  });

  it("rejects a negative std", () => {
    expect(() => groupedBars([{ group: "g", method: "m", mean: 1, std: -1 }])).toThrow(/negative std/);
  });
});

describe("effectsPlot", () => {
  const rows = [
    { group: "A", label: "M", series: "M − alone", mean: 0.01, low: 0.0, high: 0.02, delta: 0.005, verdict: "inconclusive", n: 10 },
    { group: "A", label: "M", series: "M − control", mean: 0.002, low: 0.001, high: 0.003, delta: 0.005, verdict: "better", n: 10 },
    { group: "B", label: "N", series: "M − control", mean: -0.01, delta: 0.01, n: 1 },
  ];
  it("draws one row per comparison, its interval, the ±δ band once per row, facets per group, and compiles", () => {
    const spec = effectsPlot(rows) as unknown as { data: { values: Record<string, unknown>[] }; facet: unknown; spec: { layer: unknown[] } };
    const values = spec.data.values;
    expect(values.map((v) => v.key)).toEqual(["M: M − alone", "M: M − control", "N: M − control"]);
    expect(values.map((v) => [v.bandLow, v.bandHigh])).toEqual([[-0.005, 0.005], [-0.005, 0.005], [-0.01, 0.01]]);
    // One seed: no interval, drawn as the point alone, its verdict says so.
    expect(values[2]).toMatchObject({ low: -0.01, high: -0.01, interval: false, verdict: "one seed" });
    expect(spec.facet).toBeDefined();
    expect(spec.spec.layer).toHaveLength(4);
    expect(() => compile(effectsPlot(rows))).not.toThrow();
    expect(() => compile(effectsPlot(rows.map(({ group: _g, ...r }) => r)))).not.toThrow();
  });
  it("refuses a non-finite mean, naming the row", () => {
    expect(() => effectsPlot([{ label: "X", series: "s", mean: NaN }])).toThrow(/row 0 \('X'\) field 'mean' must be a finite number/);
    expect(() => effectsPlot([])).toThrow(/non-empty/);
  });
});

describe("plotly builders", () => {
  it("heatmap keeps the matrix, puts row 0 on top and validates shape", () => {
    const fig = heatmap([[1, 2, 3], [4, 5, 6]], { title: "W", xLabel: "in", yLabel: "out", zmid: 0 });
    expect(fig.data[0]).toMatchObject({ type: "heatmap", z: [[1, 2, 3], [4, 5, 6]], zmid: 0 });
    expect((fig.layout?.yaxis as { autorange?: string }).autorange).toBe("reversed");
    expect(() => heatmap([[1, 2], [3]])).toThrow(/rectangular/);
    expect(() => heatmap([])).toThrow(/non-empty/);
    expect(() => heatmap([[1, 2]], { xTicks: ["a"] })).toThrow(/xTicks/);
  });

  it("scatterPath makes one trace per method in sorted order, each path in step order", () => {
    const fig = scatterPath([
      { method: "b", x: 1, y: 1, step: 1 },
      { method: "a", x: 0, y: 0, step: 0 },
      { method: "b", x: 0, y: 0, step: 0 },
    ]);
    expect(fig.data.map((t) => t.name)).toEqual(["a", "b"]);
    expect(fig.data[1].x).toEqual([0, 1]);
    expect((fig.data[0].marker as { symbol: string[] }).symbol[0]).toBe("circle-open");
    expect((fig.data[1].marker as { symbol: string[] }).symbol).toEqual(["square-open", "square"]);
  });
});

describe("imageMosaic", () => {
  it("stores the mosaic as a PNG data URI (no pixel lists), tiles on white after half a gap, captions below", () => {
    const tiles = [solidTile(4, 2, [255, 0, 0], ["red"]), solidTile(4, 2, [0, 0, 255], ["blue", "second line"]), solidTile(4, 2, [10.4, 300, -5])];
    const figure = imageMosaic(tiles, { columns: 2, scale: 3 });
    expect(figure.data).toHaveLength(1);
    expect(figure.data[0]).toMatchObject({ type: "image", hoverinfo: "skip" });
    expect(figure.data[0].z).toBeUndefined();
    const png = mosaicPicture(figure);
    const gap = 2; // half of the 4-px tile width
    expect(png.width).toBe(2 * (4 + gap));
    expect(png.height % 2).toBe(0); // two rows of equal cells
    expect(rgbAt(png, 0, 0)).toEqual([255, 255, 255]);
    expect(rgbAt(png, gap / 2, 0)).toEqual([255, 0, 0]); // tile 0 starts after half a gap
    expect(rgbAt(png, gap / 2 + 3, 1)).toEqual([255, 0, 0]);
    expect(rgbAt(png, 4 + gap + gap / 2, 0)).toEqual([0, 0, 255]);
    expect(rgbAt(png, gap / 2, png.height / 2)).toEqual([10, 255, 0]); // rounded and clamped to bytes
    expect(figure.layout?.width).toBe(png.width * 3 + 10);
    const axes = figure.layout as { xaxis: { range: number[] }; yaxis: { range: number[] } };
    expect(axes.xaxis.range).toEqual([-0.5, png.width - 0.5]);
    expect(axes.yaxis.range).toEqual([png.height - 0.5, -0.5]);
    const annotations = figure.layout?.annotations as { text: string }[];
    expect(annotations.map((a) => a.text)).toEqual(["red", "blue", "second line"]);
  });

  it("keeps a notebook-sized mosaic small: 2 x 9 emoji-sized tiles in a few kilobytes of JSON", () => {
    const tiles = Array.from({ length: 18 }, (_, i) => ({
      width: 32, height: 32, pixels: Array.from({ length: 32 * 32 * 3 }, (_, p) => (p * 7 + i * 31) % 256),
    }));
    expect(JSON.stringify(imageMosaic(tiles, { columns: 9 })).length).toBeLessThan(100_000);
  });

  it("rejects tiles of different sizes or the wrong number of values", () => {
    expect(() => imageMosaic([])).toThrow(/at least one tile/);
    expect(() => imageMosaic([solidTile(2, 2, [0, 0, 0]), solidTile(3, 2, [0, 0, 0])])).toThrow(/tile 1 is 3x2, tile 0 is 2x2/);
    expect(() => imageMosaic([{ pixels: [0, 0, 0], width: 2, height: 2 }])).toThrow(/expected 2x2x3 = 12/);
  });
});

describe("plotly rendering through Chromium", () => {
  it("finds Chromium", () => {
    expect(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run \`apt-get install -y chromium\` (or set MERGENET_CHROMIUM)`).toBe(true);
  });

  it("renders a heatmap to PNG and SVG", async () => {
    const fig = heatmap([[0, 1], [1, 0]], { title: "identity-ish" });
    expectPng(await plotlyToPng(fig));
    const svg = await plotlyToSvg(fig);
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("identity-ish");
  });

  it("renders a path at the requested size and scale", async () => {
    const png = await plotlyToPng(scatterPath([{ method: "a", x: 0, y: 0 }, { method: "a", x: 1, y: 2 }]), { width: 300, height: 200, scale: 2 });
    expectPng(png);
    const view = Buffer.from(png);
    expect([view.readUInt32BE(16), view.readUInt32BE(20)]).toEqual([600, 400]); // IHDR width, height
  });

  it("draws an image mosaic's pictures in the static PNG", async () => {
    const figure = imageMosaic([solidTile(8, 8, [255, 0, 0]), solidTile(8, 8, [0, 0, 255])], { scale: 4, gap: 4 });
    const png = PNG.sync.read(await plotlyToPng(figure, { scale: 1 }));
    expect([png.width, png.height]).toEqual([figure.layout?.width, figure.layout?.height]);
    // Centres of the two tiles: 5 px margin, tiles start 2 px into their 12-px cells, 4 screen px per image px.
    const [r, , b] = rgbAt(png, 5 + (2 + 4) * 4, 5 + 4 * 4);
    expect(r).toBeGreaterThan(200);
    expect(b).toBeLessThan(60);
    const [r2, , b2] = rgbAt(png, 5 + (12 + 2 + 4) * 4, 5 + 4 * 4);
    expect(r2).toBeLessThan(60);
    expect(b2).toBeGreaterThan(200);
  });

  it("rejects something that is not a figure", async () => {
    await expect(plotlyToPng({} as never)).rejects.toThrow(/data/);
  });
});

describe("saving figures", () => {
  it("writes name.svg and name.png and refuses paths as names", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-figures-"));
    const saved = await saveVegaLite(learningCurves(curveRows, { metric: "loss" }), "curves", dir);
    expect(fs.readFileSync(saved.svg, "utf8").startsWith("<svg")).toBe(true);
    expectPng(fs.readFileSync(saved.png));
    await expect(saveVegaLite(learningCurves(curveRows, { metric: "loss" }), "../escape", dir)).rejects.toThrow(/plain file name/);
    fs.rmSync(dir, { recursive: true });
  });
});

/** Notebook 01's methods: 14 names, long ones among them. */
const MANY_METHODS = [
  "target alone", "logit KD", "logit KD (pre-trained source)", "mutual learning", "naive sharing (copy)", "naive sharing (average)",
  "MergeNet hypernet", "control: random source", "MergeNet exact", "control: exact, random source", "MergeNet classifier pair",
  "control: classifier pair, random source", "MergeNet classifier pair (pre-trained source)", "control: classifier pair (pre-trained source), random source",
];
type ColorEncoding = { sort?: string[]; scale?: { domain: string[]; range: string[] }; legend?: { labelLimit?: number; symbolOpacity?: number } };
const colorOf = (spec: VegaLiteSpec, layer = 0): ColorEncoding => (layers(spec)[layer].encoding as unknown as { color: ColorEncoding }).color;
const curveRowsOf = (methods: string[], epochs: number): CurveRow[] =>
  methods.flatMap((method, k) => Array.from({ length: epochs }, (_, e) => ({ method, seed: 0, epoch: e + 1, value: 0.5 + 0.01 * k + 0.01 * e })));

describe("readable figures: whole labels, one colour per method, MergeNet beside its control", () => {
  it("methodOrder puts each control right after the variant it controls", () => {
    const order = methodOrder(MANY_METHODS);
    expect(order).toHaveLength(MANY_METHODS.length);
    for (const [variant, control] of [
      ["MergeNet hypernet", "control: random source"],
      ["MergeNet exact", "control: exact, random source"],
      ["MergeNet classifier pair", "control: classifier pair, random source"],
      ["MergeNet classifier pair (pre-trained source)", "control: classifier pair (pre-trained source), random source"],
    ]) expect(order.indexOf(control)).toBe(order.indexOf(variant) + 1);
    // Notebook 02's write-back variants, notebook 04's reference, notebook 05's "X: random source".
    expect(methodOrder(["control: head->entry, random source (matched write-back)", "MergeNet head->entry (matched write-back)", "MergeNet head->entry", "control: head->entry, random source"]))
      .toEqual(["MergeNet head->entry", "control: head->entry, random source", "MergeNet head->entry (matched write-back)", "control: head->entry, random source (matched write-back)"]);
    expect(methodOrder(["target alone", "control: random source", "MergeNet"])).toEqual(["MergeNet", "control: random source", "target alone"]);
    expect(methodOrder(["faithful: random source", "target alone", "faithful"])).toEqual(["faithful", "faithful: random source", "target alone"]);
  });

  it("categoryColors gives distinct colours up to 20", () => {
    for (const n of [1, 6, 10, 11, 14, 20]) expect(new Set(categoryColors(n)).size).toBe(n);
  });

  it("learningCurves: legend labels whole and opaque, colour domain without duplicates, pairs adjacent", () => {
    const spec = learningCurves(curveRowsOf(MANY_METHODS, 3), { metric: "acc", x: "epoch" });
    expect(() => compile(spec)).not.toThrow();
    for (const layer of [0, 1]) {
      const color = colorOf(spec, layer);
      expect(color.legend?.labelLimit).toBe(0);
      expect(color.legend?.symbolOpacity).toBe(1);
      expect(color.scale?.domain).toEqual(methodOrder(MANY_METHODS));
      expect(new Set(color.scale?.range).size).toBe(MANY_METHODS.length);
    }
  });

  it("learningCurves labels epochs with whole numbers only, also for short runs", async () => {
    const spec = learningCurves(curveRowsOf(["a", "b"], 3), { metric: "acc", x: "epoch" });
    const axis = (layers(spec)[0].encoding as unknown as { x: { axis?: { values?: number[] } } }).x.axis;
    expect(axis?.values).toEqual([1, 2, 3]);
    const svg = await vegaLiteToSvg(spec);
    expect(svg).not.toMatch(/>1\.[0-9]</);
    expect(integerTicks([1, 20])).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    expect(integerTicks([1, 15])).toHaveLength(15);
    for (const ticks of [integerTicks([0, 317]), integerTicks([1, 40])]) expect(ticks.every(Number.isInteger)).toBe(true);
  });

  it("no legend label is cut: the rendered SVG holds every full method name", async () => {
    const svg = await vegaLiteToSvg(groupedBars(MANY_METHODS.map((method, i) => ({ group: "CNN → MLP", method, mean: 0.8 + i / 100 }))));
    for (const name of MANY_METHODS) expect(svg).toContain(`>${name.replace(/&/g, "&amp;")}<`);
    expect(svg).not.toContain("…");
  });

  it("groupedBars: 14 methods get 14 colours, bars in the legend's order, whole labels (also through readableBars)", () => {
    const spec = readableBars(groupedBars(MANY_METHODS.map((method) => ({ group: "g", method, mean: 1 }))));
    const color = colorOf(spec);
    expect(new Set(color.scale?.range).size).toBe(14);
    expect(color.legend?.labelLimit).toBe(0);
    expect((layers(spec)[0].encoding as unknown as { xOffset: { sort: string[] } }).xOffset.sort).toEqual(color.scale?.domain);
  });

  it("effectsPlot keeps long row labels and series whole", async () => {
    const label = "MergeNet classifier pair (confirmation, seeds 10–19)";
    const svg = await vegaLiteToSvg(effectsPlot([{ label, series: "MergeNet − its control", mean: 0.01, low: 0, high: 0.02, delta: 0.01 }]));
    expect(svg).toContain(`${label}: MergeNet − its control`);
    expect(svg).not.toContain("…");
  });

  it("spectrumChart: MergeNet beside its control, each series its own colour and dash", async () => {
    const series = ["before training", "MergeNet, after training", "control: random source, after training", "target alone, after training"];
    const spec = spectrumChart(series.flatMap((s) => [1, 2, 3].map((index) => ({ series: s, index, mean: 3 - index / 2, std: 0.1, n: 3 }))));
    expect(() => compile(spec)).not.toThrow();
    const line = layers(spec)[1].encoding as unknown as { color: ColorEncoding; strokeDash: { scale: { range: number[][] } } };
    expect(line.color.scale?.domain.slice(0, 2)).toEqual(["MergeNet, after training", "control: random source, after training"]);
    expect(new Set(line.color.scale?.range).size).toBe(4);
    expect(new Set(line.strokeDash.scale.range.map((d) => d.join(","))).size).toBe(4);
    // Each series its own width, the first drawn widest (an ordinal scale: vega would otherwise interpolate).
    const widths = (layers(spec)[1].encoding as unknown as { strokeWidth: { scale: { type: string; range: number[] } } }).strokeWidth.scale;
    expect(widths.type).toBe("ordinal");
    expect(new Set(widths.range).size).toBe(4);
    expect([...widths.range].sort((a, b) => b - a)).toEqual(widths.range);
    expect(line.color.legend?.labelLimit).toBe(0);
    // The y axis spans the data, not whole decades around it.
    expect((layers(spec)[1].encoding as unknown as { y: { scale: { nice: boolean } } }).y.scale.nice).toBe(false);
    // The x axis starts at index 1 (not at 0) and ends at the last index (vega's default "nice" domain of 32 indices is [0, 35]).
    const long = spectrumChart(series.flatMap((s) => Array.from({ length: 32 }, (_, i) => ({ series: s, index: i + 1, mean: 3 - i / 32, std: 0.1, n: 3 }))));
    const view = new View(parse(compile(long).spec), { renderer: "none" });
    await view.runAsync();
    expect(view.scale("x").domain()).toEqual([1, 32]);
    view.finalize();
  });

  it("scatterPath: every method its own colour, marker and dash, MergeNet beside its control", () => {
    const fig = scatterPath(["target alone", "MergeNet", "control: random source"].flatMap((method) => [0, 1].map((step) => ({ method, x: step, y: step, step }))));
    expect(fig.data.map((t) => t.name)).toEqual(["MergeNet", "control: random source", "target alone"]);
    const styles = fig.data.map((t) => [(t.line as { color: string }).color, (t.line as { dash: string }).dash, (t.marker as { symbol: string[] }).symbol[1]]);
    for (const k of [0, 1, 2]) expect(new Set(styles.map((s) => s[k])).size).toBe(3);
  });

  it("attentionHeatmap: fixed scale centred on uniform, which the colour bar names", () => {
    const near = Array.from({ length: 10 }, (_, r) => Array.from({ length: 10 }, (_, c) => 0.1 + 0.003 * Math.sin(r + c)));
    const trace = attentionHeatmap(near).data[0] as { zmin: number; zmax: number; zauto: boolean; colorbar: { tickvals: number[]; ticktext: string[] } };
    expect(trace.zauto).toBe(false);
    expect(trace.zmin).toBeCloseTo(0, 12);
    expect(trace.zmax).toBeCloseTo(0.2, 12);
    expect(trace.colorbar.tickvals[1]).toBeCloseTo(0.1, 12);
    expect(trace.colorbar.ticktext[1]).toMatch(/uniform/);
    // A weight beyond 2/n widens the scale symmetrically, so uniform stays in the middle.
    const peaked = attentionHeatmap([[0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3]]).data[0] as { zmin: number; zmax: number };
    expect((peaked.zmin + peaked.zmax) / 2).toBeCloseTo(1 / 3, 12);
    expect(peaked.zmax).toBeCloseTo(0.9, 12);
    expect(() => heatmap([[1]], { zmin: 0 })).toThrow(/together/);
  });
});

describe("plotly titles fit their figure", () => {
  it("wraps a long title on spaces into lines that fit the width, and leaves a short one alone", () => {
    const long = "Adapter attention, rows→rows (target fc2 rows × source class rows)";
    const wrapped = wrapTitle(long, 520);
    const lines = wrapped.split("<br>");
    expect(lines.length).toBe(2);
    expect(lines.join(" ")).toBe(long); // nothing lost, only line breaks added
    lines.forEach((line) => expect(line.length * 17 * 0.55).toBeLessThanOrEqual(520 - 20));
    expect(wrapTitle("Short title", 520)).toBe("Short title");
  });

  it("heatmaps carry the wrapped title", () => {
    const fig = heatmap([[1, 2], [3, 4]], { title: "Adapter attention, rows→rows (target fc2 rows × source class rows)" });
    expect((fig.layout?.title as { text: string }).text).toContain("<br>");
  });
});
