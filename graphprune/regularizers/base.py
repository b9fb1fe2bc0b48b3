"""One protocol for pruning regularizers, as a trainer hook.

A regularizer owns, for every prunable group of a :class:`ChannelGraph`, the indices chosen for
removal and a penalty strength λ that grows on the :class:`PenaltySchedule`. Each iteration, after
``backward`` (gradients already averaged over DDP ranks, so every rank adds the same term), it adds
``λ · θ`` to the gradient of the penalized tensors θ at the chosen positions: a coupled L2 penalty
inside the optimizer, exactly as the official ASSL/SRP code (``p.grad += λ ⊙ p``). Subclasses say
which tensors are penalized (raw filters for SRP, weight-norm scales for ASSL), how indices are
chosen, and may add a loss term (ASSL's alignment loss).

When :meth:`total_iters` iterations have run, :meth:`finalize` returns the physically pruned model
and the plan. Everything needed to continue exactly is in :meth:`state_dict`.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ..channels import ChannelGraph
from ..groups import Group, Member
from ..plan import Plan, n_removed, ratio_for
from ..surgery import apply
from ..train.hooks import HookBase
from .schedule import PenaltySchedule

__all__ = ["GrowingPenaltyRegularizer", "COUPLED_SELECTIONS"]

COUPLED_SELECTIONS = ("first", "sum", "random")
_NO_PENALTY = (nn.PReLU,)  # per-channel slopes of activations are not a channel's "energy"


class GrowingPenaltyRegularizer(HookBase):
    """Shared machinery of ASSL and SRP. ``name`` keys its state in checkpoints."""

    name = "regularizer"

    def __init__(self, graph: ChannelGraph, ratio: float | None, *, schedule: PenaltySchedule | None = None,
                 ratios=None, round_to: int = 1, coupled_selection: str = "first", seed: int = 0,
                 exact_only: bool = False, counts: Mapping[int, int] | None = None):
        if coupled_selection not in COUPLED_SELECTIONS:
            raise ValueError(f"coupled_selection must be one of {COUPLED_SELECTIONS}, got {coupled_selection!r}")
        self.graph = graph
        self.schedule = schedule or PenaltySchedule()
        self.coupled_selection = coupled_selection
        self.seed = seed
        if (ratio is None) == (counts is None):
            raise ValueError("give the regularizer a ratio or the counts of a budget's allocation "
                             "(graphprune.plan.removed_counts), not both")
        if counts is not None:  # a budget's widths: selected and penalized as allocated
            self.n_remove = {g.id: int(counts.get(g.id, 0)) for g in graph.prunable_groups}
        else:
            self.n_remove = {g.id: 0 if exact_only and not g.exact else
                             n_removed(ratio_for(g, ratio, ratios), g.size, round_to) for g in graph.prunable_groups}
        self.groups = [g for g in graph.prunable_groups if self.n_remove[g.id] > 0]
        self._module_order = {name: i for i, (name, _) in enumerate(graph.model.named_modules())}
        self.coupled = {g.id for g in self.groups if len(self._weight_producers(g)) >= 2}
        # state
        self.removed: dict[int, list[int]] = {}
        self.counts: dict[int, int] = {g.id: 0 for g in self.groups}
        self.start: dict[int, int] = {g.id: self.group_start(g) for g in self.groups}
        self._lam_cache: list[tuple[torch.Tensor, int, torch.Tensor]] | None = None

    # ---------------------------------------------------------------- what subclasses decide
    def group_start(self, group: Group) -> int:
        """Iteration at which the penalty of ``group`` starts growing."""
        return 0

    def penalty_target(self, member: Member, params: set[str]) -> tuple[str, int] | None:
        """The (parameter path, dim) a producer's penalty acts on, or None.

        Raw parameters here (SRP); ``params`` are the model's parameter names, so buffers such as
        running statistics and per-channel activation slopes are left alone.
        """
        path = f"{member.module}.{member.param}" if member.module else member.param
        if path in params and not isinstance(self._module(member.module), _NO_PENALTY):
            return path, member.dim
        return None

    def penalized(self, group: Group, params: set[str]) -> list[tuple[str, int, np.ndarray]]:
        """(parameter path, dim, index map) of every tensor the group's penalty acts on."""
        targets = ((self.penalty_target(m, params), m.index_map) for m in group.producers)
        return [(t[0], t[1], index_map) for t, index_map in targets if t is not None]

    def producer_scores(self, model: nn.Module, group: Group, member: Member) -> np.ndarray:
        """Importance of each group index as seen by one producer (low = removed first)."""
        t = model.get_parameter(f"{member.module}.{member.param}" if member.module else member.param)
        flat = t.detach().float().movedim(member.dim, 0).reshape(t.shape[member.dim], -1)
        per_pos = flat.abs().mean(1).cpu().double().numpy()  # official l1-norm: mean |W_j|
        return per_pos[member.index_map].sum(1)

    # ---------------------------------------------------------------- selection
    def _weight_producers(self, group: Group) -> list[Member]:
        """One weight-like producer per module (conv/linear weights, else any producer), in model order."""
        not_filters = _NO_PENALTY + (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
        seen, out = set(), []
        for m in group.producers:
            if m.param == "weight" and m.module not in seen and not isinstance(self._module(m.module), not_filters):
                seen.add(m.module)
                out.append(m)
        return sorted(out, key=lambda m: self._module_order.get(m.module, math.inf))

    def select(self, model: nn.Module, groups: Iterable[Group] | None = None) -> None:
        """Choose the removed indices of ``groups`` (default: all) from the model's current weights."""
        for g in groups if groups is not None else self.groups:
            n = self.n_remove[g.id]
            producers = self._weight_producers(g) or g.producers
            if g.id in self.coupled and self.coupled_selection == "random":
                rng = np.random.default_rng([self.seed, g.id])
                idx = rng.permutation(g.size)[:n]
            else:
                if g.id in self.coupled and self.coupled_selection == "first":
                    producers = producers[:1]
                scores = sum(self.producer_scores(model, g, m) for m in producers)
                idx = np.argsort(scores, kind="stable")[:n]
            self.removed[g.id] = sorted(int(i) for i in idx)
        self._lam_cache = None

    def prepare(self, model: nn.Module) -> nn.Module:
        """Changes the model needs before its optimizer is built (ASSL: weight norm). Idempotent."""
        return model

    def before_train(self) -> None:
        if not self.removed:  # a fresh run; a resumed one restored its choice from the checkpoint
            self.select(self.trainer_module())

    # ---------------------------------------------------------------- penalty
    def _module(self, name: str) -> nn.Module:
        return self.trainer_module().get_submodule(name)

    def trainer_module(self) -> nn.Module:
        return self.trainer.module if self.trainer is not None else self.graph.model

    def _lam_tensors(self) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
        """Per penalized parameter: (param, dim, λ along dim shaped to broadcast), summed over groups."""
        if self._lam_cache is not None:
            return self._lam_cache
        model = self.trainer_module()
        params = dict(model.named_parameters())
        acc: dict[tuple[str, int], np.ndarray] = {}
        for g in self.groups:
            lam = self.schedule.lam(self.counts[g.id])
            if lam == 0 or g.id not in self.removed:
                continue
            rows = np.asarray(self.removed[g.id], dtype=np.int64)
            for path, dim, index_map in self.penalized(g, set(params)):
                vec = acc.setdefault((path, dim), np.zeros(params[path].shape[dim]))
                np.add.at(vec, index_map[rows].reshape(-1), lam)
        cache = []
        for (path, dim), vec in acc.items():
            p = params[path]
            shape = [1] * p.ndim
            shape[dim] = -1  # λ broadcasts over the rest of each filter
            cache.append((p, dim, torch.as_tensor(vec, dtype=p.dtype, device=p.device).view(shape)))
        self._lam_cache = cache
        return cache

    def after_backward(self) -> None:
        for p, _, lam in self._lam_tensors():
            if p.grad is not None:
                p.grad.addcmul_(p.detach(), lam)

    def after_step(self) -> None:
        it = self.trainer.iter + 1  # iterations completed
        changed = False
        for g in self.groups:
            if it > self.start[g.id] and (it - self.start[g.id]) % self.schedule.every == 0 \
                    and self.counts[g.id] < self.schedule.updates_to_stop:
                self.counts[g.id] += 1
                changed = True
        if changed:
            self._lam_cache = None
        lam_max = max((self.schedule.lam(c) for c in self.counts.values()), default=0.0)
        self.trainer.scalars["lambda_max"] = lam_max

    def after_model_replaced(self) -> None:
        self._lam_cache = None

    # ---------------------------------------------------------------- schedule
    @classmethod
    def stage_iters(cls, schedule: PenaltySchedule, **options) -> int:
        """The regularize stage's length before the analysis is known (``options``: the method's
        own, e.g. ASSL's ``ssa_iters``); :meth:`total_iters` is the same or shorter."""
        return schedule.length()

    def total_iters(self) -> int:
        """Iterations until every group has stopped growing, plus the stabilization."""
        if not self.groups:  # nothing grows: only the stabilization
            return self.schedule.stabilize
        return self.schedule.length(max(self.start[g.id] for g in self.groups))

    # ---------------------------------------------------------------- finish
    def plan(self) -> Plan:
        return Plan(self.graph, {g: list(idx) for g, idx in self.removed.items()})

    def finalize(self, model: nn.Module) -> tuple[nn.Module, Plan]:
        """The physically pruned model (the dense one is left as it is)."""
        p = self.plan()
        return apply(model, p), p

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {"removed": {str(k): list(v) for k, v in self.removed.items()},
                "counts": {str(k): int(v) for k, v in self.counts.items()},
                "start": {str(k): int(v) for k, v in self.start.items()},
                "schedule": self.schedule.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.removed = {int(k): list(v) for k, v in state["removed"].items()}
        self.counts = {int(k): int(v) for k, v in state["counts"].items()}
        self.start = {int(k): int(v) for k, v in state["start"].items()}
        self._lam_cache = None
