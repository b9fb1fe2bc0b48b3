"""Property test: random residual / concat / split / depthwise / grouped / shuffle networks.

For any such network and ratio, the pruned model keeps the output shape and equals the dense model
whose removed producer channels were zeroed (the zero-then-prune equivalence).
"""
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import graphprune as gp
from graphprune.verify import equivalence_error

BLOCKS = ["residual", "concat", "split", "depthwise", "grouped", "shuffle", "gate", "bn_prelu", "pixel"]


class Block(nn.Module):
    def __init__(self, kind: str, c: int):
        super().__init__()
        self.kind, self.c = kind, c
        if kind == "residual":
            self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        elif kind == "concat":
            self.a, self.b = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c, c - c // 2, 3, padding=1)
            self.fuse = nn.Conv2d(2 * c, c, 1)
        elif kind == "split":
            self.a, self.b = nn.Conv2d(c // 2, c // 2, 3, padding=1), nn.Conv2d(c - c // 2, c - c // 2, 1)
        elif kind == "depthwise":
            self.a, self.dw, self.b = nn.Conv2d(c, 2 * c, 1), nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c), nn.Conv2d(2 * c, c, 1)
        elif kind == "grouped":
            self.a, self.b = nn.Conv2d(c, 4 * c, 1), nn.Conv2d(4 * c, c, 3, padding=1, groups=2)
        elif kind == "shuffle":
            self.a, self.b = nn.Conv2d(c, 4, 1), nn.Conv2d(c, 4, 1)
            self.out = nn.Conv2d(8, c, 1)
        elif kind == "gate":
            self.a, self.att = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 1)
        elif kind == "bn_prelu":
            self.a, self.bn, self.act = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.PReLU(c)
        elif kind == "pixel":
            self.a, self.ps, self.b = nn.Conv2d(c, 4 * 3, 3, padding=1), nn.PixelShuffle(2), nn.Conv2d(3, c, 2, stride=2)

    def forward(self, x):
        k = self.kind
        if k == "residual":
            return x + self.b(F.relu(self.a(x)))
        if k == "concat":
            return x + self.fuse(torch.cat([x, F.relu(torch.cat([self.a(x), self.b(x)], 1))], 1))
        if k == "split":
            p, q = torch.split(x, [self.c // 2, self.c - self.c // 2], dim=1)
            return torch.cat([self.a(p), F.relu(self.b(q))], 1)
        if k == "depthwise":
            return x + self.b(F.relu(self.dw(self.a(x))))
        if k == "grouped":
            return self.b(F.relu(self.a(x)))
        if k == "shuffle":
            y = torch.cat([self.a(x), self.b(x)], 1)
            n, c, h, w = y.shape
            y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
            return x + self.out(y)
        if k == "gate":
            y = self.a(x)
            return x + y * torch.sigmoid(self.att(y))
        if k == "bn_prelu":
            return self.act(self.bn(self.a(x)))
        return self.b(self.ps(self.a(x)))


class RandomNet(nn.Module):
    def __init__(self, kinds, c):
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.blocks = nn.Sequential(*[Block(k, c) for k in kinds])
        self.tail = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        return self.tail(self.blocks(self.head(x)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=5),
       c=st.sampled_from([4, 6, 8]), ratio=st.sampled_from([0.25, 0.5, 0.75]),
       criterion=st.sampled_from(["l1", "l2", "random"]), seed=st.integers(0, 2**16))
def test_random_networks_prune_exactly(kinds, c, ratio, criterion, seed):
    torch.manual_seed(seed)
    model = RandomNet(kinds, c).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    pruned, plan = gp.prune(model, x, ratio, criterion=criterion, seed=seed)
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape
    assert equivalence_error(model, pruned, plan, x) < 1e-4
    assert sum(p.numel() for p in pruned.parameters()) <= sum(p.numel() for p in model.parameters())
