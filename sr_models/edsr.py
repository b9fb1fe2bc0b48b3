"""EDSR: Enhanced Deep Residual Networks for Single Image Super-Resolution (Lim et al., CVPRW 2017).

Layout and layer names follow EDSR-PyTorch (``sub_mean``, ``add_mean``, ``head``, ``body``, ``tail``),
which the ASSL/SRP code inherits: ``tail.0`` is the ``Upsampler`` (``conv(F, 4F) + PixelShuffle(2)`` per
factor 2, or ``conv(F, 9F) + PixelShuffle(3)``) and ``tail.1`` the final ``conv(F, 3)``.

For a pruning analysis: one long residual stream (``head.0``, every ``body.i.body.2`` and ``body.R``
write into it, so their output channels are coupled), free inner convs ``body.i.body.0``, a scalar
``res_scale`` multiply, and pixel shuffle (block coupling of ``4F`` conv outputs onto ``F`` channels).

Parameters (including the 24 frozen MeanShift parameters):
``edsr_baseline`` (F64 R16): 1.37M x2, 1.55M x3, 1.52M x4;
``edsr`` (F256 R32, res_scale 0.1): 40.73M x2, 43.68M x3, 43.09M x4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ._builder import build_model
from ._layers import MeanShift, ResBlock, Upsampler, check_scale, default_conv
from ._registry import register_model

__all__ = ["EDSR"]


class EDSR(nn.Module):
    """EDSR: ``sub_mean -> head -> body (+ global skip) -> tail (Upsampler, conv) -> add_mean``.

    Inputs are expected in ``[0, rgb_range]`` (255 as in EDSR-PyTorch).
    """

    def __init__(
        self,
        scale: int = 2,
        n_feats: int = 64,
        n_resblocks: int = 16,
        res_scale: float = 1.0,
        rgb_range: float = 255,
        n_colors: int = 3,
        kernel_size: int = 3,
    ):
        super().__init__()
        if n_colors != 3:
            raise ValueError(f"n_colors must be 3 (MeanShift holds an RGB mean), got {n_colors}")
        self.scale = check_scale(scale)
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, kernel_size))
        body: list[nn.Module] = [ResBlock(n_feats, kernel_size, res_scale) for _ in range(n_resblocks)]
        body.append(default_conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(Upsampler(self.scale, n_feats), default_conv(n_feats, n_colors, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(x)
        x = self.head(x)
        res = self.body(x) + x
        return self.add_mean(self.tail(res))


def _create_edsr(variant: str, **kwargs) -> EDSR:
    return build_model(EDSR, variant, **kwargs)


@register_model
def edsr_baseline_x2(**kwargs) -> EDSR:
    """EDSR-baseline x2 (F64, R16, res_scale 1)."""
    model_args = dict(scale=2, n_feats=64, n_resblocks=16, res_scale=1.0)
    return _create_edsr("edsr_baseline_x2", **dict(model_args, **kwargs))


@register_model
def edsr_baseline_x3(**kwargs) -> EDSR:
    """EDSR-baseline x3 (F64, R16, res_scale 1)."""
    model_args = dict(scale=3, n_feats=64, n_resblocks=16, res_scale=1.0)
    return _create_edsr("edsr_baseline_x3", **dict(model_args, **kwargs))


@register_model
def edsr_baseline_x4(**kwargs) -> EDSR:
    """EDSR-baseline x4 (F64, R16, res_scale 1)."""
    model_args = dict(scale=4, n_feats=64, n_resblocks=16, res_scale=1.0)
    return _create_edsr("edsr_baseline_x4", **dict(model_args, **kwargs))


@register_model
def edsr_x2(**kwargs) -> EDSR:
    """EDSR x2 as in the paper (F256, R32, res_scale 0.1)."""
    model_args = dict(scale=2, n_feats=256, n_resblocks=32, res_scale=0.1)
    return _create_edsr("edsr_x2", **dict(model_args, **kwargs))


@register_model
def edsr_x3(**kwargs) -> EDSR:
    """EDSR x3 as in the paper (F256, R32, res_scale 0.1)."""
    model_args = dict(scale=3, n_feats=256, n_resblocks=32, res_scale=0.1)
    return _create_edsr("edsr_x3", **dict(model_args, **kwargs))


@register_model
def edsr_x4(**kwargs) -> EDSR:
    """EDSR x4 as in the paper (F256, R32, res_scale 0.1)."""
    model_args = dict(scale=4, n_feats=256, n_resblocks=32, res_scale=0.1)
    return _create_edsr("edsr_x4", **dict(model_args, **kwargs))
