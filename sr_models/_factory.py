"""``create_model``: build a registered model, optionally loading a local checkpoint.

Every model returned carries ``model.gp_spec = {"name": ..., "kwargs": {...}}`` (enough to rebuild the
dense model with ``create_model(spec["name"], **spec["kwargs"])``), ``model.scale`` and
``model.rgb_range``.

>>> import sr_models
>>> m = create_model("edsr_baseline_x2", n_feats=16, n_resblocks=2)
>>> m.gp_spec
{'name': 'edsr_baseline_x2', 'kwargs': {'n_feats': 16, 'n_resblocks': 2}}
>>> m.scale, m.rgb_range
(2, 255)
"""
from __future__ import annotations

import difflib
import os
import re
from typing import Any, Mapping

import torch
import torch.nn as nn

from ._registry import is_model, list_models, model_entrypoint

__all__ = ["create_model", "load_checkpoint", "load_state_dict_file"]

_WRAPPER_KEYS = ("state_dict", "model", "params", "params_ema")
_PREFIXES = ("module.", "model.")


def create_model(name: str, *, checkpoint: str | os.PathLike | None = None, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with ``overrides`` (``None`` values are dropped).

    Parameters
    ----------
    name : str
        A name from ``list_models()``.
    checkpoint : path, optional
        A local ``.safetensors`` file or a ``torch.save`` file holding a state dict (raw or under
        ``state_dict`` / ``model`` / ``params``); loaded strictly.
    **overrides
        Model arguments, e.g. ``n_feats=16``.
    """
    if not is_model(name):
        close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (see sr_models.list_models())")
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    suffix = re.search(r"_x(\d+)$", name)
    if suffix and "scale" in kwargs and kwargs["scale"] != int(suffix.group(1)):
        raise ValueError(
            f"scale={kwargs['scale']!r} contradicts model {name!r}; use {name[: suffix.start()]}_x{kwargs['scale']}"
        )
    model = model_entrypoint(name)(**kwargs)
    model.gp_spec = {"name": name, "kwargs": dict(kwargs)}
    if not hasattr(model, "scale") or not hasattr(model, "rgb_range"):
        raise TypeError(f"model {name!r} must set attributes 'scale' and 'rgb_range'")
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a local checkpoint into a flat state dict (no pickle code execution)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        sd: Any = load_file(path, device="cpu")
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in _WRAPPER_KEYS:
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
            break
    if not isinstance(sd, Mapping):
        raise ValueError(f"checkpoint {path} does not hold a state dict (got {type(sd).__name__})")
    return _strip_prefix(dict(sd))


def _strip_prefix(sd: dict[str, Any]) -> dict[str, Any]:
    """Drop a wrapper prefix (``module.`` from DDP, ``model.`` from EDSR-PyTorch) shared by every key."""
    for p in _PREFIXES:
        if sd and all(k.startswith(p) for k in sd):
            return {k[len(p):]: v for k, v in sd.items()}
    return sd


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the local checkpoint ``path`` into ``model``; raise ``RuntimeError`` listing mismatched keys."""
    sd = load_state_dict_file(path)
    try:
        result = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # size mismatches
        raise RuntimeError(f"checkpoint {os.fspath(path)} does not fit {type(model).__name__}: {e}") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint {os.fspath(path)} does not match {type(model).__name__}: "
            f"{len(missing)} missing keys (e.g. {missing[:5]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})"
        )
    return model
