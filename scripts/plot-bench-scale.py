#!/usr/bin/python3
"""Plots host time vs workers from `scripts/bench-sim.sh --scale` output.

usage: scripts/bench-sim.sh --scale 2>&1 | scripts/plot-bench-scale.py OUT.png
"""
import re
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

runs = {}
for line in sys.stdin:
    m = re.match(r"scale (\S+) (\d+): ([\d.]+) s, (\d+) KB", line)
    if m:
        runs.setdefault(m.group(1), []).append((int(m.group(2)), float(m.group(3))))
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for protocol, points in sorted(runs.items()):
    points.sort()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=protocol)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("workers (flat 10 Gbit/s, one GPU per node)")
ax.set_ylabel("host seconds (160 epochs)")
ax.set_title("resist-sim run: host time vs workers (measured under load)")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[1], dpi=120)
