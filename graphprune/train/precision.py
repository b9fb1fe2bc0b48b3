"""Mixed precision for the training step: autocast around forward and loss, a GradScaler for fp16.

``amp: none | bf16 | fp16 | auto`` (:class:`~graphprune.train.config.TrainConfig`). Autocast runs the
model's convolutions and matrix products in the low precision and everything else as torch's
autocast policy says; it never changes a parameter's dtype. What stays in fp32, and why:

* **Weights, gradients, optimizer moments** ("master weights"): autocast casts per op, so an Adam
  step of ``lr·m/√v`` (~1e-4 relative to a weight) is not rounded away as it would be in bf16.
* **The loss**: the model's output is upcast before the loss (:meth:`MixedPrecision.output`); an
  L1 mean over 16×3×192×192 values in 0..255 is then not rounded to bf16's 8 significant bits.
* **The regularizers' terms** (:meth:`~graphprune.train.hooks.HookBase.extra_loss`, e.g. ASSL's
  alignment loss): the trainer calls them *outside* autocast. ASSL's soft masks are
  ``sigmoid(γ − t)`` of filter scales γ ≈ 1..2, where bf16's spacing is 2^-7 ≈ 0.008: under
  autocast its Gram product ``S Sᵀ`` would run in bf16 and quantize the alignment signal.
* **The penalties added to gradients** (``after_backward``: ``p.grad += λ·p``): fp32 because
  gradients are, and under fp16 the scaler *unscales* them before ``after_backward`` runs
  (:meth:`MixedPrecision.unscale`), so a hook sees the true gradient. Without that, a penalty added
  to gradients scaled by 65536 would be 65536× too weak after unscaling; gradient clipping needs
  the true norm for the same reason.
* **ASSL's weight norm** (``γ·V/‖V‖`` in :class:`graphprune.reparam.FilterScale`): its ops (a
  norm, a division, a multiply) are on no autocast low-precision list (on CUDA ``norm`` is even on
  the fp32 list), and they read fp32 parameters, so the scales γ that ASSL penalizes and prunes by
  and the reparametrized weight are computed in fp32; only the convolution that consumes the
  weight casts it (tests/test_train_speed.py guards this).

fp16 has a GradScaler (its state goes into the checkpoint: ``scale`` and growth tracker, plain
numbers); steps whose gradients overflow are skipped by the scaler and counted as iterations, as
every fp16 trainer does. bf16 has fp32's exponent range and needs no scaler. fp16 is the CUDA
path; torch also runs it on CPU (slowly), which is how its logic is tested without a GPU.

``auto`` is bf16 where the device does bf16 math in hardware (:func:`native_bf16`: CUDA GPUs from
Ampere on, x86 CPUs with AVX512-BF16 or AMX) and fp32 elsewhere. Why it exists: on a CPU without
those instructions oneDNN emulates bf16 and training gets ~9x *slower* (BENCHMARKS.md, issue 14),
so a recipe meant for any laptop (the demo) can only ask for bf16 this way.

>>> mp = MixedPrecision("bf16", torch.device("cpu"))
>>> with mp.autocast():
...     y = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
>>> y.dtype, mp.output(y).dtype, mp.scaler
(torch.bfloat16, torch.float32, None)
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

__all__ = ["AMP_MODES", "MixedPrecision", "native_bf16", "resolve_amp"]

#: ``train.amp`` choices (besides ``auto``) and the autocast dtype of each.
AMP_MODES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix math runs in hardware rather than emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":  # torch's own probes (what inductor asks); absent ones count as no
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def resolve_amp(mode: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` or ``none`` for ``device``; any other mode as given.

    >>> resolve_amp("fp16", torch.device("cpu")), resolve_amp("auto", torch.device("meta"))
    ('fp16', 'none')
    """
    if mode != "auto":
        return mode
    return "bf16" if native_bf16(device) else "none"


class MixedPrecision:
    """The step's precision policy: ``autocast()``, ``backward``, ``unscale``, ``step`` and state."""

    def __init__(self, mode: str, device: torch.device):
        if mode not in (*AMP_MODES, "auto"):
            raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, auto; got {mode!r}")
        self.requested, self.mode = mode, resolve_amp(mode, device)
        self.dtype, self.device_type = AMP_MODES[self.mode], device.type
        self.scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None

    def autocast(self) -> ContextManager:
        """Around the forward and the loss only (no-op for ``none``)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @staticmethod
    def output(y: torch.Tensor) -> torch.Tensor:
        """The model's output as the losses see it: fp32 (a no-op in fp32)."""
        return y.float() if torch.is_tensor(y) and y.is_floating_point() else y

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Make ``p.grad`` the true gradient before hooks and clipping see it (fp16 only)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; under fp16 skipped on overflow, then the scale is updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def describe(self) -> str:
        """One line for the log: what runs, and why when ``auto`` chose."""
        why = {"bf16": " (amp: auto: this device has native bf16)",
               "none": " (amp: auto: no native bf16 on this device)"}[self.mode] if self.requested == "auto" else ""
        return f"precision: {'fp32' if self.mode == 'none' else self.mode + ' autocast, fp32 weights'}{why}"

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
