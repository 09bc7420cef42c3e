/**
 * Baselines that need a shared label space and inputs both models can read:
 *  - logit knowledge distillation (Hinton et al.): the target's loss is
 *    (1 − α)·CE(target, y) + α·τ²·KL(softmax(source/τ) ‖ softmax(target/τ)) on the target's batch,
 *    the source's logits taken as constants; the source trains on its own stream meanwhile
 *    (or not at all when frozen: a finished teacher);
 *  - deep mutual learning (Zhang et al.): both models add α·τ²·KL(other ‖ self) on the
 *    target's batch to their own cross-entropy on their own batch.
 * Each model still sees exactly the data it sees under every other method; only the loss
 * gains the mimicry term. Where the two tasks have different labels or inputs these methods
 * do not apply, and constructing them says so (checkDistillable).
 *
 * Across modalities (an image model and a text model of the same items) the source cannot
 * read the target's batch. When the data are paired item by item, a `PairedInput` maps each
 * target batch to the source's own modality of the same items; both trainers then run the
 * source on that mapped input wherever they would have run it on the target's batch, and the
 * two models' input shapes may differ. The label spaces must still match.
 */
import * as crypto from "crypto";
import { tf } from "../backend/index";
import { JointLoop, type ModelSide, type StepLosses } from "../core/loop";
import { trainStep } from "../core/step";
import type { Batch, PairedInput } from "../core/batch-stream";
import { stepSide } from "./independent";

export interface DistillationConfig {
  /** The experiment declares that source and target predict the same classes. */
  sharedLabels: boolean;
  /** Softmax temperature τ. Default 4. */
  temperature: number;
  /** Weight α of the mimicry term. Default 0.5. */
  alpha: number;
  /** KD only: the source never steps (a pre-trained teacher). */
  freezeSource: boolean;
  /**
   * Cross-modal runs: maps a target batch to the source's input for the same items. Without
   * it the source reads the target's batch itself, so both models must read the same shape.
   */
  pairedInput?: PairedInput;
}

export const DISTILLATION_DEFAULTS: DistillationConfig = { sharedLabels: false, temperature: 4, alpha: 0.5, freezeSource: false };

const shapeOf = (model: tf.LayersModel, which: "inputs" | "outputs"): string =>
  JSON.stringify(model[which][0].shape.slice(1));

/**
 * Throws, with the reason in words, unless logits of one model can teach the other. `paired`:
 * the source reads its own modality of the target's items (a PairedInput), so the input
 * shapes may differ; the label spaces must match all the same.
 */
export function checkDistillable(method: string, source: tf.LayersModel, target: tf.LayersModel, sharedLabels: boolean, paired = false): void {
  if (!sharedLabels) {
    throw new Error(`${method} does not apply here: it needs both models to predict the same classes, and this ` +
        `experiment declares different label spaces (set sharedLabels only when the classes really match). Compare with MergeNet and target-alone instead.`);
  }
  if (shapeOf(source, "outputs") !== shapeOf(target, "outputs")) {
    throw new Error(`${method} does not apply here: the source predicts ${shapeOf(source, "outputs")} and the target ` +
        `${shapeOf(target, "outputs")}; the label spaces differ.`);
  }
  if (!paired && shapeOf(source, "inputs") !== shapeOf(target, "inputs")) {
    throw new Error(`${method} does not apply here: it runs both models on the same batch, but the source reads ` +
        `inputs of shape ${shapeOf(source, "inputs")} and the target ${shapeOf(target, "inputs")} (for two modalities of the same items, pass a pairedInput).`);
  }
}

/** τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ)), mean over the batch. */
export function softKl(teacherLogits: tf.Tensor, studentLogits: tf.Tensor, temperature: number): tf.Scalar {
  return tf.tidy(() => {
    const teacher = tf.softmax(tf.div(teacherLogits, temperature));
    const logTeacher = tf.logSoftmax(tf.div(teacherLogits, temperature));
    const logStudent = tf.logSoftmax(tf.div(studentLogits, temperature));
    const kl = tf.sum(tf.mul(teacher, tf.sub(logTeacher, logStudent)), -1);
    return tf.mul(tf.mean(kl), temperature * temperature) as tf.Scalar;
  });
}

/**
 * The source's input for a target batch: the batch's own x, or with a pairing the source's
 * modality of the same items. Dispose it with `releaseSourceInput`.
 */
function sourceInputOf(paired: PairedInput | undefined, batch: Batch): tf.Tensor {
  if (!paired) return batch.x;
  const x = paired.sourceInputFor(batch); // [rows, ...source input shape]
  if (x.shape[0] !== batch.x.shape[0]) {
    x.dispose();
    throw new Error(`the pairedInput returned ${x.shape[0]} rows for a target batch of ${batch.x.shape[0]}; it must ` +
        `return the source's input for exactly the batch's items, in order`);
  }
  return x;
}

/** Frees a tensor from sourceInputOf unless it is the batch's own x (the caller frees that). */
function releaseSourceInput(x: tf.Tensor, batch: Batch): void {
  if (x !== batch.x) x.dispose();
}

/** A side whose loss gains α·KL(teacher ‖ self) against fixed teacher logits for this batch. */
function withMimicry(side: ModelSide, teacherLogits: tf.Tensor, cfg: DistillationConfig): ModelSide {
  return {
    ...side,
    loss: (logits, labels) =>
      tf.tidy(() => tf.add(tf.mul(side.loss(logits, labels), 1 - cfg.alpha), tf.mul(softKl(teacherLogits, logits, cfg.temperature), cfg.alpha)) as tf.Scalar),
  };
}

abstract class DistillationBase extends JointLoop {
  readonly config: DistillationConfig;

  protected constructor(method: string, source: ModelSide, target: ModelSide, config: Partial<DistillationConfig>) {
    const cfg = { ...DISTILLATION_DEFAULTS, ...config };
    if (!(cfg.temperature > 0)) throw new Error(`temperature must be > 0, got ${cfg.temperature}`);
    if (!(cfg.alpha >= 0 && cfg.alpha <= 1)) throw new Error(`alpha must be in [0, 1], got ${cfg.alpha}`);
    checkDistillable(method, source.model, target.model, cfg.sharedLabels, cfg.pairedInput !== undefined);
    super(source, target, { freezeSource: cfg.freezeSource });
    this.config = cfg;
  }
}

/**
 * A frozen teacher's logits per input row, computed once: a frozen teacher gives an item the same
 * logits every epoch, so after the first epoch KD reads them from here instead of running the
 * teacher again. Rows are known by their bytes (two equal rows share their logits). A batch with
 * any row not seen yet is predicted whole, exactly as without the memo, and its rows are kept.
 * The teacher's output for a row does not depend on the rows batched with it (test/evaluation.test.ts
 * checks every model family), so the logits are the same to the last bit.
 */
export class TeacherLogitMemo {
  private readonly rows = new Map<string, Float32Array>();
  private rowShape: number[] | undefined;
  private values = 0;

  /** Logit values kept at most (64 MB): a stream that never repeats an input only fills it, and then stops. */
  constructor(private readonly maxValues = 16 * 2 ** 20) {}

  /** Rows kept. */
  get size(): number {
    return this.rows.size;
  }

  /** The teacher's logits for `input` [rows, ...], as `predict` gives them; the caller owns the tensor. */
  logits(teacher: tf.LayersModel, input: tf.Tensor): tf.Tensor {
    const count = input.shape[0];
    const data = input.dataSync();
    const width = data.length / count;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const keys = Array.from({ length: count }, (_, r) =>
      crypto.createHash("sha1").update(bytes.subarray(r * width * data.BYTES_PER_ELEMENT, (r + 1) * width * data.BYTES_PER_ELEMENT)).digest("base64"));
    const known = keys.map((k) => this.rows.get(k));
    if (this.rowShape && known.every((v) => v !== undefined)) {
      const size = known[0]!.length;
      const out = new Float32Array(count * size);
      known.forEach((v, r) => out.set(v!, r * size));
      return tf.tensor(out, [count, ...this.rowShape]);
    }
    const logits = tf.tidy(() => teacher.predict(input) as tf.Tensor); // [rows, ...output shape]
    const values = logits.dataSync() as Float32Array;
    const size = values.length / count;
    this.rowShape = logits.shape.slice(1);
    keys.forEach((k, r) => {
      if (this.values + size > this.maxValues || this.rows.has(k)) return;
      this.rows.set(k, values.slice(r * size, (r + 1) * size));
      this.values += size;
    });
    return logits;
  }
}

export class DistillationTrainer extends DistillationBase {
  /**
   * Frozen teachers' logits computed once per item (TeacherLogitMemo); set false to run the
   * teacher on every batch (the same numbers, slower).
   */
  memoTeacher = true;
  private readonly memo = new TeacherLogitMemo();

  constructor(source: ModelSide, target: ModelSide, config: Partial<DistillationConfig>) {
    super("logit distillation", source, target, config);
  }

  protected stepOnce(): StepLosses {
    const source = this.requireSource();
    const sourceLoss = source.frozen ? undefined : stepSide(source.spec, source.weightDecay);
    const batch = this.target.spec.data.next();
    const teacherInput = sourceInputOf(this.config.pairedInput, batch);
    const teacher = source.frozen && this.memoTeacher
      ? this.memo.logits(source.spec.model, teacherInput)
      : tf.tidy(() => source.spec.model.predict(teacherInput) as tf.Tensor); // [rows, classes]
    releaseSourceInput(teacherInput, batch);
    const r = trainStep({ ...withMimicry(this.target.spec, teacher, this.config), weightDecay: this.target.weightDecay }, batch.x, batch.y);
    tf.dispose([batch.x, batch.y, teacher]);
    return { source: sourceLoss, target: r.loss };
  }
}

export class MutualLearningTrainer extends DistillationBase {
  constructor(source: ModelSide, target: ModelSide, config: Partial<DistillationConfig>) {
    if (config.freezeSource) throw new Error("deep mutual learning trains both models; a frozen source makes it logit distillation");
    super("deep mutual learning", source, target, config);
  }

  /**
   * Both models' logits on the target's batch are taken before either steps (the
   * simultaneous form of DML), so neither sees the other's post-step prediction. With a
   * pairing the source reads its own modality of the shared batch's items.
   */
  protected stepOnce(): StepLosses {
    const source = this.requireSource();
    const shared = this.target.spec.data.next();
    const sharedForSource = sourceInputOf(this.config.pairedInput, shared); // [rows, ...source input shape]
    const [sourceLogits, targetLogits] = tf.tidy(() => [
      source.spec.model.predict(sharedForSource) as tf.Tensor,
      this.target.spec.model.predict(shared.x) as tf.Tensor,
    ]);
    // The source: CE on its own batch, mimicry of the target on the shared batch.
    const own = source.spec.data.next();
    const sourceSide = this.mimicOnShared(source.spec, targetLogits, sharedForSource);
    const stacked = tf.concat([own.x, sharedForSource]); // [own rows + shared rows, ...source input shape]
    const s = trainStep({ ...sourceSide, weightDecay: source.weightDecay }, stacked, own.y);
    // The target: CE and mimicry on the same (its own) batch.
    const t = trainStep({ ...withMimicry(this.target.spec, sourceLogits, this.config), weightDecay: this.target.weightDecay }, shared.x, shared.y);
    releaseSourceInput(sharedForSource, shared);
    tf.dispose([own.x, own.y, stacked, shared.x, shared.y, sourceLogits, targetLogits]);
    return { source: s.loss, target: t.loss };
  }

  /**
   * The source's loss on [own batch ; shared batch] stacked: CE on the first rows (its own
   * labels), KL to the target's logits on the last rows.
   */
  private mimicOnShared(side: ModelSide, teacherLogits: tf.Tensor, sharedX: tf.Tensor): ModelSide {
    const sharedRows = sharedX.shape[0];
    const { alpha, temperature } = this.config;
    return {
      ...side,
      loss: (logits, labels) =>
        tf.tidy(() => {
          const ownRows = logits.shape[0] - sharedRows;
          const ownLogits = logits.slice(0, ownRows);
          const sharedLogits = logits.slice(ownRows, sharedRows);
          return tf.add(tf.mul(side.loss(ownLogits, labels), 1 - alpha), tf.mul(softKl(teacherLogits, sharedLogits, temperature), alpha)) as tf.Scalar;
        }),
    };
  }
}
