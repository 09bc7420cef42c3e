// The local worker pool (src/experiments/pool.ts): a run's result does not depend on the number
// of workers (same thread setting); a run that fails in a worker fails the experiment as in a
// serial run; a worker that dies has its run retried once; SIGINT stops the pool and the same
// command resumes; no worker process outlives the experiment; two submitters of the same
// experiment train each run once (run locks); a worker on another backend refuses the run.
//
// This file's process trains its serial runs with one TensorFlow thread, as the workers do: the
// variable is set before the backend loads (test/setup.ts initialises it after this file is read).
process.env.TF_NUM_INTRAOP_THREADS = "1";

import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { backendInfo } from "../src/backend";
import { runExperiment } from "../src/experiments/runner";
import { processorId, RUNNER_VERSION, runFile, runHash } from "../src/experiments/run-files";
import { LocalPool } from "../src/experiments/pool";
import { Progress } from "../src/experiments/progress";
import { expectSameResultFiles, POOL_SCENARIOS, tinyExperiment, withoutTimes } from "./helpers/run-files";
import { registerTinyScenario } from "./helpers/tiny";
import "./fixtures/pool-scenarios";

const root = path.resolve(__dirname, "..");
const MODULE = POOL_SCENARIOS;
const config = tinyExperiment;
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-pool-"));

/** pid -> [parent pid, state] of every process (Linux /proc). */
function processTable(): Map<number, [number, string]> {
  const table = new Map<number, [number, string]>();
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      table.set(Number(name), [Number(ppid), state]);
    } catch {
      // the process ended meanwhile
    }
  }
  return table;
}

function descendants(pid: number, table = processTable()): number[] {
  const found: number[] = [];
  const frontier = [pid];
  while (frontier.length) {
    const parent = frontier.pop()!;
    for (const [child, [ppid]] of table) if (ppid === parent) (found.push(child), frontier.push(child));
  }
  return found;
}

/** Alive: exists and is not a zombie (an orphan's zombie stays if PID 1 does not reap it; it runs nothing). */
const alive = (pids: number[]) => {
  const table = processTable();
  return pids.filter((pid) => table.has(pid) && table.get(pid)![1] !== "Z");
};

/** Everything written to stderr (the runner's log and progress) while `fn` runs; `onChunk` sees each piece as it comes. */
async function logged<T>(fn: () => Promise<T>, onChunk: (chunk: string) => void = () => undefined): Promise<{ value: T; log: string }> {
  let log = "";
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    log += String(chunk);
    onChunk(String(chunk));
    return true;
  });
  try {
    return { value: await fn(), log };
  } finally {
    vi.restoreAllMocks();
  }
}

/** The files of one method's folder (result files, and whatever else: locks, temporary files). */
const filesOf = (dir: string, experiment: string, method: string) => {
  const folder = path.join(dir, "runs", experiment, method);
  return fs.existsSync(folder) ? fs.readdirSync(folder).sort() : [];
};

/** Records every descendant of `pid` that appears until stop() (polled every 20 ms), except those present at the start. */
function watchDescendants(pid = process.pid): { stop(): number[] } {
  const before = new Set(descendants(pid));
  const seen = new Set<number>();
  const poll = () => descendants(pid).forEach((p) => !before.has(p) && seen.add(p));
  const timer = setInterval(poll, 20);
  return {
    stop() {
      clearInterval(timer);
      poll();
      return [...seen];
    },
  };
}

// test/setup.ts pins MERGENET_WORKERS=1 for the suite; tests here that change it put it back.
const suiteWorkers = process.env.MERGENET_WORKERS;
afterEach(() => {
  vi.restoreAllMocks();
  if (suiteWorkers === undefined) delete process.env.MERGENET_WORKERS;
  else process.env.MERGENET_WORKERS = suiteWorkers;
});

describe("the local worker pool", () => {
  it("gives the same result files, bit for bit, with 2 workers as serially, and leaves no process behind", async () => {
    const serialDir = tmp();
    const poolDir = tmp();
    const serial = await runExperiment(config(), { resultsDir: serialDir, progress: false, workers: 1 });
    const watch = watchDescendants();
    const pooled = await runExperiment(config(), { resultsDir: poolDir, progress: false, workers: 2, scenarioModules: [MODULE] });
    const seen = watch.stop();
    expect(seen.length).toBeGreaterThanOrEqual(2); // the two workers (and whatever they started)
    expect(alive(seen)).toEqual([]);

    expectSameResultFiles(serialDir, poolDir, 8);
    expect(serial.runs.every((r) => r.threads === "1") && pooled.runs.every((r) => r.threads === "1")).toBe(true);
    expect(withoutTimes(pooled.runs)).toEqual(withoutTimes(serial.runs)); // the same order, the same values

    // Asked again: every run is cached, and no worker starts.
    const again = watchDescendants();
    const cached = await runExperiment(config(), { resultsDir: poolDir, progress: false, workers: 2, scenarioModules: [MODULE] });
    expect(again.stop()).toEqual([]);
    expect(cached.runs.map((r) => r.createdAt)).toEqual(pooled.runs.map((r) => r.createdAt));
  });

  it("fails as a serial run does when a run throws in a worker, stops the other workers, and keeps finished files", async () => {
    const dir = tmp();
    const watch = watchDescendants();
    const cfg = config({ name: "pool-fail", scenario: "pool-tiny-faulty", scenarioOptions: { failSeed: 1 }, seeds: [0, 1, 2], methods: [{ name: "target alone", kind: "target-alone" }] });
    await expect(runExperiment(cfg, { resultsDir: dir, progress: false, workers: 2, scenarioModules: [MODULE] })).rejects.toThrow(
      /^\[pool-fail\] 'target alone' seed 1 failed: deliberate failure for seed 1$/,
    );
    expect(alive(watch.stop())).toEqual([]);
    const folder = path.join(dir, "runs", "pool-fail", "target-alone");
    const files = fs.existsSync(folder) ? fs.readdirSync(folder) : [];
    expect(files.every((f) => /^seed-[02]\.json$/.test(f))).toBe(true); // complete results only, never seed 1, no temporary file
  });

  it("retries the run of a worker that died (SIGKILL) once on a new worker, with the same result", async () => {
    const dir = tmp();
    const marker = path.join(dir, "died-once");
    const cfg = config({ name: "pool-die-once", scenario: "pool-tiny-faulty", scenarioOptions: { die: marker }, seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }] });
    const warnings: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (warnings.push(String(chunk)), true));
    const watch = watchDescendants();
    const pooled = await runExperiment(cfg, { resultsDir: dir, progress: false, workers: 2, scenarioModules: [MODULE] });
    expect(alive(watch.stop())).toEqual([]);
    vi.restoreAllMocks();
    expect(fs.existsSync(marker)).toBe(true); // a worker did die
    expect(warnings.join("")).toMatch(/worker 1 died \(killed by SIGKILL\) while training 'target alone' seed 0; that run starts again on a new worker/);
    const serial = await runExperiment(cfg, { resultsDir: tmp(), progress: false }); // dying happens only in pool workers
    expect(withoutTimes(pooled.runs)).toEqual(withoutTimes(serial.runs));
  });

  it("fails naming the run when its worker dies twice", async () => {
    const cfg = config({ name: "pool-die-always", scenario: "pool-tiny-faulty", scenarioOptions: { die: "always" }, seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }] });
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const watch = watchDescendants();
    await expect(runExperiment(cfg, { resultsDir: tmp(), progress: false, workers: 2, scenarioModules: [MODULE] })).rejects.toThrow(
      /^\[pool-die-always\] 'target alone' seed 0 failed: its worker process died twice \(the last time: killed by SIGKILL\)/,
    );
    expect(alive(watch.stop())).toEqual([]);
  });

  it("stops on SIGINT (workers killed, finished runs kept, nothing half-written), and the same command resumes", async () => {
    const dir = tmp();
    const script = path.join(root, "test", "fixtures", "pool-run.ts");
    const env = { ...process.env, MERGENET_LOG: "silent", TF_CPP_MIN_LOG_LEVEL: "3" };
    const first = await new Promise<{ code: number | null; stderr: string; seen: number[] }>((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", script, dir, "2"], { cwd: root, env });
      const watch = watchDescendants(child.pid);
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/\] 1\/6 /.test(stderr) && !child.killed) child.kill("SIGINT");
      });
      const timer = setTimeout(() => (child.kill("SIGKILL"), reject(new Error(`the pooled run did not stop:\n${stderr}`))), 60_000);
      child.on("exit", (code) => (clearTimeout(timer), resolve({ code, stderr, seen: watch.stop() })));
    });
    expect(first.code, first.stderr).toBe(3);
    expect(first.stderr).toMatch(/interrupted: stopped the 2 worker processes; the runs they were training \(.+ seed \d(, .+ seed \d)?\) start over when run again; the \d runs finished in this session are saved; run the same command again to resume/);
    expect(first.seen.length).toBeGreaterThanOrEqual(2);
    expect(alive(first.seen)).toEqual([]);
    const saved = (folder: string) => (fs.existsSync(folder) ? fs.readdirSync(folder) : []);
    const files = ["target-alone", "mergenet"].flatMap((m) => saved(path.join(dir, "runs", "pool-interrupt", m)));
    expect(files.length).toBeGreaterThanOrEqual(1);
    expect(files.every((f) => /^seed-\d\.json$/.test(f))).toBe(true);

    const again = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", script, dir, "2"], { cwd: root, env });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("exit", (code) => resolve({ code, stdout, stderr }));
    });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(new RegExp(`\\[pool-interrupt\\] 6 runs \\(${6 - files.length} trained, ${files.length} cached.*\\) in \\d+s with 2 workers`));
    expect(again.stdout).toMatch(/^RESULT /m);
  });

  it("leaves no worker behind when the experiment's own process is killed (SIGKILL)", async () => {
    const script = path.join(root, "test", "fixtures", "pool-run.ts");
    const env = { ...process.env, MERGENET_LOG: "silent", TF_CPP_MIN_LOG_LEVEL: "3" };
    const child = spawn(process.execPath, ["--import", "tsx", script, tmp(), "2"], { cwd: root, env });
    const watch = watchDescendants(child.pid);
    await new Promise<void>((resolve, reject) => {
      let stderr = "";
      const timer = setTimeout(() => reject(new Error(`no run finished:\n${stderr}`)), 60_000);
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/\] 1\/6 /.test(stderr)) (clearTimeout(timer), resolve());
      });
    });
    const workers = watch.stop();
    expect(workers.length).toBeGreaterThanOrEqual(2);
    child.kill("SIGKILL");
    // The workers see their channel to the parent close and exit (at their next await, within a step).
    const deadline = Date.now() + 15_000;
    while (alive(workers).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(alive(workers)).toEqual([]);
  });

  it("refuses a worker count that is not a whole number >= 1, and a scenario the workers cannot register", async () => {
    await expect(runExperiment(config(), { resultsDir: tmp(), workers: 0 })).rejects.toThrow("RunOptions.workers must be a whole number >= 1, got 0");
    process.env.MERGENET_WORKERS = "two";
    await expect(runExperiment(config(), { resultsDir: tmp() })).rejects.toThrow('MERGENET_WORKERS must be a whole number >= 1, got "two"');
    process.env.MERGENET_WORKERS = "1";
    registerTinyScenario("pool-parent-only");
    const watch = watchDescendants();
    await expect(runExperiment(config({ name: "pool-unknown", scenario: "pool-parent-only", seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }] }), { resultsDir: tmp(), progress: false, workers: 2 })).rejects.toThrow(
      /'target alone' seed 0 failed: scenario 'pool-parent-only' is not registered in the worker process, which imports src\/experiments\/scenarios and RunOptions.scenarioModules/,
    );
    expect(alive(watch.stop())).toEqual([]);
  });

  it("trains each run once when two submitters run the same experiment into one folder at once (run locks), and both return the same files", async () => {
    const dir = tmp();
    const builds = path.join(tmp(), "builds");
    const cfg = config({ name: "pool-twice", scenario: "pool-tiny-faulty", scenarioOptions: { builds } });
    const options = { resultsDir: dir, progress: false, workers: 2, scenarioModules: [MODULE] };
    const watch = watchDescendants();
    const { value: [a, b], log } = await logged(() => Promise.all([runExperiment(cfg, options), runExperiment(cfg, options)]));
    expect(alive(watch.stop())).toEqual([]);
    // Every instance a worker built is one run trained: 4 methods x 2 seeds, once each in all.
    expect(fs.readFileSync(builds, "utf8").trim().split("\n").sort()).toEqual(["0", "0", "0", "0", "1", "1", "1", "1"]);
    expect(log).toMatch(/another process \(pid \d+ on .+\) is training this run into .+; waiting for its result rather than training it twice/);
    // Both hold the runs of the same files (the one that waited read them): same creation times, same values.
    expect(a.runs.map((r) => r.createdAt)).toEqual(b.runs.map((r) => r.createdAt));
    expect(withoutTimes(b.runs.map((r) => JSON.parse(JSON.stringify(r))))).toEqual(withoutTimes(a.runs.map((r) => JSON.parse(JSON.stringify(r)))));
    for (const method of ["target-alone", "mergenet", "control-random-source", "kd"]) expect(filesOf(dir, "pool-twice", method)).toEqual(["seed-0.json", "seed-1.json"]); // no lock left
  });

  it("waits for a run another live process holds, and trains it in a further round when that process dies without its result", async () => {
    const dir = tmp();
    const cfg = config({ name: "pool-held", seeds: [0, 1], methods: [{ name: "target alone", kind: "target-alone" }] });
    const file = runFile(dir, cfg, cfg.methods[0], 0);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const holder = spawn("sleep", ["600"]);
    const gone = new Promise((resolve) => holder.on("exit", resolve));
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: holder.pid, host: os.hostname(), since: "earlier" }));
    const waiting = new RegExp(`target alone seed 0: another process \\(pid ${holder.pid} on ${os.hostname()}, since earlier\\) is training this run into ${dir}; waiting for its result rather than training it twice`);
    try {
      const { value, log } = await logged(
        () => runExperiment(cfg, { resultsDir: dir, progress: true, workers: 2, scenarioModules: [MODULE] }),
        (chunk) => waiting.test(chunk) && holder.kill("SIGKILL"), // the holder dies while this process waits for it
      );
      expect(log).toMatch(waiting);
      expect(log).toMatch(new RegExp(`target alone seed 0: taking over the lock of process ${holder.pid}, which no longer runs`));
      expect(log).toMatch(/\[pool-held\] 2 runs \(2 trained, 0 cached\)/);
      expect(value.runs.map((r) => r.seed)).toEqual([0, 1]);
      expect(filesOf(dir, "pool-held", "target-alone")).toEqual(["seed-0.json", "seed-1.json"]);
    } finally {
      holder.kill("SIGKILL");
      await gone;
    }
  });

  it("has a worker on another TensorFlow backend than the submitter's refuse the run, naming both and what to do", async () => {
    const cfg = config({ name: "pool-backend", seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }] });
    const method = cfg.methods[0];
    const mine = backendInfo()!.name;
    const other = mine === "wasm" ? "cpu" : "wasm"; // e.g. a submitter on native TensorFlow whose worker fell back to wasm
    const job = { key: 0, config: cfg, method, seed: 0, resultsDir: tmp(), configHash: runHash(cfg, method, 0), runnerVersion: RUNNER_VERSION, backend: other };
    const finished = vi.fn();
    const watch = watchDescendants();
    await expect(new LocalPool({ workers: 1, threadsPerWorker: 1, modules: [MODULE] }).run([job], { started: () => undefined, epoch: () => undefined, finished }, new AbortController().signal)).rejects.toThrow(
      new RegExp(`^\\[pool-backend\\] 'target alone' seed 0 failed: the worker runs TensorFlow on the '${mine}' backend, the submitter on '${other}', and a run's results differ between backends; start the worker on '${other}' \\(MERGENET_BACKEND=${other}; .+\\), or submit from a process on '${mine}'$`),
    );
    expect(finished).not.toHaveBeenCalled();
    expect(alive(watch.stop())).toEqual([]);
  });

  it("warns when an experiment's runs mix TensorFlow thread settings, and not otherwise", async () => {
    const dir = tmp();
    const cfg = config({ name: "pool-threads", seeds: [0, 1], methods: [{ name: "target alone", kind: "target-alone" }] });
    const first = await logged(() => runExperiment(cfg, { resultsDir: dir, progress: false }));
    expect(first.value.runs.map((r) => r.threads)).toEqual(["1", "1"]);
    expect(first.log).not.toMatch(/mix TensorFlow thread settings/);
    const file = (seed: number) => runFile(dir, cfg, cfg.methods[0], seed);
    fs.writeFileSync(file(0), JSON.stringify({ ...JSON.parse(fs.readFileSync(file(0), "utf8")), threads: "4" })); // as if trained with 4 threads
    fs.rmSync(file(1));
    const second = await logged(() => runExperiment(cfg, { resultsDir: dir, progress: false }));
    expect(second.value.runs.map((r) => r.threads)).toEqual(["4", "1"]);
    expect(second.log).toMatch(/\[pool-threads\] the runs mix TensorFlow thread settings \(1 with 4 threads, 1 with 1 thread\): results of different settings differ in their last bits/);
    const cached = await logged(() => runExperiment(cfg, { resultsDir: dir, progress: false })); // nothing trained: nothing newly mixed in
    expect(cached.log).not.toMatch(/mix TensorFlow thread settings/);
  });

  it("records each run's processor and warns when an experiment's runs come from two kinds", async () => {
    const dir = tmp();
    const cfg = config({ name: "pool-processors", seeds: [0, 1], methods: [{ name: "target alone", kind: "target-alone" }] });
    const first = await logged(() => runExperiment(cfg, { resultsDir: dir, progress: false }));
    expect(first.value.runs.map((r) => r.processor)).toEqual([processorId(), processorId()]);
    expect(first.log).not.toMatch(/different processors/);
    const file = (seed: number) => runFile(dir, cfg, cfg.methods[0], seed);
    fs.writeFileSync(file(0), JSON.stringify({ ...JSON.parse(fs.readFileSync(file(0), "utf8")), processor: "Another CPU (family 1, model 2, stepping 3)" }));
    fs.rmSync(file(1));
    const second = await logged(() => runExperiment(cfg, { resultsDir: dir, progress: false }));
    expect(second.log).toContain(`[pool-processors] the runs were trained on different processors (1 on Another CPU (family 1, model 2, stepping 3), 1 on ${processorId()})`);
  });

  it("prints one line per finished run naming its worker, and the number of workers in the closing line", () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (err.push(String(chunk)), true));
    const p = new Progress("exp", 3, true);
    p.cached("a seed 0", 5);
    p.setWorkers(2);
    p.start("b seed 0", 1);
    p.start("b seed 1", 2);
    p.done("accuracy 0.5", "b seed 1");
    p.done("accuracy 0.6", "b seed 0");
    p.finish();
    vi.restoreAllMocks();
    expect(err.join("")).toMatch(
      /^\[exp\] 1\/3 a seed 0: cached\n\[exp\] 2\/3 b seed 1: accuracy 0\.5 \(\d+s, worker 2, ETA 0s\)\n\[exp\] 3\/3 b seed 0: accuracy 0\.6 \(\d+s, worker 1, ETA 0s\)\n\[exp\] 3 runs \(2 trained, 1 cached, which took 5s to train when they ran\) in \d+s with 2 workers\n$/,
    );
  });
});
