"""The surgery's choice of result and the attributes it updates, on small stand-ins for real SR code.

The pruned model is the user's class when its forward, traced again, computes the verified graph; the
ints that forward reads back as literals (``self.num_heads``, ``self.nh``) must follow the plan for that,
and an int that merely has the same value (a window of 24 beside a head dim of 24) must not.
"""
import pytest
import torch
from torch import nn

import graphprune as gp
from graphprune.verify import check, equivalence_error


class Windowed(nn.Module):
    """HAT's overlapping attention, reduced: a head dim computed in forward equals ``self.win`` (both 4)."""

    def __init__(self, dim=8, heads=2, win=4):
        super().__init__()
        self.heads, self.win = heads, win
        self.inp, self.qkv, self.proj, self.out = nn.Linear(3, dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), \
            nn.Linear(dim, 3)

    def forward(self, x):  # x: (B, N, 3) with N a multiple of self.win
        t = self.inp(x)
        B, N, C = t.shape
        d = C // self.heads
        q, k, v = self.qkv(t).reshape(B, N, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        windows = (q @ k.transpose(-2, -1)).softmax(-1) @ v          # (B, heads, N, d)
        w = windows.reshape(B, self.heads, N // self.win, self.win, d)  # a spatial use of self.win
        return self.out(t + self.proj(w.reshape(B, self.heads, N, d).transpose(1, 2).reshape(B, N, C)))


class QkvCountEqualsHeads(nn.Module):
    """FDAT's ``view(B, N, 3, self.nh, C // self.nh)`` with ``nh == 3``: the literal 3 of q/k/v stays, nh's goes."""

    def __init__(self, dim=12, nh=3):
        super().__init__()
        self.nh = nh
        self.inp, self.qkv, self.out = nn.Linear(3, dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, 3)

    def forward(self, x):
        t = self.inp(x)
        B, N, C = t.shape
        q, k, v = self.qkv(t).view(B, N, 3, self.nh, C // self.nh).permute(2, 0, 3, 1, 4).unbind(0)
        y = ((q @ k.transpose(-2, -1)).softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.out(t + y)


@pytest.mark.parametrize("net_cls, x, attribute", [
    (Windowed, torch.randn(1, 8, 3), "win"),
    (QkvCountEqualsHeads, torch.randn(1, 5, 3), "nh"),
])
def test_the_users_class_with_the_attributes_that_follow(net_cls, x, attribute):
    torch.manual_seed(0)
    net = net_cls().eval()
    graph = gp.analyze(net, x)
    plan = gp.plan(graph, 0.5)
    pruned = gp.apply(net, plan)
    assert type(pruned) is net_cls and not getattr(pruned, "gp_graph_module", False)
    if attribute == "win":
        assert pruned.win == net.win  # same value as the head dim, but a window: left alone
    else:
        assert pruned.nh < net.nh     # the heads went, the literal 3 of q/k/v stays
    bigger = torch.randn(2, 2 * x.shape[1], 3)
    with torch.no_grad():
        assert pruned(bigger).shape == net(bigger).shape


class TupleOut(nn.Module):
    """A model returning (image, scores), as MMRealSR returns its degradation estimates."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        y = self.b(torch.relu(self.a(x)))
        return y, y.mean((2, 3))


def test_equivalence_over_every_tensor_a_model_returns():
    net, x = TupleOut().eval(), torch.randn(1, 3, 6, 6)
    plan = gp.plan(gp.analyze(net, x), 0.5)
    pruned = gp.apply(net, plan)
    assert equivalence_error(net, pruned, plan, x) < 1e-5
    assert check(net, pruned, plan, x).ok


class HalfAware(nn.Module):
    """RealCUGAN's SE block: ``if "Half" in x.type()`` — a dtype question, not data."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        if "Half" in y.type():
            y = y.float()
        return self.b(y * torch.sigmoid(y.mean((2, 3), keepdim=True)))


def test_a_dtype_question_is_answered_without_a_leaf():
    net, x = HalfAware().eval(), torch.randn(1, 3, 6, 6)
    graph = gp.analyze(net, x)
    assert not graph.traced.leaves and not graph.guards
    pruned = gp.apply(net, gp.plan(graph, 0.5))
    assert type(pruned) is HalfAware and pruned.a.out_channels == 4


def test_analysis_leaves_torch_device_contexts_working():
    """The tracer patches torch.zeros & co. while tracing; torch caches its factory list on first use."""
    gp.analyze(nn.Sequential(nn.Conv2d(3, 4, 1)), torch.zeros(1, 3, 4, 4))
    with torch.device("meta"):
        made = nn.Conv2d(3, 4, 1)
    assert made.weight.is_meta and torch.zeros(1).device.type == "cpu"
