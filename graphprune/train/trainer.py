"""One training loop for every stage (pretrain, regularize, fine-tune), extended through hooks.

The loop is :meth:`Trainer.run_step`; everything else (evaluation, logging, checkpoints, EMA, and
the pruning regularizers that live outside this package) is a :class:`~graphprune.train.hooks.HookBase`.

Value range (``rgb_range``, 1.0 or 255.0). Datasets return images in ``[0, rgb_range]`` (see
:mod:`graphprune.sr.data`) and the model and loss see them unchanged; the trainer's ``rgb_range``
must equal the dataset's (checked when the dataset has an ``rgb_range`` attribute, and on the values
of the first batch). The official ASSL/SRP (EDSR-derived) code trains at 0..255: its L1 loss is ~255x
larger than at range 1, so a penalty strength (e.g. ASSL's ``reg`` increments) tuned at 255 is ~255x
*weaker* relative to the loss when reused at range 1. Keep the range of the paper whose constants
you reuse, and write it in the recipe.

Batch size is per process (BasicSR's ``batch_size_per_gpu``); see :mod:`graphprune.train.distributed`.

Exact resume. With ``num_workers=0`` or any number of workers, datasets whose randomness is a pure
function of ``(seed, epoch, index)``, and deterministic kernels (always on CPU; on GPU set
``deterministic=True`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8``), a run killed at any moment and
resumed ends with bitwise-identical weights to an uninterrupted one: the checkpoint holds the model,
optimizer, iteration (the learning rate is a pure function of it), every RNG state of every rank, the
data position and every hook's state.

Example::

    cfg = TrainConfig(total_iters=1000, batch_size=16, out_dir="runs/x", rgb_range=255.0,
                      optimizer={"type": "Adam", "lr": 2e-4, "betas": (0.9, 0.999)},
                      scheduler={"type": "MultiStepLR", "milestones": [500], "gamma": 0.5})
    Trainer(model, train_set, cfg, val_data=val_set).train()
"""
from __future__ import annotations

import json
import random
import shlex
import sys
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..files import atomic_write
from ..schema import Problem
from ..sr.metrics import calculate_psnr
from . import checkpoint as ckpt
from .distributed import (all_gather_object, barrier, broadcast_object, default_device, get_rank,
                          get_world_size, is_main_process, unwrap, wrap_ddp)
from .config import TrainConfig, TrainConfigError, build_loss
from .execution import compiler_problem, place, step_callable, to_batch
from .hooks import HOOK_METHODS, CheckpointHook, EMAHook, EvalHook, HookBase, LoggerHook
from .interrupt import StopRequest, TrainingInterrupted
from .optim import build_optimizer
from .precision import MixedPrecision
from .prefetch import DevicePrefetcher
from .sampler import BatchStream

__all__ = [
    "TrainConfig",
    "TrainConfigError",
    "Trainer",
    "build_optimizer",
    "build_loss",
    "psnr_eval_fn",
    "seed_everything",
]


def psnr_eval_fn(val_data, *, rgb_range: float, device: torch.device | str = "cpu"
                 ) -> Callable[[nn.Module], dict]:
    """A simple default ``eval_fn``: mean RGB PSNR over ``val_data`` (8-bit quantized, border = scale).

    ``val_data`` yields ``{"lr", "hr"}`` in ``[0, rgb_range]`` like the training data. The PSNR is
    :func:`graphprune.sr.metrics.calculate_psnr` on RGB; recipes that report paper numbers pass an
    ``eval_fn`` measuring on Y (:func:`graphprune.sr.evaluate.evaluate`, tiled inference too).
    """
    def eval_fn(model: nn.Module) -> dict:
        total = 0.0
        for i in range(len(val_data)):
            s = val_data[i]
            sr = model(s["lr"][None].to(device))[0].cpu()
            scale = s["hr"].shape[-1] // s["lr"].shape[-1]  # crop `scale` border pixels, as the papers do
            total += calculate_psnr(sr, s["hr"], scale, test_y_channel=False, rgb_range=rgb_range)
        return {"psnr": total / max(len(val_data), 1)}
    return eval_fn


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# trainer
# ---------------------------------------------------------------------------------------------
class Trainer:
    """Train ``model`` on ``train_data`` with ``cfg``; extend through ``hooks``.

    ``train_data`` is a map-style dataset of ``{"lr", "hr", "name"}`` dicts with values in
    ``[0, cfg.rgb_range]``; its randomness must be a pure function of (seed, epoch, index) and it may
    have ``set_epoch(epoch)``.
    ``eval_fn(model) -> dict`` runs every ``cfg.val_every`` iterations (default: simple PSNR on
    ``val_data``). Attributes hooks use: ``iter`` (0-based index of the running step), ``start_iter``,
    ``model`` (maybe DDP-wrapped), ``module`` (unwrapped), ``optimizer``, ``loss`` (main loss of the
    step, detached), ``scalars`` (put values to log), ``metrics`` / ``evaluated_now``, ``data``,
    ``forward_fn`` (what the step calls: ``model`` or its ``torch.compile``), ``precision``
    (:class:`~graphprune.train.precision.MixedPrecision`).

    Construction seeds python, numpy and torch with ``cfg.seed + rank`` (build the model before,
    with your own seed, if its initialization matters) and moves the model to the device.
    """

    def __init__(self, model: nn.Module, train_data, cfg: TrainConfig | dict, *, val_data=None,
                 eval_fn: Callable[[nn.Module], dict] | None = None, hooks: Iterable[HookBase] = ()):
        self.cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
        self.device = torch.device(self.cfg.device) if self.cfg.device else default_device()
        self.rank, self.world_size = get_rank(), get_world_size()
        self._set_determinism()
        self._check_compiler()
        self.precision = MixedPrecision(self.cfg.amp, self.device)
        self.model = self._place(model)
        self.optimizer = build_optimizer(self.module.parameters(), self.cfg.optimizer)
        self.lr_at = self.cfg.scheduler.lr_at(self.cfg.optimizer.lr, self.cfg.total_iters)
        self.loss_fn = build_loss(self.cfg.loss)
        self._check_dataset_range(train_data)
        self.data = BatchStream(train_data, self.cfg.batch_size, seed=self.cfg.seed,
                                shuffle=self.cfg.shuffle, rank=self.rank, world_size=self.world_size,
                                num_workers=self.cfg.num_workers, pin_memory=self.device.type == "cuda")
        if self.device.type == "cuda":  # host-to-device copies overlap the previous step
            self.data = DevicePrefetcher(self.data, self.device)
        self.iter = self.start_iter = 0
        self.loss = torch.zeros(())
        self.scalars: dict[str, float] = {}
        self.metrics: dict[str, float] = {}
        self.evaluated_now = False
        self._range_checked = False
        self.hooks: list[HookBase] = []
        self.register_hooks(list(hooks) + self._builtin_hooks(val_data, eval_fn))

    # -- setup -------------------------------------------------------------------------------
    def _set_determinism(self) -> None:
        seed_everything(self.cfg.seed + self.rank)
        if self.cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False

    def _check_compiler(self) -> None:
        problem = compiler_problem(self.device) if self.cfg.compile else None
        if problem:
            raise TrainConfigError("the training config cannot run here", [Problem("compile", problem)])

    def _place(self, model: nn.Module) -> nn.Module:
        """``model`` on the device (NHWC if configured), DDP-wrapped; ``forward_fn`` compiled from it."""
        wrapped = wrap_ddp(place(model, self.device, self.cfg.channels_last), self.device)
        self.forward_fn = step_callable(wrapped, self.cfg.compile)
        return wrapped

    def _builtin_hooks(self, val_data, eval_fn) -> list[HookBase]:
        c, out = self.cfg, []
        if c.ema is not None:
            out.append(EMAHook(c.ema))
        if c.val_every is not None and (eval_fn is not None or val_data is not None):
            fn = eval_fn or psnr_eval_fn(val_data, rgb_range=c.rgb_range, device=self.device)
            out.append(EvalHook(c.val_every, fn))
        return out + [LoggerHook(c.log_every, c.out_dir, c.progress_bar),
                      CheckpointHook(c.save_every, c.best_metric, c.best_mode)]

    def register_hooks(self, hooks: Iterable[HookBase]) -> None:
        """Append hooks (names must stay unique: they key the checkpoint's plug-in state)."""
        for h in hooks:
            h.name = h.name or type(h).__name__
            if self.get_hook(h.name) is not None:
                raise ValueError(f"two hooks are named {h.name!r}; give each hook a unique `name`")
            h.trainer = weakref.proxy(self)
            self.hooks.append(h)
        # Only hooks that override a method are called for it: no-op calls cost nothing per step.
        self._active = {m: [getattr(h, m) for h in self.hooks
                            if getattr(type(h), m) is not getattr(HookBase, m)]
                        for m in HOOK_METHODS + ("extra_loss",)}

    def get_hook(self, name: str) -> HookBase | None:
        """The registered hook called ``name``, or None."""
        return next((h for h in self.hooks if h.name == name), None)

    @property
    def module(self) -> nn.Module:
        """The user's model, without the DDP wrapper."""
        return unwrap(self.model)

    @property
    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def eval_model(self) -> nn.Module:
        """What evaluation and ``best.pt`` measure: the EMA model if enabled, else the model."""
        ema = self.get_hook("ema")
        return ema.averaged_model() if ema is not None else self.module

    def is_every(self, n: int | None) -> bool:
        """True after the step that completes a multiple of ``n`` iterations, and after the last one."""
        done = self.iter + 1
        return bool(n) and (done % n == 0 or done == self.cfg.total_iters)

    # -- the loop ----------------------------------------------------------------------------
    def train(self) -> nn.Module:
        """Resume if configured, run to ``total_iters``, return the (unwrapped) model.

        Ctrl-C finishes the running step, saves a checkpoint and raises
        :class:`~graphprune.train.interrupt.TrainingInterrupted` (a ``KeyboardInterrupt``).
        """
        self.resume()
        self._record_run()
        self._call("before_train")
        try:
            with StopRequest() as stop:
                for self.iter in range(self.start_iter, self.cfg.total_iters):
                    self.run_step()
                    if stop.asked(self.device):  # Ctrl-C: keep this step, then stop
                        raise TrainingInterrupted(self.save_checkpoint(), self.iter + 1)
        finally:
            self._call("after_train")
        return self.module

    def run_step(self) -> None:
        """One iteration; the order of the hook calls is the contract documented in hooks.py."""
        self.scalars, self.evaluated_now = {}, False
        self._call("before_step")
        self._set_lr(self.iter)
        batch = next(self.data)
        lr, hr = self._inputs(batch)
        with self.precision.autocast():  # forward and loss only; the output reaches losses in fp32
            output = self.precision.output(self.forward_fn(lr))
            loss = self.loss_fn(output, hr)
        total = loss
        for extra in self._active["extra_loss"]:  # outside autocast: regularizer terms stay fp32
            term = extra(batch, output)
            total = total if term is None else total + term
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(total)
        self.precision.unscale(self.optimizer)  # fp16: hooks and clipping see true gradients
        self._call("after_backward")
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.grad_clip)
        self._call("before_optimizer_step")
        self.precision.step(self.optimizer)
        self._call("after_optimizer_step")
        self.loss = loss.detach()
        self._call("after_step")

    def _call(self, method: str) -> None:
        for fn in self._active[method]:
            fn()

    def _set_lr(self, it: int) -> None:
        lr = self.lr_at(it)
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        lr = to_batch(batch["lr"], self.device, self.cfg.channels_last)
        hr = to_batch(batch["hr"], self.device, self.cfg.channels_last)
        if not self._range_checked:
            self._check_range(hr)
        return lr, hr

    def _check_range(self, hr: torch.Tensor) -> None:
        """Once: a 0..1 batch under rgb_range=255 (or the reverse) trains with wrong constants."""
        self._range_checked = True
        peak, r = float(hr.max()), self.cfg.rgb_range
        if peak > 1.5 * r or (r > 1.5 and peak <= 1.0):
            warnings.warn(f"first training batch peaks at {peak:.3g} but rgb_range={r:g}; datasets "
                          f"must return values in [0, rgb_range]", stacklevel=3)

    def _check_dataset_range(self, dataset) -> None:
        r = getattr(dataset, "rgb_range", None)
        if r is not None and float(r) != float(self.cfg.rgb_range):
            raise TrainConfigError("training data does not fit the config", [Problem(
                "rgb_range", f"the training data has rgb_range={r:g} but the trainer has "
                f"rgb_range={self.cfg.rgb_range:g}; set both to the same value")])

    # -- model replacement (pruning) ---------------------------------------------------------
    def replace_model(self, new_model: nn.Module) -> None:
        """Swap in a new model (e.g. physically pruned), re-wrap DDP and rebuild the optimizer.

        The learning rate stays on schedule (it is a function of the iteration); optimizer moments
        restart from zero because they belong to the old parameter shapes. Channels-last is applied
        to the new model and ``forward_fn`` compiled again. Call it on every rank with identical
        models. Hooks are told through ``after_model_replaced``.
        """
        self.model = self._place(new_model)
        self.optimizer = build_optimizer(self.module.parameters(), self.cfg.optimizer)
        self._set_lr(self.iter)
        self._call("after_model_replaced")

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.cfg.out_dir) / "checkpoints"

    def checkpoint_state(self) -> dict | None:
        """The full training state after the current step (rank 0 gets it; other ranks None).

        Every rank contributes its RNG states (a collective), so call it on all ranks.
        """
        rngs = all_gather_object(ckpt.capture_rng())
        if not is_main_process():
            return None
        hooks = {h.name: h.state_dict() for h in self.hooks}
        for name, state in hooks.items():
            _check_plain(state, f"hook {name!r} state")
        return {"format": ckpt.FORMAT, "iter": self.iter + 1, "model": self.module.state_dict(),
                "optimizer": self.optimizer.state_dict(), "lr": self.current_lr,
                "data": self.data.state_dict(), "rng": rngs, "hooks": hooks,
                "amp": self.precision.mode, "scaler": self.precision.state_dict(),
                "world_size": self.world_size, "config": self.cfg.to_dict()}

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/iter_N.pt`` atomically (rank 0), drop old ones, sync all ranks."""
        state = self.checkpoint_state()
        path = ckpt.checkpoint_path(self.checkpoint_dir, self.iter + 1)
        if state is not None:
            ckpt.atomic_save(state, path)
            ckpt.prune_old_checkpoints(self.checkpoint_dir, self.cfg.keep_checkpoints)
        barrier()
        return path

    def resume(self) -> bool:
        """Load the checkpoint ``cfg.resume`` designates; True if one was loaded.

        Rank 0 picks the file (falling back past damaged ones) and every rank loads that same file.
        Loading happens on CPU (RNG states must stay CPU tensors); weights are copied to the device.
        """
        if not self.cfg.resume:
            return False
        path, state = self._pick_checkpoint() if is_main_process() else (None, None)
        path = broadcast_object(path)
        if path is None:
            return False
        self.load_training_state(state if state is not None else ckpt.load_checkpoint(path))
        if is_main_process():
            print(f"resumed from {path} at iteration {self.start_iter}", flush=True)
        return True

    def _pick_checkpoint(self) -> tuple[str | None, dict | None]:
        if self.cfg.resume is not True:
            return str(self.cfg.resume), ckpt.load_checkpoint(self.cfg.resume)
        for d in (self.checkpoint_dir, Path(self.cfg.out_dir)):  # torn iter_N.pt / best.pt writes
            ckpt.remove_stale_tmp(d)
        found = ckpt.latest_good_checkpoint(self.checkpoint_dir)
        return (None, None) if found is None else (str(found[0]), found[1])

    def load_training_state(self, state: dict) -> None:
        """Restore hooks (first: they may replace the model), model, optimizer, data, RNG, iteration."""
        self._load_hook_states(state["hooks"])
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._load_precision(state)
        self.data.load_state_dict(state["data"])
        rngs = state["rng"]
        if len(rngs) != self.world_size:
            warnings.warn(f"checkpoint was written by {len(rngs)} processes, resuming with "
                          f"{self.world_size}: the data order differs from an uninterrupted run")
        ckpt.restore_rng(rngs[self.rank % len(rngs)])
        self.iter = self.start_iter = int(state["iter"])
        self._set_lr(min(self.start_iter, self.cfg.total_iters - 1))

    def _load_precision(self, state: dict) -> None:
        """The GradScaler's state; a warning when the checkpoint ran in another precision."""
        was = state.get("amp", "none")  # checkpoints written before train.amp existed ran in fp32
        if was != self.precision.mode:
            warnings.warn(f"checkpoint was trained with amp={was}, this run continues with amp={self.precision.mode} "
                          f"({self.precision.describe()}); the rest of the run is not the uninterrupted one")
        self.precision.load_state_dict(state.get("scaler"))

    def _load_hook_states(self, states: dict) -> None:
        unknown = sorted(set(states) - {h.name for h in self.hooks})
        if unknown:
            warnings.warn(f"checkpoint has state for hooks {unknown} that are not registered; ignored")
        for h in self.hooks:
            if h.name in states:
                h.load_state_dict(states[h.name])
            elif type(h).state_dict is not HookBase.state_dict:
                warnings.warn(f"checkpoint has no state for hook {h.name!r}; it starts fresh")

    def _record_run(self) -> None:
        """BasicSR habit: the config and the command line live next to the results."""
        if not is_main_process():
            return
        if self.cfg.amp != "none":
            print(self.precision.describe(), flush=True)
        out = Path(self.cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "config.json", json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        with open(out / "command.txt", "a", encoding="utf-8") as f:
            f.write(f"{shlex.join([sys.executable] + sys.argv)}  # start_iter={self.start_iter}\n")


_PLAIN = (torch.Tensor, int, float, bool, str, type(None))


def _check_plain(obj: Any, where: str) -> None:
    """Fail at save time, naming the key, rather than writing a checkpoint weights_only can't load."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"{where} is a {type(obj).__name__}; checkpoint state must be tensors, "
                        f"numbers, strings, None, lists or dicts (loaded with weights_only=True)")
