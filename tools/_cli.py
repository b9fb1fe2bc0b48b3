"""Argument parsing shared by the thin CLIs in tools/ (model overrides and tensor shapes)."""
from __future__ import annotations

__all__ = ["parse_value", "parse_overrides", "parse_shape"]


def parse_value(text: str):
    """Typed literal for ``--set key=value``: int, float, true/false/none, else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--set expects key=value with a python identifier as key, got {item!r}")
        out[key] = parse_value(value)
    return out


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"--input expects a shape like 1x3x64x64, got {text!r}")
    return shape
