"""Elementwise ops: unary passthrough, binary/ternary with broadcasting, activations with parameters.

Broadcasting is aligned from the right: a dimension of equal size couples index by index; a size-1
dimension that is broadcast couples nothing (it has no channels to prune).

Every op here is exact on channels: it computes each channel from the same channel of its inputs,
so a removed channel changes nothing else (``F.normalize`` too: a zero adds nothing to the L2 norm;
``cumsum`` too: a zero adds nothing to the running sum). Softmax, which is not, is in ``reduce``.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from .table import register

__all__ = ["passthrough", "broadcast"]


def passthrough(ctx) -> None:
    """Output dimension i is input dimension i (first tensor argument).

    Further tensor arguments of these ops only lend a dtype or device (``type_as``, ``to``).
    """
    first, *rest = ctx.tensor_args()
    if ctx.b.dims_of(ctx.node) is None:  # x.type() with no dtype: a string, the tensor is only read
        ctx.free(*ctx.dims(first))
    else:
        ctx.unify_dims(ctx.dims(first), ctx.out())
    for arg in rest:
        ctx.free(*ctx.dims(arg))


def broadcast(ctx) -> None:
    """Every tensor argument couples with the output where sizes agree (right-aligned)."""
    out = ctx.out()
    for arg in ctx.tensor_args():
        dims = ctx.dims(arg)
        offset = len(out) - len(dims)
        for i, a in enumerate(dims):
            o = out[offset + i]
            if ctx.size(a) == ctx.size(o):
                ctx.unify(a, o)
            elif ctx.size(a) == 1:
                ctx.free(a)
            else:
                ctx.block([a, o], "broadcast with incompatible sizes")
        ctx.free(*out[:offset])  # leading dims only present in the output come from other args


UNARY_FUNCTIONS = [
    torch.relu, torch.relu_, F.relu, F.relu6, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
    F.hardswish, F.hardsigmoid, F.hardtanh, F.leaky_relu, F.softplus, F.softsign, F.tanhshrink,
    F.logsigmoid, F.sigmoid, F.tanh, torch.sigmoid, torch.tanh, torch.exp, torch.log, torch.sqrt,
    torch.rsqrt, torch.abs, torch.neg, torch.sin, torch.cos, torch.erf, torch.square, torch.clamp,
    torch.clip, torch.reciprocal, torch.sign, torch.round, torch.floor, torch.ceil, F.dropout,
    F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, torch.dropout, F.normalize, torch.nan_to_num, torch.clone, torch.detach,
    operator.neg, operator.pos, operator.invert, torch.zeros_like, torch.ones_like,
    torch.empty_like, torch.full_like, torch.rand_like, torch.randn_like, torch.log1p, torch.expm1,
    torch.erfinv, torch.atan, torch.cumsum,
]
UNARY_METHODS = [
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "exp", "exp_", "log", "sqrt", "rsqrt",
    "abs", "neg", "clamp", "clamp_", "clip", "clamp_min", "clamp_max", "contiguous", "float",
    "double", "half", "bfloat16", "to", "type", "type_as", "detach", "clone", "square", "pow_", "mul_", "div_", "add_", "sub_", "reciprocal", "sign", "round",
    "floor", "ceil", "cpu", "cuda", "requires_grad_", "zero_", "fill_", "uniform_", "normal_",
    "sin", "cos", "erf", "cumsum", "nan_to_num", "log1p", "expm1",
]
UNARY_MODULES = [
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign,
    nn.Tanhshrink, nn.LogSigmoid, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.AlphaDropout, nn.Threshold,
]
BINARY_FUNCTIONS = [
    operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.pow,
    operator.mod, operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.and_,
    operator.or_, operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
    torch.add, torch.sub, torch.subtract, torch.mul, torch.multiply, torch.div, torch.divide,
    torch.true_divide, torch.pow, torch.maximum, torch.minimum, torch.where, torch.lerp,
    torch.addcmul, torch.addcdiv, torch.eq, torch.ne, torch.lt, torch.gt, torch.le, torch.ge,
    torch.logical_and, torch.logical_or, torch.masked_fill, torch.fmod, torch.remainder,
    torch.atan2, torch.hypot,
]
BINARY_METHODS = [
    "add", "sub", "mul", "div", "pow", "true_divide", "maximum", "minimum", "masked_fill",
    "masked_fill_", "lerp", "addcmul", "addcdiv", "eq", "ne", "lt", "gt", "le", "ge", "__add__",
    "__mul__", "__sub__", "__truediv__", "__radd__", "__rmul__", "where", "expand_as",
]

register(*UNARY_FUNCTIONS, *UNARY_METHODS, *UNARY_MODULES, name="passthrough")(passthrough)
register(*BINARY_FUNCTIONS, *BINARY_METHODS, name="broadcast")(broadcast)


def _resize_prelu(module, new_size, aux) -> None:
    module.num_parameters = module.weight.shape[0]


@register(nn.PReLU, params=("weight",), resize=_resize_prelu)
def prelu(ctx) -> None:
    """PReLU: passthrough; a per-channel slope (num_parameters > 1) follows channel dim 1."""
    passthrough(ctx)
    weight = ctx.param("weight", ("out",))
    if ctx.size(weight[0]) > 1:
        ctx.unify(weight[0], ctx.out()[1 if len(ctx.out()) > 1 else 0])


@register(F.prelu)
def prelu_functional(ctx) -> None:
    x, w = ctx.tensor_args()[:2]
    passthrough(ctx)
    wd = ctx.dims(w)
    if ctx.size(wd[0]) > 1:
        ctx.unify(wd[0], ctx.out()[1])
    else:
        ctx.free(*wd)

