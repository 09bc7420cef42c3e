/**
 * Plot builders for pictures and spectrograms: pure functions from pixel and matrix data to
 * plotly figures (like src/plots/specs.ts, they never touch a model or a tensor).
 *
 * Design choices:
 * - A grid of small pictures is ONE plotly `image` trace over a mosaic the builder assembles
 *   (tiles on a white background), with each tile's caption as text annotations below it: one
 *   trace exports quickly and keeps every tile at the same scale, where one subplot per tile
 *   would need dozens of axes.
 * - The mosaic is stored as an image: a PNG data URI in the trace's `source` (plotly's image
 *   trace draws it as it would draw `z`), encoded with pngjs. As `z`, nested lists of RGB
 *   triples, a 500 × 150 mosaic took 3.4 MB of notebook JSON (one line per number); as a PNG it
 *   takes a few kilobytes. No hover values: the figure shows pictures, not data.
 * - Pixels stay square and sharp: the figure's size is the mosaic's size times `scale` screen
 *   pixels per image pixel, with the axes pinned to the mosaic's extent.
 * - Spectrogram panels share one colour scale (`zmin`/`zmax` over all panels), so panels can be
 *   compared by colour; the lowest mel band is drawn at the bottom, as in any spectrogram.
 */
import { PNG } from "pngjs";
import type { PlotlyFigure } from "./render";
import { wrapTitle } from "./specs";

/** One picture of a mosaic. */
export interface ImageTile {
  /** RGB bytes 0..255 (rounded and clamped to that range), row-major [height, width, 3]. */
  pixels: ArrayLike<number>;
  width: number;
  height: number;
  /** Lines of text under the picture. */
  caption?: string[];
  /** Colour of each caption line (CSS), default dark grey. */
  captionColors?: string[];
}

export interface MosaicOptions {
  /** Tiles per row (default: all in one row). */
  columns?: number;
  title?: string;
  /** Screen pixels per image pixel (default 3). */
  scale?: number;
  /** Image pixels between tiles (default: half a tile's width). */
  gap?: number;
  /** Font size of captions in screen pixels (default 10). */
  fontSize?: number;
}

/** A grid of pictures with captions under each (see the module comment). */
export function imageMosaic(tiles: ImageTile[], options: MosaicOptions = {}): PlotlyFigure {
  if (!Array.isArray(tiles) || tiles.length === 0) throw new Error("imageMosaic: give at least one tile");
  const { width, height } = tiles[0];
  tiles.forEach((tile, i) => {
    if (tile.width !== width || tile.height !== height) throw new Error(`imageMosaic: tile ${i} is ` +
        `${tile.width}x${tile.height}, tile 0 is ${width}x${height}; all tiles must have one size`);
    if (tile.pixels.length !== width * height * 3) throw new Error(`imageMosaic: tile ${i} has ${tile.pixels.length} ` +
        `values, expected ${width}x${height}x3 = ${width * height * 3} (RGB bytes)`);
  });
  const columns = Math.min(options.columns ?? tiles.length, tiles.length);
  if (!Number.isInteger(columns) || columns < 1) throw new Error(`imageMosaic: columns must be a whole number >= 1, got ${options.columns}`);
  const scale = options.scale ?? 3;
  const fontSize = options.fontSize ?? 10;
  const gap = options.gap ?? Math.round(width / 2);
  const lines = Math.max(0, ...tiles.map((t) => t.caption?.length ?? 0));
  const captionHeight = Math.ceil((lines * fontSize * 1.3) / scale) + 2; // image pixels below each tile
  const cellWidth = width + gap;
  const cellHeight = height + captionHeight + 2;
  const rows = Math.ceil(tiles.length / columns);
  const mosaicWidth = columns * cellWidth;
  const mosaicHeight = rows * cellHeight;
  // RGBA, row-major, white and opaque.
  const mosaic = new PNG({ width: mosaicWidth, height: mosaicHeight });
  mosaic.data.fill(255);
  const annotations: Record<string, unknown>[] = [];
  tiles.forEach((tile, i) => {
    const left = (i % columns) * cellWidth + Math.floor(gap / 2);
    const top = Math.floor(i / columns) * cellHeight;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = (y * width + x) * 3;
        const q = ((top + y) * mosaicWidth + left + x) * 4;
        for (let c = 0; c < 3; c++) mosaic.data[q + c] = Math.max(0, Math.min(255, Math.round(tile.pixels[p + c])));
      }
    }
    (tile.caption ?? []).forEach((text, line) => {
      annotations.push({
        x: left + width / 2 - 0.5, y: top + height + 1 + (line * fontSize * 1.3) / scale, xref: "x", yref: "y",
        text, showarrow: false, xanchor: "center", yanchor: "top",
        font: { size: fontSize, color: tile.captionColors?.[line] ?? "#333333" },
      });
    });
  });
  const title = options.title ? wrapTitle(options.title, mosaicWidth * scale + 10) : undefined;
  const margin = { l: 5, r: 5, t: title ? 40 + 22 * (title.split("<br>").length - 1) : 5, b: 5 };
  return {
    data: [{ type: "image", source: pngDataUri(mosaic), hoverinfo: "skip" }],
    layout: {
      ...(title ? { title: { text: title } } : {}),
      xaxis: { visible: false, range: [-0.5, mosaicWidth - 0.5] },
      yaxis: { visible: false, range: [mosaicHeight - 0.5, -0.5] },
      annotations,
      margin,
      width: mosaicWidth * scale + margin.l + margin.r,
      height: mosaicHeight * scale + margin.t + margin.b,
    },
  };
}

/** An RGBA picture as a PNG data URI (what plotly's image trace reads from `source`). */
function pngDataUri(picture: PNG): string {
  return `data:image/png;base64,${PNG.sync.write(picture, { colorType: 2 }).toString("base64")}`;
}

/** One spectrogram: `matrix` is [bands][frames], row 0 the LOWEST band. */
export interface SpectrogramPanel {
  title: string;
  matrix: number[][];
}

export interface SpectrogramOptions {
  title?: string;
  /** Colour bar title, e.g. "ln energy". */
  valueLabel?: string;
  xLabel?: string;
  yLabel?: string;
  /** Figure height in pixels (default 320). */
  height?: number;
}

/** Spectrograms side by side on one shared colour scale (see the module comment). */
export function spectrogramPanels(panels: SpectrogramPanel[], options: SpectrogramOptions = {}): PlotlyFigure {
  if (!Array.isArray(panels) || panels.length === 0) throw new Error("spectrogramPanels: give at least one panel");
  let zmin = Infinity;
  let zmax = -Infinity;
  panels.forEach((panel, i) => {
    const cols = panel.matrix[0]?.length ?? 0;
    if (panel.matrix.length === 0 || cols === 0) throw new Error(`spectrogramPanels: panel ${i} ('${panel.title}') has an empty matrix`);
    panel.matrix.forEach((row, r) => {
      if (row.length !== cols) throw new Error(`spectrogramPanels: panel ${i} row ${r} has ${row.length} columns, row 0 has ${cols}`);
      for (const v of row) {
        if (!Number.isFinite(v)) throw new Error(`spectrogramPanels: panel ${i} holds a non-finite value (${v})`);
        zmin = Math.min(zmin, v);
        zmax = Math.max(zmax, v);
      }
    });
  });
  const n = panels.length;
  const spacing = 0.04;
  const width = (1 - spacing * (n - 1)) / n;
  const data: Record<string, unknown>[] = [];
  const figureWidth = Math.max(360, 220 * n + 120);
  const layout: Record<string, unknown> = {
    ...(options.title ? { title: { text: wrapTitle(options.title, figureWidth) } } : {}),
    width: figureWidth,
    height: options.height ?? 320,
    annotations: [] as Record<string, unknown>[],
  };
  panels.forEach((panel, i) => {
    const suffix = i === 0 ? "" : String(i + 1);
    const start = i * (width + spacing);
    data.push({
      type: "heatmap", z: panel.matrix, zmin, zmax, colorscale: "Viridis", xaxis: `x${suffix}`, yaxis: `y${suffix}`,
      showscale: i === n - 1, ...(options.valueLabel ? { colorbar: { title: { text: options.valueLabel } } } : {}),
    });
    layout[`xaxis${suffix}`] = { domain: [start, start + width], anchor: `y${suffix}`, title: { text: options.xLabel ?? "frame" } };
    layout[`yaxis${suffix}`] = { anchor: `x${suffix}`, ...(i === 0 ? { title: { text: options.yLabel ?? "mel band" } } : { showticklabels: false }) };
    (layout.annotations as Record<string, unknown>[]).push({
      text: panel.title, x: start + width / 2, y: 1.02, xref: "paper", yref: "paper", xanchor: "center", yanchor: "bottom", showarrow: false,
    });
  });
  return { data, layout };
}
