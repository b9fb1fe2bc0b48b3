"""What one training run needs (:class:`TrainConfig`), typed and checked before the first step.

A config is built from keyword arguments or from plain data (:meth:`TrainConfig.from_dict`, which
also accepts BasicSR's names: ``total_iter``, ``val_freq``, ``optim_g``, ...). Either way every
value is checked at once by :mod:`graphprune.schema` (types, ranges, the optimizer's and the
scheduler's own arguments) and a :class:`TrainConfigError` lists every problem, one per line.

>>> cfg = TrainConfig.from_dict({"total_iter": 1e3, "batch_size": 16, "out_dir": "runs/x",
...                              "optim_g": {"type": "adam", "lr": 2e-4}})
>>> cfg.total_iters, cfg.optimizer.type, cfg.scheduler.type
(1000, 'Adam', 'constant')
>>> try:
...     TrainConfig(total_iters=0, batch_size=16, out_dir="x", ema=1.5)
... except TrainConfigError as e:
...     print(e)
invalid training config:
  total_iters: 0 is out of range; expected total_iters >= 1 (iterations to run)
  ema: 1.5 is out of range; expected 0 < ema < 1 (EMA decay, or null for none)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Optional, Union

import torch
import torch.nn.functional as F

from ..schema import ConfigError, Problem, Schema, field, load, plain
from .execution import compile_problems
from .optim import Adam, Optimizer
from .schedules import ConstantLR, Scheduler

__all__ = ["TrainConfig", "TrainConfigError", "CONFIG_ALIASES", "build_loss", "loss_problems"]

_LOSS_ALIASES = {"l1": "l1", "l1loss": "l1", "mse": "mse", "l2": "mse", "mseloss": "mse",
                 "charbonnier": "charbonnier", "charbonnierloss": "charbonnier"}

#: BasicSR option names -> TrainConfig fields, so recipes keep the vocabulary SR users know.
CONFIG_ALIASES = {"total_iter": "total_iters", "val_freq": "val_every", "print_freq": "log_every",
                  "save_checkpoint_freq": "save_every", "optim_g": "optimizer", "ema_decay": "ema",
                  "manual_seed": "seed", "batch_size_per_gpu": "batch_size",
                  "num_worker_per_gpu": "num_workers", "pixel_opt": "loss"}


class TrainConfigError(ConfigError):
    """Every problem of a training config, one per line (``problems``: ``(key, message)`` pairs)."""


def loss_problems(spec: Any) -> list[str]:
    """Problems with a loss given as a name, ``{type, loss_weight, eps}``, or a callable."""
    if callable(spec):
        return []
    d = {"type": spec} if isinstance(spec, str) else dict(spec) if isinstance(spec, dict) else {}
    kind = _LOSS_ALIASES.get(str(d.pop("type", "")).lower())
    if kind is None:
        return [f"{spec!r} is not a loss; expected l1, mse, charbonnier (or L1Loss, MSELoss, "
                "CharbonnierLoss), {type: ..., loss_weight: ...} or a callable"]
    if d.pop("reduction", "mean") != "mean":
        return ["loss reduction must be 'mean'"]
    extra = set(d) - {"loss_weight", "eps"}
    return [f"unknown keys {sorted(extra)}; valid: type, loss_weight, eps"] if extra else []


@dataclass(kw_only=True)
class TrainConfig(Schema):
    """What the loop needs; built by recipes from YAML (BasicSR names accepted by :meth:`from_dict`).

    ``batch_size`` is per process. ``ema`` is a decay (e.g. 0.999) or None. ``grad_clip`` is a max
    total gradient norm or None. ``val_every``/``log_every``/``save_every`` count iterations; the last
    iteration always evaluates, logs and saves. ``resume``: True = newest good checkpoint in
    ``out_dir/checkpoints`` (fresh start if none), a path = that checkpoint, False = never.
    ``deterministic`` turns on ``torch.use_deterministic_algorithms`` (needed for bitwise resume on GPU).
    Speed (none changes what a run means; see :mod:`.precision`, :mod:`.execution`): ``amp`` autocasts
    forward and loss to bf16 or fp16 (fp16 with a GradScaler; ``auto``: bf16 only where the hardware
    has it, fp32 elsewhere), ``channels_last`` runs model and batches in NHWC, ``compile`` is
    ``torch.compile`` of the step's model (true, false or a mode).
    """

    ALIASES: ClassVar[dict[str, str]] = CONFIG_ALIASES
    ERROR: ClassVar[type[ConfigError]] = TrainConfigError
    TITLE: ClassVar[str] = "training config"

    total_iters: int = field(doc="iterations to run", ge=1)
    batch_size: int = field(doc="samples per step and process", ge=1)
    out_dir: str = field(doc="where checkpoints and logs go")
    loss: Any = field("l1", check=loss_problems)
    optimizer: Optimizer = field(default_factory=lambda: Adam(lr=1e-4))
    scheduler: Scheduler = field(default_factory=ConstantLR)
    grad_clip: Optional[float] = field(None, doc="max total gradient norm, or null", gt=0)
    ema: Optional[float] = field(None, doc="EMA decay, or null for none", gt=0, lt=1)
    rgb_range: float = field(255.0, doc="1.0 or 255.0, as the data", gt=0)
    seed: int = field(0, ge=0)
    num_workers: int = field(0, ge=0)
    log_every: int = field(100, ge=1)
    val_every: Optional[int] = field(None, doc="iterations between evaluations, or null", ge=1)
    save_every: int = field(1000, ge=1)
    keep_checkpoints: int = field(2, ge=1)
    best_metric: str = "psnr"
    best_mode: Literal["max", "min"] = "max"
    resume: Union[bool, str] = True
    deterministic: bool = False
    device: Optional[str] = None
    shuffle: bool = True
    progress_bar: Optional[bool] = None
    amp: Literal["none", "bf16", "fp16", "auto"] = field("none", doc="mixed precision of forward and loss; "
                                                         "auto: bf16 where the device has it natively")
    channels_last: bool = False
    compile: Union[bool, str] = field(False, doc="torch.compile of the model", check=compile_problems)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from plain data, accepting BasicSR names; unknown keys are errors, not defaults."""
        value, problems = load(cls, d)
        if problems:
            raise TrainConfigError("invalid training config", problems)
        return value

    def to_dict(self) -> dict:
        """Plain data (callables become their repr) for the checkpoint and ``config.json``."""
        return plain(self)


def build_loss(spec: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(sr, hr) -> scalar``: a callable as is, else a weighted pixel loss (mean reduction)."""
    if callable(spec):
        return spec
    problems = loss_problems(spec)
    if problems:
        raise TrainConfigError("invalid loss", [Problem("loss", m) for m in problems])
    d = {"type": spec} if isinstance(spec, str) else dict(spec)
    kind = _LOSS_ALIASES[str(d["type"]).lower()]
    return functools.partial(_pixel_loss, kind=kind, weight=float(d.get("loss_weight", 1.0)),
                             eps=float(d.get("eps", 1e-3)))


def _pixel_loss(sr: torch.Tensor, hr: torch.Tensor, *, kind: str, weight: float, eps: float) -> torch.Tensor:
    if kind == "l1":
        loss = F.l1_loss(sr, hr)
    elif kind == "mse":
        loss = F.mse_loss(sr, hr)
    else:
        loss = torch.sqrt((sr - hr) ** 2 + eps * eps).mean()
    return loss if weight == 1.0 else loss * weight
