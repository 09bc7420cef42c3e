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
 */
import * as fs from "fs";
import * as os from "os";
import * as tf from "@tensorflow/tfjs";
import { logger } from "../log";
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
}

let active: BackendInfo | undefined;

function gpuVisible(): boolean {
  return fs.existsSync("/dev/nvidia0") || fs.existsSync("/dev/nvidiactl");
}

function loadNative(pkg: string): void {
  process.env.TF_CPP_MIN_LOG_LEVEL ??= "3";
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  require(pkg);
}

async function tryBackend(name: BackendName): Promise<void> {
  switch (name) {
    case "tensorflow-gpu":
      if (!gpuVisible()) throw new Error("no CUDA device visible (/dev/nvidia0)");
      loadNative("@tensorflow/tfjs-node-gpu");
      break;
    case "tensorflow":
      loadNative("@tensorflow/tfjs-node");
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
}

function shortReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0].slice(0, 160);
}

/**
 * Picks and initialises the backend (idempotent: later calls return the first choice).
 * `prefer` (or the MERGENET_BACKEND environment variable) forces one backend; if it cannot
 * start, this throws instead of silently falling back.
 */
export async function initBackend(prefer?: BackendName): Promise<BackendInfo> {
  if (active) return active;
  const forced = prefer ?? (process.env.MERGENET_BACKEND as BackendName | undefined);
  if (forced !== undefined && !BACKEND_NAMES.includes(forced)) {
    throw new Error(`MERGENET_BACKEND='${forced}' is not a backend; use one of ${BACKEND_NAMES.join(", ")}`);
  }
  const order: readonly BackendName[] = forced ? [forced] : BACKEND_NAMES;
  const skipped: string[] = [];
  for (const name of order) {
    try {
      await tryBackend(name);
      active = { name, tfBackend: tf.getBackend(), cores: os.cpus().length, skipped };
      const why = skipped.length ? ` (skipped: ${skipped.join("; ")})` : "";
      logger.info(`backend: ${name}${why}`);
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
