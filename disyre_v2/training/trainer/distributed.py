"""torch.distributed set-up for torchrun: NCCL on GPUs, gloo on CPU."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistributedContext:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    logger.info("Distributed training: rank %d of %d (local rank %d, backend %s).", rank, world_size, local_rank, backend)
    return DistributedContext(rank, local_rank, world_size)


def all_reduce_mean(value: float, context: DistributedContext, device: torch.device) -> float:
    if not context.enabled:
        return value
    return float(all_reduce_mean_tensor(torch.tensor([value], dtype=torch.float64, device=device), context).item())


def all_reduce_max(values: list[float], context: DistributedContext, device: torch.device) -> list[float]:
    """Element-wise maximum over ranks (every rank gets the same numbers)."""
    if not context.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def all_reduce_mean_tensor(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Mean over ranks of a tensor on the training device (one all-reduce for many values)."""
    if not context.enabled:
        return values
    values = values.to(torch.float64)
    dist.all_reduce(values)
    return values / context.world_size


def check_ranks_agree(network: torch.nn.Module, first_batch: str, context: DistributedContext,
                      device: torch.device) -> None:
    """After training: every rank must hold the same weights (DDP's promise) and must have drawn
    different data (its own stream). Logged on rank 0; differing weights raise."""
    with torch.no_grad():
        checksum = sum(float(p.double().sum()) + float(p.double().abs().sum()) for p in network.parameters())
    gathered: list = [None] * context.world_size
    dist.all_gather_object(gathered, (checksum, hashlib.sha1(first_batch.encode()).hexdigest()))
    checksums = [c for c, _ in gathered]
    distinct_batches = len({b for _, b in gathered})
    if context.is_main:
        logger.info("Parameters %s on %d ranks (checksums %s); first batches differ on %d of %d ranks.",
                    "identical" if len(set(checksums)) == 1 else "DIFFERENT", context.world_size, checksums,
                    distinct_batches, context.world_size)
    if len(set(checksums)) != 1:
        raise RuntimeError(f"Parameters differ across ranks after training: checksums {checksums}.")


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
