"""How the training step runs the model: memory format (channels-last) and ``torch.compile``.

Why apart from the model: the trainer's ``module`` stays the user's own ``nn.Module``. Hooks, the
prune step, checkpoints (no ``_orig_mod.`` keys), EMA and evaluation see it unchanged; only the
callable the step runs (``Trainer.forward_fn``) is compiled. Evaluation runs the module eagerly:
validation images come in many sizes, and each new size would compile again.

* ``channels_last``: every 4-D parameter and buffer gets NHWC strides (same values, so
  ``state_dict()`` values and the surgery's slices are unchanged; saving copies them contiguous)
  and so does every 4-D batch tensor. oneDNN and cuDNN then pick NHWC kernels: on GPUs with
  tensor cores that is where fp16/bf16 convolutions are fastest. ASSL's weight-norm directions are
  parameters too, so a reparametrized model is converted whole.
* ``compile``: ``torch.compile(model, mode=...)`` of the (DDP-wrapped) model; rebuilt whenever the
  trainer gets a model (construction and ``replace_model``, i.e. after the prune step: the pruned
  network has other shapes). The first step of each compiled model pays the compilation.

>>> compile_mode(True), compile_mode(False), compile_mode("max-autotune")
('default', None, 'max-autotune')
>>> compile_problems("max_autotune")  # doctest: +ELLIPSIS
["'max_autotune' is not a torch.compile mode; expected true, false or one of ... (did you mean 'max-autotune'?)"]
>>> to_batch(torch.zeros(2, 3, 4, 4), "cpu", channels_last=True).is_contiguous(memory_format=torch.channels_last)
True
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Callable

import torch
from torch import nn

from ..schema import suggest

__all__ = ["COMPILE_MODES", "compile_mode", "compile_problems", "compiler_problem", "place", "to_batch",
           "step_callable"]

#: ``train.compile`` modes besides true (= "default") and false.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: bool | str) -> str | None:
    """The ``torch.compile`` mode of a ``train.compile`` value; None = eager."""
    if value is False:
        return None
    return "default" if value is True else value


def compile_problems(value: Any) -> list[str]:
    """Problems with a ``train.compile`` value (the schema's ``check``)."""
    if isinstance(value, bool) or value in COMPILE_MODES:
        return []
    return [f"{value!r} is not a torch.compile mode; expected true, false or one of "
            f"{', '.join(COMPILE_MODES)}{suggest(value, COMPILE_MODES)}"]


def compiler_problem(device: torch.device) -> str | None:
    """Inductor compiles C++ for the CPU: say so before training rather than mid-step."""
    if device.type != "cpu":
        return None
    found = [c for c in (os.environ.get("CXX", ""), "g++", "clang++", "c++") if c and shutil.which(c)]
    return None if found else ("torch.compile on CPU needs a C++ compiler (g++ or clang++) on PATH and none "
                               "was found; install one or set compile: false")


def place(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """``model`` on ``device``, in NHWC strides when ``channels_last`` (in place, returned)."""
    model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def to_batch(t: torch.Tensor, device: torch.device | str, channels_last: bool) -> torch.Tensor:
    """A batch tensor on ``device`` (non-blocking from pinned memory), NHWC when asked and 4-D."""
    t = t.to(device, non_blocking=True)
    return t.contiguous(memory_format=torch.channels_last) if channels_last and t.ndim == 4 else t


def step_callable(model: nn.Module, compile: bool | str) -> Callable[..., Any]:
    """What the step calls: ``model`` itself, or its ``torch.compile`` in the configured mode."""
    mode = compile_mode(compile)
    return model if mode is None else torch.compile(model, mode=mode)
