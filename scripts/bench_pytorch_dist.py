#!/usr/bin/env python3
"""resist-train vs PyTorch's own distributed training on CPU, same model, data, batch and processes.

For every (processes, width, protocol) it runs, alternating, `resist-train
--protocol data-parallel|local-sgd` and the same training written with
PyTorch (Debian's python3-torch): DistributedDataParallel over Gloo, and
PyTorch's local SGD (torch.distributed.optim.PostLocalSGDOptimizer with a
PeriodicModelAverager from torch.distributed.algorithms.model_averaging).
Both are started by resist-launch (torchrun's environment), both with the
same threads per process (OMP_NUM_THREADS, which OpenBLAS reads too) and
Gloo on loopback; both train on Fashion-MNIST batches cut from the same
in-memory uint8 images, normalised per batch.

The work per iteration is the same on both sides: forward, cross-entropy,
the loss read back (.item()), backward into dropped gradients (PyTorch:
zero_grad(set_to_none=True)), the same SGD update; per round, local SGD
flattens the parameters into one buffer and all-reduces it. resist also
counts correct predictions per iteration (an argmax over the batch's
logits) and rank 0 gathers the ranks' round statistics for metrics.jsonl,
on a thread of its own; the PyTorch side keeps no statistics.

Time per iteration = rank 0's wall time from the end of the warm-up rounds
to the end of the second-to-last round (the last one evaluates), over the
iterations in between; a round is one iteration for data-parallel and
--local-iters for local SGD. The median over --repeats alternating pairs is
reported, and ratio = PyTorch / resist (> 1: resist is faster).

--e2e also trains ResIST and PyTorch local SGD (and resist's local SGD) end
to end on a deeper network and reports wall-clock and test accuracy: the
speed-up a user gets by switching.

  /usr/bin/python3 scripts/bench_pytorch_dist.py --procs 2,4 --widths 8,32 --repeats 3 --out dist.json
  /usr/bin/python3 scripts/bench_pytorch_dist.py --e2e-only --e2e-procs 2

(--worker is internal: one PyTorch process.)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "analysis"))

try:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from resist_model import build, accuracy, normalise, _read_idx
except ImportError as e:
    print("bench_pytorch_dist.py: %s (needs Debian's python3-torch, /usr/bin/python3)" % e, file=sys.stderr)
    sys.exit(77)

FMNIST = "/usr/share/datasets/fashion-mnist"


def lr_at(t, total, lr):
    """resist-train's step schedule: /10 at 50% and 75% of the iterations."""
    total = max(1, total)
    return lr * (0.1 if t >= 0.5 * total else 1.0) * (0.1 if t >= 0.75 * total else 1.0)


def init_like_resist(net, seed):
    """Kaiming-normal (fan-out) convs, BN weight 1 / bias 0, linear layers PyTorch's default (as resist)."""
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)


def worker(a):
    """One PyTorch process (started by resist-launch): DDP or local SGD; rank 0 writes the timings."""
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    images = _read_idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz"), 3).unsqueeze(1)[:a.train_subset]
    labels = _read_idx(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz"), 1).long()[:a.train_subset]
    model_opts = {"model": a.model, "block": "basic", "base_width": a.base_width, "dataset": "fashion-mnist"}
    net = build(model_opts)
    init_like_resist(net, a.seed)
    for p in net.parameters():  # every rank starts from rank 0's weights
        dist.broadcast(p.data, 0)
    sgd = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    ell = 1 if a.protocol == "data-parallel" else a.local_iters
    if a.protocol == "data-parallel":
        from torch.nn.parallel import DistributedDataParallel
        model, opt = DistributedDataParallel(net), sgd
    else:
        from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager
        from torch.distributed.optim import PostLocalSGDOptimizer
        model = net
        opt = PostLocalSGDOptimizer(optim=sgd, averager=PeriodicModelAverager(period=ell, warmup_steps=0))
    n = len(labels)
    ipe = (n + world * a.batch - 1) // (world * a.batch)
    total = a.rounds * ell if a.rounds else a.epochs * ipe
    rounds = (total + ell - 1) // ell
    lo, hi = n * rank // world, n * (rank + 1) // world
    perm, perm_epoch = None, -1
    dist.barrier()
    t0 = time.perf_counter()
    ends = []
    model.train()
    for r in range(rounds):
        for i in range(min(ell, total - r * ell)):
            t = r * ell + i
            epoch, j = divmod(t, ipe)
            if epoch != perm_epoch:
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(a.seed * 7919 + epoch))
                perm_epoch = epoch
            shard = perm[lo:hi]
            idx = shard[(j * a.batch) % len(shard):][:a.batch]
            x, y = normalise("fashion-mnist", images[idx]), labels[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(t, total, a.lr)
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.item()  # resist-train reads the loss every iteration too
            loss.backward()
            opt.step()
        ends.append(time.perf_counter() - t0)
    # The final model: average once more (local SGD), evaluate at rank 0.
    if a.protocol == "local-sgd":
        for p in net.parameters():
            dist.all_reduce(p.data)
            p.data /= world
    result = {"round_end_s": ends, "local_iters": ell, "rounds": rounds, "wall_s": time.perf_counter() - t0}
    if rank == 0 and a.test_subset > 0:
        ti = _read_idx(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"), 3).unsqueeze(1)[:a.test_subset]
        tl = _read_idx(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"), 1).long()[:a.test_subset]
        result["test_accuracy"] = accuracy(net, "fashion-mnist", ti, tl, 256)
        result["wall_s"] = time.perf_counter() - t0
    dist.barrier()
    if rank == 0:  # whole or not at all: the parent takes the file's existence as the run's result
        with open(a.out + ".tmp", "w") as f:
            json.dump(result, f)
        os.replace(a.out + ".tmp", a.out)
    return 0


def per_iteration(round_end_s, ell, warmup_rounds):
    """Seconds per iteration between the end of the warm-up and the end of the second-to-last round."""
    last = len(round_end_s) - 2
    if last <= warmup_rounds - 1:
        raise RuntimeError("too few rounds (%d) for %d warm-up rounds" % (len(round_end_s), warmup_rounds))
    return (round_end_s[last] - round_end_s[warmup_rounds - 1]) / ((last - warmup_rounds + 1) * ell)


def run(cmd, env):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd[:6]), p.returncode, p.stderr[-2000:]))
    return p


def run_resist(a, procs, width, protocol, rounds, ell, threads, model, test_subset=500, epochs=0):
    with tempfile.TemporaryDirectory() as out:
        cmd = [a.launch, "-n", str(procs), "--", a.train, "--protocol", protocol, "--model", model,
               "--block", "basic", "--base-width", str(width), "--dataset", "fashion-mnist",
               "--train-subset", str(a.train_subset), "--test-subset", str(test_subset),
               "--batch-size", str(a.batch), "--local-iters", str(ell), "--threads", str(threads),
               "--lr", str(a.lr), "--quiet", "--out", out]
        cmd += ["--epochs", str(epochs)] if epochs else ["--rounds", str(rounds)]
        if protocol == "resist":
            cmd += ["--min-depth", str(a.min_depth)]
        t0 = time.perf_counter()
        run(cmd, dict(os.environ, OMP_NUM_THREADS=str(threads)))
        elapsed = time.perf_counter() - t0
        with open(os.path.join(out, "metrics.jsonl")) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
    return {"round_end_s": [l["wall_s"] for l in lines], "local_iters": 1 if protocol == "data-parallel" else ell,
            "wall_s": report["wall_clock_s"], "process_s": elapsed, "test_accuracy": report["test_accuracy"]}


def run_pytorch(a, procs, width, protocol, rounds, ell, threads, model, test_subset=0, epochs=0):
    with tempfile.TemporaryDirectory() as out:
        res = os.path.join(out, "r.json")
        cmd = [a.launch, "-n", str(procs), "--", sys.executable, os.path.abspath(__file__), "--worker",
               "--protocol", protocol, "--model", model, "--base-width", str(width),
               "--train-subset", str(a.train_subset), "--test-subset", str(test_subset), "--batch", str(a.batch),
               "--local-iters", str(ell), "--threads", str(threads), "--lr", str(a.lr), "--seed", "1",
               "--rounds", str(0 if epochs else rounds), "--epochs", str(epochs), "--out", res]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOO_SOCKET_IFNAME="lo")
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                run(cmd, env)
                break
            except RuntimeError as e:
                # PyTorch 1.13's Gloo group can abort a rank as the process
                # exits ("terminate called without an active exception"),
                # after rank 0 wrote the timings: those stand, said on stderr.
                # Without them, one more try.
                if os.path.exists(res):
                    print("bench_pytorch_dist.py: a PyTorch rank failed after the timings were written; kept (%s)"
                          % str(e).strip().splitlines()[-1][:200], file=sys.stderr, flush=True)
                    break
                if attempt == 2:
                    raise
                print("bench_pytorch_dist.py: a PyTorch run failed before writing its timings; once more (%s)"
                      % str(e).strip().splitlines()[-1][:200], file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - t0
        with open(res) as f:
            r = json.load(f)
    r["process_s"] = elapsed
    return r


def speed(a):
    rows = []
    cores = os.cpu_count() or 1
    for procs in a.procs:
        threads = a.threads or max(1, cores // procs)
        for width in a.widths:
            for protocol in a.protocols:
                ell = 1 if protocol == "data-parallel" else a.local_iters
                rounds = a.dp_iters if protocol == "data-parallel" else a.lsgd_rounds
                warm = 3 if protocol == "data-parallel" else 1
                times = {"resist": [], "pytorch": []}
                for rep in range(a.repeats):
                    # Alternate which goes first, so that a slow phase of the machine hits both.
                    order = [("resist", run_resist), ("pytorch", run_pytorch)]
                    for name, fn in (order if rep % 2 == 0 else order[::-1]):
                        r = fn(a, procs, width, protocol, rounds, ell, threads, a.model)
                        times[name].append(per_iteration(r["round_end_s"], r["local_iters"], warm))
                res, pt = statistics.median(times["resist"]), statistics.median(times["pytorch"])
                row = {"procs": procs, "threads": threads, "model": a.model, "base_width": width,
                       "protocol": protocol, "batch": a.batch, "local_iters": ell,
                       "resist_s_per_iter": res, "pytorch_s_per_iter": pt, "ratio": pt / res,
                       "resist_runs": times["resist"], "pytorch_runs": times["pytorch"]}
                rows.append(row)
                print("%d procs x %d thread(s), %s w%d, %-13s resist %.4f s/iter, PyTorch %.4f s/iter, "
                      "PyTorch/resist %.2f" % (procs, threads, a.model, width, protocol, res, pt, pt / res),
                      file=sys.stderr, flush=True)
    return rows


def e2e(a):
    rows = []
    cores = os.cpu_count() or 1
    for procs in a.e2e_procs:
        threads = a.threads or max(1, cores // procs)
        common = (a, procs, a.e2e_width, None, 0, a.local_iters, threads, a.e2e_model)
        runs = {}
        for rep in range(a.e2e_repeats):
            order = [("resist", lambda: run_resist(*common[:3], "resist", *common[4:], test_subset=a.test_subset,
                                                   epochs=a.epochs)),
                     ("resist-local-sgd", lambda: run_resist(*common[:3], "local-sgd", *common[4:],
                                                             test_subset=a.test_subset, epochs=a.epochs)),
                     ("pytorch-local-sgd", lambda: run_pytorch(*common[:3], "local-sgd", *common[4:],
                                                               test_subset=a.test_subset, epochs=a.epochs))]
            for name, fn in (order if rep % 2 == 0 else order[::-1]):
                runs.setdefault(name, []).append(fn())
        row = {"procs": procs, "threads": threads, "model": a.e2e_model, "base_width": a.e2e_width,
               "epochs": a.epochs, "local_iters": a.local_iters, "batch": a.batch, "train_subset": a.train_subset,
               "test_subset": a.test_subset}
        for name, rs in runs.items():
            row[name] = {"wall_s": statistics.median(r["wall_s"] for r in rs),
                         "wall_s_runs": [r["wall_s"] for r in rs],
                         "process_s": statistics.median(r["process_s"] for r in rs),
                         "test_accuracy": [r["test_accuracy"] for r in rs]}
        row["speedup_resist_vs_pytorch_local_sgd"] = row["pytorch-local-sgd"]["wall_s"] / row["resist"]["wall_s"]
        rows.append(row)
        print("%d procs: ResIST %.1f s (acc %s), resist local SGD %.1f s, PyTorch local SGD %.1f s (acc %s): "
              "ResIST %.2fx faster than PyTorch local SGD (same epochs, not to an accuracy)" % (
                  procs, row["resist"]["wall_s"], row["resist"]["test_accuracy"], row["resist-local-sgd"]["wall_s"],
                  row["pytorch-local-sgd"]["wall_s"], row["pytorch-local-sgd"]["test_accuracy"],
                  row["speedup_resist_vs_pytorch_local_sgd"]), file=sys.stderr, flush=True)
    return rows


def ints(text):
    try:
        v = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("'%s' is not a comma-separated list of whole numbers" % text)
    if any(x < 1 for x in v):
        raise argparse.ArgumentTypeError("'%s': every entry must be >= 1" % text)
    return v


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--protocol", default="data-parallel", choices=["data-parallel", "local-sgd"],
                   help=argparse.SUPPRESS)
    p.add_argument("--base-width", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--build", default=os.path.join(ROOT, "build"), help="resist's build directory")
    p.add_argument("--procs", type=ints, default=[2, 4], help="processes (default 2,4)")
    p.add_argument("--widths", type=ints, default=[8, 32], help="base widths: a narrow and a wider ResNet")
    p.add_argument("--protocols", default="data-parallel,local-sgd")
    p.add_argument("--model", default="preact-resnet18", help="network of the speed comparison")
    p.add_argument("--batch", type=int, default=32, help="images per process per iteration")
    p.add_argument("--local-iters", type=int, default=10, help="local SGD / ResIST: iterations per round")
    p.add_argument("--dp-iters", type=int, default=24, help="data-parallel iterations per run")
    p.add_argument("--lsgd-rounds", type=int, default=5, help="local SGD rounds per run")
    p.add_argument("--repeats", type=int, default=3, help="alternating resist / PyTorch pairs per configuration")
    p.add_argument("--threads", type=int, default=0, help="threads per process (0: cores / processes)")
    p.add_argument("--train-subset", type=int, default=6000)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--epochs", type=int, default=2, help="--e2e: epochs")
    p.add_argument("--e2e", action="store_true", help="also ResIST vs PyTorch local SGD end to end")
    p.add_argument("--e2e-only", action="store_true", help="only the end-to-end comparison")
    p.add_argument("--e2e-procs", type=ints, default=[2])
    p.add_argument("--e2e-model", default="preact-resnet101")
    p.add_argument("--e2e-width", type=int, default=8)
    p.add_argument("--e2e-repeats", type=int, default=1)
    p.add_argument("--min-depth", type=int, default=4, help="ResIST d_min")
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args(argv)
    if a.worker:
        a.out = a.out or "r.json"
        return worker(a)
    a.protocols = [x for x in a.protocols.split(",") if x]
    for x in a.protocols:
        if x not in ("data-parallel", "local-sgd"):
            p.error("--protocols: '%s' is not one of data-parallel, local-sgd" % x)
    for name in ("batch", "local_iters", "repeats", "train_subset", "epochs", "e2e_repeats"):
        if getattr(a, name) < 1:
            p.error("--%s: must be >= 1 (got %d)" % (name.replace("_", "-"), getattr(a, name)))
    if a.dp_iters < 6 or a.lsgd_rounds < 3:
        p.error("--dp-iters must be >= 6 and --lsgd-rounds >= 3 (warm-up and the evaluating last round are not timed)")
    a.launch = os.path.join(a.build, "runtime", "resist-launch")
    a.train = os.path.join(a.build, "runtime", "resist-train")
    for b in (a.launch, a.train):
        if not os.access(b, os.X_OK):
            p.error("--build: %s is not built (cmake --build build --target resist-train resist-launch)" % b)
    result = {"format": "resist-bench-dist", "version": 1, "command": " ".join([os.path.basename(__file__)] +
              (sys.argv[1:] if argv is None else argv)), "cpus": os.cpu_count(),
              "torch": torch.__version__, "load_average_at_start": os.getloadavg()}
    try:
        if not a.e2e_only:
            result["speed"] = speed(a)
        if a.e2e or a.e2e_only:
            result["end_to_end"] = e2e(a)
    except RuntimeError as e:
        print("bench_pytorch_dist.py: %s" % str(e).splitlines()[0] if str(e) else e, file=sys.stderr)
        return 1
    result["load_average_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=2) + "\n"
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(a.out + ".tmp", a.out)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
