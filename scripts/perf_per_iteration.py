#!/usr/bin/env python3
"""What one iteration costs the processes, as counted by `perf stat`, for resist-train and for the
PyTorch worker of scripts/bench_pytorch_dist.py: page faults, context switches and CPU time
(task-clock), summed over the ranks.

Each side runs twice, --short and --long rounds; the difference divided by the difference in
iterations cancels start-up and the final evaluation. task-clock (CPU milliseconds) is what a rank
spends, not what it waits, but a busy machine inflates it too; page faults follow the allocator's
state and varied 2x between two runs of the same build here (measured under load). Sides alternate
in each repeat; the median over --repeats is printed.

  /usr/bin/python3 scripts/perf_per_iteration.py --procs 4 --width 32 --protocol local-sgd \\
      --side resist=build --side pytorch

--side NAME=BUILD_DIR: resist-train of that build (several may be compared: before/after);
--side pytorch: bench_pytorch_dist.py's worker (Debian's python3-torch). Needs perf (linux-perf)
with software events allowed (kernel.perf_event_paranoid <= 2).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = "task-clock,page-faults,context-switches"


def perf_counts(directory, procs):
    total = {}
    for r in range(procs):
        with open(os.path.join(directory, "perf.%d" % r)) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 3 and fields[0][:1].isdigit():
                    total[fields[2]] = total.get(fields[2], 0.0) + float(fields[0])
    return total


def command(a, build, rounds, out):
    ell = 1 if a.protocol == "data-parallel" else a.local_iters
    wrap = ["sh", "-c", 'exec perf stat -x, -e %s -o %s/perf.$RANK -- "$@"' % (EVENTS, out), "sh"]
    common = ["--protocol", a.protocol, "--model", a.model, "--base-width", str(a.width),
              "--train-subset", str(a.train_subset), "--local-iters", str(ell), "--threads", str(a.threads),
              "--lr", "0.05", "--rounds", str(rounds)]
    if build:
        return wrap + [os.path.join(build, "runtime", "resist-train"), "--block", "basic",
                       "--dataset", "fashion-mnist", "--test-subset", "100", "--batch-size", str(a.batch),
                       "--quiet", "--out", os.path.join(out, "run")] + common
    return wrap + ["/usr/bin/python3", os.path.join(ROOT, "scripts", "bench_pytorch_dist.py"), "--worker",
                   "--test-subset", "0", "--batch", str(a.batch), "--seed", "1", "--epochs", "0",
                   "--out", os.path.join(out, "r.json")] + common


def per_iteration(a, build):
    counts = []
    for rounds in (a.short, a.long):
        with tempfile.TemporaryDirectory() as out:
            launch = os.path.join(a.launch_build, "runtime", "resist-launch")
            env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), GLOO_SOCKET_IFNAME="lo")
            p = subprocess.run([launch, "-n", str(a.procs), "--"] + command(a, build, rounds, out), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                raise RuntimeError("run failed (%d): %s" % (p.returncode, p.stderr[-1500:]))
            counts.append(perf_counts(out, a.procs))
    iters = (a.long - a.short) * (1 if a.protocol == "data-parallel" else a.local_iters)
    return {k: (counts[1][k] - counts[0][k]) / iters for k in counts[1]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--protocol", choices=["data-parallel", "local-sgd"], default="local-sgd")
    p.add_argument("--model", default="preact-resnet18")
    p.add_argument("--local-iters", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-subset", type=int, default=4000)
    p.add_argument("--short", type=int, default=2, help="rounds of the short run")
    p.add_argument("--long", type=int, default=5, help="rounds of the long run")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--side", action="append", required=True, help="NAME=BUILD_DIR (resist-train) or pytorch")
    p.add_argument("--launch-build", default=os.path.join(ROOT, "build"), help="where resist-launch is built")
    a = p.parse_args()
    if a.long <= a.short or a.short < 1:
        p.error("--long must exceed --short (>= 1)")
    sides = []
    for s in a.side:
        name, _, build = s.partition("=")
        if name != "pytorch" and not build:
            p.error("--side: '%s' is neither NAME=BUILD_DIR nor pytorch" % s)
        sides.append((name, os.path.abspath(build) if build else None))
    runs = {name: [] for name, _ in sides}
    try:
        for rep in range(a.repeats):
            for name, build in (sides if rep % 2 == 0 else sides[::-1]):
                r = per_iteration(a, build)
                runs[name].append(r)
                print("%-10s %s" % (name, ", ".join("%s %.1f" % kv for kv in sorted(r.items()))), flush=True)
    except RuntimeError as e:
        print("perf_per_iteration.py: %s" % e, file=sys.stderr)
        return 1
    print("per iteration, summed over %d ranks (median of %d):" % (a.procs, a.repeats))
    for name, rs in runs.items():
        print("%-10s %s" % (name, ", ".join("%s %.1f" % (k, statistics.median(r[k] for r in rs))
                                             for k in sorted(rs[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
