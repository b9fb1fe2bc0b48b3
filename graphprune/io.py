"""Save and load pruned models without pickle: one safetensors file with a JSON spec inside.

The spec (stored in the safetensors metadata under ``"graphprune"``) says how to rebuild the dense
model and which channels to remove::

    {"format": "graphprune/1",
     "model": {"name": "ledsr_f256r16_x4", "kwargs": {...}}      # sr_models registry
              | {"timm": "resnet18", "kwargs": {...}}            # timm.create_model
              | {"factory": "package.module:function", "kwargs": {...}}
              | {"spandrel": {"arch": "SwinIR", "class": "SwinIR", "kwargs": {...}, "shapes": {...}}},
     "analysis": {"example_shapes": [[1, 3, 48, 48]], "ignore": ["*mean*"]},
     "plan": {"removed": {"2": [0, 5, ...]}, "group_sizes": [...]}}      # or null (dense)

:func:`load` rebuilds the dense model, re-runs the analysis (deterministic), re-applies the plan and
loads the weights strictly. Nothing in the file can execute code.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from .channels import analyze
from .files import atomic_write
from .plan import Plan
from .spec import FORMAT, make_spec
from .surgery import apply

__all__ = ["save", "load", "build_model", "make_spec", "FORMAT"]

def build_model(model_spec: dict) -> nn.Module:
    """Build the dense model a spec names (registry name, ``timm``, ``module:function`` or spandrel shapes)."""
    kwargs = dict(model_spec.get("kwargs") or {})
    if "name" in model_spec:
        import sr_models
        model = sr_models.create_model(model_spec["name"], **kwargs)
    elif "timm" in model_spec:
        import timm
        model = timm.create_model(model_spec["timm"], pretrained=False, **kwargs)
        model.gp_spec = dict(model_spec)
    elif "factory" in model_spec:
        mod, _, fn = model_spec["factory"].partition(":")
        if not fn:
            raise ValueError(f"factory must look like 'package.module:function', got {model_spec['factory']!r}")
        model = getattr(importlib.import_module(mod), fn)(**kwargs)
        model.gp_spec = dict(model_spec)
    elif "spandrel" in model_spec:
        from .loaders import build_spandrel
        model = build_spandrel(model_spec["spandrel"])
    else:
        raise ValueError(f"model spec needs one of 'name', 'timm', 'factory' or 'spandrel', got keys {sorted(model_spec)}")
    return model


def save(model: nn.Module, path: str | os.PathLike, spec: dict | Plan | None = None) -> Path:
    """Write ``model``'s weights and its spec to ``path`` atomically (no partial file on failure).

    ``spec`` may be a full spec dict, a :class:`Plan` (the dense model's ``gp_spec`` is used), a model
    spec (``{'factory': ..., 'kwargs': ...}``: how to build the dense model; the pruned model's plan is
    kept), or None to use the spec that :func:`graphprune.apply` attached to the pruned model.
    """
    from safetensors.torch import save_file

    if isinstance(spec, Plan):
        spec = make_spec(spec)
    elif spec is None:
        spec = getattr(model, "gp_save_spec", None) or make_spec(None, model=model)
    elif "format" not in spec:
        spec = _with_model_spec(model, spec)
    weights, metadata = _weights(model), {"graphprune": json.dumps(spec)}
    return atomic_write(path, lambda tmp: save_file(weights, str(tmp), metadata=metadata))


def _with_model_spec(model: nn.Module, model_spec: dict) -> dict:
    """``model``'s spec (its plan when pruned) with the dense model described by ``model_spec``.

    The plan comes from the spec :func:`graphprune.apply` attached (``gp_save_spec``) or from the plan it
    recorded (``gp_plan``). Without either, the weights must fit the dense model itself: a pruned model
    whose plan is unknown raises here instead of writing a file that :func:`load` cannot rebuild.
    """
    own = getattr(model, "gp_save_spec", None)
    if own is not None and own.get("plan"):
        return {**own, "model": dict(model_spec)}
    record = getattr(model, "gp_plan", None)
    if record is None:
        _check_fits_dense(model, model_spec)
        return make_spec(None, model_spec=model_spec)
    return {**make_spec(None, model_spec=model_spec), **record}


def _check_fits_dense(model: nn.Module, model_spec: dict) -> None:
    dense = {k: tuple(v.shape) for k, v in build_model(model_spec).state_dict().items() if not _is_trace_constant(k)}
    bad = [k for k, v in model.state_dict().items() if not _is_trace_constant(k) and dense.get(k) != tuple(v.shape)]
    if bad:
        raise ValueError(f"cannot save: the weights do not fit the dense model {model_spec} describes "
                         f"(e.g. {bad[0]}) and this model carries no pruning plan; save the model graphprune.apply "
                         "returned, or give the dense model its gp_spec before graphprune.apply")


def _is_trace_constant(key: str) -> bool:
    """fx's ``_tensor_constantN`` buffers: made by tracing, re-made by tracing on load, never saved."""
    return key.rsplit(".", 1)[-1].startswith("_tensor_constant")


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state to save: every parameter and buffer, each its own contiguous CPU copy (no shared storage)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()
            if not _is_trace_constant(k)}


def _with_metadata(state: dict, metadata) -> dict:
    from collections import OrderedDict

    out = OrderedDict(state)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def read_spec(path: str | os.PathLike) -> dict:
    """The JSON spec stored in a graphprune file (raises with a one-line reason)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path} is not a readable safetensors file (corrupt or truncated?): {exc}") from None
    if "graphprune" not in meta:
        raise ValueError(f"{path} has no graphprune spec: it was not written by graphprune.save")
    spec = json.loads(meta["graphprune"])
    if spec.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported format {spec.get('format')!r} (expected {FORMAT})")
    return spec


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild, re-prune and fill a model saved by :func:`save`."""
    from safetensors.torch import load_file

    spec = read_spec(path)
    model = build_model(spec["model"])
    if spec.get("plan"):
        analysis = spec["analysis"]
        inputs = tuple(torch.zeros(s) for s in analysis["example_shapes"])
        graph = analyze(model, inputs, ignore=analysis.get("ignore", ()), size_ties=analysis.get("size_ties", True),
                        leaf_modules=analysis.get("leaf_modules", ()))
        model = apply(model, Plan.from_dict(graph, spec["plan"]), inplace=True)
    state = load_file(str(path))
    # the module versions torch keeps beside a state dict (some modules, e.g. MNASNet, require them)
    state = _with_metadata(state, getattr(model.state_dict(), "_metadata", None))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: weights do not fit the rebuilt model: {' '.join(str(exc).split())[:300]}") from None
    missing = [k for k in missing if not _is_trace_constant(k)]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the rebuilt model: missing {missing[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")
    model.gp_save_spec = spec
    return model.to(map_location)
