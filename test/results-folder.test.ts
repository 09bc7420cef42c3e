// The results folder under a hostile but realistic use (issue 19): not writable, full, shared
// by two processes running the same experiment, holding a hand-edited result.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runExperiment } from "../src/experiments/runner";
import { runFile } from "../src/experiments/run-files";
import { type ExperimentConfig } from "../src/experiments/records";
import { registerTinyScenario } from "./helpers/tiny";

registerTinyScenario("folder-tiny");
const root = path.resolve(__dirname, "..");
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-folder-"));
const config = (extra: Partial<ExperimentConfig> = {}): ExperimentConfig => ({
  name: "folder", scenario: "folder-tiny", scenarioOptions: {}, epochs: 2, seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }], ...extra,
});
const options = (resultsDir: string) => ({ resultsDir, progress: false, workers: 1 });

/** Everything the runner logs (stderr) while `fn` runs. */
async function logged<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: Error; log: string }> {
  let log = "";
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => ((log += chunk.toString()), true));
  try {
    return { value: await fn(), log };
  } catch (err) {
    return { error: err as Error, log };
  } finally {
    spy.mockRestore();
  }
}

/** Makes the CommonJS `fs` (which the runner's `import * as fs` reads through) fail `name` on paths that match. */
function failing(name: "writeFileSync" | "mkdirSync", code: string, matches: (file: string) => boolean): void {
  const cjs = require("fs") as Record<string, unknown>;
  const original = cjs[name] as (...args: unknown[]) => unknown;
  cjs[name] = (...args: unknown[]) => {
    if (!matches(String(args[0]))) return original(...args);
    if (name === "writeFileSync") original(args[0], "{\"partial\":"); // a full disk takes part of the write
    throw Object.assign(new Error(`${code}: simulated, ${name} '${args[0]}'`), { code });
  };
  require("module").syncBuiltinESMExports();
  restore.push(() => {
    cjs[name] = original;
    require("module").syncBuiltinESMExports();
  });
}
const restore: (() => void)[] = [];
afterEach(() => restore.splice(0).forEach((undo) => undo()));

describe("the results folder", () => {
  it("is checked before the first run: not writable, named, nothing trained", async () => {
    const file = path.join(tmp(), "a-file");
    fs.writeFileSync(file, "");
    await expect(runExperiment(config(), options(path.join(file, "results")))).rejects.toThrow(/the results folder .*a-file\/results is not writable \(ENOTDIR\)/);
    const dir = tmp();
    failing("writeFileSync", "EACCES", (f) => f.startsWith(dir));
    await expect(runExperiment(config(), options(dir))).rejects.toThrow(new RegExp(`the results folder ${dir} is not writable \\(EACCES\\); fix its permissions`));
  });

  it("a failed write names the run and leaves no temporary file (nor its lock) behind", async () => {
    const dir = tmp();
    failing("writeFileSync", "ENOSPC", (f) => f.includes(".tmp-"));
    await expect(runExperiment(config(), options(dir))).rejects.toThrow(/\[folder\] 'target alone' seed 0 trained, but its result could not be written to .*seed-0\.json \(ENOSPC\)/);
    const left = fs.readdirSync(path.join(dir, "runs", "folder", "target-alone"));
    expect(left).toEqual([]); // no *.tmp-<pid>, no lock
  });

  it("a cached result whose content contradicts its configuration is named as damaged and redone", async () => {
    const dir = tmp();
    const first = await runExperiment(config(), options(dir));
    const file = runFile(dir, first.config, first.config.methods[0], 0);
    fs.writeFileSync(file, JSON.stringify({ ...first.runs[0], epochs: [] })); // right hash, no epochs
    const second = await logged(() => runExperiment(config(), options(dir)));
    expect(second.log).toMatch(/result file .*seed-0\.json is damaged \(it holds 0 epochs, not 2, though its hash is this configuration's\); rerunning that run only/);
    expect(second.value!.runs[0].epochs.length).toBe(2);
    expect(second.value!.runs[0].createdAt).not.toBe(first.runs[0].createdAt);
  });

  it("a stale lock left by a dead process is taken over", async () => {
    const dir = tmp();
    const file = runFile(dir, config(), config().methods[0], 0);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const dead = await new Promise<number>((resolve) => { const child = spawn("true"); child.on("exit", () => resolve(child.pid!)); });
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: dead, host: os.hostname(), since: "earlier" }));
    const run = await logged(() => runExperiment(config(), options(dir)));
    expect(run.error).toBeUndefined();
    expect(run.log).toMatch(new RegExp(`target alone seed 0: taking over the lock of process ${dead}, which no longer runs`));
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
    expect(fs.existsSync(file)).toBe(true);
  });

  it("two processes running the same experiment into one folder train each run once", async () => {
    const dir = tmp();
    const script = path.join(root, "test", "fixtures", "short-run.ts");
    const start = () => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", script, dir], { cwd: root, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "3" } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("exit", (code) => resolve({ code, stdout, stderr }));
    });
    const [a, b] = await Promise.all([start(), start()]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const steps = (s: string) => (s.match(/^STEP$/gm) ?? []).length;
    expect(steps(a.stdout) + steps(b.stdout)).toBe(24); // 2 runs × 3 epochs × 4 steps, each trained once
    const result = (s: string) => s.split("\n").find((l) => l.startsWith("RESULT "));
    expect(result(a.stdout)).toBe(result(b.stdout));
  }, 60_000);
});
