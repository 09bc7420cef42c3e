// Write-back modes (docs/METHOD.md §3a): formulas, the golden interp/matched numbers, gradients,
// the constant-output guard, tensor hygiene and errors.
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import {
  DEFAULT_INTERP_THETA,
  DEFAULT_OUTPUT_MODE,
  OUTPUT_MODES,
  OutputMode,
  WriteBack,
  matchMoments,
  needsFollowingNormalisation,
  writeBackWarning,
} from "../src/core/writeback";
import { finiteDifference } from "./helpers/numeric";

interface StoredTensor {
  shape: [number, number];
  data: number[];
}

interface GoldenWriteBackCase {
  name: string;
  inputs: { T: StoredTensor };
  expected: {
    output: StoredTensor;
    writeback_interp: { theta: number; g: number; matched: StoredTensor; result: StoredTensor };
  };
}

const golden: { cases: GoldenWriteBackCase[] } = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "adapter-golden.json"), "utf8"));

function to2d(stored: StoredTensor): tf.Tensor2D {
  return tf.tensor2d(stored.data, stored.shape);
}

function maxAbsBetween(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

function populationStats(t: tf.Tensor): { mean: number; std: number } {
  const values = Array.from(t.dataSync());
  const mean = values.reduce((s, x) => s + x, 0) / values.length;
  const variance = values.reduce((s, x) => s + (x - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

describe("write-back: golden fixture", () => {
  it.each(golden.cases.map((c) => [c.name, c] as const))("case %s: matched and interp (theta 0) agree within 1e-5", (_name, c) => {
    const output = to2d(c.expected.output);
    const target = to2d(c.inputs.T);
    const expectedMatched = to2d(c.expected.writeback_interp.matched);
    const expectedResult = to2d(c.expected.writeback_interp.result);
    const matched = new WriteBack("matched").apply(output, target);
    expect(maxAbsBetween(matched, expectedMatched)).toBeLessThan(1e-5);
    const interp = new WriteBack("interp", { initialTheta: c.expected.writeback_interp.theta });
    expect(interp.gate()).toBeCloseTo(c.expected.writeback_interp.g, 7);
    const result = interp.apply(output, target);
    expect(maxAbsBetween(result, expectedResult)).toBeLessThan(1e-5);
    tf.dispose([output, target, expectedMatched, expectedResult, matched, result]);
    interp.dispose();
  });
});

describe("write-back: modes", () => {
  const output = (): tf.Tensor2D => tf.randomNormal([6, 5], 0.3, 1.2, "float32", 1) as tf.Tensor2D;
  const target = (): tf.Tensor2D => tf.randomNormal([6, 5], -0.01, 0.04, "float32", 2) as tf.Tensor2D;

  it("lists the four modes, with interp the default", () => {
    expect(OUTPUT_MODES).toEqual(["replace", "matched", "residual", "interp"]);
    expect(DEFAULT_OUTPUT_MODE).toBe("interp");
  });

  it("replace writes the output itself, as a new tensor, and has no gate", () => {
    const [out, tgt] = [output(), target()];
    const writeBack = new WriteBack("replace");
    const written = writeBack.apply(out, tgt);
    expect(written).not.toBe(out);
    expect(maxAbsBetween(written, out)).toBe(0);
    expect(writeBack.variables).toEqual([]);
    expect(writeBack.gate()).toBeUndefined();
    tf.dispose([out, tgt, written]);
  });

  it("matched takes T's mean and population std and keeps the output's pattern", () => {
    const [out, tgt] = [output(), target()];
    const writeBack = new WriteBack("matched");
    expect(writeBack.variables).toEqual([]);
    const written = writeBack.apply(out, tgt);
    const got = populationStats(written);
    const want = populationStats(tgt);
    expect(got.mean).toBeCloseTo(want.mean, 6);
    expect(got.std).toBeCloseTo(want.std, 6);
    // An affine map with positive slope of the output: correlation 1.
    const o = populationStats(out);
    const w = Array.from(written.dataSync());
    const x = Array.from(out.dataSync());
    const correlation = x.reduce((s, xi, i) => s + (xi - o.mean) * (w[i] - got.mean), 0) / (x.length * o.std * got.std);
    expect(correlation).toBeCloseTo(1, 5);
    tf.dispose([out, tgt, written]);
  });

  it("matched of a constant output is mean(T) everywhere (the epsilon guard), not NaN", () => {
    const constant = tf.fill([3, 4], 2.5) as tf.Tensor2D;
    const tgt = tf.tensor2d([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]);
    const written = matchMoments(constant, tgt);
    expect(Array.from(written.dataSync())).toEqual(new Array(12).fill(6.5));
    const grad = tf.grad((o: tf.Tensor) => tf.sum(tf.mul(matchMoments(o as tf.Tensor2D, tgt), tgt)))(constant);
    expect(tf.tidy(() => tf.all(tf.isFinite(grad)).dataSync()[0])).toBe(1);
    tf.dispose([constant, tgt, written, grad]);
  });

  it("residual is T + g (out - T) with g learned from 0", () => {
    const [out, tgt] = [output(), target()];
    const writeBack = new WriteBack("residual");
    expect(writeBack.gate()).toBe(0);
    expect(writeBack.variables).toHaveLength(1);
    const atZero = writeBack.apply(out, tgt);
    expect(maxAbsBetween(atZero, tgt)).toBe(0);
    writeBack.setTheta(0.3);
    expect(writeBack.gate()).toBeCloseTo(0.3, 7);
    const atPoint3 = writeBack.apply(out, tgt);
    const expected = tf.tidy(() => tf.add(tgt, tf.mul(tf.sub(out, tgt), 0.3)));
    expect(maxAbsBetween(atPoint3, expected)).toBeLessThan(1e-6);
    tf.dispose([out, tgt, atZero, atPoint3, expected]);
    writeBack.dispose();
  });

  it("interp is T + sigmoid(theta) (matched(out) - T), theta from -6", () => {
    const [out, tgt] = [output(), target()];
    const writeBack = new WriteBack("interp");
    expect(DEFAULT_INTERP_THETA).toBe(-6);
    expect(writeBack.gate()).toBeCloseTo(sigmoid(-6), 7);
    writeBack.setTheta(1.5);
    expect(writeBack.gate()).toBeCloseTo(sigmoid(1.5), 6);
    const written = writeBack.apply(out, tgt);
    const expected = tf.tidy(() => tf.add(tgt, tf.mul(tf.sub(matchMoments(out, tgt), tgt), sigmoid(1.5))));
    expect(maxAbsBetween(written, expected)).toBeLessThan(1e-6);
    tf.dispose([out, tgt, written, expected]);
    writeBack.dispose();
  });

  it("gives two live write-backs with one name distinct tfjs variables", () => {
    const a = new WriteBack("interp", { name: "pair" });
    const b = new WriteBack("interp", { name: "pair" });
    expect(a.variables[0].name).not.toBe(b.variables[0].name);
    a.dispose();
    b.dispose();
  });
});

describe("write-back: gradients against finite differences (float32)", () => {
  // Loss sum(R * W'), |loss| ~ 1; step 1e-2. Float32 rounding of the loss over 2*step and
  // step² truncation are each ~1e-5 here; tolerance 1e-4 + 1e-2 |analytic|.
  const STEP = 1e-2;
  const close = (fd: number, analytic: number): boolean => Math.abs(fd - analytic) <= 1e-4 + 1e-2 * Math.abs(analytic);

  it.each(["residual", "interp", "matched"] as OutputMode[])("%s: gradient w.r.t. the output and the gate", (mode) => {
    const out = tf.variable(tf.randomNormal([4, 5], 0.2, 1, "float32", 3) as tf.Tensor2D);
    const tgt = tf.randomNormal([4, 5], 0, 0.3, "float32", 4) as tf.Tensor2D;
    const weights = tf.randomNormal([4, 5], 0, 1, "float32", 5);
    const writeBack = new WriteBack(mode, { initialTheta: 0.4 }); // interp: theta 0.4; residual: g 0.4
    const lossTensor = (): tf.Scalar => tf.sum(tf.mul(writeBack.apply(out as tf.Tensor2D, tgt), weights));
    const loss = (): number => tf.tidy(() => lossTensor().dataSync()[0]);
    const { value, grads } = tf.variableGrads(lossTensor, [out, ...writeBack.variables]);
    value.dispose();
    const outGrad = grads[out.name].dataSync();
    for (const index of [0, 7, 19]) {
      const fd = finiteDifference(loss, out, index, STEP);
      expect(close(fd, outGrad[index]), `out[${index}]: fd ${fd} vs ${outGrad[index]}`).toBe(true);
      expect(Math.abs(outGrad[index])).toBeGreaterThan(1e-3);
    }
    for (const gate of writeBack.variables) {
      const fd = finiteDifference(loss, gate, 0, STEP);
      const analytic = grads[gate.name].dataSync()[0];
      expect(close(fd, analytic), `gate: fd ${fd} vs ${analytic}`).toBe(true);
      expect(Math.abs(analytic)).toBeGreaterThan(1e-3);
    }
    expect(writeBack.variables).toHaveLength(mode === "matched" ? 0 : 1);
    tf.dispose([out, tgt, weights, grads]);
    writeBack.dispose();
  });
});

describe("write-back: tensor hygiene", () => {
  it.each(OUTPUT_MODES.map((m) => [m]))("%s keeps the tensor count across 20 apply and 20 gradient calls", (mode) => {
    const writeBack = new WriteBack(mode);
    const out = tf.randomNormal([8, 3]) as tf.Tensor2D;
    const tgt = tf.randomNormal([8, 3]) as tf.Tensor2D;
    const watched = tf.variable(out);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) writeBack.apply(out, tgt).dispose();
    for (let i = 0; i < 20; i++) {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(writeBack.apply(watched as tf.Tensor2D, tgt))), [watched, ...writeBack.variables]);
      value.dispose();
      tf.dispose(grads);
    }
    writeBack.gate();
    if (writeBack.variables.length > 0) writeBack.setTheta(0.1);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([out, tgt, watched]);
    writeBack.dispose();
  });
});

describe("write-back: errors and the normalisation warning", () => {
  it("rejects an unknown mode", () => {
    expect(() => new WriteBack("copy" as OutputMode)).toThrow(/write-back mode "copy" is not one of replace, matched, residual, interp/);
  });

  it("rejects setTheta on a mode without a gate, and non-finite values", () => {
    expect(() => new WriteBack("matched").setTheta(0)).toThrow(/write-back mode 'matched' has no gate to set; only residual and interp do/);
    const writeBack = new WriteBack("interp");
    expect(() => writeBack.setTheta(Number.NaN)).toThrow(/write-back theta must be a finite number, got NaN/);
    expect(() => new WriteBack("residual", { initialTheta: Infinity })).toThrow(/initialTheta must be a finite number, got Infinity/);
    writeBack.dispose();
  });

  it("rejects an output whose shape differs from the target's", () => {
    const writeBack = new WriteBack("interp");
    const out = tf.zeros([3, 4]) as tf.Tensor2D;
    const tgt = tf.zeros([4, 3]) as tf.Tensor2D;
    expect(() => writeBack.apply(out, tgt)).toThrow(/adapter output has shape \[3,4\] but the target weight has shape \[4,3\]; they must match/);
    tf.dispose([out, tgt]);
    writeBack.dispose();
  });

  it("warns for replace on a layer without a following normalisation layer only", () => {
    expect(needsFollowingNormalisation("replace")).toBe(true);
    for (const mode of ["matched", "residual", "interp"] as OutputMode[]) {
      expect(needsFollowingNormalisation(mode)).toBe(false);
      expect(writeBackWarning(mode, false)).toBeUndefined();
    }
    expect(writeBackWarning("replace", true)).toBeUndefined();
    expect(writeBackWarning("replace", false, "dense_2/kernel")).toMatch(
      /write-back mode 'replace' writes the adapter's raw output \(std about 1\) into dense_2\/kernel, which no normalisation layer follows.*Use 'interp'/,
    );
  });
});

describe("write-back: hand-written gradient against autodiff of the formulas", () => {
  // interp and matched run with a custom gradient; here the same formulas, written with
  // plain ops, are differentiated by tfjs, for the output, the gate and the target itself.
  const plain = (mode: "interp" | "matched", out: tf.Tensor2D, tgt: tf.Tensor2D, theta: tf.Scalar | undefined): tf.Tensor => {
    const o = tf.moments(out);
    const t = tf.moments(tgt);
    const matched = tf.add(tf.mul(tf.sub(out, o.mean), tf.div(tf.sqrt(t.variance), tf.sqrt(tf.add(o.variance, 1e-12)))), t.mean);
    return mode === "matched" ? matched : tf.add(tgt, tf.mul(tf.sigmoid(theta as tf.Scalar), tf.sub(matched, tgt)));
  };
  it.each(["interp", "matched"] as const)("%s: value and all gradients agree", (mode) => {
    const out = tf.variable(tf.randomNormal([5, 7], 0.3, 1.2, "float32", 8) as tf.Tensor2D);
    const tgt = tf.variable(tf.randomNormal([5, 7], 0.01, 0.05, "float32", 9) as tf.Tensor2D);
    const weights = tf.randomNormal([5, 7], 0, 1, "float32", 10);
    const writeBack = new WriteBack(mode, { initialTheta: 0.7 });
    const theta = writeBack.variables[0] as tf.Scalar | undefined;
    const vars = [out, tgt, ...writeBack.variables];
    const fast = tf.variableGrads(() => tf.sum(tf.mul(writeBack.apply(out as tf.Tensor2D, tgt as tf.Tensor2D), weights)) as tf.Scalar, vars);
    const reference = tf.variableGrads(() => tf.sum(tf.mul(plain(mode, out as tf.Tensor2D, tgt as tf.Tensor2D, theta), weights)) as tf.Scalar, vars);
    expect(fast.value.dataSync()[0]).toBe(reference.value.dataSync()[0]);
    for (const v of vars) {
      const expected = reference.grads[v.name];
      const tol = 1e-5 * (1 + tf.max(tf.abs(expected)).dataSync()[0]);
      expect(tf.max(tf.abs(tf.sub(fast.grads[v.name], expected))).dataSync()[0], v.name).toBeLessThan(tol);
      expect(tf.max(tf.abs(expected)).dataSync()[0]).toBeGreaterThan(1e-4);
    }
    tf.dispose([out, tgt, weights, fast.value, fast.grads, reference.value, reference.grads]);
    writeBack.dispose();
  });
});
