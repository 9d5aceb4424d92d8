#!/usr/bin/python3
"""The data pipeline against torchvision's, on the same image folder.

For each worker count W, alternating R times (so that both see the same
machine load): build/runtime/bench/resist-bench-loader with W decoder threads,
then torchvision's ImageFolder + DataLoader with W worker processes, both with
the training transforms RandomResizedCrop(size) + RandomHorizontalFlip +
ToTensor + Normalize(ImageNet mean/std), batch B. Each run takes `--warmup`
untimed batches, then times `--batches` batches; images/s = images / time.
Prints one row per W: the medians and resist's over torchvision's.

    scripts/bench_loader_torchvision.py [--data-dir DIR] [--workers 1,2] [--repeats 3]

Without --data-dir a synthetic ImageNet-shaped folder (500x375 JPEGs) is
generated once under /tmp. Uses Debian's python3-torch and python3-torchvision.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def torchvision_rate(a, workers):
    import torch
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    tf = T.Compose([T.RandomResizedCrop(a.image_size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    ds = ImageFolder(os.path.join(a.data_dir, "train"), tf)
    g = torch.Generator()
    g.manual_seed(7)
    dl = DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=workers, generator=g, drop_last=True)
    it = iter(dl)
    for _ in range(a.warmup):
        next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(a.batches):
        x, _ = next(it)
        n += x.shape[0]
    rate = n / (time.perf_counter() - t0)
    del it
    return rate


def resist_rate(a, workers):
    out = subprocess.run([a.bench, "--data-dir", a.data_dir, "--threads", str(workers), "--batch-size",
                          str(a.batch_size), "--batches", str(a.batches), "--warmup", str(a.warmup),
                          "--image-size", str(a.image_size), "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["images_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="")
    p.add_argument("--bench", default=os.path.join(ROOT, "build/runtime/bench/resist-bench-loader"))
    p.add_argument("--workers", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--image-size", type=int, default=224)
    a = p.parse_args()
    if not os.access(a.bench, os.X_OK):
        sys.exit(f"bench_loader_torchvision: {a.bench} not built (cmake --build build --target resist-bench-loader)")
    if not a.data_dir:
        a.data_dir = "/tmp/resist-bench-images"
        if not os.path.isdir(os.path.join(a.data_dir, "train")):
            subprocess.run([a.bench, "--generate", a.data_dir, "--images", "1024"], check=True)
    needed = (a.warmup + a.batches) * a.batch_size
    have = sum(len(f) for _, _, f in os.walk(os.path.join(a.data_dir, "train")))
    if have < needed:
        sys.exit(f"bench_loader_torchvision: {a.data_dir}/train has {have} images, the runs need {needed}")
    print(f"# {a.data_dir}: batch {a.batch_size}, {a.warmup} + {a.batches} batches, size {a.image_size}, "
          f"{a.repeats} alternating repeats, {os.cpu_count()} cores")
    print("| workers | resist images/s | torchvision images/s | resist / torchvision | resist per thread |")
    print("|---:|---:|---:|---:|---:|")
    for w in [int(x) for x in a.workers.split(",")]:
        ours, theirs = [], []
        for r in range(a.repeats):
            order = [("r", resist_rate), ("t", torchvision_rate)]
            if r % 2:
                order.reverse()
            for tag, f in order:
                (ours if tag == "r" else theirs).append(f(a, w))
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"| {w} | {mo:.1f} | {mt:.1f} | {mo / mt:.2f}x | {mo / max(1, w):.1f} |", flush=True)
        print(f"#   runs: resist {[round(x, 1) for x in ours]}, torchvision {[round(x, 1) for x in theirs]}", flush=True)


if __name__ == "__main__":
    main()
