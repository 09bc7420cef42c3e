/**
 * Naive parameter sharing (the paper's Figure 1(d)): every `cycle` steps, the overlapping
 * block of each paired weight (the top-left [min(rows), min(cols)] of the two [out, in]
 * views) is copied from the source into the target (`copy`) or replaced in both by the
 * two blocks' mean (`average`). Heterogeneous models give these coordinates no common
 * meaning, which is why the paper shows it hurting; this baseline measures that.
 *
 * `strength` g makes `copy` a soft copy, block ← block + g (source block − block); g = 1 (the
 * default) is the plain copy. Where the two weights' axes line up (the positive control, a
 * source of the target's own architecture and initial weights) this is the oracle map the
 * adapter would have to learn, and it measures how much knowledge the source weight carries.
 */
import { tf } from "../backend/index";
import { JointLoop, type ModelSide, type StepLosses } from "../core/loop";
import { paramRef, readMatrix, writeMatrix, type ParamRef } from "../core/params";
import { stepSide } from "./independent";

export interface SharingConfig {
  pairs: { source: string; target: string }[];
  mode: "copy" | "average";
  cycle: number;
  /** `copy` only: g in block ← block + g (source − block); default 1 (the plain copy). */
  strength?: number;
  /** The source only lends its weight and never steps (a finished, pre-trained source). */
  freezeSource?: boolean;
}

/** Replaces the top-left [rows, cols] block of `m` by `block`: [m, n] stays [m, n]. */
function withBlock(m: tf.Tensor2D, block: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [rows, cols] = block.shape;
    const [mRows, mCols] = m.shape;
    const padded = tf.pad(block, [[0, mRows - rows], [0, mCols - cols]]);
    const mask = tf.pad(tf.ones([rows, cols]), [[0, mRows - rows], [0, mCols - cols]]);
    return tf.add(tf.mul(m, tf.sub(1, mask)), padded) as tf.Tensor2D;
  });
}

export class SharingTrainer extends JointLoop {
  readonly config: SharingConfig;
  private readonly refs: { source: ParamRef; target: ParamRef }[];

  constructor(source: ModelSide, target: ModelSide, config: SharingConfig) {
    if (!["copy", "average"].includes(config.mode)) throw new Error(`sharing mode must be 'copy' or 'average', got '${config.mode}'`);
    if (!Number.isInteger(config.cycle) || config.cycle < 1) throw new Error(`cycle must be a whole number >= 1, got ${config.cycle}`);
    if (!config.pairs.length) throw new Error("naive sharing needs at least one layer pair");
    const strength = config.strength ?? 1;
    if (!(typeof strength === "number" && strength > 0 && strength <= 1)) throw new Error(`sharing strength must be a ` +
        `number in (0, 1] (1 = plain copy), got ${JSON.stringify(config.strength)}`);
    if (config.mode === "average" && strength !== 1) throw new Error("sharing strength applies to mode 'copy' (a soft copy); 'average' always takes the mean");
    super(source, target, { freezeSource: config.freezeSource });
    this.config = config;
    this.refs = config.pairs.map((p, i) => {
      try {
        return { source: paramRef(source.model, p.source), target: paramRef(target.model, p.target) };
      } catch (err) {
        throw new Error(`pairs[${i}]: ${(err as Error).message}`);
      }
    });
  }

  /** Copies write into the target; averages into both. */
  protected override receivesTransfers(side: "source" | "target"): boolean {
    return side === "target" || this.config.mode === "average";
  }

  protected stepOnce(): StepLosses {
    const source = this.requireSource();
    if (this.step % this.config.cycle === 0) this.share();
    return { source: source.frozen ? undefined : stepSide(source.spec, source.weightDecay), target: stepSide(this.target.spec, this.target.weightDecay) };
  }

  private share(): void {
    this.refs.forEach((ref, pair) => {
      const s = readMatrix(ref.source);
      const t = readMatrix(ref.target);
      const rows = Math.min(s.shape[0], t.shape[0]);
      const cols = Math.min(s.shape[1], t.shape[1]);
      const [newTarget, newSource] = tf.tidy(() => {
        const sBlock = s.slice([0, 0], [rows, cols]);
        const tBlock = t.slice([0, 0], [rows, cols]);
        const g = this.config.strength ?? 1;
        const copied = g === 1 ? sBlock : tf.add(tBlock, tf.mul(tf.sub(sBlock, tBlock), g));
        const block = this.config.mode === "copy" ? copied : tf.div(tf.add(sBlock, tBlock), 2);
        return [withBlock(t, block as tf.Tensor2D), this.config.mode === "average" ? withBlock(s, block as tf.Tensor2D) : undefined];
      });
      const change = tf.tidy(() => tf.div(tf.norm(tf.sub(newTarget, t)), tf.add(tf.norm(t), 1e-12)) as tf.Scalar);
      writeMatrix(ref.target, newTarget);
      if (newSource) writeMatrix(ref.source, newSource);
      this.recordTransfer({ step: this.step, pair, direction: "forward" }, change);
      tf.dispose([s, t, newTarget, newSource ?? []]);
    });
  }
}
