"""RCAN: Image Super-Resolution Using Very Deep Residual Channel Attention Networks (Zhang et al., ECCV 2018).

Layout follows the official RCAN (EDSR-PyTorch based) code: ``sub_mean``, ``add_mean``, ``head``,
``body = Sequential(G ResidualGroup, conv)``, ``ResidualGroup.body = Sequential(R RCAB, conv)``,
``RCAB.body = Sequential(conv, ReLU, conv, CALayer)``, ``CALayer.conv_du = Sequential(conv1x1(F, F/r),
ReLU, conv1x1(F/r, F), Sigmoid)``, ``tail = Sequential(Upsampler, conv(F, 3))``.

For a pruning analysis: the nested residual stream of RIRSR plus channel attention, a broadcast
multiply ``x * sigmoid(...)`` of a (N, F, 1, 1) tensor, which couples the attention's last conv with
the RCAB's second conv and lets the squeeze conv (F/r channels) be pruned independently.

Parameters (G10 R20 F64, reduction 16, 24 frozen MeanShift parameters included): 15.44M x2,
15.63M x3, 15.59M x4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ._builder import build_model
from ._layers import MeanShift, Upsampler, check_scale, default_conv
from ._registry import register_model

__all__ = ["CALayer", "RCAB", "ResidualGroup", "RCAN"]


class CALayer(nn.Module):
    """Channel attention: ``x * sigmoid(conv(relu(conv(avgpool(x)))))``."""

    def __init__(self, channel: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, padding=0, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel // reduction, channel, 1, padding=0, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel attention block ``x + res_scale * CA(conv(relu(conv(x))))``.

    The official RCAB ignores ``res_scale`` (its multiply is commented out); the default 1 is identical.
    """

    def __init__(self, n_feats: int, kernel_size: int = 3, reduction: int = 16, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(
            default_conv(n_feats, n_feats, kernel_size),
            nn.ReLU(inplace=True),
            default_conv(n_feats, n_feats, kernel_size),
            CALayer(n_feats, reduction),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mul(self.res_scale) + x


class ResidualGroup(nn.Module):
    """``x + Sequential(R RCAB, conv)(x)``."""

    def __init__(self, n_feats: int, n_resblocks: int, kernel_size: int = 3, reduction: int = 16,
                 res_scale: float = 1.0):
        super().__init__()
        body: list[nn.Module] = [RCAB(n_feats, kernel_size, reduction, res_scale) for _ in range(n_resblocks)]
        body.append(default_conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RCAN(nn.Module):
    """RCAN: ``sub_mean -> head -> body (+ global skip) -> tail (Upsampler, conv) -> add_mean`` (inputs in [0, rgb_range])."""

    def __init__(
        self,
        scale: int = 2,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        res_scale: float = 1.0,
        rgb_range: float = 255,
        n_colors: int = 3,
        kernel_size: int = 3,
    ):
        super().__init__()
        if n_colors != 3:
            raise ValueError(f"n_colors must be 3 (MeanShift holds an RGB mean), got {n_colors}")
        if n_feats // reduction < 1:
            raise ValueError(f"n_feats // reduction must be >= 1, got n_feats={n_feats}, reduction={reduction}")
        self.scale = check_scale(scale)
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, kernel_size))
        body: list[nn.Module] = [
            ResidualGroup(n_feats, n_resblocks, kernel_size, reduction, res_scale) for _ in range(n_resgroups)
        ]
        body.append(default_conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(Upsampler(self.scale, n_feats), default_conv(n_feats, n_colors, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(x)
        x = self.head(x)
        res = self.body(x) + x
        return self.add_mean(self.tail(res))


def _create_rcan(variant: str, **kwargs) -> RCAN:
    return build_model(RCAN, variant, **kwargs)


@register_model
def rcan_x2(**kwargs) -> RCAN:
    """RCAN x2 (G10, R20, F64, reduction 16)."""
    model_args = dict(scale=2, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16)
    return _create_rcan("rcan_x2", **dict(model_args, **kwargs))


@register_model
def rcan_x3(**kwargs) -> RCAN:
    """RCAN x3 (G10, R20, F64, reduction 16)."""
    model_args = dict(scale=3, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16)
    return _create_rcan("rcan_x3", **dict(model_args, **kwargs))


@register_model
def rcan_x4(**kwargs) -> RCAN:
    """RCAN x4 (G10, R20, F64, reduction 16)."""
    model_args = dict(scale=4, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16)
    return _create_rcan("rcan_x4", **dict(model_args, **kwargs))
