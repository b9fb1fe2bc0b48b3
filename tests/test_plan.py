"""The ratio rule, overrides, rounding and criteria."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import graphprune as gp
from graphprune.plan import n_removed


@pytest.mark.parametrize("ratio,size,removed", [
    (0.80859375, 256, 207),   # ASSL: 256 -> 49
    (0.82421875, 256, 211),   # SRPN-Lite: 256 -> 45
    (0.34, 96, 33),           # SRPN: 96 -> 63 (ceil of 32.64)
    (0.3, 10, 3),             # 0.3*10 is 3.0000000000000004 in floats: still 3
    (0.99, 4, 3),             # never all: N - 1 at most
    (0.0, 64, 0),
])
def test_official_removal_rule(ratio, size, removed):
    assert n_removed(ratio, size) == removed


def test_round_to_keeps_multiples():
    assert 64 - n_removed(0.5, 64, round_to=8) == 32
    assert (100 - n_removed(0.33, 100, round_to=8)) % 8 == 0
    assert 100 - n_removed(0.33, 100, round_to=8) == 64  # the nearest multiple of 67 (keeps the budget)


def test_bad_ratio_is_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        n_removed(1.0, 8)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 3, 3, padding=1))


def test_l1_removes_smallest_filters():
    m = net()
    with torch.no_grad():
        m[0].weight[[1, 5]] *= 1e-3
        m[0].bias[[1, 5]] = 0
    g = gp.analyze(m, torch.randn(1, 3, 4, 4))
    p = gp.plan(g, 0.25)
    gid = g.groups_of("0")[0].id
    assert p.removed[gid] == [1, 5]


def test_per_group_override_by_glob_and_id():
    m = net()
    g = gp.analyze(m, torch.randn(1, 3, 4, 4))
    first, second = g.groups_of("0")[0], g.groups_of("2")[0]
    p = gp.plan(g, 0.5, ratios={"2": 0.75})
    assert p.kept(first.id) == 4 and p.kept(second.id) == 4
    p = gp.plan(g, 0.5, ratios={first.id: 0.0})
    assert p.kept(first.id) == 8


def test_random_criterion_is_seeded_and_custom_callable_is_used():
    m = net()
    g = gp.analyze(m, torch.randn(1, 3, 4, 4))
    a = gp.plan(g, 0.5, criterion="random", seed=1).removed
    b = gp.plan(g, 0.5, criterion="random", seed=1).removed
    c = gp.plan(g, 0.5, criterion="random", seed=2).removed
    assert a == b and a != c
    p = gp.plan(g, 0.5, criterion=lambda model, group: -np.arange(group.size))
    assert all(idx == list(range(g.groups[k].size // 2, g.groups[k].size)) for k, idx in p.removed.items())


def test_unknown_criterion_names_choices():
    g = gp.analyze(net(), torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="l1"):
        gp.plan(g, 0.5, criterion="taylor")


def test_plan_round_trips_through_dict():
    g = gp.analyze(net(), torch.randn(1, 3, 4, 4))
    p = gp.plan(g, 0.5)
    q = gp.Plan.from_dict(g, p.to_dict())
    assert q.removed == p.removed
    bad = p.to_dict()
    bad["group_sizes"] = [1]
    with pytest.raises(ValueError, match="different channel graph"):
        gp.Plan.from_dict(g, bad)


def test_apply_rejects_plan_of_other_model():
    g = gp.analyze(net(), torch.randn(1, 3, 4, 4))
    other = nn.Sequential(nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="another model"):
        gp.apply(other, gp.plan(g, 0.5))
