// The README shows examples/quickstart.ts verbatim, and that example runs: the two cannot drift.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const root = path.resolve(__dirname, "..");

describe("README quick start", () => {
  const example = fs.readFileSync(path.join(root, "examples", "quickstart.ts"), "utf8");

  it("is the example file, word for word", () => {
    const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
    const block = readme.match(/```ts\n(import \{ MergeNetTrainer[\s\S]*?)```/);
    expect(block, "README has a ```ts block starting with the quick start's import").not.toBeNull();
    expect(block![1]).toBe(example);
  });

  it("runs and prints two epochs with accuracies well above chance", () => {
    const out = execFileSync(path.join(root, "node_modules", ".bin", "tsx"), [path.join(root, "examples", "quickstart.ts")], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, MERGENET_LOG: "silent" },
    });
    const epochs = [...out.matchAll(/epoch (\d): source ([\d.]+), target ([\d.]+)/g)];
    expect(epochs.map((m) => m[1])).toEqual(["0", "1"]);
    for (const m of epochs) {
      expect(Number(m[2])).toBeGreaterThan(0.5);
      expect(Number(m[3])).toBeGreaterThan(0.5);
    }
  });
});
