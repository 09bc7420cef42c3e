/**
 * Progress of an experiment. In a terminal: one line redrawn in place with a bar, the run,
 * its epoch and loss, and an ETA. Elsewhere (CI logs): one compact line per finished run.
 * Written to stderr, so stdout stays clean for results.
 *
 * In the notebook kernel (MERGENET_KERNEL=1, set by start-kernel.sh) the lines go to stdout,
 * because Jupyter shows stderr as alarming pink blocks, and runs read from the cache are not
 * listed one by one: the experiment's closing line counts them and says how long they took
 * to train when they ran (their recorded wall time).
 */
import type { EpochRecord } from "../core/joint";

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m > 0 ? `${m}m${String(s).padStart(2, "0")}s` : `${s}s`;
}

export class Progress {
  private done_ = 0;
  private trained = 0;
  private trainedSeconds = 0;
  /** Training time the cached runs took when they ran (their recorded wall time). */
  private cachedSeconds = 0;
  private current = "";
  private runStarted = 0;
  private readonly started = Date.now();
  private readonly live: boolean;
  private readonly inKernel = process.env.MERGENET_KERNEL === "1";
  private readonly stream: NodeJS.WriteStream = this.inKernel ? process.stdout : process.stderr;

  constructor(private readonly experiment: string, private readonly total: number, private readonly enabled: boolean) {
    this.live = enabled && !this.inKernel && Boolean(process.stderr.isTTY);
  }

  private write(text: string): void {
    if (this.enabled) this.stream.write(text);
  }

  private eta(): string {
    if (this.trained === 0) return "?";
    return duration((this.trainedSeconds / this.trained) * (this.total - this.done_));
  }

  private redraw(detail: string): void {
    if (!this.live) return;
    const width = 20;
    const filled = Math.round((this.done_ / this.total) * width);
    const bar = `${"#".repeat(filled)}${"-".repeat(width - filled)}`;
    const line = `[${bar}] ${this.done_}/${this.total} ${this.current} ${detail} | ETA ${this.eta()}`;
    this.write(`\r${line.slice(0, (this.stream.columns || 120) - 1).padEnd((this.stream.columns || 120) - 1)}`);
  }

  start(label: string): void {
    this.current = label;
    this.runStarted = Date.now();
    this.redraw("");
  }

  epoch(record: EpochRecord, epochs: number): void {
    this.redraw(`epoch ${record.epoch + 1}/${epochs} loss ${record.targetLoss.toFixed(4)}`);
  }

  cached(label: string, recordedSeconds = 0): void {
    this.done_ += 1;
    if (Number.isFinite(recordedSeconds)) this.cachedSeconds += recordedSeconds;
    if (!this.live && !this.inKernel) this.write(`[${this.experiment}] ${this.done_}/${this.total} ${label}: cached\n`);
    else this.redraw(`${label}: cached`);
  }

  done(summary: string): void {
    const seconds = (Date.now() - this.runStarted) / 1000;
    this.done_ += 1;
    this.trained += 1;
    this.trainedSeconds += seconds;
    if (this.live) this.redraw(`${summary}`);
    else this.write(`[${this.experiment}] ${this.done_}/${this.total} ${this.current}: ${summary} (${duration(seconds)}, ETA ${this.eta()})\n`);
  }

  finish(): void {
    const total = duration((Date.now() - this.started) / 1000);
    const cached = this.total - this.trained;
    const when = cached > 0 && this.cachedSeconds > 0 ? `, which took ${duration(this.cachedSeconds)} to train when they ran` : "";
    this.write(`${this.live ? "\r" : ""}[${this.experiment}] ${this.total} runs (${this.trained} trained, ${cached} cached${when}) in ${total}\n`);
  }
}
