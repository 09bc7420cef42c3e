/**
 * Parameter views: the named weights of a tfjs LayersModel seen as `[rows, cols] = [out, in]`
 * matrices, the orientation the adapter works in (docs/METHOD.md §1; the paper's PyTorch code does the same).
 *
 * Addressing. A parameter is named `"<layerName>/<weightName>"`, the LayerVariable's
 * `originalName` in tfjs-layers (`"dense_2/kernel"`, `"conv1/kernel"`, `"embed/embeddings"`,
 * `"proj/lora_b"`). `originalName` is used rather than `name` because tfjs appends `_1`, `_2`
 * to `name` when two models reuse a layer name; `originalName` is what the model was built with.
 * Layers of nested models (a model used as a layer) are searched too.
 *
 * Views. The kind is decided by the layer's class name and the weight's name, never by its shape:
 *   dense      Dense `kernel` [in, out]               -> transpose              -> [out, in]
 *   conv2d     Conv2D `kernel` [kh, kw, cin, cout]    -> [kh*kw*cin, cout] -> ᵀ -> [cout, kh*kw*cin]
 *   conv1d     Conv1D `kernel` [k, cin, cout]         -> [k*cin, cout]     -> ᵀ -> [cout, k*cin]
 *   embedding  Embedding `embeddings` [vocab, d]      -> as is                  -> [vocab, d]
 *   factor     LowRankDense / LowRankConv2D (src/models/lowrank-layers.ts), which store their
 *              factors in the tfjs kernel orientation: `lora_a` [in, r] (dense) or
 *              [kh, kw, cin, r] (conv), `lora_b` [r, out]. Viewed with the same rule as a
 *              kernel, A becomes [r, in] and B becomes [out, r], so the full view is B·A.
 * Every view but the embedding's is "flatten the leading axes, then transpose"; both steps only
 * move numbers, so toMatrix/fromMatrix round trips are bit-exact.
 *
 * Biases, norms, recurrent kernels and other layer kinds have no matrix view: asking for one
 * is an Error that says why and lists the parameters that do.
 */
import { tf } from "../backend/index";

export type ViewKind = "dense" | "conv2d" | "conv1d" | "embedding" | "factor";

export interface ParamRef {
  /** `"<layerName>/<weightName>"` (the variable's originalName). */
  name: string;
  /** Name of the layer that owns the weight. */
  layerName: string;
  /** The weight's own name inside its layer (`kernel`, `embeddings`, `lora_a`, `lora_b`). */
  weightName: string;
  /** tfjs class name of the owning layer (`Dense`, `Conv2D`, `LowRankDense`, ...). */
  layerClass: string;
  /** The model's variable: reads and writes go through it, so optimiser state stays attached. */
  variable: tf.LayerVariable;
  kind: ViewKind;
  /** Shape as stored by tfjs. */
  tfShape: number[];
  /** `[rows, cols]` as the adapter sees it. */
  matrixShape: [number, number];
}

/** Layer class name -> weight names with a matrix view, and their kind. */
const MATRIX_WEIGHTS: Record<string, Record<string, ViewKind>> = {
  Dense: { kernel: "dense" },
  Conv2D: { kernel: "conv2d" },
  Conv1D: { kernel: "conv1d" },
  Embedding: { embeddings: "embedding" },
  LowRankDense: { lora_a: "factor", lora_b: "factor" },
  LowRankConv2D: { lora_a: "factor", lora_b: "factor" },
  // The model zoo's vision-transformer layers (src/models/vit-layers.ts): kernels stored [in, out].
  MergeNetMultiHeadSelfAttention: { q_kernel: "dense", k_kernel: "dense", v_kernel: "dense", out_kernel: "dense" },
  MergeNetPositionEmbedding: { embeddings: "embedding" },
};

interface FoundWeight {
  layer: tf.layers.Layer;
  variable: tf.LayerVariable;
}

/** Every weight of the model with its innermost owning layer, in layer order. */
function allWeights(model: tf.LayersModel): FoundWeight[] {
  const found: FoundWeight[] = [];
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) {
      found.push(...allWeights(layer));
    } else {
      for (const variable of layer.weights) found.push({ layer, variable });
    }
  }
  return found;
}

function weightNameOf(variable: tf.LayerVariable): string {
  const parts = variable.originalName.split("/");
  return parts[parts.length - 1];
}

function kindOf(found: FoundWeight): ViewKind | undefined {
  return MATRIX_WEIGHTS[found.layer.getClassName()]?.[weightNameOf(found.variable)];
}

/** `[rows, cols]` of the view for a stored shape (see the module comment). */
function viewShape(kind: ViewKind, tfShape: number[]): [number, number] {
  if (kind === "embedding") return [tfShape[0], tfShape[1]];
  const leading = tfShape.slice(0, -1).reduce((a, b) => a * b, 1);
  return [tfShape[tfShape.length - 1], leading];
}

/** Every parameter of `model` that has a matrix view, in layer order (biases, norms excluded). */
export function matrixParamNames(model: tf.LayersModel): string[] {
  return allWeights(model)
    .filter((found) => kindOf(found) !== undefined)
    .map((found) => found.variable.originalName);
}

function listing(model: tf.LayersModel): string {
  const names = matrixParamNames(model);
  return names.length ? names.join(", ") : "(none: the model has no Dense, Conv1D, Conv2D, Embedding or low-rank layer)";
}

/**
 * Looks a parameter up by `"<layerName>/<weightName>"`. A wrong name, a parameter without a
 * matrix view (bias, norm scale, unsupported layer) or an ambiguous name (two nested models
 * using the same layer name) is an Error listing the valid names.
 */
export function paramRef(model: tf.LayersModel, name: string): ParamRef {
  const matches = allWeights(model).filter((found) => found.variable.originalName === name);
  if (matches.length === 0) {
    throw new Error(`model '${model.name}' has no parameter named '${name}'. Parameters with a matrix view: ${listing(model)}`);
  }
  if (matches.length > 1) {
    throw new Error(
      `parameter name '${name}' is ambiguous in model '${model.name}' (${matches.length} nested layers share it); ` +
        `give the layers distinct names`,
    );
  }
  const found = matches[0];
  const layerClass = found.layer.getClassName();
  const weightName = weightNameOf(found.variable);
  const tfShape = found.variable.shape.map((d) => d ?? 0); // weights always have known dimensions
  const kind = kindOf(found);
  if (kind === undefined) {
    const why =
      tfShape.length < 2
        ? `is a ${tfShape.length}-D vector of shape [${tfShape}] (a bias or normalisation parameter), not a matrix`
        : MATRIX_WEIGHTS[layerClass]
          ? `is not a matrix parameter of a ${layerClass} layer (those are: ${Object.keys(MATRIX_WEIGHTS[layerClass]).join(", ")})`
          : `belongs to a ${layerClass} layer, which has no matrix view (supported: ${Object.keys(MATRIX_WEIGHTS).join(", ")})`;
    throw new Error(`parameter '${name}' ${why}. Parameters with a matrix view: ${listing(model)}`);
  }
  return {
    name,
    layerName: found.layer.name,
    weightName,
    layerClass,
    variable: found.variable,
    kind,
    tfShape,
    matrixShape: viewShape(kind, tfShape),
  };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Any tensor of the stored shape (the weight, its gradient, an optimiser slot) as the
 * `[rows, cols]` view. The caller owns the result.
 */
export function toMatrix(ref: ParamRef, value: tf.Tensor): tf.Tensor2D {
  if (!sameShape(value.shape, ref.tfShape)) {
    throw new Error(`toMatrix('${ref.name}'): got shape [${value.shape}], expected the stored shape [${ref.tfShape}]`);
  }
  const [rows, cols] = ref.matrixShape;
  if (ref.kind === "embedding") return tf.reshape(value, [rows, cols]);
  return tf.tidy(() => {
    const flat = tf.reshape(value, [cols, rows]); // [..., last] -> [prod(leading), last]
    return tf.transpose(flat) as tf.Tensor2D; // -> [last, prod(leading)] = [rows, cols]
  });
}

/** Exact inverse of toMatrix: a `[rows, cols]` matrix back to the stored shape. */
export function fromMatrix(ref: ParamRef, matrix: tf.Tensor2D): tf.Tensor {
  if (!sameShape(matrix.shape, ref.matrixShape)) {
    throw new Error(
      `'${ref.name}' is viewed as a [${ref.matrixShape}] matrix ([out, in]); got [${matrix.shape}]` +
        (sameShape(matrix.shape, [ref.matrixShape[1], ref.matrixShape[0]]) ? " (transposed?)" : ""),
    );
  }
  if (ref.kind === "embedding") return tf.reshape(matrix, ref.tfShape);
  return tf.tidy(() => {
    const flat = tf.transpose(matrix); // [rows, cols] -> [cols, rows] = [prod(leading), last]
    return tf.reshape(flat, ref.tfShape); // -> stored shape
  });
}

/** The parameter's current value as its `[rows, cols]` view (a snapshot the caller owns). */
export function readMatrix(ref: ParamRef): tf.Tensor2D {
  return toMatrix(ref, ref.variable.read());
}

/**
 * Writes a `[rows, cols]` matrix into the model's variable (via LayerVariable.write, so the
 * variable, and with it any optimiser state keyed on it, stays the same object). Does not
 * take ownership of `matrix`.
 */
export function writeMatrix(ref: ParamRef, matrix: tf.Tensor2D): void {
  if (matrix.dtype !== "float32") {
    throw new Error(`writeMatrix('${ref.name}'): matrix has dtype ${matrix.dtype}; weights are float32`);
  }
  tf.tidy(() => {
    ref.variable.write(fromMatrix(ref, matrix));
  });
}

/**
 * The two factor parameters of a LowRankDense / LowRankConv2D layer: `b` viewed [out, r] and
 * `a` viewed [r, in], so that the layer's `[out, in]` weight is scale·b·a.
 */
export function factorRefs(model: tf.LayersModel, layerName: string): { b: ParamRef; a: ParamRef } {
  const b = paramRef(model, `${layerName}/lora_b`);
  const a = paramRef(model, `${layerName}/lora_a`);
  return { b, a };
}

/** Every matrix-viewable weight of a model with its stored shape and its [out, in] view (for tables). */
export function describeMatrices(model: tf.LayersModel): { weight: string; kind: ViewKind; stored: string; view: string }[] {
  return matrixParamNames(model).map((name) => {
    const ref = paramRef(model, name);
    return { weight: name, kind: ref.kind, stored: `[${ref.tfShape.join(", ")}]`, view: `[${ref.matrixShape.join(", ")}]` };
  });
}
