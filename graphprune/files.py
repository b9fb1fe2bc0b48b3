"""The one way graphprune writes a file: whole or not at all.

Every file a run leaves (weights, checkpoints, ``state.json``, reports, pictures, graph renders) is
written to ``<name>.tmp`` beside its target, flushed to disk, renamed over the target and the
directory entry flushed too. A crash, a SIGKILL or a full disk at any moment leaves the previous
file (or none) plus at worst a stale ``.tmp``, never a truncated file under the real name. The
temporary file is created like any other file (``0666`` less the umask, so ``0644`` usually): a
report is readable by the group, unlike ``mkstemp``'s ``0600``. One writer per path at a time
(the pipeline writes from rank 0 only).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(d / "a.txt", "hello").read_text()
'hello'
>>> atomic_write(d / "b.bin", lambda tmp: tmp.write_bytes(b"\\x00\\x01")).read_bytes()
b'\\x00\\x01'
>>> sorted(p.name for p in d.iterdir())   # no temporary file left behind
['a.txt', 'b.bin']
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Union

__all__ = ["atomic_write", "save_figure", "temp_path", "fsync_dir"]

Content = Union[str, bytes, Callable[[Path], object]]


def temp_path(path: str | os.PathLike) -> Path:
    """Where :func:`atomic_write` puts ``path``'s content before the rename (``<name>.tmp``)."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def atomic_write(path: str | os.PathLike, content: Content) -> Path:
    """Write ``content`` (text, bytes, or ``writer(tmp_path)``) to ``path`` atomically and durably.

    A ``writer`` receives the temporary path and writes it however it likes (``torch.save``,
    ``safetensors.torch.save_file``, ``fig.savefig``). On any error the temporary file is removed
    and the exception propagates; the target is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        if callable(content):
            content(tmp)
        else:
            tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # some writers (safetensors) create 0600 files
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def save_figure(fig, path: str | os.PathLike, *, dpi: int, fmt: str, **savefig_kwargs) -> Path:
    """Save a matplotlib figure with :func:`atomic_write` (white background) and close it, whatever happens."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt, facecolor="white",
                                                          **savefig_kwargs))
    finally:
        plt.close(fig)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename durable: POSIX needs the directory entry flushed too (no-op where impossible)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; replace is durable enough there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
