/**
 * The interface a batch stream implements, owned by the core that reads it: the joint loop
 * (loop.ts) and the baselines draw batches through it, and check a side's data against its
 * model through it. data/batches.ts implements it (structurally: data/ imports nothing of
 * core/), as do the scenarios' own streams.
 */
import type { tf } from "../backend/index";

export interface Batch {
  x: tf.Tensor;
  y: tf.Tensor;
}

export interface BatchStream {
  /** Number of examples. */
  readonly size: number;
  readonly batchSize: number;
  /** Batches per epoch (the last partial batch is kept). */
  readonly batchesPerEpoch: number;
  /** The next batch; the caller disposes its tensors. Wraps to a new epoch by itself. */
  next(): Batch;
  /** Where the stream is, to save in a checkpoint. */
  position(): { epoch: number; index: number };
  /** Moves to a saved position (re-creates that epoch's permutation from the seed). */
  seek(position: { epoch: number; index: number }): void;
  /** Checks the stream's examples against the model that reads them (data/check.ts), once; a stream without it is not checked. */
  check?(expect: DataExpectation): void;
}

/** What a loss reads as labels; losses declare it (losses.ts declareLabels). */
export interface LabelSpec {
  /** `example`: one class index per example, labels [n]. `token`: one per token, labels [n, length], negative = padding. */
  per: "example" | "token";
}

export interface DataExpectation {
  /** Names the data in messages, e.g. "the target's training data". */
  name: string;
  /** The model's input shape, batch axis first (model.inputs[0].shape). */
  inputShape: (number | null)[];
  /** The model's output shape, batch axis first: its last axis is the class count. */
  outputShape: (number | null)[];
  /** Undefined: the labels are not checked (a loss that declares nothing). */
  labels?: LabelSpec;
}

/**
 * Item pairing between two modalities, for cross-modal distillation: the source model's input
 * for the very items of a target batch. Only this direction is needed: both KD and DML compare
 * the two models on the TARGET's batch, so each model keeps the data it sees under every other
 * method.
 */
export interface PairedInput {
  /**
   * The source's input [rows, ...source input shape] for the items of `targetBatch`, in the
   * batch's row order; `targetBatch` is the object the target's stream handed out. The
   * returned tensor belongs to the caller.
   */
  sourceInputFor(targetBatch: Batch): tf.Tensor;
}
