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

interface NativeEntryPoints {
  executeSingleOutput: Execute;
  executeMultipleOutputs: Execute;
}

let metering = false;

/**
 * Runs `fn` and reports the native TensorFlow ops it ran, or `undefined` on a backend that
 * has none (wasm, cpu): there the answer would be a wrong zero. Not re-entrant: a metered
 * call inside another is an error. `fn` may be async; the meter stays on until it settles,
 * so nothing else should run ops meanwhile.
 */
export async function meterNativeOps<T>(fn: () => T | Promise<T>): Promise<{ result: T; ops: NativeOpMeter | undefined }> {
  const backend = tf.backend() as unknown as Partial<NativeEntryPoints>;
  if (!tf.getBackend().startsWith("tensorflow") || typeof backend.executeSingleOutput !== "function" || typeof backend.executeMultipleOutputs !== "function") {
    return { result: await fn(), ops: undefined };
  }
  if (metering) throw new Error("meterNativeOps: already metering a call; meter the outer call only");
  const native = backend as NativeEntryPoints;
  const stock = { single: native.executeSingleOutput, multiple: native.executeMultipleOutputs };
  const own = (key: keyof NativeEntryPoints): boolean => Object.prototype.hasOwnProperty.call(native, key);
  const ownBefore = { single: own("executeSingleOutput"), multiple: own("executeMultipleOutputs") };
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
  native.executeSingleOutput = wrap(stock.single);
  native.executeMultipleOutputs = wrap(stock.multiple);
  try {
    const result = await fn();
    const byOp = [...shares.values()].sort((a, b) => b.ms - a.ms);
    return { result, ops: { count: byOp.reduce((n, s) => n + s.count, 0), ms: byOp.reduce((t, s) => t + s.ms, 0), byOp } };
  } finally {
    // Back to exactly what was there: the class's methods (no own property) or an own one.
    if (ownBefore.single) native.executeSingleOutput = stock.single;
    else delete (native as Partial<NativeEntryPoints>).executeSingleOutput;
    if (ownBefore.multiple) native.executeMultipleOutputs = stock.multiple;
    else delete (native as Partial<NativeEntryPoints>).executeMultipleOutputs;
    metering = false;
  }
}
