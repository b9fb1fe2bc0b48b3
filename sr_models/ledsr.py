"""LEDSR: "Large EDSR", the dense starting point of ASSL (Zhang et al., NeurIPS 2021) and SRP
(Zhang et al., ICLR 2022); the EDSR body (Lim et al., 2017) with a one-conv ``LiteUpsampler`` tail.

Layout follows the official ASSL/SRP ``src/model/ledsr.py``: ``sub_mean``, ``add_mean``, ``head``
(``head.0``), ``body`` (R ``ResBlock`` s + ``body.R`` conv), ``tail = Sequential(conv(F, 3 s^2), PixelShuffle(s))``
so ``tail.0`` is the conv and ``tail.1`` the shuffle. One global skip around the body.

For a pruning analysis: the residual stream couples the outputs of ``head.0``, every ``body.i.body.2``
and ``body.R`` (18 convs for R16, the ASSL "constrained" layers); ``body.i.body.0`` are free; the
tail conv feeds a pixel shuffle and the RGB output, so its outputs must stay.

Parameters (F256 R16, 24 frozen MeanShift parameters included): 19.51M x2, 19.54M x3, 19.59M x4;
exactly ``297 F^2 + 61 F + 27 F s^2 + 3 s^2 + 24``. At F=45 (SRPN-Lite): 609K x2, 615K x3, 623K x4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ._builder import build_model
from ._layers import MeanShift, ResBlock, check_scale, default_conv
from ._registry import register_model

__all__ = ["LEDSR", "LiteUpsampler"]


class LiteUpsampler(nn.Sequential):
    """``Sequential(conv(F, n_colors * s^2, 3), PixelShuffle(s))``: the image is produced by the shuffle."""

    def __init__(self, scale: int, n_feats: int, n_colors: int = 3):
        super().__init__(default_conv(n_feats, n_colors * scale * scale, 3), nn.PixelShuffle(scale))


class LEDSR(nn.Module):
    """LEDSR: ``sub_mean -> head -> body (+ global skip) -> LiteUpsampler -> add_mean`` (inputs in [0, rgb_range])."""

    def __init__(
        self,
        scale: int = 2,
        n_feats: int = 256,
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
        self.tail = LiteUpsampler(self.scale, n_feats, n_colors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(x)
        x = self.head(x)
        r = self.body(x) + x
        return self.add_mean(self.tail(r))


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """The official ASSL/SRP names onto ours: their tail is ``Sequential(LiteUpsampler)`` (``tail.0.0``)."""
    return {("tail." + k[len("tail.0."):] if k.startswith("tail.0.") and k.count(".") == 3 else k): v
            for k, v in state_dict.items()}


def _create_ledsr(variant: str, **kwargs) -> LEDSR:
    return build_model(LEDSR, variant, **kwargs)


@register_model
def ledsr_f256r16_x2(**kwargs) -> LEDSR:
    """LEDSR x2 (F256, R16), the dense model ASSL/SRP prune."""
    model_args = dict(scale=2, n_feats=256, n_resblocks=16)
    return _create_ledsr("ledsr_f256r16_x2", **dict(model_args, **kwargs))


@register_model
def ledsr_f256r16_x3(**kwargs) -> LEDSR:
    """LEDSR x3 (F256, R16), the dense model ASSL/SRP prune."""
    model_args = dict(scale=3, n_feats=256, n_resblocks=16)
    return _create_ledsr("ledsr_f256r16_x3", **dict(model_args, **kwargs))


@register_model
def ledsr_f256r16_x4(**kwargs) -> LEDSR:
    """LEDSR x4 (F256, R16), the dense model ASSL/SRP prune."""
    model_args = dict(scale=4, n_feats=256, n_resblocks=16)
    return _create_ledsr("ledsr_f256r16_x4", **dict(model_args, **kwargs))
