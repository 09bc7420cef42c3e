// Experiment progress lines: stderr in a terminal or CI log, stdout (and no per-cached-run lines)
// in the notebook kernel, where Jupyter would show stderr as pink warning blocks.
import { afterEach, describe, expect, it, vi } from "vitest";
import { Progress, duration } from "../src/experiments/progress";

const record = { epoch: 0, targetLoss: 0.5, target: {}, source: {} } as never;

function capture(): { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (err.push(String(chunk)), true));
  return { out, err };
}

function runThree(): void {
  const p = new Progress("exp", 3, true);
  p.cached("a seed 0", 65);
  p.cached("a seed 1", 60);
  p.start("b seed 0");
  p.epoch(record, 1);
  p.done("accuracy 0.9");
  p.finish();
}

afterEach(() => {
  vi.restoreAllMocks();
  delete process.env.MERGENET_KERNEL;
});

describe("progress lines", () => {
  it("outside the kernel: one line per run on stderr, nothing on stdout", () => {
    const { out, err } = capture();
    runThree();
    vi.restoreAllMocks();
    expect(out).toEqual([]);
    expect(err.join("")).toMatch(/^\[exp\] 1\/3 a seed 0: cached\n\[exp\] 2\/3 a seed 1: cached\n\[exp\] 3\/3 b seed 0: accuracy 0\.9 \(\d+s, ETA 0s\)\n\[exp\] 3 runs \(1 trained, 2 cached, which took 2m05s to train when they ran\) in \d+s\n$/);
  });

  it("in the kernel: trained runs and the closing count on stdout, nothing on stderr", () => {
    process.env.MERGENET_KERNEL = "1";
    const { out, err } = capture();
    runThree();
    vi.restoreAllMocks();
    expect(err).toEqual([]);
    expect(out.join("")).toMatch(/^\[exp\] 3\/3 b seed 0: accuracy 0\.9 \(\d+s, ETA 0s\)\n\[exp\] 3 runs \(1 trained, 2 cached, which took 2m05s to train when they ran\) in \d+s\n$/);
  });
});

describe("duration", () => {
  it("rounds before splitting into minutes and seconds (59.6 s is 1m00s, not 0m60s)", () => {
    expect(duration(59.6)).toBe("1m00s");
    expect(duration(659.7)).toBe("11m00s");
    expect(duration(4379.9)).toBe("73m00s");
    expect(duration(125)).toBe("2m05s");
    expect(duration(44.4)).toBe("44s");
    expect(duration(Number.NaN)).toBe("?");
  });
});
