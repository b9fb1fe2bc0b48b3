"""SRP (Zhang et al., ICLR'22): growing L2 on the raw filters chosen for removal, aligned in coupled groups.

Faithful to the official code (``SRP:src/pruner/srp_pruner.py``; shared/reference §5): no weight norm,
no alignment loss. Indices are chosen once, before training: free groups by the smallest mean |W|
of their filters (the official ``l1-norm``); residual-coupled groups share one index set chosen at
**random** (the official code draws one unseeded permutation; here it is seeded). ``"first"`` (the
first producer's L1, ASSL's template rule) and ``"sum"`` (L1 summed over all producers of the group)
are offered as alternatives. Random stays the default because it is what the paper's code ran:
the growing penalty drives whichever filters are chosen to zero before they are removed. Then
``λ·W`` and ``λ·b`` grow on every group from the first update until ``λ > ceiling``, stabilize, prune.
"""
from __future__ import annotations

from ..channels import ChannelGraph
from .base import GrowingPenaltyRegularizer
from .schedule import PenaltySchedule

__all__ = ["SRP"]


class SRP(GrowingPenaltyRegularizer):
    name = "srp"

    def __init__(self, graph: ChannelGraph, ratio: float | None = None, *, schedule: PenaltySchedule | None = None,
                 coupled_selection: str = "random", ratios=None, round_to: int = 1, seed: int = 0,
                 exact_only: bool = False, counts=None):
        super().__init__(graph, ratio, schedule=schedule, ratios=ratios, round_to=round_to,
                         coupled_selection=coupled_selection, seed=seed, exact_only=exact_only, counts=counts)
