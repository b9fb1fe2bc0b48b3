"""Small helpers shared by the benchmark scripts: stable threading, timing, machine info, tables.

Conventions (see BENCHMARKS.md): one thread, ``OMP_WAIT_POLICY=PASSIVE``, medians of repeats, and
every figure quoted together with its command, machine and date.
"""
from __future__ import annotations

import datetime
import gc
import os
import platform
import statistics
import sys
import time
from typing import Callable, Sequence

__all__ = ["single_thread_env", "set_single_thread", "timed", "median", "machine_info", "markdown_table"]


def single_thread_env() -> dict[str, str]:
    """Environment variables that keep OpenMP/MKL on one passive thread (set before importing torch)."""
    return {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def set_single_thread() -> None:
    """Apply :func:`single_thread_env` to this process and pin torch to one intra-op thread."""
    for k, v in single_thread_env().items():
        os.environ.setdefault(k, v)
    import torch

    torch.set_num_threads(1)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Run ``fn`` once after a garbage collection; return ``(seconds, result)``."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(xs: Sequence[float]) -> float | None:
    """Median of ``xs``, None when empty."""
    return statistics.median(xs) if xs else None


def machine_info() -> dict[str, str]:
    """nproc, CPU model (from /proc/cpuinfo), Python and torch versions, and today's date (UTC)."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "command": " ".join(["python"] + sys.argv),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; ``None`` cells print as an em dash."""
    cells = [[("—" if c is None else str(c)) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)
