"""The growing-penalty schedule shared by ASSL and SRP (from GReg, ICLR'21).

Every ``every`` iterations the penalty λ of the filters chosen for removal grows by ``delta``; a
group stops growing once ``λ > ceiling``; when every group has stopped, training goes on for
``stabilize`` iterations with λ frozen (and still applied); then the network is pruned.

λ of a group is kept as an integer count of updates (``λ = count · delta``) so that the stop rule
is exact and a resumed run is bitwise identical; the official code accumulates floats.

The schedule is a typed schema (:mod:`graphprune.schema`): recipes load ``prune.schedule`` into
it directly, so its rules and its length (:meth:`PenaltySchedule.length`) exist once.

>>> s = PenaltySchedule(delta=1e-4, every=20, ceiling=0.5, stabilize=43150)
>>> s.updates_to_stop, s.grow_iters, s.length()
(5001, 100020, 143170)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..schema import Schema, field

__all__ = ["PenaltySchedule"]


@dataclass(frozen=True, kw_only=True)
class PenaltySchedule(Schema):
    """The official defaults; each field's doc names the official option."""

    delta: float = field(1e-4, doc="λ increment per update, official --reg_granularity_prune", gt=0)
    every: int = field(20, doc="iterations between updates, official --update_reg_interval", ge=1)
    ceiling: float = field(0.5, doc="stop growing when λ exceeds it, official --reg_upper_limit", gt=0)
    stabilize: int = field(43150, doc="iterations with λ frozen before pruning, official --stabilize_reg_interval", ge=0)

    @property
    def updates_to_stop(self) -> int:
        """Number of updates after which ``count · delta > ceiling``."""
        n = math.floor(self.ceiling / self.delta + 1e-9) + 1
        return n if n * self.delta > self.ceiling else n + 1

    @property
    def grow_iters(self) -> int:
        """Iterations of the growth phase (official: 5001 updates x 20 = 100020)."""
        return self.updates_to_stop * self.every

    def length(self, start: int = 0) -> int:
        """Iterations of a regularize stage whose growth starts at iteration ``start``."""
        return start + self.grow_iters + self.stabilize

    def lam(self, count: int) -> float:
        return count * self.delta

    def to_dict(self) -> dict:
        return asdict(self)
