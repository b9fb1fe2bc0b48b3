"""Load what users have: a state dict out of any checkpoint file, and spandrel's architectures.

Why this module exists: the SR networks people prune come as checkpoints from many codebases, each
with its own wrapper (BasicSR's ``params_ema``/``params``, Lightning's ``state_dict``, ``model``,
``net``, DataParallel's ``module.`` prefix) and format (``.pth``/``.pt``/``.ckpt`` from ``torch.save``,
``.safetensors``). :func:`read_state_dict` turns every one of them into a flat ``{name: tensor}``, and
a file it cannot use into one :class:`CheckpointError` line that names the file, the problem and the fix.

**No code from a file ever runs.** ``torch.load`` is only called with ``weights_only=True``. Some files
keep a pickled module *beside* their weights (the official ASSL/SRP code saves ``{'state_dict': ...,
'arch': model}``); for those, every class the pickle names is bound to an inert placeholder (never
imported, never called), so the weights beside it can be read. A file that *is* a pickled model (no
state dict in it) is refused with the fix: re-save its ``state_dict()``.

:func:`load_spandrel` hands the state dict to spandrel (optional: ``pip install graphprune[spandrel]``),
which detects the architecture and its hyperparameters, and records in ``model.gp_spec`` what
:func:`build_spandrel` needs to rebuild the dense model without the file: the architecture id, the class
and the hyperparameters spandrel detected, and the state dict's shapes to check the rebuild against.
``graphprune.save``/``graphprune.load`` use that spec like any other.

>>> import torch
>>> unwrap_state_dict({"params": {"w": torch.ones(1)}, "params_ema": {"module.w": torch.zeros(1)}})
{'w': tensor([0.])}
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import one_line as _one_line

__all__ = ["CheckpointError", "read_state_dict", "unwrap_state_dict", "fit_prefix", "load_spandrel",
           "build_spandrel", "spandrel_spec", "spandrel_hyperparameters", "WRAPPER_KEYS"]

# Keys under which codebases nest the weights, most preferred first (an EMA copy beats the raw one).
WRAPPER_KEYS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net",
                "network_g", "net_g")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line: file, problem, fix."""


class _Placeholder:
    """Stands in for every class a checkpoint's pickle names: never imported, never run, keeps nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


# --------------------------------------------------------------------------------------------------
# Reading files


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The flat state dict in a ``.pth``/``.pt``/``.ckpt`` (``torch.save``) or ``.safetensors`` file.

    The format is recognised by content, not by extension; wrappers and a ``module.`` prefix are removed
    (:func:`unwrap_state_dict`). Raises :class:`CheckpointError` (one line) for a missing, truncated or
    corrupt file, a graphprune model file, a pickled whole model, or a file without tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path} (check the path)")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CheckpointError(f"{path}: the file is empty (truncated download or copy?); get it again")
    obj = _read_safetensors(path) if _looks_like_safetensors(head) else _read_torch(path)
    return unwrap_state_dict(obj, path)


def _looks_like_safetensors(head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then the JSON header's ``{``."""
    return len(head) > 8 and head[8:9] == b"{" and not head.startswith(b"PK")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if "graphprune" in meta:
                raise CheckpointError(f"{path} is a graphprune model file (weights + pruning plan); "
                                      f"load it with graphprune.load({str(path)!r})")
            return {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError and friends: say what and how to fix
        raise CheckpointError(f"{path}: not a readable safetensors file ({_one_line(exc)}); "
                              "it is corrupt or truncated, get it again") from None


def _read_torch(path: Path) -> Any:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes about TorchScript archives: the error below says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # objects beside the weights (or instead of them)
            return _read_torch_with_placeholders(path)
        raise CheckpointError(_corrupt(path, exc)) from None
    except Exception as exc:  # noqa: BLE001 - zip/EOF/runtime errors of a damaged file
        if "TorchScript" in str(exc):
            raise CheckpointError(f"{path}: a TorchScript archive (compiled code, not read here); re-save its "
                                  "state_dict() from torch.jit.load(path) if you trust it") from None
        raise CheckpointError(_corrupt(path, exc)) from None


def _corrupt(path, exc: BaseException) -> str:
    return f"{path}: truncated or corrupt checkpoint ({_one_line(exc)}); get it again"


def _read_torch_with_placeholders(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every class the pickle names bound to :class:`_Placeholder`."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        with torch.serialization.safe_globals([(_Placeholder, n) for n in names]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - objects weights_only cannot even hold as placeholders
        raise CheckpointError(_whole_model(path)) from None


def _whole_model(path) -> str:
    return (f"{path}: this file pickles a whole model object; re-save its state_dict() "
            "(torch.save(model.state_dict(), path)) and load that")


# --------------------------------------------------------------------------------------------------
# Unwrapping


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: Any, path: str | os.PathLike = "<state dict>") -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` inside a loaded checkpoint object.

    Descends through :data:`WRAPPER_KEYS` (``params_ema`` before ``params``) and single-entry dicts,
    then removes a ``module.`` prefix shared by every key (DataParallel / DDP). Other shared prefixes
    (Lightning's ``model.``, ``net_g.``) are ambiguous without the model: see :func:`fit_prefix`.
    """
    for _ in range(4):  # wrappers nest at most a few levels ({'state_dict': {'model': ...}})
        if _is_state_dict(obj) or not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None and len(obj) == 1 and isinstance(next(iter(obj.values())), Mapping):
            inner = next(iter(obj.values()))
        if inner is None:
            break
        obj = inner
    if not _is_state_dict(obj):
        raise CheckpointError(_not_a_state_dict(obj, path))
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _not_a_state_dict(obj: Any, path) -> str:
    found = obj.values() if isinstance(obj, Mapping) else [obj]
    if any(isinstance(v, _Placeholder) for v in found):
        return _whole_model(path)
    what = (f"a dict with keys {sorted(map(str, obj))[:6]}" if isinstance(obj, Mapping) else f"a {type(obj).__name__}")
    return (f"{path}: no state dict found (it holds {what}); expected tensors by name, "
            f"possibly under one of {', '.join(WRAPPER_KEYS[:6])}")


def fit_prefix(sd: Mapping[str, torch.Tensor], expected: set[str] | Mapping) -> dict[str, torch.Tensor]:
    """Remove a first key component shared by every key of ``sd`` when that makes its keys ``expected``'s.

    For wrappers that prefix the model's names (EDSR-PyTorch's old ``model.``, Lightning's ``net_g.``):
    only the model knows whether ``model.0.weight`` means a wrapper or its own ``model`` child.

    >>> import torch
    >>> sorted(fit_prefix({"model.head.w": torch.ones(1)}, {"head.w"}))
    ['head.w']
    >>> sorted(fit_prefix({"model.0.w": torch.ones(1)}, {"model.0.w"}))
    ['model.0.w']
    """
    expected = set(expected)
    first = {k.split(".", 1)[0] for k in sd}
    if len(first) != 1 or set(sd) <= expected:
        return dict(sd)
    p = next(iter(first)) + "."
    stripped = {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}
    return stripped if len(set(stripped) & expected) > len(set(sd) & expected) else dict(sd)


# --------------------------------------------------------------------------------------------------
# spandrel


def _spandrel():
    try:
        import spandrel
    except ImportError:
        raise ImportError("loading this checkpoint needs spandrel: pip install graphprune[spandrel]") from None
    return spandrel


def _detect(sd: Mapping[str, torch.Tensor], where: str):
    spandrel = _spandrel()
    try:
        return spandrel.ModelLoader().load_from_state_dict(dict(sd))
    except spandrel.UnsupportedModelError:
        keys = ", ".join(list(sd)[:4])
        raise CheckpointError(f"{where}: spandrel does not recognise this architecture ({len(sd)} tensors, "
                              f"first keys {keys}); check spandrel's supported list or build the model yourself") from None


def spandrel_hyperparameters(model: nn.Module) -> tuple[dict[str, Any], dict[str, str]]:
    """spandrel's recorded hyperparameters of ``model``: ``(data, others)``.

    ``data`` holds the JSON-native ones (numbers, strings, lists; tuples as lists), enough to call the
    class again; ``others`` the ``repr`` of the rest (layer classes such as ``norm_layer``, which a state
    dict cannot show, so spandrel always leaves them at their defaults), kept to check a rebuild.
    """

    def native(v) -> bool:
        if isinstance(v, (list, tuple)):
            return all(native(u) for u in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and native(u) for k, u in v.items())
        return v is None or isinstance(v, (bool, int, float, str))

    def plain(v):
        return [plain(u) for u in v] if isinstance(v, (list, tuple)) else v

    hp = getattr(model, "hyperparameters", None) or {}
    return ({k: plain(v) for k, v in hp.items() if native(v)},
            {k: getattr(v, "__qualname__", None) or repr(v) for k, v in hp.items() if not native(v)})


def spandrel_spec(sd: Mapping[str, torch.Tensor], descriptor) -> dict[str, Any]:
    """What :func:`build_spandrel` needs to rebuild ``descriptor``'s dense model: JSON, no weights."""
    req = descriptor.size_requirements
    kwargs, others = spandrel_hyperparameters(descriptor.model)
    hp = getattr(descriptor.model, "hyperparameters", None) or {}
    return {"arch": descriptor.architecture.id, "class": type(descriptor.model).__name__, "kwargs": kwargs,
            "tuples": sorted(k for k in kwargs if isinstance(hp[k], tuple)),  # JSON has lists only
            "other_hyperparameters": others, "shapes": {k: list(v.shape) for k, v in sd.items()},
            "scale": descriptor.scale, "purpose": descriptor.purpose,
            "input_channels": descriptor.input_channels, "output_channels": descriptor.output_channels,
            "size_requirements": {"minimum": req.minimum, "multiple_of": req.multiple_of, "square": req.square}}


def load_spandrel(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> nn.Module:
    """The dense model spandrel detects in a checkpoint file or state dict, with ``gp_spec`` set.

    ``model.gp_spec == {"spandrel": spandrel_spec(...)}``, so ``graphprune.save`` can write it and
    ``graphprune.load`` rebuild it (dense or pruned) without the original file.
    """
    where = "state dict" if isinstance(source, Mapping) else str(source)
    sd = unwrap_state_dict(source, where) if isinstance(source, Mapping) else read_state_dict(source)
    descriptor = _detect(sd, where)
    model = descriptor.model
    model.gp_spec = {"spandrel": spandrel_spec(sd, descriptor)}
    return model


def build_spandrel(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild the dense model of a :func:`spandrel_spec`: spandrel's class called with the hyperparameters
    its detection found (weights as the constructor makes them; load the real ones afterwards).

    Why not spandrel's detection on a zeros state dict of the saved shapes: detection loads the state dict
    it reads, so the buffers the constructor computes (relative-position indices of window attention)
    would be zeros, and the analysis :func:`graphprune.load` re-runs bakes what the forward derives from
    them into the traced graph (a wrong index table in ATD's pruned graph). Some detections also read
    values, not shapes (DAT's split size from a buffer). The saved state-dict shapes and the hyperparameters
    that are not data (layer classes) must match the rebuilt model, else ``ValueError``.
    """
    model = _construct(spec)
    _check_rebuilt(model, spec)
    model.gp_spec = {"spandrel": dict(spec)}
    return model


def _construct(spec: Mapping[str, Any]) -> nn.Module:
    import importlib

    _spandrel()
    module = importlib.import_module(f"spandrel.architectures.{spec['arch']}")
    cls = next((c for c in vars(module).values() if isinstance(c, type) and c.__name__ == spec["class"]), None)
    if cls is None:
        raise ValueError(f"spandrel.architectures.{spec['arch']} has no class {spec['class']!r} "
                         "(another spandrel version?); install the version the model was saved with")
    tuples = set(spec.get("tuples", ()))
    return cls(**{k: tuple(v) if k in tuples else v for k, v in spec["kwargs"].items()})


def _check_rebuilt(model: nn.Module, spec: Mapping[str, Any]) -> None:
    kwargs, others = spandrel_hyperparameters(model)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    bad = ([k for k in set(kwargs) | set(spec["kwargs"]) if kwargs.get(k) != spec["kwargs"].get(k)]
           + [k for k, v in spec.get("other_hyperparameters", {}).items() if others.get(k) != v]
           + [k for k, v in spec["shapes"].items() if shapes.get(k) != v])
    if bad or set(shapes) != set(spec["shapes"]):
        raise ValueError(f"spandrel rebuilt {spec['arch']} differently from the saved model "
                         f"({', '.join(sorted(map(str, bad))[:4]) or 'state-dict keys differ'}); "
                         "install the spandrel version it was saved with")
