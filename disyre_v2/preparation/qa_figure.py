"""The quality-assurance figure of a prepared case: the template's brain outline over the registered
scan in three planes through the template brain's centre, so a person flipping through the PNGs of a
dataset sees a failed registration or skull strip at a glance."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402



def _planes(volume: np.ndarray, centre: np.ndarray) -> list[np.ndarray]:
    """Axial, coronal and sagittal cuts of a (Z, Y, X) array, each with the image's up pointing up."""
    z, y, x = (int(c) for c in centre)
    return [volume[z], volume[:, y], volume[:, :, x]]


def write_qa_figure(head: sitk.Image, template_brain: sitk.Image, scan_brain: sitk.Image, path: Path | str,
                    title: str) -> Path:
    """PNG: the registered scan (grey), the template's brain outline (red) and the case's brain mask
    outline (cyan), on the template grid, axial / coronal / sagittal."""
    image = sitk.GetArrayFromImage(head)
    reference = sitk.GetArrayFromImage(template_brain) > 0
    brain = sitk.GetArrayFromImage(scan_brain) > 0
    centre = np.round(np.argwhere(reference).mean(0)) if reference.any() else np.array(image.shape) // 2
    spacing = np.array(head.GetSpacing())[::-1]  # (z, y, x)
    aspects = [spacing[1] / spacing[2], spacing[0] / spacing[2], spacing[0] / spacing[1]]
    high = np.percentile(image[image > 0], 99.5) if (image > 0).any() else 1.0
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, cut, template_cut, brain_cut, aspect, plane in zip(
            axes, _planes(image, centre), _planes(reference, centre), _planes(brain, centre), aspects,
            ("axial", "coronal", "sagittal")):
        # Rows of the coronal and sagittal cuts run along z: flip them so the head's top is up.
        flip = plane != "axial"
        show = (lambda a: a[::-1]) if flip else (lambda a: a)
        ax.imshow(show(cut), cmap="gray", vmin=0, vmax=high, aspect=aspect, interpolation="nearest")
        for mask, colour in ((template_cut, "red"), (brain_cut, "cyan")):
            if mask.any() and not mask.all():
                ax.contour(show(mask.astype(float)), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(plane)
        ax.axis("off")
    figure.suptitle(f"{title}  (red: template brain, cyan: this scan's brain)", fontsize=10)
    figure.tight_layout()
    path = Path(path)  # the caller writes it under a temporary name (write_case renames a case at once)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
