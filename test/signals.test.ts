// Ctrl-C during runs far shorter than the loop's 50-step flush (quick mode's size): the run
// stops after the step in progress, says so, exits non-zero, and the same command resumes
// from that step, so no step is trained twice.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "vitest";

const root = path.resolve(__dirname, "..");
const script = path.join(root, "test", "fixtures", "short-run.ts");
const backends = ["tensorflow", "wasm"] as const;
/** 2 seeds × 3 epochs × 4 target batches. */
const TOTAL_STEPS = 24;
const env = (backend: string) => ({ ...process.env, MERGENET_BACKEND: backend, TF_CPP_MIN_LOG_LEVEL: "3" });
const steps = (text: string) => (text.match(/^STEP$/gm) ?? []).length;

const runToEnd = (dir: string, backend: string) => spawnSync(process.execPath, ["--import", "tsx", script, dir], { cwd: root, env: env(backend), encoding: "utf8", timeout: 60_000 });
const result = (stdout: string) => JSON.parse(stdout.split("\n").find((l) => l.startsWith("RESULT "))!.slice(7));

/** Sends SIGINT once `after` steps have started; resolves when the child exits. */
function interruptAfter(dir: string, backend: string, after: number): Promise<{ code: number | null; stderr: string; steps: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", script, dir], { cwd: root, env: env(backend) });
    let stdout = "";
    let stderr = "";
    let signalledAt = 0;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!signalledAt && steps(stdout) >= after) {
        signalledAt = Date.now();
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`the run did not stop; stderr:\n${stderr}`)); }, 60_000);
    child.on("exit", (code) => { clearTimeout(timer); resolve({ code, stderr, steps: steps(stdout), ms: Date.now() - signalledAt }); });
  });
}

describe.each(backends)("Ctrl-C during short runs (%s)", (backend) => {
  it("stops after the current step with a message and a non-zero exit; the same command resumes from that step", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-signal-"));
    const stopped = await interruptAfter(dir, backend, 6); // seed 1, in its second epoch
    expect(stopped.code, stopped.stderr).toBe(3);
    expect(stopped.stderr).toMatch(/SIGINT: the current run saves a checkpoint after its current step/);
    expect(stopped.stderr).toMatch(/interrupted: MergeNet seed 1 saved at step \d+ \(1 of 3 epochs done\) in .*; run the same command again to resume/);
    expect(stopped.steps).toBeLessThanOrEqual(7); // the step in progress, at most one more
    expect(stopped.ms).toBeLessThan(5000);

    const again = runToEnd(dir, backend);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/MergeNet seed 1: resuming from the checkpoint at step \d+/);
    expect(stopped.steps + steps(again.stdout)).toBe(TOTAL_STEPS); // no step trained twice, none skipped
    if (backend === "tensorflow") { // the backends differ in nothing here but speed; one comparison is enough
      const straight = runToEnd(fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-straight-")), backend);
      expect(result(again.stdout)).toEqual(result(straight.stdout)); // resumed mid-epoch, bit for bit
    }
  }, 90_000);
});
