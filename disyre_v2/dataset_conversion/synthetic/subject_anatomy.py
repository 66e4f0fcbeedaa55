"""A subject's anatomy: the template's tissue maps pulled back through the subject's deformation.

All maps live on a crop (``box``) of the output grid that holds the whole brain; outside it the
subject is background. The pulled-back template coordinates are kept, so lesion models can ask
anatomical questions (hemisphere, height, depth) in MNI space.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from disyre_v2.dataset_conversion.synthetic.anatomy import TemplateAnatomy, template_distance_maps
from disyre_v2.dataset_conversion.synthetic.deformation import SubjectDeformation


@dataclass
class SubjectAnatomy:
    box: tuple[slice, slice, slice]  # crop of the output grid
    spacing: float
    t1: np.ndarray  # template T1 (pure WM = 1), on the crop
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    mni: np.ndarray | None  # (3, ...) MNI x, y, z (mm) of the template point each voxel shows
    depth_mm: np.ndarray | None  # distance (mm) from the brain surface, measured on the template
    csf_distance_mm: np.ndarray | None  # distance (mm) from CSF or the outside, measured on the template
    tissue_t1: dict
    ventricle_centre_mni: np.ndarray  # MNI (x, y, z) of the lateral ventricles' centre

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.t1.shape

    @property
    def tissue(self) -> np.ndarray:
        """GM + WM: what a lesion can destroy (CSF is not tissue)."""
        return self.gm + self.wm

    def axes_mm(self) -> list[np.ndarray]:
        """Grid-frame positions (mm) of the crop voxels along z, y and x."""
        return [np.arange(b.start, b.stop, dtype=np.float64) * self.spacing for b in self.box]


def grid_axes_mm(box: tuple[slice, slice, slice], spacing: float) -> list[np.ndarray]:
    return [np.arange(b.start, b.stop, dtype=np.float64) * spacing for b in box]


def warp_template(template: TemplateAnatomy, deformation: SubjectDeformation, box: tuple[slice, slice, slice],
                  regions: bool = False) -> SubjectAnatomy:
    """Pull the template maps back onto ``box`` with trilinear interpolation (zero outside the brain).

    Only voxels that sample the template brain are interpolated (about a quarter of the box), which
    is most of the speed of a subject. ``regions`` adds what lesion placement and atrophy need:
    MNI coordinates and the two distance maps.
    """
    coords = deformation.template_coordinates(grid_axes_mm(box, template.spacing))
    index = coords / np.float32(template.spacing)
    nearest = np.rint(index).astype(np.int32)
    for axis, n in enumerate(template.shape):
        np.clip(nearest[axis], 0, n - 1, out=nearest[axis])
    samples = template.brain_support[nearest[0], nearest[1], nearest[2]]
    points = index[:, samples]
    shape = index.shape[1:]

    def pull(array: np.ndarray) -> np.ndarray:
        out = np.zeros(shape, np.float32)
        out[samples] = ndimage.map_coordinates(array, points, order=1, mode="constant", cval=0.0, prefilter=False)
        return out

    gm, wm, brain = pull(template.gm), pull(template.wm), pull(template.brain)
    distances = template_distance_maps(int(template.spacing)) if regions else None
    return SubjectAnatomy(
        box=box, spacing=template.spacing, t1=pull(template.t1), gm=gm, wm=wm,
        csf=np.clip(brain - gm - wm, 0.0, 1.0), brain=brain,
        mni=template.to_mni(coords) if regions else None,
        depth_mm=pull(distances["depth"]) if regions else None,
        csf_distance_mm=pull(distances["csf_distance"]) if regions else None,
        tissue_t1=dict(template.tissue_t1),
        ventricle_centre_mni=template.to_mni(template.ventricle_centre_mm[:, None])[:, 0],
    )
