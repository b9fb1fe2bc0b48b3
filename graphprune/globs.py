"""Module-name globs (``ignore``, ``ratios`` keys, ``leaf_modules``) that match nothing.

A typo in a glob is silent by nature: ``ignore: ["*maen*"]`` protects nothing, so the upsampler
is pruned. The library warns (:func:`warn_unmatched`) and the compress application refuses; both
word it with :func:`unmatched_message`, which names the glob and the module names that exist.

>>> unmatched(["*mean*", "*maen*"], ["sub_mean", "head.0", "tail.0"])
['*maen*']
>>> print(unmatched_message("ignore", ["*maen*"], ["sub_mean", "head.0", "tail.0"]))
ignore: '*maen*' matches no module (did you mean '*mean*'?); modules: sub_mean, head.0, tail.0
"""
from __future__ import annotations

import fnmatch
import warnings
from typing import Iterable, Sequence

__all__ = ["unmatched", "unmatched_message", "warn_unmatched"]


def unmatched(patterns: Iterable, names: Sequence[str]) -> list[str]:
    """The string patterns that match none of ``names`` (other keys, e.g. group ids, are skipped)."""
    return [p for p in patterns if isinstance(p, str) and not any(fnmatch.fnmatchcase(n, p) for n in names)]


def unmatched_message(what: str, patterns: Sequence[str], names: Sequence[str], limit: int = 12) -> str:
    """One line: which globs of ``what`` match nothing, a likely fix, and the module names that exist."""
    bad = unmatched(patterns, names)
    close = _closest_glob(bad[0], names) if bad else None
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} modules)" if len(names) > limit else "")
    return (f"{what}: {', '.join(map(repr, bad))} match{'es' if len(bad) == 1 else ''} no module"
            + (f" (did you mean {close!r}?)" if close else "") + f"; modules: {shown}")


def warn_unmatched(what: str, patterns: Iterable, names: Sequence[str]) -> None:
    """Warn once when some of ``patterns`` match none of ``names``."""
    patterns = list(patterns)
    if unmatched(patterns, names):
        warnings.warn(unmatched_message(what, patterns, names), stacklevel=3)


def _closest_glob(glob: str, names: Sequence[str]) -> str | None:
    """``*<part>*`` for the name part closest to the glob's letters (``*maen*`` -> ``*mean*``)."""
    import difflib

    core = glob.strip("*?")
    parts = sorted({p for n in names for p in n.replace(".", "_").split("_") if p and not p.isdigit()})
    close = difflib.get_close_matches(core, parts, n=1, cutoff=0.6)
    return glob.replace(core, close[0]) if close and core else None
