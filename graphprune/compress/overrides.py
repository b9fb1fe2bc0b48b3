"""Reading a recipe file and applying ``--set`` overrides, before any schema check.

YAML: a SafeLoader that also reads ``1e-4`` as a number (plain PyYAML reads it as a string, a
classic trap for learning rates) and rejects duplicate keys (the second would silently win).
Overrides are typed dotted assignments, the value parsed as YAML: nothing is ``exec``-ed.

>>> parse_override("prune.ratio=0.5")
(['prune', 'ratio'], 0.5)
>>> parse_override("eval.sets=[]")
(['eval', 'sets'], [])
>>> raw = {"prune": {"ratio": 0.5}, "eval": {"sets": [{"type": "demo"}]}}
>>> apply_overrides(raw, ["prune.ratio=0.25", "eval.sets.0.name=photos"])
[]
>>> raw
{'prune': {'ratio': 0.25}, 'eval': {'sets': [{'type': 'demo', 'name': 'photos'}]}}
"""
from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..errors import one_line
from ..schema import Problem, kind_of

__all__ = ["read_yaml", "parse_override", "apply_overrides", "tag_override", "yaml_load"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float and rejects duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (the second would silently win)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path) -> tuple[Any, list[Problem]]:
    """The parsed document (``{}`` when empty), or a problem saying why it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [Problem("", "cannot read the recipe: it is not UTF-8 text (a binary file?); "
                                  "a recipe is a YAML file like recipes/demo_x4_assl.yaml")]
    except OSError as e:
        return None, [Problem("", f"cannot read the recipe: {e.strerror or e}")]
    try:
        data = yaml_load(text)
    except yaml.YAMLError as e:
        return None, [Problem("", f"YAML syntax error: {one_line(e, limit=300)}")]
    return ({} if data is None else data), []


_KEY = re.compile(r"^[^\s.=]+(\.[^\s.=]+)*$")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> ``(["a", "b", "c"], value)`` with the value parsed as YAML."""
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ValueError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set prune.ratio=0.5")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ValueError(f"--set {text!r}: the value is not valid YAML ({one_line(e)}); "
                         "quote it, e.g. --set name='\"a:b\"'") from None
    return key.split("."), value


def apply_overrides(raw: Any, overrides: Sequence[str]) -> list[Problem]:
    """Apply every ``--set`` to ``raw`` in place; one problem per override that cannot apply."""
    problems = []
    for text in overrides:
        try:
            keys, value = parse_override(text)
            if not isinstance(raw, dict):
                raise ValueError(f"--set {text!r}: the recipe is not a mapping")
            _assign(raw, keys, value, text)
        except ValueError as e:
            problems.append(Problem("", str(e)))
    return problems


def _assign(raw: dict, keys: list[str], value: Any, text: str) -> None:
    node: Any = raw
    for i, k in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[_index(node, k, keys[:i], text)]
            continue
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        elif not isinstance(nxt, (dict, list)):
            raise ValueError(f"--set {text!r}: {'.'.join(keys[:i + 1])} is {kind_of(nxt)} ({nxt!r}), not a mapping")
        node = nxt
    if isinstance(node, list):
        node[_index(node, keys[-1], keys[:-1], text)] = value
    else:
        node[keys[-1]] = value


def _index(node: list, k: str, where: list[str], text: str) -> int:
    if not k.isdigit() or int(k) >= len(node):
        raise ValueError(f"--set {text!r}: {'.'.join(where) or 'recipe'} is a list of {len(node)} items; "
                         f"{k!r} is not an index of it")
    return int(k)


def tag_override(problem: Problem, overrides: Sequence[str]) -> Problem:
    """``problem`` with ``[from --set ...]`` appended when an override touched its key."""
    for text in overrides:
        k = str(text).partition("=")[0].strip()
        if problem.path and (problem.path == k or k.startswith(problem.path + ".")
                             or problem.path.startswith(k + ".")):
            return Problem(problem.path, f"{problem.message} [from --set {text}]")
    return problem
