"""Building blocks shared by the EDSR-PyTorch style families (EDSR, LEDSR, RIRSR, RCAN).

They follow the layer names of EDSR-PyTorch ``model/common.py`` (also used by the ASSL/SRP code), so
recipes can name layers as the official code does: ``MeanShift`` is a frozen 1x1 ``Conv2d``,
``ResBlock.body = Sequential(conv, ReLU, conv)``, ``Upsampler`` is a ``Sequential`` of
``conv(F, r*r*F) + PixelShuffle(r)`` stages.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["DIV2K_RGB_MEAN", "default_conv", "MeanShift", "ResBlock", "Upsampler", "check_scale"]

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def check_scale(scale: int, allowed: tuple[int, ...] = (2, 3, 4)) -> int:
    """Return ``scale`` as an int or raise ``ValueError`` naming the allowed factors."""
    if int(scale) != scale or int(scale) not in allowed:
        raise ValueError(f"scale must be one of {allowed}, got {scale!r}")
    return int(scale)


def default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """``Conv2d`` with "same" padding ``kernel_size // 2`` (EDSR-PyTorch ``default_conv``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """Frozen 1x1 conv: identity weight and bias ``sign * rgb_range * mean`` (``sign=-1`` subtracts)."""

    def __init__(self, rgb_range: float, rgb_mean=DIV2K_RGB_MEAN, rgb_std=(1.0, 1.0, 1.0), sign: int = -1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(rgb_std, dtype=torch.float32)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(rgb_mean, dtype=torch.float32) / std)
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """EDSR residual block ``x + res_scale * conv(relu(conv(x)))`` without BatchNorm."""

    def __init__(self, n_feats: int, kernel_size: int = 3, res_scale: float = 1.0, conv=default_conv):
        super().__init__()
        self.body = nn.Sequential(
            conv(n_feats, n_feats, kernel_size), nn.ReLU(inplace=True), conv(n_feats, n_feats, kernel_size)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x).mul(self.res_scale)
        return res + x


class Upsampler(nn.Sequential):
    """``log2(s)`` stages of ``conv(F, 4F) + PixelShuffle(2)`` for s = 2^n, one ``conv(F, 9F) + PixelShuffle(3)`` for 3."""

    def __init__(self, scale: int, n_feats: int, conv=default_conv):
        m: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                m += [conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2)]
        elif scale == 3:
            m += [conv(n_feats, 9 * n_feats, 3), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"Upsampler supports scale 2^n or 3, got {scale}")
        super().__init__(*m)
