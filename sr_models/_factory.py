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
import sys
from typing import Any, Mapping

import torch
import torch.nn as nn

from graphprune.loaders import fit_prefix, read_state_dict

from ._registry import is_model, list_models, model_entrypoint

__all__ = ["create_model", "load_checkpoint", "official_layout"]


def create_model(name: str, *, checkpoint: str | os.PathLike | None = None, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with ``overrides`` (``None`` values are dropped).

    Parameters
    ----------
    name : str
        A name from ``list_models()``.
    checkpoint : path, optional
        A local ``.safetensors``, ``.pth``, ``.pt`` or ``.ckpt`` file: a state dict, raw or in the usual
        wrappers, or the official EDSR-PyTorch / ASSL / SRP layout (see :func:`load_checkpoint`);
        loaded strictly.
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


def official_layout(sd: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a checkpoint of the official code (EDSR-PyTorch, ASSL, SRP) onto ``model``'s names.

    * a prefix shared by every key that the model lacks (the old SRP interface's ``model.``, Lightning's
      ``net_g.``) is removed (:func:`graphprune.loaders.fit_prefix`);
    * ASSL's weight-normalised convs (``--wn``: ``Conv2D_WN`` keeps ``weight`` and a per-filter
      ``wn_scale``) are folded into plain weights, ``normalize(weight) * wn_scale``, the function they compute;
    * the model's family module may map its own official names (``checkpoint_filter_fn(state_dict, model)``,
      timm's convention; e.g. LEDSR's official tail nests its upsampler one level deeper).
    """
    sd = _fold_wn_scale(fit_prefix(sd, model.state_dict()))
    family = sys.modules.get(type(model).__module__)
    filter_fn = getattr(family, "checkpoint_filter_fn", None) if type(model).__module__.startswith(__package__) else None
    return filter_fn(sd, model) if filter_fn else sd


def _fold_wn_scale(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(sd)
    for key in [k for k in sd if k.endswith(".wn_scale")]:
        w = key[: -len("wn_scale")] + "weight"
        if w in out:
            flat = out[w].flatten(1)
            out[w] = (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12) * out[key][:, None]).view_as(out[w])
            del out[key]
    return out


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the local checkpoint ``path`` into ``model`` strictly.

    The file is read by :func:`graphprune.loaders.read_state_dict` (``weights_only``, wrappers such as
    ``params_ema``/``state_dict``/``model``, a ``module.`` prefix; a bad file raises its one-line
    ``CheckpointError``) and mapped by :func:`official_layout`; keys or shapes that still do not fit
    raise ``RuntimeError`` listing them.
    """
    sd = official_layout(read_state_dict(path), model)
    try:
        result = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # size mismatches
        raise RuntimeError(f"checkpoint {os.fspath(path)} does not fit {type(model).__name__}: "
                           f"{' '.join(str(e).split())[:400]}") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint {os.fspath(path)} does not match {type(model).__name__}: "
            f"{len(missing)} missing keys (e.g. {missing[:5]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})"
        )
    return model
