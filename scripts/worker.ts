/**
 * `npm run worker -- --redis redis://host:port [--threads N]`: a queue worker (issue 15): takes
 * the runs that `npm start -- --redis URL` (or runExperiment with RunOptions.redis) puts on the
 * BullMQ queue in that Redis, trains them one at a time and sends each result back to the
 * submitter, which writes the result files (src/experiments/queue.ts, queue-worker.ts).
 * Start one per core on each machine that has this repository (same commit: a worker whose
 * runner version or configuration hash differs refuses the runs, in words).
 *
 * `--threads` is TensorFlow's intra-op threads for each run (default 1, as the local pool's
 * workers; MERGENET_WORKER_THREADS); results are bit-identical to a serial run with the same
 * setting. The URL may also come from MERGENET_REDIS. An unreachable Redis fails within
 * seconds. Ctrl-C: the current run finishes and is sent, then the worker exits (a second
 * Ctrl-C quits at once; that run goes to another worker once its lock expires).
 */
import { initBackend, type BackendName } from "../src/backend/index";
import { logger } from "../src/log";
import { resolveThreadsPerWorker } from "../src/experiments/pool";
import { checkRedis, JOBS_QUEUE, resolveRedis, safeUrl, watchConnection } from "../src/experiments/queue";
import { startQueueWorker } from "../src/experiments/queue-worker";

const USAGE = "usage: npm run worker -- --redis redis://host:port [--threads N]";

function parseArgs(argv: string[]): { url: string; threads: number } {
  let url: string | undefined;
  let threads: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--redis") url = argv[++i];
    else if (argv[i] === "--threads") threads = Number(argv[++i]);
    else throw new Error(`unknown argument '${argv[i]}'; ${USAGE}`);
  }
  const redis = resolveRedis(url);
  if (!redis) throw new Error(`no Redis URL: pass --redis redis://host:port or set MERGENET_REDIS; ${USAGE}`);
  return { url: redis, threads: resolveThreadsPerWorker(threads) };
}

async function main(): Promise<void> {
  const { url, threads } = parseArgs(process.argv.slice(2));
  await checkRedis(url); // before loading TensorFlow: a wrong URL fails in a second
  process.env.TF_NUM_INTRAOP_THREADS = String(threads); // read when the native backend loads, just below
  const backend = await initBackend(process.env.MERGENET_BACKEND as BackendName | undefined);
  require("../src/experiments/scenarios/index");
  const worker = startQueueWorker({ url });
  const health = watchConnection(url, (error) => {
    logger.warn(`worker ${worker.name}: ${error.message}`);
    process.exit(1);
  });
  logger.info(`worker ${worker.name}: waiting for runs on ${safeUrl(url)} (queue ${JOBS_QUEUE}; backend ${backend.name}, ${threads} TensorFlow thread(s) per run)`);
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(130);
    stopping = true;
    logger.warn(`worker ${worker.name}: ${signal}: finishing the current run, if any, then exiting (send it again to quit at once)`);
    void worker.close().then(() => {
      health.disconnect();
      process.exit(0);
    });
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err) => {
  process.stderr.write(`worker failed: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
