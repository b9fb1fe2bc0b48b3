"""Optimizers a config may name, as typed schemas: every value is checked before training starts.

``{type: Adam, lr: fast}`` must fail when the recipe is read, naming ``lr``, not an hour later
inside ``torch.optim``. Each class below is the schema of one ``torch.optim`` optimizer (the
arguments SR training uses, with torch's defaults and valid ranges); :func:`build_optimizer`
hands the checked values to torch. ``type`` matches case-insensitively (``adam`` = ``Adam``).

>>> from graphprune.schema import load
>>> load(Optimizer, {"type": "adam", "lr": 2e-4, "betas": [0.9, 0.99]})[0]
Adam(type='Adam', lr=0.0002, betas=(0.9, 0.99), eps=1e-08, weight_decay=0.0, amsgrad=False)
>>> [str(p) for p in load(Optimizer, {"type": "Adam", "lr": "fast"})[1]]
["lr: 'fast' is a string; expected a number"]
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Iterable, Literal, Union

import torch

from ..schema import Schema, Variants, field, load

__all__ = ["Adam", "AdamW", "SGD", "Optimizer", "OptimizerError", "build_optimizer"]


class OptimizerError(ValueError):
    """An optimizer spec that does not load (raised by :func:`build_optimizer`)."""


@dataclass(kw_only=True)
class Adam(Schema):
    type: Literal["Adam"] = "Adam"
    lr: float = field(doc="the schedule's base learning rate", gt=0)
    betas: tuple[float, float] = field((0.9, 0.999), doc="moment decays", ge=0, lt=1)
    eps: float = field(1e-8, gt=0)
    weight_decay: float = field(0.0, ge=0)
    amsgrad: bool = False


@dataclass(kw_only=True)
class AdamW(Adam):
    type: Literal["AdamW"] = "AdamW"
    weight_decay: float = field(1e-2, ge=0)


@dataclass(kw_only=True)
class SGD(Schema):
    type: Literal["SGD"] = "SGD"
    lr: float = field(doc="the schedule's base learning rate", gt=0)
    momentum: float = field(0.0, ge=0)
    dampening: float = field(0.0, ge=0)
    weight_decay: float = field(0.0, ge=0)
    nesterov: bool = False


#: An optimizer spec in a config: ``{type: Adam|AdamW|SGD, lr: ..., ...}``.
Optimizer = Annotated[Union[Adam, AdamW, SGD], Variants("type", casefold=True)]


def build_optimizer(params: Iterable[torch.nn.Parameter], spec) -> torch.optim.Optimizer:
    """``torch.optim.<type>(params, **values)`` from a spec (a mapping or one of the classes above)."""
    value, problems = load(Optimizer, spec)
    if problems:
        raise OptimizerError("invalid optimizer: " + "; ".join(map(str, problems)))
    kwargs = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.name != "type"}
    return getattr(torch.optim, value.type)(params, **kwargs)
