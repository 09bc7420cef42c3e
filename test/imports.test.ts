// Imports the notebook kernel (tslab) can resolve, and the notebooks' one way into the library.
//
// tslab type-checks a cell with TypeScript's node10 resolution but runs it with its own loader,
// which maps a path without an extension to <path>.js and resolves no folder to its index: so
// `import ... from "../backend"` compiles with tsc and runs under vitest and tsx, and fails in a
// notebook cell with "Cannot find module". Hence every relative import of src/ names a file, and
// the notebooks' "./src" works through src.ts at the repository root (the kernel's directory),
// which is checked here in a real kernel.
//
// What a notebook may import (code cells; `import`, `export ... from`, require() and import()):
// - "./src", the public index (src/index.ts through src.ts): no deep "./src/...", no
//   side-effect imports (importing "./src" registers the scenarios);
// - Node's built-in modules ("fs", "node:path");
// - packages the project depends on (package.json), except TensorFlow.js itself: `tf` comes
//   from "./src", whose backend module is the one place that loads it and picks the backend.
// Anything else (another relative path, an undeclared package) fails.
import { builtinModules } from "module";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { runNotebooks } from "../scripts/run-notebooks";

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

/** Every module a piece of code loads: import and export-from statements, require() and import() calls. */
function loadedModules(code: string): string[] {
  return [...importPaths(code), ...[...code.matchAll(/\b(?:require|import)\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g)].map((m) => m[1])];
}

const isFile = (resolved: string): boolean => fs.existsSync(`${resolved}.ts`) || (fs.existsSync(resolved) && fs.statSync(resolved).isFile());

interface Notebook {
  cells: { cell_type: string; source: string[] | string; outputs?: { output_type: string; name?: string; text?: string[] | string }[] }[];
}

const text = (value: string[] | string | undefined): string => (Array.isArray(value) ? value.join("") : (value ?? ""));

/** A notebook's code cells with their index among all its cells (as run-notebooks reports a cell). */
function notebookCode(file: string): { cell: number; code: string }[] {
  const notebook = JSON.parse(fs.readFileSync(file, "utf8")) as Notebook;
  return notebook.cells.flatMap((c, cell) => (c.cell_type === "code" ? [{ cell, code: text(c.source) }] : []));
}

const DEPENDENCIES = (() => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
  return new Set(Object.keys({ ...pkg.dependencies, ...pkg.devDependencies }));
})();

/** Why a notebook may not import `spec`, or undefined when it may (see the file's comment). */
function forbiddenImport(spec: string): string | undefined {
  if (spec === "./src") return undefined;
  if (spec.startsWith("./src/")) return `a deep import: import it from "./src" (src/index.ts exports what notebooks need)`;
  if (spec.startsWith(".") || spec.startsWith("/")) return `a path outside the public index: import from "./src"`;
  if (spec.startsWith("node:") || builtinModules.includes(spec.split("/")[0])) return undefined;
  const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
  if (name.startsWith("@tensorflow/")) return `TensorFlow.js directly: use \`tf\` from "./src" (src/backend loads it and picks the backend)`;
  if (!DEPENDENCIES.has(name)) return `package '${name}' is not a dependency in package.json`;
  return undefined;
}

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

  it("the rule for notebook imports: ./src, Node built-ins and declared packages other than TensorFlow.js", () => {
    expect(forbiddenImport("./src")).toBeUndefined();
    expect(forbiddenImport("fs")).toBeUndefined();
    expect(forbiddenImport("node:path")).toBeUndefined();
    expect(forbiddenImport("ml-matrix")).toBeUndefined();
    expect(forbiddenImport("./src/experiments/runner")).toMatch(/deep import/);
    expect(forbiddenImport("./src/index")).toMatch(/deep import/);
    expect(forbiddenImport("../src")).toMatch(/outside the public index/);
    expect(forbiddenImport("@tensorflow/tfjs")).toMatch(/TensorFlow\.js directly/);
    expect(forbiddenImport("left-pad")).toMatch(/not a dependency/);
    expect(loadedModules('import { a } from "./src";\nimport "./src/x";\nconst fs = require("fs");\nawait import("./src/y");')).toEqual(["./src", "./src/x", "fs", "./src/y"]);
  });

  it("every notebook imports the library from ./src only (no deep or side-effect imports of src/)", () => {
    const notebooks = fs.readdirSync(path.join(REPO, "notebooks")).filter((f) => f.endsWith(".ipynb")).sort();
    expect(notebooks.length).toBeGreaterThan(0);
    const problems = notebooks.flatMap((name) =>
      notebookCode(path.join(REPO, "notebooks", name)).flatMap(({ cell, code }) => {
        const sideEffects = new Set([...code.matchAll(/^\s*import\s+"(\.[^"]*)"/gm)].map((m) => m[1]));
        return loadedModules(code).flatMap((spec) => {
          const why = sideEffects.has(spec) && spec !== "./src" ? `a side-effect import: importing "./src" does what it did (it registers the scenarios)` : forbiddenImport(spec);
          return why ? [`${name}, cell ${cell}: "${spec}" is ${why}`] : [];
        });
      }),
    );
    expect(problems, `run: python3 /work/notes/nb-imports-rewrite.py notebooks/NN-name.ipynb (or fix by hand)\n${problems.join("\n")}`).toEqual([]);
  });

  it('"./src" resolves in a real notebook kernel: names, types, namespaces and the scenarios, in later cells too', async () => {
    expect(fs.existsSync(path.join(REPO, ".venv", "bin", "python")), "no .venv: run `npm run jupyter:setup`").toBe(true);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-nb-src-"));
    const file = path.join(dir, "src-import.ipynb");
    const cells = [
      [
        'import { initBackend, tf, scenarioNames, getScenario, crossArchitecture, analysis, ablations as cfg, type ExperimentConfig } from "./src";',
        "const backend = await initBackend();",
        "const config: ExperimentConfig = crossArchitecture.cnnToMlp();",
        "console.log(JSON.stringify({ backend: backend.name, scenarios: scenarioNames(), config: config.name, gainStats: typeof analysis.gainStats, reference: cfg.REFERENCE, sum: tf.tensor([1, 2, 3]).sum().dataSync()[0] }));",
      ].join("\n"),
      // A later cell sees the first cell's imports, as notebooks use them.
      'console.log(`later: ${typeof getScenario(config.scenario).build}`);',
    ];
    const notebook = {
      cells: cells.map((source) => ({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source })),
      metadata: { kernelspec: { name: "mergenet-ts", display_name: "TypeScript (MergeNet)", language: "typescript" } },
      nbformat: 4,
      nbformat_minor: 5,
    };
    fs.writeFileSync(file, JSON.stringify(notebook));
    await runNotebooks([file], { cellTimeoutSeconds: 300 });
    const saved = JSON.parse(fs.readFileSync(file, "utf8")) as Notebook;
    const printed = saved.cells.map((c) => (c.outputs ?? []).filter((o) => o.name === "stdout").map((o) => text(o.text)).join(""));
    const first = JSON.parse(printed[0].trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
    expect(first).toMatchObject({ config: "01-cnn-to-mlp", gainStats: "function", reference: "MergeNet", sum: 6 });
    expect(first.scenarios).toEqual(expect.arrayContaining(["image-cnn-to-x", "sentiment-site", "brown-pos-genre", "emoji-image-text", "digits-image-audio", "positive-control"]));
    expect(printed[1]).toContain("later: function");
    fs.rmSync(dir, { recursive: true });
  }, 400_000);
});
