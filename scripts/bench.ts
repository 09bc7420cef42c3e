/**
 * `npm run bench [-- --json] [--quick] [--repeats N] [--out FILE]`: the performance harness.
 *
 * Runs bench-mnist (src/experiments/bench-mnist.ts) in three modes, target-alone, pair and
 * mergenet: per mode a 20-batch warm-up, then `repeats` timed epochs (157 steps each), and
 * reports the median. Also: the per-phase time of a MergeNet step, the adapter's forward +
 * backward alone over a range of matrix shapes, exact vs randomized SVD by size, peak RSS,
 * and the live tensor count before and after. Prints a table (or one JSON object with
 * --json) and writes the JSON to results/bench.json (or --out).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { initBackend, tf } from "../src/backend";
import { ParameterAdapter } from "../src/core/adapter";
import { truncatedSvd } from "../src/core/lowrank";
import { WriteBack } from "../src/core/writeback";
import { BENCH_BATCH, BENCH_MERGENET, BENCH_MODES, BENCH_SAMPLES, benchWorkload, type BenchMode } from "../src/experiments/bench-mnist";

interface Args {
  json: boolean;
  quick: boolean;
  repeats: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { json: false, quick: false, repeats: 3, out: path.join("results", "bench.json") };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") args.json = true;
    else if (a === "--quick") args.quick = true;
    else if (a === "--repeats") args.repeats = Number(argv[++i]);
    else if (a === "--out") args.out = argv[++i];
    else throw new Error(`unknown argument '${a}'; use --json, --quick, --repeats N, --out FILE`);
  }
  if (!Number.isInteger(args.repeats) || args.repeats < 1) throw new Error(`--repeats takes a whole number >= 1`);
  if (args.quick) args.repeats = 1;
  return args;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const WARMUP_BATCHES = 20;

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
  const steps = repeats * Math.ceil(BENCH_SAMPLES / BENCH_BATCH);
  const tensorsAfter = tf.memory().numTensors;
  work.dispose();
  const epoch = median(epochs);
  return {
    epoch_s: round(epoch, 3),
    samples_per_s: round(BENCH_SAMPLES / epoch, 1),
    epochs_s: epochs.map((e) => round(e, 3)),
    step_ms: Object.fromEntries(Object.entries(profile).map(([k, v]) => [k, round(v.ms / steps, 3)])),
    tensors_before: tensorsBefore,
    tensors_after: tensorsAfter,
  };
}

/** Adapter forward + backward (one training-mode call and its VJP) for a pair of shapes. */
function benchAdapter(source: [number, number], target: [number, number], repeats: number) {
  const adapter = new ParameterAdapter({ ...BENCH_MERGENET.adapter, sourceShape: source, targetShape: target, seed: 1 });
  const writeback = new WriteBack("interp");
  const s = tf.randomNormal(source, 0, 0.05, "float32", 1) as tf.Tensor2D;
  const t = tf.randomNormal(target, 0, 0.05, "float32", 2) as tf.Tensor2D;
  const vars = [...adapter.variables, ...writeback.variables];
  const run = () => {
    const written = tf.tidy(() => writeback.apply(adapter.forward(s, t, { training: true, dropoutSeed: 3 }), t));
    const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(writeback.apply(adapter.forward(s, t, { training: true, dropoutSeed: 3, updateSpectral: false }), t), written)) as tf.Scalar, vars);
    tf.dispose([written, grads, value]);
  };
  run();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  const parameters = vars.reduce((n, v) => n + v.size, 0);
  tf.dispose([s, t]);
  adapter.dispose();
  writeback.dispose();
  return { source: `${source[0]}x${source[1]}`, target: `${target[0]}x${target[1]}`, parameters, forward_backward_ms: round(median(times), 2) };
}

function benchSvd(size: number, rank: number, repeats: number) {
  const m = tf.randomNormal([size, size], 0, 1, "float32", size) as tf.Tensor2D;
  const time = (method: "exact" | "randomized") => {
    const times: number[] = [];
    for (let r = 0; r < repeats + 1; r++) {
      const start = performance.now();
      const out = truncatedSvd(m, rank, { method });
      tf.dispose([out.u, out.s, out.v]);
      if (r > 0) times.push(performance.now() - start);
    }
    return round(median(times), 1);
  };
  const result = { size: `${size}x${size}`, rank, exact_ms: time("exact"), randomized_ms: time("randomized") };
  m.dispose();
  return result;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const info = await initBackend();
  const modes: Record<string, Awaited<ReturnType<typeof benchMode>>> = {};
  for (const mode of BENCH_MODES) modes[mode] = await benchMode(mode, args.repeats);
  const adapterShapes: [[number, number], [number, number]][] = args.quick
    ? [[[10, 128], [128, 256]], [[128, 3136], [10, 128]]]
    : [[[10, 128], [128, 256]], [[128, 3136], [10, 128]], [[256, 512], [256, 512]], [[512, 1024], [512, 1024]], [[512, 4096], [512, 4096]]];
  const adapter = adapterShapes.map(([s, t]) => benchAdapter(s, t, args.quick ? 2 : 5));
  const svd = (args.quick ? [128, 256] : [128, 256, 512, 1024]).map((n) => benchSvd(n, 32, args.quick ? 1 : 3));
  const result = {
    backend: info.name,
    threads: info.cores,
    cpu: os.cpus()[0]?.model ?? "unknown",
    samples: BENCH_SAMPLES,
    batch: BENCH_BATCH,
    repeats: args.repeats,
    modes,
    mergenet_over_pair: round(modes.mergenet.epoch_s / modes.pair.epoch_s, 3),
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
    adapter,
    svd,
  };
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const lines = [
    `bench-mnist on ${result.backend} (${result.threads} cores, ${result.cpu}), ${result.samples} samples, batch ${result.batch}, median of ${result.repeats}`,
    ...BENCH_MODES.map((m) => `  ${m.padEnd(13)} ${modes[m].epoch_s.toFixed(2)} s/epoch  ${modes[m].samples_per_s.toFixed(0)} samples/s  tensors ${modes[m].tensors_before} -> ${modes[m].tensors_after}`),
    `  mergenet / pair: ${result.mergenet_over_pair}`,
    `  mergenet step breakdown (ms/step): ${JSON.stringify(modes.mergenet.step_ms)}`,
    `  peak RSS: ${result.peak_rss_mb} MB`,
    "adapter forward+backward:",
    ...adapter.map((a) => `  ${a.source} -> ${a.target}: ${a.forward_backward_ms} ms (${a.parameters} parameters)`),
    "truncated SVD (rank 32):",
    ...svd.map((s) => `  ${s.size}: exact ${s.exact_ms} ms, randomized ${s.randomized_ms} ms`),
    `written to ${args.out}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
