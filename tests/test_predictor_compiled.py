"""The compiled, fixed-batch predictor gives the maps of the eager one (issue 13: correctness first)."""
from pathlib import Path

import numpy as np
import torch

from disyre_v2.inference.model_loading import LoadedModel
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.training.network.builder import build_network
from tests.test_predictor import plans_for


def tiny_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network({"class_name": "DisyreUNet", "kwargs": {
        "in_channels": 1, "out_channels": 1, "widths": [8, 16], "num_res_blocks_down": 1, "num_res_blocks_up": 1,
        "attention_levels": [1], "mid_attention": True, "attention_head_dim": 8, "norm_groups": 4,
        "time_embed_dim": 16, "time_hidden_dim": 32, "conditional": True}}).eval()


def test_compiled_predictor_with_fixed_batches_equals_eager_in_fp32():
    rng = np.random.default_rng(0)
    mask = np.zeros((5, 30, 26), bool)
    mask[1:4, 4:27, 3:23] = True
    data = (rng.random((1, 5, 30, 26)) * mask).astype(np.float32)
    network = tiny_network()
    maps = {}
    for compiled in (False, True):
        predictor = DisyrePredictor(plans_for(1), "2d_small", [LoadedModel(network, True, Path("m"))],
                                    batch_windows=5, compile=compiled)
        maps[compiled], restoration = predictor.predict_preprocessed(data, mask, with_restoration=True)
        if compiled:
            assert not predictor._networks[id(network)].failed  # it really ran compiled
    np.testing.assert_allclose(maps[True], maps[False], atol=1e-4)
    assert maps[False].max() > 0
