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

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

PROTOCOL_STYLE = {
    "data-parallel": dict(color="#4c72b0", marker="s"),
    "local-sgd": dict(color="#dd8452", marker="o"),
    "resist": dict(color="#55a868", marker="^"),
    "ist": dict(color="#c44e52", marker="D"),
    "layer-parallel": dict(color="#937860", marker="P"),
    "layer-serial": dict(color="#8172b2", marker="*", markersize=12),
}


def style(proto):
    """Every line gets a colour and a marker, whatever the protocol."""
    return PROTOCOL_STYLE.get(proto, dict(marker="o"))


def num(r, key):
    """A CSV cell as a float; None where the cell is empty (not applicable)."""
    v = r.get(key, "")
    return float(v) if v not in ("", None) else None


def workers_key(r):
    """The worker-count column ("workers"; older results call it "machines")."""
    return "workers" if "workers" in r else "machines"


MODEL = ""  # the study's resolved model name (study.json), shown on every figure


def model_of(data):
    return (data[0].get("model", "") if data else "") or MODEL


def worker_axis(ax, values):
    """A log2 axis of worker counts labelled with the counts themselves (2, 4, 8, not 2^1, 2^2)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(values)
    ax.set_xticklabels([str(v) for v in values])
    ax.minorticks_off()
KIND_COLOR = {
    "compute": "#8da0cb", "optimizer": "#b3b3b3", "eval": "#e5c494", "rebuild": "#b15928",
    "allreduce": "#fc8d62", "reduce": "#e78ac3", "broadcast": "#66c2a5", "send": "#a6d854", "recv": "#ffd92f",
}


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def save(fig, out, stem, tight=True):
    os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    if tight:
        fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out, "figures", f"{stem}.{ext}"), dpi=90, bbox_inches="tight")
    plt.close(fig)


def by_protocol(data):
    groups = defaultdict(list)
    for r in data:
        groups[r["protocol"]].append(r)
    return groups


def line_plot(out, stem, data, x, y, xlabel, ylabel, title, logx=False, logy=False, yscale=1.0):
    fig, ax = plt.subplots(figsize=(6, 4))
    for proto, rs in by_protocol(data).items():
        rs = sorted((r for r in rs if num(r, y) is not None), key=lambda r: float(r[x]))
        ax.plot([float(r[x]) for r in rs], [num(r, y) * yscale for r in rs], label=proto, **style(proto))
    if logx:
        worker_axis(ax, sorted({int(float(r[x])) for r in data}))
    if logy:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f"\n{model_of(data)}" if model_of(data) else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, out, stem)


def speedup_vs_machines(out, data, title):
    """Speedup over data-parallel at the same workers, one line per protocol."""
    data = [r for r in data if num(r, "speedup_vs_data_parallel") is not None]
    if not data:  # no data-parallel baseline in this study
        return
    wk = workers_key(data[0])
    fig, ax = plt.subplots(figsize=(6, 4))
    for proto, rs in by_protocol(data).items():
        rs = sorted(rs, key=lambda r: int(r[wk]))
        ax.plot([int(r[wk]) for r in rs], [num(r, "speedup_vs_data_parallel") for r in rs], label=proto,
                **style(proto))
    worker_axis(ax, sorted({int(r[wk]) for r in data}))
    ax.set_ylim(bottom=0)
    ax.axhline(1.0, color="black", linewidth=0.6)
    ax.set_xlabel("workers (one per GPU)")
    ax.set_ylabel("speedup over data-parallel, same epochs (×)")
    ax.set_title(title + (f"\n{model_of(data)}" if model_of(data) else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, out, "speedup_vs_machines")


def time_unit(data):
    """The unit the study's tables use: hours, unless every run is under 10 minutes."""
    longest = max(float(r["wall_clock_s"]) for r in data)
    return ("s", 1.0) if longest < 600 else ("h", 3600.0)


def breakdown(out, data):
    """Stacked bars: compute and exposed communication per protocol and workers, in the tables' unit."""
    unit, div = time_unit(data)
    wk = workers_key(data[0])
    labels, comp, comm = [], [], []
    for r in data:
        labels.append(f"{r['protocol']}\n{r[wk]} workers")
        comp.append(float(r["compute_s"]) / div)
        comm.append(float(r["exposed_communication_s"]) / div)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels)), 4.2))
    xs = list(range(len(labels)))
    ax.bar(xs, comp, label="compute", color=KIND_COLOR["compute"])
    ax.bar(xs, comm, bottom=comp, label="exposed communication", color=KIND_COLOR["allreduce"])
    top = max(c + e for c, e in zip(comp, comm))
    for x, c, e in zip(xs, comp, comm):
        ax.text(x, c + e + 0.01 * top, f"{c + e:.2f}" if div > 1 else f"{c + e:.1f}", ha="center", va="bottom",
                fontsize=7)
    ax.set_ylim(0, top * 1.12)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel({"s": "seconds", "h": "hours"}[unit] + " (whole run)")
    ax.set_title("Where the time goes" + (f": {model_of(data)}" if model_of(data) else ""), fontsize=10)
    # Beside the plot, never over a bar.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    save(fig, out, "breakdown")


def gantt(out, data, title, panel_key="protocol"):
    """One round per panel on one shared time axis: a bar per event, one track per worker."""
    panels = defaultdict(list)
    for r in data:
        key = r[panel_key] if panel_key == "protocol" else f"{r['protocol']} ({r['source']})"
        panels[key].append(r)
    n = len(panels)
    fig, axes = plt.subplots(n, 1, figsize=(8.5, 1.0 + 1.35 * n), squeeze=False, sharex=True)
    seen = {}
    for ax, (name, rs) in zip(axes[:, 0], panels.items()):
        workers = sorted({int(r["worker"]) for r in rs})
        end = max(float(r["end_s"]) for r in rs)
        for r in rs:
            w, s, e = int(r["worker"]), float(r["start_s"]), float(r["end_s"])
            kind = r["kind"]
            bar = ax.barh(w, max(e - s, 1e-9), left=s, height=0.7, color=KIND_COLOR.get(kind, "#999999"),
                          edgecolor="black", linewidth=0.2)
            seen.setdefault(kind, bar)
        # The round's length, written where it ends: panels share the axis, so a
        # shorter round is a shorter bar, and the number says by how much.
        ax.axvline(end, color="black", linewidth=0.8, linestyle=":")
        ax.text(end, workers[0] - 0.6, f" {end:.3g} s", fontsize=7, va="bottom", ha="left")
        ax.set_yticks(workers)
        ax.set_yticklabels([f"w{w}" for w in workers], fontsize=7)
        ax.set_ylim(workers[-1] + 0.6, workers[0] - 1.3)
        iters = max((int(r.get("iters") or 0) for r in rs if r["kind"] == "compute"), default=0)
        if panel_key == "protocol" and iters:
            what = f"one round = {iters} local iteration{'s' if iters != 1 else ''}, {end:.3g} s"
        else:
            what = f"one round, {end:.3g} s"
        ax.set_title(f"{name}: {what}", fontsize=9, loc="left")
        ax.grid(True, axis="x", alpha=0.3)
    longest = max(float(r["end_s"]) for r in data)
    axes[-1, 0].set_xlim(0, longest * 1.1)
    axes[-1, 0].set_xlabel("seconds from the round's start (one axis for all panels)", fontsize=8)
    fig.suptitle(title + (f", {MODEL}" if MODEL else ""), fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.legend(list(seen.values()), list(seen.keys()), loc="upper left", bbox_to_anchor=(0.85, 0.95), fontsize=7,
               frameon=False)
    save(fig, out, "gantt", tight=False)


def heatmap(out, data):
    """ResIST's speedup over local SGD: one panel per bandwidth, workers × ℓ.

    A ratio around 1: a diverging colour map centred on 1 on a log scale (0.5×
    and 2× equally strong), blue where ResIST wins, red where it loses, and
    the break-even contour (= 1) drawn in black."""
    res = [r for r in data if r["protocol"] == "resist" and num(r, "speedup_vs_local_sgd") is not None]
    wk = workers_key(res[0])
    bws = sorted({float(r["nic_bandwidth_Bps"]) for r in res})
    ms = sorted({int(r[wk]) for r in res})
    ls = sorted({int(r["local_iters"]) for r in res})
    vals = [num(r, "speedup_vs_local_sgd") for r in res]
    span = max(max(vals), 1 / min(vals), 1.25)
    norm = mcolors.LogNorm(vmin=1 / span, vmax=span)
    cmap = plt.get_cmap("RdBu")
    fig, axes = plt.subplots(1, len(bws), figsize=(4.4 * len(bws) + 1.2, 4.0), squeeze=False)
    im = None
    for ax, bw in zip(axes[0], bws):
        grid = [[float("nan")] * len(ls) for _ in ms]
        for r in res:
            if float(r["nic_bandwidth_Bps"]) == bw:
                grid[ms.index(int(r[wk]))][ls.index(int(r["local_iters"]))] = num(r, "speedup_vs_local_sgd")
        im = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto", origin="lower")
        break_even(ax, grid)
        for i in range(len(ms)):
            for j in range(len(ls)):
                v = grid[i][j]
                if math.isnan(v):
                    continue
                strong = abs(math.log(v)) > 0.55 * math.log(span)  # dark cell: white text
                label = f"{v:.3f}" if 0.995 <= v < 1.005 else f"{v:.2f}"  # which side of 1, near 1
                ax.text(j, i, label, ha="center", va="center", fontsize=7.5,
                        color="white" if strong else "black")
        ax.set_xticks(range(len(ls)))
        ax.set_xticklabels(ls)
        ax.set_yticks(range(len(ms)))
        ax.set_yticklabels(ms)
        ax.set_xlabel("local iterations ℓ")
        if ax is axes[0][0]:
            ax.set_ylabel("workers (one per GPU)")
        ax.set_title(f"{bw * 8 / 1e9:g} Gbit/s between nodes")
    ticks = [t for t in (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4) if 1 / span <= t <= span]
    fig.subplots_adjust(top=0.80, wspace=0.25)
    cb = fig.colorbar(im, ax=list(axes[0]), ticks=ticks, fraction=0.03, pad=0.02)
    cb.ax.minorticks_off()
    cb.ax.set_yticks(ticks)
    cb.ax.set_yticklabels([f"{t:g}×" for t in ticks])
    cb.set_label("local SGD time / ResIST time\n(> 1: ResIST faster)")
    cb.ax.axhline(1.0, color="black", linewidth=1.6)
    model = model_of(res)
    fig.suptitle("ResIST's speedup over local SGD at the same workers, ℓ, bandwidth and epochs (not to an accuracy)"
                 + (f" ({model})" if model else "")
                 + "\nblue: ResIST faster, red: slower; black line: break-even (1×)", fontsize=10, y=0.99)
    save(fig, out, "heatmap_speedup", tight=False)


def break_even(ax, grid):
    """Black lines along the cell edges that separate ResIST wins (>= 1) from losses (< 1)."""
    rows, cols = len(grid), len(grid[0])
    lose = [[grid[i][j] < 1 for j in range(cols)] for i in range(rows)]
    for i in range(rows):
        for j in range(cols):
            if j + 1 < cols and lose[i][j] != lose[i][j + 1]:
                ax.plot([j + 0.5, j + 0.5], [i - 0.5, i + 0.5], color="black", linewidth=2)
            if i + 1 < rows and lose[i][j] != lose[i + 1][j]:
                ax.plot([j - 0.5, j + 0.5], [i + 0.5, i + 0.5], color="black", linewidth=2)


def time_vs_local_iters(out, data):
    """Time per epoch vs ℓ, one line per protocol, one panel per bandwidth, at a middle machine count."""
    wk = workers_key(data[0])
    ms = sorted({int(r[wk]) for r in data})
    m = 8 if 8 in ms else ms[len(ms) // 2]
    bws = sorted({float(r["nic_bandwidth_Bps"]) for r in data})
    ls = sorted({int(r["local_iters"]) for r in data if r["protocol"] != "data-parallel"})
    fig, axes = plt.subplots(1, len(bws), figsize=(4.2 * len(bws), 3.8), squeeze=False, sharey=True)
    for ax, bw in zip(axes[0], bws):
        for proto, rs in by_protocol([r for r in data if int(r[wk]) == m and float(r["nic_bandwidth_Bps"]) == bw]).items():
            if proto == "data-parallel":  # does not depend on ℓ: one value, drawn across
                ax.plot(ls, [float(rs[0]["time_per_epoch_s"])] * len(ls), linestyle="--",
                        label=proto + " (no ℓ)", **style(proto))
                continue
            rs = sorted(rs, key=lambda r: int(r["local_iters"]))
            ax.plot([int(r["local_iters"]) for r in rs], [float(r["time_per_epoch_s"]) for r in rs], label=proto,
                    **style(proto))
        ax.set_xscale("log")
        ax.set_xticks(ls)
        ax.set_xticklabels([str(v) for v in ls])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("local iterations ℓ")
        ax.set_title(f"{m} workers, {bw * 8 / 1e9:g} Gbit/s", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("time per epoch (s)")
    axes[0][0].legend()
    if MODEL:
        fig.suptitle(f"Predicted time per epoch vs ℓ, {MODEL}", fontsize=10)
    save(fig, out, "time_vs_local_iters")


def predicted_vs_measured(out, data):
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, what in zip(axes, ("compute", "comm", "total")):
        for proto, rs in by_protocol(data).items():
            ax.scatter([float(r[f"measured_{what}_s"]) for r in rs], [float(r[f"predicted_{what}_s"]) for r in rs],
                       label=proto, color=style(proto).get("color"), marker=style(proto)["marker"], s=18)
        lo = min([float(r[f"measured_{what}_s"]) for r in data] + [float(r[f"predicted_{what}_s"]) for r in data])
        hi = max([float(r[f"measured_{what}_s"]) for r in data] + [float(r[f"predicted_{what}_s"]) for r in data])
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--", label="y = x")
        ax.set_xlabel("measured (s)")
        ax.set_ylabel("predicted (s)")
        ax.set_title({"comm": "communication"}.get(what, what) + " per round")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    save(fig, out, "predicted_vs_measured")


def accuracy_curves(out, data, x, xlabel, stem, title):
    """Test accuracy against `x`, one panel per worker count: the seed mean as a line, each seed faint."""
    workers = sorted({int(r["workers"]) for r in data})
    fig, axes = plt.subplots(1, len(workers), figsize=(5 * len(workers), 3.8), squeeze=False)
    for ax, m in zip(axes[0], workers):
        mine = [r for r in data if int(r["workers"]) == m]
        for proto, rs in by_protocol(mine).items():
            st = style(proto)
            seeds = sorted({r["seed"] for r in rs if r["seed"] != "mean"})
            for seed in seeds:
                pts = [r for r in rs if r["seed"] == seed]
                ax.plot([float(r[x]) for r in pts], [100 * float(r["test_accuracy"]) for r in pts],
                        color=st.get("color"), alpha=0.25, linewidth=0.8)
            pts = [r for r in rs if r["seed"] == "mean"]
            ax.plot([float(r[x]) for r in pts], [100 * float(r["test_accuracy"]) for r in pts],
                    label=f"{proto} (mean of {len(seeds)})", markersize=4, **st)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{m} workers", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title + (f", {MODEL}" if MODEL else ""), fontsize=10)
    save(fig, out, stem)


def predicted_vs_measured_grid(out, data):
    """validate-grid: one point per configuration, the repeats' min..max as a bar."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for proto, rs in by_protocol(data).items():
        x = [float(r["measured_round_s"]) for r in rs]
        y = [float(r["predicted_round_s"]) for r in rs]
        err = [[xi - float(r["measured_min_s"]) for xi, r in zip(x, rs)],
               [float(r["measured_max_s"]) - xi for xi, r in zip(x, rs)]]
        ax.errorbar(x, y, xerr=err, fmt=style(proto)["marker"], color=style(proto).get("color"), label=proto,
                    markersize=5, capsize=2, linestyle="none")
    vals = [float(r[k]) for r in data for k in ("measured_round_s", "predicted_round_s")]
    lo, hi = min(vals), max(vals)
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--", label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured time per round (s), median of the repeats")
    ax.set_ylabel("predicted time per round (s)")
    ax.set_title("Held-out runs on this machine", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out, "predicted_vs_measured_grid")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    global MODEL
    with open(os.path.join(out, "study.json")) as f:
        meta = json.load(f)
    kind, MODEL = meta["kind"], meta.get("model", "")
    if kind == "table1":
        data = rows(os.path.join(out, "comm.csv"))
        wk = workers_key(data[0])
        line_plot(out, "bytes_per_round_vs_machines", data, wk, "bytes_per_round", "workers (one per GPU)",
                  "bytes per round (GB)", "Per-round communication (Table 1 convention)", logx=True, yscale=1e-9)
    elif kind in ("paper-cifar", "protocol-grid"):
        data = rows(os.path.join(out, "results.csv"))
        speedup_vs_machines(out, data, "Speedup over data-parallel (simulated, same epochs)")
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
                            f"Speedup over data-parallel (same epochs), ℓ = {ell}, {bw * 8 / 1e9:g} Gbit/s")
    elif kind == "scale":
        data = rows(os.path.join(out, "results.csv"))
        wk = workers_key(data[0])
        line_plot(out, "bytes_per_round_vs_machines", data, wk, "bytes_per_round", "workers (one per GPU)",
                  "bytes per round (GB)", "Per-round communication (Table 1 convention)", logx=True, logy=True,
                  yscale=1e-9)
        line_plot(out, "time_per_epoch_vs_machines", data, wk, "time_per_epoch_s", "workers (one per GPU)",
                  "time per epoch (s)", "Predicted time per epoch", logx=True, logy=True)
    elif kind == "validate":
        predicted_vs_measured(out, rows(os.path.join(out, "rounds.csv")))
        gantt(out, rows(os.path.join(out, "gantt.csv")), "One round: measured and predicted", panel_key="source")
    elif kind == "validate-grid":
        predicted_vs_measured_grid(out, rows(os.path.join(out, "results.csv")))
    elif kind == "layer-parallel":
        data = rows(os.path.join(out, "results.csv"))
        line_plot(out, "time_per_epoch_vs_machines", data, workers_key(data[0]),
                  "time_per_epoch_s", "devices (K)", "time per epoch (s)", "Predicted time per epoch", logx=True)
    elif kind == "convergence":
        data = rows(os.path.join(out, "curves.csv"))
        accuracy_curves(out, data, "epochs", "epochs (passes over the training subset by all workers)",
                        "accuracy_vs_epochs", "Test accuracy vs epochs (measured)")
        accuracy_curves(out, data, "predicted_s", "predicted wall-clock (s)", "accuracy_vs_time",
                        "Test accuracy vs predicted wall-clock")
    else:
        sys.exit(f"figures.py: unknown study kind '{kind}'")


if __name__ == "__main__":
    main()
