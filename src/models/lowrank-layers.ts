/**
 * The `factorized` low-rank form (docs/METHOD.md §2): dense and 2-D convolution layers whose weight is a
 * product of two trained factors, W = scale · B·A, drop-in replacements for tf.layers.dense /
 * tf.layers.conv2d in Sequential or functional models.
 *
 * scale = alpha / rank when `alpha` is given (LoRA's convention, so changing the rank does not
 * change the output's scale), 1 otherwise. There is no frozen base weight: the product is the
 * whole weight.
 *
 * Storage (weight names `lora_a`, `lora_b`, `bias`), in the tfjs kernel orientation so that each
 * factor is itself a kernel:
 *   LowRankDense   lora_a [in, r]            lora_b [r, units]    y = x·A·B·scale + bias
 *   LowRankConv2D  lora_a [kh, kw, cin, r]   lora_b [r, filters]  y = conv(x, A)·B·scale + bias
 * The conv form is an r-filter convolution followed by a 1x1 mixing to `filters` channels, which
 * equals one convolution with the kernel reshape(A, [kh*kw*cin, r])·B. In the project's `[out, in]`
 * view (src/core/params.ts) B is viewed [out, r] and A [r, in] (in = kh*kw*cin for conv): both
 * factors transposed, exactly like a Dense kernel, and the layer's viewed weight is scale·B·A.
 *
 * Initialisation: both factors i.i.d. normal with the same standard deviation σ chosen so that
 * each entry of scale·B·A has the variance of a Glorot init of the full matrix,
 * Var = 2 / (fan_in + fan_out), i.e. scale²·r·σ⁴ = 2 / (fan_in + fan_out) (fans as Keras counts
 * them: conv fan_in = kh·kw·cin, fan_out = kh·kw·filters). Neither factor starts at zero (unlike
 * LoRA's B = 0) because there is no frozen base to fall back on: a zero product would be a dead
 * layer whose factors get no gradient. Biases start at zero. `seed` (integer >= 0) makes the
 * init reproducible; A uses 2·seed + 1 and B 2·seed + 2 (tfjs treats a seed of 0 as "no seed").
 *
 * Only channels-last convolution without dilation is supported.
 */
import { tf } from "../backend/index";

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
/** tfjs-layers' activation names ('relu', 'softmax', 'linear', ...). */
export type ActivationName = NonNullable<NonNullable<Parameters<typeof tf.layers.activation>[0]>["activation"]>;
type Shape = (number | null)[];
type Padding = "valid" | "same";

interface LowRankCommonArgs extends LayerArgs {
  /** Rank r of the factorisation, 1 <= r <= min(fan_in, out). */
  rank: number;
  /** LoRA-style scale alpha / rank; omitted means scale 1. */
  alpha?: number;
  /** Default 'linear'. */
  activation?: ActivationName;
  /** Default true. */
  useBias?: boolean;
  /** Integer >= 0 for a reproducible init; omitted means a random init. */
  seed?: number;
}

export interface LowRankDenseArgs extends LowRankCommonArgs {
  units: number;
}

export interface LowRankConv2DArgs extends LowRankCommonArgs {
  filters: number;
  kernelSize: number | [number, number];
  /** Default 1. */
  strides?: number | [number, number];
  /** Default 'valid' (as tf.layers.conv2d). */
  padding?: Padding;
}

function checkPositiveInt(layer: string, what: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${layer}: ${what} must be a positive integer, got ${value}`);
}

function pair(value: number | [number, number]): [number, number] {
  return typeof value === "number" ? [value, value] : [value[0], value[1]];
}

/** Shared state and behaviour of both layers: arguments, scale, factor init, bias, activation. */
abstract class LowRankBase extends tf.layers.Layer {
  readonly rank: number;
  readonly alpha?: number;
  readonly activationName: ActivationName;
  readonly useBias: boolean;
  readonly seed?: number;
  private readonly activationLayer: tf.layers.Layer;
  protected loraA?: tf.LayerVariable;
  protected loraB?: tf.LayerVariable;
  protected bias?: tf.LayerVariable;

  constructor(args: LowRankCommonArgs) {
    super(args);
    const layer = (this.constructor as unknown as { className: string }).className;
    checkPositiveInt(layer, "rank", args.rank);
    if (args.alpha !== undefined && args.alpha !== null && !(Number.isFinite(args.alpha) && args.alpha > 0)) {
      throw new Error(`${layer}: alpha must be a positive number (scale = alpha / rank), got ${args.alpha}`);
    }
    if (args.seed !== undefined && args.seed !== null && !(Number.isInteger(args.seed) && args.seed >= 0)) {
      throw new Error(`${layer}: seed must be an integer >= 0, got ${args.seed}`);
    }
    this.rank = args.rank;
    this.alpha = args.alpha ?? undefined;
    this.activationName = args.activation ?? "linear";
    this.useBias = args.useBias ?? true;
    this.seed = args.seed ?? undefined;
    this.activationLayer = tf.layers.activation({ activation: this.activationName });
  }

  /** The factor product's multiplier: alpha / rank, or 1 without alpha. */
  get scale(): number {
    return this.alpha === undefined ? 1 : this.alpha / this.rank;
  }

  /** Adds lora_a, lora_b and bias with the init described in the module comment. */
  protected addFactors(aShape: number[], bShape: number[], fanIn: number, fanOut: number, out: number): void {
    const layer = this.getClassName();
    if (this.rank > Math.min(fanIn, out)) {
      throw new Error(
        `${layer} '${this.name}': rank ${this.rank} exceeds min(fan_in, out) = min(${fanIn}, ${out}); ` +
          `a factorisation cannot have more rank than the matrix, use rank <= ${Math.min(fanIn, out)}`,
      );
    }
    const std = Math.pow(2 / (fanIn + fanOut) / (this.scale * this.scale * this.rank), 0.25);
    const init = (offset: number) =>
      tf.initializers.randomNormal(this.seed === undefined ? { mean: 0, stddev: std } : { mean: 0, stddev: std, seed: 2 * this.seed + offset });
    this.loraA = this.addWeight("lora_a", aShape, "float32", init(1));
    this.loraB = this.addWeight("lora_b", bShape, "float32", init(2));
    if (this.useBias) this.bias = this.addWeight("bias", [out], "float32", tf.initializers.zeros());
    this.built = true;
  }

  /** [..., r] -> [..., out]: times B, times scale, plus bias, then the activation. */
  protected finish(projected: tf.Tensor): tf.Tensor {
    const shape = projected.shape;
    const r = shape[shape.length - 1];
    const mixed = tf.matMul(tf.reshape(projected, [-1, r]), this.loraB!.read() as tf.Tensor2D) as tf.Tensor2D; // [N, r]·[r, out] -> [N, out]
    let y = tf.reshape(mixed, [...shape.slice(0, -1), mixed.shape[1]]); // -> [..., out]
    if (this.scale !== 1) y = tf.mul(y, this.scale);
    if (this.bias) y = tf.add(y, this.bias.read());
    return this.activationLayer.call(y, {}) as tf.Tensor;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      rank: this.rank,
      activation: this.activationName,
      useBias: this.useBias,
    };
    if (this.alpha !== undefined) config.alpha = this.alpha;
    if (this.seed !== undefined) config.seed = this.seed;
    return { ...super.getConfig(), ...config };
  }
}

function onlyTensor(inputs: tf.Tensor | tf.Tensor[], layer: string): tf.Tensor {
  if (Array.isArray(inputs)) {
    if (inputs.length !== 1) throw new Error(`${layer} takes one input tensor, got ${inputs.length}`);
    return inputs[0];
  }
  return inputs;
}

function onlyShape(inputShape: Shape | Shape[]): Shape {
  return Array.isArray(inputShape[0]) ? (inputShape as Shape[])[0] : (inputShape as Shape);
}

/** Dense layer with weight scale·B·A (see the module comment). Input [..., in] -> [..., units]. */
export class LowRankDense extends LowRankBase {
  static className = "LowRankDense";
  readonly units: number;

  constructor(args: LowRankDenseArgs) {
    super(args);
    checkPositiveInt("LowRankDense", "units", args.units);
    this.units = args.units;
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = onlyShape(inputShape);
    const fanIn = shape[shape.length - 1];
    if (fanIn === null || shape.length < 2) {
      throw new Error(`LowRankDense '${this.name}' needs a known last input dimension, got input shape [${shape}]`);
    }
    this.addFactors([fanIn, this.rank], [this.rank, this.units], fanIn, this.units, this.units);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = onlyShape(inputShape);
    return [...shape.slice(0, -1), this.units];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = onlyTensor(inputs, "LowRankDense");
      const fanIn = x.shape[x.shape.length - 1];
      const reduced = tf.matMul(tf.reshape(x, [-1, fanIn]), this.loraA!.read() as tf.Tensor2D); // [N, in]·[in, r] -> [N, r]
      return this.finish(tf.reshape(reduced, [...x.shape.slice(0, -1), this.rank])); // [..., r] -> [..., units]
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units };
  }
}

/**
 * 2-D convolution (channels last) with kernel reshape(scale·A·B) (see the module comment).
 * Input [batch, h, w, cin] -> [batch, h', w', filters].
 */
export class LowRankConv2D extends LowRankBase {
  static className = "LowRankConv2D";
  readonly filters: number;
  readonly kernelSize: [number, number];
  readonly strides: [number, number];
  readonly padding: Padding;

  constructor(args: LowRankConv2DArgs) {
    super(args);
    checkPositiveInt("LowRankConv2D", "filters", args.filters);
    this.filters = args.filters;
    this.kernelSize = pair(args.kernelSize);
    this.strides = pair(args.strides ?? 1);
    [...this.kernelSize, ...this.strides].forEach((v) => checkPositiveInt("LowRankConv2D", "kernelSize and strides", v));
    this.padding = args.padding ?? "valid";
    if (this.padding !== "valid" && this.padding !== "same") {
      throw new Error(`LowRankConv2D: padding must be 'valid' or 'same', got '${this.padding}'`);
    }
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = onlyShape(inputShape);
    const cin = shape[3];
    if (shape.length !== 4 || cin === null) {
      throw new Error(`LowRankConv2D '${this.name}' needs input [batch, h, w, channels] with known channels, got [${shape}]`);
    }
    const [kh, kw] = this.kernelSize;
    const fanIn = kh * kw * cin;
    this.addFactors([kh, kw, cin, this.rank], [this.rank, this.filters], fanIn, kh * kw * this.filters, this.filters);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = onlyShape(inputShape);
    const outLength = (length: number | null, kernel: number, stride: number): number | null => {
      if (length === null) return null;
      return this.padding === "same" ? Math.ceil(length / stride) : Math.ceil((length - kernel + 1) / stride);
    };
    return [
      shape[0],
      outLength(shape[1], this.kernelSize[0], this.strides[0]),
      outLength(shape[2], this.kernelSize[1], this.strides[1]),
      this.filters,
    ];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = onlyTensor(inputs, "LowRankConv2D") as tf.Tensor4D;
      const reduced = tf.conv2d(x, this.loraA!.read() as tf.Tensor4D, this.strides, this.padding); // -> [batch, h', w', r]
      return this.finish(reduced); // -> [batch, h', w', filters]
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      filters: this.filters,
      kernelSize: this.kernelSize,
      strides: this.strides,
      padding: this.padding,
    };
  }
}

tf.serialization.registerClass(LowRankDense, "MergeNet");
tf.serialization.registerClass(LowRankConv2D, "MergeNet");

/** Factory in the style of tf.layers.dense. */
export function lowRankDense(args: LowRankDenseArgs): LowRankDense {
  return new LowRankDense(args);
}

/** Factory in the style of tf.layers.conv2d. */
export function lowRankConv2d(args: LowRankConv2DArgs): LowRankConv2D {
  return new LowRankConv2D(args);
}
