// Runs as jobs on BullMQ across machines (src/experiments/queue.ts, queue-worker.ts), with the
// real parts: Debian's redis-server, started here on 127.0.0.1 at a free port without
// persistence, and `scripts/worker.ts` processes as `npm run worker` starts them. Results
// through Redis equal a serial run's files bit for bit (same thread setting); a worker killed
// with SIGKILL mid-run loses nothing and no run is written twice; an unreachable URL fails
// within seconds, naming it; a worker of other code or on another backend refuses the run, in
// words that reach the submitter; two submitters of one experiment train each run once; Ctrl-C
// in the submitter stops it and the same command resumes.
//
// redis-server missing: every test here fails, saying to run `bash scripts/setup-system.sh`.
//
// This file's process trains its serial runs with one TensorFlow thread, as the workers do: the
// variable is set before the backend loads (test/setup.ts initialises it after this file is read).
process.env.TF_NUM_INTRAOP_THREADS = "1";

import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Queue } from "bullmq";
import IORedis from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { backendInfo } from "../src/backend/index";
import { freePort, startLocalQueue, startLocalRedis, startWorkerProcess, type LocalRedis, type QueueWorkerProcess } from "../src/experiments/local-redis";
import { checkRedis, JOBS_QUEUE, RedisExecutor, resolveRedis } from "../src/experiments/queue";
import { runExperiment } from "../src/experiments/runner";
import { RUNNER_VERSION, runHash } from "../src/experiments/run-files";
import { expectSameResultFiles, POOL_SCENARIOS, resultFiles, tinyExperiment, withoutTimes } from "./helpers/run-files";
import "./fixtures/pool-scenarios";

const root = path.resolve(__dirname, "..");
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-queue-"));

let redis: LocalRedis | undefined;
const workers: QueueWorkerProcess[] = [];

/** A queue worker with short locks, so a killed one's run moves on within about 2 s. */
async function startWorker(): Promise<QueueWorkerProcess> {
  const worker = startWorkerProcess(redis!.url, {
    MERGENET_QUEUE_LOCK_MS: "1500",
    MERGENET_QUEUE_STALLED_MS: "500",
    MERGENET_BACKEND: backendInfo()?.name,
    TF_CPP_MIN_LOG_LEVEL: "3",
    MERGENET_LOG: "", // its "started" lines are read here
  });
  workers.push(worker);
  await worker.waitFor(/waiting for runs on/);
  return worker;
}

/** Redis and two workers; each test awaits it, so a missing redis-server fails every test (a failed beforeAll would only skip them). */
let setUp: Promise<void>;
beforeAll(() => {
  setUp = (async () => {
    redis = await startLocalRedis();
    await Promise.all([startWorker(), startWorker()]);
  })();
  return setUp.catch(() => undefined);
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await redis?.stop();
});

describe("runs as jobs on BullMQ (Redis)", () => {
  it("gives the same result files, bit for bit, through Redis with 2 workers as serially; cached runs need no Redis", async () => {
    await setUp;
    const serialDir = tmp();
    const queueDir = tmp();
    const serial = await runExperiment(tinyExperiment(), { resultsDir: serialDir, progress: false });
    const queued = await runExperiment(tinyExperiment(), { resultsDir: queueDir, progress: false, redis: redis!.url, scenarioModules: [POOL_SCENARIOS] });
    expectSameResultFiles(serialDir, queueDir, 8);
    expect(serial.runs.every((r) => r.threads === "1") && queued.runs.every((r) => r.threads === "1")).toBe(true);
    // Results through the queue are JSON, as cached runs are: compare with the serial run's files.
    expect(withoutTimes(queued.runs)).toEqual(withoutTimes(serial.runs.map((r) => JSON.parse(JSON.stringify(r)))));
    expect(workers.every((w) => /: started/.test(w.stderr()))).toBe(true); // both took runs

    const cached = await runExperiment(tinyExperiment(), { resultsDir: queueDir, progress: false, redis: `redis://127.0.0.1:${await freePort()}` });
    expect(cached.runs.map((r) => r.createdAt)).toEqual(queued.runs.map((r) => r.createdAt));
  });

  it("fails within seconds on an unreachable Redis, naming the URL and what to do (submitter and worker)", async () => {
    await setUp;
    const url = `redis://127.0.0.1:${await freePort()}`;
    const message = new RegExp(`cannot reach Redis at ${url} \\(.+\\): start a Redis server there .* or give the right URL with --redis / MERGENET_REDIS`);
    const started = Date.now();
    await expect(runExperiment(tinyExperiment({ name: "queue-unreachable" }), { resultsDir: tmp(), progress: false, redis: url })).rejects.toThrow(message);
    expect(Date.now() - started).toBeLessThan(5000);
    await expect(runExperiment(tinyExperiment(), { resultsDir: tmp(), progress: false, redis: "http://127.0.0.1:6379" })).rejects.toThrow(/is not a Redis URL \(it must start with redis:\/\/ or rediss:\/\/\)/);

    const worker = startWorkerProcess(url);
    const code = await new Promise<number | null>((resolve) => worker.child.once("exit", resolve));
    expect(code).toBe(1);
    expect(worker.stderr()).toMatch(message);
  });

  it("takes the Redis URL from the option, else from MERGENET_REDIS unless a number of workers is chosen in code", () => {
    const saved = process.env.MERGENET_REDIS;
    try {
      process.env.MERGENET_REDIS = "redis://env:6379";
      expect(resolveRedis("redis://option:6379", 1)).toBe("redis://option:6379");
      expect(resolveRedis()).toBe("redis://env:6379");
      expect(resolveRedis(undefined, 1)).toBeUndefined(); // workers: 1 in a notebook cell stays in its process
      delete process.env.MERGENET_REDIS;
      expect(resolveRedis()).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.MERGENET_REDIS;
      else process.env.MERGENET_REDIS = saved;
    }
  });

  it("has a worker of other code or on another TensorFlow backend refuse the run, and the submitter fail with the worker's words", async () => {
    await setUp;
    const config = tinyExperiment({ name: "queue-version", seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }] });
    const method = config.methods[0];
    const executor = await RedisExecutor.open({ url: redis!.url, experiment: config.name, resultsDir: tmp(), modules: [POOL_SCENARIOS] });
    const hooks = { started: () => undefined, epoch: () => undefined, finished: () => undefined };
    const job = { key: 0, config, method, seed: 0, resultsDir: tmp(), configHash: runHash(config, method, 0), runnerVersion: RUNNER_VERSION + 1, backend: backendInfo()!.name };
    await expect(executor.run([job], hooks, new AbortController().signal)).rejects.toThrow(
      new RegExp(`^\\[queue-version\\] 'target alone' seed 0 failed: worker .+:\\d+ refused the run: the worker's runner version ${RUNNER_VERSION} differs from the submitter's ${RUNNER_VERSION + 1}; run the same code on both$`),
    );
    await expect(executor.run([{ ...job, runnerVersion: RUNNER_VERSION, configHash: "0123456789abcdef" }], hooks, new AbortController().signal)).rejects.toThrow(
      /^\[queue-version\] 'target alone' seed 0 failed: worker .+:\d+ refused the run: the worker computes another configuration hash for this run than the submitter: its code differs; run the same code on both$/,
    );
    // A submitter on native TensorFlow whose workers fell back to wasm, say (the workers run on this process's backend).
    const mine = backendInfo()!.name;
    const other = mine === "wasm" ? "cpu" : "wasm";
    await expect(executor.run([{ ...job, runnerVersion: RUNNER_VERSION, backend: other }], hooks, new AbortController().signal)).rejects.toThrow(
      new RegExp(`^\\[queue-version\\] 'target alone' seed 0 failed: worker .+:\\d+ refused the run: the worker runs TensorFlow on the '${mine}' backend, the submitter on '${other}', and a run's results differ between backends; start the worker on '${other}' \\(MERGENET_BACKEND=${other}; .+\\), or submit from a process on '${mine}'$`),
    );
  });

  it("has two submitters of one experiment into one folder train each run once: each takes only its own runs' results from their shared results queue", async () => {
    await setUp;
    const dir = tmp();
    const from = workers.map((w) => w.stderr().length);
    const started = () => workers.flatMap((w, i) => w.stderr().slice(from[i]).match(/'target alone' seed \d of queue-two: started/g) ?? []).sort();
    const options = { resultsDir: dir, progress: false, redis: redis!.url, scenarioModules: [POOL_SCENARIOS] };
    const one = (seeds: number[], delayMs: number) => tinyExperiment({ name: "queue-two", scenario: "pool-tiny-faulty", scenarioOptions: { delayMs }, seeds, methods: [{ name: "target alone", kind: "target-alone" }] });
    // Other runs at once (a slow one and a quick one, on one worker each): the quick one's result arrives while both listen.
    const [slow, quick] = await Promise.all([runExperiment(one([0], 400), options), runExperiment(one([1], 0), options)]);
    expect([slow.runs[0].seed, quick.runs[0].seed]).toEqual([0, 1]);
    expect(started()).toEqual(["'target alone' seed 0 of queue-two: started", "'target alone' seed 1 of queue-two: started"]);
    // The same runs at once: the second waits for the first's locks and reads its files.
    from.splice(0, from.length, ...workers.map((w) => w.stderr().length));
    const [a, b] = await Promise.all([runExperiment(one([2, 3], 0), options), runExperiment(one([2, 3], 0), options)]);
    expect(started()).toEqual(["'target alone' seed 2 of queue-two: started", "'target alone' seed 3 of queue-two: started"]);
    expect(b.runs.map((r) => r.createdAt)).toEqual(a.runs.map((r) => r.createdAt));
    expect(fs.readdirSync(path.join(dir, "runs", "queue-two", "target-alone")).sort()).toEqual([0, 1, 2, 3].map((s) => `seed-${s}.json`)); // no lock left
  });

  it("stops on SIGINT (waiting runs withdrawn, finished runs kept) and the same command resumes", async () => {
    await setUp;
    const dir = tmp();
    const script = path.join(root, "test", "fixtures", "pool-run.ts");
    const env = { ...process.env, MERGENET_LOG: "silent", TF_CPP_MIN_LOG_LEVEL: "3" };
    const submit = (interrupt: boolean) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", script, dir, "1", redis!.url], { cwd: root, env });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => {
          stderr += chunk.toString();
          if (interrupt && /\] 1\/6 /.test(stderr) && !child.killed) child.kill("SIGINT");
        });
        const timer = setTimeout(() => (child.kill("SIGKILL"), reject(new Error(`the submitter did not end:\n${stderr}`))), 60_000);
        child.on("exit", (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
      });
    const first = await submit(true);
    expect(first.code, first.stderr).toBe(3);
    expect(first.stderr).toMatch(/interrupted: withdrew the \d runs waiting in the Redis queue(; the \d runs in training on workers \(.+\) finish there, and their results are collected when you run the same command again)?; the \d runs finished in this session are saved; run the same command again to resume/);
    const saved = ["target-alone", "mergenet"].flatMap((m) => {
      const folder = path.join(dir, "runs", "pool-interrupt", m);
      return fs.existsSync(folder) ? fs.readdirSync(folder) : [];
    });
    expect(saved.length).toBeGreaterThanOrEqual(1);
    expect(saved.length).toBeLessThan(6);
    expect(saved.every((f) => /^seed-\d\.json$/.test(f))).toBe(true);

    const again = await submit(false);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(new RegExp(`\\[pool-interrupt\\] 6 runs \\(${6 - saved.length} trained, ${saved.length} cached.*\\) in \\d+s`));
    expect(again.stdout).toMatch(/^RESULT /m);
  });

  it("queues again the runs a Redis forgot (restarted without persistence: here FLUSHALL mid-experiment)", async () => {
    await setUp;
    const config = tinyExperiment({ name: "queue-forgot", scenario: "pool-tiny-faulty", scenarioOptions: { delayMs: 200 }, seeds: [0, 1, 2, 3, 4], methods: [{ name: "target alone", kind: "target-alone" }] });
    const dir = tmp();
    const lines: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      if (/\] 1\/5 /.test(String(chunk))) void flush.flushall();
      return true;
    });
    const flush = new IORedis(redis!.url);
    process.env.MERGENET_QUEUE_WATCH_MS = "300";
    try {
      const queued = await runExperiment(config, { resultsDir: dir, progress: true, redis: redis!.url, scenarioModules: [POOL_SCENARIOS] });
      expect(queued.runs.map((r) => r.seed)).toEqual([0, 1, 2, 3, 4]);
      expect(lines.join("")).toMatch(/'target alone' seed \d is no longer in the Redis queue \(Redis restarted, or its failure went unreported\); queued again/);
      expect(fs.readdirSync(path.join(dir, "runs", "queue-forgot", "target-alone")).sort()).toEqual([0, 1, 2, 3, 4].map((s) => `seed-${s}.json`));
    } finally {
      delete process.env.MERGENET_QUEUE_WATCH_MS;
      vi.restoreAllMocks();
      flush.disconnect();
    }
  });

  it("finishes an experiment with 2 workers while one is killed (SIGKILL) mid-run: nothing lost, each run written once", async () => {
    await setUp;
    const config = tinyExperiment({ name: "queue-kill", scenario: "pool-tiny-faulty", scenarioOptions: { delayMs: 300 }, seeds: [0, 1, 2], methods: [{ name: "target alone", kind: "target-alone" }] });
    const dir = tmp();
    const lines: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
    const victim = workers[0];
    const killed = victim.waitFor(/: started/, { from: victim.stderr().length }).then(() => victim.child.kill("SIGKILL"));
    try {
      const queued = await runExperiment(config, { resultsDir: dir, progress: true, redis: redis!.url, scenarioModules: [POOL_SCENARIOS] });
      await killed;
      expect(victim.child.signalCode).toBe("SIGKILL");
      const text = lines.join("");
      expect(text).toMatch(/a worker stopped answering while training 'target alone' seed \d \(it died, or lost Redis\); BullMQ gives that run to another worker/);
      const done = text.split("\n").filter((l) => /^\[queue-kill\] \d\/3 /.test(l));
      expect(done.map((l) => l.match(/seed \d/)![0]).sort()).toEqual(["seed 0", "seed 1", "seed 2"]); // each run once
      vi.restoreAllMocks();
      const serialDir = tmp();
      const serial = await runExperiment(config, { resultsDir: serialDir, progress: false });
      expect(resultFiles(dir)).toEqual(resultFiles(serialDir));
      expect(withoutTimes(queued.runs)).toEqual(withoutTimes(serial.runs.map((r) => JSON.parse(JSON.stringify(r)))));
    } finally {
      vi.restoreAllMocks();
    }
  });
});

describe("the private queue of `npm start` (startLocalQueue)", () => {
  /** Polls `check` every 200 ms until it holds, failing after `seconds`. */
  async function until(check: () => Promise<boolean> | boolean, seconds: number, what: string): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`not within ${seconds} s: ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it("starts Redis and N listening workers, echoes their lines, restarts one that dies, and stops everything", async () => {
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), write(chunk)));
    const queue = await startLocalQueue({ workers: 2, threads: 1, env: { MERGENET_BACKEND: backendInfo()?.name, TF_CPP_MIN_LOG_LEVEL: "3", MERGENET_LOG: "" } });
    const jobs = new Queue(JOBS_QUEUE, { connection: { host: new URL(queue.url).hostname, port: Number(new URL(queue.url).port) } });
    const started = queue.pids();
    try {
      expect(started).toHaveLength(2);
      expect(await jobs.getWorkersCount()).toBe(2);
      expect(lines.join("")).toMatch(/\[queue worker 1\] .*waiting for runs on/);
      expect(lines.join("")).toMatch(/\[queue worker 2\] .*1 TensorFlow thread\(s\) per run/);
      process.kill(started[0], "SIGKILL");
      await until(() => queue.pids().length === 2 && !queue.pids().includes(started[0]), 60, "a new worker in the dead one's place");
      await until(async () => (await jobs.getWorkersCount()) === 2, 60, "two workers listening again");
      expect(lines.join("")).toMatch(/queue worker 1 died \(killed by SIGKILL\); starting it again/);
    } finally {
      await jobs.close();
      const last = queue.pids();
      await queue.stop();
      vi.restoreAllMocks();
      expect(queue.pids()).toEqual([]);
      expect([...started, ...last].filter(alive)).toEqual([]);
      await expect(checkRedis(queue.url)).rejects.toThrow(/127\.0\.0\.1/);
    }
  }, 120_000);

  it("trains a scenario only this process knows here, not on the queue that MERGENET_REDIS names", async () => {
    const saved = process.env.MERGENET_REDIS;
    process.env.MERGENET_REDIS = `redis://127.0.0.1:${await freePort()}`; // nobody listens: contacting it would fail
    try {
      const config = tinyExperiment({ name: "queue-local-only", seeds: [0], methods: [{ name: "target alone", kind: "target-alone" }] });
      const result = await runExperiment(config, { resultsDir: tmp(), progress: false }); // pool-tiny: registered by this file's import only
      expect(result.runs).toHaveLength(1);
      // Told how workers build it, the same experiment goes to that queue (and fails: nobody listens).
      await expect(runExperiment(config, { resultsDir: tmp(), progress: false, scenarioModules: [POOL_SCENARIOS] })).rejects.toThrow(/127\.0\.0\.1/);
    } finally {
      if (saved === undefined) delete process.env.MERGENET_REDIS;
      else process.env.MERGENET_REDIS = saved;
    }
  });
});
