"""Checks that a pruned model is what the plan says: the zero-then-prune equivalence.

Zeroing the producer-side ("out") parameters of the removed channels in a copy of the dense model
silences exactly those channels; for networks whose ops map zero channels to zero (convolutions,
residual adds, ReLU/PReLU, gating by multiplication, pixel shuffle, batch norm in eval mode) the
zeroed dense model and the pruned model compute the same function. Layer and group norms mix
statistics across channels, so for them only shapes are comparable.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .plan import Plan

__all__ = ["zeroed_copy", "equivalence_error"]


def zeroed_copy(model: nn.Module, plan: Plan) -> nn.Module:
    """A copy of the dense ``model`` whose removed producer parameters are set to zero."""
    z = copy.deepcopy(model)
    params = dict(z.named_parameters())
    with torch.no_grad():
        for e in plan.entries():
            t = params.get(f"{e.module}.{e.param}" if e.module else e.param)
            if e.role == "out" and t is not None:
                t.index_fill_(e.dim, torch.tensor(e.indices, device=t.device), 0)
    return z


@torch.no_grad()
def equivalence_error(model: nn.Module, pruned: nn.Module, plan: Plan, *inputs) -> float:
    """max |zeroed dense − pruned| / max |pruned| on ``inputs`` (both in eval mode)."""
    z = zeroed_copy(model, plan).eval()
    was = pruned.training
    pruned.eval()
    try:
        a, b = z(*inputs), pruned(*inputs)
    finally:
        pruned.train(was)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
