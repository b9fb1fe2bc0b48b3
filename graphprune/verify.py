"""Checks that a pruned model is what the plan says: the zero-then-prune equivalence.

In a copy of the dense model, the removed channels are zeroed where they are made (the producers'
"out" parameters: filters, biases, norm affines) and ignored where they are read (the consumers'
"in" parameters: the matching input columns). The consumer side matters when an op between them
does not map zero to zero (``sigmoid(v)`` of a zeroed value is 0.5, iFormer's gated attention);
the producer side keeps residual sums and outputs of pass-through ops zero. Pruning that removes
exactly these channels leaves the function unchanged, so the zeroed copy and the pruned model agree.
Layer and group norms mix statistics across channels (as does a mean over channels): for them
only shapes are comparable.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .plan import Plan

__all__ = ["zeroed_copy", "equivalence_error"]


def zeroed_copy(model: nn.Module, plan: Plan) -> nn.Module:
    """A copy of the dense ``model`` whose parameters that make or read removed channels are zero."""
    z = copy.deepcopy(model)
    params = dict(z.named_parameters())
    with torch.no_grad():
        for e in plan.entries():
            t = params.get(f"{e.module}.{e.param}" if e.module else e.param)
            if e.role in ("out", "in") and t is not None:
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
