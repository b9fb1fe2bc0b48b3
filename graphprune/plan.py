"""Which indices each group loses: the ratio rule, per-group overrides, rounding, and the entries.

The number removed from a prunable group of N channels is ``min(ceil(ratio·N), N − 1)``, the rule
of the official ASSL/SRP code (``pick_pruned_layer``), so ratio 0.82421875 on 256 channels keeps
45. A tiny tolerance keeps float products such as ``0.3·10`` from rounding up by one.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .channels import ChannelGraph
from .globs import warn_unmatched
from .importance import group_scores

__all__ = ["Plan", "Entry", "plan", "n_removed", "ratio_for", "producer_names"]


def n_removed(ratio: float, size: int, round_to: int = 1) -> int:
    """``min(ceil(ratio·size), size − 1)``; with ``round_to`` the kept count is a multiple of it."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    n = min(math.ceil(ratio * size - 1e-9), size - 1)
    if round_to > 1 and n > 0:
        keep = size - n
        keep = min(size, max(round_to, round_to * math.ceil(keep / round_to)))
        n = size - keep
    return max(n, 0)


@dataclass(frozen=True)
class Entry:
    """One concrete change: remove ``indices`` along ``dim`` of ``module.param``."""

    module: str
    param: str
    dim: int
    role: str
    indices: tuple[int, ...]


@dataclass(eq=False)
class Plan:
    """Removed indices per group (sorted), for one ChannelGraph."""

    graph: ChannelGraph
    removed: dict[int, list[int]] = field(default_factory=dict)

    def kept(self, group_id: int) -> int:
        return self.graph.groups[group_id].size - len(self.removed.get(group_id, ()))

    def entries(self) -> list[Entry]:
        """Every (module, param, dim) that changes, with the union of its removed positions."""
        acc: dict[tuple[str, str, int], tuple[str, set[int]]] = {}
        for gid, idx in self.removed.items():
            if not idx:
                continue
            for m in self.graph.groups[gid].members:
                role, pos = acc.setdefault(m.key, (m.role, set()))
                pos.update(m.positions(idx).tolist())
        return [Entry(k[0], k[1], k[2], role, tuple(sorted(pos))) for k, (role, pos) in acc.items()]

    def to_dict(self) -> dict[str, Any]:
        return {"removed": {str(g): list(map(int, idx)) for g, idx in self.removed.items() if idx},
                "group_sizes": [g.size for g in self.graph.groups]}

    @classmethod
    def from_dict(cls, graph: ChannelGraph, data: Mapping[str, Any]) -> "Plan":
        sizes = [g.size for g in graph.groups]
        if list(data.get("group_sizes", sizes)) != sizes:
            raise ValueError("the saved plan was made for a different channel graph "
                             "(group sizes differ): rebuild the model with the saved arguments")
        removed = {int(g): sorted(int(i) for i in idx) for g, idx in data["removed"].items()}
        for g, idx in removed.items():
            if not graph.groups[g].prunable:
                raise ValueError(f"the saved plan prunes group {g}, which is not prunable: {graph.groups[g].reason}")
        return cls(graph, removed)

    def __repr__(self) -> str:
        n = sum(1 for v in self.removed.values() if v)
        return f"Plan({n} groups pruned, {sum(map(len, self.removed.values()))} channels removed)"


def ratio_for(group, ratio: float, ratios: Mapping | None) -> float:
    """The fraction ``group`` loses: a per-group override by id as given, else the ratio of its channel space.

    ``ratio`` (or an override by a glob matching a producer module name) is the fraction of a channel
    *space* to remove. When the space is the product of ``group.factors`` prunable groups (attention
    heads × head dim, groups × per-group width), each factor loses ``1 − (1 − ratio)^(1/factors)``, so
    that the space loses ``ratio`` rather than ``1 − (1 − ratio)^factors`` (0.75 of a ViT's q/k/v width at 0.5).
    """
    if ratios and group.id in ratios:
        return ratios[group.id]
    for key, r in (ratios or {}).items():
        if isinstance(key, str) and any(fnmatch.fnmatchcase(m, key) for m in group.modules("out")):
            ratio = r
            break
    return ratio if group.factors <= 1 else 1.0 - (1.0 - ratio) ** (1.0 / group.factors)


def producer_names(graph: ChannelGraph) -> list[str]:
    """The modules a ``ratios`` glob can name: every group's producers."""
    return list(dict.fromkeys(m for g in graph.groups for m in g.modules("out")))


def plan(graph: ChannelGraph, ratio: float, *, criterion: str | Callable = "l1", round_to: int = 1,
         ratios: Mapping | None = None, seed: int = 0, model=None, exact_only: bool = False) -> Plan:
    """Choose the removed indices of every prunable group: the lowest scores go.

    Parameters
    ----------
    graph : ChannelGraph
    ratio : float
        Fraction to remove from each prunable channel space (see :func:`ratio_for` for spaces that
        factor into several groups, and :func:`n_removed` for the rounding).
    criterion : "l1", "l2", "random" or callable ``f(model, group) -> scores``
    round_to : int
        Keep a multiple of this many channels (hardware-friendly widths).
    ratios : mapping, optional
        Overrides: group id or fnmatch glob on producer module names → ratio.
    seed : int
        Seed of the "random" criterion.
    model : nn.Module, optional
        Scores are read from this model (default: the analyzed one), e.g. after training.
    exact_only : bool
        Prune only exact groups (``Group.exact``): none whose channels a statistic reads (LayerNorm,
        softmax, mean over channels), so that the pruned model is the dense one minus channels.
    """
    model = model if model is not None else graph.model
    warn_unmatched("ratios", ratios or {}, producer_names(graph))
    removed: dict[int, list[int]] = {}
    for g in graph.prunable_groups:
        if exact_only and not g.exact:
            continue
        n = n_removed(ratio_for(g, ratio, ratios), g.size, round_to)
        if n == 0:
            continue
        scores = group_scores(model, g, criterion, seed=seed)
        order = np.argsort(scores, kind="stable")
        removed[g.id] = sorted(int(i) for i in order[:n])
    return Plan(graph, removed)
