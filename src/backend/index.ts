/**
 * The one module that owns TensorFlow.js: every other file imports `tf` from here (the other
 * files of this folder, wasm-gradients.ts, native-kernels.ts and lazy-grad.ts, are the only other importers of tfjs).
 *
 * Backend order (first that works wins; `MERGENET_BACKEND` forces one):
 *   tensorflow-gpu  @tensorflow/tfjs-node-gpu installed and a CUDA device visible
 *   tensorflow      @tensorflow/tfjs-node's native binding (set up by `npm ci`)
 *   wasm            @tensorflow/tfjs-backend-wasm, with the convolution gradients it lacks
 *                   registered by this project (wasm-gradients.ts)
 *   cpu             tfjs's pure-JS reference backend (slow; tests compare against it)
 *
 * Using a GPU is one setting: `npm install @tensorflow/tfjs-node-gpu` on a CUDA machine
 * (it is picked automatically), or `MERGENET_BACKEND=tensorflow-gpu` to insist on it.
 *
 * TensorFlow's thread pools (native backends; issue 16): TensorFlow reads
 * TF_NUM_INTRAOP_THREADS and TF_NUM_INTEROP_THREADS once, when it loads, and uses all cores
 * for each without them. `initBackend(prefer, { threads })` or `MERGENET_THREADS` ("N": N
 * intra-op and N inter-op threads; "N,M": N intra-op, M inter-op) sets them just before the
 * load; a TF_NUM_* variable already in the environment (the worker pool sets the intra-op one
 * for each worker) wins over MERGENET_THREADS, the option over both. The setting in force is
 * BackendInfo.threads. Which is faster depends on the workload (issue 16's measurements: one
 * thread speeds the small MLP's step and slows the CNN pair's).
 */
import * as fs from "fs";
import * as os from "os";
import * as tf from "@tensorflow/tfjs";
import { logger } from "../log";
import { installNoOpShortcuts } from "./native-kernels";
import { registerWasmGradients } from "./wasm-gradients";

export { tf };

export const BACKEND_NAMES = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendInfo {
  /** The project's name for the backend. */
  name: BackendName;
  /** tfjs's own name for it (`tf.getBackend()`). */
  tfBackend: string;
  /** Logical cores on this machine (the native backend uses them all). */
  cores: number;
  /** Why earlier choices in the order were passed over. */
  skipped: string[];
  /** TensorFlow's intra- and inter-op threads as set at load ("default": all cores), native backends; undefined on wasm and cpu. */
  threads?: ThreadSetting;
}

/** TensorFlow's thread pools: a count each, or "default" (TensorFlow's choice: all cores). */
export interface ThreadSetting {
  intra: number | "default";
  inter: number | "default";
}

export interface BackendOptions {
  /** TensorFlow threads: one count for both pools, or each its own (see the file header). */
  threads?: number | { intra?: number; inter?: number };
}

function positiveCount(text: string, label: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${label}='${text}' is not a thread count; use a whole number >= 1`);
  return n;
}

/** The thread counts asked for: the option, else the TF_NUM_* variables, else MERGENET_THREADS. */
export function requestedThreads(option?: BackendOptions["threads"], env: NodeJS.ProcessEnv = process.env): ThreadSetting {
  const fromEnv = env.MERGENET_THREADS?.trim() ? env.MERGENET_THREADS.split(",").map((t) => positiveCount(t.trim(), "MERGENET_THREADS")) : [];
  if (fromEnv.length > 2) throw new Error(`MERGENET_THREADS='${env.MERGENET_THREADS}': give "N" or "INTRA,INTER"`);
  const fromOption = typeof option === "number" ? { intra: option, inter: option } : option ?? {};
  for (const [key, n] of Object.entries(fromOption)) if (n !== undefined) positiveCount(String(n), `threads.${key}`);
  const pick = (opt: number | undefined, tfVariable: string, mergenet: number | undefined): number | "default" =>
    opt ?? (env[tfVariable] ? positiveCount(env[tfVariable] as string, tfVariable) : mergenet ?? "default");
  return {
    intra: pick(fromOption.intra, "TF_NUM_INTRAOP_THREADS", fromEnv[0]),
    inter: pick(fromOption.inter, "TF_NUM_INTEROP_THREADS", fromEnv[1] ?? fromEnv[0]),
  };
}

let active: BackendInfo | undefined;

function gpuVisible(): boolean {
  return fs.existsSync("/dev/nvidia0") || fs.existsSync("/dev/nvidiactl");
}

function loadNative(pkg: string, threads: ThreadSetting): void {
  process.env.TF_CPP_MIN_LOG_LEVEL ??= "3";
  // Read by TensorFlow when it loads (below), and recorded by the runner (RunResult.threads).
  if (threads.intra !== "default") process.env.TF_NUM_INTRAOP_THREADS = String(threads.intra);
  if (threads.inter !== "default") process.env.TF_NUM_INTEROP_THREADS = String(threads.inter);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  require(pkg);
}

async function tryBackend(name: BackendName, threads: ThreadSetting): Promise<void> {
  switch (name) {
    case "tensorflow-gpu":
      if (!gpuVisible()) throw new Error("no CUDA device visible (/dev/nvidia0)");
      loadNative("@tensorflow/tfjs-node-gpu", threads);
      break;
    case "tensorflow":
      loadNative("@tensorflow/tfjs-node", threads);
      break;
    case "wasm":
      require("@tensorflow/tfjs-backend-wasm");
      registerWasmGradients();
      break;
    case "cpu":
      break;
  }
  const tfName = name === "tensorflow-gpu" ? "tensorflow" : name;
  if (!(await tf.setBackend(tfName))) throw new Error(`tf.setBackend('${tfName}') returned false`);
  await tf.ready();
  if (tfName === "tensorflow") installNoOpShortcuts();
}

function shortReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0].slice(0, 160);
}

/**
 * Picks and initialises the backend (idempotent: later calls return the first choice).
 * `prefer` (or the MERGENET_BACKEND environment variable) forces one backend; if it cannot
 * start, this throws instead of silently falling back. `options.threads` (or MERGENET_THREADS):
 * TensorFlow's thread pools (file header); asking a started native backend for another
 * setting is an error (TensorFlow reads it once).
 */
export async function initBackend(prefer?: BackendName, options: BackendOptions = {}): Promise<BackendInfo> {
  const threads = requestedThreads(options.threads);
  if (active) {
    const inForce = active.threads;
    if (options.threads !== undefined && inForce && (inForce.intra !== threads.intra || inForce.inter !== threads.inter)) {
      throw new Error(
        `TensorFlow already runs with ${inForce.intra} intra-op / ${inForce.inter} inter-op threads; it reads the setting once, at load: ` +
          `pass threads to the first initBackend call (or set MERGENET_THREADS before starting)`,
      );
    }
    return active;
  }
  const forced = prefer ?? (process.env.MERGENET_BACKEND as BackendName | undefined);
  if (forced !== undefined && !BACKEND_NAMES.includes(forced)) {
    throw new Error(`MERGENET_BACKEND='${forced}' is not a backend; use one of ${BACKEND_NAMES.join(", ")}`);
  }
  const order: readonly BackendName[] = forced ? [forced] : BACKEND_NAMES;
  const skipped: string[] = [];
  for (const name of order) {
    try {
      await tryBackend(name, threads);
      const native = name === "tensorflow" || name === "tensorflow-gpu";
      active = { name, tfBackend: tf.getBackend(), cores: os.cpus().length, skipped, ...(native ? { threads } : {}) };
      const why = skipped.length ? ` (skipped: ${skipped.join("; ")})` : "";
      const threadText = native && (threads.intra !== "default" || threads.inter !== "default") ? `, TensorFlow threads ${threads.intra} intra-op / ${threads.inter} inter-op` : "";
      logger.info(`backend: ${name}${threadText}${why}`);
      if (name === "wasm" || name === "cpu") {
        logger.warn(`running on the ${name} backend, much slower than native TensorFlow; see README 'Backends'`);
      }
      return active;
    } catch (err) {
      skipped.push(`${name}: ${shortReason(err)}`);
    }
  }
  const hint = forced
    ? `MERGENET_BACKEND=${forced} could not start (${skipped.join("; ")}). Unset it to let the project choose, or fix that backend (README 'Backends').`
    : `no TensorFlow.js backend could start: ${skipped.join("; ")}`;
  throw new Error(hint);
}

/** The backend chosen by initBackend, or undefined before it ran. */
export function backendInfo(): BackendInfo | undefined {
  return active;
}
