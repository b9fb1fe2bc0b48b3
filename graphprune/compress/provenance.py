"""What a report must say so that a run can be repeated: versions, machine, command, data.

:func:`reproducibility` is the report's "reproducibility" block: graphprune's version and git
commit, torch, the device and thread count, the date, the seed, the exact command (with the
``PYTHONPATH`` it needed) and a hash of the training file list, so two reports can be compared
without opening their run folders.

>>> block = reproducibility(seed=3, command="python tools/compress.py --recipe r.yaml", device="cpu")
>>> sorted(block)
['command', 'date', 'device', 'git_commit', 'graphprune', 'python', 'seed', 'threads', 'torch', 'train_files_sha256']
>>> file_list_hash([])
'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
"""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
import shlex
import subprocess
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["reproducibility", "command_line", "file_list_hash", "git_commit"]


def git_commit() -> str | None:
    """The commit graphprune runs from (``+dirty`` with uncommitted changes), None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def command_line(argv: Sequence[str], env: Sequence[str] = ()) -> str:
    """The command as a shell would take it again: ``PYTHONPATH=... python tools/compress.py ...``."""
    return " ".join([*env, *(shlex.quote(str(a)) for a in argv)])


def file_list_hash(files: Sequence[str | os.PathLike]) -> str:
    """SHA-256 over the training files' names and sizes (a different or changed data set shows)."""
    h = hashlib.sha256()
    for f in files:
        p = Path(f)
        h.update(f"{p.name}\t{p.stat().st_size if p.exists() else -1}\n".encode())
    return h.hexdigest()


def reproducibility(*, seed: int, command: str, device: str, train_files: Sequence = ()) -> dict:
    """The report's reproducibility block (plain data)."""
    from .. import __version__

    return {"graphprune": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "device": device, "threads": torch.get_num_threads(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seed": seed, "command": command, "train_files_sha256": file_list_hash(train_files)}
