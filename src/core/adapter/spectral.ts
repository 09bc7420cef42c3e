/**
 * Spectral normalisation of the adapter's FFN linears: the power-iteration state, sigma, and
 * the linear layer K / sigma with its hand-written gradient.
 *
 * - Spectral normalisation (switchable, on by default, as in the released code) follows
 *   torch.nn.utils.spectral_norm: for a tfjs kernel K [in, out] (torch weight W = Kᵀ)
 *   the state is u [out, 1] and v [in, 1]; one power iteration is v = normalise(K u),
 *   u = normalise(Kᵀ v); sigma = vᵀ K u (= uᵀ W v) and the layer uses K / sigma. u and v
 *   are non-trainable state (constants for the gradient); sigma is differentiable in K.
 *   `updateSpectral` (default: true in training, false in inference) runs
 *   `powerIterations` iterations and stores u, v; with false the stored u, v are reused, so
 *   a re-run computes the identical function. `refreshSpectral()` runs the iterations alone:
 *   the trainer calls it before opening its gradient tape, then runs the forward pass with
 *   `updateSpectral: false`, so the power iterations are not recorded on the tape.
 *   At construction, and when setParameters changes an FFN kernel, u and v are warmed up
 *   with 15 iterations (as torch's parametrizations.spectral_norm does) so that an
 *   inference call before any training call already sees a sensible sigma.
 */
import { tf } from "../../backend/index";
import { dense, type Dense } from "./ops";

/** Power iterations that warm up the spectral-norm vectors at construction and on set. */
export const SPECTRAL_WARMUP_ITERATIONS = 15;
/** torch.nn.functional.normalize's guard against a zero vector. */
const NORMALISE_EPSILON = 1e-12;

/** Power-iteration vectors of one FFN kernel K [in, out]: u [out, 1], v [in, 1]. */
export interface SpectralState {
  u: tf.Variable;
  v: tf.Variable;
}

/** x / max(||x||, eps), as torch.nn.functional.normalize (||x|| as sqrt(sum(x²)): 3 ops, where tf.norm takes 10). */
export function normalise(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x))), NORMALISE_EPSILON));
}

/** sigma = vᵀ K u from the stored vectors: K [in, out], u [out, 1], v [in, 1] -> [1, 1]. */
export function sigmaOf(kernel: tf.Variable, state: SpectralState): tf.Tensor2D {
  return tf.matMul(tf.matMul(state.v, kernel as tf.Tensor2D, true, false), state.u as tf.Tensor2D);
}

/** `iterations` power iterations from the stored u, v, stored back (no gradient: u and v are state). */
export function powerIterate(kernel: tf.Variable, state: SpectralState, iterations: number): void {
  tf.tidy(() => {
    const k = kernel as tf.Tensor2D;
    let u = state.u as tf.Tensor2D;
    let v = state.v as tf.Tensor2D;
    for (let i = 0; i < iterations; i++) {
      v = normalise(tf.matMul(k, u)); // [in, out] x [out, 1] -> [in, 1]
      u = normalise(tf.matMul(k, v, true, false)); // [out, in] x [in, 1] -> [out, 1]
    }
    state.u.assign(u);
    state.v.assign(v);
  });
}

/**
 * An FFN linear layer: x K' + b with K' = K / sigma under spectral norm (sigma = vᵀ K u, u
 * and v constants), K' = K otherwise. [n, in] -> [n, out].
 *
 * Under spectral norm the gradient is hand-written (tf.customGrad; same reason as
 * layerNorm): with G = xᵀ dy the gradient for K', dK = G / sigma − (Σ G ⊙ K) / sigma² · v uᵀ,
 * db = Σ_rows dy, dx = dy K'ᵀ.
 */
export function spectralDense(x: tf.Tensor2D, layer: Dense, state: SpectralState | undefined): tf.Tensor2D {
  if (!state) return dense(x, layer.kernel as tf.Tensor2D, layer.bias as tf.Tensor1D);
  const run = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, kernel, bias] = args as tf.Tensor2D[];
    const save = args[3] as tf.GradSaveFunc;
    const sigma = tf.matMul(tf.matMul(state.v, kernel, true, false), state.u as tf.Tensor2D); // [1, 1]
    const effective = tf.div(kernel, sigma); // [in, out]
    save([input, kernel, effective, sigma, state.u, state.v]);
    return {
      value: tf.add(tf.matMul(input, effective), bias),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, k, kEff, sg, u, v] = saved as tf.Tensor2D[];
        const gEff = tf.matMul(xs, dy as tf.Tensor2D, true, false); // [in, out]
        const along = tf.div(tf.sum(tf.mul(gEff, k)), tf.square(sg)); // [1, 1]
        const dKernel = tf.sub(tf.div(gEff, sg), tf.mul(tf.matMul(v, u, false, true), along)); // v uᵀ: [in, out]
        return [tf.matMul(dy as tf.Tensor2D, kEff, false, true), dKernel, tf.sum(dy, 0)];
      },
    };
  });
  return run(x, layer.kernel, layer.bias) as tf.Tensor2D;
}
