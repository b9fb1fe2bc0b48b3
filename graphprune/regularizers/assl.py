"""ASSL (Zhang et al., NeurIPS'21): weight-norm scales, growing L2 on them, sparsity-structure alignment.

Faithful to the official code (``ASSL:src/pruner/assl_pruner.py``; see shared/reference §3):

1. every filter producer of a prunable group is reparametrized ``W = γ·V/‖V‖``, γ initialized to the
   filter's L2 norm (the function is unchanged);
2. the filters to remove are first chosen by the smallest |γ| (= smallest filter norm);
3. *SSA phase* (``ssa_iters`` iterations): for every residual-coupled group (two or more producer
   layers — found by the analysis, never listed by hand) the loss gets
   ``ssa_weight · (−mean(S Sᵀ))`` where row ℓ of S is producer ℓ's soft keep-mask
   ``sigmoid(γ_ℓ − t_ℓ)`` and ``t_ℓ`` its smallest kept scale; free groups already grow their penalty;
4. at the end of the SSA phase the removed indices are chosen again from the trained |γ|; a coupled
   group takes them from its first producer in model order (the official ``head.0`` template;
   ``coupled_selection="sum"`` sums |γ| over producers instead);
5. the penalty ``λ·γ`` (and ``λ·bias``) grows on the chosen filters until ``λ > ceiling``, then
   stabilizes; then the scales are merged into the weights and the network is pruned.
"""
from __future__ import annotations

import torch
from torch import nn

from ..channels import ChannelGraph
from ..groups import Group, Member
from ..reparam import add_weight_norm, filter_scale, merge_weight_norm, scale_path
from ..surgery import apply
from .base import GrowingPenaltyRegularizer
from .schedule import PenaltySchedule

__all__ = ["ASSL", "ssa_loss"]


def ssa_loss(scales: list[torch.Tensor], n_remove: int) -> torch.Tensor:
    """Sparsity-structure alignment: −mean of the Gram matrix of the layers' soft keep-masks.

    ``scales``: one vector γ_ℓ (length C, in group index order) per coupled producer.
    The threshold ``t_ℓ`` is the smallest *kept* value of γ_ℓ (index ``n_remove`` after sorting
    ascending), taken from the live tensor so gradient flows through it, as in the official code.
    """
    masks = []
    for g in scales:
        t = torch.sort(g).values[n_remove]
        masks.append(torch.sigmoid(g - t))
    S = torch.stack(masks)
    return -(S @ S.T).mean()


class ASSL(GrowingPenaltyRegularizer):
    name = "assl"

    def __init__(self, graph: ChannelGraph, ratio: float | None = None, *, schedule: PenaltySchedule | None = None,
                 ssa_iters: int = 17260, ssa_weight: float = 1.0, coupled_selection: str = "first",
                 ratios=None, round_to: int = 1, seed: int = 0, exact_only: bool = False,
                 counts=None):
        self.ssa_iters = int(ssa_iters)
        self.ssa_weight = float(ssa_weight)
        self._ssa_cache: dict | None = None
        super().__init__(graph, ratio, schedule=schedule, ratios=ratios, round_to=round_to,
                         coupled_selection=coupled_selection, seed=seed, exact_only=exact_only, counts=counts)
        if not self.coupled:
            self.ssa_iters = 0
            self.start = {g.id: 0 for g in self.groups}

    @classmethod
    def stage_iters(cls, schedule: PenaltySchedule, ssa_iters: int = 17260, **options) -> int:
        """SSA first, then growth and stabilization (no SSA when no group is residual-coupled)."""
        return schedule.length(start=ssa_iters)

    def group_start(self, group: Group) -> int:
        return self.ssa_iters if group.id in self.coupled else 0

    # ---------------------------------------------------------------- weight norm
    def prepare(self, model: nn.Module) -> nn.Module:
        names = {m.module for g in self.groups for m in self._weight_producers(g) if m.dim == 0}
        add_weight_norm(model, sorted(names))
        return model

    def _scale(self, member: Member) -> torch.Tensor | None:
        if member.param != "weight" or member.dim != 0:
            return None
        return filter_scale(self._module(member.module))

    def penalty_target(self, member: Member, params: set[str]):
        """γ instead of the weight of a reparametrized filter (its direction V is never penalized)."""
        if self._scale(member) is not None:
            return scale_path(member.module), 0
        return super().penalty_target(member, params)

    def producer_scores(self, model, group, member):
        scale = self._scale(member)
        if scale is None:
            return super().producer_scores(model, group, member)
        return scale.detach().abs().cpu().double().numpy()[member.index_map].sum(1)

    # ---------------------------------------------------------------- SSA
    def extra_loss(self, batch, output):
        if self.trainer.iter >= self.ssa_iters or not self.coupled:
            return None
        terms = [ssa_loss([s[idx] for s, idx in layers], self.n_remove[gid])
                 for gid, layers in self._ssa_layers().items() if len(layers) >= 2]
        if not terms:
            return None
        total = sum(terms)
        loss = self.ssa_weight * total
        self.trainer.scalars["ssa_loss"] = float(loss.detach())
        return loss

    def _ssa_layers(self) -> dict[int, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per coupled group: (γ of each producer, group index → γ position); cached per model."""
        if self._ssa_cache is None:
            cache = {}
            for g in self.groups:
                if g.id in self.coupled:
                    cache[g.id] = [(s, torch.as_tensor(m.index_map[:, 0], device=s.device))
                                   for m in self._weight_producers(g)
                                   if (s := self._scale(m)) is not None and m.index_map.shape[1] == 1]
            self._ssa_cache = cache
        return self._ssa_cache

    def after_model_replaced(self) -> None:
        super().after_model_replaced()
        self._ssa_cache = None

    def after_step(self) -> None:
        super().after_step()
        if self.coupled and self.trainer.iter + 1 == self.ssa_iters:
            self.select(self.trainer_module())  # the official re-pick after SSA, all layers

    def finalize(self, model: nn.Module):
        merge_weight_norm(model)
        p = self.plan()
        return apply(model, p), p

    def state_dict(self) -> dict:
        return {**super().state_dict(), "ssa_iters": self.ssa_iters}

