/**
 * The index of saved figures and tables that `npm start` turns into results/REPORT.md:
 * every figure and table a notebook saves is recorded here with one line on what it shows.
 * The index is <results>/report-index.json (see src/paths.ts), keyed by name, rewritten atomically.
 */
import * as fs from "fs";
import * as path from "path";
import { resultsRoot } from "../paths";

export interface ReportEntry {
  /** File stem, e.g. "01-cnn-to-mlp-bars"; its leading number names the notebook. */
  name: string;
  kind: "figure" | "table";
  /** One line on what it shows. */
  caption: string;
  /** For figures: image path relative to results/ (PNG); for tables: the markdown itself. */
  content: string;
}

function indexFile(root: string): string {
  return path.join(root, "report-index.json");
}

export function readReportIndex(root = resultsRoot()): Record<string, ReportEntry> {
  const file = indexFile(root);
  if (!fs.existsSync(file)) return {};
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, ReportEntry>;
  } catch {
    throw new Error(`${file} is damaged (not valid JSON); delete it and rerun the notebooks (npm start) to rebuild it`);
  }
}

/** Adds or replaces one entry. */
export function recordReportEntry(entry: ReportEntry, root = resultsRoot()): void {
  if (!entry.caption || !entry.caption.trim()) {
    throw new Error(`'${entry.name}' is saved for the report but has no caption: give one line on what it shows`);
  }
  const index = readReportIndex(root);
  index[entry.name] = entry;
  fs.mkdirSync(root, { recursive: true });
  const tmp = `${indexFile(root)}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(index, null, 1));
  fs.renameSync(tmp, indexFile(root));
}

/** REPORT.md: entries grouped by notebook number, in name order. */
export function buildReport(index: Record<string, ReportEntry>, header: string): string {
  const entries = Object.values(index).sort((a, b) => a.name.localeCompare(b.name));
  const lines = [header, ""];
  let section = "";
  for (const e of entries) {
    const nb = e.name.split("-")[0];
    if (nb !== section) {
      section = nb;
      lines.push(`## Notebook ${nb}`, "");
    }
    lines.push(`### ${e.name}`, "", e.caption, "");
    lines.push(e.kind === "figure" ? `![${e.name}](${e.content})` : e.content, "");
  }
  return `${lines.join("\n")}\n`;
}
