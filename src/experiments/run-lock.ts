/**
 * What keeps two processes that run the same experiment into the same results folder from
 * training the same run twice, and what checks that folder before any training.
 *
 * A run's lock is a file beside its result (`seed-<n>.json.lock`), created exclusively
 * (O_EXCL, atomic on local file systems) and holding the owner's pid and host. The second
 * process finds it, says so, and waits for the first's result instead of training the run
 * again. A lock whose owner died (SIGKILL, a crash: no `finally` ran) is stale: on the same
 * host a pid that no longer exists is detected and the lock taken over. Locks of another
 * host cannot be checked, so they are waited for.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

/** Free space below which the runner refuses to start: a result file is tens of kB, a checkpoint a few MB. */
export const MIN_FREE_BYTES = 16 * 1024 * 1024;

/**
 * Throws, naming the folder and what to do, unless `dir` can be created, written and has
 * MIN_FREE_BYTES free: before the first run, so a run never trains only to fail at its write.
 */
export function checkResultsFolder(dir: string): void {
  const probe = path.join(dir, `.write-check-${process.pid}`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(probe, "ok\n");
  } catch (err) {
    throw new Error(
      `the results folder ${dir} is not writable (${codeOf(err)}); fix its permissions or free space, or choose another folder (RunOptions.resultsDir)`,
      { cause: err },
    );
  } finally {
    try {
      fs.rmSync(probe, { force: true });
    } catch {
      // the folder could not be made: there is no probe to remove
    }
  }
  const stats = fs.statfsSync?.(dir);
  const free = stats ? stats.bavail * stats.bsize : Infinity;
  if (free < MIN_FREE_BYTES) {
    throw new Error(
      `the results folder ${dir} has ${(free / 1e6).toFixed(1)} MB free, less than the ${MIN_FREE_BYTES / 1e6} MB a run's files may need; ` +
        "free some space or choose another folder (RunOptions.resultsDir)",
    );
  }
}

/** The error code of a file system error (EACCES, ENOSPC, ...), else its message. */
export function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err instanceof Error ? err.message : String(err));
}

function lockFile(resultFile: string): string {
  return `${resultFile}.lock`;
}

function readOwner(lock: string): LockOwner | undefined {
  try {
    return JSON.parse(fs.readFileSync(lock, "utf8")) as LockOwner;
  } catch {
    return undefined; // vanished meanwhile, or written only in part
  }
}

/** Whether the lock's owner may still be running (always true for another host's: it cannot be checked). */
function ownerAlive(owner: LockOwner): boolean {
  if (owner.host !== os.hostname()) return true;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, but another user's
  }
}

/**
 * The outcome of tryLockRun: `release` when the lock was taken, else the live `owner`. (Not a
 * union discriminated by a boolean: the notebook kernel compiles without strictNullChecks,
 * where such unions do not narrow.)
 */
export interface LockAttempt {
  release?: () => void;
  owner?: LockOwner;
}

/**
 * Takes the run's lock if no live process holds it; a stale lock (its owner died) is taken
 * over, which `onStale` reports.
 */
export function tryLockRun(resultFile: string, onStale: (owner: LockOwner) => void): LockAttempt {
  const lock = lockFile(resultFile);
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(lock, "wx");
      fs.writeSync(fd, JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() } satisfies LockOwner));
      fs.closeSync(fd);
      return { release: () => fs.rmSync(lock, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = readOwner(lock);
    if (owner && ownerAlive(owner)) return { owner };
    if (owner) onStale(owner);
    else {
      const stat = fs.statSync(lock, { throwIfNoEntry: false });
      // Unreadable and fresh: its owner is writing it right now.
      if (stat && Date.now() - stat.mtimeMs < 10_000) return { owner: { pid: NaN, host: "unknown", since: "just now" } };
    }
    fs.rmSync(lock, { force: true });
  }
  throw new Error(`cannot take the lock ${lock}: another process keeps re-creating it`);
}

/** Resolves once the run's lock is gone (its owner finished, failed or died), polling every `everyMs`. */
export async function waitForUnlock(resultFile: string, stop: () => boolean, everyMs = 500): Promise<void> {
  const lock = lockFile(resultFile);
  while (fs.existsSync(lock)) {
    const owner = readOwner(lock);
    if (owner && !ownerAlive(owner)) return; // died: the caller takes the lock over
    if (stop()) throw new Error(`interrupted: stopped while waiting for another process to finish ${resultFile}; nothing of this run was trained here`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
