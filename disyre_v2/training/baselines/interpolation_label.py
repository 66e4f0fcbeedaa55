"""The label of Foreign Patch Interpolation (Tan et al., 2020/2022): the interpolation factor α·m.

FPI corrupts x with x' = (1 − α·m)·x + α·m·x_fp (our ``fpi`` synthesis, eq. 1 without rescaling)
and trains a network to predict, per pixel, how much of x' is foreign: α·m, by binary cross-entropy.
"""
from __future__ import annotations

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform


class InterpolationLabelTransform(AbstractTransform):
    """After the synthesis: ``label`` (B, 1, P, P) float32 = alpha_text · anomaly_mask (0 on clean samples)."""

    def __call__(self, **data_dict):
        for key in ("alpha_text", "anomaly_mask"):
            if key not in data_dict:
                raise KeyError(f"{type(self).__name__}: the batch has no {key!r}; run the anomaly synthesis first")
        alpha = np.asarray(data_dict["alpha_text"], np.float32).reshape(-1, 1, 1, 1)
        data_dict["label"] = (alpha * np.asarray(data_dict["anomaly_mask"], np.float32)).astype(np.float32)
        return data_dict
