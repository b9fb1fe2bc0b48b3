"""``python tools/visualize.py`` = ``graphprune visualize``: draw the channel groups graphprune finds (what is coupled, what is blocked and why).

A thin wrapper for a checkout; the command and its options are in :mod:`graphprune.cli.visualize`
(``python tools/visualize.py --help``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphprune.cli.visualize import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="tools/visualize.py"))
