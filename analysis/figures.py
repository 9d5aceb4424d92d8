#!/usr/bin/python3
"""Figures for a finished resist study directory (written by resist-study).

usage: /usr/bin/python3 analysis/figures.py STUDY_DIR

Reads STUDY_DIR/study.json (its "kind") and the CSV files next to it; writes
STUDY_DIR/figures/<name>.png and .svg with matplotlib. Results files only: no
simulation happens here.
"""
import csv
import json
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PROTOCOL_STYLE = {
    "data-parallel": dict(color="#4c72b0", marker="s"),
    "local-sgd": dict(color="#dd8452", marker="o"),
    "resist": dict(color="#55a868", marker="^"),
    "layer-parallel": dict(color="#c44e52", marker="D"),
    "layer-serial": dict(color="#8172b2", marker="*", markersize=12),
}
KIND_COLOR = {
    "compute": "#8da0cb", "optimizer": "#b3b3b3", "eval": "#e5c494",
    "allreduce": "#fc8d62", "reduce": "#e78ac3", "broadcast": "#66c2a5", "send": "#a6d854", "recv": "#ffd92f",
}


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def save(fig, out, stem):
    os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out, "figures", f"{stem}.{ext}"), dpi=90)
    plt.close(fig)


def by_protocol(data):
    groups = defaultdict(list)
    for r in data:
        groups[r["protocol"]].append(r)
    return groups


def line_plot(out, stem, data, x, y, xlabel, ylabel, title, logx=False, logy=False, yscale=1.0):
    fig, ax = plt.subplots(figsize=(6, 4))
    for proto, rs in by_protocol(data).items():
        rs = sorted(rs, key=lambda r: float(r[x]))
        ax.plot([float(r[x]) for r in rs], [float(r[y]) * yscale for r in rs], label=proto,
                **PROTOCOL_STYLE.get(proto, {}))
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, out, stem)


def speedup_vs_machines(out, data, title):
    """Speedup over data-parallel at the same machines, one line per protocol."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for proto, rs in by_protocol(data).items():
        rs = sorted(rs, key=lambda r: int(r["machines"]))
        ax.plot([int(r["machines"]) for r in rs], [float(r["speedup_vs_data_parallel"]) for r in rs], label=proto,
                **PROTOCOL_STYLE.get(proto, {}))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("machines")
    ax.set_ylabel("speedup over data-parallel (×)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, out, "speedup_vs_machines")


def breakdown(out, data):
    """Stacked bars: compute and exposed communication per protocol and machines."""
    labels, comp, comm = [], [], []
    for r in data:
        labels.append(f"{r['protocol']}\n{r['machines']} m")
        comp.append(float(r["compute_s"]) / 3600)
        comm.append(float(r["exposed_communication_s"]) / 3600)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels)), 4))
    xs = range(len(labels))
    ax.bar(xs, comp, label="compute", color=KIND_COLOR["compute"])
    ax.bar(xs, comm, bottom=comp, label="exposed communication", color=KIND_COLOR["allreduce"])
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("hours")
    ax.set_title("Where the time goes")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    save(fig, out, "breakdown")


def gantt(out, data, title, panel_key="protocol"):
    """One round per panel: a bar per event, one track per worker."""
    panels = defaultdict(list)
    for r in data:
        key = r[panel_key] if panel_key == "protocol" else f"{r['protocol']} ({r['source']})"
        panels[key].append(r)
    n = len(panels)
    # measured vs predicted: one time axis, so the bars compare directly
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.2 + 1.3 * n), squeeze=False, sharex=panel_key != "protocol")
    seen = set()
    for ax, (name, rs) in zip(axes[:, 0], panels.items()):
        workers = sorted({int(r["worker"]) for r in rs})
        for r in rs:
            w, s, e = int(r["worker"]), float(r["start_s"]), float(r["end_s"])
            kind = r["kind"]
            ax.barh(w, max(e - s, 1e-9), left=s, height=0.7, color=KIND_COLOR.get(kind, "#999999"),
                    edgecolor="black", linewidth=0.2, label=None if kind in seen else kind)
            seen.add(kind)
        ax.set_yticks(workers)
        ax.set_yticklabels([f"w{w}" for w in workers], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("seconds from the round's start", fontsize=8)
        ax.grid(True, axis="x", alpha=0.3)
    handles, labels = [], []
    for ax in axes[:, 0]:
        h, l = ax.get_legend_handles_labels()
        handles += h
        labels += l
    fig.legend(handles, labels, loc="upper right", fontsize=7, ncol=min(len(labels), 4))
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    save(fig, out, "gantt")


def heatmap(out, data):
    """ResIST's speedup over local SGD: one panel per bandwidth, machines × ℓ."""
    res = [r for r in data if r["protocol"] == "resist"]
    bws = sorted({float(r["nic_bandwidth_Bps"]) for r in res})
    ms = sorted({int(r["machines"]) for r in res})
    ls = sorted({int(r["local_iters"]) for r in res})
    vals = [float(r["speedup_vs_local_sgd"]) for r in res]
    vmin, vmax = min(vals + [1.0]), max(vals + [1.0])
    fig, axes = plt.subplots(1, len(bws), figsize=(4.2 * len(bws) + 1, 3.8), squeeze=False)
    im = None
    for ax, bw in zip(axes[0], bws):
        grid = [[float("nan")] * len(ls) for _ in ms]
        for r in res:
            if float(r["nic_bandwidth_Bps"]) == bw:
                grid[ms.index(int(r["machines"]))][ls.index(int(r["local_iters"]))] = float(r["speedup_vs_local_sgd"])
        im = ax.imshow(grid, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
        for i in range(len(ms)):
            for j in range(len(ls)):
                v = grid[i][j]
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if v < (vmin + vmax) / 2 else "black")
        ax.set_xticks(range(len(ls)))
        ax.set_xticklabels(ls)
        ax.set_yticks(range(len(ms)))
        ax.set_yticklabels(ms)
        ax.set_xlabel("local iterations ℓ")
        if ax is axes[0][0]:
            ax.set_ylabel("machines")
        ax.set_title(f"{bw * 8 / 1e9:g} Gbit/s")
    fig.colorbar(im, ax=list(axes[0]), label="ResIST speedup over local SGD (×)")
    fig.suptitle("ResIST's speedup over local SGD (same machines, ℓ, bandwidth)", fontsize=10)
    os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out, "figures", f"heatmap_speedup.{ext}"), dpi=90, bbox_inches="tight")
    plt.close(fig)


def time_vs_local_iters(out, data):
    """Time per epoch vs ℓ, one line per protocol, one panel per bandwidth, at a middle machine count."""
    ms = sorted({int(r["machines"]) for r in data})
    m = 8 if 8 in ms else ms[len(ms) // 2]
    bws = sorted({float(r["nic_bandwidth_Bps"]) for r in data})
    ls = sorted({int(r["local_iters"]) for r in data if r["protocol"] != "data-parallel"})
    fig, axes = plt.subplots(1, len(bws), figsize=(4.2 * len(bws), 3.8), squeeze=False, sharey=True)
    for ax, bw in zip(axes[0], bws):
        for proto, rs in by_protocol([r for r in data if int(r["machines"]) == m and float(r["nic_bandwidth_Bps"]) == bw]).items():
            if proto == "data-parallel":  # does not depend on ℓ
                ax.plot(ls, [float(rs[0]["time_per_epoch_s"])] * len(ls), linestyle="--", label=proto,
                        color=PROTOCOL_STYLE[proto]["color"])
                continue
            rs = sorted(rs, key=lambda r: int(r["local_iters"]))
            ax.plot([int(r["local_iters"]) for r in rs], [float(r["time_per_epoch_s"]) for r in rs], label=proto,
                    **PROTOCOL_STYLE.get(proto, {}))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("local iterations ℓ")
        ax.set_title(f"{m} machines, {bw * 8 / 1e9:g} Gbit/s", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("time per epoch (s)")
    axes[0][0].legend()
    save(fig, out, "time_vs_local_iters")


def predicted_vs_measured(out, data):
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, what in zip(axes, ("compute", "comm", "total")):
        for proto, rs in by_protocol(data).items():
            ax.scatter([float(r[f"measured_{what}_s"]) for r in rs], [float(r[f"predicted_{what}_s"]) for r in rs],
                       label=proto, color=PROTOCOL_STYLE.get(proto, {}).get("color"), s=18)
        lo = min([float(r[f"measured_{what}_s"]) for r in data] + [float(r[f"predicted_{what}_s"]) for r in data])
        hi = max([float(r[f"measured_{what}_s"]) for r in data] + [float(r[f"predicted_{what}_s"]) for r in data])
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--", label="y = x")
        ax.set_xlabel("measured (s)")
        ax.set_ylabel("predicted (s)")
        ax.set_title({"comm": "communication"}.get(what, what) + " per round")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    save(fig, out, "predicted_vs_measured")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    with open(os.path.join(out, "study.json")) as f:
        kind = json.load(f)["kind"]
    if kind == "table1":
        line_plot(out, "bytes_per_round_vs_machines", rows(os.path.join(out, "comm.csv")), "machines",
                  "bytes_per_round", "machines", "bytes per round (GB)", "Per-round communication (Table 1 convention)",
                  logx=True, yscale=1e-9)
    elif kind == "paper-cifar":
        data = rows(os.path.join(out, "results.csv"))
        speedup_vs_machines(out, data, "Speedup over data-parallel (simulated)")
        breakdown(out, data)
        gantt(out, rows(os.path.join(out, "gantt.csv")), "One round per protocol (simulated)")
    elif kind == "what-if":
        data = rows(os.path.join(out, "results.csv"))
        heatmap(out, data)
        time_vs_local_iters(out, data)
        ell = 50 if any(int(r["local_iters"]) == 50 for r in data) else int(data[-1]["local_iters"])
        bws = sorted({float(r["nic_bandwidth_Bps"]) for r in data})
        bw = bws[len(bws) // 2]
        speedup_vs_machines(out, [r for r in data if float(r["nic_bandwidth_Bps"]) == bw and
                                  (r["protocol"] == "data-parallel" or int(r["local_iters"]) == ell)],
                            f"Speedup over data-parallel, ℓ = {ell}, {bw * 8 / 1e9:g} Gbit/s")
    elif kind == "scale":
        data = rows(os.path.join(out, "results.csv"))
        line_plot(out, "bytes_per_round_vs_machines", data, "machines", "bytes_per_round", "machines",
                  "bytes per round (GB)", "Per-round communication", logx=True, logy=True, yscale=1e-9)
        line_plot(out, "time_per_epoch_vs_machines", data, "machines", "time_per_epoch_s", "machines",
                  "time per epoch (s)", "Predicted time per epoch", logx=True, logy=True)
    elif kind == "validate":
        predicted_vs_measured(out, rows(os.path.join(out, "rounds.csv")))
        gantt(out, rows(os.path.join(out, "gantt.csv")), "One round: measured and predicted", panel_key="source")
    elif kind == "layer-parallel":
        line_plot(out, "time_per_epoch_vs_machines", rows(os.path.join(out, "results.csv")), "machines",
                  "time_per_epoch_s", "devices (K)", "time per epoch (s)", "Predicted time per epoch", logx=True)
    else:
        sys.exit(f"figures.py: unknown study kind '{kind}'")


if __name__ == "__main__":
    main()
