"""Parameter and FLOP counts on the traced graph: fvcore's convention and the SR papers' Mult-Adds.

Why this exists: fvcore's ``FlopCountAnalysis`` runs a real jit-traced forward, which takes over a
minute for a large SR network at 1280x720 and does not work on meta tensors. Here the model is traced
once with :func:`graphprune.trace.trace` (fake tensors, no real compute) and a rule is applied to every
node of the graph using its propagated shapes. The cost does not depend on the input resolution.

Two conventions
---------------
:func:`count` follows fvcore (one multiply-add = one flop). Its rules mirror fvcore's op handles
(``fvcore/nn/flop_count.py`` ``_DEFAULT_SUPPORTED_OPS``) and its ignore list (``jit_analysis._IGNORED_OPS``),
so ``count(m, x)["flops"] == FlopCountAnalysis(m, x).total()`` on ordinary conv / timm / torchvision nets.
Ops that fvcore neither counts nor ignores (add, mul, pixel_shuffle, gelu, softmax, max_pool2d, ...)
are listed under ``"unsupported"`` with counts, as fvcore lists them; they are never silently dropped.
Where we knowingly differ from fvcore:

- ``F.scaled_dot_product_attention`` is counted (QK^T plus AV); fvcore skips it. timm's attention uses
  it, so a timm ViT's count is *higher* than fvcore's by exactly those matmuls.
- ``baddbmm`` is counted like ``bmm``; fvcore lists it as unsupported.
- ``nn.MultiheadAttention`` is a leaf in fx; its rule counts the four projections and both attention
  matmuls, which is what fvcore counts through its default (``need_weights=True``) code path.
- matmul with a broadcast *first* operand counts ``numel(out) * K`` (the true MACs); fvcore counts
  ``numel(a) * N``. Both agree whenever ``a`` is not broadcast.
- A conv with ``padding_mode != "zeros"`` pads inside the module; fvcore also lists an ``aten::pad``.

:func:`sr_mult_adds` follows the SR papers (SRP/ASSL ``get_model_complexity`` via torchsummaryX on an
LR input of ``(1280 // s) x (720 // s)``): the MACs of conv modules without bias, ``weight.numel() *
prod(out_spatial)`` per call, also for transposed convs (which is how FSRCNN's deconv is counted in the
tables). torchsummaryX counts a Linear as ``weight.numel()`` once; here a Linear counts per token
(``prod(input.shape[:-1]) * in * out``), which only matters for transformer SR nets. Matmuls and
attention are not counted unless ``include_matmul=True``. Norms, activations and adds never count.

The rule table
--------------
A rule table maps an fx target to a :data:`Rule`: the module class for ``call_module`` nodes, the
function for ``call_function`` nodes, the method name (``str``) for ``call_method`` nodes. A rule is
``rule(node, ins, out, module) -> int`` where ``ins`` are the node's positional arguments with every fx
node replaced by its propagated value (a :class:`~graphprune.trace.TensorSpec`, a tuple of them, or a
python value), ``out`` is the node's own value and ``module`` is the called module (or ``None``).
Three outcomes:

- *handled*: the rule returns a number of flops;
- *passthrough*: the table maps the target to ``None`` (zero flops, not reported: views, cat, relu...);
- *unsupported*: the target is absent, or the rule raises :class:`Unsupported` for this case (e.g.
  bicubic interpolation). The op is counted under ``"unsupported"`` by name.

Nodes whose value holds no tensor (``x.shape``, ``size()``, integer arithmetic) are skipped. A module
class absent from the table matches a base class in the table only when it does not override
``forward`` (so a ``MeanShift(nn.Conv2d)`` leaf is a conv). Override rules per call with
``count(..., rules={target: rule_or_None})``.
"""
from __future__ import annotations

import copy
import math
import operator
import warnings
from collections import Counter, OrderedDict
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .trace import TensorSpec, Traced, TraceError, as_input_tuple, node_value, trace
from .rules import tracing_policy

__all__ = [
    "Rule",
    "Unsupported",
    "RULES",
    "SR_RULES",
    "SR_MATMUL_RULES",
    "count",
    "sr_mult_adds",
    "params",
    "op_name",
]

Rule = Callable[[fx.Node, tuple, Any, "nn.Module | None"], int]


class Unsupported(Exception):
    """Raised by a rule when its op has no count in this case; ``name`` is reported instead."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


# --------------------------------------------------------------------------------------------------
# Helpers


def _resolve(value: Any) -> Any:
    if isinstance(value, fx.Node):
        return node_value(value)
    if isinstance(value, (tuple, list)):
        return tuple(_resolve(v) for v in value)
    return value


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    """Argument ``index`` / keyword ``name`` of ``node``, with fx nodes replaced by their values."""
    if index < len(node.args):
        return _resolve(node.args[index])
    return _resolve(node.kwargs.get(name, default))


def _has_tensor(value: Any) -> bool:
    if isinstance(value, TensorSpec):
        return True
    if isinstance(value, tuple):
        return any(_has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tensor(v) for v in value.values())
    return False


def _first_tensor(value: Any) -> TensorSpec:
    if isinstance(value, TensorSpec):
        return value
    for v in value if isinstance(value, tuple) else ():
        if isinstance(v, TensorSpec):
            return v
    raise Unsupported("<no tensor>")


def op_name(node: fx.Node, module: nn.Module | None = None) -> str:
    """The name an op is reported under: module class, function name or ``Tensor.<method>``."""
    if node.op == "call_module":
        return type(module).__name__ if module is not None else str(node.target)
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    name = getattr(node.target, "__name__", str(node.target))
    return name.strip("_") if name.startswith("__") else name


# --------------------------------------------------------------------------------------------------
# fvcore-convention rules (one small function per op family)


def _conv_flops(x: tuple, w: tuple, out: tuple, transposed: bool) -> int:
    """fvcore ``conv_flop_count``: batch * prod(w) * prod(spatial); spatial of the input if transposed."""
    unbatched = len(x) == len(w) - 1
    batch = 1 if unbatched else x[0]
    spatial = (x if transposed else out)[1 if unbatched else 2:]
    return batch * math.prod(w) * math.prod(spatial)


def _conv_module(node, ins, out, m) -> int:
    return _conv_flops(ins[0].shape, tuple(m.weight.shape), out.shape, m.transposed)


def _conv_functional(transposed: bool) -> Rule:
    def rule(node, ins, out, m) -> int:
        return _conv_flops(ins[0].shape, _arg(node, 1, "weight").shape, out.shape, transposed)

    return rule


def _linear_module(node, ins, out, m) -> int:
    return ins[0].numel * m.out_features


def _linear_functional(node, ins, out, m) -> int:
    w = _arg(node, 1, "weight")
    return ins[0].numel * (w.shape[0] if w.ndim == 2 else 1)


def _matmul(node, ins, out, m) -> int:
    a = _arg(node, 0, "input")
    return max(_first_tensor(out).numel, 1) * a.shape[-1]


def _addmm(node, ins, out, m) -> int:  # addmm / baddbmm(input, mat1, mat2)
    return out.numel * _arg(node, 1, "mat1").shape[-1]


def _einsum(node, ins, out, m) -> int:
    """fvcore ``einsum_flop_jit``: two special cases, else numpy's optimal path cost / 2."""
    equation = ins[0].replace(" ", "")
    operands = ins[1:]
    if len(operands) == 1 and isinstance(operands[0], tuple):
        operands = operands[0]
    shapes = [o.shape for o in operands]
    letters = OrderedDict((k, 0) for k in equation if k.isalpha()).keys()
    equation = equation.translate({ord(x): 97 + i for i, x in enumerate(letters)})
    if equation == "abc,abd->acd":
        n, c, t = shapes[0]
        return n * c * t * shapes[-1][-1]
    if equation == "abc,adc->adb":
        n, t, g = shapes[0]
        return n * t * g * shapes[-1][1]
    arrays = [np.broadcast_to(np.zeros((), dtype=np.float32), s) for s in shapes]  # no memory
    path = np.einsum_path(equation, *arrays, optimize="optimal")[1]
    for line in path.split("\n"):
        if "optimized flop" in line.lower():
            return int(np.floor(float(line.split(":")[-1]) / 2))
    raise Unsupported("einsum")


def _sdpa(node, ins, out, m) -> int:
    q, k, v = (_arg(node, i, n) for i, n in enumerate(("query", "key", "value")))
    batch = math.prod(out.shape[:-2])
    return batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _mha_parts(node, m: nn.MultiheadAttention) -> tuple[int, int]:
    """(projection MACs, attention-matmul MACs) of one ``nn.MultiheadAttention`` call."""
    q, k, v = (_arg(node, i, n) for i, n in enumerate(("query", "key", "value")))
    e = m.embed_dim
    tq, tk, tv = q.numel // e, k.numel // m.kdim, v.numel // m.vdim
    if q.ndim == 2:
        batch = 1
    else:
        batch = q.shape[0] if m.batch_first else q.shape[1]
    proj = tq * e * e + tk * m.kdim * e + tv * m.vdim * e + tq * e * e
    attn = 2 * tq * (tk // batch) * e
    return proj, attn


def _mha(node, ins, out, m) -> int:
    return sum(_mha_parts(node, m))


def _norm(affine: bool, x: TensorSpec) -> int:
    """fvcore ``norm_flop_counter``: 5 flops per element with affine parameters, 4 without."""
    return x.numel * (5 if affine else 4)


def _batchnorm(training: bool, affine: bool, x: TensorSpec) -> int:
    """fvcore ``batchnorm_flop_jit``: batch statistics as a norm; eval-mode 2 (affine) or 1."""
    if training:
        return _norm(affine, x)
    return x.numel * (2 if affine else 1)


def _bn_module(node, ins, out, m) -> int:
    training = m.training or (m.running_mean is None and m.running_var is None)
    return _batchnorm(training, m.weight is not None, ins[0])


def _bn_functional(node, ins, out, m) -> int:
    return _batchnorm(bool(_arg(node, 5, "training", False)), _arg(node, 3, "weight") is not None, ins[0])


def _affine_norm_module(node, ins, out, m) -> int:  # GroupNorm, LayerNorm, InstanceNorm
    return _norm(getattr(m, "weight", None) is not None, ins[0])


def _norm_functional(weight_index: int) -> Rule:
    def rule(node, ins, out, m) -> int:
        return _norm(_arg(node, weight_index, "weight") is not None, ins[0])

    return rule


_UPSAMPLE_SCALE = {"nearest": 1, "bilinear": 4}  # fvcore: upsample_nearest2d / upsample_bilinear2d only


def _upsample(x: TensorSpec, out: TensorSpec, mode: str, antialias: bool = False) -> int:
    if x.ndim != 4 or mode not in _UPSAMPLE_SCALE or antialias:
        raise Unsupported(f"interpolate(mode={mode}, {x.ndim}d{', antialias' if antialias else ''})")
    return _UPSAMPLE_SCALE[mode] * out.numel


def _upsample_module(node, ins, out, m) -> int:
    return _upsample(ins[0], out, m.mode)


def _interpolate(node, ins, out, m) -> int:
    return _upsample(ins[0], out, _arg(node, 3, "mode", "nearest"), bool(_arg(node, 6, "antialias", False)))


def _input_elements(node, ins, out, m) -> int:  # adaptive_avg_pool2d: one flop per input element
    return ins[0].numel


def _grid_sample(node, ins, out, m) -> int:  # fvcore assumes bilinear: 4 per output element
    return 4 * out.numel


def _passthrough(*targets) -> dict:
    return dict.fromkeys(targets, None)


# fvcore's _IGNORED_OPS, as the fx targets that produce them (zero flops, not reported).
_IGNORED: dict = {
    **_passthrough(nn.ReLU, nn.Dropout, nn.Identity, nn.Flatten),
    **_passthrough(
        operator.getitem, operator.eq, operator.ge, operator.gt, operator.floordiv, operator.mod,
        operator.and_, operator.invert, getattr,
        torch.cat, torch.concat, torch.concatenate, torch.stack, torch.chunk, torch.split, torch.unbind,
        torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.swapaxes, torch.swapdims,
        torch.squeeze, torch.unsqueeze, torch.roll, torch.narrow, torch.t, torch.select,
        torch.clamp, torch.clip, torch.relu, torch.relu_, F.relu, F.relu_, F.dropout, torch.detach,
        torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.zeros_like, torch.full_like,
        torch.gather, torch.masked_fill, torch.floor, torch.floor_divide, torch.remainder,
        torch.eq, torch.ge, torch.gt, torch.max, torch.nonzero, torch.bitwise_not,
    ),
    **_passthrough(
        "view", "reshape", "permute", "transpose", "swapaxes", "flatten", "contiguous", "chunk", "split",
        "unbind", "squeeze", "unsqueeze", "unsqueeze_", "expand", "to", "type", "type_as", "float",
        "double", "half", "bfloat16", "int", "long", "bool", "cpu", "cuda", "detach", "clamp", "clamp_",
        "clip", "roll", "t", "narrow", "select", "masked_fill", "new_zeros", "new_empty", "new_full",
        "size", "dim", "max", "floor", "gather", "index_put_", "copy_", "relu", "relu_", "eq", "ge", "gt",
    ),
}

_CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONV_FUNCTIONS = {F.conv1d: False, F.conv2d: False, F.conv3d: False,
                   F.conv_transpose1d: True, F.conv_transpose2d: True, F.conv_transpose3d: True}
_MATMULS = (operator.matmul, torch.matmul, torch.mm, torch.bmm, "matmul", "mm", "bmm")

#: The fvcore-convention rule table used by :func:`count`.
RULES: dict[Any, Rule | None] = {
    **_IGNORED,
    **dict.fromkeys(_CONV_MODULES, _conv_module),
    **{f: _conv_functional(t) for f, t in _CONV_FUNCTIONS.items()},
    nn.Linear: _linear_module,
    F.linear: _linear_functional,
    **dict.fromkeys(_MATMULS, _matmul),
    **dict.fromkeys((torch.addmm, torch.baddbmm, "addmm", "baddbmm"), _addmm),
    torch.einsum: _einsum,
    F.scaled_dot_product_attention: _sdpa,
    nn.MultiheadAttention: _mha,
    **dict.fromkeys((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm), _bn_module),
    F.batch_norm: _bn_functional,
    **dict.fromkeys((nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d),
                    _affine_norm_module),
    F.group_norm: _norm_functional(2),
    F.layer_norm: _norm_functional(2),
    F.instance_norm: _norm_functional(3),
    nn.Upsample: _upsample_module,
    F.interpolate: _interpolate,
    F.upsample: _interpolate,
    nn.AdaptiveAvgPool2d: _input_elements,
    F.adaptive_avg_pool2d: _input_elements,
    F.grid_sample: _grid_sample,
}


# --------------------------------------------------------------------------------------------------
# SR-paper rules (torchsummaryX convention)


def _owner(node: fx.Node, model: nn.Module) -> nn.Module | None:
    """The innermost module of ``model`` a node was traced in (``nn_module_stack``), or the called module.

    Looked up in the traced model itself: a GraphModule holds plain ``nn.Module`` stand-ins for the
    modules it traced through.
    """
    if node.op == "call_module":
        qualname = node.target
    else:
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return None
        qualname = next(reversed(stack.values()))[0]
    try:
        return model.get_submodule(qualname)
    except AttributeError:
        return None


def _sr_conv(exact_torchsummaryx: bool) -> Rule:
    """weight.numel() * prod(out_spatial) per call (also for transposed convs), bias excluded.

    torchsummaryX counts a module this way only when its class name contains "Conv"; any other
    module counts ``weight.numel()``. So EDSR-family ``MeanShift(nn.Conv2d)`` layers count 9, not
    9 * H * W. ``exact_torchsummaryx`` reproduces that, using the owning module that
    :func:`sr_mult_adds` stores in ``node.meta["gp_owner"]`` (a traced-through ``MeanShift`` shows up
    as a functional conv).
    """

    def rule(node, ins, out, m) -> int:
        w = tuple(m.weight.shape) if node.op == "call_module" else tuple(_arg(node, 1, "weight").shape)
        owner = node.meta.get("gp_owner")
        is_conv_module = isinstance(owner, nn.modules.conv._ConvNd)
        if exact_torchsummaryx and is_conv_module and "Conv" not in type(owner).__name__:
            return math.prod(w)
        x = ins[0]
        batch = 1 if x.ndim == len(w) - 1 else x.shape[0]
        return batch * math.prod(w) * math.prod(out.shape[-(len(w) - 2):])

    return rule


def _sr_mha(include_matmul: bool) -> Rule:
    def rule(node, ins, out, m) -> int:
        proj, attn = _mha_parts(node, m)
        return proj + (attn if include_matmul else 0)

    return rule


#: Rules used by :func:`sr_mult_adds`; targets absent here count zero (the papers' convention).
SR_RULES: dict[Any, Rule | None] = {
    **dict.fromkeys(_CONV_MODULES, _sr_conv(True)),
    **dict.fromkeys(_CONV_FUNCTIONS, _sr_conv(True)),
    nn.Linear: _linear_module,
    F.linear: _linear_functional,
    nn.MultiheadAttention: _sr_mha(False),
}

#: Added to :data:`SR_RULES` by ``sr_mult_adds(..., include_matmul=True)``.
SR_MATMUL_RULES: dict[Any, Rule | None] = {
    **dict.fromkeys(_MATMULS, _matmul),
    **dict.fromkeys((torch.addmm, torch.baddbmm, "addmm", "baddbmm"), _addmm),
    torch.einsum: _einsum,
    F.scaled_dot_product_attention: _sdpa,
    nn.MultiheadAttention: _sr_mha(True),
}


# --------------------------------------------------------------------------------------------------
# Engine


_MISSING = object()


def _lookup(table: Mapping, node: fx.Node, module: nn.Module | None) -> Any:
    if node.op != "call_module":
        try:
            return table.get(node.target, _MISSING)
        except TypeError:  # unhashable target
            return _MISSING
    cls = type(module)
    if cls in table:
        return table[cls]
    for base in cls.__mro__[1:]:
        if base in table and cls.forward is base.forward:
            return table[base]
    return _MISSING


def _evaluate(gm: fx.GraphModule, table: Mapping, report_missing: bool = True) -> tuple[int, Counter]:
    """Apply ``table`` to every node of ``gm``: (total flops, unsupported op counts)."""
    flops, unsupported = 0, Counter()
    for node in gm.graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        out = node_value(node)
        if not _has_tensor(out):
            continue
        module = gm.get_submodule(node.target) if node.op == "call_module" else None
        rule = _lookup(table, node, module)
        if rule is None:
            continue
        if rule is _MISSING:
            if report_missing:
                unsupported[op_name(node, module)] += 1
            continue
        ins = tuple(_resolve(a) for a in node.args)
        try:
            flops += int(rule(node, ins, out, module))
        except Unsupported as exc:
            unsupported[exc.name] += 1
    return flops, unsupported


def _shape_trace(model: nn.Module, example_inputs: Any, leaf_modules=()) -> Traced:
    """Trace ``model`` for its shapes: meta values, so no real compute unless the forward needs data."""
    traced = trace(model, as_input_tuple(example_inputs), policy=tracing_policy(leaf_modules))
    if traced.shape_source == "real":
        warnings.warn(
            f"graphprune.flops: the forward of {type(model).__name__} needs data (not only shapes); shapes came "
            "from a real forward pass on the example input (correct, but as slow as the model)", stacklevel=3,
        )
    return traced


def params(model: nn.Module) -> int:
    """Number of parameters; a parameter shared by several modules is counted once.

    >>> params(nn.Conv2d(3, 8, 3))
    224
    """
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared tensor once


def count(model: nn.Module, example_inputs: Any, *, leaf_modules=(), rules: Mapping | None = None) -> dict:
    """Parameters and fvcore-convention flops (one multiply-add = one flop) for ``example_inputs``.

    Parameters
    ----------
    model : nn.Module
        Not modified and not run: a meta-device copy is traced with fake tensors.
    example_inputs : Tensor or tuple of Tensors
        Only their shapes and dtypes matter.
    leaf_modules : iterable
        Passed to :func:`graphprune.trace.trace`. A leaf whose class has no rule is reported as
        unsupported under its class name.
    rules : mapping, optional
        Per-call overrides of :data:`RULES`: ``{target: rule}`` or ``{target: None}`` to ignore.

    Returns
    -------
    dict
        ``{"params": int, "flops": int, "unsupported": {op_name: count}}``.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.PixelShuffle(2))
    >>> count(net, torch.zeros(1, 3, 10, 10))
    {'params': 224, 'flops': 21600, 'unsupported': {'PixelShuffle': 1}}
    """
    table = {**RULES, **(rules or {})}
    traced = _shape_trace(model, example_inputs, leaf_modules)
    flops, unsupported = _evaluate(traced.gm, table)
    return {"params": params(model), "flops": flops, "unsupported": dict(unsupported)}


def sr_mult_adds(model: nn.Module, scale: int, hr: tuple[int, int] = (720, 1280), *, input_channels: int = 3,
                 include_matmul: bool = False, exact_torchsummaryx: bool = True, leaf_modules=()) -> int:
    """Mult-Adds as the SR papers report them: conv (and linear) MACs without bias for an HR output ``hr``.

    The input is ``(1, input_channels, hr_h // scale, hr_w // scale)``, as SRP/ASSL's
    ``get_model_complexity`` feeds torchsummaryX (1280x720 output by default). Shapes come from fake
    tensors on a meta-device copy of the model: no forward is executed, so a 4.5 T Mult-Add network
    is counted in a fraction of a second.

    Parameters
    ----------
    scale : int
        Upscaling factor of the model.
    hr : (height, width)
        Size of the high-resolution output.
    input_channels : int
        3 for RGB networks, 1 for Y-channel networks (FSRCNN, VDSR).
    include_matmul : bool
        Also count matmul / bmm / einsum / attention (torchsummaryX counts modules only, so the
        papers' figures exclude them).
    exact_torchsummaryx : bool
        Reproduce torchsummaryX's class-name test: a conv subclass whose class name lacks "Conv"
        (the EDSR-family ``MeanShift``) counts ``weight.numel()`` instead of per pixel. With False
        every conv counts per output pixel.
    leaf_modules : iterable
        Passed to :func:`graphprune.trace.trace`.

    Notes
    -----
    A conv counts ``weight.numel() * prod(out_spatial)`` per call, for transposed convs too
    (torchsummaryX; this reproduces FSRCNN's 6.0G/5.0G/4.6G). A Linear counts
    ``prod(input.shape[:-1]) * in * out`` (torchsummaryX would count ``in * out`` once). Opaque
    leaf modules without a rule count zero; a warning names those that contain conv/linear layers.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))
    >>> sr_mult_adds(net, 2) == 3 * 12 * 9 * 640 * 360
    True
    """
    h, w = hr[0] // scale, hr[1] // scale
    traced = _shape_trace(model, torch.zeros(1, input_channels, h, w), leaf_modules)
    gm = traced.gm
    for node in gm.graph.nodes:
        if node.op in ("call_module", "call_function"):
            node.meta["gp_owner"] = _owner(node, traced.model)
    table = {**SR_RULES, **(SR_MATMUL_RULES if include_matmul else {})}
    if not exact_torchsummaryx:
        table.update({k: _sr_conv(False) for k in (*_CONV_MODULES, *_CONV_FUNCTIONS)})
    flops, _ = _evaluate(gm, table, report_missing=False)
    _warn_opaque(gm, table)
    return flops


def _warn_opaque(gm: fx.GraphModule, table: Mapping) -> None:
    opaque = []
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        m = gm.get_submodule(node.target)
        if _lookup(table, node, m) is _MISSING and any(
            isinstance(s, (nn.modules.conv._ConvNd, nn.Linear)) for s in m.modules()
        ):
            opaque.append(f"{node.target} ({type(m).__name__})")
    if opaque:
        warnings.warn(
            "sr_mult_adds: opaque leaf modules contain conv/linear layers that are not counted: "
            + ", ".join(opaque), stacklevel=3,
        )
