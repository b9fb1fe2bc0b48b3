"""``python tools/upscale.py`` = ``graphprune upscale``: images in (a file, a folder or a glob), upscaled PNGs out.

A thin wrapper for a checkout; the command and its options are in :mod:`graphprune.cli.upscale`
(``python tools/upscale.py --help``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphprune.cli.upscale import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="tools/upscale.py"))
