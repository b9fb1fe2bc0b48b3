"""IMDN: Lightweight Image Super-Resolution with Information Multi-distillation Network (Hui et al., ACM MM 2019).

Layout follows the official IMDN ``architecture.py`` / ``block.py`` (BasicSR names in brackets):
``fea_conv``, six ``IMDModule`` s ``IMDB1..IMDB6``, ``c = Sequential(conv1x1(6F, F), LeakyReLU(0.05))``,
``LR_conv`` with a global skip from ``fea_conv``, ``upsampler = Sequential(conv(F, 3 s^2), PixelShuffle(s))``.
Our argument names: ``n_feats`` (official ``nf``), ``n_modules`` (``num_modules``), ``scale`` (``upscale``).
Images in [0, 1]; no mean shift.

Each IMDB: ``c1`` (F -> F), then ``torch.split`` into distilled ``d = F/4`` and remaining ``F - d``
channels three times (``c2``, ``c3`` read the remaining part), ``c4`` (F-d -> d), ``cat`` of the four
distilled parts, contrast-aware channel attention (CCA: ``std + mean`` over space, 1x1 convs, sigmoid,
multiply), ``c5`` 1x1 (4d -> F) and a residual add.

For a pruning analysis: channel split (segments of one conv's output go to different consumers, so
pruning ``c1``/``c2``/``c3`` must respect the split sizes that are constants in forward), concat,
statistics (std over space) that keep channels independent, a broadcast multiply by the attention, a
residual stream, a 6-way concat into a 1x1 conv, and pixel shuffle.

Parameters (F64, 6 IMDBs): 694K x2, 703K x3, 715K x4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ._builder import build_model
from ._layers import check_scale
from ._registry import register_model

__all__ = ["IMDN"]


def conv_layer(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """``Conv2d`` with "same" padding and bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2, bias=True)


class CCALayer(nn.Module):
    """Contrast-aware channel attention: ``x * sigmoid(conv_du(std(x) + mean(x)))`` (statistics over H, W)."""

    def __init__(self, channel: int, reduction: int = 16):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, padding=0, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel // reduction, channel, 1, padding=0, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).pow(0.5)
        return x * self.conv_du(std + mean)


class IMDModule(nn.Module):
    """Information multi-distillation block (distillation rate 0.25)."""

    def __init__(self, in_channels: int, distillation_rate: float = 0.25):
        super().__init__()
        self.distilled_channels = int(in_channels * distillation_rate)
        self.remaining_channels = int(in_channels - self.distilled_channels)
        d, r = self.distilled_channels, self.remaining_channels
        self.c1 = conv_layer(in_channels, in_channels, 3)
        self.c2 = conv_layer(r, in_channels, 3)
        self.c3 = conv_layer(r, in_channels, 3)
        self.c4 = conv_layer(r, d, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = conv_layer(d * 4, in_channels, 1)
        self.cca = CCALayer(d * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled_channels, self.remaining_channels)
        distilled_c1, remaining_c1 = torch.split(self.act(self.c1(x)), split, dim=1)
        distilled_c2, remaining_c2 = torch.split(self.act(self.c2(remaining_c1)), split, dim=1)
        distilled_c3, remaining_c3 = torch.split(self.act(self.c3(remaining_c2)), split, dim=1)
        out_c4 = self.c4(remaining_c3)
        out = torch.cat([distilled_c1, distilled_c2, distilled_c3, out_c4], dim=1)
        return self.c5(self.cca(out)) + x


class IMDN(nn.Module):
    """IMDN: ``fea_conv -> IMDB x n -> c(cat) -> LR_conv (+ fea) -> upsampler``; images in [0, 1]."""

    def __init__(self, scale: int = 2, n_feats: int = 64, n_modules: int = 6, n_colors: int = 3):
        super().__init__()
        if 4 * int(n_feats * 0.25) < 16:
            raise ValueError(f"n_feats must be >= 16 (CCA squeezes 4 * n_feats // 4 channels by 16), got {n_feats}")
        self.scale = check_scale(scale)
        self.rgb_range = 1
        self.n_modules = n_modules
        self.fea_conv = conv_layer(n_colors, n_feats, 3)
        for i in range(n_modules):
            self.add_module(f"IMDB{i + 1}", IMDModule(n_feats))
        self.c = nn.Sequential(conv_layer(n_feats * n_modules, n_feats, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv_layer(n_feats, n_feats, 3)
        self.upsampler = nn.Sequential(conv_layer(n_feats, n_colors * self.scale**2, 3), nn.PixelShuffle(self.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_fea = self.fea_conv(x)
        outs, out = [], out_fea
        for i in range(self.n_modules):
            out = getattr(self, f"IMDB{i + 1}")(out)
            outs.append(out)
        out_lr = self.LR_conv(self.c(torch.cat(outs, dim=1))) + out_fea
        return self.upsampler(out_lr)


def _create_imdn(variant: str, **kwargs) -> IMDN:
    return build_model(IMDN, variant, **kwargs)


@register_model
def imdn_x2(**kwargs) -> IMDN:
    """IMDN x2 (F64, 6 IMDBs)."""
    model_args = dict(scale=2, n_feats=64, n_modules=6)
    return _create_imdn("imdn_x2", **dict(model_args, **kwargs))


@register_model
def imdn_x3(**kwargs) -> IMDN:
    """IMDN x3 (F64, 6 IMDBs)."""
    model_args = dict(scale=3, n_feats=64, n_modules=6)
    return _create_imdn("imdn_x3", **dict(model_args, **kwargs))


@register_model
def imdn_x4(**kwargs) -> IMDN:
    """IMDN x4 (F64, 6 IMDBs)."""
    model_args = dict(scale=4, n_feats=64, n_modules=6)
    return _create_imdn("imdn_x4", **dict(model_args, **kwargs))
