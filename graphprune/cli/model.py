"""``--model``: the one model argument of every command, and what a command needs to know about the model.

One text names a model of any kind, told apart in this order:

* a file that exists: a graphprune file (``graphprune.save``: dense or pruned, rebuilt by
  :func:`graphprune.load`), else a checkpoint from the ecosystem whose architecture spandrel detects
  (:func:`graphprune.loaders.load_spandrel`; ``.pth``/``.pt``/``.ckpt``/``.safetensors``);
* a path that does not exist (it has a ``/`` or a checkpoint extension): refused, naming the path;
* otherwise a name, as a recipe's ``model.name``: an ``sr_models`` name, ``timm:NAME`` or
  ``package.module:factory`` (imported from the working directory, as ``python -m`` would). The name is
  checked by the recipe's own rules (:class:`graphprune.compress.models.NamedModel`: did-you-mean,
  arguments bound to the factory's signature) before anything is built.

``--set KEY=VALUE`` (repeatable) is a factory argument of a named model, its value read as YAML as the
recipe overrides of ``compress`` are (``--set n_feats=45``, ``--set 'window_size=8'``): in recipe terms
it is ``model.kwargs.KEY`` (zoo models take ``--set checkpoint=FILE`` for their dense weights). A file fixes
its architecture, so ``--set`` with a file is refused. A named model is initialized from seed 0, as a
recipe with ``seed: 0`` builds it, so that two commands on the same name see the same weights.

>>> m = load_model("ledsr_f256r16_x4", ["n_feats=8", "n_resblocks=1"])
>>> m.kind, m.scale, m.rgb_range, m.model.head[0].out_channels
('zoo', 4, 255.0, 8)
>>> load_model("timm:resnet18").kind
'timm'
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..compress.recipe import DEFAULT_EXAMPLE_INPUT
from ..errors import one_line
from .args import UsageError

__all__ = ["Loaded", "load_model", "parse_sets", "MODEL_HELP", "SET_HELP", "CHECKPOINT_SUFFIXES",
           "DEFAULT_INPUT"]

MODEL_HELP = ("an sr_models name, timm:NAME, package.module:factory, a graphprune .safetensors file (dense or "
              "pruned) or a checkpoint spandrel can load (.pth/.pt/.ckpt/.safetensors)")
SET_HELP = "an argument of the model's factory, value as YAML, e.g. --set n_feats=45 (repeatable; named models only)"
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
#: The example input of a model that names none: the recipes' default (one 48x48 LR patch).
DEFAULT_INPUT = DEFAULT_EXAMPLE_INPUT


@dataclass
class Loaded:
    """A model built from ``--model``, with what the commands ask about it."""

    model: nn.Module
    label: str                      # the --model text
    kind: str                       # zoo | timm | factory | file | spandrel
    spec: dict = field(default_factory=dict)  # a file's graphprune spec; the model spec otherwise
    example: tuple[int, ...] = DEFAULT_INPUT   # the analysis' example shape (a guarded graph runs only at it)

    @property
    def fixed_size(self) -> bool:
        """A pruned ``fx.GraphModule`` that checks the guards of its traced size (it may refuse others)."""
        return bool(getattr(self.model, "gp_graph_module", False))

    @property
    def scale(self) -> int | None:
        """The upscaling factor: the model's ``scale``, the run's record, spandrel's, else a shape probe."""
        for value in (getattr(self.model, "scale", None), self.spec.get("sr", {}).get("scale"),
                      _spandrel(self.spec).get("scale"), _dense_attr(self.spec, "scale")):
            if isinstance(value, int) and value >= 1:
                return value
        return _probe_scale(self.model, self.example)

    @property
    def rgb_range(self) -> float:
        """Pixel values the model expects, 0..1 or 0..255 (zoo models say; spandrel's and others' are 0..1)."""
        for value in (getattr(self.model, "rgb_range", None), self.spec.get("sr", {}).get("rgb_range"),
                      _dense_attr(self.spec, "rgb_range")):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return 1.0

    @property
    def leaf_modules(self) -> list[str]:
        return list((self.spec.get("analysis") or {}).get("leaf_modules", ()))

    def require_sr(self, scale: int | None = None) -> int:
        """The model's scale, or one line saying it is no SR model (or not one of ``scale``)."""
        found = self.scale
        if found is None:
            raise UsageError(f"--model {self.label}: not an image-to-image SR model (its output for a "
                             f"{list(self.example)} input is not an upscaled image)")
        if scale is not None and found != scale:
            raise UsageError(f"--model {self.label} is an x{found} model; use --scale {found} or an x{scale} model")
        return found


def parse_sets(items: Sequence[str]) -> dict:
    """``["n_feats=45", "act=relu"]`` -> ``{"n_feats": 45, "act": "relu"}`` (values as YAML).

    >>> parse_sets(["n_feats=45", "window_size=8", "names=[a, b]"])
    {'n_feats': 45, 'window_size': 8, 'names': ['a', 'b']}
    """
    from ..compress.overrides import parse_override

    out = {}
    for item in items:
        key = item.partition("=")[0].strip()
        if "=" not in item or not key.isidentifier():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE with an argument name of the model's factory as "
                             "KEY, e.g. --set n_feats=45")
        try:
            out[key] = parse_override(item)[1]
        except ValueError as e:
            raise UsageError(str(e)) from None
    return out


def load_model(text: str, sets: Sequence[str] = ()) -> Loaded:
    """Build the model ``--model text`` names (see the module docstring); one-line errors."""
    path = Path(text)
    if path.is_file():
        if sets:
            raise UsageError(f"--set {sets[0]}: {text} is a model file, its architecture is fixed; --set takes "
                             "the factory arguments of a named model")
        return _from_file(path, text)
    if "/" in text or os.sep in text or path.suffix.lower() in CHECKPOINT_SUFFIXES:
        raise UsageError(f"--model {text}: no such file (check the path; a name would be e.g. ledsr_f256r16_x4)")
    return _from_name(text, parse_sets(sets))


def _from_name(name: str, kwargs: dict) -> Loaded:
    from ..compress.models import NamedModel
    from ..io import build_model

    named = NamedModel(name=name, kwargs=kwargs)
    problems = named.problems()
    if problems:
        raise UsageError(f"--model {name}: {problems[0].message}")
    spec = named.spec()
    try:
        with torch.random.fork_rng(devices=[]):  # seeded like a recipe's seed 0: every command builds the same one
            torch.manual_seed(0)
            model = build_model(spec)
    except Exception as e:  # noqa: BLE001 - a user's factory may raise anything
        raise UsageError(f"--model {name} cannot be built: {one_line(e, with_type=True)}") from None
    kind = "timm" if "timm" in spec else "factory" if "factory" in spec else "zoo"
    return Loaded(model.eval(), name, kind, spec)


def _from_file(path: Path, text: str) -> Loaded:
    from ..io import load, read_spec
    from ..loaders import CheckpointError, load_spandrel

    try:
        spec = read_spec(path)
    except ValueError:  # not a graphprune file: an ecosystem checkpoint
        try:
            model = load_spandrel(path)
        except CheckpointError:
            if path.suffix.lower() in CHECKPOINT_SUFFIXES:
                raise
            raise UsageError(f"--model {text}: not a model file (a graphprune .safetensors file or a checkpoint: "
                             f"{', '.join(CHECKPOINT_SUFFIXES)}); a name would be e.g. ledsr_f256r16_x4") from None
        return Loaded(model.eval(), text, "spandrel", dict(model.gp_spec))
    try:
        model = load(path)
    except (ValueError, ImportError, CheckpointError) as e:
        raise UsageError(f"--model {text}: {one_line(e, limit=300)}") from None
    shapes = (spec.get("analysis") or {}).get("example_shapes") or [DEFAULT_INPUT]
    return Loaded(model.eval(), text, "file", spec, tuple(shapes[0]))


def _spandrel(spec: dict) -> dict:
    inner = spec.get("spandrel") or (spec.get("model") or {}).get("spandrel")
    return inner if isinstance(inner, dict) else {}


def _dense_attr(spec: dict, attr: str):
    """An attribute of the dense model a file's spec names (built on the meta device: no memory, no init)."""
    if "model" not in spec or "spandrel" in spec["model"]:
        return None
    from ..io import build_model

    try:
        with torch.device("meta"):
            return getattr(build_model(spec["model"]), attr, None)
    except Exception:  # noqa: BLE001 - only a hint; the shape probe decides
        return None


def _probe_scale(model: nn.Module, example: tuple[int, ...]) -> int | None:
    """``out / in`` of the model's output on the example (meta tensors first, then a real forward)."""
    for device in ("meta", "cpu"):
        try:
            net = copy.deepcopy(model).to(device) if device == "meta" else model
            with torch.no_grad():
                out = net(torch.zeros(example, device=device))
        except Exception:  # noqa: BLE001 - meta tensors are not supported by every forward
            continue
        out = out[0] if isinstance(out, (tuple, list)) else out
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            return None
        s = out.shape[-1] // example[-1]
        return s if s >= 1 and tuple(out.shape[-2:]) == (example[-2] * s, example[-1] * s) else None
    return None
