"""Shape propagation through a finished GraphModule: the surgery's check of a rewritten network.

The tracer records values as it traces (:mod:`graphprune.trace.concrete`); a rewritten graph has no
tracer behind it, so its shapes are found by running it with an fx Interpreter: on meta tensors when
only shapes are wanted, else on fake tensors (every kernel validates its weights: the check wants
that), else on the real input.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .specs import META_KEY, value_spec
from .values import SAME_SHAPE_FUNCTIONS, PLAIN_CONVS, same_shape_module, shape_shortcut

__all__ = ["propagate", "module_state_restored"]


class _SpecRecorder(fx.Interpreter):
    """Records each node's value spec; shape-only shortcuts for the commonest leaf modules."""

    shapes_only = False

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        n.meta[META_KEY] = value_spec(out)
        return out

    def call_module(self, target, args, kwargs):
        if self.shapes_only:
            x = args[0] if len(args) == 1 and not kwargs else None
            shape = shape_shortcut(self.fetch_attr(target), x)
            if shape is not None:
                return x.new_empty(shape)
        return super().call_module(target, args, kwargs)

    def call_function(self, target, args, kwargs):
        if self.shapes_only and target in SAME_SHAPE_FUNCTIONS and args and isinstance(args[0], torch.Tensor):
            return torch.empty_like(args[0])
        return super().call_function(target, args, kwargs)


class _MetaRecorder(_SpecRecorder):
    """Shapes from meta tensors: no data, no fake-tensor machinery (nor its import time).

    A leaf module with weights outside the shape shortcuts cannot run on meta inputs: it raises,
    and :func:`propagate` falls back to fake tensors.
    """

    shapes_only = True

    def placeholder(self, target, args, kwargs):
        x = super().placeholder(target, args, kwargs)
        return x.to("meta") if isinstance(x, torch.Tensor) else x

    def get_attr(self, target, args, kwargs):
        x = super().get_attr(target, args, kwargs)
        return x.to("meta") if isinstance(x, torch.Tensor) else x

    def call_module(self, target, args, kwargs):
        m = self.fetch_attr(target)
        shortcut = same_shape_module(m) or type(m) in (*PLAIN_CONVS, nn.Linear)
        if not shortcut and (any(True for _ in m.parameters()) or any(True for _ in m.buffers())):
            raise RuntimeError(f"{target} has weights the meta path cannot run")
        return super().call_module(target, args, kwargs)


@contextlib.contextmanager
def module_state_restored(model: nn.Module):
    """Put every module attribute back as it was: tracing and shape propagation run the user's code.

    Some forwards cache tensors on the module (ConViT's ``self.rel_indices = ...``); run under fake
    or meta tensors, that would leave fake tensors in the user's model. Parameters and buffers are
    restored too (by identity: their values are never written here).
    """
    saved = [(m, dict(m.__dict__), dict(m._parameters), dict(m._buffers)) for m in model.modules()]
    try:
        yield
    finally:
        for m, attrs, params, buffers in saved:
            for key in [k for k in m.__dict__ if k not in attrs]:
                del m.__dict__[key]
            for key, value in attrs.items():
                if m.__dict__.get(key) is not value:
                    m.__dict__[key] = value
            for store, old in ((m._parameters, params), (m._buffers, buffers)):
                if store.keys() != old.keys() or any(store[k] is not v for k, v in old.items()):
                    store.clear()
                    store.update(old)


def propagate(gm: fx.GraphModule, inputs: tuple, shapes_only: bool = True) -> str:
    """Annotate every node with its value spec; returns "meta", "fake" or "real" (the path that worked).

    ``shapes_only`` lets common leaf modules skip their kernels and tries meta tensors first;
    the surgery's check of a rewritten network passes False so every kernel validates its weights on
    fake tensors. Callers wrap it in :func:`module_state_restored`.
    """
    if shapes_only:
        try:
            _MetaRecorder(gm).run(*inputs)
            return "meta"
        except Exception:  # noqa: BLE001 - anything the meta path cannot do goes to fake tensors
            pass
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            fake_inputs = tuple(mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in inputs)
            recorder = _SpecRecorder(gm)
            recorder.shapes_only = shapes_only
            recorder.run(*fake_inputs)
        return "fake"
    except Exception:  # noqa: BLE001 - some ops have no fake kernel; use the real input instead
        with torch.no_grad():
            _SpecRecorder(gm).run(*inputs)
        return "real"
