"""``python tools/evaluate.py`` = ``graphprune evaluate``: models on the SR benchmarks in the papers' convention, side by side.

A thin wrapper for a checkout; the command and its options are in :mod:`graphprune.cli.evaluate`
(``python tools/evaluate.py --help``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphprune.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="tools/evaluate.py"))
