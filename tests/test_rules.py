"""Op rules on hand-built modules: index maps checked against what the op does to indices."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune as gp
from graphprune.verify import equivalence_error


def member(graph, module, param="weight", dim=0):
    """The (group, member) pairs on one parameter dim."""
    return [(g, m) for g in graph.groups for m in g.members
            if m.module == module and m.param == param and m.dim == dim]


def only_group(graph, module, param="weight", dim=0):
    pairs = member(graph, module, param, dim)
    assert len(pairs) == 1, pairs
    return pairs[0]


def prune_and_check(model, x, ratio=0.5, exact=True, **kw):
    model.eval()
    pruned, plan = gp.prune(model, x, ratio, **kw)
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape
    if exact:
        assert equivalence_error(model, pruned, plan, x) < 1e-5
    return pruned, plan


# ----------------------------------------------------------------------------- pixel shuffle
class PixelShuffleNet(nn.Module):
    def __init__(self, c=4, r=2):
        super().__init__()
        self.up = nn.Conv2d(3, c * r * r, 3, padding=1)
        self.ps = nn.PixelShuffle(r)
        self.out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        return self.out(self.ps(self.up(x)))


def test_pixel_shuffle_maps_each_channel_to_r_squared_inputs():
    net = PixelShuffleNet(c=4, r=2)
    g = gp.analyze(net, torch.randn(1, 3, 8, 8))
    group, m = [(gr, m) for gr, m in member(g, "up") if gr.size == 4][0]
    assert group.prunable
    # output channel c of the shuffle owns input channels c*4 .. c*4+3
    assert m.index_map.tolist() == [[4 * c + k for k in range(4)] for c in range(4)]
    assert [mm.module for mm in group.consumers] == ["out"]
    # the sub-pixel factors are separate, blocked groups
    assert all(not gr.prunable for gr, _ in member(g, "up") if gr is not group)


def test_pixel_shuffle_prune_is_exact():
    pruned, plan = prune_and_check(PixelShuffleNet(c=6, r=3), torch.randn(1, 3, 5, 7))
    assert pruned.up.out_channels == 3 * 9 and pruned.out.in_channels == 3


def test_pixel_unshuffle():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 6, 3, padding=1)
            self.b = nn.Conv2d(24, 3, 1)

        def forward(self, x):
            return F.pixel_unshuffle(self.a(x), 2).relu().mul(2).sum(1, keepdim=True) + self.b(F.pixel_unshuffle(self.a(x), 2))

    g = gp.analyze(Net(), torch.randn(1, 3, 8, 8))
    grp, m = [(gr, m) for gr, m in member(g, "a") if gr.prunable][0]
    # channel c of `a` becomes channels c*4 .. c*4+3 after unshuffle, read by b's weight dim 1
    b = [mm for mm in grp.members if mm.module == "b"][0]
    assert b.index_map.tolist() == [[4 * c + k for k in range(4)] for c in range(6)]
    prune_and_check(Net(), torch.randn(1, 3, 8, 8))


# ----------------------------------------------------------------------------- channel shuffle
class ShuffleNet(nn.Module):
    """cat → channel shuffle (view–transpose–view) → conv, as in ShuffleNetV2."""

    def __init__(self, c=8):
        super().__init__()
        self.a = nn.Conv2d(3, c, 1)
        self.b = nn.Conv2d(3, c, 1)
        self.out = nn.Conv2d(2 * c, 3, 1)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.out(y)


def test_channel_shuffle_couples_both_branches_and_interleaves():
    g = gp.analyze(ShuffleNet(8), torch.randn(1, 3, 4, 4))
    (ga, ma), (gb, mb) = only_group(g, "a"), only_group(g, "b")
    assert ga is gb, "after a shuffle of two halves, channel k of a and of b must go together"
    assert ma.index_map.ravel().tolist() == list(range(8))
    consumer = [m for m in ga.members if m.module == "out" and m.dim == 1][0]
    # channel k of each half lands at positions 2k and 2k+1 after the shuffle
    assert consumer.index_map.tolist() == [[2 * k, 2 * k + 1] for k in range(8)]
    pruned, _ = prune_and_check(ShuffleNet(8), torch.randn(1, 3, 4, 4))
    assert isinstance(pruned, torch.fx.GraphModule) or pruned.a.out_channels == 4


# ----------------------------------------------------------------------------- cat / split
class CatSplitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 1)
        self.b = nn.Conv2d(3, 10, 1)
        self.c = nn.Conv2d(4, 3, 1)
        self.d = nn.Conv2d(12, 3, 1)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], dim=1)      # 16 = 6 | 10
        p, q = torch.split(y, [4, 12], dim=1)             # cuts 6 | 10 at 4: pieces 4 | 2 | 10
        return self.c(p) + self.d(q)


def test_cat_split_refines_segments():
    g = gp.analyze(CatSplitNet(), torch.randn(1, 3, 4, 4))
    sizes_a = sorted(gr.size for gr, _ in member(g, "a"))
    assert sizes_a == [2, 4], "a's 6 channels are cut in 4 (to c) and 2 (to d)"
    (gb, mb), = member(g, "b")
    d_member = [m for m in gb.members if m.module == "d" and m.dim == 1][0]
    assert d_member.index_map.ravel().tolist() == list(range(2, 12))
    pruned, plan = prune_and_check(CatSplitNet(), torch.randn(1, 3, 4, 4))
    assert getattr(pruned, "gp_graph_module", False), "split sizes are constants: a GraphModule is returned"


def test_slicing_moves_bounds():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 12, 1)
            self.b = nn.Conv2d(4, 3, 1)
            self.c = nn.Conv2d(8, 3, 1)

        def forward(self, x):
            y = self.a(x)
            return self.b(y[:, :4]) + self.c(y[:, 4:])

    pruned, _ = prune_and_check(Net(), torch.randn(1, 3, 4, 4))
    assert pruned.a.out_channels == 2 + 4


def test_chunk_pieces_are_coupled():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 1)
            self.b = nn.Conv2d(4, 3, 1)

        def forward(self, x):
            u, v = self.a(x).chunk(2, dim=1)
            return self.b(u * torch.sigmoid(v))

    g = gp.analyze(Gate(), torch.randn(1, 3, 4, 4))
    (grp, m), = member(g, "a")
    assert m.index_map.tolist() == [[k, k + 4] for k in range(4)]
    prune_and_check(Gate(), torch.randn(1, 3, 4, 4))


# ----------------------------------------------------------------------------- depthwise / grouped
class SeparableNet(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.pw1 = nn.Conv2d(3, 8, 1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 16, 3, padding=1, groups=groups)
        self.pw2 = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        return self.pw2(F.relu(self.dw(F.relu(self.bn(self.pw1(x))))))


def test_depthwise_ties_in_and_out_channel_by_channel():
    g = gp.analyze(SeparableNet(groups=8), torch.randn(1, 3, 6, 6))
    (grp, m), = member(g, "pw1")
    dw = [mm for mm in grp.members if mm.module == "dw" and mm.dim == 0][0]
    # depthwise with multiplier 2: input channel c owns filters 2c, 2c+1
    assert dw.index_map.tolist() == [[2 * c, 2 * c + 1] for c in range(8)]
    assert {mm.module for mm in grp.members} == {"pw1", "bn", "dw", "pw2"}
    pruned, _ = prune_and_check(SeparableNet(groups=8), torch.randn(1, 3, 6, 6))
    assert pruned.dw.groups == 4 and pruned.dw.in_channels == 4 and pruned.bn.num_features == 4


def test_grouped_conv_prunes_evenly_per_group():
    net = SeparableNet(groups=2)
    g = gp.analyze(net, torch.randn(1, 3, 6, 6))
    pw1_groups = [gr for gr, _ in member(g, "pw1")]
    assert sorted(gr.size for gr in pw1_groups) == [2, 4], "8 channels = 2 groups x 4 per group"
    pruned, _ = prune_and_check(SeparableNet(groups=2), torch.randn(1, 3, 6, 6))
    assert pruned.dw.in_channels % pruned.dw.groups == 0


# ----------------------------------------------------------------------------- flatten → linear
def test_flatten_owns_spatial_block():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 2 * 2, 5)

        def forward(self, x):
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.conv(x), 2), 1))

    g = gp.analyze(Net(), torch.randn(1, 3, 8, 8))
    (grp, _), = member(g, "conv")
    fc = [m for m in grp.members if m.module == "fc"][0]
    assert fc.index_map.tolist() == [[4 * c + k for k in range(4)] for c in range(4)]
    pruned, _ = prune_and_check(Net(), torch.randn(1, 3, 8, 8))
    assert pruned.fc.in_features == 2 * 4


# ----------------------------------------------------------------------------- attention
class TinyAttention(nn.Module):
    def __init__(self, dim=12, heads=3):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        y = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return x + self.proj(y)


def test_attention_heads_and_head_dim_are_groups():
    g = gp.analyze(TinyAttention(), torch.randn(2, 5, 12), size_ties=False)
    sizes = sorted(gr.size for gr, _ in member(g, "qkv") if gr.prunable)
    assert sizes == [3, 4], "heads (3) and head dim (4) are independent prunable groups"
    pruned, _ = prune_and_check(TinyAttention(), torch.randn(2, 5, 12), exact=False, size_ties=False)
    assert pruned.proj.in_features < 12
    out = pruned(torch.randn(2, 7, 12))  # another sequence length still works
    assert out.shape == (2, 7, 12)


class FusedAttention(nn.Module):
    """timm's fused path: ``F.scaled_dot_product_attention`` without ``scale`` (1/sqrt of the head dim)."""

    def __init__(self, dim=12, heads=3, inner=16):
        super().__init__()
        self.heads = heads
        self.qk = nn.Linear(dim, 2 * inner)
        self.v = nn.Linear(dim, inner)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k = self.qk(x).reshape(b, n, 2, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        v = self.v(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, -1))


def test_pruned_head_dim_keeps_the_dense_attention_scale():
    net, x = FusedAttention(inner=24), torch.randn(2, 5, 12)
    graph = gp.analyze(net, x)
    head_dim = next(gr for gr, _ in member(graph, "qk") if gr.prunable and gr.size == 8)
    plan = gp.plan(graph, 0.0, ratios={head_dim.id: 0.5})
    pruned = gp.apply(net.eval(), plan)
    assert equivalence_error(net, pruned, plan, x) < 1e-5  # not a sharper softmax
    sdpa = next(n for n in pruned.graph.nodes if n.target is F.scaled_dot_product_attention)
    assert sdpa.kwargs["scale"] == pytest.approx(8 ** -0.5)


# ----------------------------------------------------------------------------- unknown ops
class Mystery(nn.Module):
    """A leaf with parameters and no rule."""

    def __init__(self, c):
        super().__init__()
        self.w = nn.Parameter(torch.ones(c))

    def forward(self, x):
        return x * self.w.view(1, -1, 1, 1)


class WithMystery(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.m = Mystery(8)
        self.b = nn.Conv2d(8, 8, 1)
        self.c = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.c(torch.relu(self.b(self.m(self.a(x)))))


def test_op_without_rule_blocks_its_channels_with_reason():
    net = WithMystery()
    g = gp.analyze(net, torch.randn(1, 3, 4, 4), leaf_modules=[Mystery])
    (grp, _), = member(g, "a")
    assert not grp.prunable and "Mystery" in grp.reason and "no rule" in grp.reason
    (free, _), = member(g, "b")
    assert free.prunable, "channels away from the unknown op stay prunable"
    pruned, plan = gp.prune(net, torch.randn(1, 3, 4, 4), 0.5, leaf_modules=[Mystery])
    assert pruned.a.out_channels == 8 and pruned.b.out_channels == 4


def weird(x):
    """A function torch.fx records as one call and graphprune has no rule for."""
    return x.flip(0)


torch.fx.wrap("weird")


def test_custom_function_without_rule():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 3, 1)

        def forward(self, x):
            return self.b(weird(self.a(x)))

    g = gp.analyze(Net(), torch.randn(1, 3, 4, 4))
    (grp, _), = member(g, "a")
    assert not grp.prunable and "weird" in grp.reason


def test_set_rule_unblocks_a_custom_leaf():
    from graphprune.rules import set_rule
    from graphprune.rules.elementwise import passthrough

    def mystery_rule(ctx):
        passthrough(ctx)
        ctx.unify(ctx.param("w", ("out",))[0], ctx.out()[1])

    set_rule(Mystery, gp.rules.Rule(mystery_rule, params=("w",)))
    try:
        net = WithMystery()
        pruned, plan = prune_and_check(net, torch.randn(1, 3, 4, 4), leaf_modules=[Mystery])
        assert pruned.m.w.shape == (4,)
    finally:
        set_rule(Mystery, None)


def test_interface_channels_are_never_pruned():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 5, 3, padding=1))
    g = gp.analyze(net, torch.randn(1, 3, 6, 6))
    (out_group, _), = member(g, "2")
    (in_group, _), = member(g, "0", dim=1)
    assert not out_group.prunable and "model output" in out_group.reason
    assert not in_group.prunable and "model input" in in_group.reason


def test_ignore_keeps_producer_outputs_but_shrinks_inputs():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                        nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    pruned, _ = gp.prune(net, torch.randn(1, 3, 6, 6), 0.5, ignore=["2"])
    assert pruned[2].out_channels == 8, "the ignored module keeps its own output channels"
    assert pruned[2].in_channels == 4, "its inputs still follow the group that feeds it"


def test_frozen_producer_is_not_pruned():
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 3, 1))
    net[0].weight.requires_grad_(False)
    g = gp.analyze(net, torch.randn(1, 3, 2, 2))
    (grp, _), = member(g, "0")
    assert not grp.prunable and "frozen" in grp.reason


def test_untraceable_submodule_becomes_a_leaf_and_is_reported():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.br, self.b = nn.Conv2d(3, 4, 1), Branchy(), nn.Conv2d(4, 3, 1)

        def forward(self, x):
            return self.b(self.br(self.a(x)))

    g = gp.analyze(Net(), torch.randn(1, 3, 4, 4))
    assert "br" in g.traced.leaves and g.traced.leaves["br"].startswith("auto:")
    (grp, _), = member(g, "a")
    assert not grp.prunable and "Branchy" in grp.reason


def test_entirely_untraceable_model_raises_clear_error():
    class Bad(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(gp.TraceError, match="cannot trace Bad"):
        gp.analyze(Bad(), torch.randn(1, 3, 4, 4))


def test_analysis_does_not_depend_on_resolution():
    net = PixelShuffleNet()
    small = gp.analyze(net, torch.randn(1, 3, 8, 8))
    large = gp.analyze(net, torch.randn(1, 3, 720, 1280))
    assert [(gr.size, gr.prunable) for gr in small.groups] == [(gr.size, gr.prunable) for gr in large.groups]
    assert large.traced.shape_source in ("meta", "fake"), "no real forward at 1280x720"


def test_original_model_untouched():
    net = PixelShuffleNet().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    gp.prune(net, torch.randn(1, 3, 8, 8), 0.5)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.up.out_channels == 16


def test_multiply_used_module_is_pruned_consistently():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 1)
            self.shared = nn.Conv2d(8, 8, 3, padding=1)
            self.out = nn.Conv2d(8, 3, 1)

        def forward(self, x):
            y = self.a(x)
            return self.out(self.shared(torch.relu(self.shared(y))) + y)

    prune_and_check(Shared(), torch.randn(1, 3, 5, 5))


def test_to_networkx_has_nodes_edges_and_groups():
    g = gp.analyze(PixelShuffleNet(), torch.randn(1, 3, 8, 8))
    G = g.to_networkx()
    assert {"x", "up", "ps", "out", "output"} <= set(G.nodes)
    assert G.has_edge("up", "ps") and G.has_edge("ps", "out")
    gid = [gr.id for gr, _ in member(g, "up") if gr.prunable][0]
    assert gid in G.nodes["ps"]["groups"][1]
    assert G.nodes["up"]["shape"] == (1, 16, 8, 8)


def test_plan_entries_and_index_maps_consistent():
    g = gp.analyze(PixelShuffleNet(c=4, r=2), torch.randn(1, 3, 8, 8))
    p = gp.plan(g, 0.5)
    (gid, removed), = p.removed.items()
    entries = {(e.module, e.param, e.dim): e for e in p.entries()}
    assert entries[("out", "weight", 1)].indices == tuple(removed)
    expected = tuple(sorted(4 * c + k for c in removed for k in range(4)))
    assert entries[("up", "weight", 0)].indices == expected
    assert entries[("up", "bias", 0)].indices == expected
    assert np.all(np.diff(entries[("up", "weight", 0)].indices) > 0)


# ----------------------------------------------------------------------------- size checks, expand
class GroupStdNet(nn.Module):
    """EvoNorm-S0 style group statistics: an assert on the channel count, a literal group count in a
    reshape and an ``expand`` to another tensor's shape (timm's ``group_std``)."""

    def __init__(self, c=12, groups=4):
        super().__init__()
        self.groups = groups
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.out = nn.Conv2d(c, 3, 1)

    def forward(self, x):
        x = self.conv(x)
        B, C, H, W = x.shape
        torch._assert(C % self.groups == 0, "channels must divide into groups")
        torch._assert(H >= 2, "too small")
        g = x.reshape(B, self.groups, C // self.groups, H, W)
        std = g.var(dim=(2, 3, 4), keepdim=True).add(1e-5).sqrt()
        return self.out(x / std.expand(g.shape).reshape(B, C, H, W))


def _factor_groups(graph):
    """(group count factor, within-group factor) of GroupStdNet's conv output."""
    sizes = {gr.size: gr for gr, _ in member(graph, "conv")}
    return sizes[4], sizes[3]


def test_expand_to_another_tensors_shape_follows_it():
    g = gp.analyze(GroupStdNet(), torch.randn(1, 3, 6, 6))
    groups, within = _factor_groups(g)
    assert groups.prunable and within.prunable, (groups.reason, within.reason)


GROUPS = 4  # a module-level constant: no attribute the surgery could update


class ConstantGroupStdNet(GroupStdNet):
    """The same statistics with the group count a module constant: the forward reads no attribute for it."""

    def forward(self, x):
        x = self.conv(x)
        B, C, H, W = x.shape
        torch._assert(C % GROUPS == 0, "channels must divide into groups")
        torch._assert(H >= 2, "too small")
        g = x.reshape(B, GROUPS, C // GROUPS, H, W)
        std = g.var(dim=(2, 3, 4), keepdim=True).add(1e-5).sqrt()
        return self.out(x / std.expand(g.shape).reshape(B, C, H, W))


def test_group_count_attribute_follows_and_the_users_assert_holds():
    net, x = GroupStdNet().eval(), torch.randn(1, 3, 6, 6)
    graph = gp.analyze(net, x)
    groups, within = _factor_groups(graph)
    pruned = gp.apply(net, gp.plan(graph, 0.0, ratios={groups.id: 0.5}))
    assert type(pruned) is GroupStdNet and pruned.groups == 2 and pruned.conv.out_channels == 6
    with torch.no_grad():
        assert pruned(torch.randn(2, 3, 7, 5)).shape == (2, 3, 7, 5)  # its own assert: 6 % 2 == 0


def test_channel_count_assert_is_dropped_when_whole_groups_go():
    net, x = ConstantGroupStdNet().eval(), torch.randn(1, 3, 6, 6)
    graph = gp.analyze(net, x)
    groups, within = _factor_groups(graph)
    plan = gp.plan(graph, 0.0, ratios={groups.id: 0.5})
    pruned = gp.apply(net, plan)  # 6 channels: 6 % 4 != 0, the dense literal 4 would fail the assert
    assert pruned.conv.out_channels == 6 and pruned.gp_graph_module
    asserts = [n for n in pruned.graph.nodes if n.target is torch._assert]
    conditions = [n.args[0] for n in asserts]
    assert conditions.count(True) == 1  # the channel check went, the spatial one stays a live check
    assert sum(isinstance(c, torch.fx.Node) for c in conditions) == 1
    assert equivalence_error(net, pruned, plan, x) < 1e-5  # whole groups: the other groups' statistics are untouched
    with pytest.raises(Exception, match="too small"):
        pruned(torch.randn(1, 3, 1, 1))


def test_channel_count_assert_kept_when_counts_do_not_change():
    net, x = GroupStdNet().eval(), torch.randn(1, 3, 6, 6)
    graph = gp.analyze(net, x)
    groups, within = _factor_groups(graph)
    pruned = gp.apply(net, gp.plan(graph, 0.0, ratios={within.id: 0.5}))  # 4 groups of 1: 4 % 4 == 0
    assert pruned.conv.out_channels == 4
    # C // groups still gives the planned per-group size and 4 % 4 == 0 holds: nothing to rewrite,
    # the user's own forward (asserts included) runs
    assert type(pruned) is GroupStdNet
    with torch.no_grad():
        assert pruned(x).shape == net(x).shape


class CachingAttention(nn.Module):
    """ConViT-style: forward caches a tensor on the module behind python control flow."""

    def __init__(self, c=8):
        super().__init__()
        self.qk = nn.Linear(c, c)
        self.rel = None

    def forward(self, x):
        if self.rel is None or self.rel.shape[0] != x.shape[1]:
            self.rel = torch.arange(x.shape[1], dtype=x.dtype)
        return self.qk(x) + self.rel[None, :, None]


class CachingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.attn, self.out = nn.Linear(4, 8), CachingAttention(), nn.Linear(8, 4)

    def forward(self, x):
        return self.out(torch.relu(self.attn(self.inp(x))))


@pytest.mark.parametrize("leaf", [False, True], ids=["traced", "leaf"])
def test_analysis_and_surgery_leave_no_fake_tensors_in_modules(leaf):
    """Traced, the cache would receive an fx Proxy; as a leaf run on fake tensors, a FakeTensor."""
    net, x = CachingNet().eval(), torch.randn(2, 5, 4)
    graph = gp.analyze(net, x, leaf_modules=[CachingAttention] if leaf else ())
    assert ("attn" in graph.traced.leaves) == leaf
    assert net.attn.rel is None  # the user's module is as it was
    pruned = gp.apply(net, gp.plan(graph, 0.5))
    rel = pruned.get_submodule("attn").rel
    assert rel is None or type(rel) is torch.Tensor
    with torch.no_grad():
        y = pruned(x)
    assert type(y) is torch.Tensor and y.shape == net(x).shape


class BlurNet(nn.Module):
    """timm's BlurPool2d: a fixed depthwise filter applied with ``F.conv2d(..., groups=<literal>)``."""

    def __init__(self, c=6):
        super().__init__()
        self.channels = c
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.register_buffer("filt", torch.tensor([1.0, 2.0, 1.0]).outer(torch.tensor([1.0, 2.0, 1.0])).div(16)
                             .repeat(c, 1, 1, 1), persistent=False)
        self.out = nn.Conv2d(c, 3, 1)

    def forward(self, x):
        x = F.pad(self.conv(x), [1, 1, 1, 1], mode="reflect")
        return self.out(F.conv2d(x, self.filt, stride=2, groups=self.channels))


def test_functional_depthwise_conv_literal_groups_follow_pruning():
    """``groups=self.channels`` is read back as a literal: the attribute follows, the class runs as is."""
    pruned, plan = prune_and_check(BlurNet(), torch.randn(1, 3, 8, 8))
    assert pruned.get_submodule("conv").out_channels == 3 and pruned.filt.shape[0] == 3
    assert type(pruned) is BlurNet and pruned.channels == 3


class OptionalMaskNet(nn.Module):
    """timm's Hiera: ``forward(x, mask=None)``; traced as a free placeholder the mask branch would be taken."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 3, 1)

    def forward(self, x, mask=None, scale: float = 1.0):
        y = self.a(x)
        if mask is not None:
            y = y * mask.view(1, -1, 1, 1)
        return self.b(y) * scale


def test_optional_forward_arguments_are_traced_at_their_defaults():
    net, x = OptionalMaskNet().eval(), torch.randn(1, 3, 4, 4)
    pruned, _ = prune_and_check(net, x)
    assert pruned.a.out_channels == 4
    with torch.no_grad():
        assert torch.allclose(pruned(x, None, 1.0), pruned(x))


def test_equivalence_reference_ignores_removed_channels_at_consumers():
    """sigmoid(0) = 0.5: zeroing producers alone would leave the removed channels alive downstream."""
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Sigmoid(), nn.Conv2d(8, 3, 1)).eval()
    x = torch.randn(1, 3, 4, 4)
    pruned, plan = prune_and_check(net, x)  # exact: the reference is the dense net without those channels
    assert pruned[2].in_channels == 4
    z = gp.verify.zeroed_copy(net, plan)
    removed = list(plan.removed.values())[0]
    assert z[2].weight[:, removed].abs().sum() == 0 and z[0].weight[removed].abs().sum() == 0


class SizedByOtherStream(nn.Module):
    """VOLO's outlook attention: values reshaped with ``C // heads`` read from the residual stream ``x``.

    The values pass an op without a rule (their width is kept) while the residual stream is pruned,
    so the run-time ``C // heads`` no longer describes the values: the planned size must replace it.
    """

    def __init__(self, c=12, heads=3):
        super().__init__()
        self.heads = heads
        self.inp, self.v, self.proj, self.out = nn.Linear(4, c), nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, 4)

    def forward(self, x):
        x = self.inp(x)
        B, N, C = x.shape
        v = weird(self.v(x)).reshape(B, N, self.heads, C // self.heads)  # heads x head width: no parameter
        return self.out(x + self.proj(weird(v).flatten(2)))  # of their own (VOLO: unfold ... fold)


def test_size_argument_read_from_another_pruned_tensor_is_replaced():
    net, x = SizedByOtherStream().eval(), torch.randn(2, 5, 4)
    pruned, plan = prune_and_check(net, x, size_ties=False)  # untied: the stream prunes, the values cannot
    assert pruned.get_submodule("inp").out_features == 6 and pruned.get_submodule("v").out_features == 12
    reshape = next(n for n in pruned.graph.nodes if n.target == "reshape")
    assert reshape.args[3:] == (3, 4)  # heads and the planned per-head width, not C // heads = 2
    with torch.no_grad():
        assert pruned(torch.randn(3, 7, 4)).shape == (3, 7, 4)  # batch and length still follow the input


def test_size_tie_keeps_the_class_when_the_values_cannot_prune():
    """Tied (the default), ``C // heads`` ties the stream to the values: both are kept, the class runs as is."""
    net, x = SizedByOtherStream().eval(), torch.randn(2, 5, 4)
    graph = gp.analyze(net, x)
    stream = graph.groups_of("inp", "weight", 0)  # heads x head width, tied to the stream
    assert stream and all(not g.prunable and "weird" in g.reason for g in stream), stream


class TensorMadeInForward(nn.Module):
    """A tensor made in forward from python values (DINOv3's rotary periods): fx captures it as a constant."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 4)
        self.periods = [1.0 + i / 7 for i in range(8)]

    def forward(self, x):
        return self.b(self.a(x) * torch.tensor(self.periods))


def test_trace_constants_in_a_pruned_group_are_sliced():
    net, x = TensorMadeInForward().eval(), torch.randn(2, 4)
    graph = gp.analyze(net, x)
    assert list(graph.traced.constants) == ["_tensor_constant0"] and not hasattr(net, "_tensor_constant0")
    pruned, plan = prune_and_check(net, x)
    kept = [i for i in range(8) if i not in list(plan.removed.values())[0]]
    assert torch.equal(pruned._tensor_constant0, torch.tensor(net.periods)[kept])
    assert not hasattr(net, "_tensor_constant0")


def test_ratio_applies_to_a_channel_space_shared_by_its_factors():
    """heads × head dim: each factor loses 1 - sqrt(1 - r), so the q/k/v width loses about r, not 1 - (1 - r)^2."""
    net, x = FusedAttention(inner=24), torch.randn(2, 5, 12)
    graph = gp.analyze(net, x)
    heads, head_dim = (next(gr for gr, _ in member(graph, "v") if gr.prunable and gr.size == n) for n in (3, 8))
    assert heads.factors == head_dim.factors == 2
    pruned = gp.apply(net, gp.plan(graph, 0.5))
    assert pruned.get_submodule("v").out_features == 2 * 5  # ceil(0.29 * 3) = 1 head and ceil(0.29 * 8) = 3 widths go
    explicit = gp.apply(net, gp.plan(graph, 0.0, ratios={heads.id: 0.5, head_dim.id: 0.5}))
    assert explicit.get_submodule("v").out_features == 1 * 4  # a ratio given per group id is taken as is
    depthwise = gp.analyze(SeparableNet(groups=8), torch.randn(1, 3, 6, 6))
    (pw1, _), = member(depthwise, "pw1")
    assert pw1.factors == 1  # whole filters of pw1: the ratio applies unchanged


class ReshapeToShapeOf(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 3, 1)

    def forward(self, x):
        y = self.a(x)
        return self.b(y.flatten(2).reshape(y.shape) + y.flatten(1).view(y.size()))


def test_reshape_to_another_tensors_whole_shape_follows_it():
    net, x = ReshapeToShapeOf().eval(), torch.randn(2, 3, 4, 5)
    pruned, _ = prune_and_check(net, x)
    assert type(pruned) is ReshapeToShapeOf  # nothing to rewrite
    with torch.no_grad():
        assert pruned(torch.randn(1, 3, 6, 7)).shape == (1, 3, 6, 7)


class HeadsAttention(nn.Module):
    """timm's Attention: the forward reads num_heads / head_dim / attn_dim back as literals."""

    def __init__(self, dim=12, num_heads=3, head_dim=8):
        super().__init__()
        self.num_heads, self.head_dim, self.attn_dim = num_heads, head_dim, num_heads * head_dim
        self.qkv, self.proj = nn.Linear(dim, 3 * self.attn_dim), nn.Linear(self.attn_dim, dim)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        y = (q @ k.transpose(-2, -1) * 0.25).softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, N, self.attn_dim))


class HeadsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.attn, self.out = nn.Linear(4, 12), HeadsAttention(), nn.Linear(12, 4)

    def forward(self, x):
        x = self.inp(x)
        return self.out(x + self.attn(x))


def test_rewrite_keeps_the_module_tree_and_updates_head_attributes():
    net, x = HeadsNet().eval(), torch.randn(2, 5, 4)
    pruned, plan = prune_and_check(net, x)
    # the attributes the forward reads back follow the plan, so its own forward computes the verified graph
    assert type(pruned) is HeadsNet and not getattr(pruned, "gp_graph_module", False)
    a = pruned.attn
    assert (a.num_heads, a.head_dim, a.attn_dim) == (2, 5, 10)  # 1 - sqrt(0.5) of 3 heads and of 8 widths went
    assert a.qkv.out_features == 3 * a.attn_dim
    tokens = torch.randn(2, 5, pruned.inp.out_features)
    with torch.no_grad():
        assert a(tokens).shape == tokens.shape  # the module's own forward runs with its new attributes


# ----------------------------------------------------------------------------- spatial transforms, selection
class FFTNet(nn.Module):
    """FFTformer-style frequency gating: rfft2 / irfft2 over the image dims of every channel."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        f = torch.fft.rfft2(y, norm="backward")
        return self.b(y + torch.fft.irfft2(f * f.abs().sigmoid(), s=y.shape[-2:]))


class UnfoldNet(nn.Module):
    """A 3x3 neighbourhood mean through F.unfold (DITN/KBNet-style local mixing): (C, kh, kw) per channel."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        B, C, H, W = y.shape
        u = F.unfold(y, 3, padding=1).view(B, C, 9, H * W).mean(2).view(B, C, H, W)
        return self.b(y + F.fold(F.unfold(u, 2, stride=2), (H, W), 2, stride=2))


class GatherNet(nn.Module):
    """Token selection (ATD/KBNet-style): tokens sorted by a channel norm, gathered with every channel."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 8), nn.Linear(8, 3)

    def forward(self, x):
        y = self.a(x)
        idx = y.norm(dim=-1).argsort(dim=1)[:, :4]
        return self.b(y[:, :4] + torch.gather(y, 1, idx.unsqueeze(-1).expand(-1, -1, y.shape[-1])))


class PerSampleConv(nn.Module):
    """A per-sample depthwise conv (dynamic filters): samples folded into channels, groups computed in forward."""

    def __init__(self, c=8):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, 3, 3, padding=1)
        self.w = nn.Parameter(torch.randn(c, 1, 3, 3))

    def forward(self, x):
        y = self.a(x)
        b, c, h, w = y.shape
        z = F.conv2d(y.reshape(1, b * c, h, w), self.w.repeat(b, 1, 1, 1), groups=b * c, padding=1)
        return self.b(z.view(b, c, h, w))


@pytest.mark.parametrize("net_cls, x", [(FFTNet, torch.randn(1, 3, 8, 8)), (UnfoldNet, torch.randn(1, 3, 8, 8)),
                                        (GatherNet, torch.randn(2, 6, 3)), (PerSampleConv, torch.randn(2, 3, 6, 6))])
def test_spatial_and_selection_ops_keep_channels_prunable_and_exact(net_cls, x):
    net = net_cls().eval()
    graph = gp.analyze(net, x)
    assert not graph.unsupported, graph.unsupported
    (stream,) = graph.groups_of("a", "weight", 0)
    assert stream.prunable and stream.exact, stream.reason
    pruned, plan = prune_and_check(net, x)
    assert pruned.a.weight.shape[0] == 4


def test_sorting_over_channels_blocks_them():
    class SortChannels(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 3, 1)

        def forward(self, x):
            return self.b(torch.sort(self.a(x), dim=1).values)

    (stream,) = gp.analyze(SortChannels(), torch.randn(1, 3, 4, 4)).groups_of("a", "weight", 0)
    assert not stream.prunable and "reordered by value" in stream.reason


def test_repeat_interleave_keeps_each_channel_with_its_copies():
    class Interleave(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(16, 3, 1)

        def forward(self, x):
            return self.b(self.a(x).repeat_interleave(2, dim=1))

    net, x = Interleave().eval(), torch.randn(1, 3, 4, 4)
    [(group, m)] = [(g, m) for g, m in member(gp.analyze(net, x), "b", dim=1) if g.prunable]
    assert m.index_map.tolist()[:2] == [[0, 1], [2, 3]]  # channel c owns inputs 2c, 2c+1 of b
    pruned, _ = prune_and_check(net, x)
    assert pruned.b.in_channels == 8
