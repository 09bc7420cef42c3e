import { MergeNetTrainer, accuracyEvaluator, batchStream, cnn, initBackend, loadImageDataset, mlp, momentum, sparseCrossEntropy, tf } from "../src";

async function main(): Promise<void> {
  await initBackend();
  const mnist = await loadImageDataset("mnist", { trainLimit: 2000, testLimit: 2000, seed: 0 });
  const side = (model: tf.LayersModel, seed: number) => ({
    model, optimizer: momentum(0.05, 0.9), weightDecay: 5e-4, loss: sparseCrossEntropy,
    data: batchStream(mnist.train.x, mnist.train.y, { batchSize: 64, seed }),
    evaluate: accuracyEvaluator(mnist.test.x, mnist.test.y),
  });
  const source = side(cnn({ inputShape: [28, 28, 1], classes: 10, seed: 1 }), 1);
  const target = side(mlp({ inputShape: [28, 28, 1], hidden: [256, 128], classes: 10, seed: 2 }), 2);
  const trainer = new MergeNetTrainer(source, target, {
    pairs: [{ source: "classifier/kernel", target: "fc2/kernel" }], // [10,128] -> [128,256] as [out, in]
    cycle: 2, rule: "hypernet", output: "interp", seed: 0,
  });
  await trainer.fit(2, (e) => console.log(`epoch ${e.epoch}: source ${e.source.accuracy.toFixed(3)}, target ${e.target.accuracy.toFixed(3)}`));
}

main();
