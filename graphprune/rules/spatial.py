"""Spatial transforms: FFTs over image dims, and unfold/fold of sliding patches.

They act on the spatial dims of every channel separately, so channels pass through (exactly: a
removed channel's transform is simply not computed). The transformed spatial dims change size or
meaning (``rfft2`` keeps ``W // 2 + 1`` frequencies) and are blocked, like a conv's.

``unfold`` lays each channel's ``kh × kw`` patch out along the channel dim, so its output channel
dim is the row-major product ``(C, kh, kw)``: pruning channel c removes its whole patch. ``fold``
is the inverse.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .table import register

__all__ = []

FFTS = [torch.fft.fft, torch.fft.ifft, torch.fft.rfft, torch.fft.irfft, torch.fft.fft2, torch.fft.ifft2,
        torch.fft.rfft2, torch.fft.irfft2, torch.fft.fftn, torch.fft.ifftn, torch.fft.rfftn, torch.fft.irfftn,
        torch.fft.fftshift, torch.fft.ifftshift]
_DEFAULT_DIMS = {1: (-1,), 2: (-2, -1)}


def _fft_dims(ctx, ndim: int) -> set[int]:
    name = ctx.node.target.__name__
    dims = ctx.arg(2, "dim", None) if name.endswith(("fftn", "fft2", "shift")) else ctx.arg(2, "dim", -1)
    if dims is None:
        dims = tuple(range(ndim)) if name.endswith(("fftn", "shift")) else _DEFAULT_DIMS[2]
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return {d + ndim if d < 0 else d for d in dims}


@register(*FFTS)
def fft(ctx) -> None:
    """The transformed dims are blocked; the others (batch, channels) pass through."""
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    transformed = _fft_dims(ctx, len(x))
    for d, (a, o) in enumerate(zip(x, out)):
        if d in transformed:
            ctx.block([a, o], "a Fourier-transformed dimension")
        else:
            ctx.unify(a, o)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _patch(ctx, kernel_size) -> list[int]:
    kh, kw = _pair(kernel_size)
    factors = [ctx.new(kh), ctx.new(kw)]
    ctx.block(factors, "positions inside an unfolded patch")
    return factors


@register(F.unfold, nn.Unfold)
def unfold(ctx) -> None:
    """``(N, C, H, W) → (N, C·kh·kw, L)``: each channel owns its patch."""
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    k = ctx.module.kernel_size if ctx.module is not None else ctx.arg(1, "kernel_size")
    ctx.unify_dims(x[:-3], out[:-2])
    ctx.prod(out[-2], [x[-3], *_patch(ctx, k)])
    ctx.block([*x[-2:], out[-1]], "sliding-window positions of unfold")


@register(F.fold, nn.Fold)
def fold(ctx) -> None:
    """``(N, C·kh·kw, L) → (N, C, H, W)``: the inverse of :func:`unfold`."""
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    k = ctx.module.kernel_size if ctx.module is not None else ctx.arg(2, "kernel_size")
    ctx.unify_dims(x[:-2], out[:-3])
    ctx.prod(x[-2], [out[-3], *_patch(ctx, k)])
    ctx.block([x[-1], *out[-2:]], "sliding-window positions of fold")
