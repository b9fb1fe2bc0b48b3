"""Matrix products and attention: contraction dims couple, batch dims broadcast.

``a @ b`` with ``a: (..., n, k)`` and ``b: (..., k, m)`` couples ``a[-1]`` with ``b[-2]`` (the
contracted index must stay aligned on both sides), the output rows with ``a[-2]`` and the output
columns with ``b[-1]``. Attention heads and the head dimension are therefore found as groups once
a reshape factors the projection's output into ``(3, heads, head_dim)``. ``einsum`` couples every
pair of dims that share a letter.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from .table import register, replace_arg

__all__ = []


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


@register(torch.einsum)
def einsum(ctx) -> None:
    eq = ctx.node.args[0].replace(" ", "")
    if "..." in eq:
        ctx.block_all("einsum with an ellipsis")
        return
    lhs, rhs = eq.split("->") if "->" in eq else (eq, None)
    operands = ctx.node.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    letters: dict[str, int] = {}
    for spec, t in zip(lhs.split(","), operands):
        for ch, atom in zip(spec, ctx.dims(t)):
            if ch in letters and ctx.size(letters[ch]) == ctx.size(atom):
                ctx.unify(letters[ch], atom)
            elif ch in letters:
                ctx.free(atom)  # broadcast size-1
            else:
                letters[ch] = atom
                ctx.free(atom)
    if rhs is not None:
        for ch, atom in zip(rhs, ctx.out()):
            ctx.unify(letters[ch], atom)


@register(nn.MultiheadAttention)
def multihead_attention(ctx) -> None:
    """``nn.MultiheadAttention`` stays opaque and its channels are blocked, deliberately.

    Its forward requires the q/k/v projections to be exactly ``embed_dim`` wide (``head_dim =
    embed_dim // num_heads``), so the embedding cannot shrink without pairing residual channels with
    projection channels arbitrarily (the "pseudo-random" pruning reported against Torch-Pruning,
    issue #196). The MLPs around it stay prunable.
    """
    ctx.block_all("nn.MultiheadAttention ties q/k/v widths to embed_dim; its channels are kept")
