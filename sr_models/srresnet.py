"""SRResNet: the generator of "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network" (Ledig et al., CVPR 2017).

Layout: ``head = Sequential(conv9x9(3, F), PReLU)``, ``body`` of 16 residual blocks
``x + BN(conv(PReLU(BN(conv(x)))))``, ``body_tail = Sequential(conv3x3, BN)`` with a global skip from
the head, ``upsampler`` stages ``conv(F, r^2 F) + PixelShuffle(r) + PReLU``, and a final ``tail`` conv9x9.
Convs followed by BatchNorm have no bias. PReLU is per channel (``num_parameters=F``; the paper does
not specify it, the common Keras SRGAN shares the slope over space only). Images in [0, 1].

For a pruning analysis: BatchNorm (weights and running statistics follow their conv's output channels),
per-channel PReLU parameters (including one after a pixel shuffle, on the F shuffled channels), the
residual stream, and 9x9 convs.

Parameters (F64, 16 blocks): 1.40M x2, 1.59M x3, 1.55M x4.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ._builder import build_model
from ._layers import check_scale
from ._registry import register_model

__all__ = ["SRResNet"]


class ResidualBlock(nn.Module):
    """``x + BN(conv(PReLU(BN(conv(x)))))``."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, 1, 1, bias=False),
            nn.BatchNorm2d(n_feats),
            nn.PReLU(n_feats),
            nn.Conv2d(n_feats, n_feats, 3, 1, 1, bias=False),
            nn.BatchNorm2d(n_feats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class SRResNet(nn.Module):
    """SRResNet: ``head -> body -> body_tail (+ head) -> upsampler -> tail``; images in [0, 1]."""

    def __init__(self, scale: int = 4, n_feats: int = 64, n_resblocks: int = 16, n_colors: int = 3):
        super().__init__()
        self.scale = check_scale(scale)
        self.rgb_range = 1
        self.head = nn.Sequential(nn.Conv2d(n_colors, n_feats, 9, 1, 4), nn.PReLU(n_feats))
        self.body = nn.Sequential(*(ResidualBlock(n_feats) for _ in range(n_resblocks)))
        self.body_tail = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, 1, 1, bias=False), nn.BatchNorm2d(n_feats))
        up: list[nn.Module] = []
        factors = [3] if self.scale == 3 else [2] * int(math.log2(self.scale))
        for r in factors:
            up += [nn.Conv2d(n_feats, n_feats * r * r, 3, 1, 1), nn.PixelShuffle(r), nn.PReLU(n_feats)]
        self.upsampler = nn.Sequential(*up)
        self.tail = nn.Conv2d(n_feats, n_colors, 9, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        res = self.body_tail(self.body(x)) + x
        return self.tail(self.upsampler(res))


def _create_srresnet(variant: str, **kwargs) -> SRResNet:
    return build_model(SRResNet, variant, **kwargs)


@register_model
def srresnet_x2(**kwargs) -> SRResNet:
    """SRResNet x2 (F64, 16 blocks)."""
    model_args = dict(scale=2, n_feats=64, n_resblocks=16)
    return _create_srresnet("srresnet_x2", **dict(model_args, **kwargs))


@register_model
def srresnet_x3(**kwargs) -> SRResNet:
    """SRResNet x3 (F64, 16 blocks)."""
    model_args = dict(scale=3, n_feats=64, n_resblocks=16)
    return _create_srresnet("srresnet_x3", **dict(model_args, **kwargs))


@register_model
def srresnet_x4(**kwargs) -> SRResNet:
    """SRResNet x4 (F64, 16 blocks), the paper's configuration."""
    model_args = dict(scale=4, n_feats=64, n_resblocks=16)
    return _create_srresnet("srresnet_x4", **dict(model_args, **kwargs))
