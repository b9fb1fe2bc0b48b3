"""Selection by index: gather, sort, top-k, index_select — the token selection of sparse attention.

Along the dimension they select on, positions are data (which tokens, which order): that dim and
the index tensor are blocked. Every other dim passes index for index, so channels selected
token by token keep their channel structure (``gather(x, 1, idx.expand(-1, -1, C))`` prunes ``C``).
Sorting or selecting *over channels* blocks them: which channel lands where depends on values.
"""
from __future__ import annotations

import torch

from .table import register

__all__ = []


def _dim(ctx, position: int, ndim: int, default=-1) -> int:
    d = ctx.arg(position, "dim", default)
    return d + ndim if d < 0 else d


@register(torch.gather, "gather", torch.take_along_dim, "take_along_dim")
def gather(ctx) -> None:
    """``out[..., i, ...] = x[..., index[..., i, ...], ...]`` along ``dim``; other dims follow ``index``'s."""
    x, index, out = ctx.dims(ctx.arg(0, "input")), ctx.dims(ctx.arg(2, "index") if ctx.node.target in
                                                                (torch.gather, "gather") else ctx.arg(1, "indices")), ctx.out()
    dim = _dim(ctx, 1 if ctx.node.target in (torch.gather, "gather") else 2, len(x))
    ctx.block([x[dim], out[dim], *(index[dim:dim + 1])], "positions chosen by an index tensor")
    for d in range(len(x)):
        if d == dim:
            continue
        ctx.unify(index[d], out[d])
        if ctx.size(x[d]) == ctx.size(out[d]):
            ctx.unify(x[d], out[d])
        else:
            ctx.block([x[d]], "gathered from a wider dimension")


@register(torch.index_select, "index_select")
def index_select(ctx) -> None:
    x, out = ctx.dims(ctx.arg(0, "input")), ctx.out()
    dim = _dim(ctx, 1, len(x), 0)
    index = ctx.dims(ctx.arg(2, "index"))
    ctx.block([x[dim], out[dim], *(index or [])], "positions chosen by an index tensor")
    ctx.unify_dims(x[:dim] + x[dim + 1:], out[:dim] + out[dim + 1:])


@register(torch.sort, "sort", torch.argsort, "argsort", torch.topk, "topk", torch.kthvalue, "kthvalue",
          torch.cummax, "cummax", torch.cummin, "cummin")
def sort(ctx) -> None:
    """Values (and indices) reordered along ``dim``: that dim is blocked, the others pass."""
    x = ctx.dims(ctx.tensor_args()[0])
    topk = ctx.node.target in (torch.topk, "topk", torch.kthvalue, "kthvalue")
    dim = _dim(ctx, 2 if topk else 1, len(x))
    ctx.block([x[dim]], "reordered by value")
    for out in ctx.all_out_dims_lists():
        ctx.block(out[dim:dim + 1] if len(out) == len(x) else [], "reordered by value")
        keep = [d for d in range(len(x)) if d != dim]
        if len(out) == len(x):
            ctx.unify_dims([x[d] for d in keep], [out[d] for d in keep])
        else:  # kthvalue without keepdim
            ctx.unify_dims([x[d] for d in keep], out)
