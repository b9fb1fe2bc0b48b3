"""The growing-penalty schedule shared by ASSL and SRP (from GReg, ICLR'21).

Every ``every`` iterations the penalty λ of the filters chosen for removal grows by ``delta``; a
group stops growing once ``λ > ceiling``; when every group has stopped, training goes on for
``stabilize`` iterations with λ frozen (and still applied); then the network is pruned.

λ of a group is kept as an integer count of updates (``λ = count · delta``) so that the stop rule
is exact and a resumed run is bitwise identical; the official code accumulates floats.

>>> s = PenaltySchedule(delta=1e-4, every=20, ceiling=0.5, stabilize=43150)
>>> s.updates_to_stop, s.grow_iters
(5001, 100020)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["PenaltySchedule"]


@dataclass(frozen=True)
class PenaltySchedule:
    delta: float = 1e-4       # Δλ per update (official --reg_granularity_prune)
    every: int = 20           # iterations between updates (--update_reg_interval, README value)
    ceiling: float = 0.5      # stop growing when λ > ceiling (--reg_upper_limit)
    stabilize: int = 43150    # iterations with frozen λ before pruning (--stabilize_reg_interval)

    def __post_init__(self):
        problems = []
        if not self.delta > 0:
            problems.append(f"delta must be > 0, got {self.delta}")
        if not (isinstance(self.every, int) and self.every > 0):
            problems.append(f"every must be a positive integer, got {self.every}")
        if not self.ceiling > 0:
            problems.append(f"ceiling must be > 0, got {self.ceiling}")
        if not (isinstance(self.stabilize, int) and self.stabilize >= 0):
            problems.append(f"stabilize must be an integer >= 0, got {self.stabilize}")
        if problems:
            raise ValueError("invalid penalty schedule: " + "; ".join(problems))

    @property
    def updates_to_stop(self) -> int:
        """Number of updates after which ``count · delta > ceiling``."""
        n = math.floor(self.ceiling / self.delta + 1e-9) + 1
        return n if n * self.delta > self.ceiling else n + 1

    @property
    def grow_iters(self) -> int:
        return self.updates_to_stop * self.every

    def lam(self, count: int) -> float:
        return count * self.delta

    def to_dict(self) -> dict:
        return asdict(self)
