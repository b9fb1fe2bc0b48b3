"""Moved to :mod:`graphprune.sr.evaluate`; this name stays so that existing imports keep working."""
import sys

from .sr import evaluate as _moved
sys.modules[__name__] = _moved
