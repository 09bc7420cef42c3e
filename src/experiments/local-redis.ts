/**
 * A throwaway Redis and queue workers on this machine, for the tests (test/queue.test.ts) and
 * the bench's `runs` section: Debian's redis-server on 127.0.0.1 at a free port, without
 * persistence, in a temporary folder removed when it stops; workers are `scripts/worker.ts`
 * processes (what `npm run worker` starts).
 */
import { spawn, spawnSync, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT } from "../paths";
import { forwardLines } from "./pool";
import { checkRedis } from "./queue";

export interface LocalRedis {
  url: string;
  stop(): Promise<void>;
}

/** A port nobody listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Waits for a child's exit, killing it with SIGKILL after `graceMs`. */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => (clearTimeout(timer), resolve()));
    child.kill(signal);
  });
}

/** Starts redis-server; fails, saying how to install it, when it is missing. */
export async function startLocalRedis(): Promise<LocalRedis> {
  if (spawnSync("redis-server", ["--version"]).error) {
    throw new Error("redis-server is not installed (Debian package redis-server, listed in .ci/apt-packages.txt): run `bash scripts/setup-system.sh`");
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-redis-"));
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"];
  const child = spawn("redis-server", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output = `${output}${chunk}`.slice(-4000)));
  child.stderr!.on("data", (chunk: Buffer) => (output = `${output}${chunk}`.slice(-4000)));
  const url = `redis://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await checkRedis(url);
      return { url, stop };
    } catch (err) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`redis-server did not start on port ${port}: ${err instanceof Error ? err.message : err}\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface QueueWorkerProcess {
  child: ChildProcess;
  /** Everything it printed to stderr so far. */
  stderr(): string;
  /** Resolves once its stderr from character `from` on matches `pattern` (rejects when it exits first, or after `timeoutMs`). */
  waitFor(pattern: RegExp, options?: { from?: number; timeoutMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `scripts/worker.ts --redis url` as a child process with `env` added to this process's.
 * `echo`: its stderr also goes to this process's stderr, line by line, with `echo` before each line.
 */
export function startWorkerProcess(url: string, env: NodeJS.ProcessEnv = {}, args: string[] = [], echo?: string): QueueWorkerProcess {
  const script = path.join(REPO_ROOT, "scripts", "worker.ts");
  const child = spawn(process.execPath, ["--import", require.resolve("tsx"), script, "--redis", url, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  const listeners = new Set<() => void>();
  child.stderr!.on("data", (chunk: Buffer | string) => {
    stderr += chunk.toString();
    listeners.forEach((l) => l());
  });
  if (echo !== undefined) forwardLines(child.stderr, (line) => process.stderr.write(`${echo}${line}\n`));
  return {
    child,
    stderr: () => stderr,
    waitFor(pattern, { from = 0, timeoutMs = 60_000 } = {}) {
      return new Promise<void>((resolve, reject) => {
        const done = (error?: Error): void => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("exit", exited);
          if (error) reject(error);
          else resolve();
        };
        const check = (): void => void (pattern.test(stderr.slice(from)) && done());
        const exited = (): void => done(new Error(`the worker exited before printing ${pattern}:\n${stderr}`));
        const timer = setTimeout(() => done(new Error(`the worker did not print ${pattern} in ${timeoutMs / 1000} s:\n${stderr}`)), timeoutMs);
        listeners.add(check);
        child.once("exit", exited);
        check();
      });
    },
    stop: () => stopProcess(child),
  };
}

/** A private queue on this machine: a local Redis and its worker processes (what `npm start` trains with). */
export interface LocalQueue {
  url: string;
  workers: number;
  /** Process ids of the workers alive now (a restarted one has a new id). */
  pids(): number[];
  /** Stops the workers (each finishes nothing: runs in training are lost, their submitters fail) and Redis. */
  stop(): Promise<void>;
}

/** How many times one worker slot is restarted after its process died before the queue gives up on that slot. */
const RESTARTS_PER_SLOT = 2;

/**
 * Starts a local Redis and `workers` queue workers with `threads` TensorFlow intra-op threads
 * each (the local pool's setting, so results are those of the pool's workers), and resolves
 * once every worker listens. Their log lines go to this process's stderr prefixed with
 * `[queue worker N]`. A worker that dies is restarted (its run goes back to the queue through
 * BullMQ's stalled-job check), at most RESTARTS_PER_SLOT times per slot, with a warning.
 */
export async function startLocalQueue(options: { workers: number; threads: number; env?: NodeJS.ProcessEnv }): Promise<LocalQueue> {
  const redis = await startLocalRedis();
  const live: QueueWorkerProcess[] = [];
  let stopping = false;
  const env = { ...options.env, MERGENET_WORKER_THREADS: String(options.threads) };
  const start = (slot: number, restarts: number): QueueWorkerProcess => {
    const worker = startWorkerProcess(redis.url, env, ["--threads", String(options.threads)], `[queue worker ${slot}] `);
    live.push(worker);
    worker.child.once("exit", (code, signal) => {
      live.splice(live.indexOf(worker), 1);
      if (stopping) return;
      const how = signal ? `killed by ${signal}` : `exit code ${code}`;
      if (restarts >= RESTARTS_PER_SLOT) {
        const left = live.length
          ? `${live.length} worker(s) left`
          : "no worker left: the notebooks' runs wait for one; stop with Ctrl-C and run the same command again (finished runs are kept)";
        process.stderr.write(`[mergenet] queue worker ${slot} died again (${how}) after ${restarts} restarts; not restarted: ${left}\n`);
        return;
      }
      process.stderr.write(`[mergenet] queue worker ${slot} died (${how}); starting it again (its run returns to the queue)\n`);
      start(slot, restarts + 1);
    });
    return worker;
  };
  try {
    const first = Array.from({ length: options.workers }, (_, i) => start(i + 1, 0));
    await Promise.all(first.map((w) => w.waitFor(/waiting for runs on/, { timeoutMs: 120_000 })));
  } catch (err) {
    stopping = true;
    await Promise.all(live.map((w) => w.stop()));
    await redis.stop();
    throw err;
  }
  return {
    url: redis.url,
    workers: options.workers,
    pids: () => live.flatMap((w) => (w.child.pid === undefined ? [] : [w.child.pid])),
    async stop() {
      stopping = true;
      await Promise.all([...live].map((w) => w.stop()));
      await redis.stop();
    },
  };
}
