"""Convenience entry points composed from the engine's parts."""
from __future__ import annotations

from torch import nn

from .channels import analyze
from .plan import Plan, plan
from .surgery import apply

__all__ = ["prune"]


def prune(model: nn.Module, example_inputs, ratio: float | None = None, *, target=None, allocation: str = "uniform",
          ignore=(), leaf_modules=(), size_ties: bool = True, criterion="l1", round_to: int = 1, ratios=None,
          seed: int = 0, exact_only: bool = False) -> tuple[nn.Module, Plan]:
    """Analyze, plan (a ratio, or a ``target`` budget) and apply in one call; returns ``(pruned_model, plan)``."""
    graph = analyze(model, example_inputs, ignore=ignore, leaf_modules=leaf_modules, size_ties=size_ties)
    p = plan(graph, ratio, target=target, allocation=allocation, criterion=criterion, round_to=round_to,
             ratios=ratios, seed=seed, exact_only=exact_only)
    return apply(model, p), p
