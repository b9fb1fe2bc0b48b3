"""Model registry: ``register_model`` / ``list_models`` / ``is_model`` / ``model_entrypoint``.

A registered entrypoint is a function ``fn(**kwargs) -> nn.Module`` whose ``__name__`` is the model
name (timm style). Registering the same name twice raises ``ValueError`` instead of silently
replacing the first entrypoint.

>>> import sr_models
>>> is_model("edsr_baseline_x2")
True
>>> list_models("ledsr_*")
['ledsr_f256r16_x2', 'ledsr_f256r16_x3', 'ledsr_f256r16_x4']
"""
from __future__ import annotations

import fnmatch
import sys
from typing import Callable

import torch.nn as nn

__all__ = ["register_model", "list_models", "is_model", "model_entrypoint"]

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}
_model_to_module: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under ``fn.__name__``; raise ``ValueError`` if the name is taken."""
    name = fn.__name__
    if name in _model_entrypoints:
        raise ValueError(
            f"model {name!r} is already registered (by module {_model_to_module[name]!r}); "
            "choose another function name"
        )
    _model_entrypoints[name] = fn
    _model_to_module[name] = fn.__module__
    mod = sys.modules.get(fn.__module__)
    if mod is not None:
        all_ = getattr(mod, "__all__", None)
        if isinstance(all_, list) and name not in all_:
            all_.append(name)
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching the ``fnmatch`` ``pattern``."""
    return sorted(n for n in _model_entrypoints if fnmatch.fnmatchcase(n, pattern))


def is_model(name: str) -> bool:
    """True if ``name`` is a registered model."""
    return name in _model_entrypoints


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The entrypoint registered as ``name`` (``KeyError`` if unknown; see ``create_model``)."""
    return _model_entrypoints[name]
