"""Ctrl-C during training: finish the running step, save a checkpoint, then stop.

A ``KeyboardInterrupt`` raised in the middle of a step (inside ``backward`` or
``optimizer.step``) would leave weights half-updated and lose everything since the last periodic
checkpoint. :class:`StopRequest` turns the first SIGINT into a request that the loop reads after
each step (all ranks agree on it under DDP); the trainer then saves a checkpoint of that step and
raises :class:`TrainingInterrupted`, which carries the checkpoint's path. A second Ctrl-C stops
at once, as usual. Outside the main thread (no signal handlers there) nothing changes.

>>> with StopRequest() as stop:
...     stop.asked()
False
"""
from __future__ import annotations

import signal
import sys
import threading

import torch

from .distributed import all_reduce_mean, get_world_size

__all__ = ["StopRequest", "TrainingInterrupted"]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C after iteration ``iteration``; ``checkpoint`` holds that state."""

    def __init__(self, checkpoint, iteration: int):
        super().__init__(f"interrupted after iteration {iteration}; checkpoint {checkpoint}")
        self.checkpoint, self.iteration = checkpoint, iteration


class StopRequest:
    """Context manager: SIGINT sets a flag instead of raising (the second SIGINT raises)."""

    def __init__(self) -> None:
        self._flag, self._previous = False, None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum, frame) -> None:
        if self._flag:
            raise KeyboardInterrupt
        self._flag = True
        print("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def asked(self, device: torch.device | str = "cpu") -> bool:
        """True when any rank was interrupted (a collective under DDP: call it on every rank)."""
        if get_world_size() == 1:
            return self._flag
        return bool(all_reduce_mean(torch.tensor(float(self._flag), device=device)).item() > 0)
