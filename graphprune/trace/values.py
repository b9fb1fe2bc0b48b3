"""Concrete values behind the tracer's proxies, computed op by op on meta, fake or real tensors.

The tracer runs every recorded op on values as it records it, so that Python can be answered when
it asks a traced value for a concrete one (:mod:`graphprune.trace.concrete`). Three modes, tried in
this order by :func:`graphprune.trace.trace`:

``meta``
    Meta tensors: shapes and dtypes, no data and no compute; parameters are read as meta copies
    (no data copied). Factory calls made by recorded ops land on the meta device too. Fast and
    independent of the input resolution.
``fake``
    ``FakeTensorMode``: still no data, for ops and leaf modules whose meta kernels are missing or that
    mix devices.
``real``
    The example input itself: for code that needs data (``.item()``, ``bool(tensor)``, numpy on a
    tensor). Costs one forward pass at the example size.

A value that a mode cannot compute raises :class:`Escalate`, and tracing restarts in the next mode.
"""
from __future__ import annotations

import contextlib
import operator
import types
from typing import Any, Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODES", "Escalate", "Values", "same_shape_module", "conv_output_shape"]

MODES = ("meta", "fake", "real")


class Escalate(Exception):
    """This mode cannot compute a value (no data, no kernel): trace again in the next mode."""

    def __init__(self, mode: str, why: str):
        super().__init__(f"{mode} values cannot {why}")
        self.mode, self.why = mode, why


# Leaf modules whose output has the input's shape and dtype: their kernels are skipped when only shapes
# are wanted (batch norm alone is a dozen ops under fake tensors).
SAME_SHAPE = {
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU,
    nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.ELU, nn.SELU, nn.Mish, nn.Softplus,
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Softmax,
}
SAME_SHAPE_NAMES = {"BatchNormAct2d", "FrozenBatchNormAct2d", "GroupNormAct", "GroupNorm1Act", "LayerNormAct",
                    "LayerNormAct2d", "LayerNorm2d", "DropPath", "Affine", "LayerScale", "LayerScale2d"}
SAME_SHAPE_FUNCTIONS = {
    F.layer_norm, F.group_norm, F.batch_norm, F.instance_norm, F.gelu, F.relu, F.silu, F.hardswish, F.dropout,
    F.hardsigmoid, F.leaky_relu, torch.relu, torch.sigmoid, torch.tanh, F.sigmoid, F.tanh,
}
PLAIN_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

# Broadcasting arithmetic, the commonest op of all: shape and dtype by formula on meta tensors (the
# generic meta path goes through Python reference kernels, ~0.5 ms each).
BROADCAST_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul,
                       torch.div, "add", "sub", "mul", "div", "__add__", "__sub__", "__mul__", "__truediv__",
                       "__radd__", "__rmul__"}


def same_shape_module(m: nn.Module) -> bool:
    cls = type(m)
    return cls in SAME_SHAPE or cls.__name__ in SAME_SHAPE_NAMES


def conv_output_shape(m: nn.modules.conv._ConvNd, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Output shape of a plain convolution (no shape logic in a subclass), or None when the input does not fit."""
    n = len(m.kernel_size)
    if len(shape) not in (n + 1, n + 2) or shape[-n - 1] != m.in_channels:
        return None
    if isinstance(m.padding, str):
        if m.padding == "same":
            return (*shape[:-n - 1], m.out_channels, *shape[-n:])
        pad = (0,) * n
    else:
        pad = m.padding
    spatial = [(size + 2 * p - d * (k - 1) - 1) // s + 1
               for size, p, d, k, s in zip(shape[-n:], pad, m.dilation, m.kernel_size, m.stride)]
    return (*shape[:-n - 1], m.out_channels, *spatial)


def shape_shortcut(m: nn.Module, x: Any) -> tuple[int, ...] | None:
    """The output shape of a common leaf module from its input's shape alone, or None."""
    if not isinstance(x, torch.Tensor):
        return None
    if same_shape_module(m):
        return tuple(x.shape)
    if type(m) in PLAIN_CONVS:
        return conv_output_shape(m, tuple(x.shape))
    if type(m) is nn.Linear and x.ndim and x.shape[-1] == m.in_features:
        return (*x.shape[:-1], m.out_features)
    return None


_TRUE_DIVISIONS = {operator.truediv, torch.div, "div", "__truediv__"}


def _broadcast_meta(args: tuple, true_division: bool = False) -> torch.Tensor | None:
    """``a op b`` of meta tensors and python numbers: a meta tensor of the broadcast shape and result dtype."""
    if len(args) != 2 or not any(isinstance(a, torch.Tensor) for a in args):
        return None
    if not all(isinstance(a, (torch.Tensor, int, float, bool)) and (not isinstance(a, torch.Tensor) or a.is_meta)
               for a in args):
        return None
    shapes = [a.shape for a in args if isinstance(a, torch.Tensor)]
    try:
        shape, dtype = torch.broadcast_shapes(*shapes), torch.result_type(*args)
    except RuntimeError:
        return None  # incompatible: let the real kernel say why
    if true_division and not (dtype.is_floating_point or dtype.is_complex):
        dtype = torch.get_default_dtype()
    return torch.empty(shape, dtype=dtype, device="meta")


class Values:
    """Computes the value of each recorded op in one mode.

    ``convert`` turns a real tensor (an input, a parameter, a constant captured by tracing) into this
    mode's kind of tensor; ``call`` runs a function, a method or a leaf module on converted values.
    """

    def __init__(self, mode: str, isolate: Callable[[], ContextManager] = contextlib.nullcontext):
        if mode not in MODES:
            raise ValueError(f"unknown value mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.isolate = isolate  # around user code run for a value (a module's forward, a python function)
        self._converted: dict[int, torch.Tensor] = {}
        self._fake_mode = None
        if mode == "fake":
            from torch._subclasses.fake_tensor import FakeTensorMode

            self._fake_mode = FakeTensorMode(allow_non_fake_inputs=True)

    # ---- converting real tensors
    def convert(self, t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        key = id(t)
        if key not in self._converted:
            self._converted[key] = self._convert(t)
        return self._converted[key]

    def _convert(self, t: torch.Tensor) -> torch.Tensor:
        if self.mode == "meta":
            return t.detach().to("meta")
        if self.mode == "fake":
            return self._fake_mode.from_tensor(t.detach())
        return t.detach().clone()  # recorded in-place ops must not write into the user's tensors

    def context(self):
        """Where ops run: factories land on the meta device, or inside the fake mode."""
        if self.mode == "meta":
            return torch.device("meta")
        if self.mode == "fake":
            return self._fake_mode
        return torch.no_grad()

    # ---- running ops
    def call(self, kind: str, target: Any, args: tuple, kwargs: dict, root: nn.Module) -> Any:
        if self.mode == "meta" and kind != "call_module" and target in BROADCAST_FUNCTIONS and not kwargs:
            out = _broadcast_meta(args, true_division=target in _TRUE_DIVISIONS)
            if out is not None:
                return out
        if self.mode == "meta" and target in SAME_SHAPE_FUNCTIONS and args and isinstance(args[0], torch.Tensor) \
                and not kwargs.get("inplace") and len(args) < 2:
            return torch.empty_like(args[0])
        try:
            with self.context(), torch.no_grad():
                if kind == "call_function":
                    if isinstance(target, types.FunctionType) and not target.__module__.startswith("torch"):
                        with self.isolate():
                            return target(*args, **kwargs)
                    return target(*args, **kwargs)
                if kind == "call_method":
                    return getattr(args[0], target)(*args[1:], **kwargs)
                return self._call_module(root.get_submodule(target), args, kwargs)
        except Escalate:
            raise
        except Exception as exc:  # noqa: BLE001 - a kernel this mode lacks: the next mode computes it
            if self.mode == "real" or self._fails_for_real(kind, target, args, kwargs, root):
                raise  # the op itself fails (the user's code may expect that and catch it)
            raise Escalate(self.mode, f"run {getattr(target, '__name__', target)}: "
                                      f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}") from exc

    def _fails_for_real(self, kind: str, target: Any, args: tuple, kwargs: dict, root: nn.Module) -> bool:
        """Whether the op also fails on real tensors of the same shapes (zeros): then it is no gap of this mode."""
        def real(v):
            return torch.zeros(v.shape, dtype=v.dtype) if isinstance(v, torch.Tensor) else v

        args, kwargs = torch.utils._pytree.tree_map(real, (args, kwargs))
        try:
            with torch.no_grad(), self.isolate():
                if kind == "call_function":
                    target(*args, **kwargs)
                elif kind == "call_method":
                    getattr(args[0], target)(*args[1:], **kwargs)
                else:
                    root.get_submodule(target)(*args, **kwargs)
        except Exception:  # noqa: BLE001
            return True
        return False

    def _call_module(self, m: nn.Module, args: tuple, kwargs: dict) -> Any:
        x = args[0] if len(args) == 1 and not kwargs else None
        shape = shape_shortcut(m, x) if self.mode != "real" else None
        if shape is not None:
            return x.new_empty(shape)
        with self.isolate():
            if self.mode != "meta":
                return m(*args, **kwargs)
            state = {k: self.convert(v) for k, v in [*m.named_parameters(), *m.named_buffers()]}
            return torch.func.functional_call(m, state, args, kwargs)

