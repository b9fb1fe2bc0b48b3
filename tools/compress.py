"""Compress an SR network as a recipe says: train, regularize, prune, fine-tune, evaluate, report.

    python tools/compress.py --recipe recipes/ledsr_x4_assl.yaml [--out DIR] [--set k=v ...] [--resume]
    python tools/compress.py --recipe recipes/ledsr_x4_srp.yaml --dry-run      # sizes only, no data needed
    torchrun --nproc_per_node=4 tools/compress.py --recipe ...                 # multi-GPU (DDP)

Exit codes: 0 done, 2 invalid recipe or input (one line per problem on stderr, no files), 130
interrupted (a checkpoint is saved and the resume command printed). The logic is in
:mod:`graphprune.compress.cli`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphprune.compress.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
