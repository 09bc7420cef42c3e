/**
 * `npm run bench [-- --json] [--quick] [--largest] [--repeats N] [--out FILE]`: the performance harness.
 *
 * Runs bench-mnist (src/experiments/bench-mnist.ts) in three modes, target-alone, pair and
 * mergenet: per mode a 20-batch warm-up and the rest of that epoch, then `repeats` timed
 * epochs (157 steps each); reports the median. Also: the per-phase time of a step in every
 * mode, the live tensor count before and after the timed epochs, peak RSS, the adapter's
 * forward and backward alone over a range of matrix shapes, and exact vs randomized SVD by
 * size. Prints a table (or one JSON object with --json, in the shape that
 * docs/METHOD.md §7 fixes, with extra fields) and writes the JSON to results/bench.json
 * (or --out). The machine's load average is recorded too: on a shared machine, read the
 * numbers next to it.
 *
 * Its `runs` section is scripts/bench-runs.ts's measurement: the wall time of one fixed small
 * experiment (8 runs) serially in this process (its thread setting: all cores unless
 * TF_NUM_INTRAOP_THREADS says), with the local worker pool at 2 workers and through Redis (a
 * throwaway redis-server here) with 2 queue workers, one TensorFlow thread per worker.
 *
 * TensorFlow's threads: `--threads N` (or "N,M": intra-op, inter-op) or MERGENET_THREADS, as
 * src/backend/index.ts reads them; the setting in force is the JSON's `tf_threads`.
 *
 * `--quick` is one timed epoch per mode, the small adapter and SVD shapes only, and 2 epochs
 * per run in `runs` (10 otherwise); `--largest` adds the adapter at 512x4096 -> 512x4096
 * (about 11 GB of memory).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { initBackend, tf } from "../src/backend/index";
import { meterNativeOps, type NativeOpMeter } from "../src/backend/op-meter";
import { AdamW } from "../src/core/adamw";
import { ParameterAdapter } from "../src/core/adapter/parameter-adapter";
import { truncatedSvd } from "../src/core/lowrank";
import { WriteBack } from "../src/core/writeback";
import { benchRuns } from "./bench-runs";
import { BENCH_BATCH, BENCH_MERGENET, BENCH_MODES, BENCH_SAMPLES, benchWorkload, type BenchMode } from "../src/experiments/bench-mnist";

interface Args {
  json: boolean;
  quick: boolean;
  /** Also time the adapter at 512x4096 -> 512x4096 (about 11 GB and a minute or more). */
  largest: boolean;
  repeats: number;
  out: string;
  /** TensorFlow intra-op and inter-op threads (--threads N or N,M); undefined: the environment's. */
  threads?: { intra: number; inter: number };
}

function parseArgs(argv: string[]): Args {
  const args: Args = { json: false, quick: false, largest: false, repeats: 3, out: path.join("results", "bench.json") };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") args.json = true;
    else if (a === "--quick") args.quick = true;
    else if (a === "--largest") args.largest = true;
    else if (a === "--repeats") args.repeats = Number(argv[++i]);
    else if (a === "--out") args.out = argv[++i];
    else if (a === "--threads") {
      const counts: number[] = (argv[++i] ?? "").split(",").map(Number);
      const [intra, inter = intra] = counts;
      if (![intra, inter].every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`--threads takes N or N,M (whole numbers >= 1)`);
      args.threads = { intra, inter };
    } else throw new Error(`unknown argument '${a}'; use --json, --quick, --largest, --repeats N, --out FILE, --threads N[,M]`);
  }
  if (!Number.isInteger(args.repeats) || args.repeats < 1) throw new Error(`--repeats takes a whole number >= 1`);
  if (args.quick) args.repeats = 1;
  return args;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const peakRssMb = (): number => round(process.resourceUsage().maxRSS / 1024, 1);
const loadAverage = (): number[] => os.loadavg().map((x) => round(x, 2));

const WARMUP_BATCHES = 20;
const STEPS_PER_EPOCH = Math.ceil(BENCH_SAMPLES / BENCH_BATCH);
/** Global steps metered for native ops after the timed epochs (a whole number of MergeNet cycles). */
const METERED_STEPS = 20;
/** Op names listed per metered call. */
const TOP_OPS = 8;

/**
 * What meterNativeOps saw, per `per` calls: native ops, the ms inside them, and the top op
 * names by time. Undefined on a backend without native ops.
 */
function nativeOpsPer(ops: NativeOpMeter | undefined, per: number) {
  if (!ops) return undefined;
  return {
    ops: round(ops.count / per, 1),
    ms: round(ops.ms / per, 3),
    top: ops.byOp.slice(0, TOP_OPS).map((s) => ({ op: s.op, ops: round(s.count / per, 2), ms: round(s.ms / per, 3) })),
  };
}

async function benchMode(mode: BenchMode, repeats: number) {
  const work = await benchWorkload(mode, 0);
  const trainer = work.trainer;
  for (let i = 0; i < WARMUP_BATCHES; i++) trainer.trainStep();
  await trainer.trainEpoch(); // finishes the warm-up epoch so each timed run is one whole epoch
  const tensorsBefore = tf.memory().numTensors;
  const epochs: number[] = [];
  trainer.startProfiling();
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    await trainer.trainEpoch();
    epochs.push((performance.now() - start) / 1000);
  }
  const profile = trainer.profile() ?? {};
  const steps = repeats * STEPS_PER_EPOCH;
  const tensorsAfter = tf.memory().numTensors;
  // Apart from the timed epochs (the meter's clock costs about a microsecond per op).
  const metered = await meterNativeOps(() => {
    for (let i = 0; i < METERED_STEPS; i++) trainer.trainStep();
  });
  work.dispose();
  const epoch = median(epochs);
  return {
    epoch_s: round(epoch, 3),
    samples_per_s: round(BENCH_SAMPLES / epoch, 1),
    epochs_s: epochs.map((e) => round(e, 3)),
    // Milliseconds per global step, averaged over all timed steps (phases that run only on
    // transfer steps, every `cycle`-th, are averaged over all steps too).
    step_ms: Object.fromEntries(Object.entries(profile).map(([k, v]) => [k, round(v.ms / steps, 3)])),
    // Calls per step of each phase (0.5 = every second step).
    calls_per_step: Object.fromEntries(Object.entries(profile).map(([k, v]) => [k, round(v.calls / steps, 3)])),
    tensors_before: tensorsBefore,
    tensors_after: tensorsAfter,
    // Native TensorFlow ops per global step (src/backend/op-meter.ts), over METERED_STEPS steps.
    native_per_step: nativeOpsPer(metered.ops, METERED_STEPS),
    load_average: loadAverage(),
  };
}

/**
 * The adapter alone for one pair of shapes, as the trainer runs it at a transfer: forward in
 * training mode (dropout on, spectral norm refreshed) with write-back, then the same forward
 * on the gradient tape and its vector-Jacobian product with a fixed cotangent, then one AdamW
 * step. `repeats` timed runs after one warm-up (none when `repeats` is 1: the largest shapes).
 */
async function benchAdapter(source: [number, number], target: [number, number], repeats: number) {
  const adapter = new ParameterAdapter({ ...BENCH_MERGENET.adapter, sourceShape: source, targetShape: target, seed: 1 });
  const writeback = new WriteBack("interp");
  const vars = [...adapter.variables, ...writeback.variables];
  const optimizer = new AdamW(vars, BENCH_MERGENET.adapterOptimizer);
  const s = tf.randomNormal(source, 0, 0.05, "float32", 1) as tf.Tensor2D;
  const t = tf.randomNormal(target, 0, 0.05, "float32", 2) as tf.Tensor2D;
  const cotangent = tf.randomNormal(target, 0, 0.01, "float32", 3);
  const opts = { training: true, dropoutSeed: 3, updateSpectral: false };
  const generate = () => writeback.apply(adapter.forward(s, t, opts), t);
  const forward = () => {
    adapter.refreshSpectral();
    tf.tidy(generate).dispose();
  };
  const backward = () => {
    adapter.refreshSpectral();
    const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(generate(), cotangent)) as tf.Scalar, vars);
    tf.dispose([optimizer.step(grads), grads, value]);
  };
  const time = (fn: () => void): number => {
    const times: number[] = [];
    for (let r = 0; r < repeats + (repeats > 1 ? 1 : 0); r++) {
      const start = performance.now();
      fn();
      times.push(performance.now() - start);
    }
    return round(median(repeats > 1 ? times.slice(1) : times), 2);
  };
  const forwardMs = time(forward);
  const updateMs = time(backward);
  // Tensor ops (kernels) per call: on the native backend each costs a fixed 20-30 µs.
  const kernels = async (fn: () => void): Promise<number> => (await tf.profile(fn)).kernels.filter((k) => k.name !== "unnamed scope").length;
  const forwardKernels = repeats > 1 ? await kernels(forward) : undefined;
  const updateKernels = repeats > 1 ? await kernels(backward) : undefined;
  // The native TensorFlow ops behind them (fewer: some tfjs kernels run none).
  const forwardNative = repeats > 1 ? (await meterNativeOps(forward)).ops : undefined;
  const updateNative = repeats > 1 ? (await meterNativeOps(backward)).ops : undefined;
  const parameters = vars.reduce((n, v) => n + v.size, 0);
  tf.dispose([s, t, cotangent]);
  optimizer.dispose();
  adapter.dispose();
  writeback.dispose();
  return {
    source: `${source[0]}x${source[1]}`,
    target: `${target[0]}x${target[1]}`,
    parameters,
    runs: repeats,
    forward_ms: forwardMs,
    forward_backward_adamw_ms: updateMs,
    forward_kernels: forwardKernels,
    forward_backward_adamw_kernels: updateKernels,
    forward_native: nativeOpsPer(forwardNative, 1),
    forward_backward_adamw_native: nativeOpsPer(updateNative, 1),
    peak_rss_mb: peakRssMb(),
  };
}

function benchSvd(size: number, rank: number, repeats: number) {
  const m = tf.randomNormal([size, size], 0, 1, "float32", size) as tf.Tensor2D;
  const time = (method: "exact" | "randomized", runs: number) => {
    const times: number[] = [];
    for (let r = 0; r < runs + 1; r++) {
      const start = performance.now();
      const out = truncatedSvd(m, rank, { method });
      tf.dispose([out.u, out.s, out.v]);
      if (r > 0 || runs === 0) times.push(performance.now() - start);
    }
    return round(median(times), 1);
  };
  // The exact SVD of a 1024x1024 matrix takes many seconds: one run, no warm-up.
  const exactRuns = size >= 1024 ? 0 : repeats;
  const result = { size: `${size}x${size}`, rank, exact_ms: time("exact", exactRuns), randomized_ms: time("randomized", repeats) };
  m.dispose();
  return result;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const info = await initBackend(undefined, { threads: args.threads });
  const loadAtStart = loadAverage();
  const tensorsAtStart = tf.memory().numTensors;
  const modes: Record<string, Awaited<ReturnType<typeof benchMode>>> = {};
  for (const mode of BENCH_MODES) modes[mode] = await benchMode(mode, args.repeats);
  const benchRss = peakRssMb();
  const tensorsAtEnd = tf.memory().numTensors;
  // Shape pairs [source, target] as [rows, cols] and timed runs: bench-mnist's pair, the
  // CNN's fc1 kernel into the MLP's classifier, then square ones. The issue's largest,
  // 512x4096 -> 512x4096 (178M adapter parameters; measured here: peak RSS 10.8 GB, 9 s
  // forward, about a minute forward + backward on 2 cores), only with --largest.
  const adapterShapes: [[number, number], [number, number], number][] = args.quick
    ? [[[10, 128], [128, 256], 3], [[128, 3136], [10, 128], 2]]
    : [
        [[10, 128], [128, 256], 5],
        [[128, 3136], [10, 128], 3],
        [[256, 512], [256, 512], 3],
        [[512, 1024], [512, 1024], 2],
        [[512, 2048], [512, 2048], 1],
        ...(args.largest ? [[[512, 4096], [512, 4096], 1] as [[number, number], [number, number], number]] : []),
      ];
  const adapter: Awaited<ReturnType<typeof benchAdapter>>[] = [];
  for (const [s, t, repeats] of adapterShapes) adapter.push(await benchAdapter(s, t, repeats));
  const svd = (args.quick ? [128, 256] : [128, 256, 512, 1024]).map((n) => benchSvd(n, 32, args.quick ? 1 : 3));
  const runs = await benchRuns({ workers: [1, 2], redis: 2, threads: 1, epochs: args.quick ? 2 : 10, progress: false });
  const result = {
    backend: info.name,
    threads: info.cores,
    // TensorFlow's intra-op and inter-op thread pools as set at load ("default": all cores).
    tf_threads: info.threads ?? null,
    cpu: os.cpus()[0]?.model ?? "unknown",
    node: process.version,
    tfjs: tf.version.tfjs,
    samples: BENCH_SAMPLES,
    batch: BENCH_BATCH,
    repeats: args.repeats,
    load_average_start: loadAtStart,
    modes,
    mergenet_over_pair: round(modes.mergenet.epoch_s / modes.pair.epoch_s, 3),
    peak_rss_mb: benchRss,
    tensors_at_start: tensorsAtStart,
    tensors_after_modes: tensorsAtEnd,
    adapter,
    adapter_skipped: args.largest || args.quick ? undefined : "512x4096 -> 512x4096 (178M parameters, about 11 GB): run with --largest",
    svd,
    runs,
    peak_rss_total_mb: peakRssMb(),
    load_average_end: loadAverage(),
  };
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const phases = (m: string) => Object.entries(modes[m].step_ms).map(([k, v]) => `${k} ${v}`).join(", ");
  const lines = [
    `bench-mnist on ${result.backend} (${result.threads} cores, ${result.cpu}; node ${result.node}, tfjs ${result.tfjs}), ` +
      `${result.samples} samples, batch ${result.batch}, median of ${result.repeats}; ` +
      `TensorFlow threads ${info.threads ? `${info.threads.intra} intra-op / ${info.threads.inter} inter-op` : "n/a"}; load average at start ${loadAtStart.join(" ")}`,
    ...BENCH_MODES.map((m) => `  ${m.padEnd(13)} ${modes[m].epoch_s.toFixed(2)} s/epoch  ${modes[m].samples_per_s.toFixed(0)} samples/s  tensors ${modes[m].tensors_before} -> ${modes[m].tensors_after}`),
    `  mergenet / pair: ${result.mergenet_over_pair}`,
    "  ms per step:",
    ...BENCH_MODES.map((m) => `    ${m.padEnd(13)} ${phases(m)}`),
    `  native TensorFlow ops per step (${METERED_STEPS} steps metered apart from the timing; ms inside TensorFlow; top ops by time):`,
    ...BENCH_MODES.map((m) => `    ${m.padEnd(13)} ${nativeText(modes[m].native_per_step)}`),
    `  peak RSS (bench-mnist): ${result.peak_rss_mb} MB; live tensors ${tensorsAtStart} before the modes, ${tensorsAtEnd} after`,
    "adapter alone (training forward; forward on the tape + backward + AdamW):",
    ...adapter.map(
      (a) =>
        `  ${a.source} -> ${a.target}: ${a.forward_ms} ms; ${a.forward_backward_adamw_ms} ms` +
        (a.forward_kernels === undefined ? "" : ` (${a.forward_kernels}; ${a.forward_backward_adamw_kernels} ops)`) +
        (a.forward_native && a.forward_backward_adamw_native ? ` (native ${a.forward_native.ops}; ${a.forward_backward_adamw_native.ops})` : "") +
        ` [${a.parameters} parameters, ${a.runs} run(s), peak RSS ${a.peak_rss_mb} MB]`,
    ),
    "truncated SVD (rank 32):",
    ...svd.map((s) => `  ${s.size}: exact ${s.exact_ms} ms, randomized ${s.randomized_ms} ms`),
    `runs: one experiment of 8 runs (${runs.epochs} epochs each), wall time:`,
    ...runs.rows.map((r) =>
      r.error
        ? `  ${r.executor} with ${r.workers} workers: not measured: ${r.error}`
        : `  ${r.executor.padEnd(6)} ${String(r.workers)} worker(s), TF threads per run ${r.threadsPerRun}: ${r.seconds} s; load average ${r.loadBefore} -> ${r.loadAfter}; same results as the first at that thread setting: ${r.sameResultsAsFirst}`,
    ),
    `load average at end ${result.load_average_end.join(" ")}; written to ${args.out}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** "N ops, M ms: op n×/ms, ..." for one metered entry. */
function nativeText(n: ReturnType<typeof nativeOpsPer>): string {
  if (!n) return "not metered (no native backend)";
  return `${n.ops} ops, ${n.ms} ms: ${n.top.map((t) => `${t.op} ${t.ops}x/${t.ms}`).join(", ")}`;
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
