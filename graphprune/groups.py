"""Groups of coupled channels and their members: plain dataclasses, no behaviour beyond lookups.

A :class:`Group` is one independent unit of pruning: ``size`` indices that must be removed together
from every :class:`Member`. A member is one dimension of one parameter (or buffer) of one module;
its ``index_map`` says, for each group index, which positions of that dimension it owns (one
position for a plain residual coupling, ``r*r`` for the input of a pixel shuffle, ``H*W`` for a
flatten, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Member", "Group"]


@dataclass(frozen=True, eq=False)
class Member:
    """One parameter dimension that a group's indices map into.

    Attributes
    ----------
    module : str
        Qualified module name (``""`` for the root module).
    param : str
        Parameter or buffer name on that module (``"weight"``, ``"bias"``, ``"running_mean"``, ...).
    dim : int
        The dimension of the tensor that the group indexes.
    role : str
        ``"out"`` for producers and per-channel parameters (conv/linear output filters, biases,
        norm affine parameters); ``"in"`` for consumers (a conv's input channels).
    index_map : numpy.ndarray
        Integer array of shape ``(group.size, k)``: row i are the positions of ``dim`` owned by
        group index i.
    """

    module: str
    param: str
    dim: int
    role: str
    index_map: np.ndarray

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.module, self.param, self.dim)

    def positions(self, indices) -> np.ndarray:
        """Sorted positions of ``dim`` owned by the given group indices."""
        idx = np.asarray(indices, dtype=np.int64)
        return np.unique(self.index_map[idx].reshape(-1)) if idx.size else np.zeros(0, np.int64)

    def __repr__(self) -> str:
        k = self.index_map.shape[1]
        return f"Member({self.module or '<root>'}.{self.param}[dim {self.dim}], {self.role}, x{k})"


@dataclass(eq=False)
class Group:
    """A set of channels that are kept or removed together.

    Attributes
    ----------
    id : int
        Stable index in ``ChannelGraph.groups`` (graph order, deterministic for a model).
    size : int
        Number of channels (group indices).
    prunable : bool
        False when pruning would change the model's interface or touches an op without a rule.
    reason : str
        Why the group is not prunable (names the op or module); empty when prunable.
    members : list of Member
    exact : bool
        True when pruning this group is exact: the pruned model computes what the dense model computes
        with the group's removed channels cut at both ends (zeroed where they are made, ignored where
        they are read). False when a statistic over these channels reads them (a LayerNorm or
        GroupNorm over channels, a softmax, mean, std or logsumexp over channels): pruning is still
        structurally sound and accepted practice (fine-tuning re-learns the statistic), but the kept
        channels then see a statistic of fewer values.
    inexact_reason : str
        The first such statistic, with its module (``"F.softmax over these channels at body.3.attn"``).
    factors : int
        How many prunable groups (this one included) are row-major factors of one channel space,
        e.g. 2 for attention heads × head dim or groups × per-group width; 1 otherwise, and 1 for
        a group that is a whole filter dim anywhere (a producer's filters, as a module's rule declares
        them; a parameter read in forward such as a relative-position table does not count). A ratio applies to
        the space, so each factor loses ``1 − (1 − ratio)^(1/factors)`` (:func:`plan.ratio_for`).
    """

    id: int
    size: int
    prunable: bool
    reason: str = ""
    members: list[Member] = field(default_factory=list)
    factors: int = 1
    exact: bool = True
    inexact_reason: str = ""

    @property
    def producers(self) -> list[Member]:
        return [m for m in self.members if m.role == "out"]

    @property
    def consumers(self) -> list[Member]:
        return [m for m in self.members if m.role == "in"]

    def modules(self, role: str | None = None) -> list[str]:
        """Module names of the members (optionally of one role), in member order, no repeats."""
        seen: dict[str, None] = {}
        for m in self.members:
            if role is None or m.role == role:
                seen.setdefault(m.module, None)
        return list(seen)

    def __repr__(self) -> str:
        state = ("prunable" + ("" if self.exact else f", inexact: {self.inexact_reason}")) if self.prunable \
            else f"blocked: {self.reason}"
        mods = self.modules()
        shown = ", ".join(mods[:4]) + (f", ... (+{len(mods) - 4})" if len(mods) > 4 else "")
        return f"Group(id={self.id}, size={self.size}, {state}, modules=[{shown}])"
