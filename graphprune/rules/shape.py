"""Shape ops: concatenation and splitting, slicing, reshapes, permutations, pixel shuffle, padding.

These rules give channels their *structure*: ``cat`` places spaces side by side, ``split`` and
slicing cut one into segments, a reshape factors one dimension into several (row-major) or merges
several into one, pixel shuffle is the reshape ``C·r·r → (C, r, r)`` followed by a permutation into
space. Channel shuffle is a reshape, a transpose and a reshape, and needs no rule of its own.

The reshape rule works on the propagated shapes alone: it groups input and output dimensions whose
sizes multiply to the same number and declares both sides factorizations of one space; the atom
algebra aligns them or blocks them. Its ``rewrite`` later sets the shape arguments of a pruned
``view``/``reshape``: every dimension that holds channels gets its new constant size, every other
dimension keeps its argument (a batch or spatial size read at run time stays dynamic).
"""
from __future__ import annotations

import math
import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..trace import node_value, set_tensor_attribute
from .table import register, replace_arg

__all__ = ["reshape"]


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


# --------------------------------------------------------------------------- cat / stack


@register(torch.cat, torch.concat, torch.concatenate)
def cat(ctx) -> None:
    tensors = [t for t in ctx.arg(0, "tensors") if ctx.dims(t) is not None]
    out = ctx.out()
    dim = _norm_dim(ctx.arg(1, "dim", 0), len(out))
    parts = [ctx.dims(t) for t in tensors]
    ctx.cat(out[dim], [p[dim] for p in parts])
    for p in parts:
        ctx.unify_dims(p[:dim] + p[dim + 1:], out[:dim] + out[dim + 1:])


@register(torch.stack)
def stack(ctx) -> None:
    tensors = ctx.arg(0, "tensors")
    out = ctx.out()
    dim = _norm_dim(ctx.arg(1, "dim", 0), len(out))
    ctx.block([out[dim]], "the stacked dimension of torch.stack")
    for t in tensors:
        ctx.unify_dims(ctx.dims(t), out[:dim] + out[dim + 1:])


# --------------------------------------------------------------------------- split family


def _split_dim(ctx, default_dim: int = 0) -> int:
    ndim = len(ctx.dims(ctx.arg(0, "tensor")))
    return _norm_dim(ctx.arg(2, "dim", default_dim), ndim)


def _couple_pieces(ctx, dim: int) -> list[int]:
    x = ctx.dims(ctx.arg(0, "tensor"))
    pieces = [o for o in ctx.outs() if o is not None]
    for p in pieces:
        ctx.unify_dims(x[:dim] + x[dim + 1:], p[:dim] + p[dim + 1:])
    atoms = ctx.cat(x[dim], [p[dim] for p in pieces])
    ctx.set_aux("pieces", [p[dim] for p in pieces])
    return atoms


def _rewrite_split(node, R):
    """An explicit list of sizes, which also turns an int split_size into a list."""
    sizes = [R.atom_size(a) for a in R.aux(node)["pieces"]]
    given = node.args[1] if len(node.args) > 1 else node.kwargs.get("split_size_or_sections",
                                                                    node.kwargs.get("split_size"))
    if isinstance(given, (list, tuple)) and list(given) == sizes:
        return None
    if isinstance(given, int) and all(s == given for s in sizes[:-1]) and sizes[-1] <= given:
        return None
    args = (node.args[0], sizes, *node.args[2:])
    kwargs = {k: v for k, v in node.kwargs.items() if k not in ("split_size_or_sections", "split_size")}
    return args, kwargs


@register(torch.split, "split", torch.tensor_split, "tensor_split", rewrite=_rewrite_split)
def split(ctx) -> None:
    _couple_pieces(ctx, _split_dim(ctx))


@register(torch.chunk, "chunk")
def chunk(ctx) -> None:
    """Chunks stay equal-sized only if they lose the same channels: the pieces are unified."""
    dim = _split_dim(ctx)
    _couple_pieces(ctx, dim)
    pieces = [o[dim] for o in ctx.outs() if o is not None]
    if len({ctx.size(p) for p in pieces}) == 1:
        for p in pieces[1:]:
            ctx.unify(pieces[0], p)
    else:
        ctx.block(pieces, "torch.chunk with unequal chunks")


@register(torch.unbind, "unbind")
def unbind(ctx) -> None:
    x = ctx.dims(ctx.arg(0, "input"))
    dim = _norm_dim(ctx.arg(1, "dim", 0), len(x))
    ctx.block([x[dim]], "the unbound dimension of unbind")
    for o in ctx.outs():
        ctx.unify_dims(x[:dim] + x[dim + 1:], o)


# --------------------------------------------------------------------------- getitem


def _index_items(index) -> list:
    return list(index) if isinstance(index, tuple) else [index]


def _rewrite_getitem(node, R):
    """Move slice bounds when channels before or inside a slice were pruned; others stay as written."""
    slices = R.aux(node).get("slices")
    if not slices:
        return None
    items = _index_items(node.args[1])
    changed = False
    for pos, (kind, before, seg) in slices.items():
        d = _dim_of(items, pos)
        size, old_size = R.size(node.args[0], d), R.old_size(node.args[0], d)
        start = R.atom_size(before)
        if kind == "int":
            old = items[pos] if items[pos] >= 0 else old_size + items[pos]
            if start != old:
                items[pos], changed = (start if items[pos] >= 0 else start - size), True
            continue
        new = _moved_slice(items[pos], start, R.atom_size(seg), size)
        if new != items[pos]:
            items[pos], changed = new, True
    if not changed:
        return None
    index = tuple(items) if isinstance(node.args[1], tuple) else items[0]
    return (node.args[0], index), node.kwargs


def _moved_slice(old: slice, start: int, length: int, size: int) -> slice:
    """``old`` with its segment now at ``start`` of ``length`` in a dim of ``size``, written as ``old`` was:
    an open end stays open, a bound counted from the end stays counted from the end (``2:-2`` of a crop)."""
    stop = start + length
    new_start = None if old.start is None and start == 0 else (start - size if (old.start or 0) < 0 else start)
    if old.stop is None:
        new_stop = None
    elif old.stop < 0:
        new_stop = stop - size if stop < size else None
    else:
        new_stop = stop
    return slice(new_start, new_stop, old.step)


def _dim_of(items: list, pos: int) -> int:
    """The tensor dim indexed by ``items[pos]`` (positions before an Ellipsis only)."""
    return sum(1 for it in items[:pos] if it is not None)


def _index_region(ctx, x: list[int], items: list) -> tuple[list | None, dict]:
    """What basic indexing ``x[items]`` keeps: for each dim of the result, the atom of ``x`` it is (a
    whole dim or a slice's segment) or None (a new axis); and the slices and ints whose bounds move when
    channels before them are pruned. None for advanced indexing (tensor or list indices)."""
    if any(not (it is None or it is Ellipsis or type(it) is int or isinstance(it, slice)) for it in items):
        return None, {}
    n_real = sum(1 for it in items if it is not None and it is not Ellipsis)
    expanded: list[tuple[int | None, object]] = []  # (position in the index tuple, item)
    for pos, it in enumerate(items):
        if it is Ellipsis:
            expanded.extend([(None, slice(None))] * (len(x) - n_real))
        else:
            expanded.append((pos, it))
    expanded.extend([(None, slice(None))] * (len(x) - sum(1 for _, it in expanded if it is not None)))
    region, slices, i = [], {}, 0
    for pos, it in expanded:
        if it is None:
            region.append(None)
            continue
        size = ctx.size(x[i])
        if type(it) is int:  # a one-channel segment; the index moves if channels before it go
            at = it + size if it < 0 else it
            before, seg, after = ctx.split(x[i], [at, 1, size - at - 1])
            ctx.free(*(a for a in (before, seg, after) if a is not None))
            slices[pos] = ("int", before, None)
        else:
            bounds = [_concrete(b) for b in (it.start, it.stop, it.step)]
            if any(b is _UNKNOWN for b in bounds) or bounds[2] not in (None, 1):
                ctx.block([x[i]], "a stepped slice or a slice with unknown bounds")
                region.append("blocked")
                i += 1
                continue
            start, stop, _ = slice(*bounds).indices(size)
            stop = max(stop, start)
            if (start, stop) == (0, size):
                region.append(x[i])
            else:
                before, seg, after = ctx.split(x[i], [start, stop - start, size - stop])
                ctx.free(*(a for a in (before, after) if a is not None))
                region.append(seg)
                if all(type(b) is int or b is None for b in (it.start, it.stop)):
                    slices[pos] = ("slice", before, seg)
                else:  # bounds computed at run time (x[:, :h] after padding): spatial, or re-checked
                    ctx.block([seg], "a slice whose bounds are computed at run time")
        i += 1
    return region, slices


_UNKNOWN = object()


def _concrete(bound):
    """A slice bound as an int: literals as they are, run-time sizes by their traced value."""
    if bound is None or type(bound) is int:
        return bound
    if isinstance(bound, fx.Node):
        value = node_value(bound)
        return value if type(value) is int else _UNKNOWN
    return _UNKNOWN


def _advanced(ctx, x: list[int], items: list, out: list[int]) -> None:
    """Indexing with one tensor (``table[index]``, ``x[mask]``) among basic items: the dims it indexes and
    the dims it makes are blocked, the others pass as in basic indexing (the heads of a relative
    position table). A boolean mask's selection has a size that depends on the data: the surgery's
    check does not compare it. Anything else is blocked whole."""
    tensors = [p for p, it in enumerate(items) if not (it is None or type(it) is int or isinstance(it, slice))]
    if len(tensors) != 1 or Ellipsis in items or not isinstance(items[tensors[0]], fx.Node):
        ctx.block(list(x) + list(out), "indexing with several tensors or a list")
        return
    p = tensors[0]
    index = node_value(items[p])
    consumed = index.ndim if index.dtype == torch.bool else 1
    made = 1 if index.dtype == torch.bool else index.ndim
    before = sum(1 for it in items[:p] if it is not None)  # x dims indexed before the tensor
    mid = x[before:before + consumed]
    head, head_slices = _index_region(ctx, x[:before], items[:p])
    tail, _ = _index_region(ctx, x[before + consumed:], items[p + 1:])
    ctx.block(mid, "indexed with a tensor")
    made_dims = out[len(head):len(head) + made]
    ctx.block(made_dims, "made by indexing with a tensor")
    if index.dtype == torch.bool:
        ctx.dynamic(made_dims, "a boolean mask's selection")
    if ctx.dims(items[p]) is not None:  # its values are positions: pruning it would move them
        ctx.block(ctx.dims(items[p]), "an index tensor")
    _unify_region(ctx, head + [None] * made + tail, out)


def _unify_region(ctx, region: list, out: list[int]) -> None:
    for atom, o in zip(region, out):
        if atom is None:
            ctx.free(o)
        elif atom == "blocked":
            ctx.block([o], "a stepped slice or a slice with unknown bounds")
        else:
            ctx.unify(atom, o)


@register(operator.getitem, rewrite=_rewrite_getitem)
def getitem(ctx) -> None:
    """Tensor indexing with ints, slices, None and Ellipsis; indexing with tensors is blocked."""
    x, out = ctx.dims(ctx.arg(0, "x")), ctx.out()
    items = _index_items(ctx.arg(1, "index"))
    region, slices = _index_region(ctx, x, items)
    if region is None:
        return _advanced(ctx, x, items, out)
    _unify_region(ctx, region, out)
    ctx.set_aux("slices", slices)


def _rewrite_setitem(node, R):
    """``x[index] = y``: the index moves like a getitem's."""
    moved = _rewrite_getitem(node, R)
    return None if moved is None else ((*moved[0], *node.args[2:]), node.kwargs)


@register(operator.setitem, rewrite=_rewrite_setitem, sizes=True)
def setitem(ctx) -> None:
    """``x[index] = y`` (in place: masks and windows built in forward): ``y`` fills the indexed region of ``x``,
    broadcast from the right like an elementwise op."""
    x, items = ctx.dims(ctx.node.args[0]), _index_items(ctx.node.args[1])
    y = ctx.dims(ctx.node.args[2]) if isinstance(ctx.node.args[2], fx.Node) else None
    region, slices = _index_region(ctx, x, items)
    if region is None:
        ctx.block(list(x) + list(y or []), "assigning with a tensor or a list index")
        return
    ctx.free(*x)
    ctx.set_aux("slices", slices)
    for a, r in zip(reversed(y or []), reversed(region)):
        if r not in (None, "blocked") and ctx.size(a) == ctx.size(r):
            ctx.unify(a, r)
        elif ctx.size(a) == 1:
            ctx.free(a)
        else:
            ctx.block([a], "assigned with incompatible sizes")
    if y is not None and len(y) > len(region):
        ctx.block(y[:len(y) - len(region)], "assigned with more dims than the region")


def _is_plain(s: slice) -> bool:
    return all(v is None or isinstance(v, int) for v in (s.start, s.stop, s.step))


# --------------------------------------------------------------------------- reshape family


def _reshape_groups(in_sizes, out_sizes):
    """Pair runs of input and output dims with equal products (size-1 dims excluded)."""
    ins = [i for i, s in enumerate(in_sizes) if s != 1]
    outs = [j for j, s in enumerate(out_sizes) if s != 1]
    groups, a, b = [], 0, 0
    while a < len(ins) and b < len(outs):
        gi, go = [ins[a]], [outs[b]]
        pi, po = in_sizes[ins[a]], out_sizes[outs[b]]
        a, b = a + 1, b + 1
        while pi != po:
            if pi < po:
                gi.append(ins[a]); pi *= in_sizes[ins[a]]; a += 1
            else:
                go.append(outs[b]); po *= out_sizes[outs[b]]; b += 1
        groups.append((gi, go))
    return groups


def reshape_dims(ctx, x_dims, out_dims) -> None:
    """Relate the dims of a reshape by their sizes alone."""
    in_sizes = [ctx.size(a) for a in x_dims]
    out_sizes = [ctx.size(a) for a in out_dims]
    ctx.free(*[a for a, s in zip(x_dims, in_sizes) if s == 1], *[a for a, s in zip(out_dims, out_sizes) if s == 1])
    if math.prod(in_sizes) != math.prod(out_sizes):
        ctx.block(list(x_dims) + list(out_dims), "reshape changes the number of elements")
        return
    for gi, go in _reshape_groups(in_sizes, out_sizes):
        if len(gi) == 1 and len(go) == 1:
            ctx.unify(x_dims[gi[0]], out_dims[go[0]])
            continue
        whole = ctx.new(math.prod(in_sizes[i] for i in gi))
        ctx.prod(whole, [x_dims[i] for i in gi])
        ctx.prod(whole, [out_dims[j] for j in go])


def _shape_args(node):
    """The requested shape of view/reshape as a list, and how to put a new one back."""
    if node.op == "call_method":
        rest = node.args[1:]
        if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
            return list(rest[0]), lambda new: ((node.args[0], tuple(new)), node.kwargs)
        if rest:
            return list(rest), lambda new: ((node.args[0], *new), node.kwargs)
        return list(node.kwargs["shape" if "shape" in node.kwargs else "size"]), \
            lambda new: (node.args, {**node.kwargs, "shape": tuple(new)})
    shape = node.args[1] if len(node.args) > 1 else node.kwargs["shape"]
    return list(shape), lambda new: ((node.args[0], tuple(new)), {})


def _new_size_arg(node, d: int, arg, R):
    """The argument to put for output dim ``d`` of a shape-taking op, or ``arg`` itself when it stays.

    A literal follows a channel count the plan changes. A run-time size (``C // heads``) stays when,
    recomputed with the new sizes, it still gives the planned size (so batch and spatial arguments
    keep following the input); when it reads another tensor's channels that were pruned differently
    (VOLO: ``C`` of the residual stream sizing the unfolded values), the planned size replaces it.
    """
    if arg == -1:
        return arg
    planned = R.size(node, d)
    if not isinstance(arg, fx.Node):
        return planned if planned != R.old_size(node, d) else arg
    try:
        follows = _new_size_value(arg, R, {}) == planned
    except Exception:  # noqa: BLE001 - not pure size arithmetic: the strict pass fixes channel dims
        follows = not (R.strict and R.static(node, d))
    return arg if follows else planned


def _rewrite_reshape(node, R):
    """New sizes for the channel-holding dims; batch and spatial arguments stay as they were."""
    shape, put = _shape_args(node)
    if len(shape) == 1 and isinstance(shape[0], fx.Node) and R.ndim(node) != 1:
        return _rewrite_whole_shape(node, shape[0], R)
    new = [_new_size_arg(node, d, arg, R) for d, arg in enumerate(shape)]
    return None if new == shape else put(new)


def _rewrite_whole_shape(node, shape: fx.Node, R):
    """``y.reshape(x.shape)``: kept while ``x``'s new shape is the planned one, else the planned sizes."""
    planned = tuple(R.size(node, d) for d in range(R.ndim(node)))
    try:
        if tuple(_new_size_value(shape, R, {})) == planned:
            return None
    except Exception:  # noqa: BLE001 - not pure size arithmetic: leave it to the shape check
        return None
    return (node.args[0], planned), {}


def _rewrite_unflatten(node, R):
    """``unflatten(dim, sizes)``: new sizes for the channel-holding dims it creates."""
    x = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs["dim"]
    sizes = list(node.args[2] if len(node.args) > 2 else node.kwargs["sizes"])
    start = dim + R.ndim(x) if dim < 0 else dim
    new = [_new_size_arg(node, start + k, arg, R) for k, arg in enumerate(sizes)]
    if new == sizes:
        return None
    return (x, dim, tuple(new)), {}


def _resize_unflatten(module, new_size, aux) -> None:
    module.unflattened_size = tuple(new_size(a) for a in aux["created"])


def reshape(ctx) -> None:
    """Reshape-like ops: dims related by their sizes alone (see :func:`reshape_dims`), and size ties.

    A size argument the forward reads from another tensor (``x.view(b, h, w, C)`` with ``C`` from
    ``x.shape``, ``qkv.reshape(b, n, 3, heads, C // heads)``) is recomputed at run time by the user's
    code: the dim it sizes is tied to that tensor's dim (:func:`tie_sizes`), so the pruned model keeps
    computing the right size with its own code.
    """
    first, *rest = ctx.tensor_args()
    reshape_dims(ctx, ctx.dims(first), ctx.out())
    for other in rest:  # view_as / reshape_as: the output has the other tensor's shape
        ctx.unify_dims(ctx.dims(other), ctx.out())
    if ctx.node.target in ("reshape", "view", torch.reshape):
        tie_sizes(ctx, _shape_args(ctx.node)[0], ctx.out())


def unflatten_module(ctx) -> None:
    reshape(ctx)
    m, x = ctx.module, ctx.dims(ctx.tensor_args()[0])
    start = m.dim + len(x) if m.dim < 0 else m.dim
    ctx.set_aux("created", ctx.out()[start:start + len(m.unflattened_size)])


register(torch.reshape, "reshape", "view", rewrite=_rewrite_reshape, name="reshape")(reshape)
register(torch.unflatten, "unflatten", rewrite=_rewrite_unflatten, name="unflatten")(reshape)
register(nn.Unflatten, resize=_resize_unflatten, name="unflatten_module")(unflatten_module)
register(torch.flatten, "flatten", torch.squeeze, "squeeze", torch.unsqueeze, "unsqueeze", "view_as",
         "reshape_as", torch.ravel, "ravel", nn.Flatten, torch.atleast_2d, name="reshape_no_sizes")(reshape)


# --------------------------------------------------------------------------- permutations


def _permutation(ctx) -> list[int]:
    node = ctx.node
    ndim = len(ctx.dims(ctx.tensor_args()[0]))
    target = node.target
    if target in ("permute", torch.permute):
        dims = ctx.arg(1, "dims")
        if isinstance(dims, int) or node.op == "call_method" and len(node.args) > 2:
            dims = list(node.args[1:])
        return [_norm_dim(d, ndim) for d in dims]
    if target in ("transpose", torch.transpose, "swapaxes", torch.swapaxes, "swapdims"):
        a, b = (_norm_dim(ctx.arg(i, n), ndim) for i, n in ((1, "dim0"), (2, "dim1")))
        perm = list(range(ndim))
        perm[a], perm[b] = perm[b], perm[a]
        return perm
    if target in ("t", torch.t, "T", "mT"):
        perm = list(range(ndim))
        if ndim >= 2:
            perm[-1], perm[-2] = perm[-2], perm[-1]
        return perm
    src, dst = ctx.arg(1, "source"), ctx.arg(2, "destination")  # movedim
    src, dst = ([src], [dst]) if isinstance(src, int) else (list(src), list(dst))
    src, dst = [_norm_dim(s, ndim) for s in src], [_norm_dim(d, ndim) for d in dst]
    rest = [d for d in range(ndim) if d not in src]
    perm = [None] * ndim
    for s, d in zip(src, dst):
        perm[d] = s
    it = iter(rest)
    return [p if p is not None else next(it) for p in perm]


@register("permute", torch.permute, "transpose", torch.transpose, "swapaxes", torch.swapaxes,
          "swapdims", "t", torch.t, "movedim", torch.movedim, "moveaxis")
def permute(ctx) -> None:
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    for o, i in enumerate(_permutation(ctx)):
        ctx.unify(x[i], out[o])


# --------------------------------------------------------------------------- expand / repeat


def _size_sources(ctx, n_out: int) -> list:
    """For each output dim of ``expand``: the (tensor, dim) whose size it reads, or None for a literal.

    ``x.expand(y.shape)`` and ``x.expand(b, y.size(1), h, w)`` follow ``y``: after pruning the
    requested size is read again at run time, so the dim can be coupled to ``y``'s instead of fixed.
    """
    sizes = list(ctx.node.args[1:]) or list(ctx.node.kwargs.get("size", ()))
    if len(sizes) == 1 and isinstance(sizes[0], (list, tuple, fx.Node)):
        whole = sizes[0]
        if isinstance(whole, fx.Node):
            read = _size_read(whole)
            if read is None or read[1] is not None:
                return [None] * n_out
            return [(read[0], d) for d in range(n_out)]
        sizes = list(whole)
    out = []
    for s in sizes:
        read = _size_read(s) if isinstance(s, fx.Node) else None
        out.append(read if read is not None and read[1] is not None else None)
    return out if len(out) == n_out else [None] * n_out


@register("expand")
def expand(ctx) -> None:
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    off = len(out) - len(x)
    sources = _size_sources(ctx, len(out))
    for j, o in enumerate(out):
        src = sources[j]
        i = j - off
        if i >= 0 and ctx.size(x[i]) == ctx.size(o):
            ctx.unify(x[i], o)
            continue
        if i >= 0:
            ctx.free(x[i])
        ydims = ctx.dims(src[0]) if src is not None else None
        if ydims is not None and ctx.size(ydims[src[1]]) == ctx.size(o):
            ctx.unify(o, ydims[src[1]])
        else:
            ctx.block([o], "a dimension expanded to a fixed size" if i >= 0 else "a dimension added by expand")


@register("repeat", torch.tile, "tile")
def repeat(ctx) -> None:
    """Tiling k times makes the output dim the product (k, input dim)."""
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    off = len(out) - len(x)
    ctx.block(out[:off], "a dimension added by repeat")
    for i, a in enumerate(x):
        o = out[off + i]
        k = ctx.size(o) // max(ctx.size(a), 1)
        if k == 1:
            ctx.unify(a, o)
        else:
            tiles = ctx.new(k)
            ctx.block([tiles], "repeat count")
            ctx.prod(o, [tiles, a])


@register(torch.repeat_interleave, "repeat_interleave")
def repeat_interleave(ctx) -> None:
    """Each index repeated ``r`` times in place: the output dim is the row-major product (dim, r)."""
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    r, dim = ctx.arg(1, "repeats"), ctx.arg(2, "dim", None)
    if type(r) is not int or dim is None:
        ctx.block(list(x) + list(out), "repeat_interleave with tensor repeats or over the flattened tensor")
        return
    dim = _norm_dim(dim, len(x))
    ctx.unify_dims(x[:dim] + x[dim + 1:], out[:dim] + out[dim + 1:])
    copies = ctx.new(r)
    ctx.block([copies], "repeat count")
    ctx.prod(out[dim], [x[dim], copies])


# --------------------------------------------------------------------------- pixel (un)shuffle


def _couple_pixel_shuffle(ctx, deep, shallow, r: int) -> None:
    """``deep`` holds channels C·r·r and spatial (H, W); ``shallow`` holds C and (H·r, W·r)."""
    ctx.unify_dims(deep[:-3], shallow[:-3])
    ri, rj = ctx.new(r), ctx.new(r)
    ctx.block([ri, rj], "sub-pixel positions of a pixel (un)shuffle are spatial, not channels")
    ctx.prod(deep[-3], [shallow[-3], ri, rj])
    ctx.prod(shallow[-2], [deep[-2], ri])
    ctx.prod(shallow[-1], [deep[-1], rj])


@register(nn.PixelShuffle, F.pixel_shuffle, torch.pixel_shuffle)
def pixel_shuffle(ctx) -> None:
    r = ctx.module.upscale_factor if ctx.module is not None else ctx.arg(1, "upscale_factor")
    _couple_pixel_shuffle(ctx, ctx.dims(ctx.tensor_args()[0]), ctx.out(), r)


@register(nn.PixelUnshuffle, F.pixel_unshuffle, torch.pixel_unshuffle)
def pixel_unshuffle(ctx) -> None:
    r = ctx.module.downscale_factor if ctx.module is not None else ctx.arg(1, "downscale_factor")
    _couple_pixel_shuffle(ctx, ctx.out(), ctx.dims(ctx.tensor_args()[0]), r)


# --------------------------------------------------------------------------- roll / pad / flip


@register(torch.roll, "roll")
def roll(ctx) -> None:
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    dims = ctx.arg(2, "dims", None)
    rolled = set() if dims is None else {_norm_dim(d, len(x)) for d in ([dims] if isinstance(dims, int) else dims)}
    if dims is None:
        ctx.block(list(x) + list(out), "roll over the flattened tensor")
        return
    for i, (a, o) in enumerate(zip(x, out)):
        if i in rolled:
            ctx.block([a, o], "a rolled dimension")
        else:
            ctx.unify(a, o)


@register(torch.flip, "flip")
def flip(ctx) -> None:
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    dims = list(ctx.node.args[1:]) if ctx.node.op == "call_method" and len(ctx.node.args) > 2 else ctx.arg(1, "dims")
    flipped = {_norm_dim(d, len(x)) for d in ([dims] if isinstance(dims, int) else dims)}
    for i, (a, o) in enumerate(zip(x, out)):
        if i in flipped:
            ctx.block([a, o], "a flipped dimension")
        else:
            ctx.unify(a, o)


@register(F.pad)
def pad(ctx) -> None:
    """Unpadded dims pass through; padded ones (normally spatial) are blocked."""
    x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
    for a, o in zip(x, out):
        if ctx.size(a) == ctx.size(o):
            ctx.unify(a, o)
        else:
            ctx.block([a, o], "a padded dimension")


# --------------------------------------------------------------------------- tensor creation


CREATION = [torch.zeros, torch.ones, torch.empty, torch.full, torch.rand, torch.randn, torch.arange,
            torch.linspace, torch.eye, torch.tensor, torch.as_tensor, "new_zeros", "new_ones",
            "new_empty", "new_full", "new_tensor"]


_SIZED_CREATION = {torch.zeros, torch.ones, torch.empty, torch.full, torch.rand, torch.randn, "new_zeros",
                   "new_ones", "new_empty", "new_full"}


def _creation_sizes(node) -> list | None:
    """The size arguments of ``torch.zeros(b, c, h, w)`` / ``zeros((b, c, h, w))`` / ``x.new_zeros(...)``."""
    args = list(node.args[1:] if node.op == "call_method" else node.args)
    if node.target in ("new_full", torch.full):
        args = args[:1]
    if "size" in node.kwargs:
        args = [node.kwargs["size"]]
    if len(args) == 1 and isinstance(args[0], (list, tuple, fx.Node)):
        return list(args[0]) if isinstance(args[0], (list, tuple)) else None
    return args


@register(*CREATION)
def creation(ctx) -> None:
    """A tensor made with sizes read from another tensor follows it (a size tie); literal sizes are blocked."""
    for arg in ctx.tensor_args():
        if ctx.node.op != "call_method" or arg is not ctx.node.args[0]:
            ctx.free(*ctx.dims(arg))
    if ctx.node.op == "call_method":  # x.new_zeros(...) only lends x's dtype and device
        ctx.free(*ctx.dims(ctx.node.args[0]))
    out = ctx.out_or_first()
    sizes = _creation_sizes(ctx.node) if ctx.node.target in _SIZED_CREATION else None
    if sizes is not None and len(sizes) == len(out):
        tie_sizes(ctx, sizes, out)
    for atom in ctx.all_out_dims():
        if atom not in ctx.touched:
            ctx.block([atom], f"a tensor created with fixed sizes by {ctx.op_name}")



# --------------------------------------------------------------------------- reading sizes


SAME_TENSOR_ATTRIBUTES = ("data", "real", "imag")


@register(getattr, "size", "dim", "numel", "nelement", len, "data_ptr", "is_contiguous", "stride")
def read_attribute(ctx) -> None:
    """Reading ``shape``/``size()``/``dtype`` consumes nothing; ``x.T``/``x.mT`` is a transpose; ``x.data``,
    ``x.real`` and ``x.imag`` are the tensor itself, dim for dim."""
    attr = ctx.arg(1, "name")
    if ctx.node.target is getattr and attr in SAME_TENSOR_ATTRIBUTES:
        ctx.unify_dims(ctx.dims(ctx.tensor_args()[0]), ctx.out())
        return
    if ctx.node.target is getattr and attr in ("T", "mT"):
        x, out = ctx.dims(ctx.tensor_args()[0]), ctx.out()
        perm = list(range(len(x)))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        for o, i in enumerate(perm):
            ctx.unify(x[i], out[o])
        return
    for arg in ctx.tensor_args():
        ctx.free(*ctx.dims(arg))
    ctx.block(ctx.all_out_dims(), f"a tensor attribute {attr!r} of unknown structure")


# --------------------------------------------------------------------------- size arithmetic: recomputed with the new sizes, and checks on it


class _NotSizes(Exception):
    """The value depends on something other than sizes (a tensor's contents)."""


def _new_size_value(value, R, memo: dict):
    """``value`` re-computed with the plan's new sizes: the python arithmetic on ``x.shape``/``x.size(d)``.

    Raises :class:`_NotSizes` when it depends on anything but sizes and constants.
    """
    def ev(n: fx.Node):
        if n in memo:
            return memo[n]
        read = _size_read(n)
        if read is not None:
            x, d = read
            dims = R.graph.node_dims.get(x.name) if isinstance(x, fx.Node) else None
            if not dims or not all(isinstance(a, int) for a in dims):
                raise _NotSizes(n.name)
            shape = tuple(R.size(x, k) for k in range(R.ndim(x)))
            out = shape if d is None else shape[d]
        elif n.op == "call_function" and n.target in _SIZE_ARITHMETIC:
            args, kwargs = fx.node.map_arg((n.args, n.kwargs), ev)
            out = n.target(*args, **kwargs)
        else:
            raise _NotSizes(n.name)
        memo[n] = out
        return out

    return fx.node.map_arg(value, ev)


_SIZE_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.mod,
                    operator.pow, operator.neg, operator.eq, operator.ne, operator.lt, operator.le, operator.gt,
                    operator.ge, operator.and_, operator.or_, operator.not_, operator.getitem, len, min, max}


def _size_read(n: fx.Node):
    """``(tensor node, dim or None for all dims)`` when ``n`` reads a tensor's size, else None."""
    if n.op == "call_method" and n.target == "size" and n.args:
        d = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
        return (n.args[0], d) if isinstance(d, int) or d is None else None
    if n.op == "call_function" and n.target is getattr and n.args[1] == "shape":
        return n.args[0], None
    if n.op == "call_function" and n.target is operator.getitem and isinstance(n.args[0], fx.Node) \
            and isinstance(n.args[1], int):
        inner = _size_read(n.args[0])
        if inner is not None and inner[1] is None:
            return inner[0], n.args[1]
    return None


def tie_sizes(ctx, size_args, out_dims) -> None:
    """Tie each output dim to the tensor dim its size argument reads (a size tie), where the algebra can say it.

    * ``T.shape[d]`` (or ``T.size(d)``): the dim *is* ``T``'s dim ``d``, index for index;
    * ``T.shape[d] // k``: ``T``'s dim ``d`` is the row-major product of the output dim sized by the literal
      ``k`` (the one right before, else the only one: the heads of ``reshape(b, n, 3, heads, C // heads)``)
      and this one, so that ``heads × head_dim`` stays ``C`` when either is pruned. Without such a dim,
      the output dim is tied to the inner part of ``T``'s dim when that is already a product with an
      outer factor ``k`` (``C = qkv.shape[-1] // 3`` of a ``(3, heads, head_dim)`` width); else nothing is
      tied (a new factor would impose a structure on ``T``'s channels).

    Only sizes that agree are tied, and only between different data: a dim already made of the source's
    channels (``y.view(n, 2, c // 2, ...)`` of ``y`` itself, a channel shuffle) keeps its structure.
    Other arithmetic stays as it is (the rewrite recomputes it). Index ties are stronger than the count
    equality the code needs, and are what the algebra expresses.
    """
    if not ctx.size_ties:
        return
    literal = {}
    for j, a in enumerate(size_args):
        if type(a) is int and a > 1:
            literal.setdefault(a, []).append(j)
    for j, a in enumerate(size_args):
        if not isinstance(a, fx.Node) or j >= len(out_dims):
            continue
        source = _read_dim(ctx, a)
        if source is not None and ctx.size(source) == ctx.size(out_dims[j]):
            if not _share_leaves(ctx, source, out_dims[j]):
                ctx.unify(out_dims[j], source)
            continue
        if a.op == "call_function" and a.target is operator.floordiv and type(a.args[1]) is int:
            source = _read_dim(ctx, a.args[0]) if isinstance(a.args[0], fx.Node) else None
            k = a.args[1]
            if source is None or ctx.size(source) != k * ctx.size(out_dims[j]) or _share_leaves(ctx, source, out_dims[j]):
                continue
            partners = literal.get(k, [])
            if j - 1 in partners:  # heads right before head dim, as in (…, 3, heads, C // heads)
                partners = [j - 1]
            if len(partners) == 1:
                i = partners[0]
                ctx.prod(source, [out_dims[i], out_dims[j]] if i < j else [out_dims[j], out_dims[i]])
            elif _outer_factor(ctx, source) == k:  # C = qkv.shape[-1] // 3 of a (3, ...) width: its inner part
                ctx.prod(source, [ctx.new(k), out_dims[j]])


def _outer_factor(ctx, atom: int) -> int | None:
    """The size of the outermost factor of ``atom`` when it is a row-major product, else None."""
    d = ctx.atoms.definition(atom)
    return ctx.size(d.parts[0]) if d is not None and d.kind == "prod" else None


def _share_leaves(ctx, a: int, b: int) -> bool:
    return not ctx.atoms.leaves(a).isdisjoint(ctx.atoms.leaves(b))


def _read_dim(ctx, n: fx.Node) -> int | None:
    """The atom of the tensor dim that ``n`` reads (``x.shape[1]``, ``x.size(-1)``), or None."""
    read = _size_read(n)
    if read is None or read[1] is None:
        return None
    dims = ctx.dims(read[0])
    return dims[read[1]] if dims is not None and -len(dims) <= read[1] < len(dims) else None


@register(set_tensor_attribute)
def tensor_attribute_assignment(ctx) -> None:
    """``param.data = value`` in a forward (weights re-parametrized at run time, RepVGG/SPAN style): the
    parameter takes ``value``'s channels, so what makes ``value`` is coupled to the parameter's users."""
    t, name, value = ctx.node.args
    if name in SAME_TENSOR_ATTRIBUTES[:1] and ctx.dims(t) is not None and ctx.dims(value) is not None:
        ctx.unify_dims(ctx.dims(t), ctx.dims(value))
    else:
        ctx.block_all(f"assigns {name!r} of a tensor")


def _rewrite_size_check(node, R):
    """A size check that fails with the new channel counts is dropped (EvoNorm's ``_assert(C % 32 == 0)``
    once whole groups were removed: the literal 32 describes the dense network).

    Surgery's ensures step re-checks every shape of the pruned graph against the plan instead. Checks
    that still hold, checks on batch or spatial sizes and checks on tensor contents stay.
    """
    cond = node.args[0] if node.args else node.kwargs.get("condition")
    try:
        holds = bool(_new_size_value(cond, R, {}))
    except Exception:  # noqa: BLE001 - not pure size arithmetic (_NotSizes) or not evaluable: keep the check
        return None
    return None if holds else replace_arg(node, 0, "condition", True)


@register(torch._assert, rewrite=_rewrite_size_check, sizes=True)
def size_check(ctx) -> None:
    """``torch._assert`` holds no tensor: nothing to couple (its rewrite does the work)."""
