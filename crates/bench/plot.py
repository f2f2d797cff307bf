#!/usr/bin/env python3
"""Charts for a sluice-bench result file: throughput bars and latency percentiles.

usage: plot.py RESULTS.json OUT_DIR  -> OUT_DIR/throughput.png, OUT_DIR/latency.png
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"sluice": "#1f77b4", "kafka": "#d62728", "sink": "#7f7f7f"}
LABELS = {"sluice": "Sluice", "kafka": "Kafka", "sink": "sink (client ceiling)"}


def stat(stats, scenario, metric, target):
    s = stats.get(scenario, {}).get(metric, {}).get(target)
    if not s:
        return None
    return s["median"], s["min"], s["max"]


def bars(ax, groups, stats, metric, targets, ylabel, title):
    width = 0.8 / len(targets)
    for i, t in enumerate(targets):
        xs, ys, lo, hi = [], [], [], []
        for g, scenario in enumerate(groups):
            v = stat(stats, scenario, metric, t)
            if v is None:
                continue
            xs.append(g + (i - (len(targets) - 1) / 2) * width)
            ys.append(v[0])
            lo.append(v[0] - v[1])
            hi.append(v[2] - v[0])
        if xs:
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=LABELS[t], color=COLORS[t])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g.replace(" ", "\n", 2) for g in groups], fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)


def main():
    path, out = sys.argv[1], sys.argv[2]
    with open(path) as f:
        r = json.load(f)
    stats = r["stats"]
    title = f'{r["plan"]["mode"]} run, {r["machine"]["date_utc"]}, {r["machine"]["cpus"]} CPUs'

    produce = [s for s in stats if s.startswith("produce") or "partitions produce" in s]
    consume = [s for s in stats if s.startswith("consume") or "partitions consume" in s]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [max(len(produce), 1), max(len(consume), 1) + 1]})
    bars(axes[0], produce, stats, "throughput", ["sluice", "kafka", "sink"], "MB/s (median, min–max)", "Produce")
    bars(axes[1], consume, stats, "throughput", ["sluice", "kafka", "sink"], "MB/s (median, min–max)", "Consume")
    ceil = stats.get("ceiling", {}).get("loopback TCP", {}).get("sink")
    if ceil:
        axes[1].axhline(ceil["median"], linestyle="--", color="black", linewidth=1)
        axes[1].text(-0.4, ceil["median"], " loopback TCP", va="bottom", fontsize=7)
    fig.suptitle("Throughput: " + title)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=110)

    lat = [s for s in stats if "latency" in s or s.startswith("KAFKA-7504")]
    lat.sort(key=lambda s: (not s.startswith("end-to-end"), "reader" in s))
    metrics = ["p50", "p99", "p99.9"]
    fig, axes = plt.subplots(1, max(len(lat), 1), figsize=(5 * max(len(lat), 1), 4.5), squeeze=False)
    for ax, scenario in zip(axes[0], lat):
        width = 0.38
        for i, t in enumerate(["sluice", "kafka"]):
            xs, ys, lo, hi = [], [], [], []
            for j, m in enumerate(metrics):
                v = stat(stats, scenario, m, t)
                if v is None:
                    continue
                xs.append(j + (i - 0.5) * width)
                ys.append(v[0])
                lo.append(v[0] - v[1])
                hi.append(v[2] - v[0])
            if xs:
                ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=LABELS[t], color=COLORS[t])
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels(metrics)
        ax.set_yscale("log")
        ax.set_ylabel("ms (log scale)")
        ax.set_title(scenario, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("Latency: " + title)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "latency.png"), dpi=110)
    print(f"charts: {out}/throughput.png, {out}/latency.png")


if __name__ == "__main__":
    main()
