"""Trainer hooks (detectron2 ``HookBase`` style) and the built-in ones.

Why hooks: the trainer knows nothing about pruning, logging formats or EMA. Everything that is not
"forward, loss, backward, step" plugs in here, and everything a hook must remember goes through its
``state_dict()``, which the checkpoint stores under the hook's unique ``name`` ("plug-in state"). That
is what makes a resumed run continue exactly, including a regularizer's growing penalty.

Call order inside one iteration (``trainer.iter`` is the 0-based index of the running step)::

    before_step -> [batch, forward, loss + sum(extra_loss)] -> backward -> after_backward
    -> [grad clip] -> before_optimizer_step -> optimizer.step -> after_optimizer_step
    -> [lr for next step] -> after_step

Hooks run in registration order: the caller's hooks first, then EMA, evaluation, logging and
checkpointing, so the checkpoint written in ``after_step`` sees every other hook's state for that
iteration. States are loaded in the same order *before* the model weights, so a pruning hook can
rebuild the smaller model (``trainer.replace_model``) before its weights are loaded.

Hook state must be plain data (tensors, numbers, strings, None, lists, tuples, dicts), because
checkpoints are loaded with ``weights_only=True``.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import atomic_save
from .distributed import all_reduce_mean, broadcast_object, is_main_process

__all__ = [
    "HookBase",
    "EMAHook",
    "EvalHook",
    "LoggerHook",
    "CheckpointHook",
    "HOOK_METHODS",
]

HOOK_METHODS = ("before_train", "before_step", "after_backward", "before_optimizer_step",
                "after_optimizer_step", "after_step", "after_train", "after_model_replaced")


class HookBase:
    """No-op base: override only what you need.

    ``self.trainer`` is set (as a weak proxy) when the hook is registered. ``name`` must be unique
    among a trainer's hooks; it keys the hook's state in the checkpoint and defaults to the class name.
    """

    name: str = ""
    trainer: Any = None

    def before_train(self) -> None:
        """Once, after resume and before the first step (open files, start timers)."""

    def before_step(self) -> None:
        """Start of every iteration, before the batch is fetched."""

    def extra_loss(self, batch: dict, output: torch.Tensor) -> torch.Tensor | None:
        """A term added to the loss before backward (e.g. an L2 penalty on filters), or None."""
        return None

    def after_backward(self) -> None:
        """Gradients are synchronized over ranks here; edit ``p.grad`` for gradient penalties."""

    def before_optimizer_step(self) -> None:
        """After gradient clipping, just before ``optimizer.step()``."""

    def after_optimizer_step(self) -> None:
        """Weights were updated (masking pruned filters, EMA updates)."""

    def after_step(self) -> None:
        """End of the iteration: evaluation, logging, checkpoints, pruning decisions."""

    def after_train(self) -> None:
        """Once at the end (also when training raised): close files."""

    def after_model_replaced(self) -> None:
        """``trainer.replace_model`` swapped the model; drop anything tied to the old parameters."""

    def state_dict(self) -> dict:
        """Everything needed to continue exactly after a resume (plain data only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict`; runs before the trainer loads model weights."""


class EMAHook(HookBase):
    """Exponential moving average of the weights, used for evaluation when enabled.

    ``ema = decay * ema + (1 - decay) * weights`` after every optimizer step; buffers are copied.
    After ``replace_model`` (pruning) the average restarts from the new weights: the old average has
    the old shapes.
    """

    name = "ema"

    def __init__(self, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay, self.model, self.updates = decay, None, 0

    def averaged_model(self) -> torch.nn.Module:
        """The EMA copy of the trainer's (unwrapped) model, created on first use."""
        if self.model is None:
            self.model = copy.deepcopy(self.trainer.module).eval().requires_grad_(False)
        return self.model

    def before_train(self) -> None:
        self.averaged_model()  # start from the initial weights (unless resume loaded an average)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        ema, live = self.averaged_model(), self.trainer.module
        for e, p in zip(ema.parameters(), live.parameters()):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(ema.buffers(), live.buffers()):
            e.copy_(b)
        self.updates += 1

    def after_model_replaced(self) -> None:
        self.model = None
        self.averaged_model()

    def state_dict(self) -> dict:
        return {"model": self.averaged_model().state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.averaged_model().load_state_dict(state["model"])
        self.updates = int(state["updates"])


class EvalHook(HookBase):
    """Every ``every`` iterations and at the last one: ``metrics = eval_fn(model)``.

    Runs on rank 0 only with the unwrapped (or EMA) model in eval mode under ``no_grad``, then
    broadcasts the metrics so every rank's hooks take the same decisions. Results land in
    ``trainer.metrics`` and ``trainer.evaluated_now`` is True for the rest of the iteration.
    """

    name = "eval"

    def __init__(self, every: int, eval_fn: Callable[[torch.nn.Module], dict]):
        self.every, self.eval_fn = every, eval_fn

    def after_step(self) -> None:
        t = self.trainer
        if not t.is_every(self.every):
            return
        metrics = self._evaluate(t.eval_model()) if is_main_process() else None
        t.metrics = dict(broadcast_object(metrics))
        t.evaluated_now = True

    def _evaluate(self, model: torch.nn.Module) -> dict:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return {k: float(v) for k, v in self.eval_fn(model).items()}
        finally:
            model.train(was_training)


def _tensorboard_writer(log_dir: Path, purge_step: int):
    """A SummaryWriter when tensorboard is installed, else None (it is an optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(str(log_dir), purge_step=purge_step)


class LoggerHook(HookBase):
    """Progress bar, ``log.jsonl``, ``metrics.csv`` and TensorBoard (rank 0 writes; all ranks reduce).

    Every ``every`` iterations (and whenever an evaluation ran) one record is written: the mean loss
    over the iterations since the last record (averaged over ranks), the learning rate, it/s, ETA,
    scalars hooks put in ``trainer.scalars``, and ``val/<metric>`` after an evaluation.
    ``metrics.csv`` is long format (``iter,name,value``) so new metric names never break it.
    The state holds the byte size of both files at checkpoint time: a resumed run truncates them
    there, so records written after the checkpoint by the killed run are not duplicated.
    The progress bar (tqdm) shows loss, PSNR, it/s and ETA; where stdout is not a terminal it is off
    and each record is also printed as one line.
    """

    name = "logger"

    def __init__(self, every: int, out_dir: str | Path, progress_bar: bool | None = None):
        self.every, self.out_dir, self.progress_bar = every, Path(out_dir), progress_bar
        self._loss_sum, self._n = 0.0, 0
        self._jsonl = self._csv = self._tb = self._bar = None
        self._sizes: dict | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def before_train(self) -> None:
        t = self.trainer
        self._t_last, self._iter_last = time.perf_counter(), t.start_iter
        if not is_main_process():
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_to_checkpoint()
        self._jsonl = open(self.out_dir / "log.jsonl", "a", encoding="utf-8")
        new_csv = not (self.out_dir / "metrics.csv").exists()
        self._csv = open(self.out_dir / "metrics.csv", "a", encoding="utf-8", newline="")
        if new_csv:
            self._csv.write("iter,name,value\n")
        self._tb = _tensorboard_writer(self.out_dir / "tb", t.start_iter)
        self._bar = self._make_bar(t.start_iter, t.cfg.total_iters)

    def _make_bar(self, start: int, total: int):
        show = sys.stdout.isatty() if self.progress_bar is None else self.progress_bar
        if not show:
            return None
        from tqdm import tqdm
        return tqdm(total=total, initial=start, dynamic_ncols=True, desc="train")

    def after_train(self) -> None:
        for f in (self._jsonl, self._csv, self._tb, self._bar):
            if f is not None:
                f.close()
        self._jsonl = self._csv = self._tb = self._bar = None

    # -- per step --------------------------------------------------------------------------
    def after_step(self) -> None:
        t = self.trainer
        self._loss_sum = self._loss_sum + t.loss  # a tensor: no device sync per step
        self._n += 1
        if self._bar is not None:
            self._bar.update(1)
        if t.is_every(self.every) or t.evaluated_now:
            self._write(self._record())

    def _record(self) -> dict:
        t = self.trainer
        loss = all_reduce_mean(torch.as_tensor(self._loss_sum / max(self._n, 1))).item()
        self._loss_sum, self._n = 0.0, 0
        now, done = time.perf_counter(), t.iter + 1
        rate = (done - self._iter_last) / max(now - self._t_last, 1e-9)
        self._t_last, self._iter_last = now, done
        rec = {"iter": done, "epoch": t.data.epoch, "loss": loss, "lr": t.current_lr,
               "it_s": rate, "eta_s": (t.cfg.total_iters - done) / max(rate, 1e-9)}
        rec.update({k: float(v) for k, v in t.scalars.items()})
        if t.evaluated_now:
            rec.update({f"val/{k}": v for k, v in t.metrics.items()})
        return rec

    def _write(self, rec: dict) -> None:
        if not is_main_process():
            return
        self._jsonl.write(json.dumps({**rec, "time": time.time()}) + "\n")
        writer = csv.writer(self._csv)
        for k, v in rec.items():
            if k != "iter":
                writer.writerow([rec["iter"], k, v])
        if self._tb is not None:
            for k, v in rec.items():
                if k != "iter":
                    self._tb.add_scalar(k, v, rec["iter"])
        self._show(rec)

    def _show(self, rec: dict) -> None:
        short = {"loss": f"{rec['loss']:.4g}", "lr": f"{rec['lr']:.2e}"}
        if "val/psnr" in rec:
            short["psnr"] = f"{rec['val/psnr']:.2f}"
        if self._bar is not None:
            self._bar.set_postfix(short, refresh=False)
            return
        eta = time.strftime("%H:%M:%S", time.gmtime(min(rec["eta_s"], 8.6e4 - 1)))
        print(f"[{rec['iter']}/{self.trainer.cfg.total_iters}] "
              + " ".join(f"{k} {v}" for k, v in short.items())
              + f" it/s {rec['it_s']:.2f} eta {eta}", flush=True)

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        for f in (self._jsonl, self._csv):
            if f is not None:
                f.flush()
        loss_sum = float(self._loss_sum) if self._n else 0.0
        return {"jsonl_bytes": self._size("log.jsonl"), "csv_bytes": self._size("metrics.csv"),
                "loss_sum": loss_sum, "n": self._n}

    def load_state_dict(self, state: dict) -> None:
        self._loss_sum, self._n = float(state["loss_sum"]), int(state["n"])  # float32-exact
        self._sizes = {"log.jsonl": state["jsonl_bytes"], "metrics.csv": state["csv_bytes"]}

    def _size(self, fname: str) -> int:
        p = self.out_dir / fname
        return p.stat().st_size if p.exists() else 0

    def _truncate_to_checkpoint(self) -> None:
        """Drop records the killed run wrote after the checkpoint we resumed from."""
        for fname, size in (self._sizes or {}).items():
            p = self.out_dir / fname
            if p.exists() and p.stat().st_size > size:
                with open(p, "r+b") as f:
                    f.truncate(size)


class CheckpointHook(HookBase):
    """Training checkpoints every ``every`` iterations and at the end; ``best.pt`` by a metric.

    ``best.pt`` holds only what is needed to use the model (weights, EMA weights, iteration and
    metric value), not the optimizer; it is written atomically by rank 0 whenever an evaluation
    improves ``metric`` (``mode`` "max" for PSNR/SSIM, "min" for losses).
    """

    name = "checkpoint"

    def __init__(self, every: int, metric: str = "psnr", mode: str = "max"):
        if mode not in ("max", "min"):
            raise ValueError(f"best checkpoint mode must be 'max' or 'min', got {mode!r}")
        self.every, self.metric, self.mode = every, metric, mode
        self.best: float | None = None
        self.best_iter: int | None = None

    def after_step(self) -> None:
        t = self.trainer
        if t.evaluated_now and self.metric in t.metrics and self._improves(t.metrics[self.metric]):
            self.best, self.best_iter = float(t.metrics[self.metric]), t.iter + 1
            self._save_best()
        if t.is_every(self.every):
            t.save_checkpoint()

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def _save_best(self) -> None:
        if not is_main_process():
            return
        t = self.trainer
        ema = t.get_hook("ema")
        state = {"iter": t.iter + 1, "metric": self.metric, "value": self.best,
                 "model": t.module.state_dict(),
                 "ema": ema.averaged_model().state_dict() if ema is not None else None}
        atomic_save(state, Path(t.cfg.out_dir) / "best.pt")

    def state_dict(self) -> dict:
        return {"best": self.best, "best_iter": self.best_iter}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_iter = state["best"], state["best_iter"]
