"""Moved to :mod:`graphprune.sr.metrics`; this name stays so that existing imports keep working."""
import sys

from ..sr import metrics as _moved
sys.modules[__name__] = _moved
