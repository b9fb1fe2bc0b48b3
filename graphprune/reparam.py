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

__all__ = ["FilterScale", "add_weight_norm", "merge_weight_norm", "filter_scale", "scale_path",
           "legacy_weight_norm", "copy_model", "effective_weights_as_directions", "rederive_weight_norm"]


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


# --------------------------------------------------------------------------------------------------
# torch.nn.utils.weight_norm (the legacy hook): weight = g · v / ‖v‖, recomputed before every forward
#
# WDSR/AWSRN-style networks and the EDSR-era code ASSL grew from keep their weights this way: the
# parameters are ``weight_g`` and ``weight_v``, and ``weight`` is a plain attribute the hook recomputes.
# The analysis reads ``weight``'s channels off ``weight_v`` (same dims) and ``weight_g`` (its norm dim);
# the surgery prunes the *effective* weight and re-derives ``g`` from it, so the kept filters compute
# exactly what they computed (slicing ``v`` alone would change ``‖v‖``).


def legacy_weight_norm(module: nn.Module, name: str = "weight"):
    """The ``torch.nn.utils.weight_norm`` hook that makes ``module.<name>``, or None."""
    from torch.nn.utils.weight_norm import WeightNorm

    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm) and hook.name == name:
            return hook
    return None


def legacy_weight_norms(model: nn.Module) -> list[tuple[nn.Module, object]]:
    """Every (module, hook) pair of the legacy weight norm in ``model``."""
    from torch.nn.utils.weight_norm import WeightNorm

    return [(m, h) for m in model.modules() for h in m._forward_pre_hooks.values() if isinstance(h, WeightNorm)]


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also copies modules under the legacy weight norm.

    Their ``weight`` is a tensor computed with autograd history, which ``deepcopy`` refuses; the
    copy gets it detached (the hook recomputes it before the next forward anyway).
    """
    import copy

    computed = [(m, h.name, getattr(m, h.name)) for m, h in legacy_weight_norms(model)]
    for m, name, w in computed:
        setattr(m, name, w.detach())
    try:
        return copy.deepcopy(model)
    finally:
        for m, name, w in computed:
            setattr(m, name, w)


def effective_weights_as_directions(model: nn.Module) -> None:
    """``v ← g·v/‖v‖`` and ``g ← ‖v‖`` (the function is unchanged): slicing ``v`` then slices the weight itself."""
    with torch.no_grad():
        for m, h in legacy_weight_norms(model):
            w = h.compute_weight(m)
            getattr(m, h.name + "_v").copy_(w)
            _rederive_g(m, h)


def rederive_weight_norm(model: nn.Module) -> None:
    """After slicing: ``g ← ‖v‖`` per filter and the hook's weight recomputed, so the kept filters are unchanged."""
    with torch.no_grad():
        for m, h in legacy_weight_norms(model):
            _rederive_g(m, h)
            setattr(m, h.name, h.compute_weight(m).detach())


def _rederive_g(m: nn.Module, h) -> None:
    from torch import _weight_norm, norm_except_dim  # noqa: F401  (torch's own helpers)

    g = getattr(m, h.name + "_g")
    new = norm_except_dim(getattr(m, h.name + "_v"), 2, h.dim)
    if g.shape == new.shape:
        g.copy_(new)
    else:
        setattr(m, h.name + "_g", nn.Parameter(new, requires_grad=g.requires_grad))
