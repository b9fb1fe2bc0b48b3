"""Moved to :mod:`graphprune.compress.recipe`; this name stays so that existing imports keep working."""
import sys

from .compress import recipe as _moved
sys.modules[__name__] = _moved
