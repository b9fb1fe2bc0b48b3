"""CARN: Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network (Ahn et al., ECCV 2018).

Layout follows the official CARN-pytorch ``carn.py`` / ``carn_m.py`` / ``ops.py``: ``sub_mean`` /
``add_mean`` (frozen 1x1 ``shifter`` convs), ``entry`` conv, three cascading ``Block`` s ``b1..b3`` with
1x1 fusion ``BasicBlock`` s ``c1..c3`` over growing concatenations, ``upsample`` and ``exit`` conv.
Each Block has the same cascade inside. Full CARN uses plain residual blocks; CARN-M uses the
efficient residual block (grouped 3x3 convs, ``groups=4``, then a 1x1 conv) and **shares one block
three times** inside each cascading Block (recursive weight sharing, as in the official ``carn_m.py``).
The upsampler is ``conv(F, r^2 F, groups) + ReLU + PixelShuffle(r)`` per stage.

CARN works on images in [0, 1]: the mean shift is ``-rgb_range * (0.4488, 0.4371, 0.4040)`` with
``rgb_range=1`` (the official bias, which has no range factor).

For a pruning analysis: dense cascades of ``torch.cat`` (offset coupling of ``c0, b1, b2, b3`` into the
1x1 fusion convs' inputs), post-add ReLU residuals, grouped convs (CARN-M; channel pruning must keep
groups equal-sized), a module called three times (CARN-M), and pixel shuffle.

Parameters. The paper's 1,592K (CARN) and 412K (CARN-M) count the *multi-scale* model, which holds
upsamplers for x2, x3 and x4 at once (``multi_scale=True`` builds that and runs the branch of
``scale``). The default single-scale models have: CARN 0.96M x2, 1.15M x3, 1.11M x4;
CARN-M 0.26M x2, 0.30M x3, 0.29M x4; with ``multi_scale=True``: CARN 1.59M, CARN-M 0.41M.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._builder import build_model
from ._layers import DIV2K_RGB_MEAN, check_scale
from ._registry import register_model

__all__ = ["CARN"]


class MeanShift(nn.Module):
    """Frozen ``shifter`` 1x1 conv adding ``sign * rgb_range * mean`` (official CARN ``ops.MeanShift``)."""

    def __init__(self, rgb_range: float = 1.0, sub: bool = True, rgb_mean=DIV2K_RGB_MEAN):
        super().__init__()
        sign = -1 if sub else 1
        self.shifter = nn.Conv2d(3, 3, 1, 1, 0)
        with torch.no_grad():
            self.shifter.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.shifter.bias.copy_(sign * rgb_range * torch.tensor(rgb_mean, dtype=torch.float32))
        for p in self.shifter.parameters():
            p.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class BasicBlock(nn.Module):
    """``relu(conv(x))`` (used as 1x1 fusion after a concat)."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int = 1, stride: int = 1, pad: int = 0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, ksize, stride, pad), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResidualBlock(nn.Module):
    """``relu(x + conv(relu(conv(x))))``."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class EResidualBlock(nn.Module):
    """Efficient residual block: ``relu(x + conv1x1(relu(gconv(relu(gconv(x))))))`` with grouped 3x3 convs."""

    def __init__(self, n_feats: int, group: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, 1, 1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, 1, 1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class Cascade(nn.Module):
    """Three stages ``o_i = c_i(cat(c_{i-1}, b_i(o_{i-1})))``; with ``b = [b1, b1, b1]`` one block is shared."""

    def _cascade(self, x: torch.Tensor, blocks: list[nn.Module]) -> torch.Tensor:
        c, o = x, x
        for b, fuse in zip(blocks, (self.c1, self.c2, self.c3)):
            c = torch.cat([c, b(o)], dim=1)
            o = fuse(c)
        return o


class Block(Cascade):
    """Cascading block: three residual blocks ``b1..b3`` (or one shared efficient block) and fusions ``c1..c3``."""

    def __init__(self, n_feats: int, group: int = 1, efficient: bool = False):
        super().__init__()
        if efficient:
            self.b1 = EResidualBlock(n_feats, group)
        else:
            self.b1, self.b2, self.b3 = (ResidualBlock(n_feats) for _ in range(3))
        self.efficient = efficient
        self.c1 = BasicBlock(n_feats * 2, n_feats)
        self.c2 = BasicBlock(n_feats * 3, n_feats)
        self.c3 = BasicBlock(n_feats * 4, n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = [self.b1] * 3 if self.efficient else [self.b1, self.b2, self.b3]
        return self._cascade(x, blocks)


class _UpsampleBlock(nn.Module):
    """``[conv(F, 4F, groups) + ReLU + PixelShuffle(2)] * log2(s)`` or ``conv(F, 9F, groups) + ReLU + PixelShuffle(3)``."""

    def __init__(self, n_feats: int, scale: int, group: int = 1):
        super().__init__()
        m: list[nn.Module] = []
        if scale in (2, 4, 8):
            for _ in range(int(math.log2(scale))):
                m += [nn.Conv2d(n_feats, 4 * n_feats, 3, 1, 1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(2)]
        elif scale == 3:
            m += [nn.Conv2d(n_feats, 9 * n_feats, 3, 1, 1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale must be 2, 3, 4 or 8, got {scale}")
        self.body = nn.Sequential(*m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpsampleBlock(nn.Module):
    """Single-scale ``up`` or multi-scale ``up2/up3/up4``; the branch is chosen at construction (``scale``)."""

    def __init__(self, n_feats: int, scale: int, multi_scale: bool = False, group: int = 1):
        super().__init__()
        self.multi_scale = multi_scale
        if multi_scale:
            self.up2 = _UpsampleBlock(n_feats, 2, group)
            self.up3 = _UpsampleBlock(n_feats, 3, group)
            self.up4 = _UpsampleBlock(n_feats, 4, group)
            self.branch = f"up{scale}"
        else:
            self.up = _UpsampleBlock(n_feats, scale, group)
            self.branch = "up"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.branch)(x)


class CARN(Cascade):
    """CARN / CARN-M (``efficient=True``, ``group=4``) for one scale; inputs in [0, rgb_range] (default 1)."""

    def __init__(
        self,
        scale: int = 2,
        n_feats: int = 64,
        group: int = 1,
        efficient: bool = False,
        multi_scale: bool = False,
        rgb_range: float = 1.0,
        n_colors: int = 3,
    ):
        super().__init__()
        if n_colors != 3:
            raise ValueError(f"n_colors must be 3 (MeanShift holds an RGB mean), got {n_colors}")
        if n_feats % group:
            raise ValueError(f"n_feats ({n_feats}) must be divisible by group ({group})")
        self.scale = check_scale(scale)
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, sub=True)
        self.add_mean = MeanShift(rgb_range, sub=False)
        self.entry = nn.Conv2d(n_colors, n_feats, 3, 1, 1)
        self.b1, self.b2, self.b3 = (Block(n_feats, group, efficient) for _ in range(3))
        self.c1 = BasicBlock(n_feats * 2, n_feats)
        self.c2 = BasicBlock(n_feats * 3, n_feats)
        self.c3 = BasicBlock(n_feats * 4, n_feats)
        self.upsample = UpsampleBlock(n_feats, self.scale, multi_scale, group)
        self.exit = nn.Conv2d(n_feats, n_colors, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(self.sub_mean(x))
        o = self._cascade(x, [self.b1, self.b2, self.b3])
        return self.add_mean(self.exit(self.upsample(o)))


def _create_carn(variant: str, **kwargs) -> CARN:
    return build_model(CARN, variant, **kwargs)


@register_model
def carn_x2(**kwargs) -> CARN:
    """CARN x2 (F64, plain residual blocks)."""
    model_args = dict(scale=2, n_feats=64, group=1, efficient=False)
    return _create_carn("carn_x2", **dict(model_args, **kwargs))


@register_model
def carn_x3(**kwargs) -> CARN:
    """CARN x3 (F64, plain residual blocks)."""
    model_args = dict(scale=3, n_feats=64, group=1, efficient=False)
    return _create_carn("carn_x3", **dict(model_args, **kwargs))


@register_model
def carn_x4(**kwargs) -> CARN:
    """CARN x4 (F64, plain residual blocks)."""
    model_args = dict(scale=4, n_feats=64, group=1, efficient=False)
    return _create_carn("carn_x4", **dict(model_args, **kwargs))


@register_model
def carn_m_x2(**kwargs) -> CARN:
    """CARN-M x2 (F64, shared efficient residual block, groups 4)."""
    model_args = dict(scale=2, n_feats=64, group=4, efficient=True)
    return _create_carn("carn_m_x2", **dict(model_args, **kwargs))


@register_model
def carn_m_x3(**kwargs) -> CARN:
    """CARN-M x3 (F64, shared efficient residual block, groups 4)."""
    model_args = dict(scale=3, n_feats=64, group=4, efficient=True)
    return _create_carn("carn_m_x3", **dict(model_args, **kwargs))


@register_model
def carn_m_x4(**kwargs) -> CARN:
    """CARN-M x4 (F64, shared efficient residual block, groups 4)."""
    model_args = dict(scale=4, n_feats=64, group=4, efficient=True)
    return _create_carn("carn_m_x4", **dict(model_args, **kwargs))
