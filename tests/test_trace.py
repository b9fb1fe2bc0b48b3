"""The tracer on the idioms of real research SR code, one tiny hand-written module per idiom.

Each test stands for a pattern found in published SR code (SwinIR, HAT, DAT, SPAN, HVI, ...) and
checks what the analysis finds (groups, guards with their text and the line that asked, automatic
leaves, the value mode), what the surgery returns (the user's class or a guarded GraphModule) and
what the pruned model computes: the cut reference (:func:`graphprune.verify.check`) at the traced
size and, where the idiom is about input sizes, at a second size too.
"""
import inspect
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops.layers.torch import Rearrange
from torch import nn

import graphprune as gp
from graphprune.verify import check

HERE = os.path.basename(__file__)


# ----------------------------------------------------------------------------- helpers
def conv(cin, cout, k=3):
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class Stream(nn.Module):
    """head → body(t) + t → tail on 8 channels: a prunable residual stream and a prunable inner width.

    Subclasses put one idiom of real code around or inside :meth:`stream`.
    """

    def __init__(self, c=8):
        super().__init__()
        self.head = conv(3, c)
        self.body = nn.Sequential(conv(c, 2 * c), nn.ReLU(), conv(2 * c, c))
        self.tail = conv(c, 3)

    def stream(self, x):
        t = self.head(x)
        return self.tail(self.body(t) + t)

    def forward(self, x):
        return self.stream(x)


def seeded(cls, *args, **kwargs):
    torch.manual_seed(0)
    return cls(*args, **kwargs).eval()


def prune(model, x, ratio=0.5, **analyze_kw):
    """analyze → plan → apply; returns (graph, plan, pruned)."""
    graph = gp.analyze(model, x, **analyze_kw)
    plan = gp.plan(graph, ratio)
    return graph, plan, gp.apply(model, plan)


def assert_exact(model, pruned, plan, x, tol=1e-5):
    verdict = check(model, pruned, plan, x)
    assert verdict.exact and verdict.error <= tol, verdict


def _removals(plan):
    return sorted((e.module, e.param, e.dim, tuple(e.indices)) for e in plan.entries())


def assert_runs_at(model, pruned, plan, x2, ratio=0.5):
    """``pruned`` runs at a second input size with the dense model's output shape, and computes the
    cut reference there (the same channels removed by a plan made at that size)."""
    with torch.no_grad():
        assert pruned(x2).shape == model(x2).shape
    plan2 = gp.plan(gp.analyze(model, x2), ratio)
    assert _removals(plan2) == _removals(plan)
    assert_exact(model, pruned, plan2, x2)


def where(fn, snippet):
    """``"test_trace.py:<line> (<function>)"`` of the line of ``fn`` containing ``snippet`` (a guard's ``where``)."""
    lines, first = inspect.getsourcelines(fn)
    (offset,) = [i for i, line in enumerate(lines) if snippet in line]
    return f"{HERE}:{first + offset} ({fn.__name__})"


def guard(graph, text):
    found = [g for g in graph.traced.guards if g.text == text]
    assert found, f"no guard {text!r} among {[g.text for g in graph.traced.guards]}"
    return found[0]


def group_ids(graph, module, param="weight", dim=0):
    return {g.id for g in graph.groups_of(module, param, dim)}


def assert_user_class(pruned, cls):
    assert type(pruned) is cls and not getattr(pruned, "gp_graph_module", False)


def snapshot(model):
    """Every module's attributes, parameters and buffers, by identity (and the parameters' values)."""
    return {name: ({k: id(v) for k, v in vars(m).items()}, list(m._modules),
                   {k: (id(v), v.detach().clone()) for k, v in (*m._parameters.items(), *m._buffers.items())})
            for name, m in model.named_modules()}


def leftovers(model):
    """Tracing's attachments (modules built in forward, captured tensors) found on a model."""
    return [f"{name}.{k}" for name, m in model.named_modules() for k in (*vars(m), *m._modules, *m._buffers)
            if k.startswith(("_gp_module_", "_tensor_constant"))]


def assert_untouched(model, before):
    assert not leftovers(model)
    after = snapshot(model)
    assert after.keys() == before.keys()
    for name, (attrs, children, tensors) in before.items():
        assert after[name][:2] == (attrs, children), name
        assert after[name][2].keys() == tensors.keys(), name
        for k, (ident, value) in tensors.items():
            assert after[name][2][k][0] == ident and torch.equal(after[name][2][k][1], value), f"{name}.{k}"


def prune_size_idiom(model, x, x2, guards):
    """What every size idiom must give: the guards (text → a snippet of the line of ``forward`` that asked),
    the user's class back, the cut reference at ``x`` and at the second size ``x2``."""
    graph, plan, pruned = prune(model, x)
    for text, snippet in guards.items():
        assert guard(graph, text).where == where(type(model).forward, snippet)
    assert_user_class(pruned, type(model))
    assert_exact(model, pruned, plan, x)
    assert_runs_at(model, pruned, plan, x2)
    return graph, pruned


# ----------------------------------------------------------------------------- 1. control flow on sizes
class WindowPad(Stream):
    """SwinIR's ``check_image_size``: pad to a multiple of the window when the size is not one, crop back."""

    ws = 8

    def forward(self, x):
        b, c, h, w = x.shape
        if h % self.ws != 0:
            x = F.pad(x, (0, 0, 0, self.ws - h % self.ws), mode="reflect")
        if w % self.ws != 0:
            x = F.pad(x, (0, self.ws - w % self.ws, 0, 0), mode="reflect")
        return self.stream(x)[:, :, :h, :w]


def test_padding_branch_is_guarded_and_the_class_pads_at_another_size():
    """``if h % ws != 0: x = F.pad(...)``: the branch the example takes is followed, recorded as guards naming
    this file's line; the pruned model is the user's class and takes the padding branch at 20x12."""
    graph, pruned = prune_size_idiom(seeded(WindowPad), torch.randn(1, 3, 16, 16), torch.randn(1, 3, 20, 12),
                                     {"x.shape[2] % 8 == 0": "if h % self.ws", "x.shape[3] % 8 == 0": "if w % self.ws"})
    assert graph.traced.shape_source == "meta"
    assert not any(n.target is F.pad for n in graph.traced.gm.graph.nodes)  # the branch not taken
    assert pruned.head.out_channels == 4


class RowLoop(Stream):
    """Windows cut out by a python loop over ``range(h // ws)`` (row-wise processing of the body)."""

    def forward(self, x):
        t = self.head(x)
        rows = [self.body(t[:, :, i * 4:(i + 1) * 4]) for i in range(x.size(-2) // 4)]
        return self.tail(torch.cat(rows, 2) + t)


def test_range_over_a_size_unrolls_and_is_guarded():
    """``for i in range(h // ws)``: unrolled for the example's count, guarded on it; the class loops again at
    another size."""
    graph, _ = prune_size_idiom(seeded(RowLoop), torch.randn(1, 3, 8, 8), torch.randn(1, 3, 16, 4),
                                {"x.shape[-2] // 4 == 2": "range("})
    assert sum(n.target == "body.0" for n in graph.traced.gm.graph.nodes) == 2


NUMPY_ON_SIZES = "numpy on a traced size: ValueError 'invalid __array_struct__' (ConcreteProxy.__getattr__ answers numpy's dunder probes)"


class CeilWindows(Stream):
    """Swin's ``Hp = int(np.ceil(H / ws)) * ws`` (or ``math.ceil``): the padded size, as a python int."""

    ws = 4

    def __init__(self, numpy=False):
        super().__init__()
        self.numpy = numpy

    def forward(self, x):
        ceil = np.ceil if self.numpy else math.ceil
        h, w = x.shape[2], x.shape[3]
        hp, wp = int(ceil(h / self.ws)) * self.ws, int(ceil(w / self.ws)) * self.ws
        return self.stream(F.pad(x, (0, wp - w, 0, hp - h)))[:, :, :h, :w]


@pytest.mark.parametrize("numpy", [False, pytest.param(True, marks=pytest.mark.xfail(strict=True, reason=NUMPY_ON_SIZES))],
                         ids=["math.ceil", "np.ceil"])
def test_int_of_the_ceil_of_a_size_is_guarded(numpy):
    graph, _ = prune_size_idiom(seeded(CeilWindows, numpy), torch.randn(1, 3, 6, 8), torch.randn(1, 3, 9, 5),
                                {"ceil(x.shape[2] / 4) == 2": "hp, wp =", "ceil(x.shape[3] / 4) == 2": "hp, wp ="})
    assert all(g.how == "int" for g in graph.traced.guards)


class PerSample(Stream):
    """A loop over the batch with ``len(x)`` (tiled / per-image inference code)."""

    def forward(self, x):
        return torch.cat([self.stream(x[i:i + 1]) for i in range(len(x))])


def test_len_of_the_input_is_guarded():
    graph, _ = prune_size_idiom(seeded(PerSample), torch.randn(2, 3, 6, 6), torch.randn(3, 3, 6, 6),
                                {"len(x) == 2": "len(x)"})
    assert sum(n.target == "head" for n in graph.traced.gm.graph.nodes) == 2


class NumpyCoords(Stream):
    """Positions made with numpy from the input's width, and numpy scalars in arithmetic with tensors."""

    def __init__(self, coords):
        super().__init__()
        self.coords = coords

    def forward(self, x):
        t = self.head(x)
        pos = torch.from_numpy(np.asarray(self.coords(x.shape[-1]), dtype=np.float32))
        t = t * np.float32(0.5) + pos * np.sqrt(np.float64(2.0))
        return self.tail(self.body(t) * np.float64(0.25) + t)


def _xfail_numpy(fn):
    return pytest.param(fn, marks=pytest.mark.xfail(strict=True, reason=NUMPY_ON_SIZES))


COORDS = {
    "arange": _xfail_numpy(lambda w: np.arange(w)),
    "arange-float32": lambda w: np.arange(w, dtype=np.float32),
    "arange-over-size": _xfail_numpy(lambda w: np.arange(4, 4 + w, dtype=np.float32) / w),
    "linspace": lambda w: np.linspace(-1, 1, w),
    "float32-of-size": _xfail_numpy(lambda w: np.full(w, np.float32(w))),
}


@pytest.mark.parametrize("coords", COORDS.values(), ids=COORDS.keys())
def test_numpy_on_sizes_and_numpy_scalars_in_the_graph(coords):
    """``np.arange(x.shape[-1])`` is answered and guarded; numpy scalars end up as python numbers in the
    graph, so the generated code runs (``np.float64(...)`` in generated code is a NameError)."""
    model, x = seeded(NumpyCoords, coords), torch.randn(1, 3, 6, 10)
    graph, plan, pruned = prune(model, x)
    code = graph.traced.gm.code
    assert "np." not in code and "numpy" not in code
    scalars = [a for n in graph.traced.gm.graph.nodes for a in n.args if isinstance(a, float)]
    assert sorted(scalars) == [0.25, 0.5] and all(type(a) is float for a in scalars)
    assert any("x.shape[-1]" in g.text and g.where.startswith(HERE) for g in graph.traced.guards)
    with torch.no_grad():
        assert torch.allclose(graph.traced.gm(x), model(x), atol=1e-6)
    assert_user_class(pruned, NumpyCoords)
    assert_exact(model, pruned, plan, x)
    assert_runs_at(model, pruned, plan, torch.randn(1, 3, 6, 7))


def window_partition(x, ws):
    """SwinIR's: (B, H, W, C) → (B * nW, ws, ws, C)."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)


def window_reverse(windows, ws, H, W):
    B = int(windows.shape[0] / (H * W / ws / ws))
    x = windows.view(B, H // ws, W // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


class ShiftedWindowAttention(nn.Module):
    """SwinIR's ``SwinTransformerBlock`` (cut down): shifted windows, a mask for the shift that is a buffer at
    ``input_resolution`` and recomputed from the sizes for any other input, heads from ``C // num_heads``."""

    def __init__(self, dim=8, num_heads=2, ws=4, shift=2, input_resolution=(8, 8)):
        super().__init__()
        self.num_heads, self.ws, self.shift, self.input_resolution = num_heads, ws, shift, input_resolution
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("attn_mask", self.calculate_mask(input_resolution))

    def calculate_mask(self, x_size):
        H, W = x_size
        img_mask = torch.zeros((1, H, W, 1))
        cuts = (slice(0, -self.ws), slice(-self.ws, -self.shift), slice(-self.shift, None))
        cnt = 0
        for h in cuts:
            for w in cuts:
                img_mask[:, h, w, :] = cnt
                cnt += 1
        mask_windows = window_partition(img_mask, self.ws).view(-1, self.ws * self.ws)
        attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
        return attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))

    def forward(self, x, x_size):  # x: (B, H*W, C)
        H, W = x_size
        B, L, C = x.shape
        t = torch.roll(x.view(B, H, W, C), shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(t, self.ws).view(-1, self.ws * self.ws, C)
        B_, N, C = windows.shape
        qkv = self.qkv(windows).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.input_resolution == x_size:
            mask = self.attn_mask
        else:
            mask = self.calculate_mask(x_size).to(x.device)
        nW = mask.shape[0]
        attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, self.num_heads, N, N).softmax(dim=-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(B_, N, C))
        y = window_reverse(y.view(-1, self.ws, self.ws, C), self.ws, H, W)
        return x + torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2)).view(B, H * W, C)


class TinySwinIR(nn.Module):
    """conv → tokens → shifted-window attention → image → conv, as SwinIR's ``forward_features``."""

    def __init__(self, c=8, shift=1):
        super().__init__()
        self.conv_first = conv(3, c)
        self.block = ShiftedWindowAttention(c, shift=shift)
        self.conv_last = conv(c, 3)

    def forward(self, x):
        x_size = (x.shape[2], x.shape[3])
        t = self.conv_first(x)
        B, C, H, W = t.shape
        t = self.block(t.flatten(2).transpose(1, 2), x_size)
        return self.conv_last(t.transpose(1, 2).view(B, C, H, W))


MIRROR_SAME_VALUE = ("_mirror_attributes: num_heads (2) read twice as a literal; its second change finds the "
                     "other int attribute still equal to 2 (shift) and rewrites it")


@pytest.mark.parametrize("shift", [1, pytest.param(2, marks=pytest.mark.xfail(strict=True, reason=MIRROR_SAME_VALUE))],
                         ids=["shift=1", "shift=num_heads"])
def test_swinir_mask_recomputed_from_sizes(shift):
    """``x_size != self.input_resolution``: the mask is built from sizes while tracing (``torch.zeros((1, H, W,
    1))``, ``img_mask[:, h, w, :] = cnt`` over slices); the pruned class recomputes it at any size."""
    model, x = seeded(TinySwinIR, shift=shift), torch.randn(1, 3, 12, 12)  # not the buffer's 8x8: the mask is traced
    graph, plan, pruned = prune(model, x)
    assert guard(graph, "x.shape[2] != 8").where == where(ShiftedWindowAttention.forward, "self.input_resolution ==")
    nodes = list(graph.traced.gm.graph.nodes)
    assert sum(n.target is torch.zeros for n in nodes) == 1
    assert sum(getattr(n.target, "__name__", "") == "setitem" for n in nodes) == 9
    stream = graph.groups_of("conv_first", dim=0)  # heads x head dim: the stream C // num_heads is read from
    assert sorted(g.size for g in stream) == [2, 4] and all(g.prunable for g in stream)
    assert pruned.conv_first.out_channels < 8 and pruned.block.shift == shift
    assert_user_class(pruned, TinySwinIR)
    assert pruned.block.num_heads * 2 == pruned.conv_first.out_channels  # heads and head dim lost half each
    assert pruned.block.qkv.out_features == 3 * pruned.conv_first.out_channels
    assert_exact(model, pruned, plan, x)
    assert_runs_at(model, pruned, plan, torch.randn(1, 3, 8, 8))  # the buffer's size: the other branch
    assert_runs_at(model, pruned, plan, torch.randn(1, 3, 16, 8))


# ----------------------------------------------------------------------------- 2. which result: the user's class or a guarded GraphModule
class LiteralWidths(WindowPad):
    """The padding forward with a channel count held as a literal (IMDN's ``torch.split(x, [8, 8])``, or
    ``x.view(b, 16, h, w)``): the rewrite must change the literal, so the result is a GraphModule."""

    def __init__(self, literal):
        super().__init__()
        self.literal = literal
        self.head = conv(3, 16)
        self.body = nn.Sequential(conv(8, 16), nn.ReLU(), conv(16, 8))
        self.tail = conv(16, 3)

    def stream(self, x):
        t = self.head(x)
        if self.literal == "split":
            a, b = torch.split(t, [8, 8], dim=1)
        else:
            b, _, h, w = t.shape
            a, b = t.view(b, 2, 8, h, w).unbind(1)
        return self.tail(torch.cat([self.body(a) + a, b], 1))


@pytest.mark.parametrize("literal", ["split", "view"])
def test_literal_channel_counts_give_a_graph_module_that_checks_its_guards(literal):
    """A GraphModule is traced for the example's size: run at a size that takes the padding branch, it fails
    with an AssertionError naming the guard and the user's line, never silently."""
    model, x = seeded(LiteralWidths, literal), torch.randn(1, 3, 16, 16)
    graph, plan, pruned = prune(model, x)
    assert pruned.gp_graph_module and type(pruned) is not LiteralWidths
    assert pruned.head.out_channels < 16
    assert_exact(model, pruned, plan, x)
    with torch.no_grad():
        assert pruned(torch.randn(1, 3, 24, 8)).shape == (1, 3, 24, 8)  # the same branches: guards hold
        with pytest.raises(AssertionError, match=r"x\.shape\[2\] % 8 == 0 \(test_trace\.py:\d+ \(forward\)\)"):
            pruned(torch.randn(1, 3, 20, 16))



class Crop(Stream):
    """Pad, then crop back with negative literal bounds (``out[..., p:-p, p:-p]``: overlap-tile inference)."""

    def forward(self, x):
        return self.stream(F.pad(x, (2, 2, 2, 2), mode="replicate"))[:, :, 2:-2, 2:-2]


@pytest.mark.xfail(strict=True, reason="_rewrite_getitem rewrites the spatial crop 2:-2 to 2:10 (no channels involved): "
                                       "an unguarded GraphModule, wrong shape at another size")
def test_crop_with_negative_literal_bounds_keeps_the_class():
    model, x = seeded(Crop), torch.randn(1, 3, 8, 8)
    graph, plan, pruned = prune(model, x)
    assert_exact(model, pruned, plan, x)
    assert_runs_at(model, pruned, plan, torch.randn(1, 3, 12, 6))
    assert_user_class(pruned, Crop)

# ----------------------------------------------------------------------------- 3. size ties
class Attention(nn.Module):
    """timm/SwinIR attention: ``qkv.reshape(B, N, 3, self.num_heads, C // self.num_heads)`` with ``C`` read from
    the input stream."""

    def __init__(self, dim=8, num_heads=2):
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Tokens(nn.Module):
    """conv → tokens → x + attn(x) → conv."""

    def __init__(self, c=8):
        super().__init__()
        self.embed, self.attn, self.out = conv(3, c), Attention(c), conv(c, 3)

    def forward(self, x):
        t = self.embed(x)
        B, C, H, W = t.shape
        s = t.flatten(2).transpose(1, 2)
        s = s + self.attn(s)
        return self.out(s.transpose(1, 2).reshape(B, C, H, W))


def test_size_tie_couples_the_attention_width_to_the_stream_it_reads_c_from():
    """Tied (the default), heads x head dim *is* the stream: pruning it keeps ``C // num_heads`` true, and the
    pruned model is the user's class with ``num_heads`` updated, running at any token count."""
    model, x = seeded(Tokens), torch.randn(1, 3, 4, 4)
    graph, plan, pruned = prune(model, x)
    stream = group_ids(graph, "embed")
    assert len(stream) == 2 and stream == group_ids(graph, "attn.proj") == group_ids(graph, "attn.proj", dim=1)
    assert stream <= group_ids(graph, "attn.qkv")  # q, k and v widths: the stream's heads x head dim
    assert_user_class(pruned, Tokens)
    width = pruned.embed.out_channels
    assert (pruned.attn.num_heads, width) == (1, 2)  # heads 2 -> 1, head dim 4 -> 2: each factor loses ~29 %
    assert pruned.attn.qkv.out_features == 3 * width
    assert_exact(model, pruned, plan, x)
    assert_runs_at(model, pruned, plan, torch.randn(1, 3, 6, 5))


def test_without_size_ties_the_widths_prune_independently_into_a_graph_module():
    model, x = seeded(Tokens), torch.randn(1, 3, 4, 4)
    graph, plan, pruned = prune(model, x, size_ties=False)
    assert not graph.size_ties
    assert not group_ids(graph, "embed") & group_ids(graph, "attn.qkv")
    assert pruned.gp_graph_module
    assert pruned.attn.qkv.out_features < 24 and pruned.embed.out_channels < 8
    assert pruned.attn.qkv.out_features != 3 * pruned.embed.out_channels
    assert_exact(model, pruned, plan, x)


class ChannelShuffle(Stream):
    """ShuffleNet's channel shuffle with its sizes read from the tensor it shuffles."""

    def forward(self, x):
        t = self.head(x)
        n, c, h, w = t.shape
        t = t.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.tail(self.body(t) + t)


def _structure(graph):
    return [(g.size, g.prunable, sorted((m.module, m.param, m.dim, m.index_map.tolist()) for m in g.members))
            for g in graph.groups]


def test_channel_shuffle_of_the_same_tensor_is_not_tied():
    """``view(n, 2, c // 2, h, w)`` reads ``c`` from the tensor it reshapes: no tie, the shuffle's own
    structure (two interleaved halves) stays as it is without ties."""
    model, x = seeded(ChannelShuffle), torch.randn(1, 3, 6, 6)
    graph = gp.analyze(model, x)
    assert _structure(graph) == _structure(gp.analyze(model, x, size_ties=False))
    halves, width = sorted(graph.groups_of("head", dim=0), key=lambda g: g.size)  # halves x per-half width
    assert (halves.size, width.size) == (2, 4) and halves.prunable and width.prunable
    plan = gp.plan(graph, 0.0, ratios={width.id: 0.5})  # two halves of 2: ``c // 2`` still holds
    pruned = gp.apply(model, plan)
    assert_user_class(pruned, ChannelShuffle)
    assert pruned.head.out_channels == 4
    assert_exact(model, pruned, plan, x)
    with torch.no_grad():
        assert pruned(torch.randn(1, 3, 5, 9)).shape == (1, 3, 5, 9)


# ----------------------------------------------------------------------------- 4. data-dependent control flow
class SignGate(nn.Module):
    """A branch on the data: ``if x.sum() > 0``."""

    def __init__(self, c=8):
        super().__init__()
        self.conv = conv(c, c)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return -x


class Gated(Stream):
    def __init__(self):
        super().__init__()
        self.gate = SignGate()

    def forward(self, x):
        t = self.head(x)
        return self.tail(self.gate(t) + self.body(t) + t)


def test_data_dependent_branch_makes_its_module_an_automatic_leaf():
    """The branch is not followed (another input could take the other one): the submodule that asked is kept
    opaque, with the reason; the body's inner width outside it still prunes, exactly."""
    model, x = seeded(Gated), torch.randn(1, 3, 6, 6)
    graph, plan, pruned = prune(model, x)
    reason = graph.traced.leaves["gate"]
    assert reason.startswith("auto: DataDependentError") and "bool() of head.sum() > 0" in reason
    assert not graph.traced.guards  # nothing was answered about the data
    assert not any(g.prunable for g in graph.groups_of("gate.conv"))
    (inner,) = graph.groups_of("body.0", dim=0)
    assert inner.prunable and plan.removed[inner.id]
    assert pruned.body[0].out_channels == 8 and pruned.gate.conv.out_channels == 8
    assert_exact(model, pruned, plan, x)
    assert_exact(model, pruned, plan, -x)  # whichever branch the data takes: the leaf runs its own forward


# ----------------------------------------------------------------------------- 5. value modes
class ItemOfSizes(Stream):
    """``.item()`` of a tensor made from sizes (a scale computed with torch ops on the resolution)."""

    def forward(self, x):
        scale = torch.arange(x.shape[-1], dtype=torch.float32).mean().item()
        return self.stream(x) * scale


class ReflectOrZeros(Stream):
    """Padding that falls back when reflection is impossible (the input is smaller than the padding)."""

    def forward(self, x):
        try:
            x = F.pad(x, (4, 4, 4, 4), mode="reflect")
        except RuntimeError:
            x = F.pad(x, (4, 4, 4, 4))
        return self.stream(x)


@pytest.mark.parametrize("cls, mode", [(ItemOfSizes, "real"), (ReflectOrZeros, "meta"), (Stream, "meta")],
                         ids=["item", "caught-error", "plain"])
def test_value_mode(cls, mode):
    """``.item()`` needs data: one real forward at the example size ("real"); an op that fails for real and
    is caught stays in "meta", following the except branch; a plain model traces on meta tensors."""
    model, x = seeded(cls), torch.randn(1, 3, 3, 3)  # 3x3: too small to reflect 4 pixels
    graph, plan, pruned = prune(model, x)
    assert graph.traced.shape_source == mode
    pads = [n for n in graph.traced.gm.graph.nodes if n.target is F.pad]
    assert len(pads) == (cls is ReflectOrZeros) and all(n.kwargs.get("mode", "constant") == "constant" for n in pads)
    assert not graph.traced.guards  # a size in torch ops and a caught error ask Python for nothing
    assert_user_class(pruned, cls)
    assert_exact(model, pruned, plan, x)
    with torch.no_grad():
        assert pruned(torch.randn(1, 3, 5, 7)).shape == model(torch.randn(1, 3, 5, 7)).shape


# ----------------------------------------------------------------------------- 6. forward arguments beyond the inputs
class Options(Stream):
    """Optional arguments with defaults, one a tuple (``forward(self, x, custom=(None, None))``)."""

    def forward(self, x, custom=(None, None), scale=1.0, *, flip=False):
        gain, offset = custom
        y = self.stream(x.flip(-1) if flip else x)
        if gain is not None:
            y = y * gain
        return (y if offset is None else y + offset) * scale


def test_forward_arguments_keep_their_defaults_even_a_tuple():
    """Bound at their defaults (not placeholders), so fx never prints a tuple default into generated code."""
    model, x = seeded(Options), torch.randn(1, 3, 6, 6)
    graph, plan, pruned = prune(model, x)
    assert [n.target for n in graph.traced.gm.graph.nodes if n.op == "placeholder"] == ["x"]
    assert_user_class(pruned, Options)
    assert_exact(model, pruned, plan, x)
    with torch.no_grad():
        assert torch.allclose(pruned(x, (2.0, 1.0), 0.5, flip=True), (pruned(x.flip(-1)) * 2.0 + 1.0) * 0.5)


# ----------------------------------------------------------------------------- 7. what forwards build, and the user's model untouched
class BuiltInForward(Stream):
    """Modules built and called inside forward: ``nn.Upsample(scale_factor=2)(x)``, einops' ``Rearrange(...)(x)``."""

    def forward(self, x):
        t = nn.Upsample(scale_factor=2, mode="nearest")(self.head(x))
        s = Rearrange("b c h w -> b h w c")(t)
        t = Rearrange("b h w c -> b c h w")(torch.relu(s))
        return self.tail(self.body(t) + t)


class FactoryOnDevice(Stream):
    """A tensor factory with traced sizes and a traced device (``torch.zeros(h, w, device=x.device)``)."""

    def device(self, x):
        return x.device

    def forward(self, x):
        h, w = x.shape[-2:]
        mask = torch.ones(h, w, device=self.device(x)).tril()
        t = self.head(x) * mask
        return self.tail(self.body(t) + t)


class FactoryOnWeightDevice(FactoryOnDevice):
    """The device read from a parameter (``device=self.p.device``), before the module owning it runs."""

    def device(self, x):
        return self.head.weight.device


class LegacyConstructor(Stream):
    """HVI's colour transform: ``torch.Tensor(b, h, w)`` with traced sizes, filled in place."""

    def forward(self, x):
        b, _, h, w = x.shape
        gain = torch.Tensor(b, h, w).to(x.device).fill_(0.5)
        t = self.head(x) * gain.unsqueeze(1)
        return self.tail(self.body(t) + t)


class CachesOnItself(Stream):
    """A forward that caches a tensor on its module, rebuilt when the input size changes."""

    def __init__(self):
        super().__init__()
        self.pos = torch.zeros(0)

    def forward(self, x):
        if self.pos.shape[0] != x.shape[-1]:
            self.pos = torch.arange(x.shape[-1], dtype=x.dtype, device=x.device) / 8
        t = self.head(x) + self.pos
        return self.tail(self.body(t) + t)


WEIGHT_DEVICE = ("reading head.weight.device before head runs frees the weight's dims: its kernel's spatial dims "
                 "become prunable groups (3x3 sliced to 1x1)")


@pytest.mark.parametrize("cls", [BuiltInForward, FactoryOnDevice, LegacyConstructor, CachesOnItself,
                                 pytest.param(FactoryOnWeightDevice, marks=pytest.mark.xfail(strict=True, reason=WEIGHT_DEVICE))],
                         ids=["module-built-in-forward", "factory-on-input-device", "torch.Tensor(b,h,w)", "cache",
                              "factory-on-weight-device"])
def test_what_forward_builds_traces_prunes_and_leaves_the_model_untouched(cls):
    """Each traces and prunes to the user's class; the analysis leaves on the user's model neither the modules
    the forward built, nor captured tensors, nor the cache's proxies, and its parameters are the same objects."""
    model, x = seeded(cls), torch.randn(1, 3, 6, 6)
    before = snapshot(model)
    graph, plan, pruned = prune(model, x)
    assert all(e.dim < 2 for e in plan.entries())  # channels only: never a kernel's spatial dims
    assert pruned.head.out_channels == 4 and pruned.body[0].out_channels == 8
    assert_exact(model, pruned, plan, x)
    assert_untouched(model, before)
    assert_user_class(pruned, cls)
    assert not leftovers(pruned)
    assert_runs_at(model, pruned, plan, torch.randn(1, 3, 4, 7))


# ----------------------------------------------------------------------------- 8. weight re-parametrization in forward
class RepConv(nn.Module):
    """SPAN's ``Conv3XC`` / RepVGG: in eval, forward fuses its branches into ``eval_conv`` and runs that."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1, self.conv3 = nn.Conv2d(cin, cout, 1), conv(cin, cout)
        self.eval_conv = conv(cin, cout)

    def update_params(self):
        w = self.conv3.weight.data.clone().detach() + F.pad(self.conv1.weight, (1, 1, 1, 1))
        self.eval_conv.weight.data = w.contiguous()
        self.eval_conv.bias.data = self.conv3.bias + self.conv1.bias

    def forward(self, x):
        if self.training:
            return self.conv3(x) + self.conv1(x)
        self.update_params()
        return self.eval_conv(x)


class RepNet(Stream):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(RepConv(8, 16), nn.ReLU(), RepConv(16, 8))


def test_weights_reparametrized_in_forward_couple_the_branches_to_the_fused_conv():
    """``eval_conv.weight.data = f(conv1.weight, conv3.weight)``: the branch convs are in eval_conv's groups;
    pruning them slices all three alike (never a kernel's spatial dims) and the fused model stays exact."""
    model, x = seeded(RepNet), torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        model(x)  # a model in eval holds fused weights after any forward
    before = snapshot(model)
    graph, plan, pruned = prune(model, x)
    assert_untouched(model, before)  # tracing assigned nothing to the user's weights
    for dim in (0, 1):
        fused = group_ids(graph, "body.0.eval_conv", dim=dim)
        assert len(fused) == 1 and fused == group_ids(graph, "body.0.conv3", dim=dim) \
            == group_ids(graph, "body.0.conv1", dim=dim)
    (inner,) = graph.groups_of("body.0.eval_conv", dim=0)
    assert inner.prunable and plan.removed[inner.id]
    assert all(e.dim < 2 for e in plan.entries())
    rep = pruned.body[0]
    assert rep.conv1.weight.shape == (8, 4, 1, 1) and rep.conv3.weight.shape == rep.eval_conv.weight.shape == (8, 4, 3, 3)
    assert_user_class(pruned, RepNet)
    assert_exact(model, pruned, plan, x)
    assert_runs_at(model, pruned, plan, torch.randn(1, 3, 5, 9))
    pruned.train()
    with torch.no_grad():  # the training branches are the same pruned convs
        assert torch.allclose(pruned(x), pruned.eval()(x), atol=1e-5)


# ----------------------------------------------------------------------------- 9. indexing
class RelPosAttention(Attention):
    """Swin's relative position bias: ``table[index.view(-1)].view(N, N, -1)``, one column per head."""

    def __init__(self, dim=8, num_heads=2, ws=3):
        super().__init__(dim, num_heads)
        self.table = nn.Parameter(torch.randn((2 * ws - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1])

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.table[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1).contiguous()
        attn = (q @ k.transpose(-2, -1) + bias.unsqueeze(0)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class RelPosTokens(Tokens):
    def __init__(self):
        super().__init__()
        self.attn = RelPosAttention()


def test_relative_position_table_heads_prune_with_the_attention_heads():
    """The table's heads dim follows the attention heads through the tensor index; the index buffer holds
    positions and is never pruned."""
    model, x = seeded(RelPosTokens), torch.randn(1, 3, 3, 3)  # 3x3 tokens: one window
    graph, plan, pruned = prune(model, x)
    (heads,) = graph.groups_of("attn", "table", dim=1)
    assert heads.prunable and heads.size == 2 and plan.removed[heads.id]
    assert heads.id in group_ids(graph, "attn.qkv")
    assert not any(g.prunable for g in graph.groups_of("attn", "table", dim=0))  # positions
    assert all(e.param in ("weight", "bias", "table") for e in plan.entries())  # never the index
    assert_user_class(pruned, RelPosTokens)
    assert pruned.attn.table.shape == (25, pruned.attn.num_heads) and pruned.attn.num_heads == 1
    assert torch.equal(pruned.attn.relative_position_index, model.attn.relative_position_index)
    assert_exact(model, pruned, plan, x)


class HVI(Stream):
    """HVI / CIDNet's colour transform: hue from boolean masks, ``hue[mask] = value`` and ``y = x[mask]``."""

    def forward(self, x):
        value, low = x.max(1)[0], x.min(1)[0]
        hue = torch.zeros_like(value)
        mask = x[:, 2] == value
        hue[mask] = 4.0 + ((x[:, 0] - x[:, 1]) / (value - low + 1e-8))[mask]
        mask = x[:, 0] == value
        hue[mask] = ((x[:, 1] - x[:, 2]) / (value - low + 1e-8))[mask] % 6
        return self.stream(torch.stack([hue / 6, value, low], 1))


def test_boolean_mask_selection_traces_and_the_rest_prunes():
    """A boolean mask's selection has a size that depends on the data: traced on the real input, kept out of
    the surgery's shape check; the colour channels are the interface, the stream behind them prunes."""
    model, x = seeded(HVI), torch.rand(1, 3, 6, 6)
    graph, plan, pruned = prune(model, x)
    assert graph.traced.shape_source == "real"
    assert not graph.traced.leaves
    assert sum(n.target.__name__ == "setitem" for n in graph.traced.gm.graph.nodes if n.op == "call_function") == 2
    (stream,) = graph.groups_of("head", dim=0)
    assert stream.prunable and plan.removed[stream.id]
    assert_user_class(pruned, HVI)
    assert_exact(model, pruned, plan, x)
    with torch.no_grad():
        x2 = torch.rand(2, 3, 5, 7)
        assert pruned(x2).shape == model(x2).shape
