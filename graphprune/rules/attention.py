"""Matrix products and attention: contraction dims couple, batch dims broadcast.

``a @ b`` with ``a: (..., n, k)`` and ``b: (..., k, m)`` couples ``a[-1]`` with ``b[-2]`` (the
contracted index must stay aligned on both sides), the output rows with ``a[-2]`` and the output
columns with ``b[-1]``. Attention heads and the head dimension are therefore found as groups once
a reshape factors the projection's output into ``(3, heads, head_dim)``. ``einsum`` couples every
pair of dims that share a letter (an ellipsis: the dims it covers, aligned from the right).
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from .table import register, replace_arg

__all__ = ["couple_einsum"]


def _broadcast_batch(ctx, dims_list, out_batch) -> None:
    for dims in dims_list:
        off = len(out_batch) - len(dims)
        for i, a in enumerate(dims):
            o = out_batch[off + i]
            if ctx.size(a) == ctx.size(o):
                ctx.unify(a, o)
            else:
                ctx.free(a)


@register(operator.matmul, torch.matmul, "matmul", torch.bmm, "bmm", "__matmul__")
def matmul(ctx) -> None:
    a, b = (ctx.dims(t) for t in ctx.tensor_args()[:2])
    out = ctx.out()
    if len(a) == 1 or len(b) == 1:  # vector cases: the vector's only dim is contracted
        ctx.unify(a[-1], b[0] if len(b) == 1 else b[-2])
        rest = (a[:-1] if len(a) > 1 else []) + (b[:-2] + b[-1:] if len(b) > 1 else [])
        ctx.unify_dims(rest, out)
        return
    ctx.unify(a[-1], b[-2])
    ctx.unify(a[-2], out[-2])
    ctx.unify(b[-1], out[-1])
    _broadcast_batch(ctx, [a[:-2], b[:-2]], out[:-2])


def _rewrite_sdpa_scale(node, R):
    """Keep the dense softmax temperature: without ``scale``, SDPA uses ``1/sqrt(q.size(-1))`` read at
    run time, so a pruned head dimension would silently sharpen every attention map (timm's fused
    attention). The pruned call gets the dense value explicitly.
    """
    q = node.args[0] if node.args else node.kwargs["query"]
    scale = node.args[6] if len(node.args) > 6 else node.kwargs.get("scale")
    if scale is not None or R.size(q, -1) == R.old_size(q, -1):
        return None
    return replace_arg(node, 6, "scale", R.old_size(q, -1) ** -0.5)


@register(F.scaled_dot_product_attention, rewrite=_rewrite_sdpa_scale)
def sdpa(ctx) -> None:
    q, k, v = (ctx.dims(ctx.arg(i, n)) for i, n in ((0, "query"), (1, "key"), (2, "value")))
    out = ctx.out()
    ctx.unify(q[-1], k[-1])
    ctx.unify(k[-2], v[-2])
    ctx.unify(out[-2], q[-2])
    ctx.unify(out[-1], v[-1])
    _broadcast_batch(ctx, [q[:-2], k[:-2], v[:-2]], out[:-2])
    mask = ctx.arg(3, "attn_mask", None)
    if mask is not None and ctx.dims(mask) is not None:
        md = ctx.dims(mask)
        ctx.unify(md[-2], q[-2]) if ctx.size(md[-2]) == ctx.size(q[-2]) else ctx.free(md[-2])
        ctx.unify(md[-1], k[-2]) if ctx.size(md[-1]) == ctx.size(k[-2]) else ctx.free(md[-1])
        _broadcast_batch(ctx, [md[:-2]], out[:-2])


ELLIPSIS = "…"  # one name for the dims an ellipsis covers (einops' own symbol)


def _ellipsis_named(spec: list[str], ndim: int) -> list[str]:
    """An ellipsis expanded into one name per dim it covers, counted from the right as broadcasting aligns them.

    >>> _ellipsis_named(["b", ELLIPSIS, "c"], 4)
    ['b', '…1', '…0', 'c']
    """
    if ELLIPSIS not in spec:
        return list(spec)
    i, n = spec.index(ELLIPSIS), ndim - len(spec) + 1
    return [*spec[:i], *(f"{ELLIPSIS}{n - 1 - k}" for k in range(n)), *spec[i + 1:]]


def couple_einsum(ctx, specs: list[list[str]], operands: list[list[int]], out_spec: list[str] | None) -> None:
    """Couple the dims of einsum operands and output that share an axis name (size-1 dims broadcast).

    ``specs[i]`` names the dims of ``operands[i]``, ``out_spec`` those of the output (None: implicit,
    the output is left to the policy); :data:`ELLIPSIS` stands for the dims an ellipsis covers.
    Contracted axes are sums of products: exact.
    """
    axes: dict[str, int] = {}
    for spec, dims in zip(specs, operands):
        for name, atom in zip(_ellipsis_named(spec, len(dims)), dims):
            ctx.free(atom)
            first = axes.setdefault(name, atom)
            if ctx.size(first) == ctx.size(atom):
                ctx.unify(first, atom)
            elif ctx.size(first) == 1:
                axes[name] = atom
    if out_spec is not None:
        for name, atom in zip(_ellipsis_named(out_spec, len(ctx.out())), ctx.out()):
            ctx.unify(axes[name], atom)


@register(torch.einsum)
def einsum(ctx) -> None:
    eq = ctx.node.args[0].replace(" ", "").replace("...", ELLIPSIS)
    lhs, rhs = eq.split("->") if "->" in eq else (eq, None)
    operands = ctx.node.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    couple_einsum(ctx, [list(s) for s in lhs.split(",")], [ctx.dims(t) for t in operands],
                  None if rhs is None else list(rhs))


@register(nn.MultiheadAttention)
def multihead_attention(ctx) -> None:
    """``nn.MultiheadAttention`` stays opaque and its channels are blocked, deliberately.

    Its forward requires the q/k/v projections to be exactly ``embed_dim`` wide (``head_dim =
    embed_dim // num_heads``), so the embedding cannot shrink without pairing residual channels with
    projection channels arbitrarily (the "pseudo-random" pruning reported against Torch-Pruning,
    issue #196). The MLPs around it stay prunable.
    """
    ctx.block_all("nn.MultiheadAttention ties q/k/v widths to embed_dim; its channels are kept")
