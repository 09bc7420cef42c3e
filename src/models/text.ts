/**
 * Text models for the cross-task experiments (issue 5), in the model zoo's style
 * (src/models/zoo.ts): tfjs-layers models with stable, human-chosen layer names (a weight's
 * address is `<layer>/<weight>`, never prefixed with the model name), logits out, every kernel
 * seeded by `weightSeed(seed, address)` (Glorot uniform; embeddings uniform ±0.05, Keras's
 * default; biases 0; LayerNorm gamma 1, beta 0). Every model takes token ids [batch, maxLen]
 * (int32, 0 = padding, 1 = unknown; src/data/text.ts) and masks the padding itself with the
 * layers of ./text-layers, so padding never changes an output at a real token.
 *
 * Layer and weight names of each model: docs/METHOD.md §1. Attention projections are
 * separate Dense layers, so every projection kernel is addressable by the parameter views;
 * LayerNorm and the position embedding are vit-layers.ts's. No dropout.
 *
 * The tagger's loss and metric (`maskedTokenCrossEntropy`, `maskedTokenAccuracy`,
 * `tokenAccuracyEvaluator`) take labels [batch, maxLen] with a NEGATIVE label (TAG_PADDING
 * = -1 in src/data/brown.ts) at padded positions; those positions are excluded from the sum
 * and from the count, so logits there change neither the loss, its gradient, nor the accuracy.
 * They average over the real tokens of the whole batch (a long sentence weighs more than a
 * short one, as in the usual token-level accuracy).
 */
import { tf } from "../backend/index";
import { dense as plainDense } from "./dense";
import { declareLabels, EVAL_PREDICT_BATCH } from "../core/losses";
import { MaskedAttention, MaskedMaxPool, MaskedMeanPool, MaskPadding } from "./text-layers";
import { LayerNorm, PositionEmbedding, weightSeed } from "./vit-layers";

export type TextFamily = "bow" | "cnn" | "transformer";
export const TEXT_FAMILIES: readonly TextFamily[] = ["bow", "cnn", "transformer"];
export type TaggerEncoder = "cnn" | "transformer";

interface TextInputOptions {
  /** Model name; default the family's name. */
  name?: string;
  /** Vocabulary size (ids 0..vocab-1). */
  vocab: number;
  /** Tokens per example. */
  maxLen: number;
  /** Embedding width; default 64. */
  dim?: number;
  seed?: number;
}

export interface BagOfEmbeddingsOptions extends TextInputOptions {
  /** Width of fc1; default 64. */
  hidden?: number;
  classes: number;
}

export interface TextCnnOptions extends TextInputOptions {
  /** Filters of conv1; default 64. */
  filters?: number;
  /** Window of conv1 in tokens; default 3. */
  kernelSize?: number;
  classes: number;
}

export interface TransformerOptions extends TextInputOptions {
  /** Attention heads; dim must be divisible by it; default 4. */
  heads?: number;
  /** Hidden width of each block's MLP; default 2 * dim. */
  mlpDim?: number;
  /** Number of encoder blocks; default 1. */
  depth?: number;
}

export interface TextTransformerOptions extends TransformerOptions {
  classes: number;
}

export interface TaggerOptions extends TransformerOptions {
  /** Number of tags. */
  tags: number;
  /** "cnn" (default): two convolutions; "transformer": encoder blocks. */
  encoder?: TaggerEncoder;
  /** cnn encoder: filters of conv1 and conv2; default 128. */
  filters?: number;
  /** cnn encoder: window of each convolution; default 3 (two give a 5-token view). */
  kernelSize?: number;
}

function checkPositiveInt(label: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new Error(`${label} must be a positive integer, got ${JSON.stringify(value)}`);
  }
}

function checkCommon(family: string, o: TextInputOptions, dim: number, extra: Record<string, unknown>): void {
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new Error(`${family} seed must be an integer, got ${o.seed}`);
  for (const [label, value] of Object.entries({ vocab: o.vocab, maxLen: o.maxLen, dim, ...extra })) checkPositiveInt(`${family} ${label}`, value);
  if (o.vocab < 2) throw new Error(`${family} vocab must be at least 2 (padding and unknown), got ${o.vocab}`);
}

function kernelInit(seed: number | undefined, address: string): ReturnType<typeof tf.initializers.glorotUniform> {
  return tf.initializers.glorotUniform({ seed: weightSeed(seed, address) });
}

function dense(name: string, units: number, seed: number | undefined, activation?: "relu" | "gelu"): tf.layers.Layer {
  return plainDense({ name, units, activation, kernelInitializer: kernelInit(seed, `${name}/kernel`) });
}

function conv1d(name: string, filters: number, kernelSize: number, seed: number | undefined): tf.layers.Layer {
  return tf.layers.conv1d({ name, filters, kernelSize, padding: "same", activation: "relu", kernelInitializer: kernelInit(seed, `${name}/kernel`) });
}

function apply(layer: tf.layers.Layer, input: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor {
  return layer.apply(input) as tf.SymbolicTensor;
}

/** The ids input and its embedding: [b, maxLen] int32 -> [b, maxLen, dim]. */
function embedded(o: TextInputOptions, dim: number): { ids: tf.SymbolicTensor; x: tf.SymbolicTensor } {
  const ids = tf.input({ shape: [o.maxLen], dtype: "int32", name: "ids" });
  const embed = tf.layers.embedding({
    name: "embed", inputDim: o.vocab, outputDim: dim,
    embeddingsInitializer: tf.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed: weightSeed(o.seed, "embed/embeddings") }),
  });
  return { ids, x: apply(embed, ids) }; // [b, l] -> [b, l, dim]
}

/** pos_embed, `depth` pre-norm blocks with masked attention, final_norm: [b, l, dim] -> [b, l, dim]. */
function encoderBlocks(x: tf.SymbolicTensor, ids: tf.SymbolicTensor, dim: number, o: TransformerOptions): tf.SymbolicTensor {
  const heads = o.heads ?? 4;
  const mlpDim = o.mlpDim ?? 2 * dim;
  const depth = o.depth ?? 1;
  const norm = (name: string): tf.layers.Layer => new LayerNorm({ name, epsilon: 1e-6 });
  let h = apply(new PositionEmbedding({ name: "pos_embed", seed: o.seed }), x); // [b, l, dim]
  for (let i = 0; i < depth; i++) {
    const normed = apply(norm(`block${i}_norm1`), h);
    const [q, k, v] = ["q", "k", "v"].map((p) => apply(dense(`block${i}_${p}`, dim, o.seed), normed)); // [b, l, dim] each
    const attended = apply(new MaskedAttention({ name: `block${i}_attn`, heads }), [q, k, v, ids]); // [b, l, dim]
    h = apply(tf.layers.add({ name: `block${i}_res1` }), [h, apply(dense(`block${i}_out`, dim, o.seed), attended)]);
    const widened = apply(dense(`block${i}_mlp1`, mlpDim, o.seed, "gelu"), apply(norm(`block${i}_norm2`), h)); // -> [b, l, mlpDim]
    h = apply(tf.layers.add({ name: `block${i}_res2` }), [h, apply(dense(`block${i}_mlp2`, dim, o.seed), widened)]); // -> [b, l, dim]
  }
  return apply(norm("final_norm"), h);
}

function checkTransformer(family: string, o: TransformerOptions, dim: number): void {
  const heads = o.heads ?? 4;
  for (const [label, value] of Object.entries({ heads, mlpDim: o.mlpDim ?? 2 * dim, depth: o.depth ?? 1 })) checkPositiveInt(`${family} ${label}`, value);
  if (dim % heads !== 0) throw new Error(`${family} dim ${dim} must be divisible by heads ${heads}`);
}

/** embed -> mean over real tokens -> fc1 (ReLU) -> classifier: logits [b, classes]. */
export function bagOfEmbeddings(o: BagOfEmbeddingsOptions): tf.LayersModel {
  const dim = o.dim ?? 64;
  const hidden = o.hidden ?? 64;
  checkCommon("bagOfEmbeddings", o, dim, { hidden, classes: o.classes });
  const { ids, x } = embedded(o, dim);
  const pooled = apply(new MaskedMeanPool({ name: "pool" }), [x, ids]); // [b, l, dim] -> [b, dim]
  const h = apply(dense("fc1", hidden, o.seed, "relu"), pooled); // -> [b, hidden]
  const logits = apply(dense("classifier", o.classes, o.seed), h); // -> [b, classes]
  return tf.model({ name: o.name ?? "bow", inputs: ids, outputs: logits });
}

/** embed -> conv1 ("same", ReLU) -> max over real tokens -> classifier: logits [b, classes]. */
export function textCnn(o: TextCnnOptions): tf.LayersModel {
  const dim = o.dim ?? 64;
  const filters = o.filters ?? 64;
  const kernelSize = o.kernelSize ?? 3;
  checkCommon("textCnn", o, dim, { filters, kernelSize, classes: o.classes });
  const { ids, x } = embedded(o, dim);
  const masked = apply(new MaskPadding({ name: "mask" }), [x, ids]); // padding rows -> 0, so windows at the edge see zeros only
  const features = apply(conv1d("conv1", filters, kernelSize, o.seed), masked); // [b, l, dim] -> [b, l, filters]
  const pooled = apply(new MaskedMaxPool({ name: "pool" }), [features, ids]); // -> [b, filters]
  const logits = apply(dense("classifier", o.classes, o.seed), pooled); // -> [b, classes]
  return tf.model({ name: o.name ?? "text_cnn", inputs: ids, outputs: logits });
}

/** embed + positions -> encoder blocks -> mean over real tokens -> classifier: logits [b, classes]. */
export function textTransformer(o: TextTransformerOptions): tf.LayersModel {
  const dim = o.dim ?? 64;
  checkCommon("textTransformer", o, dim, { classes: o.classes });
  checkTransformer("textTransformer", o, dim);
  const { ids, x } = embedded(o, dim);
  const encoded = encoderBlocks(x, ids, dim, o); // [b, l, dim]
  const pooled = apply(new MaskedMeanPool({ name: "pool" }), [encoded, ids]); // -> [b, dim]
  const logits = apply(dense("classifier", o.classes, o.seed), pooled); // -> [b, classes]
  return tf.model({ name: o.name ?? "text_transformer", inputs: ids, outputs: logits });
}

/** A per-token tagger: logits [b, maxLen, tags] (see the module comment for the layers). */
export function tagger(o: TaggerOptions): tf.LayersModel {
  const dim = o.dim ?? 64;
  const encoder = o.encoder ?? "cnn";
  const filters = o.filters ?? 128;
  const kernelSize = o.kernelSize ?? 3;
  checkCommon("tagger", o, dim, { tags: o.tags, filters, kernelSize });
  if (encoder !== "cnn" && encoder !== "transformer") throw new Error(`tagger encoder must be 'cnn' or 'transformer', got '${encoder}'`);
  const { ids, x } = embedded(o, dim);
  let h: tf.SymbolicTensor;
  if (encoder === "cnn") {
    h = apply(new MaskPadding({ name: "mask" }), [x, ids]);
    h = apply(conv1d("conv1", filters, kernelSize, o.seed), h); // [b, l, dim] -> [b, l, filters]
    h = apply(new MaskPadding({ name: "mask2" }), [h, ids]); // conv2's windows must not read conv1's output at padding
    h = apply(conv1d("conv2", filters, kernelSize, o.seed), h); // -> [b, l, filters]
  } else {
    checkTransformer("tagger", o, dim);
    h = encoderBlocks(x, ids, dim, o); // [b, l, dim]
  }
  const logits = apply(dense("tag_head", o.tags, o.seed), h); // [b, l, width] -> [b, l, tags]
  return tf.model({ name: o.name ?? "tagger", inputs: ids, outputs: logits });
}

/** A classifier of the given family with its default sizes (dim 64). */
export function textClassifier(family: TextFamily, o: { name?: string; vocab: number; maxLen: number; classes: number; seed?: number }): tf.LayersModel {
  switch (family) {
    case "bow":
      return bagOfEmbeddings(o);
    case "cnn":
      return textCnn(o);
    case "transformer":
      return textTransformer(o);
    default:
      throw new Error(`unknown text model family '${family as string}'; use one of ${TEXT_FAMILIES.join(", ")}`);
  }
}

/** 1 where the label is a real token's (>= 0), 0 at padding: [b, l] -> [b, l] float32. */
function labelMask(labels: tf.Tensor): tf.Tensor {
  return tf.cast(tf.greaterEqual(labels, 0), "float32");
}

function checkTokenShapes(logits: tf.Tensor, labels: tf.Tensor, what: string): void {
  if (logits.rank !== 3 || labels.rank !== 2 || logits.shape[0] !== labels.shape[0] || logits.shape[1] !== labels.shape[1]) {
    throw new Error(`${what} expects logits [batch, len, tags] and labels [batch, len]; got [${logits.shape}] and [${labels.shape}]`);
  }
}

/**
 * Mean softmax cross-entropy over the real tokens of a batch: logits [b, l, t], integer
 * labels [b, l] with a negative label at padding (excluded). 0 when no token is real.
 */
export function maskedTokenCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  checkTokenShapes(logits, labels, "maskedTokenCrossEntropy");
  return tf.tidy(() => {
    const tags = logits.shape[2] as number;
    const mask = labelMask(labels); // [b, l]
    const asInt = tf.cast(labels, "int32");
    const safe = tf.maximum(asInt, tf.zerosLike(asInt)); // padding -> tag 0 (int32 kept), then masked out
    const logProbs = tf.logSoftmax(logits, -1); // [b, l, t]
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(safe as tf.Tensor2D, tags)), -1); // [b, l]
    return tf.div(tf.neg(tf.sum(tf.mul(picked, mask))), tf.maximum(tf.sum(mask), 1)) as tf.Scalar;
  });
}
declareLabels(maskedTokenCrossEntropy, { per: "token" });

/** Fraction of real tokens (label >= 0) whose arg-max equals the label: a scalar tensor. */
export function maskedTokenAccuracy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  checkTokenShapes(logits, labels, "maskedTokenAccuracy");
  return tf.tidy(() => {
    const [correct, count] = tokenCounts(logits, labels);
    return tf.div(correct, tf.maximum(count, 1)) as tf.Scalar;
  });
}

/** [correct real tokens, real tokens] as two scalars. */
function tokenCounts(logits: tf.Tensor, labels: tf.Tensor): [tf.Scalar, tf.Scalar] {
  const mask = labelMask(labels);
  const hits = tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(labels, "int32")), "float32"); // [b, l]
  return [tf.sum(tf.mul(hits, mask)), tf.sum(mask)];
}

/**
 * Per-token accuracy of a tagger on a held-out set (x [n, l] ids, y [n, l] labels with
 * negative labels at padding), over real tokens only, batched to bound memory.
 */
export function tokenAccuracyEvaluator(
  x: tf.Tensor,
  y: tf.Tensor,
  batchSize = 500,
  key = "accuracy",
): (model: tf.LayersModel) => Promise<Record<string, number>> {
  return async (model) => {
    const n = x.shape[0];
    let correct = 0;
    let count = 0;
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const counts = tf.tidy(() => tf.stack(tokenCounts(model.predict(x.slice(start, size), { batchSize: EVAL_PREDICT_BATCH }) as tf.Tensor, y.slice(start, size))));
      const [c, total] = await counts.data();
      counts.dispose();
      correct += c;
      count += total;
    }
    return { [key]: count === 0 ? 0 : correct / count };
  };
}
