"""Moved to :mod:`graphprune.sr.data`; this name stays so that existing imports keep working."""
import sys

from ..sr import data as _moved
sys.modules[__name__] = _moved
