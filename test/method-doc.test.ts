// docs/METHOD.md is the one description of the method that users can read: nothing in the repository
// may cite the team's former working spec (a file users never see), and every section ("§3b") and
// anchor ("#3b-controls") cited of METHOD.md must land on a heading of the document.
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const root = path.resolve(__dirname, "..");
const methodFile = path.join(root, "docs", "METHOD.md");

/** The former spec's name as a whole word (not SPECTRAL_..., not WHEEL_..., not "spec" of a chart); built from parts so this file does not match itself. */
const OLD_SPEC = new RegExp(`\\b${"SP" + "EC"}\\b`);
const SECTION_CITATION = /METHOD\.md\s*§\s*(\d+[a-z]?)\b/g;
const ANCHOR_CITATION = /METHOD\.md#([\w-]+)/g;

/** Every file below `dir` (relative to the root), recursively. */
function filesUnder(dir: string): string[] {
  const full = path.join(root, dir);
  if (!fs.existsSync(full)) return [];
  return fs.readdirSync(full, { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(relative) : [relative];
  });
}

/** What a reader sees of a file, in parts named for messages: a notebook's cell sources (not its outputs), any other file's text. */
function readable(file: string): { where: string; text: string }[] {
  const text = fs.readFileSync(path.join(root, file), "utf8");
  if (!file.endsWith(".ipynb")) return [{ where: file, text }];
  const notebook = JSON.parse(text) as { cells: { source: string | string[] }[] };
  return notebook.cells.map((cell, i) => ({ where: `${file} cell ${i}`, text: Array.isArray(cell.source) ? cell.source.join("") : cell.source }));
}

/** Each line of the files that matches `pattern`, as "file:line: text" ("file cell N:line: text" in a notebook). */
function linesMatching(files: string[], pattern: RegExp): string[] {
  return files.flatMap((file) =>
    readable(file).flatMap(({ where, text }) =>
      text.split("\n").flatMap((line, i) => (pattern.test(line) ? [`${where}:${i + 1}: ${line.trim()}`] : [])),
    ),
  );
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, "").replace(/ /g, "-");
}

const sourceFiles = [...filesUnder("src"), ...filesUnder("test"), ...filesUnder("scripts"), ...filesUnder("examples"), "README.md", "data/README.md"];
const notebookFiles = filesUnder("notebooks").filter((file) => file.endsWith(".ipynb"));

describe("docs/METHOD.md", () => {
  it("exists, with numbered sections (## 1. ..., ## 3b. ...), each heading once", () => {
    expect(fs.existsSync(methodFile), "docs/METHOD.md is missing").toBe(true);
    const headings = [...fs.readFileSync(methodFile, "utf8").matchAll(/^## (.+?)\s*$/gm)].map((m) => m[1]);
    const sections = headings.map((h) => /^(\d+[a-z]?)\. /.exec(h)?.[1]).filter((s): s is string => s !== undefined);
    expect(sections).toEqual(expect.arrayContaining(["1", "2", "3", "3a", "3b", "3c", "4", "5", "7", "8"]));
    expect(new Set(headings).size, `repeated headings: ${headings}`).toBe(headings.length);
  });

  it("is what src/, test/, scripts/, examples/, README.md and data/README.md cite, never the former working spec", () => {
    expect(linesMatching(sourceFiles, OLD_SPEC)).toEqual([]);
  });

  it("is what the notebooks' cells cite, never the former working spec (fails until /work/notes/spec-cite-rewrite.py has run on them)", () => {
    expect(notebookFiles.length).toBeGreaterThan(0);
    expect(linesMatching(notebookFiles, OLD_SPEC)).toEqual([]);
  });

  it("has a heading for every section and anchor that the code, tests, scripts, README, notebooks and the document itself cite", () => {
    const text = fs.readFileSync(methodFile, "utf8");
    const headings = [...text.matchAll(/^#{1,6} (.+?)\s*$/gm)].map((m) => m[1]);
    const sections = new Set(headings.map((h) => /^(\d+[a-z]?)\. /.exec(h)?.[1]));
    const anchors = new Set(headings.map(slug));
    const missing: string[] = [];
    const cited = { sections: 0, anchors: 0 };
    for (const { where, text: content } of [...sourceFiles, ...notebookFiles, "docs/METHOD.md"].flatMap(readable)) {
      for (const m of content.matchAll(SECTION_CITATION)) {
        cited.sections++;
        if (!sections.has(m[1])) missing.push(`${where}: METHOD.md §${m[1]}`);
      }
      for (const m of content.matchAll(ANCHOR_CITATION)) {
        cited.anchors++;
        if (!anchors.has(m[1])) missing.push(`${where}: METHOD.md#${m[1]}`);
      }
    }
    for (const m of text.matchAll(/\]\(#([\w-]+)\)/g)) if (!anchors.has(m[1])) missing.push(`docs/METHOD.md: link #${m[1]}`);
    expect(missing).toEqual([]);
    expect(cited.sections).toBeGreaterThan(10);
    expect(cited.anchors).toBeGreaterThan(0);
  });
});
