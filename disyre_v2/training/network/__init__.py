"""The cold-diffusion network P(x, t) (method_numbers.md ("Network")) and its builder from plans.json."""
from disyre_v2.training.network.builder import NETWORK_REGISTRY, build_network
from disyre_v2.training.network.unet import DisyreUNet

__all__ = ["DisyreUNet", "NETWORK_REGISTRY", "build_network"]
