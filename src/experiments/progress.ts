/**
 * Progress of an experiment. In a terminal: one line redrawn in place with a bar, the run,
 * its epoch and loss, and an ETA. Elsewhere (CI logs): one compact line per finished run.
 * Written to stderr, so stdout stays clean for results.
 *
 * In the notebook kernel (MERGENET_KERNEL=1, set by start-kernel.sh) the lines go to stdout,
 * because Jupyter shows stderr as alarming pink blocks, and runs read from the cache are not
 * listed one by one: the experiment's closing line counts them and says how long they took
 * to train when they ran (their recorded wall time).
 *
 * With a pool of workers (pool.ts) several runs train at once: `start`, `epoch` and `done` then
 * name their run, each finished run's line names its worker, the ETA divides the remaining
 * work among the workers, and the closing line gives their number.
 */
import type { EpochRecord } from "../core/loop";

/** "45s", "2m05s": whole seconds, rounded before the split so 59.6 s reads "1m00s", never "0m60s". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const whole = Math.round(seconds);
  const m = Math.floor(whole / 60);
  const s = whole % 60;
  return m > 0 ? `${m}m${String(s).padStart(2, "0")}s` : `${s}s`;
}

export class Progress {
  private done_ = 0;
  private trained = 0;
  private trainedSeconds = 0;
  /** Training time the cached runs took when they ran (their recorded wall time). */
  private cachedSeconds = 0;
  private current = "";
  /** Runs in training: label -> start time and worker (0 in this process). */
  private readonly running = new Map<string, { started: number; worker: number }>();
  private readonly started = Date.now();
  private readonly live: boolean;
  private readonly inKernel = process.env.MERGENET_KERNEL === "1";
  private readonly stream: NodeJS.WriteStream = this.inKernel ? process.stdout : process.stderr;

  /** Worker processes training runs at once (1: runs train in this process, one after another). */
  private workers = 1;

  constructor(private readonly experiment: string, private readonly total: number, private readonly enabled: boolean) {
    this.live = enabled && !this.inKernel && Boolean(process.stderr.isTTY);
  }

  private write(text: string): void {
    if (this.enabled) this.stream.write(text);
  }

  private eta(): string {
    if (this.trained === 0) return "?";
    return duration(((this.trainedSeconds / this.trained) * (this.total - this.done_)) / this.workers);
  }

  private redraw(detail: string): void {
    if (!this.live) return;
    const width = 20;
    const filled = Math.round((this.done_ / this.total) * width);
    const bar = `${"#".repeat(filled)}${"-".repeat(width - filled)}`;
    const now = this.workers > 1 ? `running ${this.running.size}, waiting ${this.total - this.done_ - this.running.size}:` : "";
    const line = `[${bar}] ${this.done_}/${this.total} ${now}${this.current} ${detail} | ETA ${this.eta()}`;
    this.write(`\r${line.slice(0, (this.stream.columns || 120) - 1).padEnd((this.stream.columns || 120) - 1)}`);
  }

  /** From now on runs train in `workers` worker processes at once. */
  setWorkers(workers: number): void {
    this.workers = workers;
  }

  /** A line of its own, before the runs start (what the experiment will cost, say). */
  note(text: string): void {
    this.write(`[${this.experiment}] ${text}\n`);
  }

  /** A run starts (on `worker`, 1.., in a pool). */
  start(label: string, worker = 0): void {
    this.current = label;
    this.running.set(label, { started: Date.now(), worker });
    this.redraw("");
  }

  epoch(record: EpochRecord, epochs: number, label = this.current): void {
    this.current = label;
    this.redraw(`epoch ${record.epoch + 1}/${epochs} loss ${record.targetLoss.toFixed(4)}`);
  }

  cached(label: string, recordedSeconds = 0): void {
    this.done_ += 1;
    if (Number.isFinite(recordedSeconds)) this.cachedSeconds += recordedSeconds;
    if (!this.live && !this.inKernel) this.write(`[${this.experiment}] ${this.done_}/${this.total} ${label}: cached\n`);
    else this.redraw(`${label}: cached`);
  }

  /** The run `label` (default: the last started) finished; `summary` is its result in words. */
  done(summary: string, label = this.current): void {
    const run = this.running.get(label);
    this.running.delete(label);
    this.current = label;
    const seconds = (Date.now() - (run?.started ?? Date.now())) / 1000;
    const where = run?.worker ? `, worker ${run.worker}` : "";
    this.done_ += 1;
    this.trained += 1;
    this.trainedSeconds += seconds;
    if (this.live) this.redraw(`${summary}`);
    else this.write(`[${this.experiment}] ${this.done_}/${this.total} ${label}: ${summary} (${duration(seconds)}${where}, ETA ${this.eta()})\n`);
  }

  finish(): void {
    const total = duration((Date.now() - this.started) / 1000);
    const cached = this.total - this.trained;
    const when = cached > 0 && this.cachedSeconds > 0 ? `, which took ${duration(this.cachedSeconds)} to train when they ran` : "";
    const pool = this.workers > 1 ? ` with ${this.workers} workers` : "";
    this.write(`${this.live ? "\r" : ""}[${this.experiment}] ${this.total} runs (${this.trained} trained, ${cached} cached${when}) in ${total}${pool}\n`);
  }
}
