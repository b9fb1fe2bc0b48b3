"""Weight-norm reparametrization of group producers (ASSL): one learnable scale per output filter.

ASSL trains ``W_j = γ_j · V_j / ‖V_j‖`` for every filter j of the pruned layers and penalizes the
scales γ of the filters chosen as unimportant. ``γ_j`` starts at ``‖W_j‖₂`` so the network computes
exactly the dense function at the start (the official code's ``init_wn``). When the penalty has done
its work the scales are merged back (``W ← γ · V/‖V‖``) and the layer is a plain convolution again,
ready for the physical prune.

This uses ``torch.nn.utils.parametrize``: the module keeps its class (a Conv2d stays a Conv2d for
tracing, counting and the op rules), the direction ``V`` lives at
``<module>.parametrizations.weight.original`` and the scale at
``<module>.parametrizations.weight.0.scale``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["FilterScale", "add_weight_norm", "merge_weight_norm", "filter_scale", "scale_path"]


class FilterScale(nn.Module):
    """``V ↦ γ · V / ‖V‖`` per slice along dim 0 (an output filter of a conv or linear layer)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.scale = nn.Parameter(weight.detach().flatten(1).norm(dim=1).clone())

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        # γ/‖V‖ is a per-filter vector: one full-size multiply instead of normalize-then-scale
        factor = self.scale / v.flatten(1).norm(dim=1).clamp_min(1e-12)
        return v * factor.view(-1, *([1] * (v.ndim - 1)))


def add_weight_norm(model: nn.Module, module_names) -> list[str]:
    """Reparametrize the ``weight`` of each named module; returns the names actually changed.

    Modules without a ``weight`` of at least 2 dims, or already reparametrized, are skipped.
    """
    done = []
    for name in module_names:
        module = model.get_submodule(name)
        w = getattr(module, "weight", None)
        if not isinstance(w, torch.Tensor) or w.ndim < 2 or filter_scale(module) is not None:
            continue
        parametrize.register_parametrization(module, "weight", FilterScale(w))
        done.append(name)
    return done


def filter_scale(module: nn.Module) -> nn.Parameter | None:
    """The γ of a reparametrized module, or None."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    for p in module.parametrizations.weight:
        if isinstance(p, FilterScale):
            return p.scale
    return None


def scale_path(module_name: str) -> str:
    """Qualified parameter name of a module's γ (as in ``model.named_parameters()``)."""
    return f"{module_name}.parametrizations.weight.0.scale" if module_name else "parametrizations.weight.0.scale"


def merge_weight_norm(model: nn.Module) -> list[str]:
    """Fold every γ back into a plain weight; returns the merged module names."""
    merged = []
    for name, module in list(model.named_modules()):
        if filter_scale(module) is not None:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            merged.append(name)
    return merged
