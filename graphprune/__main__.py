"""``python -m graphprune <command> ...``: the ``graphprune`` command (:mod:`graphprune.cli`) without installing."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
