/**
 * A throw-away JupyterLab server from the project's .venv, for tests that look at notebooks
 * the way people see them (test/browser.test.ts).
 *
 * Design choices:
 * - Everything Jupyter would write goes under one temporary folder (config, data, runtime,
 *   workspaces, user settings), so a run leaves no trace in the repository or in ~/.jupyter
 *   and a user's own Jupyter settings cannot change what the test sees.
 * - The server listens on 127.0.0.1 only, on a free port found by binding port 0, with a
 *   random token and `--port-retries=0` (no silent move to another port). A port taken in the
 *   instant between the probe and the start is retried on a new port, a bounded few times.
 * - Nothing goes to the internet: the news feed and the update check are off on the server
 *   (`news_url=None`, `NeverCheckForUpdate`) and in the user settings, the extension manager
 *   is read-only and disabled.
 * - Opening a notebook starts no kernel (`notebook_starts_kernel=False`): outputs saved in
 *   the file render without one, and a tslab kernel would only add load. The kernel spec is
 *   still found through JUPYTER_PATH=<repo>/jupyter, as in `npm run lab`, so JupyterLab opens
 *   the notebook without a "kernel not found" dialog.
 * - The server runs in its own process group; `stop()` sends SIGTERM to the group (Jupyter
 *   shuts down cleanly on it) and SIGKILL after a bounded wait, so no child outlives a test.
 */
import { spawn, type ChildProcess } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";

/** A running JupyterLab server. */
export interface JupyterLabServer {
  /** http://127.0.0.1:<port> (no trailing slash). */
  baseUrl: string;
  token: string;
  /** The folder the server serves (its root_dir). */
  rootDir: string;
  /**
   * URL that opens `file` (relative to rootDir) in JupyterLab's single-document mode (/doc:
   * the same notebook view and renderers as /lab, without the file browser beside it),
   * token included.
   */
  urlFor(file: string): string;
  /** The server's recent console output, for error messages. */
  log(): string;
  /** Stops the server and its process group; safe to call more than once. */
  stop(): Promise<void>;
}

export interface JupyterLabOptions {
  /** Repository root: .venv/bin/jupyter-lab and jupyter/ (the kernel specs) are found there. */
  repo: string;
  /** Folder served as the notebook root (the test copies notebooks into it). */
  rootDir: string;
  /** Folder for Jupyter's own state (config, data, runtime, settings, workspaces). */
  stateDir: string;
  /**
   * User settings, by plugin id, e.g. {"@jupyterlab/notebook-extension:tracker": {windowingMode: "none"}}.
   * Merged over the defaults this helper writes (no news, no update check, no extension manager).
   */
  settings?: Record<string, Record<string, unknown>>;
  /** Milliseconds to wait for the server to answer (default 90 s). */
  startTimeoutMs?: number;
}

const LOG_LIMIT = 20_000;
const PORT_ATTEMPTS = 3;
const STOP_GRACE_MS = 10_000;

const DEFAULT_SETTINGS: Record<string, Record<string, unknown>> = {
  "@jupyterlab/apputils-extension:notification": { fetchNews: "false", checkForUpdates: false },
  "@jupyterlab/extensionmanager-extension:plugin": { enabled: false },
};

/** A port nobody listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error("the OS gave no free port on 127.0.0.1"))));
    });
  });
}

/** Writes each plugin's settings where JupyterLab reads user settings: <dir>/<package>/<plugin>.jupyterlab-settings. */
function writeSettings(dir: string, settings: Record<string, Record<string, unknown>>): void {
  for (const [id, values] of Object.entries(settings)) {
    const [pkg, plugin] = id.split(":");
    if (!pkg || !plugin) throw new Error(`settings key '${id}' must be a plugin id '<package>:<plugin>'`);
    const file = path.join(dir, pkg, `${plugin}.jupyterlab-settings`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(values, null, 2));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when the process has exited, or after `ms` with false. */
function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Starts one server on `port`; resolves when /api/status answers, rejects if it exits or times out. */
async function startOnce(options: JupyterLabOptions, port: number, token: string, deadline: number): Promise<JupyterLabServer> {
  const { repo, rootDir, stateDir } = options;
  const dirs = {
    JUPYTER_CONFIG_DIR: path.join(stateDir, "config"),
    JUPYTER_DATA_DIR: path.join(stateDir, "data"),
    JUPYTER_RUNTIME_DIR: path.join(stateDir, "runtime"),
    JUPYTERLAB_SETTINGS_DIR: path.join(stateDir, "settings"),
    JUPYTERLAB_WORKSPACES_DIR: path.join(stateDir, "workspaces"),
  };
  for (const dir of Object.values(dirs)) fs.mkdirSync(dir, { recursive: true });
  writeSettings(dirs.JUPYTERLAB_SETTINGS_DIR, { ...DEFAULT_SETTINGS, ...options.settings });

  const args = [
    "--no-browser",
    "--ip=127.0.0.1",
    `--port=${port}`,
    "--port-retries=0",
    `--ServerApp.root_dir=${rootDir}`,
    "--ServerApp.terminals_enabled=False",
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
    "--LabApp.notebook_starts_kernel=False",
  ];
  if (process.getuid?.() === 0) args.push("--allow-root");
  const env = { ...process.env, ...dirs, JUPYTER_PATH: path.join(repo, "jupyter"), JUPYTER_TOKEN: token, PYTHONNOUSERSITE: "1" };
  const child = spawn(path.join(repo, ".venv", "bin", "jupyter-lab"), args, { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });

  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-LOG_LIMIT);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let spawnError: Error | undefined;
  child.once("error", (err) => (spawnError = err));

  const baseUrl = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  const server: JupyterLabServer = {
    baseUrl,
    token,
    rootDir,
    urlFor: (file) => `${baseUrl}/doc/tree/${file.split("/").map(encodeURIComponent).join("/")}?token=${token}`,
    log: () => output,
    stop: () => {
      stopped ??= (async () => {
        killGroup(child, "SIGTERM");
        if (!(await waitForExit(child, STOP_GRACE_MS))) {
          killGroup(child, "SIGKILL");
          await waitForExit(child, STOP_GRACE_MS);
        }
      })();
      return stopped;
    },
  };

  while (Date.now() < deadline) {
    if (spawnError) throw spawnError;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`JupyterLab exited (code ${child.exitCode}, signal ${child.signalCode}) before answering; its output:\n${output}`);
    }
    try {
      const response = await fetch(`${baseUrl}/api/status`, {
        headers: { Authorization: `token ${token}` },
        signal: AbortSignal.timeout(5_000),
      });
      if (response.ok) return server;
    } catch {
      // Not listening yet.
    }
    await sleep(250);
  }
  await server.stop();
  throw new Error(`JupyterLab did not answer on ${baseUrl} within ${options.startTimeoutMs ?? 90_000} ms; its output:\n${output}`);
}

/** Starts JupyterLab and waits until it answers; the caller must call `stop()` (in afterAll). */
export async function startJupyterLab(options: JupyterLabOptions): Promise<JupyterLabServer> {
  const jupyterLab = path.join(options.repo, ".venv", "bin", "jupyter-lab");
  if (!fs.existsSync(jupyterLab)) {
    throw new Error(`${jupyterLab} is missing: run \`npm run jupyter:setup\` (scripts/setup-jupyter.sh) first`);
  }
  const deadline = Date.now() + (options.startTimeoutMs ?? 90_000);
  const token = crypto.randomBytes(16).toString("hex");
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS && Date.now() < deadline; attempt++) {
    try {
      return await startOnce(options, await freePort(), token, deadline);
    } catch (err) {
      lastError = err;
      // Only a port taken between the probe and the start is worth another try.
      if (!/already in use|address already/i.test(String(err))) throw err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(`JupyterLab did not start: ${String(lastError)}`);
}
