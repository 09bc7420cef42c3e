import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/index";
import { DistillationTrainer } from "../src/baselines/distillation";
import { paramRef } from "../src/core/params";
import { MergeNetTrainer } from "../src/core/mergenet";
import { batchStream } from "../src/data/batches";
import {
  bagOfWords,
  blendOnWhite,
  cropEmoji,
  EMOJI_CATEGORIES,
  emojiPixels,
  emojiTokens,
  loadEmojiDataset,
  readEmojiArrays,
  splitEmojiItems,
  type EmojiArrays,
  type EmojiItem,
  type RgbaImage,
} from "../src/data/emoji";
import { getScenario } from "../src/experiments/scenario";
import {
  buildEmojiImageText,
  crossModalPairing,
  EMOJI_PAIRS,
  type EmojiImageTextInstance,
} from "../src/experiments/scenarios/cross-modality";
import { expectNoTensorLeak } from "./helpers/leaks";

const DATASOURCE = path.dirname(require.resolve("emoji-datasource/package.json"));
const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-emoji-"));
  tempDirs.push(dir);
  return dir;
}

let arrays: EmojiArrays;
let cacheDir: string;
beforeAll(() => {
  cacheDir = tempDir();
  arrays = readEmojiArrays({ cacheDir });
});
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function item(unified: string): { item: EmojiItem; index: number } {
  const index = arrays.items.findIndex((e) => e.unified === unified);
  if (index < 0) throw new Error(`emoji ${unified} is not among the kept items`);
  return { item: arrays.items[index], index };
}

/** Mean R, G, B over the non-white pixels of a 32x32 crop (RGB bytes), and their count. */
function inkColour(rgb: Uint8Array): { mean: [number, number, number]; ink: number } {
  const sum = [0, 0, 0];
  let ink = 0;
  for (let p = 0; p < rgb.length; p += 3) {
    if (rgb[p] > 245 && rgb[p + 1] > 245 && rgb[p + 2] > 245) continue;
    ink += 1;
    for (let c = 0; c < 3; c++) sum[c] += rgb[p + c];
  }
  return { mean: sum.map((s) => s / Math.max(1, ink)) as [number, number, number], ink };
}

function cropOf(vendor: "google" | "twitter", index: number): Uint8Array {
  const size = 32 * 32 * 3;
  return arrays.images[vendor].subarray(index * size, (index + 1) * size);
}

describe("cropping the sprite sheets", () => {
  it("blends transparency onto white", () => {
    expect(blendOnWhite(0, 0)).toBe(255); // fully transparent black -> white
    expect(blendOnWhite(17, 255)).toBe(17); // opaque: unchanged
    expect(blendOnWhite(0, 128)).toBe(127); // half-transparent black -> mid grey
  });

  it("reads exactly the 32x32 interior of a 34 px cell, never its border", () => {
    const side = 62 * 34;
    const sheet: RgbaImage = { width: side, height: side, data: new Uint8Array(side * side * 4) };
    // Border rows and columns of cell (3, 5) opaque red; interior pixel (x, y) opaque with R = x, G = y, B = 7.
    for (let y = 0; y < 34; y++) {
      for (let x = 0; x < 34; x++) {
        const at = ((5 * 34 + y) * side + 3 * 34 + x) * 4;
        const border = x === 0 || y === 0 || x === 33 || y === 33;
        sheet.data.set(border ? [255, 0, 0, 255] : [x - 1, y - 1, 7, 255], at);
      }
    }
    sheet.data.set([9, 9, 9, 0], ((5 * 34 + 1) * side + 3 * 34 + 1) * 4); // interior (0, 0) fully transparent
    const crop = cropEmoji(sheet, 3, 5);
    expect(crop.length).toBe(32 * 32 * 3);
    expect([...crop.subarray(0, 3)]).toEqual([255, 255, 255]);
    expect([...crop.subarray(3, 6)]).toEqual([1, 0, 7]); // (x 1, y 0)
    const last = (31 * 32 + 31) * 3;
    expect([...crop.subarray(last, last + 3)]).toEqual([31, 31, 7]);
    for (let p = 3; p < crop.length; p += 3) expect(crop[p + 2]).toBe(7); // no red border pixel anywhere
    expect(() => cropEmoji(sheet, 62, 0)).toThrow(/sheetX must be an integer from 0 to 61/);
    expect(() => cropEmoji({ width: 10, height: 10, data: new Uint8Array(400) }, 0, 0)).toThrow(/2108x2108/);
  });

  it("crops known emoji from the real sheets: not blank, the right colours, unlike the neighbouring cell", () => {
    const sheet = PNG.sync.read(fs.readFileSync(path.join(DATASOURCE, "img", "google", "sheets", "32.png")));
    const grinning = item("1F600");
    const direct = cropEmoji(sheet, grinning.item.sheetX, grinning.item.sheetY);
    expect(Buffer.from(direct).equals(Buffer.from(cropOf("google", grinning.index)))).toBe(true);
    const neighbour = cropEmoji(sheet, grinning.item.sheetX, grinning.item.sheetY + 1);
    expect(Buffer.from(direct).equals(Buffer.from(neighbour))).toBe(false);
    for (const vendor of ["google", "twitter"] as const) {
      const face = inkColour(cropOf(vendor, grinning.index));
      expect(face.ink).toBeGreaterThan(400); // a face fills most of the cell
      expect(face.mean[0]).toBeGreaterThan(face.mean[2] + 60); // yellow: red and green well above blue
      expect(face.mean[1]).toBeGreaterThan(face.mean[2] + 30);
      const heart = inkColour(cropOf(vendor, item("2764-FE0F").index));
      expect(heart.mean[0]).toBeGreaterThan(heart.mean[1] + 80); // red
      const frog = inkColour(cropOf(vendor, item("1F438").index));
      expect(frog.mean[1]).toBeGreaterThan(frog.mean[2]); // green
      // The face's corner pixel is transparent background in the sheet: white after blending.
      expect([...cropOf(vendor, grinning.index).subarray(0, 3)]).toEqual([255, 255, 255]);
    }
    // France: blue on the left, red on the right (both vendors), a check of x/y orientation.
    const france = item("1F1EB-1F1F7").index;
    for (const vendor of ["google", "twitter"] as const) {
      const rgb = cropOf(vendor, france);
      const columnMean = (x0: number, x1: number, c: number) => {
        let sum = 0;
        for (let y = 10; y < 22; y++) for (let x = x0; x < x1; x++) sum += rgb[(y * 32 + x) * 3 + c];
        return sum / (12 * (x1 - x0));
      };
      expect(columnMean(3, 9, 2)).toBeGreaterThan(columnMean(3, 9, 0) + 60);
      expect(columnMean(23, 29, 0)).toBeGreaterThan(columnMean(23, 29, 2) + 60);
    }
  });

  it("averages 2x2 blocks for 16 px images and scales to [0, 1]", () => {
    const bytes = new Uint8Array(32 * 32 * 3);
    bytes[0] = 255; // (0,0) red channel; the block's other three pixels are 0
    bytes[(1 * 32 + 1) * 3 + 1] = 100; // (1,1) green
    const half = emojiPixels(bytes, [0], 16);
    expect(half.length).toBe(16 * 16 * 3);
    expect(half[0]).toBeCloseTo(255 / 4 / 255, 6);
    expect(half[1]).toBeCloseTo(100 / 4 / 255, 6);
    expect(half[3]).toBe(0);
    expect(emojiPixels(bytes, [0], 32)[0]).toBe(1);
  });
});

describe("the emoji metadata", () => {
  it("keeps 1906 emoji in 9 categories, drops Component, and joins every one with emojibase", () => {
    const { stats } = arrays;
    expect(arrays.items.length).toBe(1906);
    expect(arrays.classes).toEqual([...EMOJI_CATEGORIES]);
    expect(stats.entries).toBe(1911);
    expect(stats.droppedCategory).toEqual({ Component: 5 });
    expect(stats.droppedNoImage).toBe(0);
    expect(stats.droppedNoText).toBe(0);
    expect(stats.perCategory).toEqual([169, 386, 159, 131, 218, 85, 264, 224, 270]);
    expect(stats.joinedByUnified).toBe(1699);
    expect(stats.joinedByNonQualified).toBe(207);
    expect(stats.groupAgrees).toBe(1906);
    const counts = EMOJI_CATEGORIES.map((_, c) => arrays.items.filter((e) => e.category === c).length);
    expect(counts).toEqual(stats.perCategory);
  });

  it("joins by code points, falling back to the form without U+FE0F", () => {
    const grinning = item("1F600").item;
    expect(grinning.label).toBe("grinning face");
    expect(grinning.tags).toContain("grin");
    expect(grinning.joinedBy).toBe("unified");
    expect(EMOJI_CATEGORIES[grinning.category]).toBe("Smileys & Emotion");
    const heart = item("2764-FE0F").item;
    expect(heart.label).toBe("red heart");
    expect(heart.joinedBy).toBe("non_qualified");
    const france = item("1F1EB-1F1F7").item;
    expect(emojiTokens(france)).toEqual(["flag", "france", "fr", "flag"]);
    expect(EMOJI_CATEGORIES[france.category]).toBe("Flags");
  });

  it("reads the second time from the cache, identically", () => {
    const again = readEmojiArrays({ cacheDir });
    expect(again.fromCache).toBe(true);
    expect(again.items).toEqual(arrays.items);
    expect(Buffer.from(again.images.twitter).equals(Buffer.from(arrays.images.twitter))).toBe(true);
  });
});

describe("the split and the text features", () => {
  it("splits by emoji, stratified by category, reproducibly from the seed", () => {
    const a = splitEmojiItems(arrays.items, 3);
    const b = splitEmojiItems(arrays.items, 3);
    const c = splitEmojiItems(arrays.items, 4);
    expect(a).toEqual(b);
    expect(a.test).not.toEqual(c.test);
    const train = new Set(a.train);
    expect(a.test.some((i) => train.has(i))).toBe(false);
    expect(a.train.length + a.test.length).toBe(1906);
    EMOJI_CATEGORIES.forEach((_, cat) => {
      const n = arrays.stats.perCategory[cat];
      expect(a.test.filter((i) => arrays.items[i].category === cat).length).toBe(Math.round(n * 0.25));
    });
    expect(() => splitEmojiItems(arrays.items, 0, 1)).toThrow(/testFraction/);
  });

  it("makes 0/1 bags of words over a fixed vocabulary, dropping unknown tokens", () => {
    const rows = bagOfWords([["face", "grin", "face"], ["unknown"]], ["grin", "face", "heart"]);
    expect([...rows]).toEqual([1, 1, 0, 0, 0, 0]);
  });

  it("builds tensors: vocabulary from training emoji only, image test on the other vendor", async () => {
    const data = await loadEmojiDataset({ cacheDir, seed: 1, trainVendor: "twitter", imageSide: 16 });
    try {
      expect(data.testVendor).toBe("google");
      expect(data.image.train.x.shape).toEqual([data.trainItems.length, 16, 16, 3]);
      expect(data.image.test.x.shape).toEqual([data.testItems.length, 16, 16, 3]);
      expect(data.text.train.x.shape).toEqual([data.trainItems.length, data.vocabulary.length]);
      expect(data.vocabulary.length).toBe(1000);
      // Every vocabulary token occurs in at least two training emoji.
      const trainTokens = data.trainItems.map((i) => new Set(emojiTokens(arrays.items[i])));
      for (const token of data.vocabulary.slice(-20)) expect(trainTokens.filter((t) => t.has(token)).length).toBeGreaterThanOrEqual(2);
      // Labels are the items' categories, identical across modalities.
      expect([...data.image.train.y.dataSync()]).toEqual(data.trainItems.map((i) => arrays.items[i].category));
      expect([...data.text.test.y.dataSync()]).toEqual([...data.image.test.y.dataSync()]);
      // The other vendor's rendering really differs.
      const diff = tf.tidy(() => tf.mean(tf.abs(tf.sub(data.image.test.x, data.image.testSameVendor.x))).dataSync()[0]);
      expect(diff).toBeGreaterThan(0.02);
    } finally {
      data.dispose();
    }
  });
});

describe("scenario emoji-image-text", () => {
  const instances: EmojiImageTextInstance[] = [];
  afterAll(() => instances.forEach((i) => i.dispose()));
  async function build(options: Parameters<typeof buildEmojiImageText>[1]): Promise<EmojiImageTextInstance> {
    const instance = await buildEmojiImageText(0, options);
    instances.push(instance);
    return instance;
  }

  it("is registered and validates its options", async () => {
    expect(getScenario("emoji-image-text").build).toBe(buildEmojiImageText);
    await expect(buildEmojiImageText(0, { direction: "sideways" as never })).rejects.toThrow(/direction must be one of "text->image", "image->text"/);
    await expect(buildEmojiImageText(0, { batchsize: 3 } as never)).rejects.toThrow(/unknown option 'batchsize'/);
  });

  it("pairs item-aligned batches: the other modality's rows are the same emoji", async () => {
    const instance = await build({ direction: "text->image" });
    expect(instance.sharedLabels).toBe(true);
    expect(instance.metric).toBe("accuracy");
    const pairing = crossModalPairing(instance)!;
    expect(pairing).toBe(instance.pairing);
    const batch = instance.target.data.next(); // image batch
    const items = pairing.itemsOf(batch);
    const text = pairing.sourceInputFor(batch);
    expect(text.shape).toEqual([items.length, instance.sizes.vocabulary]);
    // The text rows are the training text rows of the same items; the labels match.
    const data = await loadEmojiDataset({ seed: 0, imageSide: 16 });
    const expected = tf.gather(data.text.train.x, tf.tensor1d(items, "int32"));
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(expected, text))).dataSync()[0])).toBe(0);
    expect([...batch.y.dataSync()]).toEqual([...items].map((i) => arrays.items[data.trainItems[i]].category));
    const teacher = instance.source.model.predict(text) as tf.Tensor;
    expect(teacher.shape).toEqual([items.length, 9]);
    expect(() => pairing.targetInputFor(batch)).toThrow(/came from the target's stream/);
    expect(() => pairing.itemsOf({ x: batch.x.clone(), y: batch.y })).toThrow(/did not come from this scenario/);
    // The stream hands out the batches a plain batchStream with the same seed would (seed * 2 + 102 for the target).
    const plain = batchStream(data.image.train.x, data.image.train.y, { batchSize: 32, seed: 102 }).next();
    expect([...plain.y.dataSync()]).toEqual([...batch.y.dataSync()]);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(plain.x, batch.x))).dataSync()[0])).toBe(0);
    tf.dispose([batch.x, batch.y, text, expected, teacher, plain.x, plain.y]);
    data.dispose();
  });

  it("is refused by the same-input distillation baseline with a message naming the input shapes", async () => {
    const instance = await build({ direction: "image->text" });
    expect(() => new DistillationTrainer(instance.source, instance.target, { sharedLabels: instance.sharedLabels })).toThrow(/same batch.*inputs of shape/);
  });

  for (const direction of ["text->image", "image->text"] as const) {
    it(`${direction}: suggested pairs resolve with the documented shapes and MergeNet steps run without leaking`, async () => {
      const instance = await build({ direction });
      const pairs = EMOJI_PAIRS[direction];
      const shape = (side: "source" | "target", name: string) => paramRef(instance[side].model, name).matrixShape;
      const [textHidden, imageHidden, vocabulary] = [128, 64, instance.sizes.vocabulary];
      if (direction === "text->image") {
        expect(shape("source", pairs.classifier.source)).toEqual([9, textHidden]);
        expect(shape("target", pairs.classifier.target)).toEqual([9, imageHidden]);
        expect(shape("target", pairs.released.target)).toEqual([32, 144]);
      } else {
        expect(shape("source", pairs.classifier.source)).toEqual([9, imageHidden]);
        expect(shape("target", pairs.classifier.target)).toEqual([9, textHidden]);
        expect(shape("target", pairs.released.target)).toEqual([textHidden, vocabulary]);
      }
      const config = { pairs: [pairs.classifier, pairs.released], cycle: 1, adapter: { layers: 1 }, seed: 0 };
      const before = paramRef(instance.target.model, pairs.released.target).variable.read().clone();
      let transfers = 0;
      // A trainer made, stepped 3 times and disposed leaves nothing behind (after a warm-up
      // run that creates the models' momentum slots, which rightly persist).
      await expectNoTensorLeak(() => {
        const trainer = new MergeNetTrainer(instance.source, instance.target, config);
        for (let i = 0; i < 3; i++) trainer.trainStep();
        trainer.dispose();
        transfers = trainer.history.transfers.length;
        expect(trainer.history.targetLoss.every(Number.isFinite)).toBe(true);
      }, { warmup: 1, repeats: 1 });
      expect(transfers).toBe(3 * 2); // cycle 1: every step, both pairs
      const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(before, paramRef(instance.target.model, pairs.released.target).variable.read()))).dataSync()[0]);
      expect(moved).toBeGreaterThan(0);
      const scores = await instance.target.evaluate!(instance.target.model);
      expect(scores.accuracy).toBeGreaterThanOrEqual(0);
      if (direction === "text->image") expect(Object.keys(scores).sort()).toEqual(["accuracy", "sameVendorAccuracy"]);
      before.dispose();
    });
  }
});
