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

__all__ = ["Plan", "Entry", "plan", "removed_counts", "n_removed", "CPU_ROUND_TO", "ratio_for", "producer_names", "ALLOCATIONS"]


#: The ``round_to`` recommended for CPU deployment (``prune.round_to: 16``; recipes default to 1, the
#: papers' widths): oneDNN (torch) and onnxruntime block channels by 16 on AVX-512, so multiples of 16 run
#: closer to the speed their Mult-Adds promise (BENCHMARKS.md, "Latency across widths", LEDSR at 320x180:
#: 48 channels reach 1.01 of the Mult-Adds cut in onnxruntime and 0.83 in torch; 49 reach 0.50-0.68).
CPU_ROUND_TO = 16


def n_removed(ratio: float, size: int, round_to: int = 1) -> int:
    """``min(ceil(ratio·size), size − 1)``; with ``round_to`` the kept count is the nearest multiple of it.

    The nearest multiple (ties up, at least ``round_to``) keeps the ratio's budget: rounded for a CPU,
    SRPN-Lite's 45 channels become 48 (+14 % Mult-Adds) and ASSLN's 49 become 48 (−4 %). A group of at
    most ``round_to`` channels is not rounded (it could only be kept whole).

    >>> [256 - n_removed(r, 256, CPU_ROUND_TO) for r in (0.82421875, 0.80859375)]   # SRPN-Lite, ASSLN
    [48, 48]
    >>> 256 - n_removed(0.82421875, 256), 8 - n_removed(0.5, 8, CPU_ROUND_TO)
    (45, 4)
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    n = min(math.ceil(ratio * size - 1e-9), size - 1)
    if round_to > 1 and n > 0 and size > round_to:
        keep = round_to * math.floor((size - n) / round_to + 0.5)
        n = size - min(size, max(round_to, keep))
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


ALLOCATIONS = ("uniform", "global", "sensitivity")


def plan(graph: ChannelGraph, ratio: float | None = None, *, target: Mapping | None = None,
         allocation: str = "uniform", criterion: str | Callable = "l1", round_to: int = 1,
         ratios: Mapping | None = None, seed: int = 0, model=None, exact_only: bool = False,
         min_channels: int = 1, sensitivity=None) -> Plan:
    """Choose the removed indices of every prunable group: the lowest scores go.

    Parameters
    ----------
    graph : ChannelGraph
    ratio : float
        Fraction to remove from each prunable channel space (see :func:`ratio_for` for spaces that
        factor into several groups, and :func:`n_removed` for the rounding).
    target : mapping, optional
        A budget instead of a ratio (:mod:`graphprune.allocation`): ``{"mult_adds": "35.8G"}`` (the SR
        papers' count at 720p for image-to-image models), ``{"params": "623K"}``, ``{"flops": ...}``
        (fvcore's, at the example input) or ``{"latency_ms": 20, "device": "cpu", "input": [1, 3, 180, 320]}``
        (measured, uniform allocation only). Exclusive with ``ratio``.
    allocation : "uniform", "global" or "sensitivity"
        With a target: one ratio for all groups (the papers' rule); channels removed where they cost
        most per unit of importance across groups (importance from the criterion's scores); or the
        same with the importance measured (``sensitivity``, from :func:`graphprune.sensitivity.sensitivity`).
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
    min_channels : int
        With a global allocation, the fewest channels a group keeps.
    sensitivity : Sensitivity, optional
        The measurement ``allocation="sensitivity"`` spends the budget by.
    """
    model = model if model is not None else graph.model
    counts = removed_counts(graph, ratio, target=target, allocation=allocation, criterion=criterion,
                            round_to=round_to, ratios=ratios, seed=seed, model=model, exact_only=exact_only,
                            min_channels=min_channels, sensitivity=sensitivity)
    removed: dict[int, list[int]] = {}
    for g in graph.prunable_groups:
        if counts.get(g.id, 0):
            order = np.argsort(group_scores(model, g, criterion, seed=seed), kind="stable")
            removed[g.id] = sorted(int(i) for i in order[:counts[g.id]])
    return Plan(graph, removed)


def removed_counts(graph: ChannelGraph, ratio: float | None = None, *, target: Mapping | None = None,
                   allocation: str = "uniform", criterion: str | Callable = "l1", round_to: int = 1,
                   ratios: Mapping | None = None, seed: int = 0, model=None, exact_only: bool = False,
                   min_channels: int = 1, sensitivity=None) -> dict[int, int]:
    """How many channels each prunable group loses, ``{group id: n}``: :func:`plan` without the indices.

    The regularizers (ASSL, SRP) take these counts too, so a budget's widths are the ones they select
    and penalize. Arguments as :func:`plan`'s.
    """
    if (ratio is None) == (target is None):
        raise ValueError("give plan() either a ratio or a target (a budget), not both" if target is not None
                         else "give plan() a ratio, e.g. plan(graph, 0.5), or a target, e.g. target={'params': '600K'}")
    model = model if model is not None else graph.model
    warn_unmatched("ratios", ratios or {}, producer_names(graph))
    groups = [g for g in graph.prunable_groups if not (exact_only and not g.exact)]
    if target is None:
        counts = _counts_at(groups, ratio, ratios, round_to)
    else:
        counts = _allocate(graph, groups, target, allocation, ratios, round_to, min_channels,
                           lambda g: group_scores(model, g, criterion, seed=seed), model, sensitivity)
    return {gid: n for gid, n in counts.items() if n}


def _counts_at(groups, ratio: float, ratios, round_to: int) -> dict[int, int]:
    return {g.id: n_removed(ratio_for(g, ratio, ratios), g.size, round_to) for g in groups}


def _allocate(graph, groups, target, allocation, ratios, round_to, min_channels, scores, model,
              sensitivity) -> dict[int, int]:
    from .allocation import Budget, global_allocation, score_loss, uniform

    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {allocation!r}; expected one of {ALLOCATIONS}")
    budget = Budget.of(graph, target, model)
    if budget.measure == "latency_ms" and allocation != "uniform":
        raise ValueError("a latency target is met by measuring: allocation must be 'uniform'")
    if allocation == "uniform":
        return uniform(groups, budget, lambda r: _counts_at(groups, r, ratios, round_to))
    if ratios:
        raise ValueError(f"per-group ratios fix widths that allocation {allocation!r} chooses; "
                         "drop ratios= or use allocation='uniform'")
    if allocation == "global":
        losses = {g.id: score_loss(scores(g)) for g in groups}
    else:
        losses = _sensitivity_losses(groups, sensitivity)
    return global_allocation(groups, budget, losses, round_to=round_to, min_channels=min_channels)


def _sensitivity_losses(groups, sensitivity) -> dict:
    if sensitivity is None:
        raise ValueError("allocation='sensitivity' needs the measurement: "
                         "plan(..., sensitivity=graphprune.sensitivity.sensitivity(model, data, scale=...))")
    missing = [g.id for g in groups if g.id not in sensitivity.drops or sensitivity.sizes[g.id] != g.size]
    if missing:
        raise ValueError(f"the sensitivity was measured for other groups (group(s) {missing[:5]} missing or "
                         "of another size): measure it again on this analysis")
    return {g.id: sensitivity.loss(g.id) for g in groups}
