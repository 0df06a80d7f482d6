#!/usr/bin/env python3
"""Write tests/fixtures/torch_reference/: initial weights and PyTorch's first SGD losses.

The network is the same as src/model/alexnet.rs with the Sobel front end and the top layer, for
1x28x28 images at width multiplier 0.125 with 10 clusters and no dropout. The script draws
seeded initial weights and saves them under burn's tensor names and layouts. It then trains on
one fixed batch, the first 32 images of the Fashion-MNIST test split with their true labels,
and records each step's loss. tests/torch_reference.rs repeats these steps with burn.

The steps run twice: in float32, which the Rust test compares against, and in float64, whose
gap to float32 measures the rounding noise that bounds the test's tolerance.

Usage: python scripts/torch_reference.py [OUTPUT_DIR]  (needs torch, safetensors, numpy; run
from the repository root)
"""

import copy
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

SEED = 0
IN_CHANNELS = 1
IMAGE_SIZE = 28
WIDTH_MULTIPLIER = 0.125
N_CLUSTERS = 10
BATCH_SIZE = 32
N_STEPS = 5
LEARNING_RATE = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-5
NORMALIZE_MEAN = 0.2860
NORMALIZE_STD = 0.3530
TOP_LAYER_INIT_STD = 0.01

# The same tables as src/model/alexnet.rs.
CONV_CHANNELS = [64, 192, 384, 256, 256]
KERNEL_SIZES = [5, 5, 3, 3, 3]
POOL_AFTER = [True, True, False, False, True]
FC_WIDTH = 2048

DATA_DIR = Path("data/fashion-mnist")


def scaled(channels):
    """Scale a channel count as alexnet.rs does: round half away from zero, at least 1."""
    return max(1, int(np.floor(channels * np.float32(WIDTH_MULTIPLIER) + 0.5)))


class Sobel(nn.Module):
    """Fixed Sobel x and y filters over a one-channel image, zero-padded by one pixel."""

    def __init__(self):
        super().__init__()
        weight = torch.tensor(
            [
                [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
                [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],
            ]
        ).unsqueeze(1)
        self.register_buffer("weight", weight)

    def forward(self, images):
        return F.conv2d(images, self.weight, padding=1)


class Net(nn.Module):
    """AlexNet with batch norm as in alexnet.rs, plus the ReLU and top layer of mod.rs."""

    def __init__(self):
        super().__init__()
        self.sobel = Sobel()
        blocks = []
        in_channels = 2
        size = IMAGE_SIZE
        for out, kernel, pool in zip(CONV_CHANNELS, KERNEL_SIZES, POOL_AFTER):
            out = scaled(out)
            layers = [
                nn.Conv2d(in_channels, out, kernel, padding=kernel // 2),
                nn.BatchNorm2d(out, eps=1e-5, momentum=0.1),
                nn.ReLU(),
            ]
            if pool:
                layers.append(nn.MaxPool2d(2, 2))
                size //= 2
            blocks.append(nn.Sequential(*layers))
            in_channels = out
        self.blocks = nn.ModuleList(blocks)
        fc_width = scaled(FC_WIDTH)
        # Dropout is 0 in this configuration, so it is left out.
        self.fc6 = nn.Linear(in_channels * size * size, fc_width)
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.top = nn.Linear(fc_width, N_CLUSTERS)

    def forward(self, images):
        x = self.sobel(images)
        for block in self.blocks:
            x = block(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc6(x))
        x = F.relu(self.fc7(x))
        return self.top(x)

    def backbone_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("top.")]


def init_weights(net):
    """Draw seeded weights: PyTorch's default conv and linear init, random batch-norm affine
    parameters (so a swapped gamma and beta would show), and the top layer of mod.rs."""
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(0.2 * torch.rand(module.bias.shape, generator=generator) - 0.1)
    with torch.no_grad():
        net.top.weight.normal_(0.0, TOP_LAYER_INIT_STD, generator=generator)
        net.top.bias.zero_()


def burn_state_dict(net):
    """Return the weights under burn's names, with Linear weights as [d_input, d_output]."""
    state = {}
    for index, block in enumerate(net.blocks):
        conv, norm = block[0], block[1]
        prefix = f"backbone.Alexnet.blocks.{index}"
        state[f"{prefix}.conv.weight"] = conv.weight
        state[f"{prefix}.conv.bias"] = conv.bias
        state[f"{prefix}.norm.gamma"] = norm.weight
        state[f"{prefix}.norm.beta"] = norm.bias
        state[f"{prefix}.norm.running_mean"] = norm.running_mean
        state[f"{prefix}.norm.running_var"] = norm.running_var
    linears = {"backbone.Alexnet.fc6": net.fc6, "backbone.Alexnet.fc7": net.fc7, "top": net.top}
    for prefix, linear in linears.items():
        state[f"{prefix}.weight"] = linear.weight.t()
        state[f"{prefix}.bias"] = linear.bias
    return {name: t.detach().to(torch.float32).contiguous() for name, t in state.items()}


def read_idx(path):
    """Read a gzipped IDX file into a uint8 array of its declared shape."""
    data = gzip.decompress(path.read_bytes())
    n_dims = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(dims)


def load_batch():
    """Return the first BATCH_SIZE test images, normalised in float32 as preprocess.rs does,
    and their labels."""
    images = read_idx(DATA_DIR / "t10k-images-idx3-ubyte.gz")[:BATCH_SIZE]
    labels = read_idx(DATA_DIR / "t10k-labels-idx1-ubyte.gz")[:BATCH_SIZE]
    pixels = images.astype(np.float32) / np.float32(255.0)
    pixels = (pixels - np.float32(NORMALIZE_MEAN)) / np.float32(NORMALIZE_STD)
    images = torch.from_numpy(pixels).reshape(BATCH_SIZE, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    return images, torch.from_numpy(labels.astype(np.int64))


def train_losses(net, images, targets):
    """Run N_STEPS SGD steps on one batch in train mode and return each step's loss."""
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
    for _ in range(N_STEPS):
        loss = F.cross_entropy(net(images), targets)
        backbone_optimizer.zero_grad()
        top_optimizer.zero_grad()
        loss.backward()
        backbone_optimizer.step()
        top_optimizer.step()
        losses.append(loss.item())
    return losses


def main():
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/torch_reference")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    net = Net()
    init_weights(net)
    save_file(burn_state_dict(net), str(out_dir / "init.safetensors"))

    images, targets = load_batch()
    net64 = copy.deepcopy(net).double()
    losses32 = train_losses(net, images, targets)
    losses64 = train_losses(net64, images.double(), targets)

    result = {
        "description": "PyTorch cross-entropy losses of the first SGD steps on one fixed batch, "
        "from the weights in init.safetensors",
        "losses": losses32,
        "losses_float64": losses64,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "safetensors_version": safetensors.__version__,
        "settings": {
            "seed": SEED,
            "in_channels": IN_CHANNELS,
            "height": IMAGE_SIZE,
            "width": IMAGE_SIZE,
            "sobel": True,
            "width_multiplier": WIDTH_MULTIPLIER,
            "n_clusters": N_CLUSTERS,
            "dropout": 0.0,
            "batch": f"first {BATCH_SIZE} images of the Fashion-MNIST test split",
            "targets": "true labels",
            "normalize_mean": NORMALIZE_MEAN,
            "normalize_std": NORMALIZE_STD,
            "n_steps": N_STEPS,
            "learning_rate": LEARNING_RATE,
            "backbone_optimizer": f"SGD momentum {MOMENTUM} dampening 0 "
            f"weight decay {WEIGHT_DECAY}",
            "top_optimizer": f"SGD without momentum, weight decay {WEIGHT_DECAY}",
            "batch_norm": "train mode (batch statistics), eps 1e-5",
        },
    }
    (out_dir / "losses.json").write_text(json.dumps(result, indent=2) + "\n")
    for step, (a, b) in enumerate(zip(losses32, losses64), start=1):
        print(f"step {step}: float32 {a:.7f} float64 {b:.7f} rel gap {abs(a - b) / b:.2e}")


if __name__ == "__main__":
    main()
