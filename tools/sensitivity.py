"""``python tools/sensitivity.py`` = ``graphprune sensitivity``: each group's PSNR drop when it alone is pruned (measured, cached, plotted).

A thin wrapper for a checkout; the command and its options are in :mod:`graphprune.cli.sensitivity`
(``python tools/sensitivity.py --help``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphprune.cli.sensitivity import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="tools/sensitivity.py"))
