"""Moved to :mod:`graphprune.compress.plots`; this name stays so that existing imports keep working."""
import sys

from .compress import plots as _moved
sys.modules[__name__] = _moved
