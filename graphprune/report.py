"""Moved to :mod:`graphprune.compress.report`; this name stays so that existing imports keep working."""
import sys

from .compress import report as _moved
sys.modules[__name__] = _moved
