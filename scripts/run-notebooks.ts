/**
 * Executes notebooks headlessly, in place, with the project's TypeScript kernel.
 *
 *   npm run notebooks -- [--quick] [--workers N] [--parallel N] [--timeout SECONDS] [notebooks/NN-name.ipynb ...]
 *
 * Default: every notebooks/*.ipynb in name order. `--quick` sets MERGENET_QUICK=1 for the
 * kernel (notebooks shrink their runs); `--workers N` sets MERGENET_WORKERS=N (experiments
 * train N runs at once in worker processes, src/experiments/pool.ts; default one per core).
 * Exit code 1 when any
 * cell fails, with the notebook, the cell and its error named; each notebook's wall time is
 * printed.
 *
 * Design choices:
 * - nbclient (Jupyter's own executor) from the project venv made by scripts/setup-jupyter.sh,
 *   driven by a short Python program passed with `-c`: it reports the failing cell's index
 *   and error as JSON, which `jupyter nbconvert --execute` would bury in a traceback.
 * - A failed notebook is still written, with the outputs up to and including the error, so
 *   the error can be read in context; the other notebooks still run.
 * - Cell timing metadata is not recorded, so re-running an unchanged notebook leaves only
 *   real output changes in the git diff.
 * - The kernel spec is found through JUPYTER_PATH=<repo>/jupyter, and connection files go to
 *   <repo>/.jupyter-runtime (git-ignored), so nothing is installed outside the repository.
 * - `parallel` > 1 (`--parallel N`) executes up to N notebooks at once, started in name order.
 *   That only pays when their runs go to one shared set of workers (a Redis queue: `npm start`
 *   sets one up), which then trains one notebook's runs while another waits for its last run
 *   or draws its figures. A notebook whose metadata says `"mergenet": {"after_earlier": true}`
 *   (the summary, which reads every earlier notebook's runs) starts only once every notebook
 *   before it in the list has finished. Each cell may then take up to `parallel` times as long
 *   (its runs share the workers), so the cell timeout scales with it.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { logger } from "../src/log";

export const REPO_ROOT = path.resolve(__dirname, "..");
export const NOTEBOOKS_DIR = path.join(REPO_ROOT, "notebooks");
export const KERNEL_NAME = "mergenet-ts";
const VENV_PYTHON = path.join(REPO_ROOT, ".venv", "bin", "python");
const SETUP_HINT = "run `npm run jupyter:setup` (scripts/setup-jupyter.sh) first";

export interface RunOptions {
  /** Sets MERGENET_QUICK=1 in the kernel. */
  quick?: boolean;
  /** Seconds one cell may run before it counts as failed (default 3600). */
  cellTimeoutSeconds?: number;
  /** Sets MERGENET_WORKERS in the kernel (default: the environment's, if any). */
  workers?: number;
  /** Notebooks executed at once (default 1); see the design notes at the top. */
  parallel?: number;
}

/** Where and how a notebook failed. */
export interface CellFailure {
  /** 0-based index among all cells of the notebook. */
  cell: number;
  /** The cell's first source line, to find it by eye. */
  source: string;
  ename: string;
  evalue: string;
}

export interface NotebookResult {
  file: string;
  seconds: number;
  failure?: CellFailure;
}

/** Thrown by runNotebooks when a notebook fails; `results` holds every notebook's outcome. */
export class NotebookRunError extends Error {
  constructor(readonly results: NotebookResult[]) {
    super(
      results
        .filter((r) => r.failure)
        .map((r) => describeFailure(r.file, r.failure as CellFailure))
        .join("\n"),
    );
    this.name = "NotebookRunError";
  }
}

function describeFailure(file: string, failure: CellFailure): string {
  const where = failure.cell >= 0 ? `cell ${failure.cell} (${JSON.stringify(failure.source)})` : "before any cell ran";
  // tslab's stderr text already starts with the error's name ("Error: invalid experiment ..."): name it once.
  const evalue = failure.evalue.startsWith(`${failure.ename}: `) ? failure.evalue.slice(failure.ename.length + 2) : failure.evalue;
  return `${path.relative(process.cwd(), file)}: ${where} failed: ${failure.ename}: ${evalue}`;
}

/**
 * Runs one notebook with nbclient; prints one JSON line: {ok} or {ok: false, cell, ...}.
 * A cell tagged `raises-exception` may fail without failing the notebook, but the tslab
 * kernel then aborts every later cell (status "abort": no output, no error), which nbclient
 * lets pass: so a cell the kernel aborted fails the notebook, whatever the tags, naming the
 * error that caused it.
 */
const EXECUTE_PY = String.raw`
import json, os, sys
import nbformat
from nbclient import NotebookClient

path, timeout, default_kernel = sys.argv[1], int(sys.argv[2]), sys.argv[3]
nb = nbformat.read(path, as_version=4)
kernel = nb.metadata.get("kernelspec", {}).get("name") or default_kernel
current = {"cell": -1}
aborted, errored = [], []

def on_cell_start(cell, cell_index, **kwargs):
    current["cell"] = cell_index

def on_cell_executed(cell, cell_index, execute_reply, **kwargs):
    status = (execute_reply or {}).get("content", {}).get("status")
    if status in ("abort", "aborted"):
        aborted.append(cell_index)
    elif status == "error":
        errored.append(cell_index)

def first_line(index):
    return nb.cells[index].source.strip().splitlines()[0] if index >= 0 and nb.cells[index].source.strip() else ""

def error_of(index, ename, evalue):
    outputs = nb.cells[index].get("outputs", []) if index >= 0 else []
    errors = [o for o in outputs if o.get("output_type") == "error"]
    # tslab reports an error as stderr text (compile diagnostics or a stack trace) and
    # sends no error output. Its message is every line before the stack trace (a
    # configuration lists all its problems), without log lines.
    stderr = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr")
    lines = []
    for line in (l.strip() for l in stderr.splitlines()):
        if line.startswith("at "):
            break
        if line and not line.startswith(("[mergenet]", "(MERGENET_DEBUG=1")):
            lines.append(line)
    if errors:
        return errors[-1].get("ename") or ename, errors[-1].get("evalue") or evalue
    if lines:
        return "Error", " / ".join(lines[:20])
    return ename, evalue

client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, record_timing=False,
                        on_cell_start=on_cell_start, on_cell_executed=on_cell_executed,
                        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
result = {"ok": True}
try:
    client.execute()
    if aborted:
        cause = max([i for i in errored if i < aborted[0]], default=-1)
        ename, evalue = error_of(cause, "Error", "(no error output)")
        error = evalue if evalue.startswith(ename + ": ") else "%s: %s" % (ename, evalue)
        why = "after the error in cell %d (%r), which that cell's tags allow (%s)" % (cause, first_line(cause)[:80], error) if cause >= 0 else "with no error this runner saw"
        later = " and %d later cell(s)" % (len(aborted) - 1) if len(aborted) > 1 else ""
        result = {"ok": False, "cell": aborted[0], "source": first_line(aborted[0])[:120], "ename": "CellAborted",
                  "evalue": "never ran: the kernel aborted it%s %s" % (later, why)}
except Exception as err:
    index = current["cell"]
    message = str(err).strip()
    ename, evalue = error_of(index, getattr(err, "ename", None) or type(err).__name__, getattr(err, "evalue", None) or (message.splitlines()[-1] if message else ""))
    result = {"ok": False, "cell": index, "source": first_line(index)[:120], "ename": ename, "evalue": evalue}
nbformat.write(nb, path)
print(json.dumps(result))
`;

/** Every notebooks/*.ipynb, in name order. */
export function defaultNotebooks(): string[] {
  return fs
    .readdirSync(NOTEBOOKS_DIR)
    .filter((name) => name.endsWith(".ipynb"))
    .sort()
    .map((name) => path.join(NOTEBOOKS_DIR, name));
}

function kernelEnv(quick: boolean, workers?: number): NodeJS.ProcessEnv {
  const jupyterPath = [path.join(REPO_ROOT, "jupyter"), process.env.JUPYTER_PATH].filter(Boolean).join(path.delimiter);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    JUPYTER_PATH: jupyterPath,
    JUPYTER_RUNTIME_DIR: path.join(REPO_ROOT, ".jupyter-runtime"),
    PYDEVD_DISABLE_FILE_VALIDATION: "1",
  };
  if (quick) env.MERGENET_QUICK = "1";
  else delete env.MERGENET_QUICK;
  if (workers !== undefined) env.MERGENET_WORKERS = String(workers);
  return env;
}

function runPython(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(VENV_PYTHON, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

async function runOne(file: string, options: RunOptions): Promise<NotebookResult> {
  const timeout = options.cellTimeoutSeconds ?? 3600 * Math.max(1, options.parallel ?? 1);
  const started = Date.now();
  const { code, stdout, stderr } = await runPython(["-c", EXECUTE_PY, file, String(timeout), KERNEL_NAME], kernelEnv(options.quick ?? false, options.workers));
  const seconds = (Date.now() - started) / 1000;
  const lastLine = stdout.trim().split("\n").pop() ?? "";
  let reply: { ok: boolean; cell?: number; source?: string; ename?: string; evalue?: string } | undefined;
  try {
    reply = JSON.parse(lastLine);
  } catch {
    reply = undefined;
  }
  if (code !== 0 || !reply) {
    const missing = /No module named '(nbclient|nbformat)'/.test(stderr) ? ` (${SETUP_HINT})` : "";
    const tail = stderr.trim().split("\n").slice(-15).join("\n");
    return { file, seconds, failure: { cell: -1, source: "", ename: "RunnerError", evalue: `the nbclient runner exited with code ${code}${missing}\n${tail}` } };
  }
  if (reply.ok) return { file, seconds };
  return {
    file,
    seconds,
    failure: { cell: reply.cell ?? -1, source: reply.source ?? "", ename: reply.ename ?? "Error", evalue: reply.evalue ?? "" },
  };
}

/** Whether a notebook's metadata asks it to run only after every earlier notebook (`"mergenet": {"after_earlier": true}`). */
export function runsAfterEarlier(file: string): boolean {
  let meta: unknown;
  try {
    meta = JSON.parse(fs.readFileSync(file, "utf8"))?.metadata?.mergenet;
  } catch {
    return false; // an unreadable notebook fails in its own run, with nbclient's words
  }
  return typeof meta === "object" && meta !== null && (meta as { after_earlier?: unknown }).after_earlier === true;
}

/**
 * Executes the notebooks in place: one after another, or up to `options.parallel` at once
 * (started in list order; a notebook marked `after_earlier` waits for every one before it).
 * Resolves to each notebook's result, in list order, when all pass; rejects with
 * NotebookRunError (naming each failing notebook, cell and error) when any fails, after
 * running the rest.
 */
export async function runNotebooks(files: string[], options: RunOptions = {}): Promise<NotebookResult[]> {
  if (!fs.existsSync(VENV_PYTHON)) throw new Error(`no Jupyter environment at ${path.dirname(path.dirname(VENV_PYTHON))}: ${SETUP_HINT}`);
  const resolved = files.map((file) => path.resolve(file));
  for (const file of resolved) {
    if (!file.endsWith(".ipynb") || !fs.existsSync(file)) throw new Error(`${file} is not a notebook file (.ipynb) that exists`);
  }
  const parallel = options.parallel ?? 1;
  if (!Number.isInteger(parallel) || parallel < 1) throw new Error(`parallel must be a whole number >= 1, got ${parallel}`);
  fs.mkdirSync(path.join(REPO_ROOT, ".jupyter-runtime"), { recursive: true });
  const results = await inOrderAtOnce(resolved, parallel, runsAfterEarlier, async (file, atOnce) => {
    const name = path.relative(process.cwd(), file);
    logger.info(`notebook ${name}: running${options.quick ? " (quick)" : ""}${parallel > 1 ? ` (${atOnce} at once)` : ""}`);
    const result = await runOne(file, { ...options, parallel });
    logger.info(`notebook ${name}: ${result.failure ? "FAILED" : "ok"} in ${result.seconds.toFixed(1)} s`);
    return result;
  });
  if (results.some((r) => r.failure)) throw new NotebookRunError(results);
  return results;
}

/**
 * Runs `run` on each item, starting them in list order with at most `limit` running at once;
 * an item for which `afterEarlier` holds starts only once every item before it has finished.
 * `run` is told how many run at once with it (itself included). Resolves to the results in
 * list order once all have ended; when any rejects, rejects with the first (in list order)
 * once all have ended.
 */
export async function inOrderAtOnce<T, R>(items: T[], limit: number, afterEarlier: (item: T) => boolean, run: (item: T, atOnce: number) => Promise<R>): Promise<R[]> {
  const slots = new Slots(limit);
  const started: Promise<R>[] = [];
  for (const item of items) {
    if (afterEarlier(item)) await Promise.allSettled(started);
    await slots.take();
    const running = run(item, slots.busy).finally(() => slots.give());
    running.catch(() => undefined); // handled by the Promise.all below, not an unhandled rejection meanwhile
    started.push(running);
  }
  const settled = await Promise.allSettled(started);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failure) throw failure.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
}

/** A counting semaphore: `take` resolves once fewer than `size` are taken. */
class Slots {
  busy = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly size: number) {}
  take(): Promise<void> {
    if (this.busy < this.size) {
      this.busy += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => (this.busy += 1, resolve())));
  }
  give(): void {
    this.busy -= 1;
    this.waiting.shift()?.();
  }
}

interface CliArgs {
  files: string[];
  options: RunOptions;
}

/** A command-line flag's value as a whole number >= 1, or an error naming the flag (and `usage`, when given). */
export function wholeNumber(flag: string, value: string | undefined, usage?: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a whole number >= 1, got '${value ?? ""}'${usage ? `; ${usage}` : ""}`);
  return n;
}

function parseArgs(argv: string[]): CliArgs {
  const files: string[] = [];
  const options: RunOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--quick") options.quick = true;
    else if (arg === "--workers") options.workers = wholeNumber(arg, argv[++i]);
    else if (arg === "--parallel") options.parallel = wholeNumber(arg, argv[++i]);
    else if (arg === "--timeout") {
      const seconds = Number(argv[++i]);
      if (!(seconds > 0)) throw new Error(`--timeout needs a positive number of seconds, got '${argv[i]}'`);
      options.cellTimeoutSeconds = seconds;
    } else if (arg.startsWith("--")) throw new Error(`unknown option ${arg}; usage: npm run notebooks -- [--quick] [--workers N] [--parallel N] [--timeout SECONDS] [files...]`);
    else files.push(arg);
  }
  return { files, options };
}

function printSummary(results: NotebookResult[]): void {
  for (const r of results) {
    const status = r.failure ? "FAILED" : "ok";
    process.stdout.write(`${status.padEnd(6)} ${r.seconds.toFixed(1).padStart(7)} s  ${path.relative(process.cwd(), r.file)}\n`);
  }
}

async function main(): Promise<void> {
  try {
    const { files, options } = parseArgs(process.argv.slice(2));
    printSummary(await runNotebooks(files.length ? files : defaultNotebooks(), options));
  } catch (err) {
    if (err instanceof NotebookRunError) {
      printSummary(err.results);
      process.stderr.write(`\nnotebook failures (outputs saved in the notebooks):\n${err.message}\n`);
    } else {
      process.stderr.write(`run-notebooks: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    process.exitCode = 1;
  }
}

if (require.main === module) void main();
