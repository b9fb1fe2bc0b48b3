"""Batches copied to the device one step ahead, without moving the checkpointed data position.

Why: on a GPU the host-to-device copy of batch ``t+1`` can overlap step ``t``'s compute when it
comes from pinned memory (the trainer's loader pins on CUDA) and runs on a side CUDA stream
(BasicSR's ``CUDAPrefetcher``, NVIDIA apex's ``data_prefetcher``). The trainer wraps its
:class:`~graphprune.train.sampler.BatchStream` in a :class:`DevicePrefetcher` on CUDA; on CPU
there is nothing to overlap (workers already prefetch), so it is not used there.

Exact resume: the stream is one batch ahead of the step, so :meth:`DevicePrefetcher.state_dict`
is the stream's position *after the batch handed out last*, not after the one loaded ahead; a
resumed run loads that next batch again. Batch contents do not depend on when they were loaded
(:mod:`graphprune.train.sampler` seeds each batch by its position).

>>> from graphprune.train.sampler import BatchStream
>>> data = [{"x": torch.tensor([float(i)])} for i in range(4)]
>>> p = DevicePrefetcher(BatchStream(data, 2, shuffle=False), torch.device("cpu"))
>>> next(p)["x"].tolist(), p.state_dict(), p.stream.state_dict()
([[0.0], [1.0]], {'epoch': 0, 'consumed': 1}, {'epoch': 0, 'consumed': 2})
"""
from __future__ import annotations

import contextlib

import torch

from .sampler import BatchStream

__all__ = ["DevicePrefetcher"]


class DevicePrefetcher:
    """An iterator of batches already on ``device``; same ``state_dict``/``epoch`` as the stream."""

    def __init__(self, stream: BatchStream, device: torch.device):
        self.stream, self.device = stream, device
        self._side = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._ahead: tuple[dict, dict] | None = None  # (batch on device, stream position after it)
        self._position: dict | None = None

    @property
    def epoch(self) -> int:
        """Epoch of the batch handed out last."""
        return self._position["epoch"] if self._position is not None else self.stream.epoch

    def __iter__(self) -> "DevicePrefetcher":
        return self

    def __next__(self) -> dict:
        if self._ahead is None:
            self._ahead = self._load()
        batch, self._position = self._ahead
        if self._side is not None:  # the copy must be done before the step reads it
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(self._side)
            for v in batch.values():
                if torch.is_tensor(v):
                    v.record_stream(current)
        self._ahead = self._load()  # copied while this step computes
        return batch

    def _load(self) -> tuple[dict, dict]:
        batch = next(self.stream)
        position = self.stream.state_dict()
        with torch.cuda.stream(self._side) if self._side is not None else contextlib.nullcontext():
            moved = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        return moved, position

    def state_dict(self) -> dict:
        """The position after the batch handed out last (what a resumed run continues from)."""
        return dict(self._position) if self._position is not None else self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)
        self._ahead = self._position = None

