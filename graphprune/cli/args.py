"""What every command shares: one-line usage errors with exit code 2, shapes, devices, output files.

The contract of every ``graphprune`` command (and ``tools/*.py``): a user error prints exactly one
line ``<command>: error: <what, the value seen, the fix>`` on stderr, exits with status 2 and writes
nothing. argparse's own errors (a missing ``--model``, a bad ``--tile``) follow it too: :class:`Parser`
prints its message on one line instead of the usage block. :func:`run` turns the library's one-line
errors (:class:`UsageError`, ``CheckpointError``, ``TraceError``, missing files, ...) into that line;
anything else is a bug and keeps its traceback.

>>> parse_shape("1x3x64x64")
(1, 3, 64, 64)
>>> parse_shape("64x64")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a shape N x C x H x W like 1x3x64x64, got '64x64'
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, NoReturn

from ..errors import one_line

__all__ = ["Parser", "UsageError", "run", "parse_shape", "positive_int", "resolve_device", "refuse_existing",
           "add_model_arguments"]


class UsageError(ValueError):
    """A user error of a command: one line saying what is wrong and how to fix it."""


class Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract (``prog: error: ... (see --help)``, exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message, limit=400)} (see --help)", file=sys.stderr)
        sys.exit(2)


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``"1x3x64x64"`` -> ``(1, 3, 64, 64)`` (an argparse ``type``)."""
    try:
        shape = tuple(int(s) for s in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape N x C x H x W like 1x3x64x64, got {text!r}")
    return shape


def positive_int(text: str) -> int:
    """An argparse ``type`` for sizes and counts (``--tile 0`` is refused, not silently whole-image)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_model_arguments(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``--model`` (one, or repeatable) and ``--set``, worded the same in every command."""
    from .model import MODEL_HELP, SET_HELP

    p.add_argument("--model", required=True, action="append" if many else "store", metavar="M",
                   help=MODEL_HELP + (" (repeatable: models side by side)" if many else ""))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)


def resolve_device(text: str | None):
    """``--device``: ``cpu``, ``cuda``, ``cuda:N`` (default: cuda when available); one line when unusable."""
    import torch

    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as e:
        raise UsageError(f"--device {text}: {one_line(e)}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {text}: this machine has no CUDA device (torch.cuda.is_available() is False); "
                         "use --device cpu")
    return device


def refuse_existing(paths: Iterable[Path], overwrite: bool, flag: str = "--overwrite") -> None:
    """Refuse to replace files the user has unless they said so, before any work starts."""
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(f"{existing[0]} exists{more}; pass {flag} to replace, or choose another output")


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..loaders import CheckpointError
    from ..schema import ConfigError
    from ..trace import TraceError

    return (UsageError, CheckpointError, ConfigError, TraceError, FileNotFoundError, ImportError, ValueError)


def run(prog: str, fn: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """``fn(args)``; a user error becomes one line on stderr and exit code 2."""
    if os.getcwd() not in sys.path:  # as `python -m` does: `mynet:factory` from the folder of mynet.py
        sys.path.insert(0, os.getcwd())
    from ..schema import ConfigError

    try:
        return fn(args) or 0
    except ConfigError as e:  # a recipe's problems, each with its key path, on the one line
        print(f"{prog}: error: {e.title}: " + "; ".join(map(str, e.problems)), file=sys.stderr)
    except _user_errors() as e:
        print(f"{prog}: error: {one_line(e, limit=400)}", file=sys.stderr)
    return 2
