"""Learning-rate schedules as pure functions of the iteration (nanoGPT ``get_lr`` style).

Why pure functions instead of ``torch.optim.lr_scheduler`` objects: the learning rate at iteration
``it`` depends on nothing but ``it`` and the recipe, so resuming needs no scheduler state (the
checkpoint's iteration *is* the scheduler position), rebuilding the optimizer after pruning keeps the
schedule position for free, and every schedule is testable by formula.

Convention: ``it`` is the 0-based index of the optimizer step about to run. A milestone ``m`` means
"steps with index >= m use the decayed rate", i.e. the rate drops after ``m`` completed steps, which is
what ``torch.optim.lr_scheduler.MultiStepLR`` gives when ``scheduler.step()`` follows every optimizer
step.

>>> f = build_schedule({"type": "MultiStepLR", "milestones": [2, 4], "gamma": 0.5}, 1.0, total_iters=6)
>>> [f(i) for i in range(6)]
[1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Callable, Sequence

__all__ = [
    "constant_lr",
    "step_lr",
    "multistep_lr",
    "cosine_lr",
    "with_warmup",
    "build_schedule",
    "SCHEDULES",
]


def constant_lr(it: int, base_lr: float) -> float:
    """The base rate at every iteration."""
    return base_lr


def step_lr(it: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """Multiply by ``gamma`` every ``step_size`` iterations (``StepLR``)."""
    return base_lr * gamma ** (it // step_size)


def multistep_lr(it: int, base_lr: float, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """Multiply by ``gamma`` once for every milestone already reached (``MultiStepLR``)."""
    return base_lr * gamma ** sum(1 for m in milestones if it >= m)


def cosine_lr(it: int, base_lr: float, total_iters: int, eta_min: float = 0.0) -> float:
    """Half-cosine from ``base_lr`` at iteration 0 to ``eta_min`` at ``total_iters``."""
    progress = min(max(it / max(total_iters, 1), 0.0), 1.0)
    return eta_min + 0.5 * (base_lr - eta_min) * (1.0 + math.cos(math.pi * progress))


def with_warmup(fn: Callable[[int], float], warmup_iters: int, base_lr: float) -> Callable[[int], float]:
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


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant_lr,
    "step": step_lr,
    "multistep": multistep_lr,
    "cosine": cosine_lr,
}

# BasicSR / torch class names users write in recipes.
_ALIASES = {
    "constantlr": "constant",
    "steplr": "step",
    "multisteplr": "multistep",
    "cosineannealinglr": "cosine",
    "cosineannealing": "cosine",
}


def _resolve_type(name: str) -> str:
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in SCHEDULES:
        valid = sorted(SCHEDULES) + ["StepLR", "MultiStepLR", "CosineAnnealingLR"]
        raise ValueError(f"unknown scheduler type {name!r}; valid: {', '.join(valid)}")
    return key


def schedule_problems(spec: dict) -> list[str]:
    """Every problem with a scheduler spec, one string each (empty list = valid)."""
    if spec is not None and not isinstance(spec, dict):
        return [f"must be a mapping like {{type: MultiStepLR, milestones: [...]}}, got {spec!r}"]
    spec = dict(spec or {"type": "constant"})
    try:
        fn = SCHEDULES[_resolve_type(spec.pop("type", "constant"))]
    except ValueError as e:
        return [str(e)]
    spec.pop("warmup_iters", None)
    params = inspect.signature(fn).parameters
    fixed = {"it", "base_lr", "total_iters"}
    problems = [f"scheduler {fn.__name__} has no argument {k!r}; valid: "
                f"{', '.join(p for p in params if p not in fixed) or 'none'}, warmup_iters"
                for k in spec if k not in params or k in fixed]
    missing = [p for p, v in params.items()
               if p not in fixed and v.default is inspect.Parameter.empty and p not in spec]
    problems += [f"scheduler {fn.__name__} needs argument {p!r}" for p in missing]
    return problems


def build_schedule(spec: dict | None, base_lr: float, total_iters: int) -> Callable[[int], float]:
    """Turn ``{type: ..., **args}`` into ``lr_at(it) -> float``.

    ``warmup_iters`` is accepted by every type. Cosine's ``total_iters`` comes from the trainer.
    """
    problems = schedule_problems(spec or {})
    if problems:
        raise ValueError("; ".join(problems))
    spec = dict(spec or {"type": "constant"})
    name = _resolve_type(spec.pop("type", "constant"))
    warmup = int(spec.pop("warmup_iters", 0))
    fn = SCHEDULES[name]
    if name == "cosine":
        spec["total_iters"] = total_iters
    return with_warmup(functools.partial(_call, fn, base_lr=base_lr, **spec), warmup, base_lr)


def _call(fn: Callable[..., float], it: int, **kwargs) -> float:
    """Positional ``it`` first; a module-level helper so the schedule stays picklable."""
    return fn(it, **kwargs)
