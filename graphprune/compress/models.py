"""The model kinds a recipe can name, and how a run builds, seeds and fills the dense model.

``model:`` is a union of kinds picked by their first key (:class:`~graphprune.schema.Variants`
with ``key=None``): :class:`NamedModel` (``{name: ...}``: an ``sr_models`` name, ``timm:NAME`` or
``package.module:factory``) and :class:`SpandrelModel` (``{spandrel: path/to/model.pth}``: a downloaded
checkpoint whose architecture spandrel detects). Each kind's :meth:`spec` is what
:func:`graphprune.io.build_model` takes.

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
from typing import Annotated, Optional, Union

import torch
from torch import nn

from .. import loaders
from ..errors import one_line
from ..loaders import CheckpointError
from ..schema import Problem, Schema, Variants, field, suggest

__all__ = ["NamedModel", "SpandrelModel", "ModelSpec", "build_dense", "read_state_dict", "load_weights", "CheckpointError",
           "import_path_note"]

_FACTORY = re.compile(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)")


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

    def problems(self, scale: int | None = None, rgb_range: int | None = None) -> list[Problem]:
        """Whether the name resolves and the arguments fit, before anything is built for real
        (paths from the recipe's top: ``model.name``, ``scale``, ...); ``None`` skips that check."""
        if self.name.startswith("timm:"):
            return _timm_problems(self.name)
        if ":" in self.name:
            return _factory_problems(self.name, self.kwargs)
        return _zoo_problems(self.name, self.kwargs, scale, rgb_range)


@dataclass(kw_only=True)
class SpandrelModel(Schema):
    """``{spandrel: path, leaf_modules}``: a checkpoint from the ecosystem; spandrel detects its architecture.

    The dense weights are the file's own (``checkpoint`` is the same path); ``graphprune.save`` stores the
    detected architecture and hyperparameters, so a pruned run's files reload without the original file.
    """

    spandrel: str = field(doc="a .pth/.pt/.ckpt/.safetensors file spandrel can load (chaiNNer/ComfyUI's loader)")
    leaf_modules: list[str] = field([], doc="module-name globs the analysis keeps opaque (untraceable code)")

    @property
    def name(self) -> str:
        return f"spandrel:{self.spandrel}"

    @property
    def checkpoint(self) -> str:
        return self.spandrel

    def spec(self) -> dict:
        """The spandrel spec of the file's architecture (read once; JSON, no weights)."""
        if not hasattr(self, "_spec"):
            self._spec = loaders.load_spandrel(self.spandrel).gp_spec
        return self._spec

    def problems(self, scale: int, rgb_range: int) -> list[Problem]:
        """The file exists, spandrel knows its architecture, and its scale is the recipe's."""
        if not os.path.isfile(self.spandrel):
            return [Problem("model.spandrel", f"{self.spandrel}: no such file; give the path of a downloaded "
                                              "checkpoint (.pth, .pt, .ckpt or .safetensors)")]
        try:
            found = self.spec()["spandrel"]
        except (CheckpointError, ImportError) as e:
            return [Problem("model.spandrel", one_line(e, limit=300))]
        if found["scale"] != scale:
            return [Problem("scale", f"{scale} but {self.spandrel} is a x{found['scale']} {found['arch']}; "
                                     f"use scale: {found['scale']}")]
        return []


#: ``model:`` in a recipe: a kind is picked by its first key (``name`` or ``spandrel``).
ModelSpec = Annotated[Union[NamedModel, SpandrelModel], Variants(None)]


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


def _zoo_problems(name: str, kwargs: dict, scale: int | None, rgb_range: int | None) -> list[Problem]:
    import sr_models

    if not sr_models.is_model(name):
        return [Problem("model.name", f"{name!r} is not a registered model{suggest(name, sr_models.list_models())}; "
                                "use sr_models.list_models(), 'timm:NAME' or 'package.module:factory'")]
    suffix = re.search(r"_x(\d+)$", name)
    if suffix and scale is not None and int(suffix.group(1)) != scale:
        return [Problem("scale", f"{scale} does not match model.name {name!r} (an x{suffix.group(1)} model); "
                                  f"use model.name {name[:suffix.start()]}_x{scale} or scale: {suffix.group(1)}")]
    try:
        with torch.device("meta"):  # no memory, no init cost
            m = sr_models.create_model(name, **kwargs)
    except (TypeError, ValueError) as e:
        return [Problem("model.kwargs", f"{kwargs!r} rejected: {one_line(e, limit=300)}")]
    out = []
    if scale is not None and getattr(m, "scale", scale) != scale:
        out.append(Problem("model.kwargs.scale", f"{m.scale!r} does not match scale: {scale}"))
    if rgb_range is not None and getattr(m, "rgb_range", None) is not None and float(m.rgb_range) != float(rgb_range):
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


def build_dense(model: NamedModel | SpandrelModel, seed: int, *, weights: bool = True) -> nn.Module:
    """The dense model, its random initialization drawn from ``seed``; weights loaded if named."""
    from ..io import build_model

    torch.manual_seed(seed)
    dense = build_model(model.spec())
    if weights and model.checkpoint:
        load_weights(dense, model.checkpoint)
    return dense


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A weights file's tensors, or a one-line :class:`CheckpointError` (truncated, pickled model, ...).

    :func:`graphprune.loaders.read_state_dict` reads every ecosystem format; a *dense* graphprune
    file (``dense.safetensors`` of an earlier run) is dense weights too, a pruned one is refused.
    """
    from ..io import read_spec

    try:
        spec = read_spec(path)
    except (ValueError, OSError):  # not a graphprune file: the ecosystem loader says what it is
        return loaders.read_state_dict(path)
    if spec.get("plan"):
        raise CheckpointError(f"{path} is a pruned graphprune model; model.checkpoint takes dense weights "
                              "(load a pruned model with graphprune.load)")
    from safetensors.torch import load_file
    return load_file(str(path))


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Fill ``model`` from ``path`` strictly (the official codes' names mapped); a mismatch is one line."""
    from sr_models._factory import official_layout

    state, own = official_layout(read_state_dict(path), model), model.state_dict()
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
