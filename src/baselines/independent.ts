/**
 * Baselines with no coupling between the models:
 *  - target alone: the target on its own, same schedule as every other method;
 *  - pair: source and target trained side by side, nothing exchanged (the cost baseline
 *    for MergeNet's overhead, and what MergeNet reduces to with its adapter switched off).
 */
import { tf } from "../backend/index";
import { JointLoop, type ModelSide, type StepLosses } from "../core/loop";
import { trainStep } from "../core/step";

export class IndependentTrainer extends JointLoop {
  /** `source` undefined: target alone. A frozen source is carried along and never steps. */
  constructor(source: ModelSide | undefined, target: ModelSide, opts: { freezeSource?: boolean } = {}) {
    super(source, target, opts);
  }

  /** Side by side, nothing passes between the models: the source's training is its own. */
  protected override sourceTrainsAlone(): boolean {
    return true;
  }

  protected stepOnce(): StepLosses {
    let sourceLoss: tf.Scalar | undefined;
    const source = this.source;
    if (source && !source.frozen) {
      sourceLoss = this.replayedSourceStep();
      if (!sourceLoss) {
        sourceLoss = this.timed("source_step", () => stepSide(source.spec, source.weightDecay));
        this.sourceStepped();
      }
    }
    return { source: sourceLoss, target: this.timed("target_step", () => stepSide(this.target.spec, this.target.weightDecay)) };
  }
}

/** One plain step of a side on its own next batch; returns the loss. */
export function stepSide(side: ModelSide, weightDecay: number): tf.Scalar {
  const batch = side.data.next();
  const result = trainStep({ ...side, weightDecay }, batch.x, batch.y);
  tf.dispose([batch.x, batch.y]);
  return result.loss;
}
