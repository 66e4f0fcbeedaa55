"""Figures of the report's error analysis: false positives per band, score distributions, volume scores."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from disyre_v2.evaluation.error_analysis import quantile  # noqa: E402
from disyre_v2.evaluation.pooled_curve import bin_lower_edge  # noqa: E402
from disyre_v2.evaluation.sparse_histogram import SparseHistogram  # noqa: E402

N_DISTRIBUTION_BINS = 60


def plot_false_positive_bands(false_positives: dict, path: Path) -> Path:
    """Bars per band: share of the lesion-free brain next to the shares of the top-scoring voxels."""
    panels = (("by_distance_to_boundary", "distance to the brain boundary"),
              ("by_axial_position", "axial position (inferior → superior)"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), dpi=100, gridspec_kw={"width_ratios": [1, 1.6]})
    for ax, (key, title) in zip(axes, panels):
        rows = false_positives[key]
        series = [("brain_share", "share of lesion-free brain", "0.7")]
        series += [(k, f"share of the top {k[len('top_'):-len('pct_share')]} % of lesion-free scores", None)
                   for k in rows[0] if k.endswith("_share") and k.startswith("top_")]
        width = 0.8 / len(series)
        x = np.arange(len(rows))
        for number, (column, label, colour) in enumerate(series):
            values = [row[column] or 0.0 for row in rows]
            ax.bar(x + (number - (len(series) - 1) / 2) * width, values, width, label=label, color=colour)
        ax.set_xticks(x, [row["band"] for row in rows], rotation=45 if len(rows) > 6 else 0, fontsize=7)
        ax.set(title=title, ylabel="share")
        ax.grid(axis="y", alpha=0.2)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _density(histogram: SparseHistogram, which: str, edges: np.ndarray) -> np.ndarray:
    counts = histogram.positives if which == "positives" else histogram.negatives
    values = bin_lower_edge(histogram.bins, histogram.drop_bits)
    binned, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges, weights=counts)
    total = binned.sum()
    return binned / total if total else binned


def plot_score_distributions(groups: dict[str, SparseHistogram], healthy: SparseHistogram, path: Path) -> Path:
    """One panel per group: the share of lesion and of lesion-free voxels per score bin (log scale)."""
    top = max(quantile(healthy, 0.9999, "negatives") or 0.0,
              *[quantile(h, 0.999, "positives") or 0.0 for h in groups.values()])
    edges = np.linspace(0.0, top if top > 0 else 1.0, N_DISTRIBUTION_BINS + 1)
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 2.8), dpi=100, squeeze=False)
    centres = (edges[:-1] + edges[1:]) / 2
    for ax, (name, histogram) in zip(axes[0], groups.items()):
        ax.step(centres, _density(histogram, "negatives", edges), where="mid", color="0.45", label="lesion-free")
        if histogram.n_positive:
            ax.step(centres, _density(histogram, "positives", edges), where="mid", color="#d62728", label="lesion")
        ax.set_yscale("log")
        ax.set(title=name, xlabel="anomaly score")
        ax.grid(alpha=0.2)
    axes[0, 0].set_ylabel("share of voxels")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_volume_scores(per_case: list[dict], path: Path) -> Path:
    """Volume scores of every case, one column per kind (lesion-free cases in grey)."""
    groups: dict[str, list[float]] = {}
    for case in per_case:
        name = "lesion-free" if not case["anomalous"] else (case.get("kind") or "lesioned")
        groups.setdefault(name, []).append(case["volume_score"])
    names = sorted(groups, key=lambda n: (n != "lesion-free", n))
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3), dpi=100)
    rng = np.random.default_rng(0)  # jitter only
    for number, name in enumerate(names):
        values = np.asarray(groups[name])
        ax.scatter(number + rng.uniform(-0.15, 0.15, values.size), values, s=14,
                   color="0.5" if name == "lesion-free" else "#d62728")
    if "lesion-free" in groups:
        ax.axhline(max(groups["lesion-free"]), color="0.5", lw=0.7, ls="--")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set(ylabel="volume score", title="volume scores (dashed: highest lesion-free)")
    ax.grid(axis="y", alpha=0.2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
