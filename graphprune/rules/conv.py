"""Convolutions (plain, grouped, depthwise, transposed), linear layers and embeddings.

A convolution is where pruning gets its freedom: its input and output channels are independent
spaces. Its output couples with its weight's filters and bias; its input with the weight's
input-channel dimension. With ``groups = g > 1`` both channel spaces factor row-major into
``(g, per-group)``: the group index is shared by input and output (whole groups may go), and
the weight's input dimension is the *per-group* input index (the same channels go from every
group). A depthwise conv (per-group sizes of 1) thus ties its input and output channel by channel.
Spatial dimensions couple with nothing: they are blocked, so that nothing that indexes space
(a token-mixing linear over the width, say) is ever pruned by accident.
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..trace import node_value
from .table import register, replace_arg

__all__ = ["couple_conv", "couple_linear"]


def couple_conv(ctx, x_dims, out_dims, w_dims, b_dims, groups: int, transposed: bool) -> None:
    """Shared by the module and functional convolution rules."""
    spatial = len(w_dims) - 2
    c_in, c_out = x_dims[-spatial - 1], out_dims[-spatial - 1]
    ctx.unify_dims(x_dims[:-spatial - 1], out_dims[:-spatial - 1])  # batch
    ctx.block([*x_dims[-spatial:], *out_dims[-spatial:]], "spatial dimension of a convolution")
    w_in, w_out = (w_dims[0], w_dims[1]) if transposed else (w_dims[1], w_dims[0])
    if groups == 1:
        ctx.unify(c_in, w_in)
        ctx.unify(c_out, w_out)
    else:
        g_in, k_in = ctx.factor(c_in, [groups, ctx.size(c_in) // groups])
        g_out, k_out = ctx.factor(c_out, [groups, ctx.size(c_out) // groups])
        ctx.unify(g_in, g_out)
        # the weight's "in" (resp. "out" for transposed) dim is indexed per group
        if transposed:
            ctx.unify(w_in, c_in)
            ctx.unify(w_out, k_out)
        else:
            ctx.unify(w_in, k_in)
            ctx.unify(w_out, c_out)
        ctx.set_aux("groups", g_in)
    if b_dims:
        ctx.unify(b_dims[0], c_out)


def _resize_conv(module, new_size, aux) -> None:
    w = module.weight
    if "groups" in aux:
        module.groups = new_size(aux["groups"])
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        module.in_channels, module.out_channels = w.shape[0], w.shape[1] * module.groups
    else:
        module.out_channels, module.in_channels = w.shape[0], w.shape[1] * module.groups


@register(nn.Conv1d, nn.Conv2d, nn.Conv3d, params=("weight", "bias"), resize=_resize_conv)
def conv(ctx) -> None:
    m = ctx.module
    w = ctx.param("weight", ("out", "in") + (None,) * (m.weight.ndim - 2))
    b = ctx.param("bias", ("out",)) if m.bias is not None else []
    couple_conv(ctx, ctx.dims(ctx.tensor_args()[0]), ctx.out(), w, b, m.groups, transposed=False)


@register(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, params=("weight", "bias"),
          resize=_resize_conv)
def conv_transpose(ctx) -> None:
    m = ctx.module
    w = ctx.param("weight", ("in", "out") + (None,) * (m.weight.ndim - 2))
    b = ctx.param("bias", ("out",)) if m.bias is not None else []
    couple_conv(ctx, ctx.dims(ctx.tensor_args()[0]), ctx.out(), w, b, m.groups, transposed=True)


def _rewrite_conv_groups(node, R):
    """``F.conv2d(x, w, groups=64)``: a literal group count follows the groups removed (BlurPool's depthwise
    blur); one computed at run time (``groups=b * C`` of a per-sample conv) stays while it recomputes right."""
    groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
    atom = R.aux(node).get("groups")
    if atom is None or R.atom_size(atom) == groups:
        return None
    if isinstance(groups, fx.Node):
        from .shape import _new_size_value

        try:
            if _new_size_value(groups, R, {}) == R.atom_size(atom):
                return None
        except Exception:  # noqa: BLE001 - not size arithmetic: the planned count replaces it
            pass
    return replace_arg(node, 6, "groups", R.atom_size(atom))


@register(F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d, rewrite=_rewrite_conv_groups)
def conv_functional(ctx) -> None:
    x, w = ctx.arg(0, "input"), ctx.arg(1, "weight")
    b = ctx.arg(2, "bias")
    groups = ctx.arg(6, "groups", 1)
    groups = node_value(groups) if isinstance(groups, fx.Node) else groups  # computed in forward: its traced value
    w_dims = ctx.dims(w)
    ctx.set_roles(w, ("out", "in"))
    b_dims = ctx.dims(b) if b is not None else []
    couple_conv(ctx, ctx.dims(x), ctx.out(), w_dims, b_dims, groups, transposed=False)
    ctx.block(w_dims[2:], "the kernel's spatial dimensions")


def couple_linear(ctx, x_dims, out_dims, w_dims, b_dims) -> None:
    ctx.unify_dims(x_dims[:-1], out_dims[:-1])
    ctx.unify(x_dims[-1], w_dims[1])
    ctx.unify(out_dims[-1], w_dims[0])
    if b_dims:
        ctx.unify(b_dims[0], out_dims[-1])


def _resize_linear(module, new_size, aux) -> None:
    module.out_features, module.in_features = module.weight.shape


@register(nn.Linear, params=("weight", "bias"), resize=_resize_linear)
def linear(ctx) -> None:
    m = ctx.module
    w = ctx.param("weight", ("out", "in"))
    b = ctx.param("bias", ("out",)) if m.bias is not None else []
    couple_linear(ctx, ctx.dims(ctx.tensor_args()[0]), ctx.out(), w, b)


@register(F.linear)
def linear_functional(ctx) -> None:
    x, w, b = ctx.arg(0, "input"), ctx.arg(1, "weight"), ctx.arg(2, "bias")
    ctx.set_roles(w, ("out", "in"))
    couple_linear(ctx, ctx.dims(x), ctx.out(), ctx.dims(w), ctx.dims(b) if b is not None else [])


def _resize_embedding(module, new_size, aux) -> None:
    module.embedding_dim = module.weight.shape[1]


@register(nn.Embedding, params=("weight",), resize=_resize_embedding)
def embedding(ctx) -> None:
    w = ctx.param("weight", (None, "out"))
    idx = ctx.dims(ctx.tensor_args()[0])
    out = ctx.out()
    ctx.unify_dims(idx, out[:-1])
    ctx.unify(out[-1], w[1])
    ctx.free(w[0])
