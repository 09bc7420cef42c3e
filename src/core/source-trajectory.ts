/**
 * A source's training, recorded once and replayed. In a run where nothing flows back into the
 * source (MergeNet one-way, the "pair" baseline), the source trains on its own seeded stream and
 * its weights after each step do not depend on the target or on the method. So the methods of one
 * seed can share one training of the source: the first run records, after every source step, the
 * values of the source weights the method reads (the adapter's pairs), the step's loss and the
 * source's metrics where it was evaluated; the others replay that record instead of stepping the
 * source. A replayed run computes the same numbers as a trained one (test/source-trajectory.test.ts
 * checks this to the last bit), for the cost of one assignment per recorded weight per step.
 *
 * Only the recorded weights follow the trajectory; every other source weight stays where the
 * model was built. So a replayed source can only be read through those weights: its metrics come
 * from the record, and the trainer refuses to replay for a method that reads anything else.
 */
import { tf } from "../backend/index";

/** What one recorded training of a source holds. */
export interface SourceTrajectory {
  /** Weights recorded (their `originalName`s, as `model.weights` lists them), with shapes. */
  weights: { name: string; shape: number[] }[];
  /** values[w][k]: weight w after the source's step k (k = 0 .. steps − 1), flattened. */
  values: Float32Array[][];
  /** The source's loss at each step (float32 values, as the loop read them). */
  losses: number[];
  /** The source's metrics at the epochs where it was evaluated (epoch index → metrics). */
  metrics: Record<number, Record<string, number>>;
}

/** The model's weights of these `originalName`s, in order; an error naming the model's weights where one is missing. */
export function weightsByName(model: tf.LayersModel, names: string[], what: string): tf.LayerVariable[] {
  const all = new Map(model.weights.map((w) => [w.originalName, w]));
  return names.map((name) => {
    const w = all.get(name);
    if (!w) throw new Error(`${what}: the source model has no weight '${name}'; its weights are ${[...all.keys()].join(", ")}`);
    return w;
  });
}

/** Copies the named source weights after each source step. */
export class TrajectoryRecorder {
  private readonly variables: tf.LayerVariable[];
  private readonly values: Float32Array[][];
  private steps = 0;

  /** `names` may be empty: a trainer that reads no source weight records only losses and metrics. */
  constructor(model: tf.LayersModel, private readonly names: string[]) {
    this.variables = weightsByName(model, names, "recording a source trajectory");
    this.values = names.map(() => []);
  }

  /** Called right after the source's step number `step` (0-based) has updated its weights. */
  stepped(step: number): void {
    if (step !== this.steps) throw new Error(`internal: source step ${step} recorded after ${this.steps} steps`);
    this.variables.forEach((v, i) => this.values[i].push((v.read().dataSync() as Float32Array).slice())); // a copy: the backend may reuse its buffer
    this.steps += 1;
  }

  /** The record, given the loop's per-step source losses and its epoch records. */
  finish(losses: number[], epochs: { epoch: number; source: Record<string, number> }[]): SourceTrajectory {
    const steps = this.steps;
    if (losses.length !== steps) throw new Error(`internal: ${losses.length} source losses for ${steps} recorded steps`);
    const metrics: Record<number, Record<string, number>> = {};
    for (const e of epochs) if (Object.keys(e.source).length > 0) metrics[e.epoch] = { ...e.source };
    return {
      weights: this.variables.map((v, i) => ({ name: this.names[i], shape: v.shape.map(Number) })),
      values: this.values.map((list) => list.slice()),
      losses: losses.slice(),
      metrics,
    };
  }
}

/** Puts a recorded trajectory's weights into the source model, step by step. */
export class TrajectoryPlayer {
  private readonly variables: tf.LayerVariable[];

  constructor(model: tf.LayersModel, readonly trajectory: SourceTrajectory) {
    this.variables = weightsByName(model, trajectory.weights.map((w) => w.name), "replaying a source trajectory");
    this.variables.forEach((v, i) => {
      const want = trajectory.weights[i].shape;
      if (JSON.stringify(v.shape.map(Number)) !== JSON.stringify(want)) {
        throw new Error(`replaying a source trajectory: weight '${trajectory.weights[i].name}' is [${v.shape}] in the model and [${want}] in the record; record with the same source model`);
      }
    });
  }

  /** The weights the record covers (what a replayed source can be read through). */
  get names(): string[] {
    return this.trajectory.weights.map((w) => w.name);
  }

  /** The source's step number `step`: its recorded weights written, its recorded loss returned. */
  step(step: number): tf.Scalar {
    if (step >= this.trajectory.losses.length) {
      throw new Error(`the recorded source trajectory covers ${this.trajectory.losses.length} steps; step ${step} is beyond it (record a run at least as long)`);
    }
    this.variables.forEach((v, i) => {
      const value = tf.tensor(this.trajectory.values[i][step], this.trajectory.weights[i].shape, "float32");
      v.write(value);
      value.dispose();
    });
    return tf.scalar(this.trajectory.losses[step], "float32");
  }

  /** The recorded metrics of epoch `epoch`; an error where the record has none. */
  metrics(epoch: number): Record<string, number> {
    const m = this.trajectory.metrics[epoch];
    if (!m) {
      const have = Object.keys(this.trajectory.metrics).join(", ") || "none";
      throw new Error(`the recorded source trajectory holds the source's metrics for epochs ${have}, not epoch ${epoch}; evaluate the source at the same epochs as the recording run`);
    }
    return { ...m };
  }
}
