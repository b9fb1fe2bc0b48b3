"""Learning-rate schedules as pure functions of the iteration (nanoGPT ``get_lr`` style).

Why pure functions instead of ``torch.optim.lr_scheduler`` objects: the learning rate at iteration
``it`` depends on nothing but ``it`` and the recipe, so resuming needs no scheduler state (the
checkpoint's iteration *is* the scheduler position), rebuilding the optimizer after pruning keeps the
schedule position for free, and every schedule is testable by formula.

Convention: ``it`` is the 0-based index of the optimizer step about to run. A milestone ``m`` means
"steps with index >= m use the decayed rate", i.e. the rate drops after ``m`` completed steps, which is
what ``torch.optim.lr_scheduler.MultiStepLR`` gives when ``scheduler.step()`` follows every optimizer
step.

A config names a schedule as ``{type: ..., **arguments}``; each type is a typed schema below (its
arguments, defaults and ranges), so ``milestones: soon`` fails when the config is read. ``type``
takes our names or torch's class names, case-insensitively (``step`` = ``StepLR``).

>>> f = build_schedule({"type": "MultiStepLR", "milestones": [2, 4], "gamma": 0.5}, 1.0, total_iters=6)
>>> [f(i) for i in range(6)]
[1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Annotated, Callable, Literal, Sequence, Union

from ..schema import ConfigError, Schema, Variants, field, load

__all__ = [
    "constant_lr", "step_lr", "multistep_lr", "cosine_lr", "with_warmup", "build_schedule",
    "ConstantLR", "StepLR", "MultiStepLR", "CosineLR", "Scheduler",
]


def constant_lr(it: int, base_lr: float) -> float:
    """The base rate at every iteration."""
    return base_lr


def step_lr(it: int, base_lr: float, step_size: int, gamma: float) -> float:
    """Multiply by ``gamma`` every ``step_size`` iterations (``StepLR``)."""
    return base_lr * gamma ** (it // step_size)


def multistep_lr(it: int, base_lr: float, milestones: Sequence[int], gamma: float) -> float:
    """Multiply by ``gamma`` once for every milestone already reached (``MultiStepLR``)."""
    return base_lr * gamma ** sum(1 for m in milestones if it >= m)


def cosine_lr(it: int, base_lr: float, total_iters: int, eta_min: float) -> float:
    """Half-cosine from ``base_lr`` at iteration 0 to ``eta_min`` at ``total_iters``."""
    progress = min(max(it / max(total_iters, 1), 0.0), 1.0)
    return eta_min + 0.5 * (base_lr - eta_min) * (1.0 + math.cos(math.pi * progress))


def with_warmup(fn: Callable[[int], float], warmup_iters: int) -> Callable[[int], float]:
    """Linear warmup to ``fn(warmup_iters)`` over the first iterations, then ``fn`` unchanged.

    The warmup replaces the start of the schedule rather than shifting it, so milestones and the
    cosine end point keep meaning "iteration number" whether or not warmup is on. Step 0 already
    uses a non-zero rate (``1/warmup_iters`` of the target), as nanoGPT's ``get_lr`` does.
    """
    if warmup_iters <= 0:
        return fn

    def lr_at(it: int) -> float:
        if it < warmup_iters:
            return fn(warmup_iters) * (it + 1) / warmup_iters
        return fn(it)

    return lr_at


@dataclass(kw_only=True)
class _Schedule(Schema):
    type: str = ""  # each schedule's literal names; declared here so that it is the first key
    warmup_iters: int = field(0, doc="linear warmup at the start", ge=0)

    def rate(self, it: int, base_lr: float, total_iters: int) -> float:
        raise NotImplementedError

    def lr_at(self, base_lr: float, total_iters: int) -> Callable[[int], float]:
        """``lr_at(it) -> float`` (picklable: a partial of a method of plain data)."""
        return with_warmup(functools.partial(self.rate, base_lr=base_lr, total_iters=total_iters),
                           self.warmup_iters)


@dataclass(kw_only=True)
class ConstantLR(_Schedule):
    type: Literal["constant", "ConstantLR"] = "constant"

    def rate(self, it: int, base_lr: float, total_iters: int) -> float:
        return constant_lr(it, base_lr)


@dataclass(kw_only=True)
class StepLR(_Schedule):
    type: Literal["step", "StepLR"] = "step"
    step_size: int = field(doc="iterations between decays", ge=1)
    gamma: float = field(0.1, gt=0)

    def rate(self, it: int, base_lr: float, total_iters: int) -> float:
        return step_lr(it, base_lr, self.step_size, self.gamma)


@dataclass(kw_only=True)
class MultiStepLR(_Schedule):
    type: Literal["multistep", "MultiStepLR"] = "multistep"
    milestones: list[int] = field(doc="iterations after which the rate decays", ge=0)
    gamma: float = field(0.1, gt=0)

    def rate(self, it: int, base_lr: float, total_iters: int) -> float:
        return multistep_lr(it, base_lr, self.milestones, self.gamma)


@dataclass(kw_only=True)
class CosineLR(_Schedule):
    type: Literal["cosine", "CosineAnnealingLR", "CosineAnnealing"] = "cosine"
    eta_min: float = field(0.0, doc="the rate at the last iteration", ge=0)

    def rate(self, it: int, base_lr: float, total_iters: int) -> float:
        return cosine_lr(it, base_lr, total_iters, self.eta_min)


#: A schedule spec in a config: ``{type: constant|step|multistep|cosine (or torch's names), ...}``.
Scheduler = Annotated[Union[ConstantLR, StepLR, MultiStepLR, CosineLR], Variants("type", casefold=True)]


def build_schedule(spec, base_lr: float, total_iters: int) -> Callable[[int], float]:
    """``lr_at(it) -> float`` from a spec (mapping, schema instance, or None for constant).

    Cosine's ``total_iters`` comes from the trainer; ``warmup_iters`` is accepted by every type.
    """
    value, problems = load(Scheduler, spec if spec is not None else {"type": "constant"})
    if problems:
        raise ConfigError("invalid scheduler", problems)
    return value.lr_at(base_lr, total_iters)
