"""Moved to :mod:`graphprune.compress.pipeline`; this name stays so that existing imports keep working."""
import sys

from .compress import pipeline as _moved
sys.modules[__name__] = _moved
