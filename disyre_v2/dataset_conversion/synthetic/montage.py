"""A PNG overview of a few cases: axial T1 and T2 with the lesion outline, to check the data by eye."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disyre_v2.imageio.atomic import atomic_path


@dataclass
class MontageTile:
    title: str
    t1: np.ndarray  # 2D axial slices
    t2: np.ndarray
    label: np.ndarray | None


def tile_from_case(title: str, images: np.ndarray, mask: np.ndarray, label: np.ndarray | None) -> MontageTile:
    """The axial slice with the most lesion (or through the brain's centre when there is none)."""
    if label is not None and label.any():
        z = int(np.argmax(np.count_nonzero(label, axis=(1, 2))))
    else:
        z = int(round(np.mean(np.nonzero(mask.any(axis=(1, 2)))[0]) + 0.1 * mask.shape[0]))
    return MontageTile(title=title, t1=images[0, z].copy(), t2=images[1, z].copy(),
                       label=None if label is None else label[z].copy())


def write_montage(tiles: list[MontageTile], path: Path | str, dpi: int = 80) -> Path:
    """Columns are cases; rows are T1 and T2. Each image is scaled to its 99.5th percentile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(2, len(tiles), figsize=(1.9 * len(tiles), 4.6), squeeze=False)
    for column, tile in enumerate(tiles):
        for row, (name, image) in enumerate((("T1", tile.t1), ("T2", tile.t2))):
            ax = axes[row, column]
            top = np.percentile(image[image > 0], 99.5) if (image > 0).any() else 1.0
            ax.imshow(image, cmap="gray", vmin=0, vmax=top, origin="lower", interpolation="nearest")
            if tile.label is not None and tile.label.any():
                ax.contour(tile.label > 0, levels=[0.5], colors="red", linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(tile.title, fontsize=8)
            if column == 0:
                ax.set_ylabel(name, fontsize=9)
    figure.tight_layout(pad=0.3)
    try:
        with atomic_path(path, ".png") as tmp:
            figure.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(figure)
    return path
