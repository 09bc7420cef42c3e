/**
 * Custom tfjs layers for the text models (src/models/text.ts): everything that must know
 * where the padding is. Each takes the token ids [batch, len] (int32, 0 = padding, see
 * src/data/text.ts) as its LAST input and derives the mask `ids != 0` from them, so a model
 * has one input and no mask plumbing through tfjs-layers' own (partial) mask support.
 * None holds a weight. Registered with tf.serialization, so models holding them save and
 * load like any other once this module is imported.
 *
 *   MaskPadding        [x [b, l, d], ids] -> x with padded positions set to 0
 *   MaskedMeanPool     [x [b, l, d], ids] -> [b, d], the mean over real tokens only
 *   MaskedMaxPool      [x [b, l, d], ids] -> [b, d], the max over real tokens only
 *   MaskedAttention    [q, k, v [b, l, d], ids] -> [b, l, d], multi-head scaled dot-product
 *                      attention in which no query attends to a padded key
 *
 * A sequence with no real token (all padding) pools to zeros (never NaN or -inf).
 *
 * MaskedAttention has no projections of its own: the text transformer builds q, k, v and
 * the output projection as ordinary Dense layers around it, so every projection kernel is a
 * Dense weight that the parameter views (src/core/params.ts) can address. The vision
 * transformer's MultiHeadSelfAttention (vit-layers.ts) has no mask input, hence this layer;
 * heads are contiguous slices of width d/heads, as there.
 */
import { tf } from "../backend/index";

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/** A large negative score: exp(score - max) underflows to exactly 0 in float32. */
const MASKED_SCORE = -1e9;

function inputsOf(inputs: tf.Tensor | tf.Tensor[], count: number, layer: string): tf.Tensor[] {
  if (!Array.isArray(inputs) || inputs.length !== count) {
    throw new Error(`${layer} expects ${count} inputs (${count === 2 ? "[x, ids]" : "[q, k, v, ids]"}), got ${Array.isArray(inputs) ? inputs.length : 1}`);
  }
  return inputs;
}

function shapesOf(inputShape: tf.Shape | tf.Shape[], count: number, layer: string): tf.Shape[] {
  if (!Array.isArray(inputShape[0]) || inputShape.length !== count) {
    throw new Error(`${layer} expects ${count} inputs, the last being the token ids [batch, len]`);
  }
  return inputShape as tf.Shape[];
}

/** 1 at real tokens, 0 at padding: [b, l] int ids -> [b, l] float32. */
export function tokenMask(ids: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.cast(tf.notEqual(ids, 0), "float32"));
}

/** Sets the vectors at padded positions to zero: [[b, l, d], [b, l]] -> [b, l, d]. */
export class MaskPadding extends tf.layers.Layer {
  static className = "MergeNetMaskPadding";

  constructor(args: LayerArgs = {}) {
    super(args);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return shapesOf(inputShape, 2, this.name)[0];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [x, ids] = inputsOf(inputs, 2, this.name);
      return tf.mul(x, tokenMask(ids).expandDims(-1)); // [b, l, d] * [b, l, 1]
    });
  }
}

/** A pooling over real tokens: [[b, l, d], [b, l]] -> [b, d]; subclasses say how to pool. */
abstract class MaskedPool extends tf.layers.Layer {
  constructor(args: LayerArgs = {}) {
    super(args);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [x] = shapesOf(inputShape, 2, this.name);
    return [x[0], x[2]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [x, ids] = inputsOf(inputs, 2, this.name);
      return this.pool(x, tokenMask(ids).expandDims(-1)); // mask [b, l, 1]
    });
  }

  /** x [b, l, d], mask [b, l, 1] (1 = real token) -> [b, d]. */
  protected abstract pool(x: tf.Tensor, mask: tf.Tensor): tf.Tensor;
}

/** Mean over real tokens: [[b, l, d], [b, l]] -> [b, d]; zeros for an all-padding row. */
export class MaskedMeanPool extends MaskedPool {
  static className = "MergeNetMaskedMeanPool";

  protected pool(x: tf.Tensor, mask: tf.Tensor): tf.Tensor {
    const total = tf.sum(tf.mul(x, mask), 1); // [b, l, d] -> [b, d]
    const count = tf.maximum(tf.sum(mask, 1), 1); // [b, 1]
    return tf.div(total, count);
  }
}

/** Max over real tokens: [[b, l, d], [b, l]] -> [b, d]; zeros for an all-padding row. */
export class MaskedMaxPool extends MaskedPool {
  static className = "MergeNetMaskedMaxPool";

  protected pool(x: tf.Tensor, mask: tf.Tensor): tf.Tensor {
    // Padded positions get MASKED_SCORE, so they never win the max while a real token exists.
    const filled = tf.add(tf.mul(x, mask), tf.mul(tf.sub(1, mask), MASKED_SCORE)); // [b, l, d]
    const best = tf.max(filled, 1); // [b, l, d] -> [b, d]
    const any = tf.cast(tf.greater(tf.sum(mask, 1), 0), "float32"); // [b, 1]
    return tf.mul(best, any);
  }
}

export interface MaskedAttentionArgs extends LayerArgs {
  heads: number;
}

/**
 * Multi-head scaled dot-product attention over already projected q, k, v:
 * softmax(q kᵀ / √(d/heads) + mask) v per head, heads merged back to d. Padded keys get a
 * score of -1e9, so their attention weight is exactly 0; padded queries still produce an
 * output (over the real keys), which the pooling or the token loss downstream ignores.
 */
export class MaskedAttention extends tf.layers.Layer {
  static className = "MergeNetMaskedAttention";
  private readonly heads: number;

  constructor(args: MaskedAttentionArgs) {
    super(args);
    if (!Number.isInteger(args.heads) || args.heads < 1) throw new Error(`heads must be a positive integer, got ${args.heads}`);
    this.heads = args.heads;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const [q] = shapesOf(inputShape, 4, this.name);
    const dim = q[q.length - 1];
    if (q.length !== 3 || dim === null) throw new Error(`${this.name} expects q, k, v of shape [batch, len, dim] with a known dim, got [${q.join(", ")}]`);
    if (dim % this.heads !== 0) throw new Error(`${this.name}: dim ${dim} is not divisible by heads ${this.heads}; choose dim = heads * head width`);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return shapesOf(inputShape, 4, this.name)[0];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [q, k, v, ids] = inputsOf(inputs, 4, this.name);
      const [batch, len, dim] = q.shape;
      const width = dim / this.heads;
      const split = (m: tf.Tensor): tf.Tensor4D =>
        m.reshape([batch, len, this.heads, width]).transpose([0, 2, 1, 3]); // [b, l, d] -> [b, h, l, dh]
      const scores = tf.matMul(split(q), split(k), false, true).div(Math.sqrt(width)); // [b, h, l, l]
      const keyBias = tf.mul(tf.sub(1, tokenMask(ids)), MASKED_SCORE).reshape([batch, 1, 1, len]); // [b, l] -> [b, 1, 1, l]
      const weights = tf.softmax(tf.add(scores, keyBias), -1); // [b, h, l, l]
      const attended = tf.matMul(weights, split(v)); // [b, h, l, dh]
      return attended.transpose([0, 2, 1, 3]).reshape([batch, len, dim]); // -> [b, l, d]
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads };
  }
}

tf.serialization.registerClass(MaskPadding);
tf.serialization.registerClass(MaskedMeanPool);
tf.serialization.registerClass(MaskedMaxPool);
tf.serialization.registerClass(MaskedAttention);
