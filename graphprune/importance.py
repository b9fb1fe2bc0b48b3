"""Importance criteria: a score per group index; the plan removes the lowest scores.

Scores aggregate over a group's *producers* (members with role "out" that are parameters, not
buffers): every producer position owned by a group index adds its norm. That is the official
ASSL/SRP choice for a single layer (filter norms), extended to a coupled group so that no single
layer decides for all the others.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from .groups import Group

__all__ = ["CRITERIA", "group_scores", "norm_scores"]


def _position_norms(t: torch.Tensor, dim: int, p: int) -> np.ndarray:
    flat = t.detach().float().movedim(dim, 0).reshape(t.shape[dim], -1)
    norms = flat.abs().sum(1) if p == 1 else flat.pow(2).sum(1)
    return norms.cpu().double().numpy()


def norm_scores(model: nn.Module, group: Group, p: int = 1) -> np.ndarray:
    """Sum over producers of the L1 norm (p=1) or squared L2 norm (p=2) of each index's slices."""
    params = dict(model.named_parameters())
    scores = np.zeros(group.size)
    for m in group.producers:
        t = params.get(f"{m.module}.{m.param}" if m.module else m.param)
        if t is None:
            continue  # a buffer (running stats) carries no importance
        per_pos = _position_norms(t, m.dim, p)
        scores += per_pos[m.index_map].sum(axis=1)
    return np.sqrt(scores) if p == 2 else scores


def _random(model, group, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, group.id, group.size])
    return rng.random(group.size)


CRITERIA: dict[str, Callable[..., np.ndarray]] = {
    "l1": lambda model, group, **kw: norm_scores(model, group, 1),
    "l2": lambda model, group, **kw: norm_scores(model, group, 2),
    "random": lambda model, group, seed=0, **kw: _random(model, group, seed),
}


def group_scores(model: nn.Module, group: Group, criterion="l1", seed: int = 0) -> np.ndarray:
    """Scores of length ``group.size`` for a named criterion or a callable ``f(model, group)``."""
    if callable(criterion):
        scores = criterion(model, group)
    elif criterion in CRITERIA:
        scores = CRITERIA[criterion](model, group, seed=seed)
    else:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {sorted(CRITERIA)} or pass a callable")
    scores = np.asarray(torch.as_tensor(scores).detach().cpu().double())
    if scores.shape != (group.size,):
        raise ValueError(f"criterion returned shape {scores.shape} for group {group.id}; expected ({group.size},)")
    return scores
