#!/usr/bin/env python3
"""Does channels-last (NHWC) pay, and is it right, for resist's ResNet on this CPU?

Times one training iteration (forward, loss, backward, SGD step; batch 32,
Fashion-MNIST-sized input, one thread) of the spec's pre-activation ResNet
(analysis/resist_model.py) in contiguous (NCHW) and channels-last memory
format, alternating, and compares both formats' fp32 gradients with fp64
ones of the same network on the same batch. Run with Debian's python3-torch:

    /usr/bin/python3 scripts/check_channels_last.py --widths 8,32

Prints one JSON line per width: median seconds per iteration in each
format, and the largest relative gradient error of each (max |g - g64| /
max |g64| over a parameter, the worst parameter named).
"""
import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", default="8,32", help="base widths, comma-separated")
    p.add_argument("--depth", type=int, default=18, help="pre-activation ResNet depth (18, 34, ...)")
    p.add_argument("--repeats", type=int, default=7, help="alternating timings of 3 iterations each")
    a = p.parse_args(argv)
    try:
        widths = [int(w) for w in a.widths.split(",")]
        if not widths or min(widths) < 1 or a.repeats < 1:
            raise ValueError
    except ValueError:
        print("check_channels_last: --widths must be positive whole numbers and --repeats >= 1 (got '%s', %d)"
              % (a.widths, a.repeats), file=sys.stderr)
        return 2
    import torch
    import torch.nn.functional as F
    from resist_model import build, UserError
    torch.set_num_threads(1)
    for w in widths:
        try:
            net = build({"model": "preact-resnet%d" % a.depth, "block": "basic", "base_width": w,
                         "dataset": "fashion-mnist"})
        except UserError as e:
            print("check_channels_last: %s" % e, file=sys.stderr)
            return 2
        torch.manual_seed(0)
        x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
        nets = {"contiguous": net, "channels-last": copy.deepcopy(net).to(memory_format=torch.channels_last)}
        inputs = {"contiguous": x, "channels-last": x.contiguous(memory_format=torch.channels_last)}
        ref = copy.deepcopy(net).double()
        F.cross_entropy(ref(x.double()), y).backward()
        out = {"width": w, "depth": a.depth}
        for name, n in nets.items():
            F.cross_entropy(n(inputs[name]), y).backward()
            worst, where = 0.0, ""
            for (pname, p64), q in zip(ref.named_parameters(), n.parameters()):
                e = ((p64.grad - q.grad.double()).abs().max() / p64.grad.abs().max().clamp_min(1e-30)).item()
                if e > worst:
                    worst, where = e, pname
            out[name] = {"max_relative_grad_error": worst, "worst_parameter": where}
        opts = {k: torch.optim.SGD(n.parameters(), lr=0.01, momentum=0.9) for k, n in nets.items()}

        def step(k):
            opts[k].zero_grad(set_to_none=True)
            loss = F.cross_entropy(nets[k](inputs[k]), y)
            loss.item()
            loss.backward()
            opts[k].step()
        for k in nets:
            for _ in range(3):
                step(k)
        times = {k: [] for k in nets}
        for _ in range(a.repeats):
            for k in nets:
                t = time.perf_counter()
                for _ in range(3):
                    step(k)
                times[k].append((time.perf_counter() - t) / 3)
        for k, v in times.items():
            out[k]["s_per_iteration"] = sorted(v)[len(v) // 2]
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
