"""The JSON spec a saved model carries: how to rebuild the dense model and which channels to remove.

Its own module so that :mod:`graphprune.surgery` (which attaches the spec to a pruned model) and
:mod:`graphprune.io` (which writes and reads it) both depend on it, not on each other. The format
is described in :mod:`graphprune.io`.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .plan import Plan

__all__ = ["make_spec", "plan_record", "FORMAT"]

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
        spec.update(plan_record(plan))
    return spec


def plan_record(plan: Plan) -> dict[str, Any]:
    """The plan and how to redo its analysis, as JSON data (``load`` re-analyzes the rebuilt dense model).

    The modules the user kept opaque are recorded by name; the tracer's automatic leaves are found again.
    """
    graph = plan.graph
    leaves = sorted(name for name, why in graph.traced.leaves.items() if why == "user")
    return {"plan": plan.to_dict(),
            "analysis": {"example_shapes": [list(s) for s in graph.example_shapes], "ignore": list(graph.ignore),
                         "size_ties": graph.size_ties, "leaf_modules": leaves}}
