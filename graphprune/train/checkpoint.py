"""Atomic, pickle-free training checkpoints with fallback to the previous good one.

Why this shape:

* **Atomic**: a checkpoint is written to ``<path>.tmp`` in the same directory, flushed and
  ``fsync``-ed, then ``os.replace``-d onto its final name and the directory is ``fsync``-ed. A
  SIGKILL or power cut at any moment leaves either the old set of checkpoints or the new one,
  plus at worst a stale ``.tmp`` that resume deletes.
* **Numbered, keep-N**: training checkpoints are ``iter_00001000.pt``; the oldest are deleted only
  after a newer one is durably in place, so there is always a previous good checkpoint.
* **weights_only**: every load uses ``torch.load(..., weights_only=True)``: a checkpoint from a
  stranger cannot run code. So everything stored is tensors, numbers, strings, lists, dicts;
  RNG states are converted to tensors (see :func:`capture_rng`).
* **Loud and specific**: a file that fails to load or lacks the expected keys raises
  :class:`CheckpointError` with one line naming it; :func:`latest_good_checkpoint` reports that
  line, names the previous good checkpoint and falls back to it.
"""
from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import one_line
from ..files import atomic_write

__all__ = [
    "CheckpointError",
    "atomic_save",
    "load_checkpoint",
    "checkpoint_path",
    "list_checkpoints",
    "latest_good_checkpoint",
    "remove_stale_tmp",
    "prune_old_checkpoints",
    "capture_rng",
    "restore_rng",
    "REQUIRED_KEYS",
]

REQUIRED_KEYS = ("format", "iter", "model", "optimizer", "data", "rng", "hooks")
FORMAT = "graphprune.train/1"
_NAME = re.compile(r"^iter_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (corrupt, truncated, or not a training checkpoint).

    ``path`` and ``reason`` are kept as attributes so callers can re-phrase without parsing.
    """

    def __init__(self, message: str, path: Path | None = None, reason: str = ""):
        super().__init__(message)
        self.path, self.reason = path, reason


def _error(path: Path, reason: str, previous: str | None) -> CheckpointError:
    return CheckpointError(_corrupt_message(path, reason, previous), path, reason)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` so that readers only ever see a complete file."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu",
                    required: tuple[str, ...] = REQUIRED_KEYS, previous: str | None = None) -> dict:
    """Load with ``weights_only=True`` and check the keys; raise a one-line CheckpointError.

    The message names the previous good checkpoint (``previous``, or else the newest older numbered
    checkpoint in the same directory that loads) so the user knows what to fall back to.
    """
    try:
        return _load(Path(path), map_location, required)
    except CheckpointError as e:
        if previous is None:
            previous = _previous_good(Path(path), map_location, required)
        raise _error(Path(path), e.reason, previous) from None


def _load(path: Path, map_location: Any, required: tuple[str, ...]) -> dict:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ... when damaged
        raise _error(path, one_line(e, with_type=True), None) from None
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise _error(path, f"missing keys {missing}", None)
    return state


def _previous_good(path: Path, map_location: Any, required: tuple[str, ...]) -> str | None:
    """The newest numbered checkpoint older than ``path`` in its directory that loads."""
    m = _NAME.match(path.name)
    for other in list_checkpoints(path.parent):
        if m and int(_NAME.match(other.name).group(1)) >= int(m.group(1)) or other == path:
            continue
        try:
            _load(other, map_location, required)
            return str(other)
        except CheckpointError:
            continue
    return None


def _corrupt_message(path: Path, reason: str, previous: str | None) -> str:
    tail = f"the previous good one is {previous}" if previous else "there is no previous good one"
    return f"checkpoint {path} is corrupt or truncated ({reason}); {tail}"


def checkpoint_path(directory: str | os.PathLike, iteration: int) -> Path:
    """``<dir>/iter_00001000.pt``: zero-padded so names sort like iterations."""
    return Path(directory) / f"iter_{iteration:08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Numbered checkpoints in ``directory``, newest (highest iteration) first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest_good_checkpoint(directory: str | os.PathLike, *, map_location: Any = "cpu"
                           ) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads, warning once per damaged newer one; None if there is none.

    Raises CheckpointError when checkpoints exist but none of them loads.
    """
    candidates = list_checkpoints(directory)
    damaged: list[tuple[Path, CheckpointError]] = []
    for path in candidates:
        try:
            state = _load(path, map_location, REQUIRED_KEYS)
        except CheckpointError as e:
            damaged.append((path, e))
            continue
        for bad, err in damaged:
            warnings.warn(_corrupt_message(bad, err.reason, str(path)), stacklevel=2)
        return path, state
    if damaged:
        raise CheckpointError(" | ".join(str(e) for _, e in damaged))
    return None


def remove_stale_tmp(directory: str | os.PathLike) -> list[Path]:
    """Delete ``*.tmp`` files left by a write that was killed; they are never complete."""
    d = Path(directory)
    stale = sorted(d.glob("*.tmp")) if d.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def prune_old_checkpoints(directory: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest numbered checkpoints (call after a successful save)."""
    old = list_checkpoints(directory)[max(keep, 1):]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def capture_rng() -> dict:
    """Every RNG state of this process as weights_only-loadable values (tensors, numbers)."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
