/**
 * Writing the adapter's output back into the target weight (SPEC.md section 3b). The
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
import { tf } from "../backend";
import { freeVariablePrefix } from "./adapter";

export const OUTPUT_MODES = ["replace", "matched", "residual", "interp"] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

/** SPEC 3b: interp is the default, because it does no harm. */
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
    `SPEC 3b measured a collapse to chance in that setting. Use 'interp' (the default) or 'matched'`
  );
}

/** mean(T) + std(T) (out - mean(out)) / sqrt(var(out) + 1e-12), statistics over all elements. */
export function matchMoments(output: tf.Tensor2D, target: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const out = tf.moments(output);
    const tgt = tf.moments(target);
    const scale = tf.div(tf.sqrt(tgt.variance), tf.sqrt(tf.add(out.variance, MATCHED_VARIANCE_EPSILON)));
    return tf.add(tf.mul(tf.sub(output, out.mean), scale), tgt.mean);
  });
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
          return matchMoments(output, target);
        case "residual":
          return tf.add(target, tf.mul(this.gateVariable as tf.Scalar, tf.sub(output, target)));
        case "interp":
          return tf.add(target, tf.mul(tf.sigmoid(this.gateVariable as tf.Scalar), tf.sub(matchMoments(output, target), target)));
      }
    });
  }

  dispose(): void {
    this.gateVariable?.dispose();
  }
}
