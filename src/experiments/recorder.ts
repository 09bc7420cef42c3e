/**
 * What a run records of its target's weights (RecordingConfig.weights, notebook 04): each
 * named weight's [out, in] view before training and after, as singular values, and for
 * trajectory runs the whole view after every epoch.
 */
import { tf } from "../backend/index";
import { paramRef, readMatrix } from "../core/params";
import { singularValues } from "./analysis";
import type { WeightRecord } from "./records";

/** Recorded weights and singular values are rounded to 1 / RECORD_SCALE (weights are about 1e-2: four significant digits kept). */
const RECORD_SCALE = 1e6;

/** Each named weight of `model` now, as its [out, in] view: shape and rows. */
function readWeights(model: tf.LayersModel, names: string[]): Record<string, { shape: [number, number]; rows: number[][] }> {
  return Object.fromEntries(
    names.map((name) => {
      const matrix = readMatrix(paramRef(model, name)); // [out, in]
      const read = { shape: matrix.shape, rows: matrix.arraySync() };
      matrix.dispose();
      return [name, read];
    }),
  );
}

const rounded = (v: number): number => Math.round(v * RECORD_SCALE) / RECORD_SCALE;
const spectrum = (rows: number[][]): number[] => singularValues(rows).map(rounded);
const flatValues = (rows: number[][]): number[] => rows.flat().map(rounded);

/** Reads the weights at its construction (before training), after each epoch where asked, and at finish(). */
export class WeightRecorder {
  private readonly before: Record<string, { shape: [number, number]; rows: number[][] }>;
  private readonly trajectories: Map<string, number[][]>;

  /** `names`: the weights (`layer/weight`) of `model` to record; `trajectory`: also after every epoch. */
  constructor(private readonly model: tf.LayersModel, private readonly names: string[], trajectory: boolean) {
    this.before = readWeights(model, names);
    this.trajectories = new Map(trajectory ? Object.entries(this.before).map(([name, w]) => [name, [flatValues(w.rows)]]) : []);
  }

  /** After each epoch: the trajectories' next point (nothing when no trajectory is recorded). */
  epochEnded(): void {
    for (const [name, w] of Object.entries(readWeights(this.model, [...this.trajectories.keys()]))) this.trajectories.get(name)?.push(flatValues(w.rows));
  }

  /** After the last epoch: each weight's record (undefined when no weight is recorded). */
  finish(): Record<string, WeightRecord> | undefined {
    const after = readWeights(this.model, this.names);
    const { before } = this;
    if (!this.names.length) return undefined;
    const record = (name: string): WeightRecord => ({
      shape: before[name].shape,
      singularValues: { before: spectrum(before[name].rows), after: spectrum(after[name].rows) },
      trajectory: this.trajectories.get(name),
    });
    return Object.fromEntries(this.names.map((name) => [name, record(name)]));
  }
}
