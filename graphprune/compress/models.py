"""The model kinds a recipe can name, and how a run builds, seeds and fills the dense model.

``model:`` is a union of kinds picked by their first key (:class:`~graphprune.schema.Variants`
with ``key=None``): today :class:`NamedModel` (``{name: ...}``: an ``sr_models`` name, ``timm:NAME``
or ``package.module:factory``). Another kind is one more class here whose first field is its key
(``{spandrel: path/to/model.pth}``) and whose :meth:`spec` is what
:func:`graphprune.io.build_model` takes, added to :data:`ModelSpec`.

Reproducibility: :func:`build_dense` seeds torch before building, so that ``seed:`` covers the
random initialization too (two runs of a recipe build the same dense weights).

>>> from graphprune.schema import load
>>> m, _ = load(ModelSpec, {"name": "ledsr_f256r16_x4", "kwargs": {"n_feats": 8}})
>>> m.spec()
{'name': 'ledsr_f256r16_x4', 'kwargs': {'n_feats': 8}}
>>> load(ModelSpec, {"name": "timm:resnet18"})[0].spec()
{'timm': 'resnet18', 'kwargs': {}}
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, Union

import torch
from torch import nn

from ..errors import one_line
from ..schema import Problem, Schema, Variants, field, suggest

__all__ = ["NamedModel", "ModelSpec", "build_dense", "read_state_dict", "load_weights", "CheckpointError",
           "import_path_note"]

_FACTORY = re.compile(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)")


class CheckpointError(ValueError):
    """A weights file that cannot be used, in one line naming the file and what to do."""


@dataclass(kw_only=True)
class NamedModel(Schema):
    """``{name, kwargs, checkpoint, leaf_modules}``: a model built by name, dense weights optional."""

    name: str = field(doc="sr_models name, 'timm:NAME' or 'package.module:factory'")
    kwargs: dict = field({}, doc="arguments of the model factory")
    checkpoint: Optional[str] = field(None, doc="local file of dense weights")
    leaf_modules: list[str] = field([], doc="module-name globs the analysis keeps opaque (untraceable code)")

    def spec(self) -> dict:
        """What :func:`graphprune.io.build_model` takes (and ``graphprune.save`` stores)."""
        if self.name.startswith("timm:"):
            return {"timm": self.name[5:], "kwargs": dict(self.kwargs)}
        key = "factory" if ":" in self.name else "name"
        return {key: self.name, "kwargs": dict(self.kwargs)}

    def problems(self, scale: int, rgb_range: int) -> list[Problem]:
        """Whether the name resolves and the arguments fit, before anything is built for real
        (paths from the recipe's top: ``model.name``, ``scale``, ...)."""
        if self.name.startswith("timm:"):
            return _timm_problems(self.name)
        if ":" in self.name:
            return _factory_problems(self.name, self.kwargs)
        return _zoo_problems(self.name, self.kwargs, scale, rgb_range)


#: ``model:`` in a recipe (one kind today; a new kind is one more class in this union).
ModelSpec = Annotated[Union[NamedModel], Variants(None)]


def _timm_problems(name: str) -> list[Problem]:
    import timm

    if timm.is_model(name[5:]):
        return []
    return [Problem("model.name", f"{name!r} is not a timm model{suggest(name[5:], timm.list_models())}")]


def _factory_problems(name: str, kwargs: dict) -> list[Problem]:
    m = _FACTORY.fullmatch(name)
    if not m:
        return [Problem("model.name", f"{name!r} is neither a registered name, 'timm:NAME' nor 'package.module:factory'")]
    try:
        fn = getattr(importlib.import_module(m.group(1)), m.group(2))
    except ImportError as e:
        return [Problem("model.name", f"cannot import module {m.group(1)!r} ({one_line(e)}); run from the folder "
                                "that holds it or add that folder to PYTHONPATH")]
    except AttributeError:
        return [Problem("model.name", f"module {m.group(1)!r} has no {m.group(2)!r}")]
    if not callable(fn):
        return [Problem("model.name", f"{name!r} is not callable")]
    try:
        inspect.signature(fn).bind_partial(**kwargs)
    except TypeError as e:
        return [Problem("model.kwargs", f"{kwargs!r} do not fit {name}: {one_line(e)}")]
    except ValueError:
        pass  # no signature (builtin)
    return []


def _zoo_problems(name: str, kwargs: dict, scale: int, rgb_range: int) -> list[Problem]:
    import sr_models

    if not sr_models.is_model(name):
        return [Problem("model.name", f"{name!r} is not a registered model{suggest(name, sr_models.list_models())}; "
                                "use sr_models.list_models(), 'timm:NAME' or 'package.module:factory'")]
    suffix = re.search(r"_x(\d+)$", name)
    if suffix and int(suffix.group(1)) != scale:
        return [Problem("scale", f"{scale} does not match model.name {name!r} (an x{suffix.group(1)} model); "
                                  f"use model.name {name[:suffix.start()]}_x{scale} or scale: {suffix.group(1)}")]
    try:
        with torch.device("meta"):  # no memory, no init cost
            m = sr_models.create_model(name, **kwargs)
    except (TypeError, ValueError) as e:
        return [Problem("model.kwargs", f"{kwargs!r} rejected: {one_line(e, limit=300)}")]
    out = []
    if getattr(m, "scale", scale) != scale:
        out.append(Problem("model.kwargs.scale", f"{m.scale!r} does not match scale: {scale}"))
    if getattr(m, "rgb_range", rgb_range) is not None and float(getattr(m, "rgb_range", rgb_range)) != float(rgb_range):
        out.append(Problem("rgb_range", f"{rgb_range} but model {name!r} is built for rgb_range {m.rgb_range} "
                                         f"(its mean shift); also set model.kwargs.rgb_range: {rgb_range}"))
    return out


def import_path_note() -> str | None:
    """``PYTHONPATH=<cwd>`` when a ``module:factory`` model needs the working directory on the path.

    Python puts the working directory on the import path for ``python -m``, not for
    ``python tools/compress.py``; the CLI adds it (as ``-m`` would) and records it in
    ``command.txt`` so the run can be repeated exactly.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return f"PYTHONPATH={cwd}"


def build_dense(model: NamedModel, seed: int, *, weights: bool = True) -> nn.Module:
    """The dense model, its random initialization drawn from ``seed``; weights loaded if named."""
    from ..io import build_model

    torch.manual_seed(seed)
    dense = build_model(model.spec())
    if weights and model.checkpoint:
        load_weights(dense, model.checkpoint)
    return dense


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A file's tensors, or a one-line :class:`CheckpointError` (truncated, pickled model, ...).

    The one place a run reads a checkpoint file; ``graphprune.loaders.read_state_dict`` replaces
    its body once the ecosystem loaders land.
    """
    from sr_models._factory import load_state_dict_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return load_state_dict_file(path)
    except Exception as e:  # noqa: BLE001 - torch, safetensors and pickle raise anything on a bad file
        raise CheckpointError(_unreadable(path, e)) from None


def _unreadable(path: Path, e: Exception) -> str:
    text = str(e)
    if "weights_only" in text or "Unsupported global" in text:
        return (f"{path} holds pickled Python objects (a whole model?), not a state dict; save "
                "model.state_dict() (or use safetensors) and point model.checkpoint at that file")
    return f"{path} cannot be read as a checkpoint (truncated or not a weights file?): {one_line(e, with_type=True)}"


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Fill ``model`` from ``path`` strictly; a mismatch is one line (counts and the first key)."""
    state = read_state_dict(path)
    if _is_pruned_file(path):
        raise CheckpointError(f"{path} is a pruned graphprune model; model.checkpoint takes dense weights "
                              "(load a pruned model with graphprune.load)")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        first = (f"{shapes[0]} is {list(state[shapes[0]].shape)} in the file, {list(own[shapes[0]].shape)} in "
                 "the model" if shapes else f"e.g. {(missing or unexpected)[0]!r}")
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: {len(shapes)} tensors differ in shape, "
                              f"{len(missing)} missing, {len(unexpected)} unexpected ({first}); check model.name "
                              "and model.kwargs against the model that wrote it")
    model.load_state_dict(state)
    return model


def _is_pruned_file(path: str | os.PathLike) -> bool:
    """A graphprune file whose spec has a plan (its weights have pruned shapes)."""
    if not str(path).endswith(".safetensors"):
        return False
    try:
        from ..io import read_spec
        return bool(read_spec(path).get("plan"))
    except (ValueError, OSError):
        return False
