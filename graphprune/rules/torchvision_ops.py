"""torchvision functions that torchvision wraps for fx (they appear as single ``call_function`` nodes).

Registered lazily by :func:`register_torchvision` the first time a model is traced while torchvision
is imported. ``shifted_window_attention`` has no entry on purpose: its q/k/v width must equal the
input width, so Swin's residual stream stays blocked (the MLPs stay prunable).
"""
from __future__ import annotations

import sys

from .elementwise import passthrough
from .table import RULES, register

__all__ = ["register_torchvision"]

_done = False


def patch_merging_pad(ctx) -> None:
    """``(..., H, W, C) → (..., H/2, W/2, 4·C)``: the 4 sub-pixel copies of C side by side."""
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    ctx.unify_dims(x[:-3], out[:-3])
    ctx.block([*x[-3:-1], *out[-3:-1]], "a patch-merged spatial dimension")
    copies = ctx.new(4)
    ctx.block([copies], "sub-pixel positions of patch merging are spatial, not channels")
    ctx.prod(out[-1], [copies, x[-1]])


def relative_position_bias(ctx) -> None:
    """``table[(2w-1)², heads][index] → (1, heads, N, N)``: only the heads dim carries over."""
    table, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    ctx.unify(table[1], out[1])
    ctx.free(out[0])
    # table rows and the index are parameters/buffers: blocked, never a group of their own
    ctx.block([table[0], *out[2:]], "token positions of a relative position bias")
    for extra in ctx.tensor_args()[1:]:
        ctx.block(ctx.dims(extra), "a relative position index")


def register_torchvision() -> None:
    """Add the torchvision entries to the table (idempotent; a no-op when torchvision is absent)."""
    global _done
    if _done or "torchvision" not in sys.modules:
        return
    _done = True
    try:
        from torchvision.models import swin_transformer as swin
        from torchvision.ops import stochastic_depth as sd_module
    except Exception:  # noqa: BLE001
        return
    sd = getattr(sys.modules.get("torchvision.ops.stochastic_depth"), "stochastic_depth", None) or sd_module
    for target, couple in ((sd, passthrough), (getattr(swin, "_patch_merging_pad", None), patch_merging_pad),
                           (getattr(swin, "_get_relative_position_bias", None), relative_position_bias)):
        if callable(target) and target not in RULES:
            register(target, name=couple.__name__)(couple)
