// The notebooks' kernel (tslab) resolves no folder to its index.ts: `import ... from "../backend"`
// compiles with tsc and runs under vitest and tsx, and fails in a notebook cell with "Cannot find
// module". So every relative import of src/, and every "./src/..." import of a notebook's code
// cells, names a file.
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const REPO = path.resolve(__dirname, "..");

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(file);
    return entry.name.endsWith(".ts") ? [file] : [];
  });
}

/** The module paths of a text's import and export-from statements. */
function importPaths(text: string): string[] {
  return [...text.matchAll(/(?:from|import)\s+"([^"]+)"/g)].map((m) => m[1]);
}

const isFile = (resolved: string): boolean => fs.existsSync(`${resolved}.ts`) || (fs.existsSync(resolved) && fs.statSync(resolved).isFile());

describe("imports a notebook kernel can resolve", () => {
  it("every relative import in src/ names a file, not a folder", () => {
    const folders = sourceFiles(path.join(REPO, "src")).flatMap((file) =>
      importPaths(fs.readFileSync(file, "utf8"))
        .filter((p) => p.startsWith("."))
        .filter((p) => !isFile(path.resolve(path.dirname(file), p)))
        .map((p) => `${path.relative(REPO, file)}: ${p}`),
    );
    expect(folders).toEqual([]);
  });

  it("every ./src/ import of a notebook's code cells names a file", () => {
    const notebooks = fs.readdirSync(path.join(REPO, "notebooks")).filter((f) => f.endsWith(".ipynb"));
    expect(notebooks.length).toBeGreaterThan(0);
    const unresolved = notebooks.flatMap((name) => {
      const notebook = JSON.parse(fs.readFileSync(path.join(REPO, "notebooks", name), "utf8")) as { cells: { cell_type: string; source: string[] | string }[] };
      const code = notebook.cells.filter((c) => c.cell_type === "code").map((c) => (Array.isArray(c.source) ? c.source.join("") : c.source)).join("\n");
      return importPaths(code)
        .filter((p) => p.startsWith("./src/"))
        .filter((p) => !isFile(path.join(REPO, p)))
        .map((p) => `${name}: ${p}`);
    });
    expect(unresolved).toEqual([]);
  });
});
