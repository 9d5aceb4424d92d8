#!/usr/bin/env python3
"""Turns the JSON files of scripts/gpu-session.sh into markdown tables.

    analysis/gpu_report.py OUT > OUT/report.md

Reads every OUT/*.json with "format": "resist-bench" (written by resist-bench
and scripts/bench_pytorch.py); file names say what ran:
resist-<precision>-<layout>, pytorch-{eager,compile}-<precision>-<layout>,
resist-sgdtorch-<precision>-nchw, resist-s4-<precision>-nchw. Standard
library only; runs with /usr/bin/python3 or any python3.
"""
import glob
import json
import os
import sys


def load(out_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "*.json"))):
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            print("gpu_report.py: skipping %s: %s" % (path, e), file=sys.stderr)
            continue
        if r.get("format") == "resist-bench":
            runs[os.path.basename(path)[:-5]] = r
    return runs


def rate(r):
    if r is None:
        return "not run"
    if "skipped" in r:
        return "skipped"
    return "%.0f (%.1f%%)" % (r["images_per_s"], 100 * r["mfu"])


def gib(n):
    return "%.2f" % (n / 2 ** 30)


def report(runs, out_dir):
    lines = []
    timed = [r for r in runs.values() if "skipped" not in r]
    any_run = runs.get("resist-fp32-nchw") or next(iter(timed), None)
    if any_run is None:
        return "No timed resist-bench JSON files in %s.\n" % out_dir
    env = os.path.join(out_dir, "environment.txt")
    lines.append("GPU: %s, batch %d, %d timed steps after %d warm-up steps." % (
        any_run.get("device_name", "?"), any_run["batch"], any_run["iters"], any_run["warmup"]))
    for prec in ("fp32", "bf16"):
        r = runs.get("resist-%s-nchw" % prec)
        if r and r.get("peak_matmul_flops_per_s"):
            lines.append("Measured %s matmul peak (%dx%d%s): %.1f TFLOP/s." % (
                prec, r["matmul_size"], r["matmul_size"], ", TF32" if r.get("matmul_tf32") else "",
                r["peak_matmul_flops_per_s"] / 1e12))
    sw = set()
    for r in runs.values():
        s = r.get("software", {})
        sw.add(", ".join("%s %s" % (k, v) for k, v in sorted(s.items()) if v))
    lines.append("Software: " + "; ".join(sorted(sw)) + ".")
    if os.path.exists(env):
        lines += ["", "```", open(env).read().strip(), "```"]
    lines += ["",
              "Images/s of forward + backward + SGD step (model FLOP utilisation in brackets):", "",
              "| precision | layout | resist | PyTorch eager | PyTorch compile | resist / eager | floor (>= eager) |",
              "|---|---|---|---|---|---|---|"]
    for prec in ("fp32", "bf16"):
        for layout in ("nchw", "nhwc"):
            tag = "%s-%s" % (prec, layout)
            res, eag, comp = (runs.get(k) for k in ("resist-" + tag, "pytorch-eager-" + tag,
                                                     "pytorch-compile-" + tag))
            if res is None and eag is None and comp is None:
                continue
            ratio, floor = "", ""
            if res and eag and "skipped" not in eag:
                x = res["images_per_s"] / eag["images_per_s"]
                ratio, floor = "%.2f" % x, "met" if x >= 1.0 else "NOT met"
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                prec, "channels-last" if layout == "nhwc" else "NCHW", rate(res), rate(eag), rate(comp),
                ratio, floor))
    mem = [(prec, runs.get("resist-%s-nchw" % prec), runs.get("resist-s4-%s-nchw" % prec))
           for prec in ("fp32", "bf16")]
    if any(s4 for _, _, s4 in mem):
        kind = next(s4 for _, _, s4 in mem if s4)["memory_kind"]
        kind = {"cuda-max-allocated": "CUDA caching allocator, max allocated",
                "peak-rss": "peak resident set size of the process"}.get(kind, kind)
        lines += ["", "Peak memory (%s) while training:" % kind, "",
                  "| precision | full model: params | GiB | ResIST worker S=4: params (blocks) | GiB | worker / full |",
                  "|---|---|---|---|---|---|"]
        for prec, full, s4 in mem:
            if not (full and s4):
                continue
            lines.append("| %s | %d | %s | %d (%d, k=%d) | %s | %.2f |" % (
                prec, full["params"], gib(full["peak_memory_bytes"]), s4["params"], s4["blocks_held"],
                s4["blocks_per_worker"], gib(s4["peak_memory_bytes"]),
                s4["peak_memory_bytes"] / full["peak_memory_bytes"]))
    opt = [(prec, runs.get("resist-%s-nchw" % prec), runs.get("resist-sgdtorch-%s-nchw" % prec))
           for prec in ("fp32", "bf16")]
    if any(t for _, _, t in opt):
        lines += ["", "resist's optimizer step: multi-tensor (foreach) SGD vs torch::optim::SGD:", "",
                  "| precision | foreach images/s | torch::optim::SGD images/s |", "|---|---|---|"]
        for prec, fe, t in opt:
            if fe and t:
                lines.append("| %s | %.0f | %.0f |" % (prec, fe["images_per_s"], t["images_per_s"]))
    lines += ["", "Commands:", ""]
    for name in sorted(runs):
        lines.append("- `%s`" % runs[name]["command"])
    failures = os.path.join(out_dir, "failures.txt")
    if os.path.exists(failures):
        lines += ["", "Failed runs:", "", "```", open(failures).read().strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 2 if len(argv) != 2 else 0
    if not os.path.isdir(argv[1]):
        print("gpu_report.py: %s: not a directory" % argv[1], file=sys.stderr)
        return 2
    sys.stdout.write(report(load(argv[1]), argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
