/**
 * The hidden units of a dense chain in another order: the same function, other axes. For an
 * MLP input → fc1 → fc2 → … → classifier, unit j of hidden layer i becomes unit
 * perm_i[j]: layer i's kernel columns and bias entries are reordered by perm_i, and the next
 * layer's kernel rows by the same perm_i. The output is unchanged (up to float rounding);
 * every weight matrix between two hidden layers is now expressed in unaligned coordinates.
 * This is what two independently trained networks look like to each other, made exactly.
 */
import { tf } from "../backend";
import { seededPermutation } from "../core/random";

/**
 * Permutes in place the units of each named hidden Dense layer of `model` (each followed, in
 * `layers` order, by the next named layer or by `outputLayer`), with permutations drawn from
 * `seed`. Returns the permutations (new unit j = old unit perm[j]).
 */
export function permuteHiddenUnits(model: tf.LayersModel, layers: string[], outputLayer: string, seed: number): Int32Array[] {
  const chain = [...layers, outputLayer];
  const weightsOf = chain.map((name) => {
    const layer = model.layers.find((l) => l.name === name);
    if (!layer) throw new Error(`permuteHiddenUnits: model '${model.name}' has no layer '${name}'; its layers are ${model.layers.map((l) => l.name).join(", ")}`);
    if (layer.getClassName() !== "Dense") throw new Error(`permuteHiddenUnits: layer '${name}' is a ${layer.getClassName()}; only Dense layers can be permuted`);
    return layer;
  });
  const perms = layers.map((_, i) => {
    const units = weightsOf[i].getWeights()[0].shape[1] as number;
    return seededPermutation(units, seed * 7919 + i + 1);
  });
  const updated = tf.tidy(() =>
    weightsOf.map((layer, i) => {
      const [kernel, bias] = layer.getWeights(); // kernel [in, out], bias [out]
      // Copies, so the layer's own variables (which getWeights hands out) are never disposed here.
      let k = tf.clone(kernel);
      let b = bias && tf.clone(bias);
      if (i > 0) k = tf.gather(k, tf.tensor1d(perms[i - 1], "int32"), 0); // rows follow the previous layer's units
      if (i < layers.length) {
        const perm = tf.tensor1d(perms[i], "int32");
        k = tf.gather(k, perm, 1); // [in, out]: columns reordered
        b = b && tf.gather(b, perm);
      }
      return b ? [k, b] : [k];
    }),
  );
  weightsOf.forEach((layer, i) => layer.setWeights(updated[i]));
  tf.dispose(updated.flat());
  return perms;
}
