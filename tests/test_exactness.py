"""Exactness per group: an op that reads a statistic over channels is declared, and only those.

Each net puts one op on a residual stream of 8 channels between two convs. Exact ops must give the
cut reference (:func:`graphprune.verify.reference_output`) to 1e-5; inexact ones must be declared
on the stream's group (``Group.exact`` False, the op named) and must really differ from it.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune as gp
from graphprune.verify import check, equivalence_error


class Stream(nn.Module):
    """head → op(t) + t → tail: the op sits on the residual stream that head produces."""

    def __init__(self, op, c=8):
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.inner = nn.Conv2d(c, c, 3, padding=1)  # its filters: a group of their own, off the stream
        self.mid = nn.Conv2d(c, c, 3, padding=1)
        self.tail = nn.Conv2d(c, 3, 3, padding=1)
        self.op = op

    def forward(self, x):
        t = self.head(x)
        t = self.mid(torch.relu(self.inner(t))) + t
        return self.tail(self.op(t) + t)


class ChannelsLastLayerNorm(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, t):
        return self.norm(t.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Wrap(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, t):
        return self.fn(t)


INEXACT = {
    "softmax over channels": (lambda t: F.softmax(t, dim=1) * t, "softmax"),
    "logsumexp over channels": (lambda t: t - torch.logsumexp(t, 1, keepdim=True), "logsumexp"),
    "std over channels": (lambda t: t * torch.sigmoid(t.std(1, keepdim=True)), "std"),
    "mean over channels": (lambda t: t * t.mean(1, keepdim=True), "mean"),
    "max over channels": (lambda t: t - t.amax(1, keepdim=True), "amax"),
    "layer norm over channels": (nn.GroupNorm(1, 8), "GroupNorm"),
    "group norm": (nn.GroupNorm(2, 8), "GroupNorm"),
    "channels-last layer norm": (None, "LayerNorm"),
    "softmax module": (nn.Softmax(dim=1), "Softmax"),
}

EXACT = {
    "sum over channels": lambda t: t * t.sum(1, keepdim=True),
    "L2 normalize over channels": lambda t: F.normalize(t, dim=1),
    "L2 norm over channels": lambda t: t * t.norm(dim=1, keepdim=True),
    "cumsum over channels": lambda t: torch.cumsum(t, 1),
    "sigmoid gate": lambda t: t * torch.sigmoid(t),
    "spatial mean (channel attention)": lambda t: t * torch.sigmoid(t.mean((2, 3), keepdim=True)),
    "spatial softmax": lambda t: F.softmax(t.flatten(2), dim=-1).view_as(t) * t,
    "instance norm": nn.InstanceNorm2d(8, affine=True),
    "batch norm": nn.BatchNorm2d(8),
}


def _net(op):
    torch.manual_seed(0)
    op = ChannelsLastLayerNorm() if op is None else op
    net = Stream(op if isinstance(op, nn.Module) else Wrap(op)).eval()
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)) and m.weight is not None:
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return net


def _stream_groups(graph):
    """The residual stream's groups (two for a group norm: groups x per-group width)."""
    return graph.groups_of("head", "weight", 0)


@pytest.mark.parametrize("name", sorted(INEXACT))
def test_inexact_op_is_declared_and_really_differs(name):
    op, op_name = INEXACT[name]
    net, x = _net(op), torch.randn(1, 3, 8, 8)
    graph = gp.analyze(net, x)
    stream = _stream_groups(graph)
    for group in stream:
        assert group.prunable and not group.exact
        assert op_name in group.inexact_reason and "op" in group.inexact_reason  # names the op and where
        assert f"inexact: {group.inexact_reason}" in graph.summary()
    plan = gp.plan(graph, 0.0, ratios={stream[-1].id: 0.5})
    pruned = gp.apply(net, plan)
    verdict = check(net, pruned, plan, x)
    assert not verdict.exact and verdict.ok and stream[-1].id in verdict.inexact
    assert verdict.error > 1e-3  # a declaration that matters: the values do change


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_op_keeps_the_cut_reference(name):
    net, x = _net(EXACT[name]), torch.randn(1, 3, 8, 8)
    graph = gp.analyze(net, x)
    (group,) = _stream_groups(graph)
    assert group.prunable and group.exact, group.inexact_reason
    plan = gp.plan(graph, 0.5)
    pruned = gp.apply(net, plan)
    verdict = check(net, pruned, plan, x)
    assert verdict.exact and verdict.ok, verdict
    assert verdict.error < 1e-5


def test_exact_only_leaves_inexact_groups_whole():
    net, x = _net(INEXACT["softmax over channels"][0]), torch.randn(1, 3, 8, 8)
    graph = gp.analyze(net, x)
    (stream,) = _stream_groups(graph)
    (inner,) = graph.groups_of("inner", "weight", 0)
    assert inner.exact and not stream.exact
    plan = gp.plan(graph, 0.5, exact_only=True)
    assert list(plan.removed) == [inner.id]
    pruned = gp.apply(net, plan)
    assert equivalence_error(net, pruned, plan, x) < 1e-5


def test_inexact_mark_reaches_the_factors_of_a_product_space():
    """A mean over the flattened (heads x head dim) width marks both factor groups."""

    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(8, 24)
            self.proj = nn.Linear(8, 8)

        def forward(self, x):  # (B, N, 8)
            B, N, C = x.shape
            q, k, v = self.qkv(x).reshape(B, N, 3, 2, 4).permute(2, 0, 3, 1, 4)
            attn = (q @ k.transpose(-2, -1)).softmax(-1)
            y = (attn @ v).transpose(1, 2).reshape(B, N, C)
            return x + self.proj(y - y.mean(-1, keepdim=True))

    graph = gp.analyze(Heads().eval(), torch.randn(1, 5, 8), size_ties=False)  # C of the input: untied
    factors = [g for g in graph.prunable_groups if g.factors > 1]
    v_groups = [g for g in factors if any(m.module == "proj" and m.role == "in" for m in g.members)]
    assert v_groups and all(not g.exact and "mean" in g.inexact_reason for g in v_groups)
