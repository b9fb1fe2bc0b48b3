"""Checks that a pruned model is what the plan says: the dense model with the removed channels cut.

The reference is the dense model's traced graph run with every removed channel *cut at both ends*:
after every op, the positions the plan removes are set to zero in every value that carries them.
That is what pruning computes wherever the network works channel by channel (a conv reads zeros
where its input columns are gone; ``sigmoid(0) = 0.5`` of a removed channel never reaches the next
layer; a residual sum or a concatenation of zeros is the sum or concatenation of the rest). It
differs exactly where an op reads a statistic over the channels (LayerNorm/GroupNorm over channels,
a softmax, mean or std over channels): there the kept channels see a statistic of fewer values in
the pruned model. Such groups are declared ``Group.exact = False`` by the analysis, and
:func:`check` requires equivalence only when every pruned group is exact.

Example
-------
>>> import torch, graphprune as gp
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Sigmoid(), nn.Conv2d(8, 3, 1)).eval()
>>> x = torch.randn(1, 3, 8, 8)
>>> plan = gp.plan(gp.analyze(net, x), 0.5)
>>> result = check(net, gp.apply(net, plan), plan, x)
>>> result.exact, result.error < 1e-5, result.ok
(True, True, True)
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from .plan import Plan
from .reparam import copy_model
from .trace import set_tensor_attribute

__all__ = ["reference_output", "equivalence_error", "check", "Verdict", "zeroed_copy"]


class _CutInterpreter(fx.Interpreter):
    """Runs a traced graph, zeroing the removed positions of every value right after it is computed.

    Inputs and weights are cut in copies; a forward that assigns a weight (``w.data = f(...)``, a
    re-parametrization) assigns the module's own weight, as the forward does (callers pass a copy).
    """

    def __init__(self, gm: fx.GraphModule, cuts: dict[str, list]):
        super().__init__(gm)
        self.cuts = cuts
        self.weights: dict[int, torch.Tensor] = {}  # id of a weight's cut copy -> the weight

    def call_function(self, target, args, kwargs):
        if target is set_tensor_attribute and id(args[0]) in self.weights:
            setattr(self.weights[id(args[0])], *args[1:])
        return super().call_function(target, args, kwargs)

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if n.op in ("placeholder", "get_attr") and isinstance(out, torch.Tensor):
            weight, out = out, out.clone()  # cuts happen in place below: never in the user's inputs or weights
            self.weights[id(out)] = weight
        cuts = self.cuts.get(n.name)
        if not cuts:
            return out
        if isinstance(out, torch.Tensor):
            return _cut(out, cuts)
        return type(out)(_cut(v, c) if isinstance(v, torch.Tensor) and c else v for v, c in zip(out, cuts))


def _cut(t: torch.Tensor, cuts) -> torch.Tensor:
    overlapping = any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape))  # an expanded view
    for dim, idx in cuts:
        idx = idx.to(t.device)
        if overlapping:
            t = t.index_fill(dim, idx, 0)
        else:  # in place, so that aliases of the value (an in-place op's input) see the cut too
            t.index_fill_(dim, idx, 0)
    return t


def _cuts(plan: Plan) -> dict[str, list]:
    """fx node name → the removed positions of each dim, from the plan (per item for tuple values)."""
    from .surgery import SizeOracle

    oracle = SizeOracle(plan)

    def of(dims):
        out = []
        for d, atom in enumerate(dims):
            pos = oracle.removed_positions(atom)
            if len(pos):
                out.append((d, torch.as_tensor(np.asarray(pos, dtype=np.int64))))
        return out

    cuts = {}
    for name, dims in plan.graph.node_dims.items():
        if not dims:
            continue
        if isinstance(dims[0], (list, type(None))):
            per_item = [of(d) if d is not None else [] for d in dims]
            if any(per_item):
                cuts[name] = per_item
        elif of(dims):
            cuts[name] = of(dims)
    return cuts


@torch.no_grad()
def reference_output(model: nn.Module, plan: Plan, *inputs):
    """The dense ``model`` (analyzed by ``plan.graph``) with the plan's removed channels cut at both ends.

    Runs at the analysis input shapes only: the traced graph took its branches for them.
    """
    from .surgery import _graph_module

    traced = plan.graph.traced
    shapes = tuple(tuple(x.shape) for x in inputs if isinstance(x, torch.Tensor))
    if shapes != tuple(plan.graph.example_shapes):
        raise ValueError(f"the reference runs at the analysis input shapes {plan.graph.example_shapes}, got {shapes}")
    assigns = any(n.target is set_tensor_attribute for n in traced.gm.graph.nodes)
    model = copy_model(model) if assigns else model  # the forward assigns weights: not the user's
    gm = _graph_module(model, traced.gm.graph, traced.constants, type(model).__name__)
    was = model.training
    model.eval()
    try:
        return _CutInterpreter(gm, _cuts(plan)).run(*inputs)
    finally:
        model.train(was)


@torch.no_grad()
def equivalence_error(model: nn.Module, pruned: nn.Module, plan: Plan, *inputs) -> float:
    """max |reference − pruned| / max |pruned| on ``inputs`` (both in eval mode), the largest over every float
    tensor the model returns; see :func:`reference_output`."""
    a = reference_output(model, plan, *inputs)
    was = pruned.training
    pruned.eval()
    try:
        b = pruned(*inputs)
    finally:
        pruned.train(was)
    pairs = list(zip(_tensors(a), _tensors(b)))  # a model may return a tuple (an image and its degradation scores)
    if not pairs:
        raise ValueError("the model returns no tensor to compare")
    return max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-12)) for x, y in pairs if y.numel())


def _tensors(value) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_leaves

    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor) and t.is_floating_point()]


@dataclass
class Verdict:
    """The outcome of :func:`check`.

    ``exact`` says whether every pruned group is exact; ``ok`` is ``error <= tol`` for an exact plan
    and True otherwise (inexact groups change values by design; ``inexact`` lists them with reasons).
    """

    error: float
    exact: bool
    tol: float
    inexact: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.exact or self.error <= self.tol


def check(model: nn.Module, pruned: nn.Module, plan: Plan, *inputs, tol: float = 1e-4) -> Verdict:
    """Compare ``pruned`` with the cut reference; equivalence is required where every pruned group is exact."""
    inexact = {gid: plan.graph.groups[gid].inexact_reason for gid, idx in plan.removed.items()
               if idx and not plan.graph.groups[gid].exact}
    return Verdict(equivalence_error(model, pruned, plan, *inputs), not inexact, tol, inexact)


def zeroed_copy(model: nn.Module, plan: Plan) -> nn.Module:
    """A copy of the dense ``model`` whose parameters that make or read removed channels are zero.

    What regularization towards the plan converges to; the exact reference is :func:`reference_output`.
    """
    z = copy_model(model)
    params = dict(z.named_parameters())
    with torch.no_grad():
        for e in plan.entries():
            t = params.get(f"{e.module}.{e.param}" if e.module else e.param)
            if e.role in ("out", "in") and t is not None:
                t.index_fill_(e.dim, torch.tensor(e.indices, device=t.device), 0)
    return z
