"""SeededRandomness: the one way a synthesis or augmentation transform owns its randomness.

Every random draw of a transform comes from its own numpy Generator, ``self.rng``, never from the
global state. The loader's BatchSeededCompose (training/augmentation.py) calls ``reseed`` with a
child SeedSequence of the batch's seed before every batch, so a batch is the same whichever worker
process makes it and whatever that worker made before (the brief: same seed, same batches).
"""
from __future__ import annotations

import numpy as np

Seed = int | np.random.SeedSequence | None


class SeededRandomness:
    """Mixin: ``self.rng`` and ``reseed``; call ``self.reseed(seed)`` in ``__init__``."""

    rng: np.random.Generator

    def reseed(self, seed: Seed) -> None:
        """Restart the random stream from ``seed`` (state that is content, not randomness, such as a
        foreign-patch cache, is kept, so a loader may reseed before every batch)."""
        self.rng = np.random.default_rng(seed)
