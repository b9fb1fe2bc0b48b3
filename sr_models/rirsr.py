"""RIRSR: residual-in-residual SR, i.e. RCAN (Zhang et al., ECCV 2018) without channel attention; the
"large" dense model that SRP (Zhang et al., ICLR 2022) prunes into SRPN.

Layout follows the official ASSL/SRP ``src/model/rirsr.py``: ``sub_mean``, ``add_mean``, ``head``,
``body = Sequential(G ResidualGroup, conv)`` where ``ResidualGroup.body = Sequential(R ResBlock, conv)``
with a group skip, a global skip, and ``tail = Sequential(Upsampler, conv(F, 3))``.

For a pruning analysis: two nested residual levels put ``head.0``, every ``body.g.body.r.body.2``,
every group tail conv ``body.g.body.R`` and ``body.G`` in one coupled channel space (212 convs for
G10 R20); the ``body.g.body.r.body.0`` convs are free.

Parameters (G10 R20 F96, 24 frozen MeanShift parameters included): 34.47M x2, 34.88M x3, 34.80M x4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ._builder import build_model
from ._layers import MeanShift, ResBlock, Upsampler, check_scale, default_conv
from ._registry import register_model

__all__ = ["ResidualGroup", "RIRSR"]


class ResidualGroup(nn.Module):
    """``x + Sequential(R ResBlock, conv)(x)``."""

    def __init__(self, n_feats: int, n_resblocks: int, kernel_size: int = 3, res_scale: float = 1.0):
        super().__init__()
        body: list[nn.Module] = [ResBlock(n_feats, kernel_size, res_scale) for _ in range(n_resblocks)]
        body.append(default_conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RIRSR(nn.Module):
    """RIRSR: ``sub_mean -> head -> body (+ global skip) -> tail (Upsampler, conv) -> add_mean`` (inputs in [0, rgb_range])."""

    def __init__(
        self,
        scale: int = 2,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 96,
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
        body: list[nn.Module] = [
            ResidualGroup(n_feats, n_resblocks, kernel_size, res_scale) for _ in range(n_resgroups)
        ]
        body.append(default_conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(Upsampler(self.scale, n_feats), default_conv(n_feats, n_colors, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(x)
        x = self.head(x)
        res = self.body(x) + x
        return self.add_mean(self.tail(res))


def _create_rirsr(variant: str, **kwargs) -> RIRSR:
    return build_model(RIRSR, variant, **kwargs)


@register_model
def rirsr_g10r20f96_x2(**kwargs) -> RIRSR:
    """RIRSR x2 (G10, R20, F96), the dense model SRP prunes into SRPN."""
    model_args = dict(scale=2, n_resgroups=10, n_resblocks=20, n_feats=96)
    return _create_rirsr("rirsr_g10r20f96_x2", **dict(model_args, **kwargs))


@register_model
def rirsr_g10r20f96_x3(**kwargs) -> RIRSR:
    """RIRSR x3 (G10, R20, F96), the dense model SRP prunes into SRPN."""
    model_args = dict(scale=3, n_resgroups=10, n_resblocks=20, n_feats=96)
    return _create_rirsr("rirsr_g10r20f96_x3", **dict(model_args, **kwargs))


@register_model
def rirsr_g10r20f96_x4(**kwargs) -> RIRSR:
    """RIRSR x4 (G10, R20, F96), the dense model SRP prunes into SRPN."""
    model_args = dict(scale=4, n_resgroups=10, n_resblocks=20, n_feats=96)
    return _create_rirsr("rirsr_g10r20f96_x4", **dict(model_args, **kwargs))
