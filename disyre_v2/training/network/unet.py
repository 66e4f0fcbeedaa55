"""DisyreUNet: the 2D U-Net P(x, t) of cold diffusion, predicting the healthy image x0 directly.

Layout (method_numbers.md ("Network")), with L = len(widths) levels:
- conv_in 3x3 to widths[0];
- encoder level l: `num_res_blocks_down` residual blocks (each followed by self-attention when
  l is in `attention_levels`), then a stride-2 convolution except at the lowest level;
- middle block at the lowest level: residual, self-attention (if `mid_attention`), residual;
- decoder level l (from the lowest up): `num_res_blocks_up` residual blocks, each concatenating
  one encoder feature map of the same level (the level's input, then every block's output, taken
  in reverse order), attention as in the encoder, then nearest upsampling + 3x3 convolution
  except at level 0;
- GroupNorm, SiLU, conv_out 3x3 to `out_channels`.
With num_res_blocks_up = num_res_blocks_down + 1 every encoder feature map is used exactly once;
with fewer decoder blocks the earliest maps of a level are not reused, with more the extra blocks
have no skip input. The time embedding is added inside every residual block.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from disyre_v2.training.network.attention import SelfAttention2d
from disyre_v2.training.network.resampling import Downsample, Upsample
from disyre_v2.training.network.residual_block import ResidualBlock, check_groups
from disyre_v2.training.network.time_embedding import TimeEmbedding

logger = logging.getLogger(__name__)


class _Level(nn.Module):
    """Residual blocks of one resolution, their optional attention, and an optional resampler."""

    def __init__(self, blocks: list[ResidualBlock], attentions: list[nn.Module] | None,
                 resample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attentions = nn.ModuleList(attentions) if attentions is not None else None
        self.resample = resample

    def block(self, index: int, h: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:
        h = self.blocks[index](h, time)
        if self.attentions is not None:
            h = self.attentions[index](h)
        return h


class DisyreUNet(nn.Module):
    """2D U-Net P(x, t) -> x0 estimate with the same shape as x. See the module docstring."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: Sequence[int],
        num_res_blocks_down: int,
        num_res_blocks_up: int,
        attention_levels: Sequence[int],
        mid_attention: bool,
        attention_head_dim: int,
        norm_groups: int,
        time_embed_dim: int,
        time_hidden_dim: int,
        conditional: bool = True,
    ):
        super().__init__()
        widths = [int(w) for w in widths]
        attention_levels = sorted({int(a) for a in attention_levels})
        _validate(in_channels, out_channels, widths, num_res_blocks_down, num_res_blocks_up,
                  attention_levels, norm_groups)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.conditional = bool(conditional)
        self.num_levels = len(widths)
        self.num_res_blocks_down = int(num_res_blocks_down)
        self.num_res_blocks_up = int(num_res_blocks_up)

        time_dim = time_hidden_dim if conditional else None
        self.time_embedding = TimeEmbedding(time_embed_dim, time_hidden_dim) if conditional else None

        def attentions(level: int, count: int) -> list[nn.Module] | None:
            if level not in attention_levels:
                return None
            return [SelfAttention2d(widths[level], attention_head_dim, norm_groups)
                    for _ in range(count)]

        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)

        # Encoder; skip_channels[l] lists the channels of the feature maps level l hands over.
        self.encoder = nn.ModuleList()
        skip_channels: list[list[int]] = []
        channels = widths[0]
        for level, width in enumerate(widths):
            level_skips = [channels]
            blocks = []
            for _ in range(num_res_blocks_down):
                blocks.append(ResidualBlock(channels, width, time_dim, norm_groups))
                channels = width
                level_skips.append(channels)
            skip_channels.append(level_skips)
            is_lowest = level == self.num_levels - 1
            self.encoder.append(_Level(blocks, attentions(level, num_res_blocks_down),
                                       None if is_lowest else Downsample(channels)))

        self.mid_block1 = ResidualBlock(channels, channels, time_dim, norm_groups)
        self.mid_attention = (SelfAttention2d(channels, attention_head_dim, norm_groups)
                              if mid_attention else None)
        self.mid_block2 = ResidualBlock(channels, channels, time_dim, norm_groups)

        # Decoder, stored from the lowest level up (the order it runs in).
        self.decoder = nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            pending = list(skip_channels[level])
            blocks = []
            for _ in range(num_res_blocks_up):
                skip = pending.pop() if pending else 0
                blocks.append(ResidualBlock(channels + skip, widths[level], time_dim, norm_groups))
                channels = widths[level]
            self.decoder.append(_Level(blocks, attentions(level, num_res_blocks_up),
                                       Upsample(channels) if level > 0 else None))

        self.norm_out = nn.GroupNorm(norm_groups, channels)
        self.act_out = nn.SiLU()
        self.conv_out = nn.Conv2d(channels, out_channels, 3, padding=1)
        logger.debug("DisyreUNet with %d parameters", sum(p.numel() for p in self.parameters()))

    @property
    def size_divisor(self) -> int:
        """Height and width of the input must be multiples of this (one halving per level)."""
        return 2 ** (self.num_levels - 1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError naming the problem if x is not a (B, in_channels, H, W) batch that fits."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"DisyreUNet expects input of shape (B, {self.in_channels}, H, W), got "
                f"{tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if height % self.size_divisor or width % self.size_divisor:
            raise ValueError(
                f"patch size {height}x{width} is not divisible by {self.size_divisor} "
                f"(2^{self.num_levels - 1}, required by {self.num_levels} U-Net levels); "
                f"use a patch size that is a multiple of {self.size_divisor}"
            )

    def _time_features(self, t: torch.Tensor | int | None, batch: int,
                       device: torch.device) -> torch.Tensor | None:
        if not self.conditional:
            return None  # the unconditional model ignores t (method_numbers.md ("Network"))
        if t is None:
            raise ValueError("this DisyreUNet is conditional: forward(x, t) needs the levels t")
        t = torch.as_tensor(t, device=device)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(
                f"t must hold integer severity levels (int64), got dtype {t.dtype}; "
                "convert a severity to its level with SeverityScheduler.level_of first"
            )
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must have shape ({batch},) to match the batch, got {tuple(t.shape)}")
        return self.time_embedding(t)

    def forward(self, x: torch.Tensor, t: torch.Tensor | int | None = None) -> torch.Tensor:
        """x: (B, in_channels, H, W); t: (B,) int64 levels (or one int for all); ignored if
        unconditional. Returns the x0 estimate, (B, out_channels, H, W)."""
        self.check_input(x)
        time = self._time_features(t, x.shape[0], x.device)

        h = self.conv_in(x)
        skips = [h]
        for level in self.encoder:
            for index in range(len(level.blocks)):
                h = level.block(index, h, time)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)

        h = self.mid_block1(h, time)
        if self.mid_attention is not None:
            h = self.mid_attention(h)
        h = self.mid_block2(h, time)

        per_level = self.num_res_blocks_down + 1
        for level in self.decoder:
            level_skips = skips[-per_level:]
            del skips[-per_level:]
            for index in range(len(level.blocks)):
                if level_skips:
                    h = torch.cat([h, level_skips.pop()], dim=1)
                h = level.block(index, h, time)
            if level.resample is not None:
                h = level.resample(h)

        return self.conv_out(self.act_out(self.norm_out(h)))


def _validate(in_channels: int, out_channels: int, widths: list[int], num_res_blocks_down: int,
              num_res_blocks_up: int, attention_levels: list[int], norm_groups: int) -> None:
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be a non-empty list of positive channel counts, got {widths}")
    if num_res_blocks_down < 1 or num_res_blocks_up < 1:
        raise ValueError(
            "num_res_blocks_down and num_res_blocks_up must be >= 1, got "
            f"{num_res_blocks_down}, {num_res_blocks_up}"
        )
    bad = [a for a in attention_levels if not 0 <= a < len(widths)]
    if bad:
        raise ValueError(
            f"attention_levels {bad} are not levels of a {len(widths)}-level U-Net "
            f"(valid: 0..{len(widths) - 1})"
        )
    for width in widths:
        check_groups(width, norm_groups, "DisyreUNet widths")
