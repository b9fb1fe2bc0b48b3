"""PAN: Efficient Image Super-Resolution Using Pixel Attention (Zhao et al., ECCVW 2020).

Layout follows the official PAN / BasicSR ``PAN_arch.py``: ``conv_first``, ``SCPA_trunk`` (16 SC-PA
blocks), ``trunk_conv`` with a skip from ``conv_first``, U-PA upsampling (``nearest`` interpolate,
``upconv1``, pixel attention ``att1``, ``HRconv1``; a second stage ``upconv2/att2/HRconv2`` for x4),
``conv_last`` and a bilinear-upsampled input skip. Our argument names: ``n_feats`` (official ``nf``),
``n_feats_up`` (``unf``), ``n_blocks`` (``nb``). Images in [0, 1]; no mean shift.

SC-PA: two 1x1 branches ``conv1_a`` / ``conv1_b`` (F -> F/2), a plain 3x3 ``k1`` and a PAConv
(``k3(x) * sigmoid(k2(x))`` then ``k4``), concat, 1x1 ``conv3`` (F -> F) and a residual add.

For a pruning analysis: pixel attention (an elementwise multiply of two conv outputs, which couples
``k3`` with ``k2`` and ``upconv`` with ``att.conv``), a two-branch concat, bias-free convs, a residual
stream, nearest/bilinear interpolation (channel-preserving), and no pixel shuffle.

Parameters (F40, UNF24, 16 blocks): 261K x2, 261K x3, 272K x4.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._builder import build_model
from ._layers import check_scale
from ._registry import register_model

__all__ = ["PAN"]


class PA(nn.Module):
    """Pixel attention ``x * sigmoid(conv1x1(x))``."""

    def __init__(self, nf: int):
        super().__init__()
        self.conv = nn.Conv2d(nf, nf, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mul(x, self.sigmoid(self.conv(x)))


class PAConv(nn.Module):
    """``k4(k3(x) * sigmoid(k2(x)))`` with bias-free 3x3 ``k3``, ``k4``."""

    def __init__(self, nf: int, k_size: int = 3):
        super().__init__()
        self.k2 = nn.Conv2d(nf, nf, 1)
        self.sigmoid = nn.Sigmoid()
        self.k3 = nn.Conv2d(nf, nf, k_size, padding=(k_size - 1) // 2, bias=False)
        self.k4 = nn.Conv2d(nf, nf, k_size, padding=(k_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k4(torch.mul(self.k3(x), self.sigmoid(self.k2(x))))


class SCPA(nn.Module):
    """Self-calibrated block with pixel attention (reduction 2)."""

    def __init__(self, nf: int, reduction: int = 2):
        super().__init__()
        group_width = nf // reduction
        self.conv1_a = nn.Conv2d(nf, group_width, 1, bias=False)
        self.conv1_b = nn.Conv2d(nf, group_width, 1, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(group_width, group_width, 3, padding=1, bias=False))
        self.PAConv = PAConv(group_width)
        self.conv3 = nn.Conv2d(group_width * reduction, nf, 1, bias=False)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_a = self.lrelu(self.k1(self.lrelu(self.conv1_a(x))))
        out_b = self.lrelu(self.PAConv(self.lrelu(self.conv1_b(x))))
        return self.conv3(torch.cat([out_a, out_b], dim=1)) + x


class PAN(nn.Module):
    """PAN: ``conv_first -> SCPA x nb -> trunk_conv (+) -> U-PA stages -> conv_last (+ bilinear input)``."""

    def __init__(self, scale: int = 2, n_feats: int = 40, n_feats_up: int = 24, n_blocks: int = 16, n_colors: int = 3):
        super().__init__()
        self.scale = check_scale(scale)
        self.rgb_range = 1
        self.conv_first = nn.Conv2d(n_colors, n_feats, 3, 1, 1, bias=True)
        self.SCPA_trunk = nn.Sequential(*(SCPA(n_feats) for _ in range(n_blocks)))
        self.trunk_conv = nn.Conv2d(n_feats, n_feats, 3, 1, 1, bias=True)
        self.upconv1 = nn.Conv2d(n_feats, n_feats_up, 3, 1, 1, bias=True)
        self.att1 = PA(n_feats_up)
        self.HRconv1 = nn.Conv2d(n_feats_up, n_feats_up, 3, 1, 1, bias=True)
        if self.scale == 4:
            self.upconv2 = nn.Conv2d(n_feats_up, n_feats_up, 3, 1, 1, bias=True)
            self.att2 = PA(n_feats_up)
            self.HRconv2 = nn.Conv2d(n_feats_up, n_feats_up, 3, 1, 1, bias=True)
        self.conv_last = nn.Conv2d(n_feats_up, n_colors, 3, 1, 1, bias=True)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def _upa(self, x: torch.Tensor, factor: int, upconv: nn.Module, att: nn.Module, hrconv: nn.Module) -> torch.Tensor:
        x = upconv(F.interpolate(x, scale_factor=factor, mode="nearest"))
        return self.lrelu(hrconv(self.lrelu(att(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))
        if self.scale == 4:
            fea = self._upa(fea, 2, self.upconv1, self.att1, self.HRconv1)
            fea = self._upa(fea, 2, self.upconv2, self.att2, self.HRconv2)
        else:
            fea = self._upa(fea, self.scale, self.upconv1, self.att1, self.HRconv1)
        ilr = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.conv_last(fea) + ilr


def _create_pan(variant: str, **kwargs) -> PAN:
    return build_model(PAN, variant, **kwargs)


@register_model
def pan_x2(**kwargs) -> PAN:
    """PAN x2 (F40, UNF24, 16 SC-PA blocks)."""
    model_args = dict(scale=2, n_feats=40, n_feats_up=24, n_blocks=16)
    return _create_pan("pan_x2", **dict(model_args, **kwargs))


@register_model
def pan_x3(**kwargs) -> PAN:
    """PAN x3 (F40, UNF24, 16 SC-PA blocks)."""
    model_args = dict(scale=3, n_feats=40, n_feats_up=24, n_blocks=16)
    return _create_pan("pan_x3", **dict(model_args, **kwargs))


@register_model
def pan_x4(**kwargs) -> PAN:
    """PAN x4 (F40, UNF24, 16 SC-PA blocks)."""
    model_args = dict(scale=4, n_feats=40, n_feats_up=24, n_blocks=16)
    return _create_pan("pan_x4", **dict(model_args, **kwargs))
