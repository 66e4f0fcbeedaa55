"""Forward+backward throughput of DisyreUNet (samples/s) for the `2d` and `2d_small` networks.

Usage:
    python benchmarks/network_throughput.py                 # auto device, default batch sizes
    python benchmarks/network_throughput.py --device cpu --steps 3 --configs 2d_small

On CUDA each configuration is measured eager and with torch.compile, each in fp32 and in bf16
autocast (the trainer's setting, method_numbers.md ("Training")). FLOPs per forward pass are counted once on the meta
device with torch.utils.flop_counter, so achieved TFLOP/s can be read off (a backward pass costs about
twice a forward pass).
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from disyre_v2.training.network import build_network

_COMMON = dict(
    in_channels=1, out_channels=1, num_res_blocks_down=2, num_res_blocks_up=3, mid_attention=True,
    attention_head_dim=8, time_embed_dim=32, time_hidden_dim=128, conditional=True,
)
# (network kwargs as in plans.json, patch size, batch on CUDA, batch on CPU)
CONFIGURATIONS = {
    "2d": (dict(_COMMON, widths=[32, 64, 96, 128, 256, 256], attention_levels=[4], norm_groups=32),
           128, 96, 2),
    "2d_small": (dict(_COMMON, widths=[16, 32, 64, 128], attention_levels=[3], norm_groups=8,
                      num_res_blocks_down=1, num_res_blocks_up=1),
                 64, 256, 8),
}


def forward_flops(kwargs: dict, patch: int) -> int:
    """FLOPs (2 per multiply-add) of one forward pass of one sample, counted without computing."""
    with torch.device("meta"):
        model = build_network({"class_name": "DisyreUNet", "kwargs": kwargs})
        x = torch.zeros(1, kwargs["in_channels"], patch, patch)
        t = torch.zeros(1, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, t)
    return counter.get_total_flops()


def measure(kwargs: dict, patch: int, batch: int, device: torch.device, use_compile: bool,
            bf16: bool, warmup: int, steps: int, seed: int = 0) -> float:
    """Samples per second of forward + MSE loss + backward, after `warmup` untimed steps."""
    torch.manual_seed(seed)
    model = build_network({"class_name": "DisyreUNet", "kwargs": kwargs}).to(device).train()
    step_model = torch.compile(model) if use_compile else model
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.rand(batch, kwargs["in_channels"], patch, patch, device=device, generator=generator)
    target = torch.rand(batch, kwargs["out_channels"], patch, patch, device=device,
                        generator=generator)
    t = torch.randint(0, 100, (batch,), device=device, generator=generator)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with autocast:
            loss = torch.nn.functional.mse_loss(step_model(x, t).float(), target)
        loss.backward()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda if available)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGURATIONS),
                        choices=list(CONFIGURATIONS), help="configurations to measure")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size for every configuration (default: per configuration and device)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1 CPU, 5 CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 3 CPU, 20 CUDA)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU intra-op threads (default: torch's choice)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    on_cuda = device.type == "cuda"
    warmup = args.warmup if args.warmup is not None else (5 if on_cuda else 1)
    steps = args.steps if args.steps is not None else (20 if on_cuda else 3)
    variants = [(False, False)]
    if on_cuda:
        variants += [(False, True)] + ([] if args.no_compile else [(True, False), (True, True)])
    name = torch.cuda.get_device_name(device) if on_cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; warmup {warmup}, timed steps {steps}")
    print(f"{'config':<10}{'patch':>6}{'batch':>7}{'params':>10}{'GFLOP/fwd':>11}"
          f"{'compile':>9}{'bf16':>6}{'samples/s':>11}{'TFLOP/s':>9}")
    for config in args.configs:
        kwargs, patch, cuda_batch, cpu_batch = CONFIGURATIONS[config]
        batch = args.batch or (cuda_batch if on_cuda else cpu_batch)
        flops = forward_flops(kwargs, patch)
        params = sum(p.numel() for p in build_network(
            {"class_name": "DisyreUNet", "kwargs": kwargs}).parameters())
        for use_compile, bf16 in variants:
            rate = measure(kwargs, patch, batch, device, use_compile, bf16, warmup, steps)
            # forward + backward ~ 3 forward passes of FLOPs
            print(f"{config:<10}{patch:>6}{batch:>7}{params / 1e6:>9.2f}M{flops / 1e9:>11.2f}"
                  f"{str(use_compile):>9}{str(bf16):>6}{rate:>11.1f}{3 * flops * rate / 1e12:>9.3f}",
                  flush=True)
        if on_cuda:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
