/**
 * The queue's worker (issue 15, second part; scripts/worker.ts starts it: `npm run worker --
 * --redis URL`): takes runs from the BullMQ queue JOBS_QUEUE one at a time, checks each as
 * the local pool's worker does (prepareJob: the runner version and configuration hash must be
 * this code's, else the run is refused in words that reach the submitter), trains it with the
 * runner's trainOne and adds the RunResult to the submitter's results queue. It writes no
 * result file: the submitter does.
 *
 * A run that throws or is refused fails at once (UnrecoverableError: no retry; the submitter
 * fails the experiment with the message). While a run trains, BullMQ renews its lock every
 * lockMs / 2; a worker that dies stops renewing it, and after lockMs another worker's stalled
 * check (every stalledMs) puts the run back in the queue. The lock is long (DEFAULT_LOCK_MS)
 * because TensorFlow work holds the event loop between the trainer's yields (a scenario's
 * build, an evaluation): a lock that expires under a live worker would have its run trained
 * twice (harmless, the submitter writes the first result, but wasted).
 */
import * as os from "os";
import { Queue, UnrecoverableError, Worker } from "bullmq";
import type { EpochRecord } from "../core/loop";
import { logger, messageOf } from "../log";
import { JOBS_QUEUE, redisOptions, safeUrl, type QueueJobData, type QueueProgress, type QueueResultData } from "./queue";
import { trainOne } from "./train-run";
import { type RunResult } from "./records";
import { prepareJob } from "./worker";

/** How long a run's lock lasts without renewal: a dead worker's run goes to another worker after about this long. */
export const DEFAULT_LOCK_MS = 120_000;

/** How often each worker looks for runs whose lock expired. */
export const DEFAULT_STALLED_MS = 30_000;

export interface QueueWorkerOptions {
  url: string;
  /** Lock duration in ms (default MERGENET_QUEUE_LOCK_MS, else DEFAULT_LOCK_MS; tests shorten it). */
  lockMs?: number;
  /** Stalled-check interval in ms (default MERGENET_QUEUE_STALLED_MS, else DEFAULT_STALLED_MS). */
  stalledMs?: number;
}

export interface QueueWorker {
  /** host:pid, as the submitter's messages name it. */
  name: string;
  /** Stops taking runs; waits for the current one to finish unless `force`. */
  close(force?: boolean): Promise<void>;
}

function milliseconds(option: number | undefined, variable: string, fallback: number): number {
  const value = option ?? (process.env[variable] ? Number(process.env[variable]) : fallback);
  if (!Number.isInteger(value) || value < 100) {
    throw new Error(`${variable} must be a whole number of milliseconds >= 100, got ${JSON.stringify(process.env[variable])}`);
  }
  return value;
}

/** Starts taking runs from the queue on `url` (the backend must be initialised, and Redis reachable: checkRedis). */
export function startQueueWorker(options: QueueWorkerOptions): QueueWorker {
  const name = `${os.hostname()}:${process.pid}`;
  const connection = { ...redisOptions(options.url), maxRetriesPerRequest: null };
  const replies = new Map<string, Queue<QueueResultData>>();
  const reply = (queueName: string): Queue<QueueResultData> => {
    if (!replies.has(queueName)) replies.set(queueName, new Queue<QueueResultData>(queueName, { connection }));
    return replies.get(queueName)!;
  };

  const worker = new Worker<QueueJobData>(
    JOBS_QUEUE,
    async (job) => {
      const data = job.data;
      const what = `'${data.methodName}' seed ${data.seed} of ${data.config?.name}`;
      logger.info(`worker ${name}: ${what}: started`);
      let prepared;
      try {
        prepared = prepareJob(data);
      } catch (err) {
        logger.warn(`worker ${name}: refused ${what}: ${messageOf(err)}`);
        throw new UnrecoverableError(`worker ${name} refused the run: ${messageOf(err)}`);
      }
      const progress = (update: QueueProgress): void => void job.updateProgress(update as unknown as object).catch(() => undefined);
      progress({ worker: name });
      let run: RunResult;
      try {
        const hooks = { epoch: (record: EpochRecord, epochs: number) => progress({ worker: name, record, epochs }) };
        run = await trainOne(prepared.scenario, { ...data, method: prepared.method }, hooks);
      } catch (err) {
        throw new UnrecoverableError(`${messageOf(err)} (on worker ${name})`);
      }
      const result: QueueResultData = { configHash: data.configHash, run, worker: name };
      await reply(data.replyTo).add("result", result, { jobId: job.id, removeOnComplete: true, removeOnFail: true });
      logger.info(`worker ${name}: ${what}: done in ${run.wallSeconds.toFixed(1)} s`);
    },
    {
      connection,
      name,
      concurrency: 1, // one TensorFlow run at a time: start one worker process per core instead
      lockDuration: milliseconds(options.lockMs, "MERGENET_QUEUE_LOCK_MS", DEFAULT_LOCK_MS),
      stalledInterval: milliseconds(options.stalledMs, "MERGENET_QUEUE_STALLED_MS", DEFAULT_STALLED_MS),
      maxStalledCount: 1,
    },
  );
  let lastError = "";
  worker.on("error", (err) => {
    if (err.message !== lastError) logger.warn(`worker ${name}: Redis at ${safeUrl(options.url)}: ${err.message}`);
    lastError = err.message;
  });
  return {
    name,
    async close(force = false) {
      await worker.close(force);
      await Promise.allSettled([...replies.values()].map((q) => q.close()));
    },
  };
}
