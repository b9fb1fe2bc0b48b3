"""How many channels each group keeps under a budget: one ratio for all, or spent where it costs most.

A budget is a target for one measure (:data:`graphprune.budget.MEASURES`: the SR papers' Mult-Adds at
720p, parameters, fvcore flops) or a measured latency. Two allocations:

``uniform``
    The papers' rule: one ratio ``r`` for every prunable group (each loses ``min(ceil(r·N), N−1)``,
    factors of a product space share it as :func:`graphprune.plan.ratio_for` says). ``r`` is found by
    bisection on the cost model, and of the two widths around the target the closer one is taken:
    LEDSR F256R16 x4 given 35.8 G or 623 K keeps exactly SRPN-Lite's 45 channels (35.83 G, 623,682).
``global``
    Channels leave where they cost most per unit of importance, across groups: the next step of
    group g (its least important channels left) is priced ``Δloss / Δcost``, the loss from the
    criterion's scores (:func:`score_loss`: l1, l2, ASSL's γ, a user callable) or a measured
    sensitivity curve; never below ``min_channels``, in steps of ``round_to``. On random weights it
    gives back the uniform widths; it departs from them where the importance says so.

Each returns ``{group id: channels removed}``; :func:`graphprune.plan.plan` then picks which ones by the
criterion. An unreachable target (below what the groups can give) raises a one-line ``ValueError``
naming the floor.
"""
from __future__ import annotations

import heapq
import math
import re
from typing import Callable, Mapping

import numpy as np

from .budget import CostModel

__all__ = ["parse_amount", "parse_target", "short_amount", "uniform", "global_allocation", "score_loss", "Budget"]

_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_AMOUNT = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([KMGT]?)\s*")


def parse_amount(value) -> float:
    """``35.8G`` → 35.8e9, ``623K`` → 623000, numbers as they are.

    >>> parse_amount("35.8G"), parse_amount("623K"), parse_amount(1e6)
    (35800000000.0, 623000.0, 1000000.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _AMOUNT.fullmatch(str(value))
    if not m:
        raise ValueError(f"{value!r} is not an amount; write a number with an optional unit K, M, G or T (35.8G)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_target(target: Mapping) -> tuple[str, float, dict]:
    """``{mult_adds: 35.8G}`` → ``("mult_adds", 35.8e9, {})``; latency targets keep their device and input."""
    keys = [k for k in ("mult_adds", "params", "flops", "latency_ms") if k in target]
    extra = {k: v for k, v in target.items() if k not in keys}
    if len(keys) != 1:
        raise ValueError(f"a target names exactly one of mult_adds, params, flops, latency_ms; got {sorted(target)}")
    if keys[0] != "latency_ms" and extra:
        raise ValueError(f"unknown target keys {sorted(extra)}; only a latency target takes device and input")
    return keys[0], parse_amount(target[keys[0]]), extra


class Budget:
    """A target for one measure, and the cost of a plan in it (``budget(kept)``)."""

    def __init__(self, graph, measure: str, target: float, cost: Callable[[Mapping[int, int]], float] | None = None):
        self.graph, self.measure, self.target = graph, measure, float(target)
        self.cost = cost or CostModel(graph, measure)

    @classmethod
    def of(cls, graph, target: Mapping, model=None) -> "Budget":
        """The budget a ``plan(target=...)`` mapping asks for; latency is measured on ``model``."""
        measure, amount, extra = parse_target(target)
        if measure != "latency_ms":
            return cls(graph, measure, amount)
        from .latency import LatencyCost

        return cls(graph, measure, amount, LatencyCost(graph, model if model is not None else graph.model, **extra))

    def __call__(self, kept: Mapping[int, int]) -> float:
        return self.cost(kept)

    def change(self, kept: Mapping[int, int], group: int, k: int) -> float:
        """What setting one group to ``k`` channels adds to the cost (incremental when the cost model is)."""
        if hasattr(self.cost, "change"):
            return self.cost.change(kept, group, k)
        return self.cost({**kept, group: k}) - self.cost(kept)

    def check_reachable(self, floor_kept: Mapping[int, int]) -> None:
        floor = self.cost(floor_kept)
        if floor > self.target * 1.01:
            raise ValueError(f"target {self.measure} {short_amount(self.target)} is below what pruning can reach: "
                             f"{short_amount(floor)} with every prunable group at its minimum width; "
                             "ask for a larger target, or let more groups prune (fewer ignore patterns, exact_only off)")


def short_amount(x: float) -> str:
    """An amount as a target is written: four significant digits and a unit.

    >>> short_amount(35.83e9), short_amount(623682), short_amount(12.5)
    ('35.83G', '623.7K', '12.5')
    """
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{unit}"
    return f"{x:.4g}"


def uniform(groups, budget: Budget, counts: Callable[[float], dict[int, int]]) -> dict[int, int]:
    """One ratio for every group, by bisection; the width closer to the target of the two around it.

    ``counts(r)`` gives the removed channels per group at ratio ``r`` (the papers' rule, overrides,
    rounding); the cost only decreases as ``r`` grows.
    """
    sizes = {g.id: g.size for g in groups}

    def cost(r: float) -> float:
        return budget({gid: sizes[gid] - n for gid, n in counts(r).items()})

    budget.check_reachable({gid: sizes[gid] - n for gid, n in counts(1.0 - 1e-9).items()})
    lo, hi = 0.0, 1.0 - 1e-9  # cost(lo) >= target > cost(hi) unless the target is the dense cost
    if cost(lo) <= budget.target:
        return counts(0.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        if cost(mid) > budget.target:
            lo = mid
        else:
            hi = mid
        if counts(lo) == counts(hi):
            break
    above, below = counts(lo), counts(hi)
    return above if abs(cost(lo) - budget.target) < abs(cost(hi) - budget.target) else below


def score_loss(scores: np.ndarray) -> Callable[[int], float]:
    """The loss of keeping the ``k`` best of a group's channels, from their importance scores.

    ``S·log(S / S_k)``: ``S`` the group's total score, ``S_k`` the total of the ``k`` kept. Removing a
    channel costs its score relative to what the group still keeps, so a group's last channels are
    worth more than its first and no group collapses unless its channels are truly unimportant; a
    group's weight ``S`` sums its producers, so a width feeding many layers counts as many. With
    scores that carry no information (random init), the allocation is the uniform one.

    >>> loss = score_loss(np.array([1.0, 1.0, 2.0]))
    >>> loss(3), round(loss(2), 3), loss(0)
    (0.0, 1.151, inf)
    """
    ranked = np.sort(np.clip(np.asarray(scores, dtype=np.float64), 0, None))[::-1]
    kept_total = np.concatenate([[0.0], np.cumsum(ranked)])
    total = kept_total[-1]

    def loss(k: int) -> float:
        if total <= 0:
            return 0.0
        return math.inf if kept_total[k] <= 0 else float(total * math.log(total / kept_total[k]))
    return loss


def global_allocation(groups, budget: Budget, losses: Mapping[int, Callable[[int], float]], *,
                      round_to: int = 1, min_channels: int = 1) -> dict[int, int]:
    """Remove channels where they cost most per unit of importance until the budget is met.

    ``losses[g](k)`` is the loss of group ``g`` keeping ``k`` channels (:func:`score_loss` from scores,
    or a measured sensitivity curve); the next step of every group is priced ``Δloss / Δcost`` and the
    cheapest goes, in steps of ``round_to``, never below ``min_channels``. Costs are products of kept
    widths, so pruning one group only makes its neighbours' steps save less: a lazy heap stays exact.
    The last step may overshoot by a wide group's share; steps back up that fit under the target (the
    best loss per cost first) fill the gap, and of that plan and the one before the last step the one
    closer to the target is returned, as ``{group id: removed}``.
    """
    kept = {g.id: g.size for g in groups}
    size = dict(kept)
    floor = {g.id: min(g.size, max(min_channels, round_to, 1)) for g in groups}
    budget.check_reachable(floor)
    current = budget(kept)

    def down(gid: int) -> int:  # the next multiple of round_to below, not under the floor (else no step)
        lower = (kept[gid] - 1) // round_to * round_to
        return lower if lower >= floor[gid] else kept[gid]

    def priority(gid: int) -> float | None:
        k = down(gid)
        if k == kept[gid]:
            return None
        saved = -budget.change(kept, gid, k)
        if saved <= 0:
            return math.inf  # removing it saves nothing: last
        return (losses[gid](k) - losses[gid](kept[gid])) / saved

    heap = [(p, gid) for gid in kept if (p := priority(gid)) is not None]
    heapq.heapify(heap)
    previous = dict(kept)
    while heap and current > budget.target:
        _, gid = heapq.heappop(heap)
        fresh = priority(gid)
        if fresh is None:
            continue
        if heap and fresh > heap[0][0] * (1 + 1e-9):  # stale (other groups moved the cost): requeue
            heapq.heappush(heap, (fresh, gid))
            continue
        previous = dict(kept)
        k = down(gid)
        current += budget.change(kept, gid, k)
        kept[gid] = k
        if (nxt := priority(gid)) is not None:
            heapq.heappush(heap, (nxt, gid))
    current = _fill(kept, size, budget, losses, round_to, budget(kept))
    if abs(budget(previous) - budget.target) < abs(current - budget.target):
        kept = previous
    return {g.id: g.size - kept[g.id] for g in groups if g.size - kept[g.id] > 0}


def _fill(kept: dict[int, int], size: Mapping[int, int], budget: Budget, losses, round_to: int,
          current: float) -> float:
    """Give channels back while the cost stays under the target, the most loss saved per cost first."""
    while True:
        best, best_gain = None, 0.0
        for gid, k in kept.items():
            up = min(size[gid], (k // round_to + 1) * round_to)
            if up == k:
                continue
            added = budget.change(kept, gid, up)
            if current + added > budget.target:
                continue
            gain = (losses[gid](k) - losses[gid](up)) / max(added, 1e-12)
            if best is None or gain > best_gain:
                best, best_gain = (gid, up, added), gain
        if best is None:
            return current
        gid, up, added = best
        kept[gid] = up
        current += added
