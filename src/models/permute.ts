/**
 * The hidden units of a dense chain in another order: the same function, other axes. For an
 * MLP input → fc1 → fc2 → … → classifier, unit j of hidden layer i becomes unit
 * perm_i[j]: layer i's kernel columns and bias entries are reordered by perm_i, and the next
 * layer's kernel rows by the same perm_i. The output is unchanged (up to float rounding);
 * every weight matrix between two hidden layers is now expressed in unaligned coordinates.
 * This is what two independently trained networks look like to each other, made exactly.
 */
import { tf } from "../backend/index";
import { seededPermutation } from "../util/random";

/**
 * Permutes in place the units of each named hidden Dense layer of `model` (each followed, in
 * `layers` order, by the next named layer or by `outputLayer`), with permutations drawn from
 * `seed`. Returns the permutations (new unit j = old unit perm[j]).
 */
export function permuteHiddenUnits(model: tf.LayersModel, layers: string[], outputLayer: string, seed: number): Int32Array[] {
  const chain = [...layers, outputLayer];
  const weightsOf = chain.map((name) => {
    const layer = model.layers.find((l) => l.name === name);
    if (!layer) throw new Error(`permuteHiddenUnits: model '${model.name}' has no layer '${name}'; its layers are ` +
        `${model.layers.map((l) => l.name).join(", ")}`);
    if (layer.getClassName() !== "Dense") throw new Error(`permuteHiddenUnits: layer '${name}' is a ` +
        `${layer.getClassName()}; only Dense layers can be permuted`);
    return layer;
  });
  const perms = layers.map((_, i) => {
    const units = weightsOf[i].getWeights()[0].shape[1] as number;
    return seededPermutation(units, seed * 7919 + i + 1);
  });
  // Reordered in plain arrays (a gather's output misreports its rank to the wasm backend's fused matMul).
  weightsOf.forEach((layer, i) => {
    const [kernel, bias] = layer.getWeights(); // kernel [in, out], bias [out]
    const [fanIn, units] = kernel.shape as [number, number];
    const k = kernel.dataSync();
    const rows = i > 0 ? perms[i - 1] : undefined; // rows follow the previous layer's units
    const cols = i < layers.length ? perms[i] : undefined; // columns are this layer's units
    const newKernel = new Float32Array(k.length);
    for (let r = 0; r < fanIn; r++) {
      const from = rows ? rows[r] : r;
      for (let c = 0; c < units; c++) newKernel[r * units + c] = k[from * units + (cols ? cols[c] : c)];
    }
    const made: tf.Tensor[] = [tf.tensor2d(newKernel, [fanIn, units])];
    if (bias) {
      const b = bias.dataSync();
      made.push(tf.tensor1d(cols ? Float32Array.from(cols, (from) => b[from]) : b));
    }
    layer.setWeights(made);
    tf.dispose(made);
  });
  return perms;
}
