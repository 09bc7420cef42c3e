"""PyTorch reference for bench-mnist's two model modes (issue 16's targets are ratios to it).

Trains the same models on the same shapes as `npm run bench` (src/experiments/bench-mnist.ts):
the MLP 784-256-128-10 alone ("target-alone"), and the CNN (conv3x3 32, pool, conv3x3 64, pool,
dense 128, dense 10) with the MLP, one step each per global step ("pair"); SGD lr 0.05, momentum
0.9, weight decay 5e-4; softmax cross-entropy; 10,000 samples in batches of 64 (157 steps per
epoch, the last batch partial). The images are random numbers in [0, 1) rather than MNIST (the
time of these ops does not depend on the values). Per mode: one warm-up epoch, then N timed
epochs; prints the median epoch time and samples per second, as JSON with --json.

Not part of the project's dependencies: PyTorch is needed only to run this. On the project's
machine a CPU wheel is in /opt/wheels:
  python3 -m venv /tmp/torchenv
  /tmp/torchenv/bin/pip install --no-deps --no-index /opt/wheels/torch-*.whl
  /tmp/torchenv/bin/python scripts/bench_pytorch.py --threads 2
"""

import argparse
import json
import os
import statistics
import time

import torch
from torch import nn

SAMPLES = 10_000
BATCH = 64


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def side(model: nn.Module):
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def epoch(sides, x, y) -> float:
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for i in range(0, SAMPLES, BATCH):
        xb, yb = x[i:i + BATCH], y[i:i + BATCH]
        for model, opt in sides:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch.set_num_threads (default: PyTorch's, all cores)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per mode (median reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(SAMPLES, 1, 28, 28)
    y = torch.randint(0, 10, (SAMPLES,))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "samples": SAMPLES, "batch": BATCH,
           "load_average_start": [round(v, 2) for v in os.getloadavg()], "modes": {}}
    for mode in ("target-alone", "pair"):
        sides = [side(mlp())] if mode == "target-alone" else [side(cnn()), side(mlp())]
        epoch(sides, x, y)  # warm-up
        times = [epoch(sides, x, y) for _ in range(args.epochs)]
        med = statistics.median(times)
        out["modes"][mode] = {"epoch_s": round(med, 3), "samples_per_s": round(SAMPLES / med, 1), "epochs_s": [round(t, 3) for t in times]}
    out["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    if args.json:
        print(json.dumps(out))
        return
    print(f"PyTorch {out['torch']}, {out['threads']} thread(s), {SAMPLES} samples, batch {BATCH}, median of {args.epochs}; load average at start {out['load_average_start']}")
    for mode, m in out["modes"].items():
        print(f"  {mode:13s} {m['epoch_s']:.3f} s/epoch  {m['samples_per_s']:.0f} samples/s")
    print(f"load average at end {out['load_average_end']}")


if __name__ == "__main__":
    main()
