#!/usr/bin/env python3
"""Time the PyTorch copy of the network on one batch, as benches/train_step.rs times burn's.

Two measurements on the CPU in float32, each after untimed warm-up steps:
  extract  forward pass in eval mode without autograd, returning fc7 features
  train    forward, cross-entropy, backward and both SGD steps, in train mode

The network is Net from scripts/torch_reference.py, built for 1x28x28 images with the Sobel
front end, with dropout 0.5 added before fc6 and fc7 as in src/model/alexnet.rs. Batch size,
k, learning rate, momentum and weight decay are the training defaults of the Rust crate.
Pixels are uniform in [0, 1), normalised to zero mean and unit variance, and targets are
uniform cluster ids. Each measurement prints one line "RESULT torch NAME IMAGES_PER_S".

Usage: python scripts/bench_train_step.py [--threads N] [--width-multiplier X] [--steps N]
(needs torch, plus numpy and safetensors, which torch_reference.py imports)
"""

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_reference  # noqa: E402

IMAGE_SIZE = 28
BATCH_SIZE = 256
N_CLUSTERS = 100
DROPOUT = 0.5
LEARNING_RATE = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-5
SEED = 0


def env_default(name, fallback, value_type):
    """Return the environment variable name converted to value_type, or fallback if unset."""
    text = os.environ.get(name)
    if text is None:
        return fallback
    try:
        return value_type(text)
    except ValueError:
        kind = "an integer" if value_type is int else "a number"
        sys.exit(f"error: invalid {name}={text!r}; expected {kind}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op threads (torch.set_num_threads)"
    )
    parser.add_argument(
        "--width-multiplier",
        type=float,
        default=env_default("BENCH_WIDTH_MULTIPLIER", 0.5, float),
        help="multiplier on every layer's channel count (default: BENCH_WIDTH_MULTIPLIER or 0.5)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=env_default("BENCH_STEPS", 10, int),
        help="timed batches per measurement (default: BENCH_STEPS or 10)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=env_default("BENCH_WARMUP", 2, int),
        help="untimed batches before each measurement (default: BENCH_WARMUP or 2)",
    )
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"invalid --threads {args.threads}; use 1 or more")
    if not args.width_multiplier > 0:
        parser.error(f"invalid --width-multiplier {args.width_multiplier}; use a positive number")
    if args.steps < 1:
        parser.error(f"invalid --steps {args.steps}; time at least 1 step")
    if args.warmup < 0:
        parser.error(f"invalid --warmup {args.warmup}; use 0 or more")
    return args


def build_net(width_multiplier):
    """Build torch_reference.Net at this width and k, with dropout before fc6 and fc7."""
    # Net and scaled() read these module constants when the network is built, so setting them
    # first resizes the reference network without a second copy of its definition.
    torch_reference.WIDTH_MULTIPLIER = width_multiplier
    torch_reference.N_CLUSTERS = N_CLUSTERS
    net = torch_reference.Net()
    # The reference network has no dropout. Net.forward calls fc6 and fc7 on their inputs, so
    # prefixing each with Dropout gives alexnet.rs's order: dropout, linear, ReLU.
    net.fc6 = nn.Sequential(nn.Dropout(DROPOUT), net.fc6)
    net.fc7 = nn.Sequential(nn.Dropout(DROPOUT), net.fc7)
    with torch.no_grad():
        net.top.weight.normal_(0.0, torch_reference.TOP_LAYER_INIT_STD)
        net.top.bias.zero_()
    return net


def time_steps(warmup, steps, step):
    """Run warmup untimed calls of step, then steps timed ones, and return the timed seconds."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def report(name, steps, seconds):
    images_per_second = BATCH_SIZE * steps / seconds
    print(
        f"{name:<8} {images_per_second:>10.1f} images/s  ({steps} steps in {seconds:.3f} s, "
        f"{1000 * seconds / steps:.1f} ms/step)"
    )
    print(f"RESULT torch {name} {images_per_second:.1f}")


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    pixels = (rng.random((BATCH_SIZE, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32) - 0.5) / (
        np.float32(1.0 / 12.0) ** 0.5
    )
    images = torch.from_numpy(pixels)
    targets = torch.from_numpy(rng.integers(0, N_CLUSTERS, BATCH_SIZE))

    net = build_net(args.width_multiplier)
    print(
        f"bench_train_step.py: AlexNet + Sobel, 1x{IMAGE_SIZE}x{IMAGE_SIZE}, width multiplier "
        f"{args.width_multiplier}, k = {N_CLUSTERS}, batch {BATCH_SIZE}, {args.warmup} warm-up "
        f"+ {args.steps} timed steps, {torch.get_num_threads()} threads (torch "
        f"{torch.__version__})"
    )

    # Features are fc7's output. Without a top layer, Net.forward returns ReLU(fc7), so this
    # measurement runs one ReLU over [256, fc7 width] more than burn's forward_features.
    features_net = copy.deepcopy(net)
    features_net.top = nn.Identity()
    features_net.eval()

    def extract_step():
        with torch.inference_mode():
            features_net(images).numpy()

    report("extract", args.steps, time_steps(args.warmup, args.steps, extract_step))

    net.train()
    backbone_optimizer = torch.optim.SGD(
        net.backbone_parameters(),
        lr=LEARNING_RATE,
        momentum=MOMENTUM,
        dampening=0.0,
        weight_decay=WEIGHT_DECAY,
    )
    top_optimizer = torch.optim.SGD(
        net.top.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
    )
    losses = []

    def train_step():
        loss = F.cross_entropy(net(images), targets)
        backbone_optimizer.zero_grad()
        top_optimizer.zero_grad()
        loss.backward()
        backbone_optimizer.step()
        top_optimizer.step()
        losses.append(loss.item())

    report("train", args.steps, time_steps(args.warmup, args.steps, train_step))
    print(f"last training loss: {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
