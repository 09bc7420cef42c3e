/**
 * The custom tfjs layers the small vision transformer needs, registered with
 * tf.serialization so a model holding them saves and loads like any other:
 *
 *   LayerNorm               normalises over the last axis, then scales and shifts; weights
 *                           `<layer>/gamma`, `<layer>/beta` ([dim]), as tfjs's own layer
 *   PositionEmbedding       adds a learned [tokens, dim] matrix to its [batch, tokens, dim]
 *                           input; weight `<layer>/embeddings`
 *   MultiHeadSelfAttention  softmax(q kᵀ / √(dim/heads)) v over `heads` heads, then an output
 *                           projection; weights `<layer>/{q,k,v,out}_kernel` ([dim, dim],
 *                           [in, out] like a Dense kernel) and `<layer>/{q,k,v,out}_bias` ([dim])
 *
 * Every matrix is a separate rank-2 weight, so the project's parameter views can address
 * q, k, v and the output projection one by one. Heads are contiguous slices of width
 * dim/heads of the projected features (head h = columns h*dh .. (h+1)*dh - 1), the usual
 * (PyTorch and Keras) layout. No dropout: the models here are small and train briefly.
 */
import { tf } from "../backend/index";
import { fnv1a } from "../util/random";

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/**
 * The seed for one weight's initialiser, derived from the model seed and the weight's
 * stable name (FNV-1a over `${seed}:${name}`), so each weight has its own stream and adding
 * a layer does not change the others. Undefined seed: undefined (tfjs's unseeded random).
 */
export function weightSeed(seed: number | undefined, weightName: string): number | undefined {
  if (seed === undefined) return undefined;
  return fnv1a(`${seed}:${weightName}`) & 0x7fffffff;
}

function lastDim(inputShape: tf.Shape | tf.Shape[], layer: string): number {
  const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  const dim = shape[shape.length - 1];
  if (shape.length !== 3 || dim === null) {
    throw new Error(`${layer} expects [batch, tokens, dim] input with a known dim, got [${shape.join(", ")}]`);
  }
  return dim;
}

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor3D {
  return (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D;
}

export interface LayerNormArgs extends LayerArgs {
  /** Added to the variance; default 1e-6 (ViT's). */
  epsilon?: number;
}

/**
 * LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta, same shape out.
 * Used instead of tf.layers.layerNormalization (a measured choice): that layer tiles mean,
 * variance, gamma and beta to the full input shape, and tfjs's Tile gradient is a loop of one
 * slice per repetition, so one training step of a 2-block ViT on a batch of 64 ran 10,560
 * Slice kernels. Broadcasting here lets the gradients reduce with one sum each.
 */
export class LayerNorm extends tf.layers.Layer {
  static className = "MergeNetLayerNorm";
  private readonly epsilon: number;
  private gamma?: tf.LayerVariable;
  private beta?: tf.LayerVariable;

  constructor(args: LayerNormArgs) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-6;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const dim = shape[shape.length - 1];
    if (dim === null) throw new Error(`${this.name} needs a known last dimension, got [${shape.join(", ")}]`);
    this.gamma = this.addWeight("gamma", [dim], "float32", tf.initializers.ones());
    this.beta = this.addWeight("beta", [dim], "float32", tf.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const { mean, variance } = tf.moments(x, -1, true); // [..., d] -> [..., 1]
      const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.epsilon))); // [..., d]
      return tf.add(tf.mul(normed, this.gamma!.read()), this.beta!.read());
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}

export interface PositionEmbeddingArgs extends LayerArgs {
  /** Seed for the embedding's initialiser (truncated normal, std 0.02, as in ViT). */
  seed?: number;
}

/** Adds a learned position embedding: [batch, tokens, dim] -> [batch, tokens, dim]. */
export class PositionEmbedding extends tf.layers.Layer {
  static className = "MergeNetPositionEmbedding";
  private readonly seed?: number;
  private embeddings?: tf.LayerVariable;

  constructor(args: PositionEmbeddingArgs) {
    super(args);
    this.seed = args.seed ?? undefined;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const tokens = shape[1];
    const dim = lastDim(inputShape, this.name);
    if (tokens === null) throw new Error(`${this.name} needs a fixed number of tokens, got [${shape.join(", ")}]`);
    const init = tf.initializers.truncatedNormal({ stddev: 0.02, seed: weightSeed(this.seed, `${this.name}/embeddings`) });
    this.embeddings = this.addWeight("embeddings", [tokens, dim], "float32", init);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.add(single(inputs), this.embeddings!.read())); // [b, t, d] + [t, d] -> [b, t, d]
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), seed: this.seed ?? null };
  }
}

export interface MultiHeadSelfAttentionArgs extends LayerArgs {
  heads: number;
  /** Seed for the kernels' initialisers (Glorot uniform, one derived seed per kernel). */
  seed?: number;
}

const PROJECTIONS = ["q", "k", "v", "out"] as const;
type Projection = (typeof PROJECTIONS)[number];

/** Multi-head self-attention: [batch, tokens, dim] -> [batch, tokens, dim]. */
export class MultiHeadSelfAttention extends tf.layers.Layer {
  static className = "MergeNetMultiHeadSelfAttention";
  private readonly heads: number;
  private readonly seed?: number;
  private kernels = {} as Record<Projection, tf.LayerVariable>;
  private biases = {} as Record<Projection, tf.LayerVariable>;

  constructor(args: MultiHeadSelfAttentionArgs) {
    super(args);
    if (!Number.isInteger(args.heads) || args.heads < 1) throw new Error(`heads must be a positive integer, got ${args.heads}`);
    this.heads = args.heads;
    this.seed = args.seed ?? undefined;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const dim = lastDim(inputShape, this.name);
    if (dim % this.heads !== 0) throw new Error(`${this.name}: dim ${dim} is not divisible by heads ${this.heads}; choose dim = heads * head width`);
    for (const p of PROJECTIONS) {
      const init = tf.initializers.glorotUniform({ seed: weightSeed(this.seed, `${this.name}/${p}_kernel`) });
      this.kernels[p] = this.addWeight(`${p}_kernel`, [dim, dim], "float32", init);
      this.biases[p] = this.addWeight(`${p}_bias`, [dim], "float32", tf.initializers.zeros());
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      const [batch, tokens, dim] = x.shape;
      const headWidth = dim / this.heads;
      const rows = x.reshape([batch * tokens, dim]); // [b, t, d] -> [b*t, d]
      const project = (p: Projection): tf.Tensor2D =>
        tf.add(tf.matMul(rows, this.kernels[p].read() as tf.Tensor2D), this.biases[p].read()) as tf.Tensor2D; // [b*t, d]
      const split = (m: tf.Tensor2D): tf.Tensor4D =>
        m.reshape([batch, tokens, this.heads, headWidth]).transpose([0, 2, 1, 3]); // [b*t, d] -> [b, h, t, dh]
      const q = split(project("q"));
      const k = split(project("k"));
      const v = split(project("v"));
      const scores = tf.matMul(q, k, false, true).div(Math.sqrt(headWidth)); // [b, h, t, t]
      const attended = tf.matMul(tf.softmax(scores, -1), v); // [b, h, t, dh]
      const merged = attended.transpose([0, 2, 1, 3]).reshape([batch * tokens, dim]); // [b, h, t, dh] -> [b*t, d]
      const out = tf.add(tf.matMul(merged, this.kernels.out.read() as tf.Tensor2D), this.biases.out.read());
      return out.reshape([batch, tokens, dim]); // [b*t, d] -> [b, t, d]
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads, seed: this.seed ?? null };
  }
}

tf.serialization.registerClass(LayerNorm);
tf.serialization.registerClass(PositionEmbedding);
tf.serialization.registerClass(MultiHeadSelfAttention);
