"""einops: rearrange, reduce, repeat, einsum, pack/unpack and the Rearrange/Reduce/EinMix layers.

An einops pattern is a reshape, a permutation, a reduction and an expand in one string, so its rule
needs no algebra of its own. The left side factors each input dim row-major into named axes
(``(h w)``: h outer), the right side composes axes into output dims in any order, an axis missing on
the right is reduced and an axis new on the right is repeated. Each axis is one atom; the atom
algebra aligns it with whatever else the model says about the same channels.

Lengths given by keyword (``h=heads``) are the literals a pruned graph must change: the rule keeps
the atom of every named length (``set_aux("lengths")``) and the rewrite (functions) or the resize
(layers, whose ``axes_lengths`` and recipe caches it updates) puts the new size back. Axes that
einops infers from the input shape follow by themselves. A numbered axis (``(c 2)``) is a literal of
the pattern string: it is blocked, never rewritten. Axes added by ``repeat`` are blocked, as
``expand``/``repeat`` block theirs. ``...`` stands for the input dims it covers, ``(...)`` for their
product, ``1`` and ``()`` for a dim of size 1.

Exactness: a ``sum`` or ``any`` over pruned channels drops zeros and stays exact; ``mean``, ``max``,
``min``, ``prod`` and ``all`` read every channel and are declared inexact on the reduced axes.

einops is optional: nothing is registered when it is not installed.
"""
from __future__ import annotations

import functools
import math
import operator

import torch.fx as fx

from ..trace import node_value
from .attention import couple_einsum
from .shape import _new_size_value, tie_sizes
from .table import register

try:
    import einops
    from einops.layers import torch as einops_layers
    from einops.parsing import AnonymousAxis, ParsedExpression, _ellipsis
except ImportError:  # einops is an optional dependency
    einops = None

__all__ = ["parse_pattern"]

EXACT_REDUCTIONS = ("sum", "any")


class _Unsupported(Exception):
    """Something this rule does not express: the op's channels are blocked with this reason."""


# --------------------------------------------------------------------------- patterns


def parse_pattern(pattern: str, ndim: int) -> tuple[list[list], list[list]]:
    """Axes of each input dim and of each output dim of ``pattern`` for an ``ndim``-dim input.

    An ellipsis becomes one axis per dim it covers (``…0``, ``…1``, ...); ``1`` and ``()`` are empty
    groups; numbered axes are einops' ``AnonymousAxis`` objects (each one distinct).

    >>> parse_pattern("b (h w) c -> b c h w", 3)
    ([['b'], ['h', 'w'], ['c']], [['b'], ['c'], ['h'], ['w']])
    >>> parse_pattern("b c ... -> b (...) c 1", 4)
    ([['b'], ['c'], ['…0'], ['…1']], [['b'], ['…0', '…1'], ['c'], []])
    """
    left_text, right_text = pattern.split("->")
    left, right = ParsedExpression(left_text), ParsedExpression(right_text)
    n_ellipsis = ndim - len(left.composition) + 1 if left.has_ellipsis else 0
    ellipsis = [f"{_ellipsis}{i}" for i in range(n_ellipsis)]
    lhs, rhs = _expand(left.composition, ellipsis), _expand(right.composition, ellipsis)
    if len(lhs) != ndim:
        raise _Unsupported(f"pattern {pattern!r} does not fit a {ndim}-dim input")
    return lhs, rhs


def _expand(composition, ellipsis: list[str]) -> list[list]:
    """einops' composition with the ellipsis replaced by the axes it stands for (alone, or in a product)."""
    out = []
    for group in composition:
        if group == _ellipsis:
            out.extend([axis] for axis in ellipsis)
        else:
            out.append([x for axis in group for x in (ellipsis if axis == _ellipsis else [axis])])
    return out


def _length(axis, lengths: dict) -> int | None:
    """A numbered axis's own length, a named one's keyword length, None when einops infers it."""
    if isinstance(axis, AnonymousAxis):
        return axis.value
    return lengths.get(axis)


def _concrete(lengths: dict) -> dict[str, int]:
    """Axis lengths as numbers: keyword values computed in the forward (``h=H // ws``) read at analysis."""
    out = {}
    for name, value in lengths.items():
        value = node_value(value) if isinstance(value, fx.Node) else value
        if type(value) is not int:
            raise _Unsupported(f"the length of axis {name} is not a number at analysis time")
        out[name] = value
    return out


# --------------------------------------------------------------------------- coupling


def _factor_dim(ctx, dim: int, group: list, lengths: dict, axes: dict) -> None:
    """An input dim is the row-major product of its axes; one axis length may be left to infer."""
    if not group:
        ctx.free(dim)
        return
    if len(group) == 1:
        axes[group[0]] = dim
        return
    sizes = [_length(a, lengths) for a in group]
    known = math.prod(s for s in sizes if s is not None)
    sizes = [ctx.size(dim) // known if s is None else s for s in sizes]
    axes.update(zip(group, ctx.factor(dim, sizes)))


def _compose_dim(ctx, dim: int, group: list, lengths: dict, axes: dict) -> None:
    """An output dim is the row-major product of its axes; an axis seen first here is repeated."""
    for a in group:
        if a not in axes:
            axes[a] = ctx.new(_length(a, lengths))
            ctx.block([axes[a]], "an axis added by repeat")
    atoms = [axes[a] for a in group]
    if not atoms:
        ctx.free(dim)
    elif len(atoms) == 1:
        ctx.unify(dim, atoms[0])
    else:
        ctx.prod(dim, atoms)


def _reduce(ctx, atoms: list[int], operation) -> None:
    """Reduced axes are consumed; statistics other than a sum are inexact over them."""
    if not atoms:
        return
    if callable(operation):
        ctx.block(atoms, "a reduction given as a callable")
        return
    ctx.free(*atoms)
    if operation not in EXACT_REDUCTIONS:
        ctx.inexact(atoms, f"{ctx.op_name} {operation!r} over these channels")


def couple_pattern(ctx, x: list[int], out: list[int], pattern: str, operation, lengths: dict) -> dict:
    """Relate input dims ``x`` and output dims ``out`` through ``pattern``; returns the atom of each axis."""
    left, right = parse_pattern(pattern, len(x))
    lengths, axes = _concrete(lengths), {}
    for dim, group in zip(x, left):
        _factor_dim(ctx, dim, group, lengths, axes)
    for dim, group in zip(out, right):
        _compose_dim(ctx, dim, group, lengths, axes)
    kept = {a for group in right for a in group}
    _reduce(ctx, [atom for a, atom in axes.items() if a not in kept], operation)
    ctx.block([atom for a, atom in axes.items() if isinstance(a, AnonymousAxis)],
              "a numbered axis: its length is a literal of the pattern")
    return axes


def _blocked_on_unsupported(couple):
    """Run ``couple``; a pattern it cannot express blocks the op's channels with the reason."""

    @functools.wraps(couple)
    def run(ctx) -> None:
        try:
            couple(ctx)
        except _Unsupported as exc:
            ctx.block_all(str(exc))

    return run


# --------------------------------------------------------------------------- rearrange / reduce / repeat


def _input_dims(ctx, tensor) -> list[int]:
    """The dims einops sees: a list of tensors is stacked on a new leading (blocked) axis."""
    if not isinstance(tensor, (list, tuple)):
        return ctx.dims(tensor)
    first, *rest = [ctx.dims(t) for t in tensor]
    for dims in rest:
        ctx.unify_dims(first, dims)
    stacked = ctx.new(len(tensor))
    ctx.block([stacked], "the axis einops stacks a list of tensors on")
    return [stacked, *first]


@_blocked_on_unsupported
def pattern_call(ctx) -> None:
    """``rearrange(x, pattern, **lengths)``, ``reduce(x, pattern, reduction, **lengths)``, ``repeat(x, pattern, ...)``."""
    reducing = ctx.node.target is einops.reduce
    names = ("tensor", "pattern", "reduction") if reducing else ("tensor", "pattern")
    bound = dict(zip(names, ctx.node.args))
    bound.update((k, v) for k, v in ctx.node.kwargs.items() if k in names)
    lengths = {k: v for k, v in ctx.node.kwargs.items() if k not in names}
    operation = bound["reduction"] if reducing else ctx.node.target.__name__
    axes = couple_pattern(ctx, _input_dims(ctx, bound["tensor"]), ctx.out(), bound["pattern"], operation, lengths)
    ctx.set_aux("lengths", {name: axes[name] for name in lengths})
    for name, value in lengths.items():  # ch=c with c read from another tensor: a size tie, as for view
        tie_sizes(ctx, [value], [axes[name]])


def _new_length(arg, planned: int, old: int, R):
    """The length to pass: the planned one, unless a run-time value (``h=H // ws``) already gives it."""
    if not isinstance(arg, fx.Node):
        return planned
    try:
        follows = _new_size_value(arg, R, {}) == planned
    except Exception:  # noqa: BLE001 - not pure size arithmetic: kept unless the plan changes this axis
        follows = planned == old
    return arg if follows else planned


def _same(a, b) -> bool:
    """Unchanged argument: the same node, or an equal number (nodes never compare by value)."""
    return a is b or not isinstance(a, fx.Node) and not isinstance(b, fx.Node) and a == b


def _rewrite_lengths(node, R):
    """``h=6`` becomes ``h=3`` when heads were pruned; lengths einops infers are left to it."""
    new = {name: _new_length(node.kwargs[name], R.atom_size(atom), R.atoms.size(atom), R)
           for name, atom in R.aux(node).get("lengths", {}).items()}
    changed = {k: v for k, v in new.items() if not _same(v, node.kwargs[k])}
    return (node.args, {**node.kwargs, **changed}) if changed else None


# --------------------------------------------------------------------------- einsum


def _einsum_specs(pattern: str) -> tuple[list[list[str]], list[str]]:
    """Axis names per operand and of the output of an einops einsum pattern (``…`` marks an ellipsis).

    >>> _einsum_specs("b h i d, b h j d -> b h i j")
    ([['b', 'h', 'i', 'd'], ['b', 'h', 'j', 'd']], ['b', 'h', 'i', 'j'])
    """
    left, right = pattern.split("->")

    def names(text, **kw):
        parsed = ParsedExpression(text, allow_underscore=True, **kw)
        if any(g != _ellipsis and len(g) != 1 for g in parsed.composition):
            raise _Unsupported(f"einsum pattern {pattern!r} composes axes")
        return [g if g == _ellipsis else g[0] for g in parsed.composition]

    return [names(t, allow_duplicates=True) for t in left.split(",")], names(right)


@_blocked_on_unsupported
def einsum(ctx) -> None:
    """``einops.einsum(*tensors, pattern)``: the pattern comes last."""
    *tensors, pattern = ctx.node.args
    specs, out_spec = _einsum_specs(pattern)
    couple_einsum(ctx, specs, [ctx.dims(t) for t in tensors], out_spec)


# --------------------------------------------------------------------------- pack / unpack


def _star(pattern: str) -> tuple[int, int]:
    """Numbers of axes before and after the ``*`` of a pack pattern."""
    axes = pattern.split()
    return axes.index("*"), len(axes) - axes.index("*") - 1


def _packed_piece(ctx, dims: list[int], before: int, after: int) -> int:
    """The part of the packed axis one tensor fills: the product of its dims matched by ``*``."""
    middle = dims[before:len(dims) - after]
    piece = ctx.new(math.prod(ctx.size(a) for a in middle))
    ctx.prod(piece, middle)
    return piece


def _couple_packed(ctx, whole: list[int], parts: list[list[int]], pattern: str) -> list[int]:
    """``whole`` holds the ``parts`` side by side along its ``*`` axis; the other axes are shared."""
    before, after = _star(pattern)
    for dims in parts:
        ctx.unify_dims(dims[:before] + dims[len(dims) - after:], whole[:before] + whole[before + 1:])
    pieces = [_packed_piece(ctx, dims, before, after) for dims in parts]
    ctx.cat(whole[before], pieces)
    return pieces


@_blocked_on_unsupported
def pack(ctx) -> None:
    """``pack(tensors, "b * c")``: a concatenation of each tensor's ``*`` dims, flattened."""
    tensors, pattern = ctx.arg(0, "tensors"), ctx.arg(1, "pattern")
    _couple_packed(ctx, ctx.outs()[0], [ctx.dims(t) for t in tensors], pattern)


def _packed_by(shapes) -> list | None:
    """The tensors whose shapes ``shapes`` reads at run time, when it is ``pack(...)[1]``."""
    src = shapes.args[0] if isinstance(shapes, fx.Node) and shapes.target is operator.getitem else None
    if isinstance(src, fx.Node) and src.target is einops.pack and shapes.args[1] == 1:
        return list(src.args[0] if src.args else src.kwargs["tensors"])
    return None


@_blocked_on_unsupported
def unpack(ctx) -> None:
    """The pieces of the ``*`` axis; shapes taken from ``pack`` follow its inputs, literal ones are rewritten."""
    x, shapes, pattern = ctx.dims(ctx.arg(0, "tensor")), ctx.arg(1, "packed_shapes"), ctx.arg(2, "pattern")
    outs = [o for o in ctx.outs() if o is not None]
    _couple_packed(ctx, x, outs, pattern)
    sources = _packed_by(shapes)
    if sources is not None:
        before, after = _star(pattern)
        for o, t in zip(outs, sources):
            ctx.unify_dims(o[before:len(o) - after], ctx.dims(t)[before:len(ctx.dims(t)) - after])
    elif isinstance(shapes, fx.Node):
        before, after = _star(pattern)
        ctx.block([a for o in outs for a in o[before:len(o) - after]], "unpacked shapes read at run time")


def _rewrite_unpack(node, R):
    """Literal packed shapes take the planned sizes of the dims they give (``-1`` and run-time sizes stay)."""
    shapes = node.args[1] if len(node.args) > 1 else node.kwargs["packed_shapes"]
    if isinstance(shapes, fx.Node):
        return None
    before, _ = _star(node.args[2] if len(node.args) > 2 else node.kwargs["pattern"])
    def length(s, i: int, d: int):
        return s if s == -1 else _new_length(s, R.size(node, d, item=i), R.old_size(node, d, item=i), R)

    new = [tuple(length(s, i, before + k) for k, s in enumerate(shape)) for i, shape in enumerate(shapes)]
    if all(_same(a, b) for old, shape in zip(shapes, new) for a, b in zip(old, shape)):
        return None
    return (node.args[0], new, *node.args[2:]), node.kwargs


# --------------------------------------------------------------------------- layers


def _set_lengths(layer, lengths: dict[str, int]) -> None:
    """New lengths for the axes ``layer`` stores, and the recipe einops built from them at construction."""
    new = {**layer.axes_lengths, **{k: v for k, v in lengths.items() if k in layer.axes_lengths}}
    if new == layer.axes_lengths:
        return
    layer.axes_lengths = new
    layer._axes_lengths = tuple(new.items())
    if hasattr(layer, "_multirecipe"):
        layer._multirecipe = layer.multirecipe()


def _resize_layer(module, new_size, aux) -> None:
    """``Rearrange``/``Reduce``: the pruned sizes of the axes whose lengths the layer was built with."""
    _set_lengths(module, {name: new_size(atom) for name, atom in aux.get("lengths", {}).items()})


@_blocked_on_unsupported
def layer(ctx) -> None:
    """``Rearrange(pattern, **lengths)`` and ``Reduce(pattern, reduction, **lengths)``: the pattern of the function."""
    m = ctx.module
    axes = couple_pattern(ctx, ctx.dims(ctx.tensor_args()[0]), ctx.out(), m.pattern,
                          getattr(m, "reduction", "rearrange"), m.axes_lengths)
    ctx.set_aux("lengths", {name: axes[name] for name in m.axes_lengths})


def _resize_einmix(module, new_size, aux) -> None:
    """EinMix keeps its lengths, and hands the input's to its inner Rearrange (the weights are sliced already)."""
    lengths = {name: new_size(atom) for name, atom in aux.get("lengths", {}).items()}
    module.axes_lengths = {**module.axes_lengths, **lengths}
    for inner in (module.pre_rearrange, module.post_rearrange):
        if inner is not None:
            _set_lengths(inner, lengths)


def _is_ellipsis(axis) -> bool:
    """An axis :func:`parse_pattern` made for a dim the ellipsis covers."""
    return isinstance(axis, str) and axis.startswith(_ellipsis)


@_blocked_on_unsupported
def einmix(ctx) -> None:
    """EinMix: the pattern's left side, an einsum with ``weight`` (plus ``bias``), the pattern's right side.

    Weight axes the output keeps are its filters (role "out"), the contracted ones its inputs ("in");
    the bias has one dim per output axis outside the ellipsis, sized where ``bias_shape`` names it.
    """
    m = ctx.module
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    left, right = parse_pattern(m.pattern, len(x))
    lengths, axes = _concrete(m.axes_lengths), {}
    for dim, group in zip(x, left):
        _factor_dim(ctx, dim, group, lengths, axes)
    produced = [a for group in right for a in group]
    weight_axes = [group[0] for group in ParsedExpression(m.weight_shape).composition]
    w = ctx.param("weight", tuple("out" if a in produced else "in" for a in weight_axes))
    for a, atom in zip(weight_axes, w):
        ctx.unify(axes.setdefault(a, atom), atom)
    if m.bias is not None:
        biased = ParsedExpression(m.bias_shape).identifiers
        flat = [a for a in produced if not _is_ellipsis(a)]
        for a, atom in zip(flat, ctx.param("bias", tuple("out" if a in biased else None for a in flat))):
            ctx.unify(axes[a], atom) if a in biased else ctx.free(atom)
    for dim, group in zip(out, right):
        _compose_dim(ctx, dim, group, lengths, axes)
    ctx.free(*(atom for a, atom in axes.items() if a not in produced))  # contracted: a sum, exact
    ctx.set_aux("lengths", {name: axes[name] for name in m.axes_lengths})


# --------------------------------------------------------------------------- registration

if einops is not None:
    register(einops.rearrange, einops.reduce, einops.repeat, rewrite=_rewrite_lengths, name="einops pattern")(pattern_call)
    register(einops.einsum, name="einops.einsum")(einsum)
    register(einops.pack, name="einops.pack")(pack)
    register(einops.unpack, rewrite=_rewrite_unpack, name="einops.unpack")(unpack)
    register(einops_layers.Rearrange, einops_layers.Reduce, resize=_resize_layer, name="einops layer")(layer)
    register(einops_layers.EinMix, params=("weight", "bias"), resize=_resize_einmix, name="EinMix")(einmix)
