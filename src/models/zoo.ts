/**
 * The model zoo: a small CNN, an MLP and a small vision transformer, as tfjs-layers models
 * whose layers carry stable, human-chosen names, so that MergeNet's layer pairs are chosen by
 * name (`"classifier/kernel"`, `"fc2/kernel"`, `"block0_attn/q_kernel"`).
 *
 * Naming (a choice): layer names are NOT prefixed with the model name. A weight's stable
 * address is `<layer>/<weight>`, tfjs's `LayerVariable.originalName`, identical in every
 * model of the same kind; it is also the name under which weights are saved and loaded.
 * tfjs keeps the engine-level variable names unique by itself (`LayerVariable.name` becomes
 * `conv1/kernel_1` for the second CNN built in a process), so two models never collide; that
 * engine name depends on build order and is never used as an address. `opts.name` names the
 * model only.
 *
 * All models output logits (no softmax). Weights are reproducible from `seed`: every kernel
 * gets a Glorot-uniform initialiser (Keras's default) seeded by `weightSeed(seed, address)`;
 * biases start at zero, LayerNorm at gamma 1 / beta 0. Without a seed, tfjs's unseeded random.
 *
 * Layer and weight names of each model: docs/METHOD.md §1 (with the ViT's mean pooling, a
 * choice).
 *
 * bench-mnist (docs/METHOD.md §7): benchSource() is the CNN on [28, 28, 1] with 10 classes, benchTarget()
 * the MLP 784 -> 256 -> 128 -> 10; the pair is BENCH_PAIR: source "classifier/kernel"
 * ([128, 10], i.e. [10, 128] as [out, in]) -> target "fc2/kernel" ([256, 128], i.e. [128, 256]).
 *
 * saveModel / loadModel write and read the tfjs `model.json` + `weights.bin` layout (the one
 * tfjs-node's `file://` handler uses) on every backend; importing this module registers the
 * ViT's custom layers, so loading a ViT needs nothing else.
 */
import * as fs from "fs";
import * as path from "path";
import { tf } from "../backend/index";
import { dense as plainDense } from "./dense";
import { LayerNorm, MultiHeadSelfAttention, PositionEmbedding, weightSeed } from "./vit-layers";

export { weightSeed } from "./vit-layers";

export interface CnnOptions {
  /** Model name; default "cnn". */
  name?: string;
  /** [height, width, channels], each side at least 4 (two 2x2 pools). */
  inputShape: [number, number, number];
  classes: number;
  /** Filters of conv1 and conv2; default [32, 64]. */
  filters?: [number, number];
  /** Width of fc1; default 128. */
  hidden?: number;
  seed?: number;
}

export interface MlpOptions {
  /** Model name; default "mlp". */
  name?: string;
  /** Shape of one example; flattened first when its rank is above 1. */
  inputShape: number[];
  /** Widths of fc1..fcN, e.g. [256, 128]. */
  hidden: number[];
  classes: number;
  seed?: number;
}

export interface VitOptions {
  /** Model name; default "vit". */
  name?: string;
  /** [height, width, channels]; height and width divisible by `patch`. */
  inputShape: [number, number, number];
  /** Patch side, e.g. 7 (a 28x28 image becomes 16 tokens). */
  patch: number;
  /** Token width, divisible by `heads`, e.g. 64. */
  dim: number;
  /** Number of transformer blocks, e.g. 2. */
  depth: number;
  heads: number;
  /** Hidden width of each block's MLP; default 4 * dim (as in ViT). */
  mlpDim?: number;
  classes: number;
  seed?: number;
}

/** The bench-mnist layer pair, by stable weight name. */
export const BENCH_PAIR = { source: "classifier/kernel", target: "fc2/kernel" } as const;

function checkPositiveInt(label: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new Error(`${label} must be a positive integer, got ${JSON.stringify(value)}`);
  }
}

function checkSeed(seed: number | undefined): void {
  if (seed !== undefined && !Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
}

function checkShape(label: string, shape: unknown, rank?: number): void {
  if (!Array.isArray(shape) || shape.length === 0 || (rank !== undefined && shape.length !== rank)) {
    throw new Error(`${label} must be ${rank === undefined ? "a non-empty array" : `an array of ${rank}`} positive integers, got ${JSON.stringify(shape)}`);
  }
  shape.forEach((side, i) => checkPositiveInt(`${label}[${i}]`, side));
}

function kernelInit(seed: number | undefined, address: string): ReturnType<typeof tf.initializers.glorotUniform> {
  return tf.initializers.glorotUniform({ seed: weightSeed(seed, address) });
}

/** A dense layer named `name` with a seeded kernel. */
function dense(name: string, units: number, seed: number | undefined, activation?: "relu" | "gelu"): tf.layers.Layer {
  return plainDense({ name, units, activation, kernelInitializer: kernelInit(seed, `${name}/kernel`) });
}

function apply(layer: tf.layers.Layer, input: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor {
  return layer.apply(input) as tf.SymbolicTensor;
}

/**
 * conv3x3(f1, same) -> ReLU -> maxpool2 -> conv3x3(f2, same) -> ReLU -> maxpool2 -> flatten
 * -> dense(hidden) -> ReLU -> dense(classes), logits.
 */
export function cnn(opts: CnnOptions): tf.LayersModel {
  const { inputShape, classes, seed } = opts;
  const filters = opts.filters ?? [32, 64];
  const hidden = opts.hidden ?? 128;
  checkShape("cnn inputShape", inputShape, 3);
  if (inputShape[0] < 4 || inputShape[1] < 4) throw new Error(`cnn inputShape needs height and width of at least 4 (two 2x2 pools), got ${inputShape}`);
  checkShape("cnn filters", filters, 2);
  checkPositiveInt("cnn hidden", hidden);
  checkPositiveInt("cnn classes", classes);
  checkSeed(seed);
  const conv = (name: string, count: number): tf.layers.Layer =>
    tf.layers.conv2d({ name, filters: count, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: kernelInit(seed, `${name}/kernel`) });
  const input = tf.input({ shape: inputShape, name: "input" });
  let h = apply(conv("conv1", filters[0]), input); // [b, H, W, f1]
  h = apply(tf.layers.maxPooling2d({ name: "pool1", poolSize: 2 }), h); // -> [b, H/2, W/2, f1]
  h = apply(conv("conv2", filters[1]), h); // -> [b, H/2, W/2, f2]
  h = apply(tf.layers.maxPooling2d({ name: "pool2", poolSize: 2 }), h); // -> [b, H/4, W/4, f2]
  h = apply(tf.layers.flatten({ name: "flatten" }), h); // -> [b, H/4 * W/4 * f2]
  h = apply(dense("fc1", hidden, seed, "relu"), h); // -> [b, hidden]
  const logits = apply(dense("classifier", classes, seed), h); // -> [b, classes]
  return tf.model({ name: opts.name ?? "cnn", inputs: input, outputs: logits });
}

/** flatten -> (dense -> ReLU) per hidden width -> dense(classes), logits. */
export function mlp(opts: MlpOptions): tf.LayersModel {
  const { inputShape, hidden, classes, seed } = opts;
  checkShape("mlp inputShape", inputShape);
  checkShape("mlp hidden", hidden);
  checkPositiveInt("mlp classes", classes);
  checkSeed(seed);
  const input = tf.input({ shape: inputShape, name: "input" });
  let h: tf.SymbolicTensor = input;
  if (inputShape.length > 1) h = apply(tf.layers.flatten({ name: "flatten" }), h); // [b, ...shape] -> [b, prod(shape)]
  hidden.forEach((units, i) => {
    h = apply(dense(`fc${i + 1}`, units, seed, "relu"), h); // -> [b, units]
  });
  const logits = apply(dense("classifier", classes, seed), h); // -> [b, classes]
  return tf.model({ name: opts.name ?? "mlp", inputs: input, outputs: logits });
}

/**
 * A small ViT: patch embedding, learned position embedding, `depth` pre-norm blocks
 * (x + attn(LN(x)), then x + mlp(LN(x))), final LayerNorm, mean over tokens, classifier.
 * LayerNorm is the project's (vit-layers.ts, epsilon 1e-6 as in ViT; tfjs's own trains
 * far slower, see there). No dropout.
 */
export function vit(opts: VitOptions): tf.LayersModel {
  const { inputShape, patch, dim, depth, heads, classes, seed } = opts;
  const mlpDim = opts.mlpDim ?? 4 * dim;
  checkShape("vit inputShape", inputShape, 3);
  for (const [label, value] of Object.entries({ patch, dim, depth, heads, mlpDim, classes })) checkPositiveInt(`vit ${label}`, value);
  checkSeed(seed);
  if (inputShape[0] % patch !== 0 || inputShape[1] % patch !== 0) {
    throw new Error(`vit patch ${patch} must divide the image height and width, got inputShape ${JSON.stringify(inputShape)}`);
  }
  if (dim % heads !== 0) throw new Error(`vit dim ${dim} must be divisible by heads ${heads}`);
  const tokens = (inputShape[0] / patch) * (inputShape[1] / patch);
  const norm = (name: string): tf.layers.Layer => new LayerNorm({ name, epsilon: 1e-6 });
  const input = tf.input({ shape: inputShape, name: "input" });
  const patchEmbed = tf.layers.conv2d({
    name: "patch_embed", filters: dim, kernelSize: patch, strides: patch, padding: "valid",
    kernelInitializer: kernelInit(seed, "patch_embed/kernel"),
  });
  let x = apply(patchEmbed, input); // [b, H, W, c] -> [b, H/p, W/p, dim]
  x = apply(tf.layers.reshape({ name: "patch_tokens", targetShape: [tokens, dim] }), x); // -> [b, tokens, dim]
  x = apply(new PositionEmbedding({ name: "pos_embed", seed }), x);
  for (let i = 0; i < depth; i++) {
    const attended = apply(new MultiHeadSelfAttention({ name: `block${i}_attn`, heads, seed }), apply(norm(`block${i}_norm1`), x));
    x = apply(tf.layers.add({ name: `block${i}_res1` }), [x, attended]);
    const widened = apply(dense(`block${i}_mlp1`, mlpDim, seed, "gelu"), apply(norm(`block${i}_norm2`), x)); // [b, t, dim] -> [b, t, mlpDim]
    const narrowed = apply(dense(`block${i}_mlp2`, dim, seed), widened); // -> [b, t, dim]
    x = apply(tf.layers.add({ name: `block${i}_res2` }), [x, narrowed]);
  }
  x = apply(norm("final_norm"), x);
  const pooled = apply(tf.layers.globalAveragePooling1d({ name: "pool" }), x); // [b, tokens, dim] -> [b, dim]
  const logits = apply(dense("classifier", classes, seed), pooled); // -> [b, classes]
  return tf.model({ name: opts.name ?? "vit", inputs: input, outputs: logits });
}

/** bench-mnist's source: the CNN on [28, 28, 1] with 10 classes (filters [32, 64], hidden 128). */
export function benchSource(seed?: number): tf.LayersModel {
  return cnn({ name: "bench_source", inputShape: [28, 28, 1], classes: 10, seed });
}

/** bench-mnist's target: the MLP 784 -> 256 -> ReLU -> 128 -> ReLU -> 10, taking [28, 28, 1] images. */
export function benchTarget(seed?: number): tf.LayersModel {
  return mlp({ name: "bench_target", inputShape: [28, 28, 1], hidden: [256, 128], classes: 10, seed });
}

const MODEL_FILE = "model.json";
const WEIGHTS_FILE = "weights.bin";

function writeAtomic(file: string, data: string | Uint8Array): void {
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, data);
  fs.renameSync(temp, file);
}

/** Saves topology and weights to `dir` (created if needed) as model.json + weights.bin. */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
      writeAtomic(path.join(dir, WEIGHTS_FILE), weights);
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: [`./${WEIGHTS_FILE}`], weights: artifacts.weightSpecs ?? [] }],
      };
      writeAtomic(path.join(dir, MODEL_FILE), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

/** Loads a model written by saveModel (or by tfjs-node's `file://` handler) from `dir`. */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const modelFile = path.join(dir, MODEL_FILE);
  if (!fs.existsSync(modelFile)) throw new Error(`no ${MODEL_FILE} in ${dir}; save a model there with saveModel first`);
  const modelJson = JSON.parse(fs.readFileSync(modelFile, "utf8")) as tf.io.ModelJSON;
  const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
    const specs = manifest.flatMap((group) => group.weights);
    const buffers = manifest.flatMap((group) =>
      group.paths.map((p) => {
        const bytes = fs.readFileSync(path.join(dir, p));
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      }),
    );
    return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
  });
  return tf.loadLayersModel({ load: async () => artifacts });
}
