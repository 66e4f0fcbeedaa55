"""Build the network named in plans.json ("network": {"class_name": ..., "kwargs": {...}}).

An explicit registry rather than searching modules for a class of that name: what can be built is
visible here, and a typo fails with the list of valid names.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from torch import nn

from disyre_v2.training.network.unet import DisyreUNet
from disyre_v2.training.network.cutpaste_net import CutPasteNet
from disyre_v2.training.network.vae import ConvVAE

NETWORK_REGISTRY: dict[str, type[nn.Module]] = {
    "DisyreUNet": DisyreUNet,
    "ConvVAE": ConvVAE,
    "CutPasteNet": CutPasteNet,
}


def with_level_input(network_plans: Mapping[str, Any], conditional: bool) -> dict:
    """``network_plans`` with the U-Net's level input switched on or off. Checkpoints store the plans'
    network and ``conditional`` apart; networks without a level input (the VAE) are returned as they are."""
    plans = json.loads(json.dumps(dict(network_plans)))
    if plans.get("class_name") == "DisyreUNet":
        plans.setdefault("kwargs", {})["conditional"] = bool(conditional)
    return plans


def build_network(network_plans: Mapping[str, Any]) -> nn.Module:
    """Instantiate `network_plans["class_name"]` from NETWORK_REGISTRY with `network_plans["kwargs"]`."""
    if not isinstance(network_plans, Mapping) or "class_name" not in network_plans:
        raise ValueError(
            "network plans must be a mapping with 'class_name' and 'kwargs' "
            f"(the 'network' entry of a configuration in plans.json), got {network_plans!r}"
        )
    class_name = network_plans["class_name"]
    if class_name not in NETWORK_REGISTRY:
        raise ValueError(
            f"unknown network class_name {class_name!r} in the plans; known: "
            f"{', '.join(sorted(NETWORK_REGISTRY))}"
        )
    kwargs = network_plans.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"network 'kwargs' must be a mapping, got {type(kwargs).__name__}")
    try:
        return NETWORK_REGISTRY[class_name](**kwargs)
    except TypeError as error:
        # Missing or misspelt keys: say which class and which keys were given.
        raise ValueError(
            f"network plans kwargs {sorted(kwargs)} do not fit {class_name}: {error}"
        ) from error
