"""The JSON spec a saved model carries: how to rebuild the dense model and which channels to remove.

Its own module so that :mod:`graphprune.surgery` (which attaches the spec to a pruned model) and
:mod:`graphprune.io` (which writes and reads it) both depend on it, not on each other. The format
is described in :mod:`graphprune.io`.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .plan import Plan

__all__ = ["make_spec", "FORMAT"]

FORMAT = "graphprune/1"


def make_spec(plan: Plan | None, model_spec: dict | None = None, model: nn.Module | None = None) -> dict:
    """The JSON spec for a dense model (``plan=None``) or a pruned one."""
    source = model if model is not None else (plan.graph.model if plan is not None else None)
    model_spec = model_spec or getattr(source, "gp_spec", None)
    if not model_spec:
        raise ValueError("cannot tell how to rebuild this model: pass spec={'name'|'timm'|'factory': ..., "
                         "'kwargs': {...}} (sr_models.create_model and graphprune.loaders.load_spandrel "
                         "set model.gp_spec automatically)")
    spec: dict[str, Any] = {"format": FORMAT, "model": dict(model_spec), "plan": None, "analysis": None}
    if plan is not None:
        spec["plan"] = plan.to_dict()
        spec["analysis"] = {"example_shapes": [list(s) for s in plan.graph.example_shapes],
                            "ignore": list(plan.graph.ignore)}
    return spec
