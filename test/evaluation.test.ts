/**
 * Evaluation costs less than it did and computes the same numbers:
 *  - every model family the scenarios evaluate gives the same output bits when `predict` runs
 *    EVAL_PREDICT_BATCH rows at a time as at tfjs's default 32 (so the evaluators' larger batch
 *    changes no recorded metric);
 *  - and the same bits for a row whichever rows share its batch (KD's teacher memo reuses an
 *    item's logits from another epoch's batch);
 *  - `evaluateSourceAt` skips the source's evaluation on the epochs it names false and changes
 *    nothing else (the runner evaluates the source at a run's last epoch only).
 */
import { describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { IndependentTrainer } from "../src/baselines/independent";
import { EVAL_PREDICT_BATCH } from "../src/core/losses";
import { cnn, mlp, vit } from "../src/models/zoo";
import { bagOfEmbeddings, tagger, textCnn, textTransformer } from "../src/models/text";
import { disposedAfterEach } from "./helpers/disposed";
import { weightsOf } from "./helpers/tiny";

const setup = disposedAfterEach();
const ROWS = 300; // neither 32 nor EVAL_PREDICT_BATCH divides it: both have a short last batch

function images(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform([ROWS, ...shape], 0, 1, "float32", seed);
}

function tokens(len: number, vocab: number, seed: number): tf.Tensor {
  return tf.tidy(() => {
    const ids = tf.randomUniform([ROWS, len], 1, vocab, "int32", seed);
    const lengths = tf.randomUniform([ROWS, 1], 2, len + 1, "int32", seed + 1);
    return tf.where(tf.less(tf.range(0, len, 1, "int32").expandDims(0), lengths), ids, tf.zerosLike(ids)); // 0 pads the tail
  });
}

/** Equal length and every value the same float (Object.is: -0 and NaN count). */
function expectSameBits(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  let differing = 0;
  for (let i = 0; i < expected.length; i++) if (!Object.is(actual[i], expected[i])) differing++;
  expect(differing).toBe(0);
}

const VOCAB = 50;
const LEN = 12;
const FAMILIES: [string, () => tf.LayersModel, () => tf.Tensor][] = [
  ["image CNN", () => cnn({ inputShape: [28, 28, 1], classes: 10, seed: 1 }), () => images([28, 28, 1], 1)],
  ["audio CNN (spectrogram shape)", () => cnn({ inputShape: [32, 20, 1], classes: 10, seed: 2 }), () => images([32, 20, 1], 2)],
  ["MLP", () => mlp({ inputShape: [28, 28, 1], hidden: [256, 128], classes: 10, seed: 3 }), () => images([28, 28, 1], 3)],
  ["ViT", () => vit({ inputShape: [28, 28, 1], patch: 7, dim: 64, depth: 2, heads: 4, classes: 10, seed: 4 }), () => images([28, 28, 1], 4)],
  ["bag of embeddings", () => bagOfEmbeddings({ vocab: VOCAB, maxLen: LEN, classes: 3, seed: 5 }), () => tokens(LEN, VOCAB, 5)],
  ["text CNN", () => textCnn({ vocab: VOCAB, maxLen: LEN, classes: 3, seed: 6 }), () => tokens(LEN, VOCAB, 6)],
  ["text transformer", () => textTransformer({ vocab: VOCAB, maxLen: LEN, classes: 3, seed: 7 }), () => tokens(LEN, VOCAB, 7)],
  ["tagger (CNN)", () => tagger({ vocab: VOCAB, maxLen: LEN, tags: 12, seed: 8 }), () => tokens(LEN, VOCAB, 8)],
  ["tagger (transformer)", () => tagger({ vocab: VOCAB, maxLen: LEN, tags: 12, encoder: "transformer", seed: 9 }), () => tokens(LEN, VOCAB, 9)],
];

describe("evaluation batch", () => {
  for (const [name, build, input] of FAMILIES) {
    it(`${name}: predict at ${EVAL_PREDICT_BATCH} rows gives the bits of predict at 32`, () => {
      const model = build();
      const x = input();
      const at32 = tf.tidy(() => (model.predict(x, { batchSize: 32 }) as tf.Tensor).dataSync());
      const atEval = tf.tidy(() => (model.predict(x, { batchSize: EVAL_PREDICT_BATCH }) as tf.Tensor).dataSync());
      expectSameBits(atEval, at32);
      x.dispose();
      model.dispose();
    });
  }
});

describe("a row's output does not depend on the rows batched with it", () => {
  // What KD's teacher memo (distillation.ts TeacherLogitMemo) relies on: logits computed for an
  // item in one epoch's batch are the bits the teacher gives it in any other batch.
  for (const [name, build, input] of FAMILIES) {
    it(`${name}: predict on shuffled rows gives the shuffled bits of predict in order`, () => {
      const model = build();
      const x = input();
      const order = Array.from({ length: ROWS }, (_, i) => (i * 7919) % ROWS); // 7919 is prime: a permutation
      const [inOrder, shuffled] = tf.tidy(() => {
        const perm = tf.tensor1d(order, "int32");
        return [
          tf.gather(model.predict(x) as tf.Tensor, perm).dataSync(),
          (model.predict(tf.gather(x, perm)) as tf.Tensor).dataSync(),
        ];
      });
      expectSameBits(shuffled, inOrder);
      x.dispose();
      model.dispose();
    });
  }
});

describe("evaluateSourceAt", () => {
  it("evaluates the source only where asked, and trains exactly as before", async () => {
    const counting = (calls: number[]) => async (): Promise<Record<string, number>> => {
      calls.push(1);
      return { accuracy: calls.length };
    };
    const a = setup({ seed: 3 });
    const b = setup({ seed: 3 });
    const callsA: number[] = [];
    const callsB: number[] = [];
    const every = new IndependentTrainer({ ...a.source, evaluate: counting(callsA) }, a.target);
    const last = new IndependentTrainer({ ...b.source, evaluate: counting(callsB) }, b.target);
    last.evaluateSourceAt = (epoch) => epoch === 2;
    await every.fit(3);
    await last.fit(3);
    expect(callsA.length).toBe(3);
    expect(callsB.length).toBe(1);
    expect(last.history.epochs.map((e) => e.source)).toEqual([{}, {}, { accuracy: 1 }]);
    expect(last.history.sourceLoss).toEqual(every.history.sourceLoss);
    expect(last.history.targetLoss).toEqual(every.history.targetLoss);
    expect(weightsOf(b.source.model)).toEqual(weightsOf(a.source.model));
    expect(weightsOf(b.target.model)).toEqual(weightsOf(a.target.model));
    every.dispose();
    last.dispose();
  });
});
