"""Shared helper of the ``_create_xxx`` functions: bind kwargs to a model class with a clear error."""
from __future__ import annotations

import inspect
from typing import Any

import torch.nn as nn

__all__ = ["build_model"]


def build_model(cls: type[nn.Module], variant: str, **kwargs: Any) -> nn.Module:
    """Instantiate ``cls(**kwargs)``; unknown kwargs raise ``TypeError`` naming ``variant`` and the valid ones."""
    params = inspect.signature(cls.__init__).parameters
    valid = [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(f"{variant}: unknown argument(s) {unknown}; valid arguments: {', '.join(valid)}")
    return cls(**kwargs)
