"""The front end: torch.fx tracing of real research code, with every value's shape recorded.

The channel analysis needs a graph of every op together with the shape of every value, while the
code SR researchers publish is not written for ``torch.fx.symbolic_trace``: top-level forwards pad
to a multiple of the window (``if h % ws != 0``), build attention masks from ``x.shape``, loop over
sizes, call einops, assign into tensors in place. The parts:

``concrete``
    :class:`ConcreteTracer`: records every op and runs it on a value as it does, answers Python's
    requests for concrete values (a comparison's truth, ``int()``, ``range()``, ``len()``, numpy on
    sizes) from the example input, and records each answer as a :class:`Guard`.
``values``
    How values are computed: meta tensors first (no data, resolution-independent), then fake
    tensors, then the real example input for code that needs data (``.item()``).
``policy``
    Which modules stay opaque (:class:`LeafPolicy`) and which functions are recorded whole
    (einops, timm's no-trace helpers). The tracer imports no op rules: the caller hands it a policy
    (:func:`graphprune.rules.tracing_policy`).
``specs`` / ``propagate``
    The recorded value of every node (``node.meta["gp_value"]``, :class:`TensorSpec`) and shape
    propagation through a finished GraphModule (the surgery's check).

When tracing fails inside a module even so, the *smallest* module on the call stack becomes a
leaf and tracing restarts; each such leaf is reported with the error that forced it.

>>> import torch
>>> from torch import nn
>>> traced = trace(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), torch.zeros(1, 3, 10, 10))
>>> [tensor_spec(n).shape for n in traced.gm.graph.nodes if n.op == "call_module"]
[(1, 8, 8, 8), (1, 8, 8, 8)]
>>> traced.shape_source, traced.guards
('meta', [])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import one_line as _one_line
from .concrete import INSTALLED_MODULE, ConcreteProxy, ConcreteTracer, DataDependentError, Guard, set_tensor_attribute
from .policy import LeafPolicy, split_leaf_spec
from .propagate import module_state_restored, propagate
from .specs import META_KEY, TensorSpec, as_input_tuple, node_value, tensor_spec, value_spec
from .values import MODES, Escalate

__all__ = [
    "TensorSpec", "Traced", "TraceError", "Guard", "LeafPolicy", "ConcreteTracer", "ConcreteProxy",
    "trace", "tensor_spec", "value_spec", "node_value", "as_input_tuple", "propagate",
    "module_state_restored", "split_leaf_spec", "set_tensor_attribute", "DataDependentError",
]


class TraceError(RuntimeError):
    """The model cannot be traced even with every failing submodule made a leaf."""


@dataclass
class Traced:
    """A traced model: the GraphModule (sharing parameters with the model), its leaves and guards.

    Attributes
    ----------
    leaves : dict
        Qualified names of modules made leaves by policy (not the ordinary ``torch.nn`` leaves) →
        why: ``"user"``, ``"timm no-trace"`` or ``"auto: <error>"``.
    shape_source : str
        The value mode that traced it: ``"meta"``, ``"fake"`` or ``"real"``.
    constants : dict
        Tensor constants tracing captured (``_tensor_constant0``) and modules the forward built and
        called (``_gp_module_0``), kept off the user's model.
    guards : list of Guard
        The conditions on the input the graph assumes (the branches and loop counts it followed).
    policy : LeafPolicy
        The leaf policy that traced it, the automatic leaves included: tracing the model again with
        it (a pruned copy, say) takes the same decisions.
    """

    model: nn.Module
    gm: fx.GraphModule
    leaves: dict[str, str] = field(default_factory=dict)
    shape_source: str = "meta"
    constants: dict[str, torch.Tensor] = field(default_factory=dict)
    guards: list[Guard] = field(default_factory=list)
    policy: LeafPolicy = field(default_factory=LeafPolicy)

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.gm.named_modules())


def trace(model: nn.Module, example_inputs: Any, *, leaf_modules=(), policy: LeafPolicy | None = None,
          max_fallbacks: int = 64) -> Traced:
    """Trace ``model`` on ``example_inputs`` and record every value's shape.

    Parameters
    ----------
    model : nn.Module
        Any module; it is left as it was (the GraphModule shares its submodules).
    example_inputs : Tensor or tuple of Tensors
        The forward's first arguments; further arguments keep their defaults. Only shapes are used
        unless the code needs data (then one forward runs at this size).
    leaf_modules : iterable of nn.Module classes or fnmatch globs on qualified names
        Extra modules to keep opaque.
    policy : LeafPolicy, optional
        Leaves and wrapped functions (the analysis passes the rule table's).
    """
    policy = (policy or LeafPolicy()).with_leaf_modules(leaf_modules)
    inputs = as_input_tuple(example_inputs)
    _settle_torch()
    was_training = model.training
    model.eval()
    try:
        with module_state_restored(model):
            for mode in MODES:
                try:
                    return _trace_in_mode(model, inputs, policy, mode, max_fallbacks)
                except Escalate as exc:
                    if mode == MODES[-1]:
                        raise TraceError(f"cannot trace {type(model).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    raise AssertionError("unreachable")


def _settle_torch() -> None:
    """Let torch build what it builds lazily from its own functions before fx patches any of them.

    Meta kernels import ``torch._dynamo`` on first use, and ``torch.device(...)`` as a context caches
    its list of factory functions on first use: done while tracing, both would see fx's wrappers of
    ``torch.zeros`` & co. (dynamo's import fails; device contexts stop working for the process).
    """
    import torch._dynamo  # noqa: F401
    import torch.overrides
    from torch.utils import _device

    _device._device_constructors()
    torch.overrides.get_ignored_functions()
    torch.overrides.get_overridable_functions()


def _trace_in_mode(model: nn.Module, inputs: tuple, policy: LeafPolicy, mode: str, max_fallbacks: int) -> Traced:
    """Trace in one value mode, making the smallest failing module a leaf after each failure."""
    leaves = {name: r for name, m in model.named_modules() if (r := policy.reason(name, m))}
    auto: set[str] = set()
    attrs_before = set(vars(model)) | set(model._buffers)
    for _ in range(max_fallbacks + 1):
        tracer = ConcreteTracer(policy, inputs, mode, frozenset(auto))
        try:
            with module_state_restored(model):  # a failed attempt must not leave its proxies cached on modules
                graph = tracer.trace(model)
                constants = _take_constants(model, attrs_before)
        except Escalate:
            raise
        except Exception as exc:  # noqa: BLE001 - any tracing failure triggers the fallback
            if tracer.escalation is not None:
                raise tracer.escalation from exc
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
        if tracer.escalation is not None:  # user code caught it, but the values it saw were not real
            raise tracer.escalation
        for node, value in tracer.values.items():
            node.meta[META_KEY] = value_spec(value)
            # fx's mark for autowrapped calls makes generated code register "torch.zeros" globally
            # (breaking later traces); this tracer wraps what it needs itself
            node.meta.pop("is_wrapped", None)
        gm = _graph_module(tracer.root, graph, constants)
        called = {n.target for n in gm.graph.nodes if n.op == "call_module"}  # a parent leaf hides its children
        return Traced(model=model, gm=gm, leaves={k: v for k, v in leaves.items() if k in called},
                      shape_source=mode, constants=constants, guards=tracer.guards,
                      policy=policy.with_leaf_modules(sorted(auto)))
    raise TraceError(f"torch.fx cannot trace {type(model).__name__}: more than {max_fallbacks} fallback leaves")


def _graph_module(root: nn.Module, graph: fx.Graph, constants: dict) -> fx.GraphModule:
    """The traced GraphModule; the constants live on it only while it is built (then in ``Traced``)."""
    for k, v in constants.items():
        setattr(root, k, v)
    try:
        return fx.GraphModule(root, graph, root.__class__.__name__)
    finally:
        for k in constants:
            delattr(root, k)


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
    for name in [k for k in model._modules if k.startswith(INSTALLED_MODULE)]:  # modules the forward built
        taken[name] = model._modules.pop(name)
    return taken
