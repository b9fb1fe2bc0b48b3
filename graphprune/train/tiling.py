"""Moved to :mod:`graphprune.sr.tiling`; this name stays so that existing imports keep working."""
import sys

from ..sr import tiling as _moved
sys.modules[__name__] = _moved
