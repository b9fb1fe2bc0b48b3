"""Normalization layers: BatchNorm, InstanceNorm, LayerNorm, GroupNorm (module and functional).

A norm passes every dimension through; its affine parameters and running statistics follow the
channel dimension (dim 1 for batch/instance/group norm, the trailing dims for layer norm) with
role "out". GroupNorm factors its channels into ``(num_groups, per-group)`` like a grouped conv:
pruning keeps every group the same size. LayerNorm and GroupNorm mix statistics across channels, so
removing a channel changes the values (not the shapes) of the others: pruning them is structurally
sound but is not exact the way pruning a zeroed conv filter is, and their rules say so
(:meth:`RuleContext.inexact`). Batch norm in eval mode and instance norm work channel by channel: exact.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .elementwise import passthrough
from .table import register, replace_arg

__all__ = []

_STATS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _channel_params(ctx, names, channel_atom) -> None:
    for name in names:
        t = getattr(ctx.module, name, None)
        if t is not None and t.ndim == 1:
            ctx.unify(ctx.param(name, ("out",))[0], channel_atom)


def _resize_batchnorm(module, new_size, aux) -> None:
    ref = module.weight if module.weight is not None else module.running_mean
    if ref is not None:
        module.num_features = ref.shape[0]


@register(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
          nn.InstanceNorm2d, nn.InstanceNorm3d, params=_STATS, resize=_resize_batchnorm)
def batch_norm(ctx) -> None:
    passthrough(ctx)
    _channel_params(ctx, ("weight", "bias", "running_mean", "running_var"), ctx.out()[1])


def _resize_layernorm(module, new_size, aux) -> None:
    shape = aux["normalized_atoms"]
    module.normalized_shape = tuple(new_size(a) for a in shape)


@register(nn.LayerNorm, params=("weight", "bias"), resize=_resize_layernorm)
def layer_norm(ctx) -> None:
    passthrough(ctx)
    k = len(ctx.module.normalized_shape)
    normalized = ctx.out()[-k:]
    for name in ("weight", "bias"):
        if getattr(ctx.module, name, None) is not None:
            ctx.unify_dims(ctx.param(name, ("out",) * k), normalized)
    ctx.set_aux("normalized_atoms", normalized)
    ctx.inexact(normalized, f"{type(ctx.module).__name__} over these channels")


def _rewrite_layer_norm(node, R):
    """F.layer_norm carries normalized_shape as an argument: follow the pruned trailing dims."""
    given = node.args[1] if len(node.args) > 1 else node.kwargs["normalized_shape"]
    ndim = R.ndim(node)
    new = [R.size(node, d) for d in range(ndim - len(given), ndim)]
    return None if list(given) == new else replace_arg(node, 1, "normalized_shape", new)


@register(F.layer_norm, rewrite=_rewrite_layer_norm)
def layer_norm_functional(ctx) -> None:
    x, w, b = ctx.arg(0, "input"), ctx.arg(2, "weight"), ctx.arg(3, "bias")
    ctx.unify_dims(ctx.dims(x), ctx.out())
    k = len(ctx.arg(1, "normalized_shape"))
    for p in (w, b):
        if p is not None:
            ctx.unify_dims(ctx.dims(p), ctx.out()[-k:])
    ctx.inexact(ctx.out()[-k:], "F.layer_norm over these channels")


def _resize_groupnorm(module, new_size, aux) -> None:
    module.num_groups = new_size(aux["groups"])
    module.num_channels = module.weight.shape[0] if module.weight is not None else module.num_channels


@register(nn.GroupNorm, params=("weight", "bias"), resize=_resize_groupnorm)
def group_norm(ctx) -> None:
    passthrough(ctx)
    c = ctx.out()[1]
    g, _ = ctx.factor(c, [ctx.module.num_groups, ctx.size(c) // ctx.module.num_groups])
    ctx.set_aux("groups", g)
    _channel_params(ctx, ("weight", "bias"), c)
    ctx.inexact([c], "GroupNorm over these channels")


def _couple_channel_args(ctx, channel_atom, names) -> None:
    """Per-channel tensor arguments of a functional norm (weight, bias, running stats) follow dim 1."""
    for index, name in names:
        t = ctx.arg(index, name)
        dims = ctx.dims(t)
        if dims:
            ctx.set_roles(t, ("out",))
            ctx.unify(dims[0], channel_atom)


@register(F.batch_norm, F.instance_norm)
def batch_norm_functional(ctx) -> None:
    """``F.batch_norm(x, mean, var, weight, bias, ...)``: per-channel arguments follow dim 1.

    Used on weights too: timm's ``StdConv2d`` standardizes ``weight.reshape(1, out, -1)`` this way.
    """
    x = ctx.dims(ctx.arg(0, "input"))
    ctx.unify_dims(x, ctx.out())
    _couple_channel_args(ctx, ctx.out()[1], ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias")))
    batch_stats = ctx.node.target is F.batch_norm and (ctx.arg(5, "training", False) or ctx.arg(1, "running_mean") is None)
    if batch_stats:  # statistics over every dim but 1 (weight standardization reads the filter's inputs)
        ctx.inexact([a for d, a in enumerate(ctx.out()) if d != 1], f"{ctx.op_name} statistics over these dims")


def _rewrite_group_norm(node, R):
    """``F.group_norm(x, num_groups, ...)``: whole groups may have been removed."""
    new = R.atom_size(R.aux(node)["groups"])
    given = node.args[1] if len(node.args) > 1 else node.kwargs["num_groups"]
    return None if given == new else replace_arg(node, 1, "num_groups", new)


@register(F.group_norm, rewrite=_rewrite_group_norm)
def group_norm_functional(ctx) -> None:
    x = ctx.dims(ctx.arg(0, "input"))
    ctx.unify_dims(x, ctx.out())
    c, n = ctx.out()[1], ctx.arg(1, "num_groups")
    g, _ = ctx.factor(c, [n, ctx.size(c) // n])
    ctx.set_aux("groups", g)
    _couple_channel_args(ctx, c, ((2, "weight"), (3, "bias")))
    ctx.inexact([c], "F.group_norm over these channels")
