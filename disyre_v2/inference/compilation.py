"""The network as the predictor runs it: compiled with torch.compile on CUDA (channels-last), eager
elsewhere, and back to eager with a warning if compilation fails on the first batch."""
from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


class CompiledNetwork:
    """Calls ``network(x, t)`` through ``torch.compile``; a failure to compile falls back to eager.

    The predictor feeds batches of one fixed shape (it pads the last one), so the graph compiles once.
    """

    def __init__(self, network: torch.nn.Module, channels_last: bool = False):
        self.network = network.to(memory_format=torch.channels_last) if channels_last else network
        self.channels_last = channels_last
        self.compiled = torch.compile(self.network, dynamic=False)
        self.failed = False

    def __call__(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.failed:
            return self.network(x, t)
        try:
            return self.compiled(x, t)
        except torch.OutOfMemoryError:
            raise  # not a compiler failure: eager would run out of memory as well
        except Exception as error:  # noqa: BLE001 - any compiler failure: the eager network still works
            logger.warning("torch.compile failed (%s: %s); predicting with the eager network.",
                           type(error).__name__, (str(error).splitlines() or [""])[0][:200])
            self.failed = True
            return self.network(x, t)
