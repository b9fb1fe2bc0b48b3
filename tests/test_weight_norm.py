"""Legacy ``torch.nn.utils.weight_norm`` (WDSR/AWSRN, the EDSR-era code ASSL grew from).

The weight is ``g · v / ‖v‖``, recomputed by a forward pre-hook from the parameters ``weight_g`` and
``weight_v``; ``weight`` itself is a tensor with autograd history, which ``copy.deepcopy`` refuses.
"""
import warnings

import pytest
import torch
from torch import nn

import graphprune as gp
from graphprune.verify import check

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch deprecates the hook in favour of parametrizations
    from torch.nn.utils import weight_norm


class WDSRBlockNet(nn.Module):
    """WDSR-A's wide-activation residual block between a head and a tail, every conv weight-normed."""

    def __init__(self, c=8, expand=4):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.head = weight_norm(nn.Conv2d(3, c, 3, padding=1))
            self.expand = weight_norm(nn.Conv2d(c, expand * c, 1))
            self.reduce = weight_norm(nn.Conv2d(expand * c, c, 3, padding=1))
            self.tail = weight_norm(nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, x):
        h = self.head(x)
        h = h + self.reduce(torch.relu(self.expand(h)))
        return self.tail(h)


@pytest.fixture
def net():
    torch.manual_seed(0)
    return WDSRBlockNet().eval()


def test_channels_are_read_off_g_and_v(net):
    graph = gp.analyze(net, torch.randn(1, 3, 8, 8))
    (stream,) = graph.groups_of("head", "weight_v", 0)
    assert stream.prunable and stream.exact
    keys = {(m.module, m.param, m.dim, m.role) for m in stream.members}
    assert {("head", "weight_g", 0, "out"), ("expand", "weight_v", 1, "in"), ("reduce", "weight_g", 0, "out")} <= keys


def test_pruned_model_is_exact_and_keeps_its_weight_norm(net):
    x = torch.randn(1, 3, 8, 8)
    plan = gp.plan(gp.analyze(net, x), 0.5)
    pruned = gp.apply(net, plan)  # the copy used to fail: the computed weight refuses deepcopy
    assert pruned.expand.weight_v.shape == (16, 4, 1, 1) and pruned.expand.weight_g.shape == (16, 1, 1, 1)
    assert "weight" not in dict(pruned.expand.named_parameters())  # still g and v, the hook recomputes
    verdict = check(net, pruned, plan, x)
    assert verdict.exact and verdict.error < 1e-5  # g re-derived: the kept filters are unchanged
    with torch.no_grad():
        assert pruned(torch.randn(2, 3, 12, 10)).shape == (2, 3, 12, 10)


def test_slicing_v_alone_would_not_be_exact(net):
    """What the surgery avoids: removing input columns of v changes ‖v‖ and so every kept weight."""
    v, g = net.expand.weight_v.detach(), net.expand.weight_g.detach()
    kept = v[:, :4]
    naive = g * kept / kept.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    dense = torch._weight_norm(v, g, 0)[:, :4]
    assert not torch.allclose(naive, dense, atol=1e-4)
