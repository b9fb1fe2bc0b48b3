"""timm layers: the leaf modules and wrapped functions that carry channels.

timm is imported lazily: :func:`register_timm` fills these entries the first time a model is traced
while timm is imported (a timm model necessarily imported it), so analyzing other models does not
pay timm's import time. Most timm layers need no entry of their own: ``BatchNormAct2d``,
``Conv2dSame``, ``StdConv2dSame``, ``MaxPool2dSame`` subclass a torch layer without adding
parameters, and the table lookup walks the MRO. The entries here are for

* layers with a parameter of their own (``ScaledStdConv2d``'s ``gain``) or no torch base class
  (``FrozenBatchNormAct2d``, frozen batch norms);
* channels-first layer norms (``LayerNorm2d``): a module rule keeps the user's class and updates
  ``normalized_shape`` instead of rewriting the traced graph;
* timm's no-trace functions that appear in attention blocks (``maybe_add_mask``).

A class that has its own entry in the table is kept opaque by the tracer.
"""
from __future__ import annotations

from .conv import couple_conv
from .elementwise import broadcast, passthrough
from .norm import _STATS, _channel_params
from .table import RULES, register

__all__ = ["register_timm"]

_done = False


def _resize_std_conv(module, new_size, aux) -> None:
    from .conv import _resize_conv

    _resize_conv(module, new_size, aux)


def std_conv(ctx) -> None:
    """Weight-standardized convs: a conv whose filters are normalized one by one (per output channel)."""
    m = ctx.module
    w = ctx.param("weight", ("out", "in") + (None,) * (m.weight.ndim - 2))
    b = ctx.param("bias", ("out",)) if m.bias is not None else []
    couple_conv(ctx, ctx.dims(ctx.tensor_args()[0]), ctx.out(), w, b, m.groups, transposed=False)
    ctx.inexact([w[1]], f"weight standardization of {type(m).__name__} over its input channels")
    if getattr(m, "gain", None) is not None:
        gain = ctx.param("gain", ("out",) + (None,) * (m.gain.ndim - 1))
        ctx.unify(gain[0], ctx.out()[1])
        ctx.free(*gain[1:])


def _resize_frozen_bn(module, new_size, aux) -> None:
    if hasattr(module, "num_features"):
        module.num_features = module.running_mean.shape[0]


def frozen_batch_norm(ctx) -> None:
    """Frozen batch norms keep their statistics and affine terms as buffers: they follow dim 1."""
    passthrough(ctx)
    _channel_params(ctx, ("weight", "bias", "running_mean", "running_var"), ctx.out()[1])


def _resize_layer_norm_2d(module, new_size, aux) -> None:
    module.normalized_shape = (module.weight.shape[0],) if module.weight is not None else module.normalized_shape


def layer_norm_2d(ctx) -> None:
    """LayerNorm over the channels of an NCHW tensor (normalized_shape = (C,))."""
    passthrough(ctx)
    _channel_params(ctx, ("weight", "bias"), ctx.out()[1])
    ctx.inexact([ctx.out()[1]], f"{type(ctx.module).__name__} over these channels")


def register_timm() -> None:
    """Add the timm entries to the table (idempotent; a no-op when timm is not installed)."""
    global _done
    if _done:
        return
    _done = True
    try:
        import timm.layers as L
        from timm.layers import attention
    except Exception:  # noqa: BLE001 - timm missing or laid out differently: nothing to add
        return

    def add(names, couple, **kw):
        targets = [getattr(L, n) for n in names if hasattr(L, n) and getattr(L, n) not in RULES]
        if targets:
            register(*targets, name=couple.__name__, **kw)(couple)

    add(["StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame"], std_conv,
        params=("weight", "bias", "gain"), resize=_resize_std_conv)
    add(["FrozenBatchNormAct2d", "FrozenBatchNorm2d"], frozen_batch_norm, params=_STATS, resize=_resize_frozen_bn)
    add(["LayerNorm2d"], layer_norm_2d, params=("weight", "bias"), resize=_resize_layer_norm_2d)
    if getattr(attention, "maybe_add_mask", None) is not None and attention.maybe_add_mask not in RULES:
        register(attention.maybe_add_mask, name="broadcast")(broadcast)
