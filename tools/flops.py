"""``python tools/flops.py`` = ``graphprune flops``: a model's parameters, fvcore-convention flops and the SR papers' Mult-Adds.

A thin wrapper for a checkout; the command and its options are in :mod:`graphprune.cli.flops`
(``python tools/flops.py --help``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphprune.cli.flops import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="tools/flops.py"))
