/**
 * Runs as jobs across machines (issue 15, second part): an experiment's pending runs go to a
 * BullMQ queue in Redis, and `npm run worker -- --redis URL` processes (queue-worker.ts), on
 * any machine with this repository, train them. runExperiment uses it when RunOptions.redis
 * or MERGENET_REDIS (`npm start -- --redis URL`) names a Redis server; `npm start` without
 * `--redis` sets MERGENET_REDIS to a private Redis of its own on this machine, with its own
 * workers (local-redis.ts startLocalQueue), so every notebook it executes shares them.
 *
 * How a run travels:
 * - The submitter adds one job per pending run to JOBS_QUEUE, the queue every worker takes
 *   from. Its data is the WorkerJob the local pool sends (plain JSON) plus the name of the
 *   submitter's own results queue; its id is the submitter's id and the run's configuration
 *   hash, so adding a run that is still queued or in training (a resumed submitter) adds nothing.
 * - A worker checks the job (runner version and configuration hash must be its own; otherwise
 *   it refuses the run, in words), trains it with trainOne (train-run.ts), exactly as the local
 *   pool's worker does, and adds the RunResult to the submitter's results queue under the
 *   run's job id. The submitter takes it from there by that id and writes the result file
 *   (atomically, as always): only the submitter writes files, and it writes each run once
 *   (the first result it gets for it).
 * - The results queue is named after the experiment and a hash of this host and the results
 *   folder (`mergenet-results-<experiment>-<hash>`), so submitters of other hosts or folders
 *   never see each other's results, and results that arrive while the submitter is stopped
 *   wait there for the same command to run again. Two submitters of the same experiment into
 *   the same folder (two notebooks) share it, but hold different runs (the runner locks each
 *   run before submitting it: run-lock.ts), and each takes only its own runs' results.
 * - A worker that dies mid-run stops renewing its job's lock; another worker's stalled-job
 *   check puts the job back in the queue (BullMQ's stalled jobs), once: a second stall fails
 *   the run, as a second death does in the local pool. A run that throws, or that a worker
 *   refuses, fails in BullMQ with the worker's message; the submitter hears it (QueueEvents)
 *   and fails the experiment with it, as a serial run would.
 * - On SIGINT/SIGTERM or a failure the submitter withdraws its runs still waiting in the
 *   queue; runs in training finish on their workers and their results wait in the results
 *   queue for the next session.
 * - Redis: an unreachable server fails within CONNECT_TIMEOUT_MS with an error naming the URL
 *   (ioredis would otherwise retry forever); a connection lost later is retried for about
 *   RECONNECT_SECONDS, then fails the experiment.
 *
 * A worker trains with its own thread setting (`--threads`, default 1 as the local pool's
 * workers): given the same setting, a run's result is bit-identical to a serial run's.
 */
import * as crypto from "crypto";
import * as os from "os";
import * as path from "path";
import { Queue, QueueEvents } from "bullmq";
import IORedis, { type RedisOptions } from "ioredis";
import type { EpochRecord } from "../core/loop";
import { logger } from "../log";
import { REPO_ROOT } from "../paths";
import { label, runFailure, workerJob, type ExecutorHooks, type PoolJob, type RunExecutor, type WorkerJob } from "./pool";
import type { RunResult } from "./records";

/** The queue every worker takes runs from (one per Redis server; its jobs name their submitter). */
export const JOBS_QUEUE = "mergenet-runs";

/** How long connecting to Redis may take before it counts as unreachable. */
export const CONNECT_TIMEOUT_MS = 3000;

/** How long a connection lost mid-experiment is retried before the experiment fails. */
export const RECONNECT_SECONDS = 30;

/** A run on the queue: what the local pool's worker gets, and where to send the result. */
export interface QueueJobData extends WorkerJob {
  /** The submitter's results queue. */
  replyTo: string;
}

/** A result on a submitter's results queue. */
/** How a run's job is added to the queue (BullMQ's job options that this module sets). */
interface QueueJobOptions {
  jobId: string;
  attempts: number;
  removeOnComplete: boolean;
  removeOnFail: boolean;
}

export interface QueueResultData {
  configHash: string;
  run: RunResult;
  /** The worker that trained it (host:pid). */
  worker: string;
}

/** What a worker reports through job.updateProgress: who took the run, and each epoch. */
export interface QueueProgress {
  worker: string;
  record?: EpochRecord;
  epochs?: number;
}

/**
 * The Redis URL to submit to: the option, else MERGENET_REDIS (set by `npm start -- --redis
 * URL`) unless the caller chose a number of local workers in code; undefined: no queue.
 */
export function resolveRedis(option?: string, workersOption?: number): string | undefined {
  const url = option ?? (workersOption === undefined ? process.env.MERGENET_REDIS : undefined);
  return url ? url : undefined;
}

/** The URL without its password, for messages. */
export function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return url;
  }
}

/** Reconnection delays in ms (about RECONNECT_SECONDS in all), then null: give up, the client ends. */
function reconnectDelay(times: number): number | null {
  const delay = Math.min(times * 500, 2000);
  let total = 0;
  for (let t = 1; t < times; t++) total += Math.min(t * 500, 2000);
  return total + delay > RECONNECT_SECONDS * 1000 ? null : delay;
}

/**
 * ioredis options for `url` (redis://[user:password@]host:port[/db], or rediss:// for TLS),
 * with a bounded connect time and bounded reconnection instead of ioredis's endless retries.
 */
export function redisOptions(url: string): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`'${url}' is not a Redis URL; write it as redis://host:port (for example redis://127.0.0.1:6379)`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new Error(`'${safeUrl(url)}' is not a Redis URL (it must start with redis:// or rediss://); for example redis://127.0.0.1:6379`);
  }
  const db = parsed.pathname.replace(/^\//, "");
  if (db && !/^\d+$/.test(db)) throw new Error(`'${safeUrl(url)}': the path must be a database number (redis://host:port/0), got '${db}'`);
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: parsed.port ? Number(parsed.port) : 6379,
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    db: db ? Number(db) : undefined,
    tls: parsed.protocol === "rediss:" ? {} : undefined,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: reconnectDelay,
  };
}

/**
 * Connects to `url` once, without retrying, and pings it: throws within about
 * CONNECT_TIMEOUT_MS, naming the URL and what to do, when Redis cannot be reached.
 */
export async function checkRedis(url: string): Promise<void> {
  const client = new IORedis({ ...redisOptions(url), lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  let cause = ""; // the socket's error (ECONNREFUSED, ...), more telling than the "Connection is closed" that follows it
  client.on("error", (err: Error) => (cause ||= err.message));
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS + 500);
    });
    await Promise.race([client.connect().then(() => client.ping()), timeout]);
  } catch (err) {
    const why = cause || (err instanceof Error ? err.message : String(err));
    throw new Error(
      `cannot reach Redis at ${safeUrl(url)} (${why}): start a Redis server there (for example \`redis-server --port 6379\`) ` +
        "or give the right URL with --redis / MERGENET_REDIS",
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

/**
 * A client that only watches the connection: `onLost` is called when it gives up
 * reconnecting (its 'end' event, after about RECONNECT_SECONDS), Redis being gone for good.
 */
export function watchConnection(url: string, onLost: (error: Error) => void): IORedis {
  const client = new IORedis({ ...redisOptions(url), maxRetriesPerRequest: 1 });
  let last = "";
  client.on("error", (err: Error) => (last = err.message));
  client.on("end", () => {
    const why = `${RECONNECT_SECONDS} s (${last || "closed"})`;
    onLost(new Error(`lost the connection to Redis at ${safeUrl(url)} for ${why}; check the server, then run the same command again to resume`));
  });
  return client;
}

/** This submitter's id: the experiment and a hash of this host and the results folder. */
export function submitterId(experiment: string, resultsDir: string): string {
  const where = crypto.createHash("sha256").update(`${os.hostname()}\n${path.resolve(resultsDir)}`).digest("hex").slice(0, 10);
  return `${experiment}-${where}`;
}

/** A module path as a worker on another machine can find it: relative to the repository when inside it. */
function portable(module: string): string {
  const relative = path.relative(REPO_ROOT, path.resolve(module));
  return relative.startsWith("..") || path.isAbsolute(relative) ? path.resolve(module) : relative;
}

export interface RedisExecutorOptions {
  url: string;
  experiment: string;
  resultsDir: string;
  /** Modules the workers import to register the experiment's scenario (RunOptions.scenarioModules). */
  modules: string[];
}

/** Workers anywhere, through a BullMQ queue on Redis. */
export class RedisExecutor implements RunExecutor {
  private constructor(private readonly options: RedisExecutorOptions, readonly workers: number) {}

  readonly stopping =
    "withdrawing the runs waiting in the Redis queue; runs in training finish on their workers and are collected next time; finished runs are kept";

  /**
   * Checks that Redis answers (fails fast otherwise) and counts the workers listening, for
   * the progress's ETA; with none, says how to start one (the runs wait for it).
   */
  static async open(options: RedisExecutorOptions): Promise<RedisExecutor> {
    await checkRedis(options.url);
    const queue = new Queue(JOBS_QUEUE, { connection: { ...redisOptions(options.url), maxRetriesPerRequest: 1 } });
    let workers = 0;
    try {
      workers = await queue.getWorkersCount();
    } catch {
      workers = 1; // a server that refuses CLIENT LIST: unknown
    } finally {
      await queue.close();
    }
    if (workers === 0) {
      logger.warn(
        `no worker listens to Redis at ${safeUrl(options.url)} yet; the runs wait in the queue until one does: ` +
          `start one with \`npm run worker -- --redis ${safeUrl(options.url)}\` on a machine with this repository`,
      );
    }
    return new RedisExecutor(options, Math.max(workers, 1));
  }

  run(jobs: PoolJob[], hooks: ExecutorHooks, stop: AbortSignal): Promise<void> {
    return new RedisSession(this.options, jobs, hooks, stop).run();
  }
}

const INTERRUPTED = Symbol("interrupted");

/**
 * How often the submitter checks that its runs are still in Redis: a Redis restarted without
 * persistence forgets them, and a run's failure reported while nobody listened is lost. A run
 * missing from both queues at two checks in a row is queued again. MERGENET_QUEUE_WATCH_MS
 * overrides it (tests).
 */
const WATCH_MS = 15_000;
const watchMs = (): number => Number(process.env.MERGENET_QUEUE_WATCH_MS) || WATCH_MS;

/** One `run` on the queue: its connections, the runs not yet written, and the outcome. */
class RedisSession {
  private readonly submitter: string;
  private readonly replyTo: string;
  /** Runs not yet written, by job id. */
  private readonly pending = new Map<string, PoolJob>();
  /** Worker names (host:pid) in order of first appearance, numbered from 1 for the progress. */
  private readonly workerNumbers = new Map<string, number>();
  /** Runs whose result is being taken from the results queue right now. */
  private readonly collecting = new Set<string>();
  private finished = 0;
  private isEnded = false;
  private outcome?: Error | typeof INTERRUPTED;
  private settle!: () => void;
  private readonly ended = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    private readonly options: RedisExecutorOptions,
    private readonly jobs: PoolJob[],
    private readonly hooks: ExecutorHooks,
    private readonly stop: AbortSignal,
  ) {
    this.submitter = submitterId(options.experiment, options.resultsDir);
    this.replyTo = `mergenet-results-${this.submitter}`;
    for (const job of jobs) this.pending.set(this.jobId(job), job);
  }

  private jobId(job: PoolJob): string {
    return `${this.submitter}-${job.configHash}`;
  }

  async run(): Promise<void> {
    if (this.jobs.length === 0) return;
    const { url } = this.options;
    // Blocking connections (the workers, the events) retry their commands; the queues' fail after a reconnection.
    const connection = { ...redisOptions(url), maxRetriesPerRequest: null };
    const queue = new Queue<QueueJobData>(JOBS_QUEUE, { connection: { ...connection, maxRetriesPerRequest: 1 } });
    const results = new Queue<QueueResultData>(this.replyTo, { connection: { ...connection, maxRetriesPerRequest: 1 } });
    const health = watchConnection(url, (error) => this.end(error));
    let events: QueueEvents[] = [];
    // Connection errors are reported through `health` when they last; the rest end the session.
    const ignore = (): void => undefined;
    queue.on("error", ignore);
    results.on("error", ignore);
    const onAbort = (): void => this.end(INTERRUPTED);
    this.stop.addEventListener("abort", onAbort);
    try {
      if (this.stop.aborted) this.end(INTERRUPTED);
      else events = await this.submit(queue, results, health, connection);
      await Promise.all([this.ended, this.watch(queue, results)]);
    } catch (err) {
      this.end(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.stop.removeEventListener("abort", onAbort);
    }
    const { withdrawn, training } = await this.withdraw(queue);
    await Promise.allSettled(events.map((e) => e.close()));
    // Done: late duplicates of this session's results (a run trained twice after a stall) go too.
    if (this.outcome === undefined) await Promise.allSettled(this.jobs.map((job) => results.remove(this.jobId(job))));
    await Promise.allSettled([queue.close(), results.close()]);
    health.disconnect();
    if (this.outcome === INTERRUPTED) {
      const inTraining = training.length
        ? `; the ${training.length} runs in training on workers (${training.join(", ")}) finish there, ` +
          "and their results are collected when you run the same command again"
        : "";
      throw new Error(
        `interrupted: withdrew the ${withdrawn} runs waiting in the Redis queue${inTraining}; ` +
          `the ${this.finished} runs finished in this session are saved; run the same command again to resume`,
      );
    }
    if (this.outcome) throw this.outcome;
  }

  /**
   * Listens to the jobs' and the results' events from their streams' current ends on
   * (QueueEvents would otherwise start at whatever is last when its first read happens, and
   * miss a run refused at once), collects the results already waiting (runs that finished
   * while this command was stopped), then adds the other runs.
   */
  private async submit(queue: Queue<QueueJobData>, results: Queue<QueueResultData>, health: IORedis, connection: RedisOptions): Promise<QueueEvents[]> {
    const end = async (stream: string): Promise<string> => (await health.xrevrange(stream, "+", "-", "COUNT", 1))[0]?.[0] ?? "0-0";
    const events = new QueueEvents(JOBS_QUEUE, { connection, lastEventId: await end(queue.keys.events) });
    const arrivals = new QueueEvents(this.replyTo, { connection, lastEventId: await end(results.keys.events) });
    arrivals.on("error", () => undefined);
    arrivals.on("waiting", ({ jobId }) => void this.collect(results, jobId));
    events.on("error", () => undefined);
    events.on("progress", ({ jobId, data }) => this.onProgress(jobId, data as QueueProgress));
    events.on("failed", ({ jobId, failedReason }) => this.onFailed(jobId, failedReason));
    events.on("stalled", ({ jobId }) => {
      const job = this.pending.get(jobId);
      if (job) {
        const what = `'${job.method.name}' seed ${job.seed}`;
        logger.warn(`a worker stopped answering while training ${what} (it died, or lost Redis); BullMQ gives that run to another worker`);
      }
    });
    await Promise.all([events.waitUntilReady(), arrivals.waitUntilReady()]);
    for (const jobId of [...this.pending.keys()]) await this.collect(results, jobId);
    await queue.addBulk([...this.pending].map(([jobId, job]) => this.entry(jobId, job)));
    return [events, arrivals];
  }

  /** Takes the result of the run `jobId` from the results queue if it is there and the run is this session's, and writes it. */
  private async collect(results: Queue<QueueResultData>, jobId: string): Promise<void> {
    if (!this.pending.has(jobId) || this.collecting.has(jobId) || this.isEnded) return;
    this.collecting.add(jobId);
    try {
      const message = await results.getJob(jobId);
      if (!message || !this.pending.has(jobId)) return;
      await message.remove();
      this.onResult(message.data);
    } catch {
      // Redis is unreachable for now: the watch tries again, and `health` ends the session if that lasts
    } finally {
      this.collecting.delete(jobId);
    }
  }

  /** A run as a job of the queue: named for people, its data the WorkerJob and where to reply. */
  private entry(jobId: string, job: PoolJob): { name: string; data: QueueJobData; opts: QueueJobOptions } {
    const data = { ...workerJob(job, this.options.modules.map(portable)), replyTo: this.replyTo };
    return { name: `${job.config.name}: ${label(job)}`, data, opts: { jobId, attempts: 1, removeOnComplete: true, removeOnFail: true } };
  }

  /** Until the session ends: queues again the runs that vanished from Redis (see WATCH_MS). */
  private async watch(queue: Queue<QueueJobData>, results: Queue<QueueResultData>): Promise<void> {
    const missedOnce = new Set<string>();
    while (!this.isEnded) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.ended, new Promise((resolve) => (timer = setTimeout(resolve, watchMs())))]);
      clearTimeout(timer);
      if (this.isEnded) return;
      try {
        for (const [jobId, job] of [...this.pending]) {
          await this.collect(results, jobId); // a result whose event was missed (a reconnection)
          if (!this.pending.has(jobId) || (await results.getJobState(jobId)) !== "unknown" || (await queue.getJobState(jobId)) !== "unknown") {
            missedOnce.delete(jobId);
          } else if (!missedOnce.has(jobId)) {
            missedOnce.add(jobId);
          } else if (this.pending.has(jobId) && !this.isEnded) {
            missedOnce.delete(jobId);
            logger.warn(
              `'${job.method.name}' seed ${job.seed} is no longer in the Redis queue (Redis restarted, or its failure went unreported); queued again`,
            );
            const { name, data, opts } = this.entry(jobId, job);
            await queue.add(name, data, opts);
          }
        }
      } catch {
        // Redis is unreachable for now: `health` ends the session if that lasts
      }
    }
  }

  private workerNumber(name: string): number {
    if (!this.workerNumbers.has(name)) this.workerNumbers.set(name, this.workerNumbers.size + 1);
    return this.workerNumbers.get(name)!;
  }

  private onProgress(jobId: string, progress: QueueProgress): void {
    const job = this.pending.get(jobId);
    if (!job || this.isEnded || typeof progress?.worker !== "string") return;
    if (progress.record && progress.epochs) this.hooks.epoch(job, progress.record, progress.epochs);
    else this.hooks.started(job, this.workerNumber(progress.worker));
  }

  private onFailed(jobId: string, reason: string): void {
    const job = this.pending.get(jobId);
    if (!job) return;
    const stalled = /stalled more than allowable limit/.test(reason);
    this.end(runFailure(job, stalled ? `its worker stopped answering twice while training it (died, or lost Redis; BullMQ: ${reason})` : reason));
  }

  /** A result from a worker: written once, if it is one of this session's runs (late duplicates and other configurations are dropped). */
  private onResult(data: QueueResultData): void {
    const { configHash, run } = data;
    const id = `${this.submitter}-${configHash}`;
    const job = this.pending.get(id);
    if (!job || run?.configHash !== configHash) return;
    this.pending.delete(id);
    this.finished += 1;
    try {
      this.hooks.finished(job, run);
    } catch (err) {
      return this.end(err instanceof Error ? err : new Error(String(err)));
    }
    if (this.pending.size === 0) this.end();
  }

  /** Settles the session once: `undefined` when every run is written. */
  private end(outcome?: Error | typeof INTERRUPTED): void {
    if (this.isEnded || (outcome === undefined && this.pending.size > 0)) return;
    this.isEnded = true;
    this.outcome = outcome;
    this.settle();
  }

  /** Removes this session's runs still waiting in the queue; the ones a worker holds (in training) cannot be, and are listed. */
  private async withdraw(queue: Queue<QueueJobData>): Promise<{ withdrawn: number; training: string[] }> {
    let withdrawn = 0;
    const training: string[] = [];
    for (const [jobId, job] of this.pending) {
      try {
        if ((await queue.remove(jobId)) === 1) withdrawn += 1;
        else if ((await queue.getJobState(jobId)) === "active") training.push(label(job));
      } catch {
        // Redis is gone: nothing more to withdraw
        break;
      }
    }
    return { withdrawn, training };
  }
}
