"""Measured latency of a pruned model, as a budget's cost: ``{"latency_ms": 20, "device": "cpu"}``.

Mult-Adds do not predict speed well on CPUs (oneDNN blocks channels by 8 or 16; odd widths waste the
cut), so a latency target is met by *measuring*: each candidate width is applied (a physically pruned
model; which channels go does not matter for its speed) and timed on the device, the fastest of
``repeats`` runs after a warm-up (on a shared machine other work only ever adds time, so the minimum is
the steadiest estimate of what the model itself costs; ``measure_ms(..., stat="median")`` for the typical
time). The uniform allocation bisects on it; a search takes about ``log2(N)`` candidates,
each one ``apply`` plus the timing (a whole search: 5 s for EDSR-baseline, 40 s for LEDSR-256 at a 64x96
input on a 2-core CPU; ``bench/budgets.py --latency``).
"""
from __future__ import annotations

import statistics
import time
from typing import Mapping

import torch

__all__ = ["LatencyCost", "measure_ms"]


def measure_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 5, warmup: int = 1,
               stat: str = "min") -> float:
    """Wall time of ``model(x)`` in milliseconds (inference mode): the ``min`` or ``median`` of ``repeats``."""
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t) * 1e3)
    return min(times) if stat == "min" else statistics.median(times)


class LatencyCost:
    """``cost(kept)`` = measured milliseconds of the model pruned to those widths.

    Parameters
    ----------
    graph : ChannelGraph
    model : nn.Module
        The dense model the graph analyzed.
    device : str
        Where to time (``"cpu"``, ``"cuda"``).
    input : sequence of int, optional
        The input shape to time at (default: the analysis' example input).
    repeats : int
        Timed runs per candidate (median).
    """

    def __init__(self, graph, model, device: str = "cpu", input=None, repeats: int = 5):
        self.graph, self.model, self.device, self.repeats = graph, model, torch.device(device), int(repeats)
        self.shape = tuple(input) if input is not None else tuple(graph.example_shapes[0])
        self._cache: dict[tuple, float] = {}

    def __call__(self, kept: Mapping[int, int]) -> float:
        from .plan import Plan
        from .surgery import apply

        key = tuple(sorted(kept.items()))
        if key not in self._cache:
            removed = {gid: list(range(self.graph.groups[gid].size - k)) for gid, k in kept.items()
                       if k < self.graph.groups[gid].size}
            pruned = apply(self.model, Plan(self.graph, removed)).to(self.device).eval()
            x = torch.rand(self.shape, device=self.device)
            self._cache[key] = measure_ms(pruned, x, self.repeats)
        return self._cache[key]
