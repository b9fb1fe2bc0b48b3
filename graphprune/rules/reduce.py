"""Reductions, softmax, pooling and resampling: channels pass through, reduced or resampled dims do not.

A reduction over a dimension leaves the other dimensions index for index (``mean(dim=(2, 3))``
keeps channels); the reduced dimension's indices are consumed, so it may be pruned freely (the
reduction still has the same output shape). Pooling and interpolation keep batch and channels and
block their spatial dims.

Exactness: a reduction over pruned channels is exact only when the channels it no longer sees
would have added nothing: a sum, an L2 (any p-)norm, ``any`` and ``count_nonzero`` ignore zeros. A
mean, variance, standard deviation, logsumexp, product, min/max (and arg-) and softmax over channels
read every channel, so they are declared *inexact* on the reduced dims (:meth:`RuleContext.inexact`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .table import register

__all__ = []


def _reduced(ctx, ndim: int) -> set[int]:
    position = 2 if ctx.node.target in (torch.norm, "norm") else 1
    dim = ctx.arg(position, "dim", None)
    if dim is None:
        return set(range(ndim))
    dims = [dim] if isinstance(dim, int) else list(dim)
    return {d + ndim if d < 0 else d for d in dims}


# Reductions that a zero does not change: dropping zeroed channels from them is exact.
EXACT_REDUCTIONS = {torch.sum, "sum", torch.norm, "norm", torch.any, "any", torch.count_nonzero, "count_nonzero",
                    torch.linalg.vector_norm}


@register(torch.mean, "mean", torch.sum, "sum", torch.amax, "amax", torch.amin, "amin", torch.std,
          "std", torch.var, "var", torch.logsumexp, "logsumexp", torch.prod, "prod", torch.norm, "norm",
          torch.max, "max", torch.min, "min", torch.argmax, "argmax", torch.argmin, "argmin",
          torch.all, "all", torch.any, "any", torch.count_nonzero, "count_nonzero", torch.linalg.vector_norm,
          torch.std_mean, torch.var_mean)
def reduction(ctx) -> None:
    x = ctx.dims(ctx.tensor_args()[0])
    if len(ctx.tensor_args()) > 1:  # torch.max(a, b) is elementwise
        from .elementwise import broadcast
        return broadcast(ctx)
    reduced = _reduced(ctx, len(x))
    outs = ctx.all_out_dims_lists()
    ctx.free(*(x[d] for d in reduced))
    if ctx.node.target not in EXACT_REDUCTIONS:
        ctx.inexact([x[d] for d in reduced], f"{ctx.op_name} over these channels")
    kept = [d for d in range(len(x)) if d not in reduced]
    for out in outs:
        if len(out) == len(x):  # keepdim=True
            ctx.unify_dims([x[d] for d in kept], [out[d] for d in kept])
            ctx.free(*(out[d] for d in reduced))
        else:
            ctx.unify_dims([x[d] for d in kept], out)


def _softmax_dim(ctx, ndim: int) -> int:
    dim = ctx.module.dim if ctx.module is not None else ctx.arg(1, "dim", None)
    if dim is None:  # torch's legacy implicit choice (Softmax2d: the channels of an NCHW tensor)
        dim = -3 if isinstance(ctx.module, nn.Softmax2d) else (0 if ndim in (0, 1, 3) else 1)
    return dim + ndim if dim < 0 else dim


@register(F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, "softmax", "log_softmax", nn.Softmax,
          nn.LogSoftmax, nn.Softmax2d, F.softmin, nn.Softmin)
def softmax(ctx) -> None:
    """Same shape out; the normalized dim is read as a whole (exp(0) = 1 still counts): inexact there."""
    from .elementwise import passthrough

    passthrough(ctx)
    x = ctx.dims(ctx.tensor_args()[0])
    ctx.inexact([x[_softmax_dim(ctx, len(x))]], f"{ctx.op_name} over these channels")


POOL_MODULES = [nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.LPPool1d, nn.LPPool2d, nn.Upsample,
                nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ReflectionPad2d,
                nn.ReplicationPad2d, nn.ConstantPad2d, nn.ReflectionPad1d, nn.ZeroPad1d]
POOL_FUNCTIONS = [F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
                  F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
                  F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.lp_pool2d,
                  F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear, F.grid_sample,
                  torch.max_pool2d, torch.avg_pool1d, torch.adaptive_avg_pool1d]
SPATIAL_DIMS = {"1d": 1, "2d": 2, "3d": 3}


def _n_spatial(ctx) -> int:
    name = (type(ctx.module).__name__ if ctx.module is not None else getattr(ctx.node.target, "__name__", "")).lower()
    for suffix, n in SPATIAL_DIMS.items():
        if suffix in name:
            return n
    return len(ctx.dims(ctx.tensor_args()[0])) - 2  # interpolate / upsample: (N, C, *spatial)


@register(*POOL_MODULES, *POOL_FUNCTIONS)
def pool(ctx) -> None:
    """(N, C, *spatial) → (N, C, *spatial'): batch and channels pass through."""
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out_or_first()
    n = _n_spatial(ctx)
    ctx.unify_dims(x[:-n], out[:-n])
    ctx.block([*x[-n:], *out[-n:]], "a pooled or resampled spatial dimension")
    for extra in ctx.tensor_args()[1:]:  # grid_sample's grid
        ctx.block(ctx.dims(extra), "a sampling grid")
