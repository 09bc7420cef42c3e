// SIGTERM during a run: the run saves a checkpoint at its epoch's end and stops; running the
// same command again resumes, and the final metrics equal those of an uninterrupted run.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "vitest";

const root = path.resolve(__dirname, "..");
// `node --import tsx` (not the tsx wrapper, which is a second process): the signal reaches the run itself.
const node = process.execPath;
const nodeArgs = (dir: string) => ["--import", "tsx", script, dir];
const script = path.join(root, "test", "fixtures", "interruptible-run.ts");
const env = { ...process.env, MERGENET_LOG: "silent", TF_CPP_MIN_LOG_LEVEL: "3" };

function runToEnd(dir: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(node, nodeArgs(dir), { cwd: root, env, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the run and sends SIGTERM after `afterEpochs` evaluations. */
function runAndInterrupt(dir: string, afterEpochs: number): Promise<{ code: number | null; stderr: string; epochsSeen: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, nodeArgs(dir), { cwd: root, env });
    let epochs = 0;
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      epochs += (chunk.toString().match(/EPOCH/g) ?? []).length;
      if (epochs >= afterEpochs && !child.killed) child.kill("SIGTERM");
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error("the interrupted run did not stop")); }, 120_000);
    child.on("exit", (code) => { clearTimeout(timer); resolve({ code, stderr, epochsSeen: epochs }); });
  });
}

const result = (stdout: string) => JSON.parse(stdout.split("\n").find((l) => l.startsWith("RESULT "))!.slice(7));

describe("interrupting a run", () => {
  it("checkpoints on SIGTERM, resumes on the next run, and ends exactly where an uninterrupted run does", async () => {
    const straightDir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-straight-"));
    const straight = runToEnd(straightDir);
    expect(straight.code, straight.stderr).toBe(0);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-interrupted-"));
    const stopAt = 2 + Math.floor(Math.random() * 6); // somewhere in epochs 2..7 of 12
    const interrupted = await runAndInterrupt(dir, stopAt);
    expect(interrupted.code).toBe(3);
    expect(interrupted.stderr).toMatch(/interrupted: MergeNet seed 5 saved at step \d+ \(\d+ of 12 epochs done\) in .*checkpoints.*; run the same command again to resume/);
    expect(fs.readdirSync(path.join(dir, "checkpoints", "interrupt", "mergenet")).length).toBe(1);

    const resumed = runToEnd(dir);
    expect(resumed.code, resumed.stderr).toBe(0);
    const epochsAfterResume = (resumed.stdout.match(/EPOCH/g) ?? []).length;
    expect(epochsAfterResume).toBeLessThan(12); // it did not start over
    expect(result(resumed.stdout)).toEqual(result(straight.stdout));
    expect(fs.readdirSync(path.join(dir, "checkpoints", "interrupt", "mergenet")).length).toBe(0); // removed once the run finished
  });
});
