"""Recipes: one YAML file per experiment, validated in full before any work starts.

A recipe names the model, the data, the value range, the pruning method with its schedule, the
training stages and the evaluation (schema below; ``recipes/*.yaml`` are the examples). Loading it
checks every block at once: unknown keys (with a did-you-mean), types, ranges, choices, cross-field
rules (a regularize stage needs ASSL or SRP, the scale must match the zoo model, ...), the merged
trainer config of every stage (through :meth:`TrainConfig.from_dict`, so its rules live in one
place) and the files the recipe names. Every problem is reported in one :class:`RecipeError`, one
line each, naming the key path, the value seen and what is expected.

Overrides are typed dotted assignments (``--set prune.ratio=0.5``, ``--set eval.sets=[]``,
``--set eval.sets.0.name=Set14``): the value is parsed as YAML and the result is validated like
the file itself. Nothing is ``exec``/``eval``-ed.

YAML note: the loader also reads ``1e-4`` as a number (plain PyYAML reads it as a string, a
classic trap for learning rates); the recipes still write ``1.0e-4`` so any YAML reader agrees.
Relative paths are relative to the working directory (launch commands run from the repo root).

Example::

    >>> r = load_recipe("recipes/ledsr_x4_srp.yaml", ["prune.ratio=0.5"], check_files=False)
    >>> r.prune.ratio, r.stages.finetune.total_iter, r.regularize_iters
    (0.5, 4440000, 143170)
    >>> cfg = r.train_config("regularize", "runs/x/regularize")   # for TrainConfig.from_dict

Schema (defaults after ``=``; ``!`` = required)::

    name!  seed=0  scale! (2|3|4)  rgb_range=255 (1|255)  output_dir=runs/<name>
    model:   name! (zoo name | timm:NAME | package.module:factory)  kwargs={}  checkpoint=null
    data:    train: {type! (div2k|df2k|folder|demo), root, hr_dir, lr_dir, index_range,
                     patch_size=48, batch_size=16, repeat=null, num_workers=4, cache=true}
             val: [eval set, ...]
    eval:    sets: [{type! (benchmark|demo|folder|div2k), root, name, hr_dir, lr_dir, index_range}]
             metrics=[psnr, ssim]  crop_border=null  test_y_channel=true  tile=null|{size, overlap}
    prune:   method=none (assl|srp|l1|scratch|none)  ratio=0.0  ratios={}  ignore=[]  round_to=1
             criterion=l1  example_input=null
             schedule: {delta=1e-4, every=20, ceiling=0.5, stabilize=43150}
             assl: {ssa_iters=17260, ssa_weight=1.0, coupled_selection=first}
             srp:  {coupled_selection=random}
    stages:  pretrain / finetune: {total_iter!, optim!, scheduler={type: constant}}
             regularize: {optim!, scheduler}    (its length comes from prune.schedule)
    train:   any TrainConfig key or BasicSR alias except those set above
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import inspect
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import yaml

__all__ = [
    "RecipeError", "Recipe", "ModelSpec", "DataSpec", "TrainData", "EvalSet", "EvalSpec", "Tile",
    "PruneSpec", "Schedule", "ASSLOptions", "SRPOptions", "Stage", "Stages",
    "load_recipe", "dump_recipe", "parse_override", "METHODS", "STAGE_ORDER",
]

METHODS = ("assl", "srp", "l1", "scratch", "none")
#: Order in which a pipeline runs the steps (prune and evaluate have no trainer settings).
STAGE_ORDER = ("pretrain", "regularize", "prune", "finetune", "evaluate")
BENCHMARKS = ("Set5", "Set14", "B100", "Urban100", "Manga109")


class RecipeError(ValueError):
    """Every problem of a recipe, one per line; ``problems`` holds the lines."""

    def __init__(self, path: str, problems: Sequence[str]):
        self.path, self.problems = str(path), list(problems)
        super().__init__(f"invalid recipe {self.path}:\n  " + "\n  ".join(self.problems))


def _meta(doc: str = "", **checks: Any) -> dict:
    """Field metadata: a short meaning for messages, plus ``ge``/``gt``/``lt`` bounds."""
    return {"doc": doc, **checks}


# --------------------------------------------------------------------------------------- schema
@dataclass
class ModelSpec:
    name: str = field(metadata=_meta("sr_models name, 'timm:NAME' or 'package.module:factory'"))
    kwargs: dict = field(default_factory=dict, metadata=_meta("arguments of the model factory"))
    checkpoint: Optional[str] = field(default=None, metadata=_meta("local file of dense weights"))


@dataclass
class TrainData:
    type: Literal["div2k", "df2k", "folder", "demo"]
    root: Optional[str] = None
    hr_dir: Optional[str] = None
    lr_dir: Optional[str] = None
    index_range: Optional[str] = field(default=None, metadata=_meta("1-based inclusive, e.g. '1-800'"))
    patch_size: int = field(default=48, metadata=_meta("LR patch side", ge=1))
    batch_size: int = 16
    repeat: Optional[int] = field(default=None, metadata=_meta("times each image appears per epoch", ge=1))
    num_workers: int = 4
    cache: bool = True

    def repeat_for(self, n_images: int, batches_per_epoch: int = 1000) -> int:
        """``repeat``, or the official automatic value: about ``batches_per_epoch`` batches per
        epoch (EDSR code: ``test_every * batch_size // n_images``, 16000 // 3550 = 4 -> 888 iters)."""
        if self.repeat is not None:
            return self.repeat
        return max(1, batches_per_epoch * self.batch_size // max(n_images, 1))


@dataclass
class EvalSet:
    type: Literal["benchmark", "demo", "folder", "div2k"]
    root: Optional[str] = None
    name: Optional[str] = None
    hr_dir: Optional[str] = None
    lr_dir: Optional[str] = None
    index_range: Optional[str] = None

    @property
    def label(self) -> str:
        """The name reports use: ``name``, else the type (``demo``) or the HR folder's name."""
        return self.name or (Path(self.hr_dir).name if self.hr_dir else self.type)


@dataclass
class DataSpec:
    train: Optional[TrainData] = None
    val: list[EvalSet] = field(default_factory=list)


@dataclass
class Tile:
    size: int = field(default=256, metadata=_meta("LR tile side", ge=1))
    overlap: int = field(default=32, metadata=_meta("LR pixels added around each tile", ge=0))


@dataclass
class EvalSpec:
    sets: list[EvalSet] = field(default_factory=list)
    metrics: list[Literal["psnr", "ssim"]] = field(default_factory=lambda: ["psnr", "ssim"])
    crop_border: Optional[int] = field(default=None, metadata=_meta("pixels (null = scale)", ge=0))
    test_y_channel: bool = True
    tile: Optional[Tile] = None


@dataclass
class Schedule:
    """The shared growing penalty: ``delta`` added every ``every`` iterations until max λ > ``ceiling``."""

    delta: float = field(default=1e-4, metadata=_meta("λ increment per update", gt=0))
    every: int = field(default=20, metadata=_meta("iterations between updates", ge=1))
    ceiling: float = field(default=0.5, metadata=_meta("stop growing when max λ exceeds it", gt=0))
    stabilize: int = field(default=43150, metadata=_meta("iterations with λ frozen before pruning", ge=0))

    @property
    def updates(self) -> int:
        """Updates until λ first exceeds the ceiling: the smallest k with ``k·delta > ceiling``."""
        if not (self.delta > 0 and self.ceiling >= 0):
            return 0  # invalid; reported by validation
        q = self.ceiling / self.delta
        k = round(q) if abs(q - round(q)) < 1e-6 else math.floor(q)
        return k + 1

    @property
    def growth_iters(self) -> int:
        """Iterations of the growth phase (official: 5001 updates x 20 = 100020)."""
        return self.updates * self.every


@dataclass
class ASSLOptions:
    ssa_iters: int = field(default=17260, metadata=_meta("iterations of the alignment (SSA) phase", ge=0))
    ssa_weight: float = field(default=1.0, metadata=_meta("weight of the SSA loss", ge=0))
    coupled_selection: Literal["first", "sum", "random"] = "first"


@dataclass
class SRPOptions:
    coupled_selection: Literal["random", "first", "sum"] = "random"


@dataclass
class PruneSpec:
    method: Literal["assl", "srp", "l1", "scratch", "none"] = "none"
    ratio: float = field(default=0.0, metadata=_meta("fraction removed per group", ge=0, lt=1))
    ratios: dict = field(default_factory=dict, metadata=_meta("group id or module glob -> ratio"))
    ignore: list[str] = field(default_factory=list)
    round_to: int = field(default=1, metadata=_meta("kept channels are a multiple of it", ge=1))
    criterion: Literal["l1", "l2", "random"] = "l1"
    example_input: Optional[list[int]] = None
    schedule: Schedule = field(default_factory=Schedule)
    assl: ASSLOptions = field(default_factory=ASSLOptions)
    srp: SRPOptions = field(default_factory=SRPOptions)

    @property
    def input_shape(self) -> list[int]:
        """``example_input`` or the default ``[1, 3, 48, 48]``."""
        return list(self.example_input or [1, 3, 48, 48])


@dataclass
class Stage:
    total_iter: Optional[int] = field(default=None, metadata=_meta("iterations (0 skips the stage)", ge=0))
    optim: dict = field(default=None, metadata=_meta("e.g. {type: Adam, lr: 1.0e-4}"))  # required
    scheduler: dict = field(default_factory=lambda: {"type": "constant"})


@dataclass
class Stages:
    pretrain: Optional[Stage] = None
    regularize: Optional[Stage] = None
    finetune: Optional[Stage] = None


@dataclass
class Recipe:
    """A validated recipe; build it with :func:`load_recipe`."""

    name: str = field(metadata=_meta("the run's name"))
    scale: Literal[2, 3, 4] = field(metadata=_meta("upscaling factor"))
    model: ModelSpec = field(metadata=_meta("{name: ..., kwargs: {...}, checkpoint: ...}"))
    seed: int = field(default=0, metadata=_meta(ge=0))
    rgb_range: Literal[1, 255] = 255
    output_dir: Optional[str] = None
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    prune: PruneSpec = field(default_factory=PruneSpec)
    stages: Stages = field(default_factory=Stages)
    train: dict = field(default_factory=dict, metadata=_meta("shared TrainConfig settings"))
    # not part of the schema: where it came from and what was noticed
    path: Optional[str] = field(default=None, metadata={"internal": True})
    overrides: list = field(default_factory=list, metadata={"internal": True})
    warnings: list = field(default_factory=list, metadata={"internal": True})

    @property
    def regularize_iters(self) -> int:
        """Length of the regularize stage: [ASSL: ssa_iters +] growth + stabilize (0 without one)."""
        if self.prune.method not in ("assl", "srp"):
            return 0
        s = self.prune.schedule
        ssa = self.prune.assl.ssa_iters if self.prune.method == "assl" else 0
        return ssa + s.growth_iters + s.stabilize

    def stage_iters(self, stage: str) -> int:
        """Iterations of a training stage (0 when absent)."""
        st = getattr(self.stages, stage, None) if stage in _TRAIN_STAGES else None
        if st is None:
            return 0
        return self.regularize_iters if stage == "regularize" else (st.total_iter or 0)

    def train_config(self, stage: str, out_dir: str | Path, *, total_iter: int | None = None) -> dict:
        """The dict :meth:`TrainConfig.from_dict` takes for ``stage``: the stage's optimizer,
        scheduler and length, the ``train:`` block, and data/seed/value-range settings."""
        if stage not in _TRAIN_STAGES or getattr(self.stages, stage) is None:
            present = [s for s in _TRAIN_STAGES if getattr(self.stages, s) is not None]
            raise ValueError(f"recipe {self.name!r} has no training stage {stage!r}; it has: "
                             f"{', '.join(present) or 'none'}")
        if self.data.train is None:
            raise ValueError(f"recipe {self.name!r} has no data.train for stage {stage!r}")
        return _merged_config(self, stage, str(out_dir), total_iter)

    @property
    def run_dir(self) -> str:
        return self.output_dir or f"runs/{self.name}"

    def to_dict(self) -> dict:
        """Plain data with exactly the schema's keys (for report.json and :func:`dump_recipe`)."""
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.metadata.get("internal"):
                d.pop(f.name)
        return d


_TRAIN_STAGES = ("pretrain", "regularize", "finetune")

# Keys a user might bring from BasicSR or from the command line, with the place they belong.
_KEY_HINTS = {
    "Recipe": {"network_g": "use model: {name: <sr_models name>, kwargs: {...}}",
               "datasets": "use data: {train: {...}, val: [...]}",
               "path": "use model.checkpoint for pretrained weights and output_dir for the run",
               "val": "use eval: for the final evaluation, data.val and train.val_freq during training",
               "num_gpu": "launch with torchrun; train: batch sizes are per process"},
    "Stages": {"prune": "the prune step has no trainer settings: it runs between regularize and "
                        "finetune when prune.method is not none (configure it under prune:)",
               "evaluate": "evaluation is configured under eval: (it runs when eval.sets is not empty)",
               "train": "stages are pretrain, regularize, finetune; shared trainer keys go in train:"},
}


# -------------------------------------------------------------------------- generic validation
_MISSING = object()


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return "a list"
    return type(v).__name__


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return "null or " + _describe(inner[0])
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is list:
        inner = args[0]
        if typing.get_origin(inner) is Literal:
            return f"a list of values from {', '.join(map(str, typing.get_args(inner)))}"
        return "a list of " + {int: "integers", str: "strings", float: "numbers"}.get(inner, "mappings")
    if dataclasses.is_dataclass(hint):
        return "a mapping with keys " + ", ".join(_schema_keys(hint))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a mapping"}.get(hint, str(hint))


def _schema_keys(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _suggest(word: Any, choices: Sequence[Any]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice (case-insensitive), or ``""``."""
    lower = {str(c).lower(): c for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(lower), n=1, cutoff=0.6)
    return f" (did you mean {lower[close[0]]!r}?)" if close else ""


def _convert(value: Any, hint: Any, path: str, problems: list[str]) -> Any:
    """Check ``value`` against a type hint; return the converted value or ``_MISSING``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        if value is None:
            return None
        return _convert(value, [a for a in args if a is not type(None)][0], path, problems)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, problems)
    if origin is Literal:
        for choice in args:
            if value == choice and not isinstance(value, bool) and (
                    type(value) is type(choice) or isinstance(choice, int) and isinstance(value, float)):
                return choice
        problems.append(f"{path}: {value!r} is not one of {', '.join(map(str, args))}"
                        f"{_suggest(value, args)}")
        return _MISSING
    if origin is list:
        if not isinstance(value, (list, tuple)):
            problems.append(f"{path}: {value!r} is {_kind(value)}; expected {_describe(hint)}")
            return _MISSING
        out = [_convert(v, args[0], f"{path}.{i}", problems) for i, v in enumerate(value)]
        return _MISSING if any(v is _MISSING for v in out) else out
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str),
          dict: isinstance(value, dict)}[hint]
    if not ok:
        extra = " (write numbers without quotes)" if isinstance(value, str) and hint in (int, float) \
            and re.fullmatch(r"\s*[-+]?[\d.]+(e[-+]?\d+)?\s*", value, re.I) else ""
        problems.append(f"{path}: {value!r} is {_kind(value)}; expected {_describe(hint)}{extra}")
        return _MISSING
    return float(value) if hint is float else (copy.deepcopy(value) if hint is dict else value)


def _check_range(value: Any, meta: dict, path: str, problems: list[str]) -> bool:
    """Check ``ge``/``gt``/``lt``/``le`` bounds; False (and a problem) when out of range."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True
    lo = next(((op, meta[k]) for k, op in (("ge", "<="), ("gt", "<")) if k in meta), None)
    hi = next(((op, meta[k]) for k, op in (("le", "<="), ("lt", "<")) if k in meta), None)
    if (lo is None or (value >= lo[1] if lo[0] == "<=" else value > lo[1])) and \
            (hi is None or (value <= hi[1] if hi[0] == "<=" else value < hi[1])):
        return True
    name = path.rsplit(".", 1)[-1]
    if lo and hi:
        expect = f"{lo[1]} {lo[0]} {name} {hi[0]} {hi[1]}"
    elif lo:
        expect = f"{name} {lo[0].replace('<', '>')} {lo[1]}"
    else:
        expect = f"{name} {hi[0]} {hi[1]}"
    problems.append(f"{path}: {value!r} is out of range; expected {expect}"
                    + (f" ({meta['doc']})" if meta.get("doc") else ""))
    return False


def _build(cls, data: Any, path: str, problems: list[str]):
    """Build dataclass ``cls`` from a mapping, recording every problem; returns an instance
    (bad fields fall back to their defaults so later checks do not repeat the same problem)."""
    if not isinstance(data, dict):
        problems.append(f"{path or 'recipe'}: {data!r} is {_kind(data)}; expected {_describe(cls)}")
        data = {}
    keys = _schema_keys(cls)
    hints = typing.get_type_hints(cls)
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in keys:
            hint = _KEY_HINTS.get(cls.__name__, {}).get(key)
            why = f" ({hint})" if hint else _suggest(key, keys)
            problems.append(f"{prefix}{key}: unknown key{why}; valid keys: {', '.join(keys)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        value = data.get(f.name, _MISSING)
        if value is _MISSING and not has_default:
            problems.append(f"{prefix}{f.name}: missing required key; expected {_describe(hints[f.name])}"
                            + (f" ({f.metadata['doc']})" if f.metadata.get("doc") else ""))
        if value is not _MISSING:
            value = _convert(value, hints[f.name], prefix + f.name, problems)
        if value is _MISSING:
            if has_default:
                continue
            value = None  # required and bad/missing: already reported
        else:
            _check_range(value, f.metadata, prefix + f.name, problems)  # kept: later rules guard
        kwargs[f.name] = value
    return cls(**kwargs)


# --------------------------------------------------------------------------------- YAML + --set
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
                    None, None, f"duplicate key {key!r} (the second would silently win)",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


_OVERRIDE_RE = re.compile(r"^[^\s.=]+(\.[^\s.=]+)*$")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> ``(["a", "b", "c"], value)`` with the value parsed as YAML.

    >>> parse_override("prune.ratio=0.5")
    (['prune', 'ratio'], 0.5)
    >>> parse_override("eval.sets=[]")
    (['eval', 'sets'], [])
    """
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not _OVERRIDE_RE.match(key):
        raise ValueError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set prune.ratio=0.5")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ValueError(f"--set {text!r}: the value is not valid YAML ({_one_line(e)}); "
                         "quote it, e.g. --set name='\"a:b\"'") from None
    return key.split("."), value


def _apply_override(raw: dict, keys: list[str], value: Any, text: str) -> None:
    node: Any = raw
    for i, k in enumerate(keys[:-1]):
        where = ".".join(keys[:i + 1])
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                raise ValueError(f"--set {text!r}: {'.'.join(keys[:i]) or 'recipe'} is a list of "
                                 f"{len(node)} items; {k!r} is not an index of it")
            node = node[int(k)]
            continue
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        elif not isinstance(nxt, (dict, list)):
            raise ValueError(f"--set {text!r}: {where} is {_kind(nxt)} ({nxt!r}), not a mapping")
        node = nxt
    last = keys[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ValueError(f"--set {text!r}: {'.'.join(keys[:-1])} is a list of {len(node)} "
                             f"items; {last!r} is not an index of it")
        node[int(last)] = value
    else:
        node[last] = value


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


# ----------------------------------------------------------------------------- semantic checks
_OWNED_TRAIN_KEYS = {
    "total_iters": "stages.<stage>.total_iter", "total_iter": "stages.<stage>.total_iter",
    "optimizer": "stages.<stage>.optim", "optim_g": "stages.<stage>.optim",
    "scheduler": "stages.<stage>.scheduler", "batch_size": "data.train.batch_size",
    "batch_size_per_gpu": "data.train.batch_size", "num_workers": "data.train.num_workers",
    "num_worker_per_gpu": "data.train.num_workers", "seed": "seed", "manual_seed": "seed",
    "rgb_range": "rgb_range", "out_dir": "output_dir",
}


def _train_keys() -> tuple[set, dict]:
    from ..train.trainer import CONFIG_ALIASES, TrainConfig
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return (fields | set(CONFIG_ALIASES)) - set(_OWNED_TRAIN_KEYS), CONFIG_ALIASES


def _check_train_block(r: Recipe, problems: list[str]) -> None:
    allowed, _ = _train_keys()
    for key in r.train:
        if key in _OWNED_TRAIN_KEYS:
            problems.append(f"train.{key}: not allowed in train: (it is set by {_OWNED_TRAIN_KEYS[key]})")
        elif key not in allowed:
            problems.append(f"train.{key}: unknown trainer key{_suggest(key, sorted(allowed))}; "
                            f"valid keys: {', '.join(sorted(allowed))}")


def _merged_config(r: Recipe, stage: str, out_dir: str, total_iter: int | None = None) -> dict:
    st = getattr(r.stages, stage)
    iters = total_iter if total_iter is not None else r.stage_iters(stage)
    d = r.data.train
    allowed, _ = _train_keys()
    return {"total_iters": iters, "batch_size": d.batch_size if d else 16,
            "num_workers": d.num_workers if d else 0, "out_dir": out_dir,
            "optimizer": copy.deepcopy(st.optim), "scheduler": copy.deepcopy(st.scheduler),
            "seed": r.seed, "rgb_range": float(r.rgb_range),
            **{k: copy.deepcopy(v) for k, v in r.train.items() if k in allowed}}


def _check_trainer(r: Recipe, problems: list[str]) -> None:
    """Validate every stage's merged config with TrainConfig itself; map its fields to recipe keys."""
    from ..train.trainer import CONFIG_ALIASES, TrainConfig, TrainConfigError
    written = {CONFIG_ALIASES.get(k, k): f"train.{k}" for k in r.train}
    for stage in _TRAIN_STAGES:
        st = getattr(r.stages, stage)
        if st is None or not isinstance(st.optim, dict):
            continue
        where = {"total_iters": f"stages.{stage}.total_iter", "optimizer": f"stages.{stage}.optim",
                 "scheduler": f"stages.{stage}.scheduler", "batch_size": "data.train.batch_size",
                 "num_workers": "data.train.num_workers", "seed": "seed", "rgb_range": "rgb_range",
                 "out_dir": "output_dir", "loss": "train.loss", **written}
        merged = _merged_config(r, stage, r.run_dir, max(r.stage_iters(stage) or 0, 1))
        try:
            TrainConfig.from_dict(merged)
        except TrainConfigError as e:  # one problem per line after the title
            for line in (x.strip() for x in str(e).splitlines()[1:]):
                head = re.split(r"[\s:]", line, maxsplit=1)[0].strip("'\"")
                line = line[len(head) + 2:] if line.startswith(head + ": ") else line
                _add(problems, f"{where.get(head, f'stages.{stage}')}: {line}")
        except Exception as e:  # noqa: BLE001 - a value of the wrong type inside TrainConfig's checks
            _add(problems, f"train: the trainer rejects these settings ({type(e).__name__}: {_one_line(e)})")
        for key in ("optim", "scheduler"):
            for k, v in (getattr(st, key) or {}).items():
                if k != "type" and isinstance(v, str) and re.fullmatch(r"[-+]?[\d.]+(e[-+]?\d+)?", v.strip(), re.I):
                    _add(problems, f"stages.{stage}.{key}.{k}: {v!r} is a string; expected a number "
                                   "(remove the quotes)")


def _add(problems: list[str], line: str) -> None:
    if line not in problems:
        problems.append(line)


def _check_model(r: Recipe, problems: list[str], warnings: list[str]) -> None:
    name, kwargs = r.model.name, r.model.kwargs
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        return
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError:
            problems.append(f"model.name: {name!r} needs timm (pip install timm)")
            return
        if not timm.is_model(name[5:]):
            problems.append(f"model.name: {name!r} is not a timm model"
                            f"{_suggest(name[5:], timm.list_models())}")
        return
    if ":" in name:
        _check_factory(name, kwargs, problems)
        return
    import sr_models
    if not sr_models.is_model(name):
        problems.append(f"model.name: {name!r} is not a registered model{_suggest(name, sr_models.list_models())}; "
                        "use sr_models.list_models(), 'timm:NAME' or 'package.module:factory'")
        return
    suffix = re.search(r"_x(\d+)$", name)
    if suffix and int(suffix.group(1)) != r.scale and r.scale is not None:
        problems.append(f"scale: {r.scale} does not match model.name {name!r} (an x{suffix.group(1)} "
                        f"model); use model.name {name[:suffix.start()]}_x{r.scale} or scale: {suffix.group(1)}")
        return
    error, scale, m_range = _zoo_facts(name, repr(sorted(kwargs.items())), kwargs)
    if error:
        problems.append(f"model.kwargs: {kwargs!r} rejected: {error}")
        return
    if scale is not None and r.scale is not None and scale != r.scale:
        problems.append(f"model.kwargs.scale: {scale!r} does not match scale: {r.scale}")
    if m_range is not None and r.rgb_range is not None and float(m_range) != float(r.rgb_range):
        problems.append(f"rgb_range: {r.rgb_range} but model {name!r} is built for rgb_range {m_range} "
                        f"(its mean shift); also set model.kwargs.rgb_range: {r.rgb_range}")


_ZOO_CACHE: dict[tuple[str, str], tuple[str | None, Any, Any]] = {}


def _zoo_facts(name: str, key: str, kwargs: dict) -> tuple[str | None, Any, Any]:
    """``(error, scale, rgb_range)`` of a zoo model built on the meta device (no memory, no init
    cost; the first call imports torch's meta kernels, ~1 s). Cached per name and arguments."""
    if (name, key) not in _ZOO_CACHE:
        import torch
        import sr_models
        try:
            with torch.device("meta"):
                m = sr_models.create_model(name, **kwargs)
            facts = (None, getattr(m, "scale", None), getattr(m, "rgb_range", None))
        except (TypeError, ValueError) as e:
            facts = (_one_line(e), None, None)
        except Exception:  # noqa: BLE001 - a model that cannot be built on meta: not checkable
            facts = (None, None, None)
        _ZOO_CACHE[(name, key)] = facts
    return _ZOO_CACHE[(name, key)]


def _check_factory(name: str, kwargs: dict, problems: list[str]) -> None:
    m = re.fullmatch(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)", name)
    if not m:
        problems.append(f"model.name: {name!r} is neither a registered name, 'timm:NAME' nor "
                        "'package.module:factory'")
        return
    try:
        fn = getattr(importlib.import_module(m.group(1)), m.group(2))
    except ImportError as e:
        problems.append(f"model.name: cannot import module {m.group(1)!r} ({_one_line(e)})")
        return
    except AttributeError:
        problems.append(f"model.name: module {m.group(1)!r} has no {m.group(2)!r}")
        return
    if not callable(fn):
        problems.append(f"model.name: {name!r} is not callable")
        return
    try:
        inspect.signature(fn).bind_partial(**kwargs)
    except TypeError as e:
        problems.append(f"model.kwargs: {kwargs!r} do not fit {name}: {_one_line(e)}")
    except ValueError:
        pass  # no signature (builtin)


def _check_prune(r: Recipe, problems: list[str], warnings: list[str]) -> None:
    p = r.prune
    for key, value in p.ratios.items():
        if isinstance(key, bool) or not (isinstance(key, str) and key or isinstance(key, int) and key >= 0):
            problems.append(f"prune.ratios: key {key!r} must be a group id (integer >= 0) or a module-name glob")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            problems.append(f"prune.ratios.{key}: {value!r} is out of range; expected 0 <= ratio < 1")
    if p.example_input is not None and (len(p.example_input) != 4 or min(p.example_input) < 1):
        problems.append(f"prune.example_input: {p.example_input!r}; expected 4 positive sizes "
                        "[N, C, H, W] such as [1, 3, 48, 48]")
    prunes = p.ratio > 0 or any(isinstance(v, (int, float)) and v > 0 for v in p.ratios.values())
    if p.method != "none" and not prunes:
        problems.append(f"prune.ratio: {p.ratio} removes nothing; prune.method {p.method} needs "
                        "0 < ratio < 1 (or a positive entry in prune.ratios)")
    if p.method == "none" and prunes:
        warnings.append(f"prune.ratio: {p.ratio} is ignored because prune.method is none")
    if p.method in ("assl", "srp") and r.rgb_range == 1:
        warnings.append("rgb_range: 1 with the papers' penalty constants: they are relative to an L1 "
                        "loss on 0..255, so the penalty is ~255x stronger here (reference §6)")


def _check_stages(r: Recipe, problems: list[str], warnings: list[str]) -> None:
    s, method = r.stages, r.prune.method
    if any(p.startswith("prune.method:") for p in problems):
        return  # every rule below depends on the method
    for name in _TRAIN_STAGES:
        st = getattr(s, name)
        if st is None:
            continue
        if st.optim is None:
            problems.append(f"stages.{name}.optim: missing required key; expected a mapping like "
                            f"{{type: Adam, lr: {'2.0e-4' if name == 'regularize' else '1.0e-4'}}}")
        if name == "regularize" and st.total_iter is not None:
            problems.append(f"stages.regularize.total_iter: {st.total_iter!r} is not allowed; the "
                            f"regularize stage's length comes from prune.schedule "
                            f"({r.regularize_iters} iterations here); remove it")
        if name != "regularize" and st.total_iter is None:
            problems.append(f"stages.{name}.total_iter: missing required key; expected an integer "
                            ">= 0 (iterations; 0 skips the stage)")
    if s.regularize is not None and method not in ("assl", "srp"):
        problems.append(f"stages.regularize: prune.method {method!r} has no regularization stage "
                        "(only assl and srp grow a penalty); remove stages.regularize or set "
                        "prune.method: assl or srp")
    if s.regularize is None and method in ("assl", "srp"):
        lr = "2.0e-4" if method == "assl" else "1.0e-4"
        problems.append(f"stages.regularize: missing; prune.method {method} needs it, e.g. "
                        f"regularize: {{optim: {{type: Adam, lr: {lr}}}}} (its length comes from "
                        "prune.schedule)")
    if s.finetune is not None and method == "none":
        problems.append("stages.finetune: there is nothing to fine-tune with prune.method none; "
                        "train the dense model in stages.pretrain, or choose a prune.method")
    if method == "scratch" and not r.stage_iters("finetune"):
        problems.append("stages.finetune: prune.method scratch trains the pruned architecture from "
                        "random weights there; add stages.finetune with total_iter > 0")
    dense_trained = (r.model is not None and r.model.checkpoint is not None) or r.stage_iters("pretrain") > 0
    if method in ("assl", "srp", "l1") and not dense_trained:
        warnings.append(f"model.checkpoint: null and no stages.pretrain: prune.method {method} "
                        "will prune a randomly initialized model")
    training = [n for n in _TRAIN_STAGES if r.stage_iters(n) > 0]
    if training and r.data.train is None:
        problems.append(f"data.train: missing; stage(s) {', '.join(training)} need training data "
                        "(e.g. {type: df2k, root: datasets/DF2K} or {type: demo} for the embedded photos)")
    if not training and method == "none" and not r.eval.sets:
        warnings.append("recipe does nothing: no training stage, prune.method none and no eval.sets")


def _check_data(r: Recipe, problems: list[str], warnings: list[str]) -> None:
    from ..sr.data import parse_index_range
    t = r.data.train
    sets = [("data.train", t)] if t is not None else []
    sets += [(f"data.val.{i}", v) for i, v in enumerate(r.data.val)]
    sets += [(f"eval.sets.{i}", v) for i, v in enumerate(r.eval.sets)]
    for path, d in sets:
        if d is None or d.type is None:
            continue
        needs = {"div2k": ["root"], "df2k": ["root"], "folder": ["hr_dir"], "demo": [],
                 "benchmark": ["root", "name"]}[d.type]
        for key in needs:
            if getattr(d, key) is None:
                problems.append(f"{path}.{key}: missing; type {d.type} needs it")
        used = {"div2k": {"root", "index_range"}, "df2k": {"root", "index_range"},
                "folder": {"hr_dir", "lr_dir", "index_range"}, "demo": set(),
                "benchmark": {"root", "name"}}[d.type] | {"name"}
        for key in ("root", "hr_dir", "lr_dir", "index_range"):
            if getattr(d, key) is not None and key not in used:
                warnings.append(f"{path}.{key}: ignored for type {d.type}")
        if d.index_range is not None and "index_range" in used:
            try:
                parse_index_range(d.index_range)
            except ValueError as e:
                problems.append(f"{path}.index_range: {_one_line(e)}")
        if d.type == "benchmark" and d.name and d.name not in BENCHMARKS and _suggest(d.name, BENCHMARKS):
            warnings.append(f"{path}.name: {d.name!r} is not a standard benchmark{_suggest(d.name, BENCHMARKS)}")
    if r.eval.sets and not r.eval.metrics:
        problems.append("eval.metrics: empty; expected some of psnr, ssim")


def _missing_files(r: Recipe) -> list[str]:
    """One line per file or folder the recipe names that is not there, each with the fix."""
    out, s = [], r.scale
    if r.model is not None and r.model.checkpoint and not Path(r.model.checkpoint).expanduser().is_file():
        out.append(f"model.checkpoint: {r.model.checkpoint} does not exist (put the pretrained dense "
                   "weights there, see the recipe's header for where to get them, or use "
                   "--set model.checkpoint=null to start from random weights)")
    t = r.data.train
    demo_fix = "use --set {key}=demo for the embedded demo photos"
    if t is not None and t.type in ("div2k", "df2k") and t.root:
        out += _missing_div2k(t.root, t.type, s, "data.train",
                              demo_fix.format(key="data.train.type"))
    if t is not None and t.type == "folder":
        out += _missing_folder(t, "data.train", demo_fix.format(key="data.train.type"))
    for prefix, sets, fix in (("data.val", r.data.val, "use --set data.val=[] to train without "
                               "validation, or --set 'data.val=[{type: demo}]'"),
                              ("eval.sets", r.eval.sets, "use --set 'eval.sets=[{type: demo}]' "
                               "for the embedded demo photos")):
        for i, e in enumerate(sets):
            path = f"{prefix}.{i}"
            if e.type == "benchmark" and e.root and e.name:
                root = Path(e.root).expanduser()
                if not ((root / "benchmark" / e.name / "HR").is_dir() or (root / e.name / "HR").is_dir()):
                    state = "does not exist" if not root.is_dir() else f"has no {e.name}/HR folder"
                    out.append(f"{path}.root: {e.root} {state} (put {e.name} there: {e.name}/HR/*.png "
                               f"and optionally {e.name}/LR_bicubic/X{s}/*x{s}.png, e.g. from EDSR's "
                               f"benchmark.tar; or {fix})")
            elif e.type == "div2k" and e.root:
                root = Path(e.root).expanduser()
                if not any((root / f"DIV2K_{sp}_HR").is_dir() for sp in ("train", "valid")):
                    out.append(f"{path}.root: {e.root} has no DIV2K_train_HR or DIV2K_valid_HR folder "
                               f"(put DIV2K there, or {fix})")
            elif e.type == "folder":
                out += _missing_folder(e, path, fix)
    return out


def _missing_div2k(root: str, kind: str, s: int, path: str, fix: str) -> list[str]:
    prefix = "DF2K" if kind == "df2k" else "DIV2K"
    where = Path(root).expanduser()
    if (where / f"{prefix}_train_HR").is_dir():
        return []
    state = "does not exist" if not where.is_dir() else f"has no {prefix}_train_HR folder"
    return [f"{path}.root: {root} {state} (put {prefix} there: {prefix}_train_HR/0001.png ... and "
            f"{prefix}_train_LR_bicubic/X{s}/0001x{s}.png, or {fix})"]


def _missing_folder(d, path: str, fix: str) -> list[str]:
    out = []
    for key in ("hr_dir", "lr_dir"):
        folder = getattr(d, key)
        if folder and not Path(folder).expanduser().is_dir():
            what = "HR images" if key == "hr_dir" else "LR images named like <hr name>x<scale>.png"
            out.append(f"{path}.{key}: {folder} does not exist (put the {what} there, or {fix})")
    return out


# ------------------------------------------------------------------------------------ public API
def load_recipe(path: str | Path, overrides: Sequence[str] = (), *, check_files: bool = True) -> Recipe:
    """Read, override, validate. Raises :class:`RecipeError` listing every problem.

    Parameters
    ----------
    path : str or Path
        A YAML recipe.
    overrides : sequence of str
        ``"a.b.c=value"`` assignments; values are YAML (``0.5``, ``[]``, ``{type: demo}``, ``null``).
    check_files : bool
        Missing datasets and checkpoints are errors (default) or, for a dry run, warnings
        collected in ``recipe.warnings``.
    """
    path = str(path)
    try:
        raw = _yaml_load(Path(path).read_text())
    except OSError as e:
        raise RecipeError(path, [f"cannot read the recipe: {e.strerror or e}"]) from None
    except yaml.YAMLError as e:
        raise RecipeError(path, [f"YAML syntax error: {_one_line(e)}"]) from None
    return _validate(raw if raw is not None else {}, path, overrides, check_files)


def _validate(raw: Any, path: str, overrides: Sequence[str], check_files: bool) -> Recipe:
    problems: list[str] = []
    warnings: list[str] = []
    raw = copy.deepcopy(raw)
    for text in overrides:
        try:
            keys, value = parse_override(text)
            if not isinstance(raw, dict):
                raise ValueError(f"--set {text!r}: the recipe is not a mapping")
            _apply_override(raw, keys, value, text)
        except ValueError as e:
            problems.append(str(e))
    r = _build(Recipe, raw, "", problems)
    r.path, r.overrides, r.warnings = path, list(overrides), warnings
    if r.name is not None and not r.name.strip():
        problems.append("name: empty; expected a non-empty string naming the run")
    if r.model is not None:
        _check_model(r, problems, warnings)
    _check_train_block(r, problems)
    _check_prune(r, problems, warnings)
    _check_stages(r, problems, warnings)
    _check_data(r, problems, warnings)
    _check_trainer(r, problems)
    (problems if check_files else warnings).extend(_missing_files(r))
    problems = [_tag_override(p, overrides) for p in problems]
    if problems:
        raise RecipeError(path, problems)
    return r


def _tag_override(problem: str, overrides: Sequence[str]) -> str:
    """Append ``[from --set ...]`` to a problem about a key an override touched."""
    key = problem.split(":", 1)[0]
    for text in overrides:
        k = str(text).partition("=")[0].strip()
        if key == k or k.startswith(key + ".") or key.startswith(k + "."):
            return f"{problem} [from --set {text}]"
    return problem


def dump_recipe(recipe: Recipe, path: str | Path) -> Path:
    """Write the resolved recipe as YAML (loadable again), with its source and overrides in a header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = [f"# resolved recipe {recipe.name!r}, from {recipe.path}"]
    header += [f"#   --set {o}" for o in recipe.overrides]
    body = yaml.safe_dump(recipe.to_dict(), sort_keys=False, default_flow_style=None, width=100)
    path.write_text("\n".join(header) + "\n" + body)
    return path
