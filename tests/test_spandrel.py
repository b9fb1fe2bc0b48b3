"""spandrel's architectures as users get them (``bench/spandrel_zoo.py``): catalog, spec rebuild, pruning.

A representative handful runs in the default suite (window attention, channel attention, RRDB,
plain convs, a restoration U-Net, large-kernel convs); the rest of the catalog is ``slow``.
Expected values come from the dense model (output shapes, outputs), never from a recorded run.
"""
import json
import os
import sys

import pytest
import torch

pytest.importorskip("spandrel")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import spandrel_zoo as zoo  # noqa: E402

import graphprune as gp  # noqa: E402
from graphprune.io import build_model  # noqa: E402
from graphprune.verify import check  # noqa: E402

DEFAULT = {"SwinIR", "HAT", "DAT", "OmniSR", "SPAN", "ESRGAN", "Compact", "NAFNet", "PLKSR"}


def _names(names):
    return [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _out(model, x):
    with torch.no_grad():
        y = model(x.clone())  # some forwards scale their input in place (RCAN)
    return y[0] if isinstance(y, (tuple, list)) else y


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_catalog_covers_the_main_registry():
    import spandrel

    ids = {a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures()}
    covered = {zoo.entry(n).arch for n in zoo.names()}
    assert covered | set(zoo.SKIPPED) == ids and not covered & set(zoo.SKIPPED)


@pytest.mark.parametrize("name", _names(zoo.names()))
def test_catalog_entry(name):
    """Both inputs valid and different, the dense model runs at both with scale x size outputs, the
    build is deterministic, and ``gp_spec`` alone rebuilds the same architecture."""
    model, x, x2, info = zoo.build(name)
    built = {k: v.clone() for k, v in model.state_dict().items()}  # before a forward: SPAN's refreshes its eval convs
    again, xa, x2a, _ = zoo.build(name)
    assert torch.equal(x, xa) and torch.equal(x2, x2a)
    assert built.keys() == again.state_dict().keys()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in built.items())
    req, s = info["size_requirements"], info["scale"]
    assert x.shape != x2.shape
    for t in (x, x2):
        h, w = t.shape[-2:]
        assert min(h, w) >= req["minimum"] and h % req["multiple_of"] == 0 == w % req["multiple_of"]
        assert h == w or not req["square"]
        assert tuple(_out(model, t).shape) == (1, info["out_channels"], h * s, w * s)
    dense = build_model(json.loads(json.dumps(model.gp_spec)))
    assert type(dense) is type(model) and _shapes(dense) == _shapes(model)
    assert dense.hyperparameters == model.hyperparameters


@pytest.mark.parametrize("name", _names(zoo.names()))
def test_prune_second_size_equivalence_round_trip(name, tmp_path):
    """Half of every prunable group goes; the pruned model runs at the example size and at another one
    (the user's class pads and rebuilds its masks there, a GraphModule must not need to), the exact groups
    give the cut reference, the inexact ones say why, and save/load reproduces the pruned output."""
    model, x, x2, info = zoo.build(name)
    graph = gp.analyze(model, x.clone())
    pruned = gp.apply(model, gp.plan(graph, 0.5))
    assert sum(p.numel() for p in pruned.parameters()) < info["params"]
    for t in (x, x2):
        assert _out(pruned, t).shape == _out(model, t).shape
    assert all(g.inexact_reason for g in graph.prunable_groups if not g.exact)
    exact = gp.plan(graph, 0.5, exact_only=True)
    assert any(exact.removed.values())
    verdict = check(model, gp.apply(model, exact), exact, x.clone())
    assert verdict.exact and verdict.error <= 1e-4, verdict
    loaded = gp.load(gp.save(pruned, tmp_path / f"{name}.safetensors")).eval()
    assert torch.equal(_out(loaded, x2), _out(pruned, x2))
