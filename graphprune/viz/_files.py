"""Atomic file output: write to a temporary file next to the target, then rename (no partial files)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["publish", "write_atomic", "temp_next_to", "save_figure"]


def temp_next_to(path: Path, suffix: str = ".tmp") -> str:
    """A new empty temporary file in ``path``'s directory (same filesystem, so the rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return tmp


def publish(tmp: str, path: Path) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes 0600) and move it in place."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> Path:
    tmp = temp_next_to(path)
    try:
        Path(tmp).write_text(text, encoding="utf-8")
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_figure(fig, path: Path, *, dpi: int, fmt: str, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically and close it, whatever happens."""
    import matplotlib.pyplot as plt

    tmp = temp_next_to(path, f".{fmt}")
    try:
        fig.savefig(tmp, dpi=dpi, format=fmt, facecolor="white", **savefig_kwargs)
        publish(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
