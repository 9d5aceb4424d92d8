#!/usr/bin/env python3
"""The ResIST paper's CIFAR network in plain PyTorch, timed like resist-bench.

Pre-activation ResNet-101 with basic blocks (REFERENCE.md): 3x3/1 stem conv
(no bias, no max-pool); sections of [3, 4, 23, 3] blocks of widths w, 2w, 4w,
8w; a block is BN-ReLU-conv3x3, BN-ReLU-conv3x3 with a 1x1 conv shortcut (no
bias) on the pre-activated input when stride or width changes; no BN after the
last section; global average pool (4x4 at 32x32 input) and a linear layer.
BatchNorm keeps no running statistics. With w = 64 and 100 classes: 41,396,900
parameters, the same as resist's spec, and the same parameter names.

One step = forward + cross-entropy + backward + torch.optim.SGD(momentum 0.9,
weight decay 5e-4), on a fixed random batch on the device. After --warmup
steps, --iters steps run between two synchronisations; images/s = iters *
batch / elapsed. MFU = training FLOPs (3 x forward FLOPs x batch, counting 2
per multiply-add of convs and linear layers only, as the spec does) per second
over a measured peak in the same precision: the faster of an n x n matmul and
a fixed 3x3 convolution. The JSON fields are resist-bench's.

  scripts/bench_pytorch.py --device cuda --precision bf16 --mode compile --out r.json
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # the caller (a test) may treat 77 as "skipped"
    print("bench_pytorch.py: PyTorch is not installed for " + sys.executable, file=sys.stderr)
    sys.exit(77)

# The network is analysis/resist_model.py's (the spec's network, module for
# module, with its parameter names): one PyTorch definition for the benchmark
# and for loading a run's model.pt.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
from resist_model import DEPTHS, build  # noqa: E402

DATASET_OF_CLASSES = {10: "cifar10", 100: "cifar100"}


def forward_flops(net, channels, hw):
    """Forward FLOPs per sample as the spec counts them: 2 per multiply-add of convs and linear layers."""
    total = [0]

    def conv(m, _inp, out):
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, _inp, out):
        total[0] += 2 * out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(1, channels, hw, hw))
    for h in hooks:
        h.remove()
    return total[0]


def init_convs(net):
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def flops_per_s(device, op, flops):
    """FLOP/s of op(): ~0.2 s of repetitions (at least 3), best of 3 trials (as resist-bench)."""
    op()
    synchronize(device)
    t0 = time.perf_counter()
    op()
    synchronize(device)
    reps = min(max(int(0.2 / max(time.perf_counter() - t0, 1e-6)), 3), 200)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            op()
        synchronize(device)
        best = max(best, flops * reps / (time.perf_counter() - t0))
    return best


def measured_peak(device, precision, n):
    """The faster of an n x n matmul and a fixed 3x3 conv (128 -> 128 channels, 32 x 32), as resist-bench.

    fp32 on CUDA: the matmul uses TF32 iff cuDNN does. Returns (matmul, conv, tf32)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    tf32 = device.type == "cuda" and precision == "fp32" and torch.backends.cudnn.allow_tf32
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    with torch.no_grad():
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        matmul = flops_per_s(device, lambda: torch.mm(a, b), 2.0 * n * n * n)
        torch.backends.cuda.matmul.allow_tf32 = saved
        batch, ch, hw = (256 if device.type == "cuda" else 16), 128, 32
        x = torch.randn(batch, ch, hw, hw, device=device, dtype=dtype)
        w = torch.randn(ch, ch, 3, 3, device=device, dtype=dtype)
        conv = flops_per_s(device, lambda: F.conv2d(x, w, padding=1), 2.0 * 9 * ch * ch * hw * hw * batch)
    return matmul, conv, tf32


def blas_info():
    """Which BLAS this process loaded (from /proc/self/maps) and its own threads, as resist-bench reports."""
    import ctypes
    path = ""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                lib = line.split()[-1]
                if "libblas.so" in lib or "libopenblas" in lib or "libblis" in lib or "libmkl_rt" in lib:
                    path = os.path.realpath(lib)
                    if "libblas.so" in lib:
                        break
    except OSError:
        pass
    info = {"name": "none loaded" if not path else "unknown", "library": path, "optimised": False, "threads": 0}
    try:
        lib = ctypes.CDLL(None)  # the global scope, where the BLAS torch loaded lives
        if path:
            lib = ctypes.CDLL(path)
        if hasattr(lib, "openblas_get_config"):
            lib.openblas_get_config.restype = ctypes.c_char_p
            config = lib.openblas_get_config().decode()
            info.update(name=config if config.startswith("OpenBLAS") else "OpenBLAS " + config, optimised=True,
                        threads=lib.openblas_get_num_threads())
        elif "/blas/libblas.so" in path:
            info["name"] = "reference BLAS (netlib)"
    except OSError:
        pass
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=101, choices=sorted(DEPTHS))
    p.add_argument("--base-width", type=int, default=64)
    p.add_argument("--classes", type=int, default=100, choices=sorted(DATASET_OF_CLASSES),
                   help="10 (CIFAR-10) or 100 (CIFAR-100)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--mode", default="eager", choices=["eager", "compile"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--matmul-size", type=int, default=-1,
                   help="n x n matmul of the peak, >= 512 (-1: 8192 on cuda, 1024 on cpu; 0: skip MFU); "
                   "the peak is the faster of it and a fixed 3x3 convolution")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.add_argument("--out", help="also write the JSON result here (atomically)")
    p.add_argument("--print-params", action="store_true", help="print the parameter count and exit")
    a = p.parse_args(argv)
    for name in ("base_width", "batch", "iters"):
        if getattr(a, name) < 1:
            p.error("--%s: must be >= 1 (got %d)" % (name.replace("_", "-"), getattr(a, name)))
    if a.warmup < 0:
        p.error("--warmup: must be >= 0 (got %d)" % a.warmup)
    if 0 < a.matmul_size < 512:
        p.error("--matmul-size: below 512 a matmul measures call overhead, not a peak; give >= 512, "
                "0 to skip MFU or -1 for the device default (got %d)" % a.matmul_size)

    torch.manual_seed(a.seed)
    dataset = DATASET_OF_CLASSES[a.classes]
    model = build({"model": "preact-resnet%d" % a.depth, "block": "basic", "base_width": a.base_width,
                   "dataset": dataset})
    init_convs(model)
    params = sum(t.numel() for t in model.parameters())
    if a.print_params:
        print(params)
        return 0
    flops_fwd = forward_flops(model, 3, 32)
    name = "preact-resnet%d-basic-w%d-%s" % (a.depth, a.base_width, dataset)
    command = "bench_pytorch.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {
        "format": "resist-bench", "version": 1, "impl": "pytorch", "mode": a.mode, "model": name,
        "params": params, "device": a.device, "precision": a.precision, "channels_last": a.channels_last,
        "batch": a.batch, "warmup": a.warmup, "iters": a.iters, "command": command,
        "software": {"torch": torch.__version__, "python": platform.python_version(),
                     "cuda_runtime": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version() if a.device == "cuda" else None},
    }

    def emit(r):
        text = json.dumps(r, indent=2, sort_keys=True) + "\n"
        if a.out:
            tmp = a.out + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, a.out)
        if a.format == "json":
            sys.stdout.write(text)

    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device: cuda requested but torch %s sees no CUDA device" % torch.__version__)
    if a.mode == "compile" and not hasattr(torch, "compile"):
        msg = "torch.compile is not available in torch %s; skipped" % torch.__version__
        print("bench_pytorch.py: " + msg, file=sys.stderr)
        result["skipped"] = msg
        emit(result)
        return 0

    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    fwd = torch.compile(model) if a.mode == "compile" else model
    x = torch.randn(a.batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(a.classes, (a.batch,), device=device)
    bf16 = a.precision == "bf16"

    sgd_s = [0.0]  # the SGD updates' seconds (on the CPU, where they finish when the call returns)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        s0 = time.perf_counter()
        opt.step()
        sgd_s[0] += time.perf_counter() - s0
        return loss.detach()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    compile_t0 = time.perf_counter()
    for _ in range(a.warmup):
        step()
    synchronize(device)
    warmup_s = time.perf_counter() - compile_t0
    t0 = time.perf_counter()
    sgd_s[0] = 0.0
    for _ in range(a.iters):
        last_loss = step()
    synchronize(device)
    elapsed = time.perf_counter() - t0
    if device.type == "cuda":
        peak_bytes, memory_kind = torch.cuda.max_memory_allocated(), "cuda-max-allocated"
        device_name = torch.cuda.get_device_name()
    else:
        peak_bytes, memory_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak-rss"
        device_name = "cpu (%d threads)" % torch.get_num_threads()
    n = a.matmul_size if a.matmul_size >= 0 else (8192 if device.type == "cuda" else 1024)
    matmul, conv, tf32 = measured_peak(device, a.precision, n) if n > 0 else (0.0, 0.0, False)
    peak = max(matmul, conv)
    step_s = elapsed / a.iters
    train_flops = 3.0 * flops_fwd * a.batch
    result.update({
        "device_name": device_name, "sgd": "torch.optim.SGD",
        "warmup_s": warmup_s, "elapsed_s": elapsed, "final_loss": last_loss.item(),
        "step_s": step_s, "sgd_step_s": sgd_s[0] / a.iters if device.type == "cpu" else None,
        "images_per_s": a.batch / step_s,
        "train_flops_per_step": train_flops, "achieved_flops_per_s": train_flops / step_s,
        "matmul_size": n, "matmul_tf32": tf32, "peak_matmul_flops_per_s": matmul,
        "peak_conv_flops_per_s": conv, "peak_flops_per_s": peak,
        "peak_kind": ("matmul" if matmul >= conv else "conv3x3") if n > 0 else "none",
        "threads": torch.get_num_threads(), "blas": blas_info(),
        "mfu": train_flops / step_s / peak if peak > 0 else 0.0,
        "peak_memory_bytes": peak_bytes, "memory_kind": memory_kind,
        "resist_workers": 0, "blocks_per_worker": 0, "blocks_held": len(model.blocks),
    })
    emit(result)
    if a.format == "table":
        print("%s (PyTorch %s) on %s, %s%s, batch %d: %.1f images/s, %.1f ms/step, MFU %.3f "
              "(peak %.3f TFLOP/s), peak memory %.1f MiB (%s)" % (
                  name, a.mode, device_name, a.precision, ", channels-last" if a.channels_last else "",
                  a.batch, a.batch / step_s, step_s * 1e3, result["mfu"], peak / 1e12,
                  peak_bytes / 2 ** 20, memory_kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
