#!/usr/bin/env python3
"""The network a resist run trained, in plain PyTorch: rebuild it, load model.pt, evaluate it.

    /usr/bin/python3 analysis/resist_model.py --run DIR [--data-dir D] [--eval-batch N] [--threads T]

reads DIR/schedule.json (the model the run describes), DIR/report.json (test
images, threads, evaluation batch) and DIR/model.pt, evaluates the network on
the run's test images in the run's order and batches, and prints
{"test_accuracy": ...} -- the same number as report.json's.

The networks are models/spec.cpp's, module for module, with the same
parameter names, so `load_state_dict(torch.load("model.pt"))` fits exactly:
  preact-resnet{18,34,50,101,152,200}: a stem conv (3x3/1 without bias; on
    imagenet 7x7/2 + 3x3/2 max-pool), four sections of pre-activation blocks
    (basic: BN-ReLU-conv3x3 twice; bottleneck: BN-ReLU-conv1x1, BN-ReLU-conv3x3,
    BN-ReLU-conv1x1 to 4x the width), the first block of sections 2-4 strided,
    a 1x1 shortcut conv (no bias) on the pre-activated input when the shape
    changes; no BN after the last section; global average pool + linear.
  mlp: linear + BatchNorm1d + ReLU per hidden layer, then a linear layer.
BatchNorm keeps no running statistics: batch statistics at train and test
time, as resist does, so the accuracy depends on the evaluation batches.

A partitioned residual branch is scaled at inference by the schedule's
eval_scale. A model.pt whose report says "model_pt": {"eval_scale": "folded"}
holds the scale in each branch's last convolution already (a plain network);
older runs' model.pt holds unscaled weights, and the scale is applied here.

As a library (sys.path: analysis/):
    from resist_model import build, load_run
    net = build(schedule["config"]["model"])      # the architecture alone
    net, run = load_run("DIR")                      # with the run's weights, ready to evaluate
"""
import argparse
import gzip
import json
import os
import struct
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("resist_model.py: PyTorch is not installed for " + sys.executable, file=sys.stderr)
    sys.exit(77)

# name: (channels, height, width, classes), as models/spec.cpp
DATASETS = {"cifar10": (3, 32, 32, 10), "cifar100": (3, 32, 32, 100),
            "fashion-mnist": (1, 28, 28, 10), "imagenet": (3, 224, 224, 1000)}
DEPTHS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
          152: [3, 8, 36, 3], 200: [3, 24, 36, 3]}
# Per-channel mean and standard deviation on the 0..1 scale, as runtime/data.cpp.
NORMALISE = {"fashion-mnist": ([0.2860], [0.3530]),
             "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
             "cifar100": ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762])}


class UserError(Exception):
    pass


def conv(cin, cout, k, stride):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


def bn2d(c):
    return nn.BatchNorm2d(c, track_running_stats=False)


class Stem(nn.Module):
    def __init__(self, cin, cout, imagenet):
        super().__init__()
        self.conv = conv(cin, cout, 7 if imagenet else 3, 2 if imagenet else 1)
        self.maxpool = imagenet

    def forward(self, x):
        x = self.conv(x)
        return F.max_pool2d(x, 3, 2, 1) if self.maxpool else x


class PreActBlock(nn.Module):
    """out = shortcut(x) + branch_scale * branch(x); the branch is (BN-ReLU-conv) x 2 or 3."""

    def __init__(self, cin, width, stride, bottleneck):
        super().__init__()
        cout = 4 * width if bottleneck else width
        if bottleneck:
            layers = [(cin, width, 1, 1), (width, width, 3, stride), (width, cout, 1, 1)]
        else:
            layers = [(cin, width, 3, stride), (width, width, 3, 1)]
        for i, (a, b, k, s) in enumerate(layers, start=1):
            self.add_module("bn%d" % i, bn2d(a))
            self.add_module("conv%d" % i, conv(a, b, k, s))
        self.depth = len(layers)
        self.shortcut = conv(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None
        self.out_channels = cout
        self.branch_scale = 1.0

    def forward(self, x):
        out = F.relu(self.bn1(x))
        identity = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        for i in range(2, self.depth + 1):
            out = getattr(self, "conv%d" % i)(F.relu(getattr(self, "bn%d" % i)(out)))
        return identity + out if self.branch_scale == 1.0 else identity + out * self.branch_scale

    def last_conv(self):
        return getattr(self, "conv%d" % self.depth)


class Head(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Dense(nn.Module):
    def __init__(self, cin, cout, hidden):
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        self.bn = nn.BatchNorm1d(cout, track_running_stats=False) if hidden else None

    def forward(self, x):
        x = self.linear(torch.flatten(x, 1) if x.dim() > 2 else x)
        return F.relu(self.bn(x)) if self.bn is not None else x


class ResistNet(nn.Module):
    """Blocks in spec order; `blocks` lists them as (spec name, module), like the spec's block indices."""

    def __init__(self):
        super().__init__()
        self.blocks = []

    def add_block(self, name, module):
        if "." in name:
            section, index = name.split(".")
            if not hasattr(self, section):
                self.add_module(section, nn.Module())
            getattr(self, section).add_module(index, module)
        else:
            self.add_module(name, module)
        self.blocks.append((name, module))

    def forward(self, x):
        for _, block in self.blocks:
            x = block(x)
        return x


def build(model):
    """The network of a ModelOptions dict (schedule.json's config.model)."""
    name, dataset = model["model"], model["dataset"]
    if dataset not in DATASETS:
        raise UserError("model.dataset: unknown dataset '%s' (accepted: %s)" % (dataset, ", ".join(DATASETS)))
    channels, height, width, classes = DATASETS[dataset]
    net = ResistNet()
    if name == "mlp":
        cin = model.get("input") or channels * height * width
        for i, h in enumerate(model["hidden"], start=1):
            net.add_block("fc%d" % i, Dense(cin, h, hidden=True))
            cin = h
        net.add_block("out", Dense(cin, model.get("classes") or classes, hidden=False))
        return net
    depth = int(name[len("preact-resnet"):]) if name.startswith("preact-resnet") else None
    if depth not in DEPTHS:
        raise UserError("model.model: unknown model '%s' (accepted: preact-resnet%s, mlp)"
                        % (name, "|".join(map(str, DEPTHS))))
    block = model.get("block") or ("bottleneck" if depth >= 50 else "basic")
    if block not in ("basic", "bottleneck"):
        raise UserError("model.block: unknown block type '%s' (accepted: basic, bottleneck)" % block)
    w = model["base_width"]
    net.add_block("stem", Stem(channels, w, dataset == "imagenet"))
    cin = w
    for s, n in enumerate(DEPTHS[depth]):
        for i in range(n):
            b = PreActBlock(cin, w << s, 2 if (s > 0 and i == 0) else 1, block == "bottleneck")
            net.add_block("layer%d.%d" % (s + 1, i), b)
            cin = b.out_channels
    net.add_block("head", Head(cin, classes))
    return net


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise UserError("--run: cannot read %s (%s)" % (path, e.strerror))
    except ValueError as e:
        raise UserError("--run: %s is not JSON (%s)" % (path, e))


def load_run(run_dir):
    """(network with the run's model.pt loaded and its inference scaling applied, the run's files as dicts)."""
    schedule = _read_json(os.path.join(run_dir, "schedule.json"))
    report = _read_json(os.path.join(run_dir, "report.json"))
    net = build(schedule["config"]["model"])
    path = os.path.join(run_dir, "model.pt")
    if not os.path.exists(path):
        raise UserError("--run: %s not found" % path)
    state = torch.load(path)
    missing = set(net.state_dict()) ^ set(state)
    if missing:
        raise UserError("--run: %s does not fit the network schedule.json describes (%s)"
                        % (path, ", ".join(sorted(missing)[:3])))
    net.load_state_dict(state)
    folded = report.get("model_pt", {}).get("eval_scale") == "folded"
    if not folded:
        for (name, block), scale in zip(net.blocks, schedule["eval_scale"]):
            if isinstance(block, PreActBlock):
                block.branch_scale = float(scale)
    return net, {"schedule": schedule, "report": report}


def _read_idx(path, ndim):
    if not os.path.exists(path):
        raise UserError("dataset file not found: " + path)
    with gzip.open(path, "rb") as f:
        data = f.read()
    shape = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


def _read_cifar(path, label_bytes):
    if not os.path.exists(path):
        raise UserError("dataset file not found: " + path)
    with open(path, "rb") as f:
        raw = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    raw = raw.reshape(-1, label_bytes + 3072)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32), raw[:, label_bytes - 1].long()


def test_split(dataset, data_dir=None):
    """The test images (uint8 [N, C, H, W]) and labels, read as runtime/data.cpp reads them."""
    if dataset == "fashion-mnist":
        d = data_dir or "/usr/share/datasets/fashion-mnist"
        images = _read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"), 3).unsqueeze(1)
        labels = _read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"), 1).long()
        return images, labels
    if dataset == "cifar10":
        return _read_cifar(os.path.join(data_dir or "data/cifar-10-batches-bin", "test_batch.bin"), 1)
    if dataset == "cifar100":
        return _read_cifar(os.path.join(data_dir or "data/cifar-100-binary", "test.bin"), 2)
    raise UserError("the test images of '%s' are not readable here (fashion-mnist, cifar10, cifar100)" % dataset)


def normalise(dataset, images_u8):
    mean, std = NORMALISE[dataset]
    shape = (1, len(mean), 1, 1)
    x = images_u8.to(torch.float32).div_(255.0)
    return x.sub_(torch.tensor(mean, dtype=torch.float32).view(shape)).div_(
        torch.tensor(std, dtype=torch.float32).view(shape))


@torch.no_grad()
def accuracy(net, dataset, images, labels, eval_batch):
    """Top-1 accuracy over the images in order, in batches of eval_batch (BatchNorm uses each batch's statistics)."""
    net.eval()
    correct = 0
    for lo in range(0, len(labels), eval_batch):
        x = normalise(dataset, images[lo:lo + eval_batch])
        correct += int(net(x).argmax(1).eq(labels[lo:lo + eval_batch]).sum())
    return correct / len(labels) if len(labels) else 0.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a resist-train --out directory")
    p.add_argument("--data-dir", help="dataset directory (default: the run's, else the dataset's default)")
    p.add_argument("--eval-batch", type=int, help="evaluation batch size (default: the run's, else 256)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: the run's)")
    a = p.parse_args(argv)
    try:
        net, run = load_run(a.run)
        report, model = run["report"], run["schedule"]["config"]["model"]
        eval_batch = a.eval_batch or report.get("eval_batch", 256)
        if eval_batch < 1:
            raise UserError("--eval-batch: must be >= 1 (got %d)" % eval_batch)
        threads = a.threads or report.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        images, labels = test_split(model["dataset"], a.data_dir or report.get("data_dir") or None)
        n = int(report.get("test_images", len(labels)))
        acc = accuracy(net, model["dataset"], images[:n], labels[:n], eval_batch)
    except UserError as e:
        print("resist_model.py: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps({"test_accuracy": acc, "test_images": n, "eval_batch": eval_batch}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
