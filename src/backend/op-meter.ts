/**
 * Counts and times the native TensorFlow ops a piece of code runs (issue 16): what the
 * `tensorflow` backend actually executes, which tf.profile does not show. tf.profile lists
 * tfjs kernels, including the ones this project answers without a native op (the no-op
 * Reshape and Cast of native-kernels.ts) and not the extra native ops a kernel runs inside
 * (tfjs-node's Mean runs a Cast first). Each native op costs a fixed 10-30 µs on this backend
 * besides its arithmetic, so the count is the number to cut, and the time per op name says
 * where the arithmetic goes.
 *
 * How: for the duration of one call, tfjs-node's two entry points into TensorFlow
 * (`executeSingleOutput`, `executeMultipleOutputs`) are wrapped with a counter and a clock;
 * they are restored afterwards, also when the call throws. The clock adds about a
 * microsecond per op, so time a workload without the meter and meter it separately.
 */
import { tf } from "./index";

/** One native op name's share of a metered call. */
export interface NativeOpShare {
  /** TensorFlow's op name, e.g. "BatchMatMulV2". */
  op: string;
  count: number;
  /** Wall milliseconds inside TensorFlow for these ops, including the input upload. */
  ms: number;
}

export interface NativeOpMeter {
  /** Native ops run during the call. */
  count: number;
  /** Wall milliseconds spent inside them. */
  ms: number;
  /** Per op name, the most time first. */
  byOp: NativeOpShare[];
}

type Execute = (...args: unknown[]) => unknown;

/** tfjs-node's two entry points into TensorFlow: every native op goes through one of them. */
const ENTRY_POINTS = ["executeSingleOutput", "executeMultipleOutputs"] as const;
type NativeEntryPoints = Record<(typeof ENTRY_POINTS)[number], Execute>;

let metering = false;

/**
 * Runs `fn` and reports the native TensorFlow ops it ran, or `undefined` on a backend that
 * has none (wasm, cpu): there the answer would be a wrong zero. Not re-entrant: a metered
 * call inside another is an error. `fn` may be async; the meter stays on until it settles,
 * so nothing else should run ops meanwhile.
 */
export async function meterNativeOps<T>(fn: () => T | Promise<T>): Promise<{ result: T; ops: NativeOpMeter | undefined }> {
  const backend = tf.backend() as unknown as Partial<NativeEntryPoints>;
  if (!tf.getBackend().startsWith("tensorflow") || ENTRY_POINTS.some((key) => typeof backend[key] !== "function")) {
    return { result: await fn(), ops: undefined };
  }
  if (metering) throw new Error("meterNativeOps: already metering a call; meter the outer call only");
  const native = backend as NativeEntryPoints;
  // What each entry point was: the class's method (no own property) or an own one.
  const saved = ENTRY_POINTS.map((key) => ({ key, original: native[key], own: Object.prototype.hasOwnProperty.call(native, key) }));
  const shares = new Map<string, NativeOpShare>();
  const wrap = (original: Execute): Execute =>
    function (this: unknown, ...args: unknown[]) {
      const start = process.hrtime.bigint();
      try {
        return original.apply(this, args);
      } finally {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        const op = String(args[0]);
        const share = shares.get(op) ?? { op, count: 0, ms: 0 };
        share.count += 1;
        share.ms += ms;
        shares.set(op, share);
      }
    };
  metering = true;
  for (const { key, original } of saved) native[key] = wrap(original);
  try {
    const result = await fn();
    const byOp = [...shares.values()].sort((a, b) => b.ms - a.ms);
    return { result, ops: { count: byOp.reduce((n, s) => n + s.count, 0), ms: byOp.reduce((t, s) => t + s.ms, 0), byOp } };
  } finally {
    for (const { key, original, own } of saved) {
      if (own) native[key] = original;
      else delete (native as Partial<NativeEntryPoints>)[key];
    }
    metering = false;
  }
}
