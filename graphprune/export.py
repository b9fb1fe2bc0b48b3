"""ONNX export of a (pruned) model, checked in onnxruntime at the example size and at another one.

Why a check is part of the export: SR apps (chaiNNer, most mobile/desktop runtimes) run the ``.onnx``
file, not the PyTorch model, and an ONNX graph can silently differ from the model it came from. The
TorchScript-based exporter records one run of ``forward``: a size the code turned into a Python number
(``int(h)``, ``if h % window``, a reshape to ``h // 8`` windows) is baked into the graph as a constant, so
the file claims dynamic height/width and then fails, or computes something else, at any other size. So
:func:`export_onnx` exports with dynamic batch/height/width, then :func:`check_onnx` runs the file and
the model on the example *and* on a second input of another batch and size
(:func:`other_size`). When the model itself refuses that size (a pruned ``fx.GraphModule`` checks the
guards of the size it was traced for) or the file is wrong there, the export is fixed-size: the file is
re-exported with static axes and :attr:`Exported.dynamic` is False with the reason, never a silent claim.

Errors are reported against the PyTorch model in float32: ``max_abs`` is the largest absolute
difference, ``max_rel`` that difference relative to the reference's largest magnitude (pointwise
relative errors are meaningless where the output crosses zero).

>>> import torch, tempfile, os
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2)).eval()
>>> out = export_onnx(net, torch.rand(1, 3, 8, 8), os.path.join(tempfile.mkdtemp(), "net.onnx"))
>>> out.dynamic, [c.shape for c in out.checks], out.checks[1].max_rel < 1e-5
(True, [(1, 3, 8, 8), (2, 3, 12, 16)], True)
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import one_line
from .files import atomic_write

__all__ = ["Check", "Exported", "export_onnx", "check_onnx", "other_size", "ort_session", "DEFAULT_OPSET"]

#: ONNX opset of the exports: supported by onnxruntime >= 1.14 and by the TorchScript-based exporter.
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class Check:
    """One comparison of the ONNX file with the model: the input shape and the errors found."""

    shape: tuple[int, ...]
    max_abs: float
    max_rel: float


@dataclass
class Exported:
    """What :func:`export_onnx` wrote: the file, whether its axes are dynamic (and why not), the checks."""

    path: Path
    dynamic: bool
    checks: list[Check] = field(default_factory=list)
    fixed_reason: str = ""

    @property
    def max_rel(self) -> float:
        return max((c.max_rel for c in self.checks), default=0.0)


def other_size(example: torch.Tensor) -> torch.Tensor:
    """A second input unlike the example: batch 2, height +4, width +8 (multiples of 4 stay multiples of 4).

    >>> tuple(other_size(torch.zeros(1, 3, 48, 48)).shape)
    (2, 3, 52, 56)
    """
    n, c, h, w = example.shape
    g = torch.Generator().manual_seed(0)
    lo, hi = float(example.min()), float(example.max())
    return torch.rand(2 if n == 1 else n + 1, c, h + 4, w + 8, generator=g, dtype=torch.float32) * (hi - lo or 1) + lo


def ort_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session (``threads`` intra-op threads, full graph optimization)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("checking the ONNX file needs onnxruntime: pip install graphprune[export]") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    # 4 = fatal only: a kernel's error comes back as the exception the caller reports (the second-size
    # check expects one on a baked graph); at 3 onnxruntime also prints it as a coloured log line
    opts.log_severity_level = 4
    ort.set_default_logger_severity(4)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@torch.no_grad()
def check_onnx(path: str | os.PathLike, model: nn.Module, x: torch.Tensor, session=None) -> Check:
    """Run the file and the float32 model on ``x``; the errors (raises if onnxruntime cannot run it)."""
    session = session or ort_session(path)
    inp = session.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32
    got = session.run(None, {inp.name: x.numpy().astype(dtype)})[0].astype(np.float64)
    ref = _first_tensor(model(x)).double().numpy()
    if got.shape != ref.shape:
        raise ValueError(f"the ONNX file gives shape {got.shape} at input {tuple(x.shape)}, the model {ref.shape}")
    err = np.abs(got - ref)
    peak = float(np.abs(ref).max()) or 1.0
    return Check(tuple(x.shape), float(err.max()), float(err.max()) / peak)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, *, fp16: bool = False,
                opset: int = DEFAULT_OPSET, dynamic: bool = True, check: bool = True) -> Exported:
    """Export ``model`` (float32, CPU, eval mode) to ``path`` and, with ``check``, compare it in onnxruntime.

    ``fp16`` writes a float16 graph (weights, input and output), compared against the float32 model.
    The file is written whole or not at all (:func:`graphprune.files.atomic_write`); a failing
    comparison still writes it: the caller decides (the ``export`` command removes it past tolerance).
    """
    model = model.eval().float().cpu()
    example = example.float()
    out = Exported(Path(path), dynamic)
    _write(model, example, out.path, fp16, opset, dynamic)
    if not check:
        return out
    out.checks.append(check_onnx(out.path, model, example))
    if dynamic:
        reason = _second_size(out, model, example)
        if reason:
            out.dynamic, out.fixed_reason = False, reason
            _write(model, example, out.path, fp16, opset, dynamic=False)
            out.checks = [check_onnx(out.path, model, example)]
    return out


def _second_size(out: Exported, model: nn.Module, example: torch.Tensor) -> str:
    """Check the dynamic file at :func:`other_size`; the reason it must be fixed-size, or ``""``."""
    x = other_size(example)
    try:
        model(x)
    except Exception as e:  # noqa: BLE001 - the model's own guard (or its code) refuses the size
        return (f"the model itself does not run at {list(x.shape)} ({one_line(e, limit=200)}); "
                f"it was exported for {list(example.shape)} only")
    try:
        c = check_onnx(out.path, model, x)
    except Exception as e:  # noqa: BLE001 - a size baked into the graph makes onnxruntime fail
        return (f"the exporter baked sizes of {list(example.shape)} into the graph (the forward turns sizes into "
                f"Python numbers, e.g. int(h) or h // window): at {list(x.shape)} onnxruntime fails "
                f"({one_line(e, limit=120)})")
    if c.max_rel > 1e-2:
        return (f"the exporter baked sizes of {list(example.shape)} into the graph: at {list(x.shape)} the file "
                f"differs from the model by {c.max_rel:.2g} (relative)")
    out.checks.append(c)
    return ""


def _write(model: nn.Module, example: torch.Tensor, path: Path, fp16: bool, opset: int, dynamic: bool) -> None:
    model = _without_guards(model)
    net, x = (_half(model), example.half()) if fp16 else (model, example)
    axes = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "out_height",
                                                                       3: "out_width"}} if dynamic else None

    def writer(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings: the second-size check is what tells
            torch.onnx.export(net, (x,), str(tmp), dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True)

    atomic_write(path, writer)


def _without_guards(model: nn.Module) -> nn.Module:
    """A guarded ``fx.GraphModule``'s copy without its ``torch._assert`` guards, for the exporter's trace.

    The TorchScript tracer cannot record an assert on sizes (it fails inside ``aten::eq``); the example
    satisfies the guards by construction, and the second-size check runs the guarded model itself.
    """
    if not isinstance(model, torch.fx.GraphModule):
        return model
    asserts = [n for n in model.graph.nodes if n.op == "call_function" and n.target is torch._assert]
    if not asserts:
        return model
    import copy

    gm = copy.deepcopy(model)
    for node in [n for n in gm.graph.nodes if n.op == "call_function" and n.target is torch._assert]:
        gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def _half(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).half()


def _first_tensor(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, dict):
        return next(v for v in out.values() if isinstance(v, torch.Tensor))
    raise TypeError(f"the model returns {type(out).__name__}, not a tensor")
