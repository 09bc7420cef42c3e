// No notebook in notebooks/ exceeds 1.5 MB. Executed notebooks are committed, so every
// re-execution adds a notebook's whole size to the repository's history; notebook 03 once held
// 6.3 MB because two image mosaics stored their pixels as nested JSON lists (pictures are now
// PNG data URIs, src/plots/images.ts). A figure that needs more belongs in results/figures/.
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const NOTEBOOKS = path.resolve(__dirname, "..", "notebooks");
const LIMIT_BYTES = 1_500_000; // 1.5 MB, decimal

/** Each code cell's share of a notebook, largest first, to say where the bytes are. */
function largestCells(file: string): string {
  const notebook = JSON.parse(fs.readFileSync(file, "utf8")) as { cells: { cell_type: string; source: string[] | string; outputs?: unknown[] }[] };
  return notebook.cells
    .map((cell, index) => ({ index, bytes: Buffer.byteLength(JSON.stringify(cell.outputs ?? [], null, 1)), first: (Array.isArray(cell.source) ? cell.source.join("") : cell.source).split("\n")[0] }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 3)
    .map((c) => `cell ${c.index} outputs ${(c.bytes / 1e6).toFixed(2)} MB (${JSON.stringify(c.first.slice(0, 60))})`)
    .join("; ");
}

describe("notebook size", () => {
  it("every notebook in notebooks/ is at most 1.5 MB", () => {
    const files = fs.readdirSync(NOTEBOOKS).filter((f) => f.endsWith(".ipynb")).sort();
    expect(files.length).toBeGreaterThan(0);
    const tooLarge = files
      .map((name) => ({ name, bytes: fs.statSync(path.join(NOTEBOOKS, name)).size }))
      .filter((f) => f.bytes > LIMIT_BYTES)
      .map((f) => `${f.name}: ${(f.bytes / 1e6).toFixed(2)} MB > 1.5 MB; largest: ${largestCells(path.join(NOTEBOOKS, f.name))}`);
    expect(tooLarge).toEqual([]);
  });
});
