// The flat AdamW (src/core/adamw.ts) against a per-variable reference written out here:
// same updates, same handling of absent gradients, exact state round-trip, no leaks.
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { AdamW, ADAMW_DEFAULTS, type AdamWConfig } from "../src/core/adamw";
import { expectNoTensorLeak } from "./helpers/leaks";

/** The textbook per-variable AdamW with global-norm clipping and decay on matrices only. */
function referenceStep(
  variables: tf.Variable[],
  moments: Map<string, { m: tf.Tensor; s: tf.Tensor }>,
  grads: Record<string, tf.Tensor>,
  t: number,
  c: AdamWConfig,
): number {
  return tf.tidy(() => {
    const present = variables.filter((v) => grads[v.name] !== undefined);
    const norm = Math.sqrt(present.reduce((acc, v) => acc + tf.sum(tf.square(grads[v.name])).dataSync()[0], 0));
    const scale = Math.min(1, c.clipNorm / (norm + 1e-6));
    for (const v of present) {
      const g = tf.mul(grads[v.name], scale);
      const old = moments.get(v.name)!;
      const m = tf.add(tf.mul(old.m, c.beta1), tf.mul(g, 1 - c.beta1));
      const s = tf.add(tf.mul(old.s, c.beta2), tf.mul(tf.square(g), 1 - c.beta2));
      const update = tf.div(tf.div(m, 1 - c.beta1 ** t), tf.add(tf.sqrt(tf.div(s, 1 - c.beta2 ** t)), c.epsilon));
      const decayed = v.rank >= 2 ? tf.add(update, tf.mul(v, c.weightDecay)) : update;
      v.assign(tf.sub(v, tf.mul(decayed, c.learningRate)));
      tf.dispose([old.m, old.s]);
      moments.set(v.name, { m: tf.keep(m), s: tf.keep(s) });
    }
    return norm;
  });
}

let counter = 0;
function makeVariables(seed: number): tf.Variable[] {
  counter += 1;
  return [
    tf.variable(tf.randomNormal([5, 3], 0, 1, "float32", seed), true, `adamw_test${counter}/kernel`),
    tf.variable(tf.randomNormal([3], 0, 1, "float32", seed + 1), true, `adamw_test${counter}/bias`),
    tf.variable(tf.scalar(-6), true, `adamw_test${counter}/theta`),
    tf.variable(tf.randomNormal([2, 2, 2], 0, 1, "float32", seed + 2), true, `adamw_test${counter}/conv`),
  ];
}

function randomGrads(variables: tf.Variable[], seed: number, scale: number, skip?: number): Record<string, tf.Tensor> {
  const grads: Record<string, tf.Tensor> = {};
  variables.forEach((v, i) => {
    if (i !== skip) grads[v.name] = tf.randomNormal(v.shape, 0, scale, "float32", seed * 17 + i);
  });
  return grads;
}

const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

describe("flat AdamW", () => {
  it.each([
    ["no clipping", 0.1, undefined],
    ["clipping active", 100, undefined],
    ["one gradient absent", 0.1, 1],
  ] as const)("matches the per-variable reference over 5 steps (%s)", (_label, gradScale, skip) => {
    const config: AdamWConfig = { ...ADAMW_DEFAULTS, learningRate: 1e-2, weightDecay: 0.1, clipNorm: 5 };
    const fast = makeVariables(1);
    const ref = makeVariables(1);
    const optimizer = new AdamW(fast, config);
    const moments = new Map(ref.map((v) => [v.name, { m: tf.zerosLike(v), s: tf.zerosLike(v) }]));
    for (let t = 1; t <= 5; t++) {
      const g = randomGrads(fast, t, gradScale, skip);
      const gRef: Record<string, tf.Tensor> = {};
      fast.forEach((v, i) => g[v.name] && (gRef[ref[i].name] = g[v.name]));
      const norm = optimizer.step(g);
      const refNorm = referenceStep(ref, moments, gRef, t, config);
      expect(norm.dataSync()[0]).toBeCloseTo(refNorm, 4);
      tf.dispose([norm, g]);
    }
    fast.forEach((v, i) => expect(maxDiff(v, ref[i])).toBeLessThan(1e-6));
    if (skip !== undefined) expect(maxDiff(fast[skip], ref[skip])).toBe(0);
    // The skipped variable's moments stayed zero; the others moved.
    const state = optimizer.getState();
    state.moments.forEach((mv, i) => {
      expect(mv.m.shape).toEqual(fast[i].shape);
      const moved = tf.tidy(() => tf.max(tf.abs(mv.m)).dataSync()[0]);
      if (i === skip) expect(moved).toBe(0);
      else expect(moved).toBeGreaterThan(0);
    });
    tf.dispose([state.moments.map((mv) => [mv.m, mv.v]), [...moments.values()].map((x) => [x.m, x.s])]);
    optimizer.dispose();
    tf.dispose([fast, ref]);
  });

  it("reads a variable assigned between steps afresh (the kept flat weights are not reused then)", () => {
    const config: AdamWConfig = { ...ADAMW_DEFAULTS, learningRate: 1e-2, weightDecay: 0.1 };
    const fast = makeVariables(11);
    const ref = makeVariables(11);
    const optimizer = new AdamW(fast, config);
    const moments = new Map(ref.map((v) => [v.name, { m: tf.zerosLike(v), s: tf.zerosLike(v) }]));
    for (let t = 1; t <= 3; t++) {
      if (t === 3) {
        // As a checkpoint restore would: new values in two of the variables.
        [fast, ref].forEach((vars) => tf.tidy(() => {
          vars[0].assign(tf.fill([5, 3], 0.25));
          vars[2].assign(tf.scalar(1.5));
        }));
      }
      const g = randomGrads(fast, t, 0.1);
      const gRef: Record<string, tf.Tensor> = {};
      fast.forEach((v, i) => (gRef[ref[i].name] = g[v.name]));
      tf.dispose(optimizer.step(g));
      referenceStep(ref, moments, gRef, t, config);
      tf.dispose(g);
    }
    fast.forEach((v, i) => expect(maxDiff(v, ref[i])).toBeLessThan(1e-6));
    tf.dispose([...moments.values()].map((x) => [x.m, x.s]));
    optimizer.dispose();
    tf.dispose([fast, ref]);
  });

  it("restores a saved state exactly: the next step equals an uninterrupted run's", () => {
    const a = makeVariables(7);
    const b = makeVariables(7);
    const straight = new AdamW(a);
    const resumed = new AdamW(b);
    const g1 = randomGrads(a, 1, 1);
    const g1b = Object.fromEntries(a.map((v, i) => [b[i].name, g1[v.name]]));
    tf.dispose([straight.step(g1), resumed.step(g1b)]);
    const saved = straight.getState();
    const fresh = new AdamW(b);
    fresh.setState(saved);
    const g2 = randomGrads(a, 2, 1);
    const g2b = Object.fromEntries(a.map((v, i) => [b[i].name, g2[v.name]]));
    tf.dispose([straight.step(g2), fresh.step(g2b)]);
    a.forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(Array.from(b[i].dataSync())));
    expect(fresh.steps).toBe(2);
    tf.dispose([saved.moments.map((mv) => [mv.m, mv.v]), g1, g2]);
    [straight, resumed, fresh].forEach((o) => o.dispose());
    tf.dispose([a, b]);
  });

  it("rejects a state of another shape with a message naming the variable", () => {
    const vars = makeVariables(3);
    const optimizer = new AdamW(vars);
    const state = optimizer.getState();
    const wrong = { ...state, moments: state.moments.map((mv, i) => (i === 0 ? { m: tf.zeros([2]), v: tf.zeros([2]) } : mv)) };
    expect(() => optimizer.setState(wrong)).toThrow(/optimiser state for .*kernel/);
    tf.dispose([state.moments.map((mv) => [mv.m, mv.v]), wrong.moments[0].m, wrong.moments[0].v]);
    optimizer.dispose();
    tf.dispose(vars);
  });

  it("leaks no tensor per step", async () => {
    const vars = makeVariables(5);
    const optimizer = new AdamW(vars);
    const grads = randomGrads(vars, 1, 1);
    await expectNoTensorLeak(() => optimizer.step(grads).dispose());
    tf.dispose(grads);
    optimizer.dispose();
    tf.dispose(vars);
  });
});
