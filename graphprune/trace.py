"""torch.fx tracing with a leaf-module policy, automatic leaf fallback and shape propagation.

Why this exists: the channel analysis needs a graph of every op together with the shape of every
value, while arbitrary user models (and timm's) contain code that symbolic tracing cannot follow.
The policy here decides which modules stay opaque (*leaves*):

1. the standard ``torch.nn`` leaves (Conv2d, Linear, norms, activations, ...), as fx does;
2. modules the user names in ``leaf_modules`` (classes, or fnmatch globs on qualified names), and
   modules whose class has its own entry in the op rule table (``set_rule(MyGate, ...)``);
3. timm's registered no-trace modules that an op rule knows (BatchNormAct2d, Conv2dSame, ...); the
   others are traced through, so their insides get the ordinary rules (the fallback below still
   makes them leaves when their code is untraceable). timm's no-trace functions are auto-wrapped;
4. an automatic fallback: when tracing fails inside a module, the *smallest* module on the call
   stack at the point of failure becomes a leaf and tracing restarts. Each such leaf is reported
   with the error that forced it, so a user can see why its channels may end up unprunable.

Shapes come from running the traced graph on meta tensors (no data; the commonest leaf modules by
formula), else on fake tensors (``FakeTensorMode``) when a module with weights must really run:
no real compute either way, so analysis time does not depend on the example input's resolution. A
graph that neither can run falls back to the real example input.

Each node then carries ``node.meta["gp_value"]``: the propagated value with every tensor replaced by
a :class:`TensorSpec`. Read it through :func:`tensor_spec` / :func:`value_spec`.
"""
from __future__ import annotations

import contextlib
import fnmatch
import inspect
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .errors import one_line as _one_line

__all__ = [
    "TensorSpec",
    "Traced",
    "TraceError",
    "trace",
    "tensor_spec",
    "value_spec",
    "as_input_tuple",
    "node_value",
]

META_KEY = "gp_value"


class TraceError(RuntimeError):
    """The model cannot be traced even with every failing submodule made a leaf."""


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one tensor value in the traced graph."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Traced:
    """A traced model: the GraphModule (sharing parameters with the model) and why leaves are leaves.

    ``leaves`` maps qualified module names that were made leaves by policy (not the ordinary
    ``torch.nn`` leaves) to the reason: ``"user"``, ``"timm no-trace"`` or ``"auto: <error>"``.
    """

    model: nn.Module
    gm: fx.GraphModule
    leaves: dict[str, str] = field(default_factory=dict)
    shape_source: str = "meta"
    constants: dict[str, torch.Tensor] = field(default_factory=dict)

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.gm.named_modules())


def as_input_tuple(example_inputs: Any) -> tuple:
    """Accept a tensor or a tuple/list of tensors, everywhere in the API."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise TypeError(
        f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}"
    )


# --------------------------------------------------------------------------------------------------
# Tracing


def _timm_notrace() -> tuple[set[type], list[Callable]]:
    """timm's registered no-trace modules and functions, when timm is in use.

    Only consulted if timm was already imported (a timm model necessarily imported it), so that
    analyzing other models does not pay timm's import time.
    """
    if "torchvision" in sys.modules:  # torchvision's fx-wrapped functions get their rules
        from .rules.torchvision_ops import register_torchvision

        register_torchvision()
    if "timm" not in sys.modules:
        return set(), []
    try:
        from timm.layers import _fx as timm_fx
    except Exception:  # timm changed its layout: nothing to add
        return set(), []
    from .rules.timm import register_timm

    register_timm()
    return set(timm_fx.get_notrace_modules()), list(timm_fx.get_notrace_functions())


class _PolicyTracer(fx.Tracer):
    """fx tracer that applies the leaf policy and remembers which module is being traced."""

    def __init__(self, leaf_types: tuple[type, ...], leaf_names: set[str], leaf_globs: Sequence[str],
                 autowrap_functions: Iterable[Callable] = (), ruled_types: tuple[type, ...] = ()):
        super().__init__(autowrap_functions=tuple(autowrap_functions))
        self.leaf_types = leaf_types
        self.ruled_types = ruled_types  # leaves only when an op rule knows the module
        self.leaf_names = leaf_names
        self.leaf_globs = tuple(leaf_globs)
        self.gp_stack: list[str] = []

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.leaf_names or isinstance(m, self.leaf_types):
            return True
        if self.ruled_types and isinstance(m, self.ruled_types) and _has_rule(m):
            return True
        if _has_own_rule(m):
            return True
        if any(fnmatch.fnmatchcase(qualname, g) for g in self.leaf_globs):
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        name = self.path_of_module(m)
        self.gp_stack.append(name)
        out = super().call_module(m, forward, args, kwargs)
        # Popped on success only: after an error the stack still names the failing module.
        self.gp_stack.pop()
        return out


def _has_rule(m: nn.Module) -> bool:
    from . import rules  # noqa: F401  (fills the table)
    from .rules.table import lookup

    return lookup(type(m), m) is not None


def _has_own_rule(m: nn.Module) -> bool:
    """A class with its own entry in the rule table (``set_rule(MyGate, ...)``) stays opaque."""
    from .rules.table import RULES

    return type(m) in RULES


def _split_leaf_spec(leaf_modules) -> tuple[tuple[type, ...], list[str]]:
    types, globs = [], []
    for spec in leaf_modules:
        if isinstance(spec, type) and issubclass(spec, nn.Module):
            types.append(spec)
        elif isinstance(spec, str):
            globs.append(spec)
        else:
            raise TypeError(f"leaf_modules entries must be nn.Module classes or name globs, got {spec!r}")
    return tuple(types), globs


def _specialized_args(model: nn.Module, n_inputs: int) -> dict[str, Any]:
    """Forward parameters the example inputs leave at their defaults, traced as those constants.

    Traced as free placeholders, ``mask=None`` would be a Proxy and ``if mask is not None`` would take
    the branch the model never takes (timm's Hiera); fx guards each specialized value with an assert.
    """
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    named = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params[:n_inputs + 1]):
        return {}
    return {p.name: p.default for p in params[n_inputs:]
            if p.kind in named and p.default is not inspect.Parameter.empty}


def _trace_graph(model: nn.Module, leaf_modules=(), max_fallbacks: int = 64,
                 n_inputs: int = 1) -> tuple[fx.GraphModule, dict]:
    user_types, user_globs = _split_leaf_spec(leaf_modules)
    timm_types, timm_funcs = _timm_notrace()
    leaves: dict[str, str] = {}
    for name, m in model.named_modules():
        if name and (isinstance(m, user_types) or any(fnmatch.fnmatchcase(name, g) for g in user_globs)):
            leaves[name] = "user"
        elif name and timm_types and isinstance(m, tuple(timm_types)) and _has_rule(m):
            leaves[name] = "timm no-trace"
    auto: set[str] = set()
    attrs_before = set(vars(model)) | set(model._buffers)
    for _ in range(max_fallbacks + 1):
        tracer = _PolicyTracer(user_types, auto, user_globs, timm_funcs, tuple(timm_types))
        try:
            graph = tracer.trace(model, concrete_args=_specialized_args(model, n_inputs) or None)
        except Exception as exc:  # noqa: BLE001 - any tracing failure triggers the fallback
            failing = tracer.gp_stack[-1] if tracer.gp_stack else ""
            if not failing or failing in auto:
                raise TraceError(
                    f"torch.fx cannot trace {type(model).__name__}"
                    f"{' (failing inside ' + failing + ')' if failing else ''}: "
                    f"{type(exc).__name__}: {_one_line(exc)}; make the offending code traceable or pass "
                    "leaf_modules=[...] naming the module that contains it"
                ) from exc
            auto.add(failing)
            leaves[failing] = f"auto: {type(exc).__name__}: {_one_line(exc)}"
            continue
        name = model.__class__.__name__
        gm = fx.GraphModule(tracer.root, graph, name)
        # Keep only leaves that really occur as call_module nodes (a parent leaf hides its children).
        called = {n.target for n in gm.graph.nodes if n.op == "call_module"}
        return gm, {k: v for k, v in leaves.items() if k in called}, _take_constants(model, attrs_before)
    raise TraceError(f"torch.fx cannot trace {type(model).__name__}: more than {max_fallbacks} fallback leaves")


def _take_constants(model: nn.Module, before: set[str]) -> dict[str, torch.Tensor]:
    """Tensor constants fx attached to the user's model while tracing (``_tensor_constant0``, ...).

    fx stores tensors that forward creates or holds as plain attributes on the traced root; they are
    moved off the user's model (analysis must leave it untouched) into ``Traced.constants``, from
    where the GraphModules that need them get them.
    """
    taken = {}
    for name in list(set(vars(model)) | set(model._buffers)):
        if name not in before and name.startswith("_tensor_constant"):
            taken[name] = model._buffers.pop(name) if name in model._buffers else vars(model).pop(name)
    return taken


# --------------------------------------------------------------------------------------------------
# Shape propagation


def value_spec(value: Any) -> Any:
    """Replace every tensor inside ``value`` (nested tuples/lists/dicts) by a TensorSpec."""
    if isinstance(value, torch.Tensor):
        return TensorSpec(tuple(int(s) for s in value.shape), value.dtype)
    if isinstance(value, (tuple, list)):
        return tuple(value_spec(v) for v in value)
    if isinstance(value, dict):
        return {k: value_spec(v) for k, v in value.items()}
    if isinstance(value, torch.Size):
        return tuple(int(s) for s in value)
    if isinstance(value, (int, float, bool, str, type(None), torch.dtype, torch.device, slice, type(...))):
        return value
    return f"<{type(value).__name__}>"


# Leaf modules whose output has the input's shape and dtype: their fake kernels (batch norm is
# decomposed into a dozen ops under fake tensors) are skipped when only shapes are wanted.
_SAME_SHAPE = {
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU,
    nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.ELU, nn.SELU, nn.Mish, nn.Softplus,
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Softmax,
}
_SAME_SHAPE_NAMES = {"BatchNormAct2d", "FrozenBatchNormAct2d", "GroupNormAct", "GroupNorm1Act", "LayerNormAct",
                     "LayerNormAct2d", "LayerNorm2d", "DropPath", "Affine", "LayerScale", "LayerScale2d"}


_SAME_SHAPE_FUNCTIONS = {
    F.layer_norm, F.group_norm, F.batch_norm, F.instance_norm, F.gelu, F.relu, F.silu, F.hardswish, F.dropout,
    F.hardsigmoid, F.leaky_relu, torch.relu, torch.sigmoid, torch.tanh, F.sigmoid, F.tanh,
}


def _conv_shape(m: nn.modules.conv._ConvNd, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Output shape of a plain convolution (no shape logic in a subclass), or None if unsure."""
    n = len(m.kernel_size)
    if isinstance(m.padding, str):
        if m.padding != "same":
            pad = (0,) * n
        else:
            return (*shape[:-n - 1], m.out_channels, *shape[-n:])
    else:
        pad = m.padding
    spatial = [(size + 2 * p - d * (k - 1) - 1) // s + 1
               for size, p, d, k, s in zip(shape[-n:], pad, m.dilation, m.kernel_size, m.stride)]
    return (*shape[:-n - 1], m.out_channels, *spatial)


class _SpecRecorder(fx.Interpreter):
    """Records each node's value spec; shape-only shortcuts for the commonest leaf modules."""

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        n.meta[META_KEY] = value_spec(out)
        return out

    def call_module(self, target, args, kwargs):
        m = self.fetch_attr(target)
        x = args[0] if len(args) == 1 and not kwargs else None
        if isinstance(x, torch.Tensor) and getattr(self, "shapes_only", False):
            cls = type(m)
            if cls in _SAME_SHAPE or cls.__name__ in _SAME_SHAPE_NAMES:
                return torch.empty_like(x)
            if cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d) and x.ndim in (len(m.kernel_size) + 1, len(m.kernel_size) + 2) \
                    and x.shape[-len(m.kernel_size) - 1] == m.in_channels:
                return x.new_empty(_conv_shape(m, tuple(x.shape)))
            if cls is nn.Linear and x.shape[-1] == m.in_features:
                return x.new_empty((*x.shape[:-1], m.out_features))
        return super().call_module(target, args, kwargs)

    def call_function(self, target, args, kwargs):
        if getattr(self, "shapes_only", False) and target in _SAME_SHAPE_FUNCTIONS and args \
                and isinstance(args[0], torch.Tensor):
            return torch.empty_like(args[0])
        return super().call_function(target, args, kwargs)


class _MetaRecorder(_SpecRecorder):
    """Shapes from meta tensors: no data, no fake-tensor machinery (nor its import time).

    Parameters and buffers are read as meta tensors; a leaf module with parameters outside the
    shape shortcuts cannot run on meta inputs, so it raises and the caller falls back to fake tensors.
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
        cls = type(m)
        shortcut = cls in _SAME_SHAPE or cls.__name__ in _SAME_SHAPE_NAMES or cls in (
            nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
        if not shortcut and (any(True for _ in m.parameters()) or any(True for _ in m.buffers())):
            raise _NeedsFake(target)
        return super().call_module(target, args, kwargs)


class _NeedsFake(Exception):
    """A module with weights that the meta path cannot run."""


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


def _propagate(gm: fx.GraphModule, inputs: tuple, shapes_only: bool = True) -> str:
    """Annotate every node with its value spec; returns "meta", "fake" or "real" (the path that worked).

    ``shapes_only`` lets common leaf modules skip their kernels and tries meta tensors first
    (analysis of a model that runs); the surgery's check of a rewritten network passes False so
    every kernel validates its weights on fake tensors. Callers wrap it in :func:`module_state_restored`.
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


def trace(model: nn.Module, example_inputs: Any, *, leaf_modules=()) -> Traced:
    """Trace ``model`` with the leaf policy and annotate every node with its value's shapes.

    Parameters
    ----------
    model : nn.Module
        Any module; it is not modified (the GraphModule shares its submodules).
    example_inputs : Tensor or tuple of Tensors
        Used for shapes only. Fake tensors are used, so resolution does not affect speed.
    leaf_modules : iterable of nn.Module classes or fnmatch globs on qualified names
        Extra modules to keep opaque.
    """
    inputs = as_input_tuple(example_inputs)
    was_training = model.training
    model.eval()
    try:
        with module_state_restored(model):  # tracing and propagation both run the user's forward code
            gm, leaves, constants = _trace_graph(model, leaf_modules, n_inputs=len(inputs))
            source = _propagate(gm, inputs)
    finally:
        model.train(was_training)
    return Traced(model=model, gm=gm, leaves=leaves, shape_source=source, constants=constants)


def tensor_spec(node: fx.Node) -> TensorSpec | None:
    """The TensorSpec of a node's value, None when the value is not a tensor.

    Raises
    ------
    KeyError
        When shape propagation has not annotated the node.
    """
    if META_KEY not in node.meta:
        raise KeyError(f"node {node.name!r} has no shape: run graphprune.trace.trace (shape propagation) first")
    spec = node.meta[META_KEY]
    return spec if isinstance(spec, TensorSpec) else None


def node_value(node: fx.Node) -> Any:
    if META_KEY not in node.meta:
        raise KeyError(f"node {node.name!r} has no shape: run graphprune.trace.trace (shape propagation) first")
    return node.meta[META_KEY]

