"""Augmentation before anomaly synthesis (method_numbers.md ("Anomaly synthesis")), built from batchgenerators transforms.

Input and target share the augmentation because synthesis comes after it. Background stays exactly
0: the last transform multiplies by the (augmented) brain mask and clips to [0, 1].
batchgenerators' transforms draw from the global ``random`` and ``numpy.random`` generators, so
:class:`BatchSeededCompose` seeds both from the seed each batch carries: a batch is then
reproducible whichever worker process makes it.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform
from batchgenerators.transforms.color_transforms import BrightnessMultiplicativeTransform, GammaTransform
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform

from disyre_v2.training.spatial_augmentation import BatchedSpatialTransform


class BatchSeededCompose(AbstractTransform):
    """Apply transforms in order after seeding every random source from ``data_dict["seed"]``.

    Transforms with a ``reseed(seed_sequence)`` method (ours) get their own child sequence.
    """

    def __init__(self, transforms: Sequence[AbstractTransform]):
        self.transforms = list(transforms)

    def __call__(self, **data_dict):
        seed = int(data_dict["seed"])
        random.seed(seed)
        np.random.seed(seed % 2**32)
        children = np.random.SeedSequence(seed).spawn(len(self.transforms))
        for transform, child in zip(self.transforms, children):
            if hasattr(transform, "reseed"):
                transform.reseed(child)
            data_dict = transform(**data_dict)
        return data_dict


class AxisMirrorTransform(AbstractTransform):
    """Flip each in-plane axis of a sample's ``data`` and ``seg`` with probability ``probability``.

    batchgenerators' ``MirrorTransform`` flips each axis with a fixed 0.5 whatever is asked. The draws
    come from the global ``numpy.random`` (seeded per batch by :class:`BatchSeededCompose`) in its order:
    per sample one draw (its ``p_per_sample`` draw), then one per axis; at 0.5 the batches are the ones
    it made, at 0 only the per-sample draw is taken, as it did with ``p_per_sample=0``.
    """

    def __init__(self, probability: float, axes: Sequence[int] = (0, 1)):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"mirror probability must be in [0, 1], got {probability}")
        self.probability = float(probability)
        self.axes = tuple(axes)

    def __call__(self, **data_dict):
        data, seg = data_dict["data"], data_dict.get("seg")
        for index in range(len(data)):
            np.random.uniform()  # batchgenerators' per-sample draw: keeps the random stream of later transforms
            if self.probability == 0.0:
                continue
            for axis in self.axes:
                if np.random.uniform() < self.probability:
                    data[index] = np.flip(data[index], axis=axis + 1)
                    if seg is not None:
                        seg[index] = np.flip(seg[index], axis=axis + 1)
        return data_dict


class MaskAndClipTransform(AbstractTransform):
    """Background to exactly 0 and intensities into [0, 1]; the brain mask moves from ``seg`` to ``mask``."""

    def __call__(self, **data_dict):
        mask = data_dict.pop("seg") > 0.5
        data = np.clip(data_dict["data"], 0.0, 1.0) * mask
        data_dict["data"] = data.astype(np.float32, copy=False)
        data_dict["mask"] = mask.astype(np.uint8)
        return data_dict


def build_augmentation(params: dict, patch_size: Sequence[int]) -> list[AbstractTransform]:
    """The transforms of method_numbers.md ("Anomaly synthesis") from the plans' ``augmentation`` entry."""
    del patch_size  # the loader already cuts patches of the network's size
    transforms: list[AbstractTransform] = [
        BatchedSpatialTransform(params["rotation_probability"], params["rotation_deg"], params["scale_probability"],
                                params["scale_range"], params["elastic_probability"]),
        # Each in-plane axis is flipped with probability mirror_probability.
        AxisMirrorTransform(params["mirror_probability"], axes=(0, 1)),
        BrightnessMultiplicativeTransform(tuple(params["brightness_range"]), per_channel=True,
                                          p_per_sample=params["brightness_probability"]),
        GammaTransform(tuple(params["gamma_range"]), invert_image=False, per_channel=True, retain_stats=False,
                       p_per_sample=params["gamma_probability"]),
        GammaTransform(tuple(params["gamma_range"]), invert_image=True, per_channel=True, retain_stats=False,
                       p_per_sample=params["gamma_probability"]),
        # batchgenerators uses the drawn "variance" as the standard deviation: σ ~ U(0, max).
        GaussianNoiseTransform((0.0, params["noise_sigma_max"]), p_per_sample=params["noise_probability"]),
        # Blur is an acquisition effect: drawn per sample (p = blur_probability), one σ for every
        # channel of the sample.
        GaussianBlurTransform(tuple(params["blur_sigma_range"]), different_sigma_per_channel=False,
                              p_per_sample=params["blur_probability"], p_per_channel=1.0),
        MaskAndClipTransform(),
    ]
    return transforms
