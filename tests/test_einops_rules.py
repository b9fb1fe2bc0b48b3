"""einops rules: patterns read as reshapes, permutations, reductions and repeats.

Index maps are checked against what the pattern does to indices, pruned models against the dense
model with the removed channels cut (:func:`graphprune.verify.check`), and every pruned model that
the pattern allows is run at a second input size. The tracer records einops' functions as single
nodes because they have rules (``graphprune.rules.tracing_policy``).
"""
import pytest
import torch
from torch import nn

einops = pytest.importorskip("einops")
from einops import pack, rearrange, reduce, repeat, unpack  # noqa: E402
from einops.layers.torch import EinMix, Rearrange, Reduce  # noqa: E402

import graphprune as gp  # noqa: E402
from graphprune.verify import check  # noqa: E402
from test_exactness import Wrap  # noqa: E402
from test_rules import member  # noqa: E402


def pruned_and_checked(model, x, plan=None, ratio=0.5):
    """Prune (by ``plan`` or ``ratio``), compare with the cut dense model, return ``(pruned, plan)``."""
    model.eval()
    plan = plan or gp.plan(gp.analyze(model, x), ratio)
    assert plan.removed, "nothing was pruned"
    pruned = gp.apply(model, plan)
    verdict = check(model, pruned, plan, x, tol=1e-5)
    assert verdict.ok, verdict
    return pruned, plan


def runs_at(pruned, model, x):
    """The pruned model runs at another input size and keeps the dense output shape there."""
    with torch.no_grad():
        assert pruned.eval()(x).shape == model.eval()(x).shape


def group_of(graph, module, size, param="weight", dim=0):
    (group, m), = [(g, m) for g, m in member(graph, module, param, dim) if g.size == size]
    return group, m


def consumer(group, module, dim=1):
    return next(m for m in group.members if m.module == module and m.dim == dim)


# ----------------------------------------------------------------------------- tokens and back
class Tokens(nn.Module):
    """``b c h w -> b (h w) c`` → Linear over channels → ``b (h w) c -> b c h w`` with h read at run time."""

    def __init__(self, c=8):
        super().__init__()
        self.a, self.fc, self.b = nn.Conv2d(3, c, 3, padding=1), nn.Linear(c, c), nn.Conv2d(c, 3, 1)

    def forward(self, x):
        h = x.shape[2]
        t = self.fc(rearrange(self.a(x), "b c h w -> b (h w) c"))
        return self.b(rearrange(t, "b (h w) c -> b c h w", h=h))


def test_tokens_and_back_follow_the_channels():
    net, x = Tokens(), torch.randn(2, 3, 4, 6)
    graph = gp.analyze(net, x)
    group, a = group_of(graph, "a", 8)
    assert group.prunable and group.exact
    assert consumer(group, "fc").index_map.tolist() == a.index_map.tolist() == [[c] for c in range(8)]
    features, _ = group_of(graph, "fc", 8)
    assert consumer(features, "b").index_map.tolist() == [[c] for c in range(8)]
    pruned, _ = pruned_and_checked(net, x)
    assert pruned.fc.in_features == 4 and type(pruned) is Tokens  # nothing to rewrite: the user's forward runs
    runs_at(pruned, net, torch.randn(1, 3, 5, 3))


class Flattened(nn.Module):
    """Channels merged with space in both orders: ``(c h w)`` (c outer) and ``(h w c)`` (c inner)."""

    def __init__(self, c=4, hw=6):
        super().__init__()
        self.a = nn.Conv2d(3, c, 1)
        self.outer, self.inner = nn.Linear(c * hw, 5), nn.Linear(c * hw, 5)

    def forward(self, x):
        y = self.a(x)
        return self.outer(rearrange(y, "b c h w -> b (c h w)")) + self.inner(rearrange(y, "b c h w -> b (h w c)"))


def test_composed_axes_are_row_major_products():
    net, x = Flattened(), torch.randn(2, 3, 2, 3)
    group, _ = group_of(gp.analyze(net, x), "a", 4)
    assert consumer(group, "outer").index_map.tolist() == [[6 * c + k for k in range(6)] for c in range(4)]
    assert consumer(group, "inner").index_map.tolist() == [[4 * k + c for k in range(6)] for c in range(4)]
    pruned, _ = pruned_and_checked(net, x)
    assert pruned.inner.in_features == 2 * 6


# ----------------------------------------------------------------------------- heads
class Heads(nn.Module):
    """Multi-head attention written with einops: ``h=heads`` is a literal the rewrite must update."""

    def __init__(self, dim=12, heads=6, head_dim=4):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, heads * head_dim) for _ in range(3))
        self.proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x):
        q, k, v = (rearrange(f(x), "b n (h d) -> b h n d", h=self.heads) for f in (self.q, self.k, self.v))
        attn = einops.einsum(q, k, "b h i d, b h j d -> b h i j").softmax(-1)
        return x + self.proj(rearrange(einops.einsum(attn, v, "b h i j, b h j d -> b h i d"), "b h n d -> b n (h d)"))


def heads_groups(graph, prefix=""):
    heads, _ = group_of(graph, prefix + "v", 6)
    head_dim, _ = group_of(graph, prefix + "v", 4)
    return heads, head_dim


def test_heads_and_head_dim_are_groups_coupled_through_einsum():
    graph = gp.analyze(Heads(), torch.randn(2, 5, 12))
    heads, head_dim = heads_groups(graph)
    assert heads.prunable and head_dim.prunable and heads.exact and head_dim.exact
    _, v = group_of(graph, "v", 6)
    assert v.index_map.tolist() == [[4 * h + d for d in range(4)] for h in range(6)]  # (h d): h outer
    q_dim = group_of(graph, "q", 4)[0]
    assert any(m.module == "k" for m in q_dim.members), "q and k head dims are contracted together"
    assert q_dim is not head_dim, "the value head dim is independent of the query/key head dim"


def test_pruned_heads_rewrite_the_literal_axis_length():
    net, x = nn.Sequential(Heads()), torch.randn(2, 5, 12)
    graph = gp.analyze(net, x)
    heads, _ = heads_groups(graph, "0.")
    q_heads = group_of(graph, "0.q", 6)[0]
    assert q_heads is heads, "q, k and v heads are one group"
    pruned, _ = pruned_and_checked(net, x, gp.plan(graph, 0.0, ratios={heads.id: 0.5}))
    attn = pruned.get_submodule("0")
    assert attn.heads == 3 and attn.v.out_features == 3 * 4  # the attribute h=self.heads reads follows
    if getattr(pruned, "gp_graph_module", False):  # a rewritten graph: the literal itself changed
        lengths = [n.kwargs["h"] for n in pruned.graph.nodes if n.target is einops.rearrange and "h" in n.kwargs]
        assert lengths == [3, 3, 3]
    runs_at(pruned, net, torch.randn(1, 9, 12))


def test_pruned_head_dim_is_inferred_by_einops():
    net, x = Heads(), torch.randn(2, 5, 12)
    graph = gp.analyze(net, x)
    _, head_dim = heads_groups(graph)
    pruned, _ = pruned_and_checked(net, x, gp.plan(graph, 0.0, ratios={head_dim.id: 0.5}))
    assert type(pruned) is Heads and pruned.v.out_features == 6 * 2  # h=6 stays; d = 12 / 6 at run time
    runs_at(pruned, net, torch.randn(1, 9, 12))


# ----------------------------------------------------------------------------- reductions
class Stream(nn.Module):
    """head → t + op(t) → tail: ``op`` sits on the residual stream ``head`` produces."""

    def __init__(self, op, c=8):
        super().__init__()
        self.head, self.tail, self.op = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, 3, 1), op

    def forward(self, x):
        t = self.head(x)
        return self.tail(t + self.op(t))


class Gate(nn.Module):
    """Squeeze-excitation with einops: a mean over space (exact on channels)."""

    def __init__(self, c=8):
        super().__init__()
        self.fc = nn.Linear(c, c)

    def forward(self, t):
        return t * rearrange(self.fc(reduce(t, "b c h w -> b c", "mean")).sigmoid(), "b c -> b c 1 1")


def test_mean_over_space_is_exact_on_channels():
    net, x = Stream(Gate()), torch.randn(2, 3, 4, 4)
    group, _ = group_of(gp.analyze(net, x), "head", 8)
    assert group.prunable and group.exact
    pruned, _ = pruned_and_checked(net, x)
    runs_at(pruned, net, torch.randn(1, 3, 5, 7))


@pytest.mark.parametrize("reduction, exact", [("mean", False), ("max", False), ("min", False), ("sum", True)])
def test_reduction_over_channels_is_declared_inexact_except_sum(reduction, exact):
    torch.manual_seed(0)
    net = Stream(Wrap(lambda t: reduce(t, "b c h w -> b () h w", reduction) * t))
    x = torch.randn(2, 3, 8, 8)
    group, _ = group_of(gp.analyze(net, x), "head", 8)
    assert group.prunable and group.exact is exact
    if not exact:
        assert "reduce" in group.inexact_reason and reduction in group.inexact_reason
    pruned, plan = gp.prune(net.eval(), x, 0.5)
    verdict = check(net, pruned, plan, x, tol=1e-5)
    assert verdict.exact is exact and verdict.ok
    assert exact or verdict.error > 1e-4, "an inexact reduction must really differ from the cut reference"


def test_grouped_mean_rewrites_the_group_count():
    """``(g c) -> g`` mean: c is read by a statistic (inexact), whole groups g may go and g=4 follows."""
    means = lambda t: reduce(t, "b (g c) h w -> b g h w", "mean", g=4)  # noqa: E731
    net = Stream(Wrap(lambda t: t * repeat(means(t), "b g h w -> b (g c) h w", c=2)))
    x = torch.randn(2, 3, 4, 4)
    graph = gp.analyze(net, x)
    groups, _ = group_of(graph, "head", 4)
    per_group, _ = group_of(graph, "head", 2)
    assert groups.exact and not per_group.exact
    pruned, _ = pruned_and_checked(net, x, gp.plan(graph, 0.0, ratios={groups.id: 0.5}))
    g = [n.kwargs["g"] for n in pruned.graph.nodes if n.target is einops.reduce]
    assert g == [2]
    runs_at(pruned, net, torch.randn(1, 3, 6, 5))


# ----------------------------------------------------------------------------- repeat
class Repeated(nn.Module):
    """Each channel repeated twice side by side (``(c r)``), and a learned per-channel vector broadcast."""

    def __init__(self, c=4):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, c, 1), nn.Conv2d(2 * c, 3, 1)
        self.scale = nn.Parameter(torch.randn(2 * c))

    def forward(self, x):
        y = repeat(self.a(x), "b c h w -> b (c r) h w", r=2)
        return self.b(y * repeat(self.scale, "c -> b c h w", b=x.shape[0], h=x.shape[2], w=x.shape[3]))


def test_repeat_tiles_each_channel_and_blocks_new_axes():
    net, x = Repeated(), torch.randn(2, 3, 3, 5)
    graph = gp.analyze(net, x)
    group, _ = group_of(graph, "a", 4)
    assert group.prunable
    assert consumer(group, "b").index_map.tolist() == [[2 * c, 2 * c + 1] for c in range(4)]
    scale = next(m for m in group.members if m.param == "scale")
    assert scale.index_map.tolist() == [[2 * c, 2 * c + 1] for c in range(4)]
    pruned, _ = pruned_and_checked(net, x)
    assert pruned.b.in_channels == 4
    runs_at(pruned, net, torch.randn(3, 3, 4, 2))


def test_repeat_count_is_never_pruned():
    net, x = Repeated(), torch.randn(2, 3, 3, 5)
    graph = gp.analyze(net, x)
    sizes = {g.size for g, _ in member(graph, "b", dim=1) if g.prunable}
    assert sizes == {4}, "the two copies of a channel go together: r is not a group"


# ----------------------------------------------------------------------------- layers
def layered(c=8):
    return nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1),
        Rearrange("b c h w -> b h w c"), nn.Linear(c, c), Rearrange("b h w c -> b c h w"),
        Reduce("b c (h 2) (w 2) -> b c h w", "max"),
        nn.Conv2d(c, 3, 1))


def test_rearrange_and_reduce_layers_in_a_sequential():
    net, x = layered(), torch.randn(2, 3, 4, 6)
    graph = gp.analyze(net, x)
    assert not graph.unsupported
    assert not any(n.op == "call_function" for n in graph.traced.gm.graph.nodes), "the layers stay leaves"
    group, _ = group_of(graph, "0", 8)
    assert group.prunable and group.exact and any(m.module == "2" and m.dim == 1 for m in group.members)
    pruned, _ = pruned_and_checked(net, x)
    assert type(pruned) is nn.Sequential and isinstance(pruned[1], Rearrange)
    runs_at(pruned, net, torch.randn(1, 3, 8, 2))


class Shuffled(nn.Module):
    """A channel shuffle written with Rearrange layers: ``g=4`` is a stored length the resize must update."""

    def __init__(self, g=4, c=2):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, g * c, 1), nn.Conv2d(g * c, 3, 1)
        self.split = Rearrange("b (g c) h w -> b g c h w", g=g)
        self.merge = Rearrange("b g c h w -> b (c g) h w")

    def forward(self, x):
        return self.b(self.merge(self.split(self.a(x))))


def test_rearrange_layer_lengths_follow_pruned_groups():
    net, x = Shuffled(), torch.randn(2, 3, 3, 3)
    graph = gp.analyze(net, x)
    groups, a = group_of(graph, "a", 4)
    assert a.index_map.tolist() == [[2 * g, 2 * g + 1] for g in range(4)]
    assert consumer(groups, "b").index_map.tolist() == [[g, g + 4] for g in range(4)]  # (c g): g inner
    pruned, _ = pruned_and_checked(net, x, gp.plan(graph, 0.0, ratios={groups.id: 0.5}))
    assert pruned.split.axes_lengths == {"g": 2} and type(pruned) is Shuffled
    runs_at(pruned, net, torch.randn(1, 3, 5, 4))


def test_reduce_layer_over_channels_is_inexact():
    net, x = Stream(nn.Sequential(Reduce("b c h w -> b 1 h w", "mean"))), torch.randn(2, 3, 4, 4)
    group, _ = group_of(gp.analyze(net, x), "head", 8)
    assert group.prunable and not group.exact and "Reduce" in group.inexact_reason


class Mixed(nn.Module):
    """conv → EinMix → conv; EinMix is a linear over channels or per-group linears (``g`` groups)."""

    def __init__(self, mix, c=8):
        super().__init__()
        self.a, self.mix, self.b = nn.Conv2d(3, c, 1), mix, nn.Conv2d(c, 3, 1)

    def forward(self, x):
        return self.b(self.mix(self.a(x)))


def test_einmix_weight_dims_are_members():
    net = Mixed(EinMix("b c h w -> b d h w", weight_shape="c d", bias_shape="d", c=8, d=8))
    x = torch.randn(2, 3, 4, 4)
    graph = gp.analyze(net, x)
    group, _ = group_of(graph, "a", 8)
    w = next(m for m in group.members if m.module == "mix")
    assert (w.param, w.dim, w.role) == ("weight", 0, "in")
    out, _ = group_of(graph, "mix", 8, dim=1)
    assert {(m.param, m.role) for m in out.members if m.module == "mix"} == {("weight", "out"), ("bias", "out")}
    pruned, _ = pruned_and_checked(net, x)
    assert pruned.mix.weight.shape == (4, 4) and pruned.mix.axes_lengths == {"c": 4, "d": 4}
    runs_at(pruned, net, torch.randn(1, 3, 3, 5))


def test_einmix_group_count_follows_pruned_groups():
    net = Mixed(EinMix("b (g c) h w -> b (g d) h w", weight_shape="g c d", g=2, c=4, d=4))
    x = torch.randn(2, 3, 4, 4)
    graph = gp.analyze(net, x)
    groups, _ = group_of(graph, "mix", 2)
    assert consumer(groups, "b").index_map.tolist() == [[4 * g + k for k in range(4)] for g in range(2)]
    pruned, _ = pruned_and_checked(net, x, gp.plan(graph, 0.0, ratios={groups.id: 0.5}))
    assert pruned.mix.axes_lengths["g"] == 1 and pruned.mix.pre_rearrange.axes_lengths["g"] == 1
    runs_at(pruned, net, torch.randn(1, 3, 3, 5))


# ----------------------------------------------------------------------------- windows, pixel shuffle
class Windows(nn.Module):
    """Swin-style window partition and reverse on channels-last maps, ``p1=ws`` given, h and w inferred."""

    def __init__(self, c=8, ws=2):
        super().__init__()
        self.ws = ws
        self.a, self.fc, self.b = nn.Linear(3, c), nn.Linear(c, c), nn.Linear(c, 3)

    def forward(self, x):
        B, H, W, _ = x.shape
        t = rearrange(self.a(x), "b (h p1) (w p2) c -> (b h w) (p1 p2) c", p1=self.ws, p2=self.ws)
        t = self.fc(t).softmax(1) * t  # attention-like mixing within a window: over tokens, not channels
        t = rearrange(t, "(b h w) (p1 p2) c -> b (h p1) (w p2) c", b=B, h=H // self.ws, p1=self.ws)
        return self.b(t)


def test_window_partition_keeps_channels_and_runs_at_another_size():
    net, x = Windows(), torch.randn(2, 4, 6, 3)
    graph = gp.analyze(net, x)
    group, _ = group_of(graph, "a", 8)
    assert group.prunable and group.exact
    pruned, _ = pruned_and_checked(net, x)
    assert pruned.fc.in_features == 4
    runs_at(pruned, net, torch.randn(1, 8, 2, 3))


class SubPixel(nn.Module):
    """Pixel shuffle written with einops: ``b (c r1 r2) h w -> b c (h r1) (w r2)``."""

    def __init__(self, c=4, r=2):
        super().__init__()
        self.r = r
        self.up, self.out = nn.Conv2d(3, c * r * r, 3, padding=1), nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        return self.out(rearrange(self.up(x), "b (c r1 r2) h w -> b c (h r1) (w r2)", r1=self.r, r2=self.r))


def test_einops_pixel_shuffle_maps_each_channel_to_its_sub_pixels():
    net, x = SubPixel(), torch.randn(1, 3, 4, 5)
    graph = gp.analyze(net, x)
    group, up = group_of(graph, "up", 4)
    assert group.prunable and up.index_map.tolist() == [[4 * c + k for k in range(4)] for c in range(4)]
    assert [m.module for m in group.consumers] == ["out"]
    assert all(not g.prunable for g, _ in member(graph, "up") if g is not group), "sub-pixel factors are spatial"
    pruned, _ = pruned_and_checked(net, x)
    assert pruned.up.out_channels == 2 * 4
    runs_at(pruned, net, torch.randn(2, 3, 3, 6))


# ----------------------------------------------------------------------------- ellipsis, anonymous axes, pack
class Ellipsis(nn.Module):
    """``...`` for leading dims, ``(...)`` as a product, and anonymous axes ``1``/``()`` and ``2``."""

    def __init__(self, c=8):
        super().__init__()
        self.a, self.fc, self.b = nn.Conv2d(3, c, 1), nn.Linear(c, c), nn.Conv2d(c // 2, 3, 1)

    def forward(self, x):
        y = self.a(x)
        t = self.fc(rearrange(y, "b c ... -> b (...) c"))                       # (h w) from the ellipsis
        y = rearrange(t, "b (h w) c -> b c h w", h=x.shape[2]) * rearrange(t.mean(1), "b c -> b c () 1")
        return self.b(reduce(y, "b (c 2) h w -> b c h w", "sum"))               # pairs of channels summed


def test_ellipsis_and_anonymous_axes():
    net, x = Ellipsis(), torch.randn(2, 3, 4, 3)
    graph = gp.analyze(net, x)
    assert not graph.unsupported
    fc, _ = group_of(graph, "fc", 4)  # (c 2): c is a group of 4 pairs, the 2 is a literal of the pattern
    assert fc.prunable and consumer(fc, "b").index_map.tolist() == [[c] for c in range(4)]
    assert [m.index_map.tolist() for m in fc.members if m.module == "fc" and m.param == "bias"] == \
        [[[2 * c, 2 * c + 1] for c in range(4)]]
    assert all(not g.prunable for g, _ in member(graph, "fc") if g.size == 2)
    pruned, _ = pruned_and_checked(net, x)
    runs_at(pruned, net, torch.randn(1, 3, 2, 5))


class Packed(nn.Module):
    """A learned token packed in front of the image tokens and unpacked again."""

    def __init__(self, c=8):
        super().__init__()
        self.a, self.fc, self.b = nn.Conv2d(3, c, 1), nn.Linear(c, c), nn.Conv2d(c, 3, 1)
        self.token = nn.Parameter(torch.randn(1, c))

    def forward(self, x):
        t = rearrange(self.a(x), "b c h w -> b h w c")
        packed, shapes = pack([repeat(self.token, "1 c -> b c", b=x.shape[0]), t], "b * c")
        token, t = unpack(self.fc(packed), shapes, "b * c")
        return self.b(rearrange(t, "b h w c -> b c h w") + token[:, :, None, None])


def test_pack_and_unpack():
    net, x = Packed(), torch.randn(2, 3, 2, 3)
    graph = gp.analyze(net, x)
    group, _ = group_of(graph, "a", 8)
    assert group.prunable and any(m.param == "token" for m in group.members)
    pruned, _ = pruned_and_checked(net, x)
    runs_at(pruned, net, torch.randn(1, 3, 3, 3))


# ----------------------------------------------------------------------------- a list of tensors
class Stacked(nn.Module):
    """``rearrange([a, b], 'n b c h w -> b (n c) h w')``: einops stacks the list, here into the channels."""

    def __init__(self, c=4):
        super().__init__()
        self.a, self.b, self.out = nn.Conv2d(3, c, 1), nn.Conv2d(3, c, 1), nn.Conv2d(2 * c, 3, 1)

    def forward(self, x):
        return self.out(rearrange([self.a(x), self.b(x)], "n b c h w -> b (n c) h w"))


def test_a_stacked_list_couples_its_tensors_and_blocks_the_stack_axis():
    net, x = Stacked(), torch.randn(2, 3, 3, 3)
    graph = gp.analyze(net, x)
    group, _ = group_of(graph, "a", 4)
    assert group is group_of(graph, "b", 4)[0], "stacked tensors keep equal shapes: their channels go together"
    assert consumer(group, "out").index_map.tolist() == [[c, 4 + c] for c in range(4)]
    assert all(not g.prunable for g, _ in member(graph, "out", dim=1) if g.size == 2)
    pruned, _ = pruned_and_checked(net, x)
    assert pruned.out.in_channels == 4
    runs_at(pruned, net, torch.randn(1, 3, 5, 2))


def test_doctests():
    import doctest

    import graphprune.rules.attention
    import graphprune.rules.einops

    for module in (graphprune.rules.einops, graphprune.rules.attention):
        assert doctest.testmod(module).failed == 0
