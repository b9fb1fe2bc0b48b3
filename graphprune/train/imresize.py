"""Moved to :mod:`graphprune.sr.imresize`; this name stays so that existing imports keep working."""
import sys

from ..sr import imresize as _moved
sys.modules[__name__] = _moved
