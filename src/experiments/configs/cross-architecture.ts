/**
 * Notebook 01's experiments, in one place: what is compared, on which budget, with which
 * seeds. Quick mode (`MERGENET_QUICK=1`) keeps every method but trains one seed briefly,
 * so CI checks the whole pipeline; its numbers are not results.
 */
import type { MethodSpec } from "../methods";
import { mergenet } from "./preset";
import { pick } from "../runner";
import { type ExperimentConfig } from "../records";
import { MAIN_SEEDS, narrowed } from "../verdicts";
import { IMAGE_PAIRS, type ImagePairOptions } from "../scenarios/cross-architecture";


/** Source pre-training epochs for the "(pre-trained source)" variants: 3, or 1 in quick mode. */
const pretrainEpochs = (): number => pick(1, 3);

/** The source's training images: 10,000, or 3,000 in quick mode (its pre-training is most of a quick run's time). */
const sourceImages = (): number => pick(3000, 10000);

/** CNN → MLP: every method of the issue, both kinds of layer pair, and their random-source controls. */
export function cnnToMlp(): ExperimentConfig {
  const pairs = IMAGE_PAIRS.mlp;
  const methods: MethodSpec[] = [
    { name: "target alone", kind: "target-alone" },
    { name: "source alone", kind: "source-alone" },
    { name: "naive sharing (copy)", kind: "sharing", sharing: { pairs: [pairs.released], mode: "copy", cycle: 2 } },
    { name: "naive sharing (average)", kind: "sharing", sharing: { pairs: [pairs.released], mode: "average", cycle: 2 } },
    { name: "logit KD", kind: "kd" },
    { name: "logit KD (pre-trained source)", kind: "kd", pretrainSourceEpochs: pretrainEpochs() },
    { name: "mutual learning", kind: "dml" },
    mergenet("MergeNet hypernet", pairs.released),
    mergenet("MergeNet exact", pairs.released, { rule: "exact" }),
    mergenet("control: random source", pairs.released, { sourceInput: "random" }),
    mergenet("control: exact, random source", pairs.released, { rule: "exact", sourceInput: "random" }),
    mergenet("MergeNet classifier pair", pairs.classifier),
    mergenet("control: classifier pair, random source", pairs.classifier, { sourceInput: "random" }),
    mergenet("MergeNet classifier pair (pre-trained source)", pairs.classifier, {}, { pretrainSourceEpochs: pretrainEpochs() }),
    // The matched control of the frozen-source variant: its random matrix takes the pre-trained weight's std.
    mergenet(
      "control: classifier pair (pre-trained source), random source",
      pairs.classifier,
      { sourceInput: "random" },
      { pretrainSourceEpochs: pretrainEpochs() },
    ),
  ];
  const options: ImagePairOptions = { dataset: "mnist", target: "mlp", sourceTrain: sourceImages(), targetTrain: 1000, testImages: testImages() };
  return { name: "01-cnn-to-mlp", scenario: "image-cnn-to-x", scenarioOptions: { ...options }, methods, epochs: pick(1, 20), seeds: pick([0], [0, 1, 2]) };
}

/**
 * The comparisons notebook 01 reports as its main results (and its one earlier candidate, the
 * exact rule), on MAIN_SEEDS: target alone, the distillation reference that sets δ, and each
 * MergeNet variant beside its matched control. The other methods keep three seeds.
 */
export const CNN_TO_MLP_MAIN = [
  "target alone", "logit KD (pre-trained source)",
  "MergeNet hypernet", "control: random source", "MergeNet exact", "control: exact, random source",
  "MergeNet classifier pair", "control: classifier pair, random source",
];
export const CNN_TO_VIT_MAIN = [
  "target alone", "logit KD (pre-trained source)",
  "MergeNet hypernet", "control: random source",
  "MergeNet classifier pair", "control: classifier pair, random source",
];

/** cnnToMlp narrowed to its main comparisons on ten seeds (one seed in quick mode). */
export function cnnToMlpMain(): ExperimentConfig {
  return narrowed(cnnToMlp(), CNN_TO_MLP_MAIN, pick([0], [...MAIN_SEEDS]));
}

/** cnnToVit narrowed to its main comparisons on ten seeds (one seed in quick mode). */
export function cnnToVitMain(): ExperimentConfig {
  return narrowed(cnnToVit(), CNN_TO_VIT_MAIN, pick([0], [...MAIN_SEEDS]));
}

/** Test images of both experiments (one item = 1/this of accuracy). */
export const testImages = (): number => pick(1000, 5000);

/** δ's fallback, should distillation gain nothing here. */
export const FALLBACK_DELTA = { delta: 0.005, reason: "half an accuracy point (distillation gains nothing here to scale it by)" };

/** CNN → small ViT: the main comparisons on a second architecture pair. */
export function cnnToVit(): ExperimentConfig {
  const pairs = IMAGE_PAIRS.vit;
  const methods: MethodSpec[] = [
    { name: "target alone", kind: "target-alone" },
    { name: "naive sharing (copy)", kind: "sharing", sharing: { pairs: [pairs.released], mode: "copy", cycle: 2 } },
    { name: "logit KD (pre-trained source)", kind: "kd", pretrainSourceEpochs: pretrainEpochs() },
    mergenet("MergeNet hypernet", pairs.released),
    mergenet("control: random source", pairs.released, { sourceInput: "random" }),
    mergenet("MergeNet classifier pair", pairs.classifier),
    mergenet("control: classifier pair, random source", pairs.classifier, { sourceInput: "random" }),
  ];
  const options: ImagePairOptions = { dataset: "mnist", target: "vit", sourceTrain: sourceImages(), targetTrain: 1000, testImages: testImages() };
  return { name: "01-cnn-to-vit", scenario: "image-cnn-to-x", scenarioOptions: { ...options }, methods, epochs: pick(1, 10), seeds: pick([0], [0, 1, 2]) };
}
