"""How graphprune words a problem for a person: one line, naming the thing, the value and the fix.

Library errors (``TraceError``, ``PruneError``, ``CheckpointError``, ``RecipeError``, ...) often
wrap an exception from torch, safetensors or YAML whose text spans many lines. :func:`one_line`
folds such a text into one line of bounded length, so the wrapper can quote it after its own
explanation; the command-line tools print exactly one line per problem.

>>> one_line(ValueError("size mismatch for head.0.weight:\\n   copying a param with shape [3]"))
'size mismatch for head.0.weight: copying a param with shape [3]'
>>> one_line(EOFError(), with_type=True)
'EOFError'
>>> one_line("x" * 300, limit=12)
'xxxxxxxxx...'
"""
from __future__ import annotations

__all__ = ["one_line"]


def one_line(error: BaseException | str, *, limit: int = 160, with_type: bool = False) -> str:
    """``error``'s text on one line, at most ``limit`` characters (``...`` marks a cut).

    ``with_type`` prefixes the exception's class name (``"EOFError: ..."``), for errors whose
    class says more than their text; an exception without text gives its class name alone.
    """
    text = " ".join(str(error).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if isinstance(error, BaseException) and (with_type or not text):
        name = type(error).__name__
        return f"{name}: {text}" if text else name
    return text
