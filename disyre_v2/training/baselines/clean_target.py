"""The "corruption" of an autoencoder: none. The network reconstructs the clean slice itself."""
from __future__ import annotations

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform


class CleanTargetTransform(AbstractTransform):
    """``target`` = ``data``, ``t`` = 0; the input is left as it is."""

    def __call__(self, **data_dict):
        data_dict["target"] = np.asarray(data_dict["data"], np.float32)
        data_dict["t"] = np.zeros(len(data_dict["data"]), np.int64)
        return data_dict
