"""Typed configuration: a dataclass is the schema, and loading it collects every problem at once.

Recipes, trainer configs, optimizers, schedulers and the penalty schedule are dataclasses deriving
from :class:`Schema`. :func:`load` checks plain data (parsed YAML) against one: unknown keys (with a
did-you-mean or a hint), missing keys, types, choices and ranges, recursively. It returns the typed
value and a list of :class:`Problem` ``(key path, message)``: structured, so that a caller can
re-root, filter or reword problems without parsing text, and prints one line per problem. A
:class:`Schema` built directly (``TrainConfig(...)``) runs the same checks and raises
:class:`ConfigError` listing them.

What the loader understands, from the type hints:

* ``bool``, ``int`` (an integral float such as YAML's ``1e3`` is accepted as ``1000``), ``float``
  (integers accepted), ``str``, ``Any``, ``Literal[...]``, ``Optional[X]``, unions of these;
* ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``dict[K, V]``;
* nested schemas, and *variants*: ``Annotated[Union[A, B], Variants("type")]`` picks the class
  whose ``type`` literal holds the value of key ``type``; ``Variants(None)`` picks the class whose
  first field is a key of the mapping (``{name: ...}`` vs ``{spandrel: ...}``);
* field metadata from :func:`field`: ``doc`` (quoted in messages), bounds ``ge``/``gt``/``le``/``lt``
  (element-wise on sequences) and ``check`` (a function returning problem messages for the value).

Class attributes: ``KEY_HINTS`` (unknown key -> what to write instead) and ``ALIASES`` (accepted
other names, e.g. BasicSR's ``total_iter`` for ``total_iters``).

>>> from dataclasses import dataclass
>>> @dataclass(kw_only=True)
... class Patch(Schema):
...     size: int = field(48, doc="LR patch side", ge=1)
...     flips: bool = True
>>> load(Patch, {"size": 1e2})
(Patch(size=100, flips=True), [])
>>> for p in load(Patch, {"size": 0, "flip": False})[1]:
...     print(p)
flip: unknown key (did you mean 'flips'?); valid keys: size, flips
size: 0 is out of range; expected size >= 1 (LR patch side)
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Literal, NamedTuple, Sequence, Union

__all__ = ["Schema", "Problem", "ConfigError", "Variants", "field", "load", "subset", "plain", "suggest",
           "kind_of", "describe", "INVALID"]


class Problem(NamedTuple):
    """One problem: the dotted key path (``""`` for the whole document) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def under(self, prefix: str) -> "Problem":
        """The same problem seen from ``prefix`` (``"stages.pretrain"``)."""
        return Problem(join(prefix, self.path), self.message)


class ConfigError(ValueError):
    """Every problem of one configuration, one per line after ``title``; ``problems`` holds them."""

    def __init__(self, title: str, problems: Iterable[Problem]):
        self.title, self.problems = title, list(problems)
        super().__init__(f"{title}:\n  " + "\n  ".join(map(str, self.problems)))


@dataclass(frozen=True)
class Variants:
    """Marks a union of schemas as tagged: by the value of ``key``, or (``key=None``) by which
    class's first field is present. ``casefold``: the tag matches case-insensitively."""

    key: str | None
    casefold: bool = False


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


#: What :func:`load` returns for a value with problems (never a half-built object).
INVALID: Any = _Invalid()


def join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix and key != "" else f"{prefix}{key}"


def field(default: Any = dataclasses.MISSING, *, doc: str = "", ge=None, gt=None, le=None, lt=None,
          check: Callable[[Any], list[str]] | None = None, default_factory: Any = dataclasses.MISSING):
    """A dataclass field with the metadata :func:`load` reads (meaning, bounds, extra check)."""
    meta = {k: v for k, v in dict(doc=doc, ge=ge, gt=gt, le=le, lt=lt, check=check).items()
            if v is not None and v != ""}
    if isinstance(default, (list, dict, set)):
        default, default_factory = dataclasses.MISSING, (lambda v=default: type(v)(v))
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


class Schema:
    """Base of every typed configuration: construction validates and normalizes the fields."""

    KEY_HINTS: ClassVar[dict[str, str]] = {}
    ALIASES: ClassVar[dict[str, str]] = {}
    ERROR: ClassVar[type[ConfigError]] = ConfigError
    TITLE: ClassVar[str] = ""  # "training config": how errors name it (default: from the class name)

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        problems: list[Problem] = []
        kwargs = _fields(type(self), values, "", problems)
        if problems:
            raise self.ERROR(f"invalid {_title(type(self))}", problems)
        for k, v in kwargs.items():
            object.__setattr__(self, k, v)  # normalized (1e3 -> 1000, a dict -> its schema); frozen ok

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def _title(cls) -> str:
    return cls.TITLE or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", cls.__name__).lower()


def load(hint: Any, data: Any, path: str = "") -> tuple[Any, list[Problem]]:
    """Check ``data`` against ``hint`` (usually a :class:`Schema` subclass).

    Returns ``(value, problems)``; ``value`` is :data:`INVALID` when there are problems.
    """
    problems: list[Problem] = []
    value = _convert(data, hint, path, problems)
    return (INVALID if problems else value), problems


def subset(cls: type, name: str, exclude: dict[str, str]) -> type:
    """A schema with ``cls``'s fields except ``exclude`` (field -> where it is set instead).

    A key of ``exclude`` (or one of its aliases) in the data is an unknown key whose hint says
    where it belongs. Used for a recipe's ``train:`` block: the trainer's settings, minus what the
    recipe sets elsewhere.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    kept = [(f.name, hints[f.name], dataclasses.field(default=f.default, default_factory=f.default_factory,
                                                      metadata=f.metadata))
            for f in dataclasses.fields(cls) if f.name not in exclude]
    new = dataclasses.make_dataclass(name, kept, bases=(Schema,), kw_only=True)
    new.ALIASES = {a: t for a, t in cls.ALIASES.items() if t not in exclude}
    new.KEY_HINTS = {k: f"set by {exclude[t]}, not here" for k, t in
                     [(k, k) for k in exclude] + [(a, t) for a, t in cls.ALIASES.items() if t in exclude]}
    new.__module__ = cls.__module__
    return new


def plain(value: Any) -> Any:
    """Schemas as plain data (dicts, lists, numbers, strings; anything else its ``repr``): for YAML,
    JSON and comparisons.

    >>> plain({"betas": (0.9, 0.99), "fn": len})
    {'betas': [0.9, 0.99], 'fn': '<built-in function len>'}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


# ------------------------------------------------------------------------------------ wording
def kind_of(v: Any) -> str:
    """``'a string'``, ``'an integer'``, ... : how a message names what it was given."""
    for t, word in ((type(None), "null"), (bool, "a boolean"), (int, "an integer"), (float, "a number"),
                    (str, "a string"), (dict, "a mapping"), ((list, tuple), "a list")):
        if isinstance(v, t):
            return word
    return type(v).__name__


def describe(hint: Any) -> str:
    """What a message says is expected for a type hint (``'an integer'``, ``'one of a, b'``, ...)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        tag = next((a for a in args[1:] if isinstance(a, Variants)), None)
        classes = typing.get_args(args[0]) or (args[0],)
        if tag is not None and tag.key:
            kinds = [t for c in classes for t in typing.get_args(typing.get_type_hints(c)[tag.key])[:1]]
            return f"a mapping with {tag.key}: one of {', '.join(kinds)}"
        if tag is not None:
            return "a mapping with one of the keys " + ", ".join(dataclasses.fields(c)[0].name for c in classes)
        return describe(args[0])
    if origin is Union:
        inner = [describe(a) for a in args if a is not type(None)]
        return ("null or " if type(None) in args else "") + " or ".join(dict.fromkeys(inner))
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple) or origin is Sequence:
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} " + _plural(args[0])
        return "a list of " + _plural(args[0]) if args else "a list"
    if origin is dict:
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, Schema):
        return "a mapping with keys " + ", ".join(hint.keys())
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a mapping", Any: "any value"}.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "values from " + ", ".join(map(str, typing.get_args(hint)))
    return {int: "integers", str: "strings", float: "numbers", bool: "booleans"}.get(hint, "mappings")


def suggest(word: Any, choices: Sequence[Any]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice (case-insensitive), or ``""``.

    >>> suggest("methd", ["method", "ratio"])
    " (did you mean 'method'?)"
    """
    lower = {str(c).lower(): c for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(lower), n=1, cutoff=0.6)
    return f" (did you mean {lower[close[0]]!r}?)" if close else ""


# ------------------------------------------------------------------------------------ checking
_NUMBER_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*", re.I)


def _convert(value: Any, hint: Any, path: str, problems: list[Problem]) -> Any:
    """``value`` checked against ``hint`` and normalized, or INVALID (problems recorded)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is typing.Annotated:
        tag = next((a for a in args[1:] if isinstance(a, Variants)), None)
        classes = typing.get_args(args[0]) or (args[0],)  # Union[A] is A
        return _variant(value, classes, tag, path, problems) if tag else _convert(value, args[0], path, problems)
    if origin is Union:
        return _union(value, args, path, problems)
    if origin is Literal:
        return _literal(value, args, path, problems)
    if origin in (list, tuple) or origin is Sequence:
        return _sequence(value, hint, path, problems)
    if origin is dict or hint is dict:
        return _mapping(value, args, path, problems)
    if isinstance(hint, type) and issubclass(hint, Schema):
        return _schema(hint, value, path, problems)
    return _scalar(value, hint, path, problems)


def _scalar(value: Any, hint: type, path: str, problems: list[Problem]) -> Any:
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)  # YAML's 1e3, and --set total_iter=1e3
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str)}.get(hint, isinstance(value, hint) if isinstance(hint, type) else True)
    if ok:
        return float(value) if hint is float else value
    fix = " (write numbers without quotes)" if hint in (int, float) and isinstance(value, str) \
        and _NUMBER_TEXT.fullmatch(value) else ""
    problems.append(Problem(path, f"{value!r} is {kind_of(value)}; expected {describe(hint)}{fix}"))
    return INVALID


def _literal(value: Any, choices: tuple, path: str, problems: list[Problem]) -> Any:
    for choice in choices:
        if value == choice and not isinstance(value, bool) and (
                type(value) is type(choice) or isinstance(choice, int) and isinstance(value, float)):
            return choice
    problems.append(Problem(path, f"{value!r} is not one of {', '.join(map(str, choices))}"
                                  f"{suggest(value, choices)}"))
    return INVALID


def _union(value: Any, args: tuple, path: str, problems: list[Problem]) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    tried: list[list[Problem]] = []
    for a in options:
        mine: list[Problem] = []
        out = _convert(value, a, path, mine)
        if not mine:
            return out
        tried.append(mine)
    if len(options) == 1:
        problems.extend(tried[0])  # Optional[X]: X's own, more precise problems
    else:
        problems.append(Problem(path, f"{value!r} is {kind_of(value)}; expected {describe(Union[args])}"))
    return INVALID


def _sequence(value: Any, hint: Any, path: str, problems: list[Problem]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if not isinstance(value, (list, tuple)):
        problems.append(Problem(path, f"{value!r} is {kind_of(value)}; expected {describe(hint)}"))
        return INVALID
    fixed = origin is tuple and args and args[-1] is not Ellipsis
    if fixed and len(value) != len(args):
        problems.append(Problem(path, f"{list(value)!r} has {len(value)} items; expected {describe(hint)}"))
        return INVALID
    items = args if fixed else [args[0] if args else Any] * len(value)
    n = len(problems)
    out = [_convert(v, h, join(path, i), problems) for i, (v, h) in enumerate(zip(value, items))]
    return INVALID if len(problems) > n else (tuple(out) if origin is tuple else out)


def _mapping(value: Any, args: tuple, path: str, problems: list[Problem]) -> Any:
    if not isinstance(value, dict):
        problems.append(Problem(path, f"{value!r} is {kind_of(value)}; expected a mapping"))
        return INVALID
    if not args:
        return dict(value)
    n, out = len(problems), {}
    for k, v in value.items():
        key = _convert(k, args[0], join(path, k), problems)
        out[key] = _convert(v, args[1], join(path, k), problems)
    return INVALID if len(problems) > n else out


def _variant(value: Any, classes: tuple, tag: Variants, path: str, problems: list[Problem]) -> Any:
    if isinstance(value, classes):
        return value
    if not isinstance(value, dict):
        problems.append(Problem(path, f"{value!r} is {kind_of(value)}; expected a mapping"))
        return INVALID
    if tag.key is None:  # the class whose first field is present
        firsts = {dataclasses.fields(c)[0].name: c for c in classes}
        cls = next((c for k, c in firsts.items() if k in value), None)
        if cls is None:
            problems.append(Problem(path, f"needs one of the keys {', '.join(firsts)}; got "
                                          f"{', '.join(map(str, value)) or 'none'}"))
            return INVALID
        return _schema(cls, value, path, problems)
    by_tag = {c2: c for c in classes for c2 in typing.get_args(typing.get_type_hints(c)[tag.key])}
    fold = (lambda s: str(s).lower()) if tag.casefold else (lambda s: s)
    if tag.key not in value:
        problems.append(Problem(join(path, tag.key), "missing required key; expected one of "
                                                     + ", ".join(map(str, by_tag))))
        return INVALID
    match = next((t for t in by_tag if fold(t) == fold(value[tag.key])), None)
    if match is None:
        problems.append(Problem(join(path, tag.key), f"{value[tag.key]!r} is not one of "
                                f"{', '.join(map(str, by_tag))}{suggest(value[tag.key], list(by_tag))}"))
        return INVALID
    return _schema(by_tag[match], {**value, tag.key: match}, path, problems)


def _schema(cls: type, data: Any, path: str, problems: list[Problem]) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        problems.append(Problem(path, f"{data!r} is {kind_of(data)}; expected {describe(cls)}"))
        return INVALID
    n = len(problems)
    kwargs = _fields(cls, data, path, problems)
    if len(problems) > n:
        return INVALID
    return cls(**kwargs)


def _fields(cls: type, data: dict, path: str, problems: list[Problem]) -> dict:
    """The checked keyword arguments of ``cls`` from ``data`` (aliases resolved, defaults left out)."""
    keys, hints = cls.keys(), typing.get_type_hints(cls, include_extras=True)
    given: dict[str, tuple[str, Any]] = {}  # field -> (the key as written, value)
    for key, value in data.items():
        name = cls.ALIASES.get(key, key)
        if name not in keys:
            why = f" ({cls.KEY_HINTS[key]})" if key in cls.KEY_HINTS else suggest(key, keys + list(cls.ALIASES))
            problems.append(Problem(join(path, key), f"unknown key{why}; valid keys: {', '.join(keys)}"))
        elif name in given:
            problems.append(Problem(join(path, key), f"given twice (also as {given[name][0]!r})"))
        else:
            given[name] = (key, value)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in given:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                doc = f" ({f.metadata['doc']})" if f.metadata.get("doc") else ""
                problems.append(Problem(join(path, f.name), f"missing required key; expected "
                                                            f"{describe(hints[f.name])}{doc}"))
            continue
        key, raw = given[f.name]
        where = join(path, key)
        value = _convert(raw, hints[f.name], where, problems)
        if value is not INVALID and _in_range(value, f.metadata, where, problems, key):
            problems.extend(Problem(where, m) for m in f.metadata.get("check", lambda v: [])(value))
        kwargs[f.name] = value
    return kwargs


def _in_range(value: Any, meta: dict, path: str, problems: list[Problem], name: str) -> bool:
    """Check the ``ge``/``gt``/``le``/``lt`` bounds (element-wise on sequences and mapping values)."""
    if isinstance(value, (list, tuple, dict)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return all([_in_range(v, meta, join(path, i), problems, name) for i, v in items])
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True
    bounds = [(op, meta[k]) for k, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if k in meta]
    tests = {">=": value.__ge__, ">": value.__gt__, "<=": value.__le__, "<": value.__lt__}
    if all(tests[op](b) is True for op, b in bounds):
        return True
    lo = [(op, b) for op, b in bounds if op[0] == ">"]
    hi = [(op, b) for op, b in bounds if op[0] == "<"]
    if lo and hi:
        expect = f"{lo[0][1]} {lo[0][0].replace('>', '<')} {name} {hi[0][0]} {hi[0][1]}"
    else:
        expect = " and ".join(f"{name} {op} {b}" for op, b in bounds)
    doc = f" ({meta['doc']})" if meta.get("doc") else ""
    problems.append(Problem(path, f"{value!r} is out of range; expected {expect}{doc}"))
    return False
