/**
 * Writing the adapter's output back into the target weight (docs/METHOD.md §3a). The
 * adapter's last LayerNorm emits values with standard deviation about 1, far larger than a
 * trained layer's weights, so how the output becomes the new weight W' matters:
 *   replace   W' = out                                   (released code; needs a norm layer after)
 *   matched   W' = matched(out)
 *   residual  W' = T + g (out - T),          g a learned scalar, init 0
 *   interp    W' = T + g (matched(out) - T), g = sigmoid(theta), theta learned, init -6 (default mode)
 * with matched(out) = mean(T) + std(T) (out - mean(out)) / std(out), means and stds over all
 * elements, std the population one (divide by N; T and out have the same N, so torch's N-1
 * convention gives the same result).
 *
 * Design choices:
 * - std(out) is computed as sqrt(var(out) + 1e-12): a constant output (std 0) then gives
 *   W' = mean(T) everywhere instead of NaN, and the gradient stays finite.
 * - Statistics of T are taken from the tensor passed in; if the caller passes a variable
 *   that is watched by a gradient, gradient flows into it too (the trainer passes constants).
 * - The gate is a scalar tfjs variable: g itself for residual, theta for interp. `setTheta`
 *   sets that scalar in either mode.
 * - The trainer warns when `replace` writes into a layer with no normalisation layer after
 *   it; `writeBackWarning` gives it the text, so the rule lives here.
 */
import { tf } from "../backend/index";
import { customGradLazy } from "../backend/lazy-grad";
import { fastMean, fastMoments } from "../backend/native-kernels";
import { freeVariablePrefix } from "./variables";

export const OUTPUT_MODES = ["replace", "matched", "residual", "interp"] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

/** interp is the default because it does no harm (docs/METHOD.md §3a). */
export const DEFAULT_OUTPUT_MODE: OutputMode = "interp";
/** Initial gate logit of interp: g = sigmoid(-6) ≈ 0.0025. */
export const DEFAULT_INTERP_THETA = -6;
/** Initial gate of residual. */
export const DEFAULT_RESIDUAL_GATE = 0;
/** Added to var(out) before the square root in matched(): guards std(out) = 0. */
export const MATCHED_VARIANCE_EPSILON = 1e-12;

function checkMode(mode: unknown): OutputMode {
  if (!OUTPUT_MODES.includes(mode as OutputMode)) {
    throw new Error(`write-back mode ${JSON.stringify(mode)} is not one of ${OUTPUT_MODES.join(", ")}`);
  }
  return mode as OutputMode;
}

/**
 * Whether a mode writes the raw adapter output (std about 1) into the weight, and so is only
 * safe when a normalisation layer follows the target layer.
 */
export function needsFollowingNormalisation(mode: OutputMode): boolean {
  return checkMode(mode) === "replace";
}

/**
 * The warning the trainer logs for this mode and target layer, or undefined when there is
 * nothing to warn about.
 */
export function writeBackWarning(mode: OutputMode, followedByNormalisation: boolean, layerName = "the target layer"): string | undefined {
  if (!needsFollowingNormalisation(mode) || followedByNormalisation) return undefined;
  return (
    `write-back mode 'replace' writes the adapter's raw output (std about 1) into ${layerName}, which no normalisation layer follows; ` +
    `in that setting the target was measured to collapse to chance (docs/METHOD.md §3a). Use 'interp' (the default) or 'matched'`
  );
}

/** mean(T) + std(T) (out - mean(out)) / sqrt(var(out) + 1e-12), statistics over all elements. */
export function matchMoments(output: tf.Tensor2D, target: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const out = fastMoments(output);
    const tgt = fastMoments(target);
    const scale = tf.div(tf.sqrt(tgt.variance), tf.sqrt(tf.add(out.variance, MATCHED_VARIANCE_EPSILON)));
    return tf.add(tf.mul(tf.sub(output, out.mean), scale), tgt.mean);
  });
}

/**
 * `interp` (gate = theta) or `matched` (no gate): T + g (matched(out) − T) with g =
 * sigmoid(theta), or matched(out), with a hand-written gradient (customGradLazy: tf.customGrad
 * with one gradient function per input, so T's runs only when asked for). A speed
 * choice: autodiff through the two moments and the blend took about seventy ops per call
 * (each op's inputs copied for the tape, each mean's gradient a broadcast); this takes about
 * thirty. With s_o = sqrt(var(out) + 1e-12), ô = (out − mean(out)) / s_o, s_T = std(T),
 * M = mean(T) + s_T ô and dM = g dW:
 *   d out   = (s_T / s_o) (dM − mean(dM) − ô mean(dM ô)),
 *   d T     = (1 − g) dW + mean(dM) + Σ(dM ô) (T − mean(T)) / (N s_T),
 *   d theta = Σ dW (M − T) g (1 − g).
 * The forward values are computed by the same ops as matchMoments, so they are identical.
 */
function blend(output: tf.Tensor2D, target: tf.Tensor2D, theta: tf.Scalar | undefined): tf.Tensor2D {
  const n = output.size;
  const inputs = theta ? [output, target, theta] : [output, target];
  const run = customGradLazy((args, save) => {
    const [out, tgt, th] = args;
    const outMoments = fastMoments(out);
    const tgtMoments = fastMoments(tgt);
    const tgtStd = tf.sqrt(tgtMoments.variance);
    const outStd = tf.sqrt(tf.add(outMoments.variance, MATCHED_VARIANCE_EPSILON));
    const scale = tf.div(tgtStd, outStd);
    const centred = tf.sub(out, outMoments.mean);
    const matched = tf.add(tf.mul(centred, scale), tgtMoments.mean); // [mt, nt], = matchMoments(out, tgt)
    const gate = th ? tf.sigmoid(th) : undefined;
    const delta = gate ? tf.sub(matched, tgt) : undefined;
    save([tf.div(centred, outStd), scale, tgtStd, tf.sub(tgt, tgtMoments.mean), ...(gate && delta ? [gate, delta] : [])]);
    return {
      value: gate && delta ? tf.add(tgt, tf.mul(gate, delta)) : matched,
      gradFunc: (dW: tf.Tensor, saved: tf.Tensor[]) => {
        const [normalised, k, sT, tgtCentred, g, d] = saved;
        const dM = g ? tf.mul(dW, g) : dW;
        const meanDM = fastMean(dM);
        const projection = tf.sum(tf.mul(dM, normalised));
        const dOut = () => tf.mul(tf.sub(tf.sub(dM, meanDM), tf.mul(normalised, tf.div(projection, n))), k);
        // T's gradient only when asked for (the trainer passes T as a constant).
        const dTarget = () => {
          const fromStats = tf.add(meanDM, tf.mul(tgtCentred, tf.div(projection, tf.mul(sT, n))));
          return g ? tf.add(tf.mul(dW, tf.sub(1, g)), fromStats) : fromStats;
        };
        if (!g || !d) return [dOut, dTarget];
        const dTheta = () => tf.mul(tf.sum(tf.mul(dW, d)), tf.mul(g, tf.sub(1, g)));
        return [dOut, dTarget, dTheta];
      },
    };
  });
  return run(...inputs) as tf.Tensor2D;
}

/** A write-back mode with its learned gate (residual, interp) as a tfjs variable. */
export class WriteBack {
  readonly mode: OutputMode;
  /** The trainable gate variable ([] for replace and matched). */
  readonly variables: tf.Variable[];
  private readonly gateVariable: tf.Variable<tf.Rank.R0> | undefined;

  /**
   * `initialTheta` is the starting value of the stored scalar: theta for interp (default
   * -6), g for residual (default 0). `name` prefixes the variable's tfjs name (default
   * "writeback").
   */
  constructor(mode: OutputMode, opts: { name?: string; initialTheta?: number } = {}) {
    this.mode = checkMode(mode);
    const initial = opts.initialTheta ?? (this.mode === "interp" ? DEFAULT_INTERP_THETA : DEFAULT_RESIDUAL_GATE);
    if (!Number.isFinite(initial)) throw new Error(`write-back initialTheta must be a finite number, got ${initial}`);
    if (this.mode === "residual" || this.mode === "interp") {
      const prefix = freeVariablePrefix(opts.name ?? "writeback");
      const label = this.mode === "interp" ? "theta" : "gate";
      this.gateVariable = tf.tidy(() => tf.variable(tf.scalar(initial), true, `${prefix}/${label}`));
      this.variables = [this.gateVariable];
    } else {
      this.variables = [];
    }
  }

  /** The current gate g (residual: the variable; interp: sigmoid(theta)); undefined otherwise. */
  gate(): number | undefined {
    const variable = this.gateVariable;
    if (!variable) return undefined;
    return tf.tidy(() => (this.mode === "interp" ? tf.sigmoid(variable) : variable).dataSync()[0]);
  }

  /** Sets the stored scalar: theta for interp, g for residual. */
  setTheta(value: number): void {
    if (!this.gateVariable) throw new Error(`write-back mode '${this.mode}' has no gate to set; only residual and interp do`);
    if (!Number.isFinite(value)) throw new Error(`write-back theta must be a finite number, got ${value}`);
    const variable = this.gateVariable;
    tf.tidy(() => variable.assign(tf.scalar(value)));
  }

  /** W' [mt, nt] from the adapter output and the current target (same shape); the caller disposes it. */
  apply(output: tf.Tensor2D, target: tf.Tensor2D): tf.Tensor2D {
    if (!tf.util.arraysEqual(output.shape, target.shape)) {
      throw new Error(`write-back: adapter output has shape [${output.shape}] but the target weight has shape [${target.shape}]; they must match`);
    }
    return tf.tidy(() => {
      switch (this.mode) {
        case "replace":
          return tf.clone(output);
        case "matched":
          return blend(output, target, undefined);
        case "residual":
          return tf.add(target, tf.mul(this.gateVariable as tf.Scalar, tf.sub(output, target)));
        case "interp":
          return blend(output, target, this.gateVariable as tf.Scalar);
      }
    });
  }

  dispose(): void {
    this.gateVariable?.dispose();
  }
}
