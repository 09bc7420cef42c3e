// How errors read in a notebook cell: jupyter/kernels/mergenet-ts/cell-errors.js, preloaded
// into the kernel by start-kernel.sh. The end-to-end check (a real kernel, a failing cell, the
// saved output) is in test/notebook.test.ts.
import * as util from "util";
import { afterEach, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";

const cellErrors = require("../jupyter/kernels/mergenet-ts/cell-errors.js") as {
  formatCellError(error: Error): string;
  installCellErrors(): () => void;
  readable(message: string): string;
  DEBUG_HINT: string;
};

let undo: (() => void) | undefined;
afterEach(() => {
  undo?.();
  undo = undefined;
});

function tfjsError(): Error {
  try {
    tf.tidy(() => tf.matMul(tf.ones([2, 2]), tf.ones([3, 3])));
  } catch (err) {
    return err as Error;
  }
  throw new Error("matMul of [2,2] by [3,3] did not fail");
}

describe("cell errors", () => {
  it("requiring the file outside the kernel changes nothing", () => {
    const printed = util.inspect(new Error("plain"));
    expect(printed).toMatch(/\n\s+at /); // Node's usual form, with the stack
  });

  it("once installed, an error from deep inside tfjs prints as its sentence and the debug hint, without stack frames", () => {
    undo = cellErrors.installCellErrors();
    const err = tfjsError();
    const printed = util.inspect(err);
    expect(printed).not.toMatch(/\n\s+at /);
    expect(printed).not.toContain("node_modules");
    expect(printed).not.toContain("TF_Status");
    expect(printed).toMatch(/^Error: (Error in matMul: inner shapes|TensorFlow: Matrix size-incompatible)/);
    expect(printed.endsWith(cellErrors.DEBUG_HINT)).toBe(true);
    expect(err.stack).toMatch(/\n\s+at /); // only the printed form changed
  });

  it("prints each cause once, skipping a cause its wrapper already quotes", () => {
    undo = cellErrors.installCellErrors();
    const root = new TypeError("the file data/x.bin is truncated");
    const middle = new Error("could not read the dataset", { cause: root });
    const top = new Error("run 'a' seed 0 failed: could not read the dataset", { cause: middle });
    expect(util.inspect(top).split("\n")).toEqual([
      "Error: run 'a' seed 0 failed: could not read the dataset",
      "  caused by: TypeError: the file data/x.bin is truncated",
      `  ${cellErrors.DEBUG_HINT}`,
    ]);
  });

  it("survives a cause cycle and a non-Error cause", () => {
    const a = new Error("a") as Error & { cause?: unknown };
    const b = new Error("b", { cause: a });
    a.cause = b;
    expect(cellErrors.formatCellError(a).split("\n").slice(0, 2)).toEqual(["Error: a", "  caused by: Error: b"]);
    expect(cellErrors.formatCellError(new Error("c", { cause: 42 })).split("\n")[1]).toBe("  caused by: 42");
  });

  it("uninstalling restores Node's printing", () => {
    cellErrors.installCellErrors()();
    expect(util.inspect(new Error("back"))).toMatch(/\n\s+at /);
  });
});
