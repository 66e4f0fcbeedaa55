"""Figures of the report: the pooled precision-recall curve and one overlay sheet per case."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from disyre_v2.evaluation.case_slices import CaseSlices  # noqa: E402
from disyre_v2.evaluation.pooled_curve import PRCurve  # noqa: E402

MAX_CURVE_POINTS = 4000
LABEL_COLOUR, PREDICTION_COLOUR = "#00e676", "#ff1744"
OPERATING_COLOUR = "#00e5ff"  # the calibrated operating point: its marker and its mask outlines


def _thin(curve: PRCurve, keep: int) -> PRCurve:
    """At most MAX_CURVE_POINTS points, evenly spread, the point ``keep`` and both ends included."""
    n = curve.recall.size
    if n <= MAX_CURVE_POINTS:
        return curve
    index = np.unique(np.concatenate([np.linspace(0, n - 1, MAX_CURVE_POINTS).astype(int), [keep]]))
    return PRCurve(curve.precision[index], curve.recall[index], curve.thresholds[index])


def _best(curve: PRCurve) -> int:
    p, r = curve.precision, curve.recall
    dice = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return int(np.argmax(dice))


def plot_pr_curves(curves: dict[str, PRCurve], title: str, path: Path,
                   operating_point: tuple[float, float, str] | None = None) -> Path:
    """Precision against recall for each named curve (the first is the pooled one), best Dice marked,
    over iso-Dice lines; ``operating_point`` (recall, precision, label) marks a fixed threshold's."""
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    grid = np.linspace(0.01, 1, 200)
    for level in (0.2, 0.4, 0.6, 0.8):
        recall = grid[grid > level / (2 - level)]
        ax.plot(recall, level * recall / (2 * recall - level), color="0.85", lw=0.7, zorder=0)
        ax.annotate(f"Dice {level:.1f}", (1.0, level / (2 - level)), fontsize=6, color="0.6", ha="right", va="bottom")
    for number, (name, curve) in enumerate(curves.items()):
        best = _best(curve)
        thin = _thin(curve, best)
        ax.step(np.r_[0.0, thin.recall], np.r_[thin.precision[0], thin.precision], where="pre",
                lw=1.8 if number == 0 else 1.0, label=name, zorder=3 if number == 0 else 2)
        ax.plot(curve.recall[best], curve.precision[best], "o", ms=5 if number == 0 else 3,
                color=ax.lines[-1].get_color(), zorder=4)
    if operating_point is not None:
        recall, precision, label = operating_point
        ax.plot(recall, precision, "*", ms=11, color=OPERATING_COLOUR, markeredgecolor="black", zorder=5, label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    if curves:
        ax.legend(fontsize=7, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no labelled voxel: no curve", ha="center", va="center")
    ax.grid(alpha=0.2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _window(image: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
    values = image[brain] if brain.any() else image.ravel()
    low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    return float(low), float(high if high > low else low + 1.0)


def plot_case(slices: CaseSlices, threshold: float | None, map_max: float, path: Path, caption: str,
              operating_threshold: float | None = None) -> Path:
    """One row per slice: image, restoration (when given), anomaly map with the lesion outline (green),
    and the map thresholded at the pooled threshold (red) over the image; with ``operating_threshold``
    the outline of the binary mask at that threshold (cyan) on the last two panels."""
    columns = [("image", slices.image), ("restoration", slices.restoration)]
    columns = [(name, data) for name, data in columns if data is not None]
    n_cols, n_rows = len(columns) + 2, max(len(slices.indices), 1)
    aspect = slices.spacing_yx[0] / slices.spacing_yx[1]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols, 2.4 * n_rows + 0.4), dpi=100, squeeze=False)
    for row, (index, kind) in enumerate(zip(slices.indices, slices.kinds)):
        brain = slices.brain[row]
        if slices.image is not None:
            background = slices.image[row]
            window = _window(background, brain)
        else:  # no image: the brain's silhouette in grey
            background, window = brain.astype(np.float32), (0.0, 2.0)
        for col, (name, data) in enumerate(columns):
            axes[row, col].imshow(data[row], cmap="gray", vmin=window[0], vmax=window[1], origin="lower", aspect=aspect)
            axes[row, col].set_title(f"{name}, slice {index}" if col == 0 else name, fontsize=8)
        ax = axes[row, len(columns)]
        shown = ax.imshow(slices.score_map[row], cmap="inferno", vmin=0.0, vmax=map_max, origin="lower", aspect=aspect)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        ax.set_title(f"anomaly map ({kind})", fontsize=8)
        ax = axes[row, len(columns) + 1]
        ax.imshow(background, cmap="gray", vmin=window[0], vmax=window[1], origin="lower", aspect=aspect)
        if threshold is not None:
            predicted = np.ma.masked_where(~((slices.score_map[row] >= threshold) & brain), np.ones_like(brain, float))
            ax.imshow(predicted, cmap=ListedColormap([PREDICTION_COLOUR]), alpha=0.55,
                      origin="lower", aspect=aspect, vmin=0, vmax=1)
        ax.set_title("map >= pooled threshold" if threshold is not None else "no threshold", fontsize=8)
        for col in (len(columns), len(columns) + 1):
            if slices.label[row].any():
                axes[row, col].contour(slices.label[row].astype(float), levels=[0.5], colors=LABEL_COLOUR, linewidths=0.9)
            if operating_threshold is not None:
                mask = (slices.score_map[row] > operating_threshold) & brain
                if mask.any():
                    axes[row, col].contour(mask.astype(float), levels=[0.5], colors=OPERATING_COLOUR, linewidths=0.9)
    if not slices.indices:
        axes[0, 0].text(0.5, 0.5, "no brain slice", ha="center", va="center")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(textwrap.fill(caption, width=int(24 * n_cols)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
