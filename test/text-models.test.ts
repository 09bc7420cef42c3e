import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { paramRef, readMatrix } from "../src/core/params";
import { MergeNetTrainer } from "../src/core/mergenet";
import { getScenario, type ScenarioInstance } from "../src/experiments/scenario";
import {
  BROWN_POS_GENRE_PAIRS, SENTIMENT_SITE_PAIRS, brownPosGenrePairs, sentimentSitePairs, type SuggestedPair,
} from "../src/experiments/scenarios/cross-task";
import {
  TEXT_FAMILIES, bagOfEmbeddings, maskedTokenAccuracy, maskedTokenCrossEntropy, tagger, textClassifier, textCnn,
  textTransformer, tokenAccuracyEvaluator, type TaggerEncoder,
} from "../src/models/text";
import { loadModel, saveModel } from "../src/models/zoo";
import { expectNoTensorLeak } from "./helpers/leaks";

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

const VOCAB = 20;
const LEN = 6;
/** Two sentences with padding (0) after 3 and 1 real tokens, one without padding. */
const IDS = [[5, 6, 7, 0, 0, 0], [9, 0, 0, 0, 0, 0], [2, 3, 4, 5, 6, 7]];

function ids(): tf.Tensor2D {
  return tf.tensor2d(IDS, [IDS.length, LEN], "int32");
}

function predict(model: tf.LayersModel, x: tf.Tensor): number[][] {
  return tf.tidy(() => (model.predict(x) as tf.Tensor).arraySync() as number[][]);
}

/** Overwrites the embedding row of the padding id with large random values. */
function scramblePadding(model: tf.LayersModel): void {
  const embed = model.getLayer("embed").getWeights()[0];
  const scrambled = tf.tidy(() => tf.concat([tf.randomNormal([1, embed.shape[1] as number], 0, 5, "float32", 7), embed.slice([1, 0])]));
  model.getLayer("embed").setWeights([scrambled]);
  scrambled.dispose();
}

function classifiers(seed: number): Record<string, tf.LayersModel> {
  return {
    bow: bagOfEmbeddings({ vocab: VOCAB, maxLen: LEN, classes: 3, seed }),
    cnn: textCnn({ vocab: VOCAB, maxLen: LEN, classes: 3, seed }),
    transformer: textTransformer({ vocab: VOCAB, maxLen: LEN, classes: 3, seed }),
  };
}

function taggers(seed: number): Record<TaggerEncoder, tf.LayersModel> {
  return {
    cnn: tagger({ vocab: VOCAB, maxLen: LEN, tags: 12, seed }),
    transformer: tagger({ vocab: VOCAB, maxLen: LEN, tags: 12, encoder: "transformer", seed }),
  };
}

function weightValues(model: tf.LayersModel): number[][] {
  return model.weights.map((w) => Array.from(w.read().dataSync()));
}

describe("text models", () => {
  it("output logits [batch, classes] for classifiers and [batch, len, tags] for taggers", () => {
    const x = ids();
    for (const model of Object.values(classifiers(1))) {
      expect([model.name, (model.predict(x) as tf.Tensor).shape]).toEqual([model.name, [3, 3]]);
      model.dispose();
    }
    for (const model of Object.values(taggers(1))) {
      expect((model.predict(x) as tf.Tensor).shape).toEqual([3, LEN, 12]);
      model.dispose();
    }
    x.dispose();
  });

  it("ignore the padding: the padding embedding changes no classifier output", () => {
    const x = ids();
    for (const [family, model] of Object.entries(classifiers(2))) {
      const before = predict(model, x);
      scramblePadding(model);
      const after = predict(model, x);
      after.forEach((row, r) => row.forEach((v, c) => expect([family, r, c, v]).toEqual([family, r, c, expect.closeTo(before[r][c], 5)])));
      model.dispose();
    }
    x.dispose();
  });

  it("ignore the padding: a tagger's logits at real tokens do not depend on the padding embedding", () => {
    const x = ids();
    for (const [encoder, model] of Object.entries(taggers(3))) {
      const before = predict(model, x) as unknown as number[][][];
      scramblePadding(model);
      const after = predict(model, x) as unknown as number[][][];
      IDS.forEach((row, r) => row.forEach((id, i) => {
        if (id === 0) return;
        after[r][i].forEach((v, t) => expect([encoder, r, i, t, v]).toEqual([encoder, r, i, t, expect.closeTo(before[r][i][t], 5)]));
      }));
      model.dispose();
    }
    x.dispose();
  });

  it("are reproducible from the seed", () => {
    for (const family of TEXT_FAMILIES) {
      const [a, b, c] = [1, 1, 2].map((seed) => textClassifier(family, { vocab: VOCAB, maxLen: LEN, classes: 2, seed }));
      expect(weightValues(a)).toEqual(weightValues(b));
      expect(weightValues(a)).not.toEqual(weightValues(c));
      [a, b, c].forEach((m) => m.dispose());
    }
  });

  it("save and load with their custom layers", async () => {
    const x = ids();
    for (const model of [...Object.values(classifiers(4)), ...Object.values(taggers(4))]) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "text-model-"));
      tempDirs.push(dir);
      await saveModel(model, dir);
      const loaded = await loadModel(dir);
      expect(predict(loaded, x)).toEqual(predict(model, x));
      loaded.dispose();
      model.dispose();
    }
    x.dispose();
  });
});

describe("masked token loss and accuracy", () => {
  // Two sentences, three positions, two tags; the last position of each is padding (-1).
  const logits = [[[2, 0], [0, 1], [9, -9]], [[0, 3], [5, 5], [-9, 9]]];
  const labels = [[0, 0, -1], [1, -1, -1]];

  function lossAndAccuracy(l: number[][][]): [number, number] {
    return tf.tidy(() => {
      const x = tf.tensor3d(l);
      const y = tf.tensor2d(labels, [2, 3], "int32");
      return [maskedTokenCrossEntropy(x, y).dataSync()[0], maskedTokenAccuracy(x, y).dataSync()[0]];
    });
  }

  it("averages cross-entropy and accuracy over real tokens only", () => {
    const ce = (a: number, b: number, label: number) => Math.log(Math.exp(a) + Math.exp(b)) - (label === 0 ? a : b);
    const expected = (ce(2, 0, 0) + ce(0, 1, 0) + ce(0, 3, 1)) / 3;
    const [loss, acc] = lossAndAccuracy(logits);
    expect(loss).toBeCloseTo(expected, 5);
    expect(acc).toBeCloseTo(2 / 3, 6); // [2,0]->0 right, [0,1]->1 wrong, [0,3]->1 right
  });

  it("does not change when logits at padded positions change, and sends them no gradient", () => {
    const changed = logits.map((row) => row.map((v) => [...v]));
    changed[0][2] = [-50, 50];
    changed[1][1] = [100, -3];
    changed[1][2] = [7, 7];
    expect(lossAndAccuracy(changed)).toEqual(lossAndAccuracy(logits));
    const grad = tf.tidy(() => {
      const y = tf.tensor2d(labels, [2, 3], "int32");
      return tf.grad((x: tf.Tensor) => maskedTokenCrossEntropy(x, y))(tf.tensor3d(logits)).arraySync() as number[][][];
    });
    expect([grad[0][2], grad[1][1], grad[1][2]].flat().map((g) => g + 0)).toEqual([0, 0, 0, 0, 0, 0]); // + 0 turns -0 into 0
    expect(Math.abs(grad[0][0][0])).toBeGreaterThan(0);
  });

  it("gives 0, not NaN, when every position is padding", () => {
    const [loss, acc] = tf.tidy(() => {
      const x = tf.tensor3d(logits);
      const y = tf.fill([2, 3], -1, "int32");
      return [maskedTokenCrossEntropy(x, y).dataSync()[0], maskedTokenAccuracy(x, y).dataSync()[0]];
    });
    expect([loss + 0, acc + 0]).toEqual([0, 0]); // + 0 turns -0 into 0
  });

  it("evaluates per-token accuracy over real tokens, whatever the batch size", async () => {
    const model = tagger({ vocab: VOCAB, maxLen: LEN, tags: 4, seed: 5 });
    const x = tf.tensor2d(Array.from({ length: 7 }, (_, r) => IDS[r % 3]), [7, LEN], "int32");
    const y = tf.tidy(() => {
      const raw = tf.randomUniform([7, LEN], 0, 4, "int32", 3);
      return tf.where(tf.equal(x, 0), tf.fill([7, LEN], -1, "int32"), raw);
    });
    const direct = tf.tidy(() => maskedTokenAccuracy(model.predict(x) as tf.Tensor, y).dataSync()[0]);
    for (const batchSize of [2, 3, 7]) {
      const { accuracy } = await tokenAccuracyEvaluator(x, y, batchSize)(model);
      expect(accuracy).toBeCloseTo(direct, 6);
    }
    tf.dispose([x, y]);
    model.dispose();
  });
});

describe("suggested layer pairs", () => {
  it("resolve in every family combination and direction", () => {
    const classifierOf = (family: (typeof TEXT_FAMILIES)[number], classes: number) => textClassifier(family, { vocab: VOCAB, maxLen: LEN, classes, seed: 0 });
    for (const sourceModel of TEXT_FAMILIES) {
      for (const targetModel of TEXT_FAMILIES) {
        for (const direction of ["site->sentiment", "sentiment->site"] as const) {
          const source = classifierOf(sourceModel, 3);
          const target = classifierOf(targetModel, 2);
          const pairs = sentimentSitePairs({ direction, sourceModel, targetModel });
          expect(pairs.length).toBeGreaterThanOrEqual(2);
          for (const pair of pairs) {
            expect(paramRef(source, pair.source).kind).toBeDefined();
            expect(paramRef(target, pair.target).kind).toBeDefined();
          }
          source.dispose();
          target.dispose();
        }
      }
    }
    for (const genreModel of TEXT_FAMILIES) {
      for (const taggerEncoder of ["cnn", "transformer"] as const) {
        for (const direction of ["pos->genre", "genre->pos"] as const) {
          const tag = tagger({ vocab: VOCAB, maxLen: LEN, tags: 12, encoder: taggerEncoder, seed: 0 });
          const genre = classifierOf(genreModel, 4);
          const [source, target] = direction === "pos->genre" ? [tag, genre] : [genre, tag];
          for (const pair of brownPosGenrePairs({ direction, genreModel, taggerEncoder })) {
            expect(paramRef(source, pair.source).kind).toBeDefined();
            expect(paramRef(target, pair.target).kind).toBeDefined();
          }
          tag.dispose();
          genre.dispose();
        }
      }
    }
  });
});

/** Weights and the first batch of both sides: what a deterministic build must repeat. */
function fingerprint(instance: ScenarioInstance): number[][] {
  const out: number[][] = [];
  for (const side of [instance.source, instance.target]) {
    out.push(...weightValues(side.model));
    const batch = side.data.next();
    out.push(Array.from(batch.x.dataSync()), Array.from(batch.y.dataSync()));
    tf.dispose([batch.x, batch.y]);
  }
  return out;
}

/** Runs one short MergeNet epoch per suggested pair (adapter with one layer), checking leaks and transfers. */
async function runPairs(instance: ScenarioInstance, pairs: readonly SuggestedPair[]): Promise<void> {
  for (const pair of pairs) {
    const ref = paramRef(instance.target.model, pair.target);
    const before = readMatrix(ref);
    const trainer = new MergeNetTrainer(instance.source, instance.target, { pairs: [{ source: pair.source, target: pair.target }], adapter: { layers: 1 }, seed: 1 });
    await expectNoTensorLeak(async () => {
      await trainer.trainEpoch();
    }, { warmup: 2, repeats: 1 });
    const transfers = trainer.history.transfers;
    expect([pair.name, transfers.length > 0, transfers.every((t) => Number.isFinite(t.relativeChange) && t.relativeChange > 0)]).toEqual([pair.name, true, true]);
    const changed = tf.tidy(() => tf.any(tf.notEqual(readMatrix(ref), before)).dataSync()[0]);
    expect(changed).toBe(1);
    expect(Number.isFinite(trainer.history.epochs[1].target.accuracy)).toBe(true);
    trainer.dispose();
    before.dispose();
  }
}

describe("scenario sentiment-site", () => {
  const scenario = () => getScenario("sentiment-site");

  it("builds deterministically for a seed, with the direction and data fraction asked for", async () => {
    const tensorsBefore = tf.memory().numTensors;
    const a = await scenario().build(3, {});
    const b = await scenario().build(3, {});
    const c = await scenario().build(4, {});
    expect(fingerprint(a)).toEqual(fingerprint(b));
    expect(fingerprint(a)).not.toEqual(fingerprint(c));
    expect([a.source.data.size, a.target.data.size, a.sharedLabels, a.metric]).toEqual([2100, 2100, false, "accuracy"]);
    expect([a.source.model.outputs[0].shape[1], a.target.model.outputs[0].shape[1]]).toEqual([3, 2]); // site -> sentiment
    const evaluated = await a.target.evaluate!(a.target.model);
    expect(evaluated.accuracy).toBeGreaterThanOrEqual(0);
    expect(evaluated.accuracy).toBeLessThanOrEqual(1);
    [a, b, c].forEach((i) => i.dispose());
    const reverse = await scenario().build(0, { direction: "sentiment->site", sourceModel: "transformer", targetModel: "cnn", trainFraction: 0.1 });
    expect([reverse.source.model.outputs[0].shape[1], reverse.target.model.outputs[0].shape[1]]).toEqual([2, 3]);
    expect([reverse.source.data.size, reverse.target.data.size]).toEqual([2100, 210]);
    reverse.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it("rejects unknown options and bad values with a message naming them", async () => {
    await expect(scenario().build(0, { trainFrac: 0.1 })).rejects.toThrow(/unknown option 'trainFrac'/);
    await expect(scenario().build(0, { direction: "up" })).rejects.toThrow(/direction must be one of/);
    await expect(scenario().build(0, { trainFraction: 0 })).rejects.toThrow(/trainFraction/);
  });

  it("trains MergeNet on every suggested pair without leaking tensors", async () => {
    const instance = await scenario().build(0, { trainFraction: 0.1 });
    expect(SENTIMENT_SITE_PAIRS.length).toBeGreaterThanOrEqual(2);
    await runPairs(instance, SENTIMENT_SITE_PAIRS);
    instance.dispose();
  });
});

describe("scenario brown-pos-genre", () => {
  const scenario = () => getScenario("brown-pos-genre");
  const small = { taggingCaps: [800, 50, 200], genreCaps: [800, 50, 200] };

  it("builds deterministically for a seed, with the direction and data fraction asked for", async () => {
    const a = await scenario().build(1, small);
    // Builds share the process's Brown datasets (brownDatasetsFor): one that selects rows of them must not change them.
    const between = await scenario().build(2, { ...small, direction: "genre->pos", trainFraction: 0.25 });
    between.dispose();
    const b = await scenario().build(1, small);
    expect(fingerprint(a)).toEqual(fingerprint(b));
    expect([a.source.model.outputs[0].shape, a.target.model.outputs[0].shape]).toEqual([[null, 40, 12], [null, 4]]);
    expect([a.source.data.size, a.target.data.size]).toEqual([800, 800]);
    [a, b].forEach((i) => i.dispose());
    const reverse = await scenario().build(1, { ...small, direction: "genre->pos", trainFraction: 0.25 });
    expect([reverse.source.model.outputs[0].shape, reverse.target.model.outputs[0].shape]).toEqual([[null, 4], [null, 40, 12]]);
    expect([reverse.source.data.size, reverse.target.data.size]).toEqual([800, 200]);
    const { accuracy } = await reverse.target.evaluate!(reverse.target.model);
    expect(accuracy).toBeGreaterThanOrEqual(0);
    expect(accuracy).toBeLessThanOrEqual(1);
    reverse.dispose();
  });

  it("trains MergeNet on every suggested pair without leaking tensors", async () => {
    const instance = await scenario().build(0, { ...small, trainFraction: 0.25 });
    expect(BROWN_POS_GENRE_PAIRS.length).toBeGreaterThanOrEqual(2);
    await runPairs(instance, BROWN_POS_GENRE_PAIRS);
    instance.dispose();
  });
});
