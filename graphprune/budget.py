"""What a plan costs, without applying it: Mult-Adds and parameters as functions of the kept channels.

Users think in budgets ("fit 35.8 G Mult-Adds at 720p", "600 K parameters"); a plan is a number of kept
channels per group. The channel graph already knows how every dimension of every weight and value is
made of groups (a residual width is one group, an attention width the product heads x head dim), so each
counted quantity is a sum of *terms*, a constant times a product of dimension sizes:

* parameters: one term per parameter, the product of its dims;
* the SR papers' Mult-Adds (``graphprune.sr_mult_adds``: conv and linear MACs, bias excluded, at a
  1280x720 output): per conv call ``prod(weight) x prod(out spatial)``, per linear ``tokens x in x out``;
* fvcore-convention flops (``graphprune.count``): conv, linear, matmul/bmm and attention MACs.

A dimension's size under a plan is its leaves' kept counts summed (a concatenation) or multiplied (a
product), so evaluating a plan is a few thousand multiplications: a budget search can try thousands of
plans. The Mult-Adds at 720p are read off a second trace at that input size (meta tensors, no compute),
mapped to the analysis' groups by their members.

>>> import torch, graphprune as gp
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
>>> graph = gp.analyze(net, torch.zeros(1, 3, 16, 16))
>>> cost = CostModel(graph, "params")
>>> cost.dense == sum(p.numel() for p in net.parameters())
True
>>> (g,) = graph.prunable_groups
>>> cost({g.id: 4}) == sum(p.numel() for p in gp.apply(net, gp.plan(graph, 0.5)).parameters())
True
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .channels import ChannelGraph, analyze
from .trace import TensorSpec, node_value

__all__ = ["CostModel", "MEASURES", "counting_input"]

MEASURES = ("mult_adds", "params", "flops")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONV_FUNCTIONS = (F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d)
_MATMULS = {torch.matmul, torch.bmm, "matmul", "bmm", "__matmul__"}


def counting_input(graph: ChannelGraph, hr: tuple[int, int] = (720, 1280)) -> tuple[int, ...] | None:
    """The LR input of the SR papers' convention when the model maps an image to an image of ``s`` times
    its size (``s >= 1``), else None: ``(1, C, hr_h // s, hr_w // s)``."""
    import operator

    ins = [n for n in graph.traced.gm.graph.nodes if n.op == "placeholder"]
    out = next(n for n in graph.traced.gm.graph.nodes if n.op == "output").args[0]
    x, y = (node_value(ins[0]) if len(ins) == 1 else None), node_value(out) if isinstance(out, fx.Node) else None
    if not (isinstance(x, TensorSpec) and isinstance(y, TensorSpec) and x.ndim == 4 == y.ndim):
        return None
    s = y.shape[-1] // x.shape[-1]
    if s < 1 or y.shape[-1] != s * x.shape[-1] or y.shape[-2] != s * x.shape[-2]:
        return None
    return (1, x.shape[1], operator.floordiv(hr[0], s), operator.floordiv(hr[1], s))


class CostModel:
    """``cost(kept)``: the measure of the model when each group keeps ``kept[group id]`` channels.

    Parameters
    ----------
    graph : ChannelGraph
        The analysis the plans are made for.
    measure : "mult_adds", "params" or "flops"
        ``mult_adds``: the SR papers' count (:func:`graphprune.sr_mult_adds`) for image-to-image models at a
        1280x720 output, conv/linear/matmul MACs at the example input otherwise; ``flops``: fvcore's
        convention at the example input (:func:`graphprune.count`), conv/linear/matmul/attention terms.
    """

    def __init__(self, graph: ChannelGraph, measure: str = "mult_adds", *, leaf_modules=()):
        if measure not in MEASURES:
            raise ValueError(f"unknown budget measure {measure!r}; expected one of {MEASURES}")
        self.graph, self.measure = graph, measure
        self.terms: list[tuple[float, tuple[int, ...]]] = []
        self.constant = 0.0
        if measure == "params":
            self._param_terms(graph)
            self.atoms = graph.atoms
        else:
            shape = counting_input(graph) if measure == "mult_adds" else None
            counted = graph if shape is None else analyze(graph.model, torch.zeros(shape), ignore=graph.ignore,
                                                          leaf_modules=leaf_modules, size_ties=graph.size_ties)
            self.atoms = counted.atoms
            self._leaf = _map_groups(graph, counted) if counted is not graph else None
            self._mac_terms(counted, sr=shape is not None, matmul=measure == "flops" or shape is None)
        if getattr(self, "_leaf", None) is None:
            self._leaf = {g.id: leaf for g, leaf in zip(graph.groups, graph.leaf_of_group)}
        self._terms_of: dict[int, list[int]] = {}  # leaf root -> the terms its width enters
        for i, (_, atoms) in enumerate(self.terms):
            for leaf in set().union(*(self._leaves(a) for a in atoms)):
                self._terms_of.setdefault(leaf, []).append(i)
        self.dense = self({})

    # ---- evaluation
    def __call__(self, kept: Mapping[int, int]) -> float:
        """The measure with ``kept[g]`` channels in group ``g`` (groups not listed keep all)."""
        sizes = {self.atoms.find(self._leaf[g]): n for g, n in kept.items() if g in self._leaf}
        memo: dict[int, int] = {}
        return self.constant + sum(c * math.prod(self._size(a, sizes, memo) for a in atoms) for c, atoms in self.terms)

    def change(self, kept: Mapping[int, int], group: int, k: int) -> float:
        """``cost({**kept, group: k}) - cost(kept)``, from the terms that group's width enters alone.

        A budget search prices one group's step at a time; on RCAN (403 groups, 817 terms) this is what
        makes a global allocation take a second instead of a minute.
        """
        leaf = self.atoms.find(self._leaf[group]) if group in self._leaf else None
        if leaf is None:
            return 0.0
        sizes = {self.atoms.find(self._leaf[g]): n for g, n in kept.items() if g in self._leaf}
        terms = self._terms_of.get(leaf, ())
        before = self._sum(terms, sizes)
        return self._sum(terms, {**sizes, leaf: k}) - before

    def _sum(self, terms, sizes: dict[int, int]) -> float:
        memo: dict[int, int] = {}
        return sum(self.terms[i][0] * math.prod(self._size(a, sizes, memo) for a in self.terms[i][1]) for i in terms)

    def _leaves(self, atom: int) -> set[int]:
        """The leaf roots an atom's size is made of (through concatenations and products)."""
        root = self.atoms.find(atom)
        d = self.atoms.definition(root)
        return {root} if d is None else set().union(*(self._leaves(p) for p in d.parts))

    def _size(self, atom: int, kept: dict[int, int], memo: dict[int, int]) -> int:
        root = self.atoms.find(atom)
        if root in memo:
            return memo[root]
        d = self.atoms.definition(root)
        if d is None:
            size = kept.get(root, self.atoms.size(root))
        elif d.kind == "cat":
            size = sum(self._size(p, kept, memo) for p in d.parts)
        else:
            size = math.prod(self._size(p, kept, memo) for p in d.parts)
        memo[root] = size
        return size

    # ---- terms
    def _param_terms(self, graph: ChannelGraph) -> None:
        seen, model = set(), graph.model
        for (module, name), atoms in graph.params.items():
            t = getattr(model.get_submodule(module), name, None) if not name.startswith("_tensor_constant") else None
            if isinstance(t, nn.Parameter) and id(t) not in seen:
                seen.add(id(t))
                self.terms.append((1.0, tuple(atoms)))
        self.constant = float(sum(p.numel() for p in model.parameters() if id(p) not in seen))

    def _mac_terms(self, g: ChannelGraph, sr: bool, matmul: bool) -> None:
        modules = dict(g.traced.gm.named_modules())
        for node in g.traced.gm.graph.nodes:
            m = modules.get(node.target) if node.op == "call_module" else None
            if isinstance(m, _CONVS) or node.target in _CONV_FUNCTIONS:
                self._conv(g, node, m, sr)
            elif isinstance(m, nn.Linear) or node.target is F.linear:
                w = g.params[(node.target, "weight")] if m is not None else g.node_dims[node.args[1].name]
                x = g.node_dims[node.args[0].name]
                self.terms.append((1.0, (*x[:-1], w[1], w[0])))
            elif matmul and node.target in _MATMULS:
                a, out = g.node_dims[node.args[0].name], g.node_dims[node.name]
                self.terms.append((1.0, (*out, a[-1])))
            elif matmul and node.target is F.scaled_dot_product_attention:
                q, k, v = (g.node_dims[a.name] for a in node.args[:3])
                self.terms.append((1.0, (*q[:-1], k[-2], q[-1])))
                self.terms.append((1.0, (*q[:-1], k[-2], v[-1])))

    def _conv(self, g: ChannelGraph, node: fx.Node, m, sr: bool) -> None:
        w = g.params[(node.target, "weight")] if m is not None else g.node_dims[node.args[1].name]
        x, out = g.node_dims[node.args[0].name], g.node_dims[node.name]
        n = len(w) - 2
        batch = () if len(x) == len(w) - 1 else (x[0],)
        transposed = getattr(m, "transposed", False)
        spatial = tuple((x if transposed and not sr else out)[-n:])
        owner = _owner(g, node)
        if sr and isinstance(owner, nn.modules.conv._ConvNd) and "Conv" not in type(owner).__name__:
            self.terms.append((1.0, tuple(w)))  # torchsummaryX counts a MeanShift-like module once
        else:
            self.terms.append((1.0, (*batch, *w, *spatial)))


def _owner(g: ChannelGraph, node: fx.Node):
    """The module a node was traced in (as :func:`graphprune.flops.sr_mult_adds` counts it)."""
    if node.op == "call_module":
        return g.traced.gm.get_submodule(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    try:
        return g.model.get_submodule(next(reversed(stack.values()))[0]) if stack else None
    except AttributeError:
        return None


def _map_groups(graph: ChannelGraph, other: ChannelGraph) -> dict[int, int]:
    """``graph``'s group ids → the leaves of the same groups in ``other`` (an analysis at another size)."""
    def key(group):  # groups that are only factors of a space have no members: told apart by their order
        return frozenset((m.module, m.param, m.dim) for m in group.members), group.size

    leaves: dict = {}
    for grp, leaf in zip(other.groups, other.leaf_of_group):
        leaves.setdefault(key(grp), []).append(leaf)
    out = {}
    for grp in graph.prunable_groups:
        same = leaves.get(key(grp))
        leaf = same.pop(0) if same else None
        if leaf is None or other.atoms.size(leaf) != grp.size:
            raise ValueError(f"group {grp.id} of the analysis has no counterpart at the counting input size "
                             "(the model's channel structure depends on the input size); count at the example size "
                             "with measure='flops'")
        out[grp.id] = leaf
    return out
