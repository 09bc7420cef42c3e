/**
 * tf.layers.dense with a leaner call (issue 16): the same layer (class, config, weights,
 * serialisation), whose forward runs as a 2-D MatMul, an Add of the bias and the activation.
 *
 * tfjs-layers' Dense runs a layer without a fusable activation in training, and every layer in
 * inference, through tf.fused.matMul, which reshapes both operands to rank 3 ([1, m, k] and
 * [1, k, n]) and the result back, and differentiates it with three more reshapes; an input of
 * rank 3 (tokens) also gets an identity Transpose of the kernel. Each is a native op of a fixed
 * cost on the `tensorflow` backend. The values are the same to the last bit: TensorFlow's
 * BatchMatMul computes a [m, k] x [k, n] product and a [1, m, k] x [1, k, n] one the same way,
 * and its Sum of the bias gradient over [1, m, n]'s first two axes the same as over [m, n]'s first
 * (checked over 720 shapes with one thread and with the default, and on whole runs).
 */
import { tf } from "../backend/index";

interface DenseInternals {
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  activation: { apply(x: tf.Tensor): tf.Tensor; getClassName(): string };
  invokeCallHook(inputs: tf.Tensor | tf.Tensor[], kwargs: unknown): void;
}

/** tf.layers.dense(args), its forward as a 2-D MatMul + bias Add + activation. */
export function dense(args: Parameters<typeof tf.layers.dense>[0]): tf.layers.Layer {
  const layer = tf.layers.dense(args);
  const own = layer as unknown as DenseInternals;
  layer.call = (inputs, kwargs) =>
    tf.tidy(() => {
      own.invokeCallHook(inputs, kwargs);
      const input = Array.isArray(inputs) ? inputs[0] : inputs;
      if (Array.isArray(inputs) && inputs.length !== 1) throw new Error(`dense layer '${layer.name}' takes one input, got ${inputs.length}`);
      const kernel = own.kernel.read();
      const rows = input.rank === 2 ? input : tf.reshape(input, [-1, input.shape[input.rank - 1]]); // [.., k] -> [m, k]
      let output = tf.matMul(rows, kernel); // [m, n]
      if (own.bias) output = tf.add(output, own.bias.read());
      if (input.rank !== 2) output = tf.reshape(output, [...input.shape.slice(0, -1), kernel.shape[1] as number]);
      return own.activation.apply(output);
    });
  return layer;
}
