/**
 * One block of the adapter: multi-head attention of query tokens on key tokens, with its
 * hand-written backward pass. The block's residual and LayerNorm, and the batching of blocks
 * that share a query orientation, are the adapter's (parameter-adapter.ts).
 *
 * - `attentionTemperature` (default "fixed"): "learned" gives each layer one trainable
 *   scalar `layer{i}.log_temperature` (shape [], init 0), shared by the layer's blocks and
 *   heads; the logits q kᵀ/√d are multiplied by τ = exp(log_temperature), so the attention
 *   can sharpen even when the projected tokens are small. It is folded into the queries'
 *   1/√d scale (q' = q τ/√d). A scalar, so AdamW gives it no weight decay (matrices only).
 */
import { tf } from "../../backend/index";
import { customGradLazy } from "../../backend/lazy-grad";
import type { BlockName } from "./config";
import { dense, type Dense, type Norm } from "./ops";

/** One block's variables: the q, k, v and output projections, and the LayerNorm after its residual. */
export interface BlockParams {
  q: Dense;
  k: Dense;
  v: Dense;
  out: Dense;
  norm: Norm;
}

/** What one block's attention reads. */
export interface AttentionInputs {
  name: BlockName;
  params: BlockParams;
  query: tf.Tensor2D; // [nq, dq]
  keys: tf.Tensor2D; // [nk, dk], also the values
  heads: number;
  headWidth: number;
  /** The layer's learned log τ [] (attentionTemperature "learned"). */
  logTemperature?: tf.Variable;
  /** The dropout mask of the attention probabilities [h, nq, nk] (training with dropout only). */
  mask?: tf.Tensor;
  /** Where inspection keeps the head-averaged map (undefined: no inspection, the fast backward). */
  maps?: Partial<Record<BlockName, tf.Tensor2D>>;
}

/**
 * One block's attention, before its residual and LayerNorm: [nq, dq] queries, [nk, dk]
 * keys/values -> [nq, dq]. Records the head-averaged attention map when asked.
 *
 * Hand-written gradient (customGradLazy, tf.customGrad with one gradient function per input,
 * so that the queries' and keys' gradients are computed only where asked for), a speed choice: the forward pass is some twenty
 * small ops, and autodiff through them costs about three times as many again (each op's
 * inputs copied for the tape, each broadcast's and reshape's gradient its own op). With
 * s = q kᵀ (q already scaled by c = 1/√d, or c = τ/√d with a learned temperature
 * τ = exp(log τ)), P = softmax(s), P' = P ⊙ mask, C = P' v, out = merge(C) Wo + bo:
 *   dWo = merge(C)ᵀ dout, dC = heads(dout Woᵀ), dP' = dC vᵀ, dv = P'ᵀ dC, dP = dP' ⊙ mask,
 *   ds = P ⊙ (dP − Σ_keys dP ⊙ P), dq = ds k, dk = dsᵀ q,
 * then through the projections (dQ = merge(dq) c etc.), into the queries and the keys
 * as well (both constants in the trainer, but a caller may differentiate through them).
 * The temperature: s is linear in τ, so ∂s/∂log τ = s and d log τ = Σ ds ⊙ s
 * = Σ_{i,j,c} ds_ij q_ic k_jc = Σ dq ⊙ q (the cheaper form, [h, nq, d] not [h, nq, nk]).
 */
export function attend(block: AttentionInputs): tf.Tensor2D {
  const { name, params: p, query, keys, heads: h, headWidth: d, logTemperature, mask, maps } = block;
  const nq = query.shape[0];
  const nk = keys.shape[0];
  const scale = 1 / Math.sqrt(d);
  const heads = (x: tf.Tensor, n: number): tf.Tensor3D => tf.transpose(tf.reshape(x, [n, h, d]), [1, 0, 2]); // [n, h*d] -> [h, n, d]
  const merge = (x: tf.Tensor, n: number): tf.Tensor2D => tf.reshape(tf.transpose(x, [1, 0, 2]), [n, h * d]); // [h, n, d] -> [n, h*d]
  // Inputs: the queries, the keys, then Wq, bq, Wk, bk, Wv, bv, Wo, bo (kernels [in, out]),
  // then log τ [] with a learned temperature.
  const forward = (a: readonly tf.Tensor[]) => {
    const [x, kv, wq, bq, wk, bk, wv, bv, wo, bo] = a;
    const queryScale = a.length > 10 ? tf.mul(tf.exp(a[10]), scale) : scale; // [] tensor (τ/√d) or the number 1/√d
    const q = heads(tf.mul(dense(x as tf.Tensor2D, wq as tf.Tensor2D, bq as tf.Tensor1D), queryScale), nq); // [h, nq, d], scaled
    const k = heads(dense(kv as tf.Tensor2D, wk as tf.Tensor2D, bk as tf.Tensor1D), nk); // [h, nk, d]
    const v = heads(dense(kv as tf.Tensor2D, wv as tf.Tensor2D, bv as tf.Tensor1D), nk); // [h, nk, d]
    const probs = tf.softmax(tf.matMul(q, k, false, true)); // [h, nq, nk], softmax over keys
    const dropped = mask ? tf.mul(probs, mask) : probs;
    const merged = merge(tf.matMul(dropped, v), nq); // [h, nq, d] -> [nq, h*d]
    return { out: dense(merged, wo as tf.Tensor2D, bo as tf.Tensor1D), q, k, v, probs, dropped, merged, queryScale }; // out [nq, dq]
  };
  const inputs: tf.Tensor[] = [query, keys, p.q.kernel, p.q.bias, p.k.kernel, p.k.bias, p.v.kernel, p.v.bias, p.out.kernel, p.out.bias];
  if (logTemperature) inputs.push(logTemperature);
  if (maps) {
    // Inspection: the plain pass (autodiff, if anyone asks), keeping the head-averaged map.
    const result = forward(inputs);
    maps[name] = tf.mean(result.probs, 0) as tf.Tensor2D; // [h, nq, nk] -> [nq, nk]
    return result.out;
  }
  const attention = customGradLazy((tensors, save) => {
    const [x, kv, wq, , wk, , wv, , wo] = tensors;
    const r = forward(tensors);
    const learnedScale = typeof r.queryScale === "number" ? [] : [r.queryScale];
    save([x, kv, r.q, r.k, r.v, r.probs, r.dropped, r.merged, wq, wk, wv, wo, ...learnedScale, ...(mask ? [mask] : [])]);
    return {
      value: r.out,
      gradFunc: (dOut: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ks, qh, kh, vh, pr, dr, mg, wqs, wks, wvs, wos] = saved;
        const queryScale = logTemperature ? saved[12] : scale; // [] τ/√d, or 1/√d
        const ms = mask ? saved[saved.length - 1] : undefined;
        const dContext = heads(tf.matMul(dOut, wos, false, true), nq); // [nq, dq] -> [h, nq, d]
        const dDropped = tf.matMul(dContext, vh, false, true); // [h, nq, nk]
        const dV = merge(tf.matMul(dr, dContext, true, false), nk); // [h, nk, d] -> [nk, h*d]
        const dProbs = ms ? tf.mul(dDropped, ms) : dDropped;
        const dScores = tf.mul(pr, tf.sub(dProbs, tf.sum(tf.mul(dProbs, pr), -1, true))); // softmax's VJP
        const dScaled = tf.matMul(dScores, kh); // [h, nq, d], the scaled queries' gradient
        const dQ = tf.mul(merge(dScaled, nq), queryScale); // [nq, h*d], before the scaling
        const dK = merge(tf.matMul(dScores, qh, true, false), nk); // [nk, h*d]
        // One function per input: the queries' and keys' gradients run only when asked for.
        return [
          () => tf.matMul(dQ, wqs, false, true), // the queries' gradient [nq, dq]
          () => tf.add(tf.matMul(dK, wks, false, true), tf.matMul(dV, wvs, false, true)), // the keys' gradient [nk, dk]
          () => tf.matMul(xs, dQ, true, false), () => tf.sum(dQ, 0),
          () => tf.matMul(ks, dK, true, false), () => tf.sum(dK, 0),
          () => tf.matMul(ks, dV, true, false), () => tf.sum(dV, 0),
          () => tf.matMul(mg, dOut, true, false), () => tf.sum(dOut, 0),
          ...(logTemperature ? [() => tf.sum(tf.mul(dScaled, qh))] : []), // log τ's gradient []
        ];
      },
    };
  });
  return attention(...inputs) as tf.Tensor2D;
}
