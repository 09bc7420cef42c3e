// How `npm start` schedules the notebooks (scripts/reproduce.ts, scripts/run-notebooks.ts):
// up to N at once in list order, the summary only after every earlier notebook; and the
// options it refuses before doing anything. The private queue itself is tested in
// test/queue.test.ts (it needs redis-server), the notebooks' execution in test/notebook.test.ts.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { defaultNotebooks, inOrderAtOnce, runsAfterEarlier } from "../scripts/run-notebooks";

const root = path.resolve(__dirname, "..");

/** A task that records when it starts and ends, and how many ran at once. */
function recorder() {
  const events: string[] = [];
  let running = 0;
  let most = 0;
  const run = async (item: { name: string; ms: number; fail?: boolean }, atOnce: number): Promise<string> => {
    running += 1;
    most = Math.max(most, running);
    events.push(`start ${item.name} (${atOnce})`);
    await new Promise((r) => setTimeout(r, item.ms));
    running -= 1;
    events.push(`end ${item.name}`);
    if (item.fail) throw new Error(`${item.name} failed`);
    return item.name;
  };
  return { events, run, most: () => most };
}

describe("notebooks at once (inOrderAtOnce)", () => {
  it("starts in list order, never more than the limit at once, and returns the results in list order", async () => {
    const r = recorder();
    const items = [
      { name: "a", ms: 60 },
      { name: "b", ms: 10 },
      { name: "c", ms: 10 },
      { name: "d", ms: 10 },
    ];
    const results = await inOrderAtOnce(items, 2, () => false, r.run);
    expect(results).toEqual(["a", "b", "c", "d"]);
    expect(r.most()).toBe(2);
    expect(r.events.filter((e) => e.startsWith("start")).map((e) => e.split(" ")[1])).toEqual(["a", "b", "c", "d"]);
    // b's slot goes to c, then d, while a still runs
    expect(r.events.indexOf("start c (2)")).toBeLessThan(r.events.indexOf("end a"));
    expect(r.events.indexOf("start d (2)")).toBeLessThan(r.events.indexOf("end a"));
  });

  it("starts an item marked after-earlier only once every earlier item has ended, failed ones included", async () => {
    const r = recorder();
    const items = [
      { name: "a", ms: 50, fail: true },
      { name: "b", ms: 10 },
      { name: "summary", ms: 5 },
      { name: "after", ms: 5 },
    ];
    const outcome = await Promise.allSettled([inOrderAtOnce(items, 4, (i) => i.name === "summary", r.run)]);
    expect(outcome[0].status).toBe("rejected");
    expect((outcome[0] as PromiseRejectedResult).reason.message).toBe("a failed");
    const start = r.events.indexOf("start summary (1)");
    expect(start).toBeGreaterThan(r.events.indexOf("end a"));
    expect(start).toBeGreaterThan(r.events.indexOf("end b"));
    expect(r.events).toContain("end after"); // the rest still ran
  });

  it("runs one at a time with limit 1", async () => {
    const r = recorder();
    await inOrderAtOnce([{ name: "a", ms: 20 }, { name: "b", ms: 5 }], 1, () => false, r.run);
    expect(r.events).toEqual(["start a (1)", "end a", "start b (1)", "end b"]);
  });
});

describe("which notebooks wait for the others", () => {
  it("marks exactly the summary, the last notebook, as running after every earlier one", () => {
    const marked = defaultNotebooks().filter(runsAfterEarlier).map((f) => path.basename(f));
    expect(marked).toEqual(["06-summary.ipynb"]);
    expect(path.basename(defaultNotebooks().at(-1)!)).toBe("06-summary.ipynb");
  });

  it("reads the mark from the notebook's metadata, and an unmarked or unreadable file as not marked", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-nbmeta-"));
    const write = (name: string, metadata: unknown): string => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, JSON.stringify({ cells: [], metadata, nbformat: 4, nbformat_minor: 5 }));
      return file;
    };
    expect(runsAfterEarlier(write("yes.ipynb", { mergenet: { after_earlier: true } }))).toBe(true);
    expect(runsAfterEarlier(write("string.ipynb", { mergenet: { after_earlier: "true" } }))).toBe(false);
    expect(runsAfterEarlier(write("none.ipynb", {}))).toBe(false);
    const broken = path.join(dir, "broken.ipynb");
    fs.writeFileSync(broken, "{ not json");
    expect(runsAfterEarlier(broken)).toBe(false);
  });
});

describe("npm start's options", () => {
  const start = (...args: string[]) =>
    spawnSync(process.execPath, ["--import", require.resolve("tsx"), path.join(root, "scripts", "reproduce.ts"), ...args], { cwd: root, encoding: "utf8", timeout: 60_000 });

  it.each([
    [["--sequential", "--redis", "redis://127.0.0.1:1"], /--sequential and --redis cannot be combined/],
    [["--sequential", "--parallel", "3"], /--sequential runs one notebook at a time; drop --parallel 3/],
    [["--parallel", "0"], /--parallel needs a whole number >= 1, got '0'/],
  ])("refuses %j before doing anything, saying what to change", (args, message) => {
    const result = start(...args);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/setup-jupyter|\[mergenet\] notebook/);
  });
});
