/**
 * Where results go. Default mode writes under results/; quick mode (MERGENET_QUICK=1, what
 * CI and `npm start -- --quick` use) under results/quick/, so a quick check never
 * overwrites the reproduction's runs, figures or report.
 */
import * as path from "path";

export const REPO_ROOT = path.resolve(__dirname, "..");

export function resultsRoot(): string {
  const base = path.join(REPO_ROOT, "results");
  return process.env.MERGENET_QUICK === "1" ? path.join(base, "quick") : base;
}

export function figuresDir(): string {
  return path.join(resultsRoot(), "figures");
}
