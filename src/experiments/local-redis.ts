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

/** Starts `scripts/worker.ts --redis url` as a child process with `env` added to this process's. */
export function startWorkerProcess(url: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): QueueWorkerProcess {
  const script = path.join(REPO_ROOT, "scripts", "worker.ts");
  const child = spawn(process.execPath, ["--import", require.resolve("tsx"), script, "--redis", url, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  const listeners = new Set<() => void>();
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    listeners.forEach((l) => l());
  });
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
