"""``python tools/export.py`` = ``graphprune export``: ONNX with dynamic batch/height/width, checked against the model in onnxruntime.

A thin wrapper for a checkout; the command and its options are in :mod:`graphprune.cli.export`
(``python tools/export.py --help``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphprune.cli.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="tools/export.py"))
