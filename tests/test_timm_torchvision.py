"""torchvision and timm models: prune at 0.5, shape kept, params drop, zero-then-prune holds, save/load.

A small fixed set covering the coupling patterns that break other tools: channel shuffle
(shufflenet), BlurPool's functional depthwise conv, EvoNorm's size asserts, ConViT's cached tensors,
squeeze-excitation and depthwise convs (mobilenet, efficientnet, regnet), LayerNorm2d
and layer scale (convnext), window attention (swin), attention heads (timm ViT) and
nn.MultiheadAttention (torchvision ViT, deliberately blocked). The full benchmark is
``bench/prunability.py``.
"""
import math

import pytest
import torch

import graphprune as gp
from graphprune.plan import n_removed, ratio_for
from graphprune.verify import equivalence_error

torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

MIXING = ("LayerNorm", "GroupNorm", "RmsNorm", "SimpleNorm", "StdConv", "EvoNorm")  # pruning changes values, not only shapes


def _build(lib, name):
    torch.manual_seed(0)
    if lib == "tv":
        model = torchvision.models.get_model(name, weights=None)
        model.gp_spec = {"factory": f"torchvision.models:{name}", "kwargs": {}}
    else:
        model = timm.create_model(name, pretrained=False)
        model.gp_spec = {"timm": name, "kwargs": {}}
    return model.eval()


def _mixes(model):
    return any(any(k in c.__name__ for k in MIXING) for m in model.modules() for c in type(m).__mro__)


def check(lib, name, size, tmp_path):
    model = _build(lib, name)
    x = torch.randn(1, 3, size, size)
    pruned, plan = gp.prune(model, x, 0.5)
    graph = plan.graph
    assert graph.prunable_groups, "something must be prunable"
    for g in graph.prunable_groups:  # every prunable group lost its share
        assert plan.kept(g.id) == g.size - n_removed(ratio_for(g, 0.5, None), g.size)
    with torch.no_grad():
        y, yp = model(x), pruned(x)
    assert yp.shape == y.shape
    n0 = sum(p.numel() for p in model.parameters())
    n1 = sum(p.numel() for p in pruned.parameters())
    assert n1 < 0.9 * n0, f"params {n0} -> {n1}"
    if not _mixes(model):
        assert equivalence_error(model, pruned, plan, x) <= 1e-4
    path = gp.save(pruned, tmp_path / f"{name}.safetensors")
    loaded = gp.load(path).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), yp, atol=1e-5, rtol=1e-4)
    return graph


FAST = [("tv", "resnet18", 64), ("tv", "mobilenet_v3_small", 64), ("tv", "shufflenet_v2_x0_5", 64),
        ("tv", "regnet_x_400mf", 64), ("tv", "efficientnet_b0", 64),
        ("timm", "resnet10t", 64), ("timm", "mobilenetv3_small_050", 64), ("timm", "convnext_atto", 64),
        ("timm", "efficientnet_blur_b0", 64)]  # BlurPool: F.conv2d with a literal depthwise group count
SLOW = [("tv", "convnext_tiny", 64), ("tv", "swin_t", 224), ("tv", "vit_b_16", 224),
        ("timm", "vit_tiny_patch16_224", 224),
        ("timm", "ese_vovnet39b_evos", 64),  # EvoNorm: a channel-count assert, group reshape, expand to a shape
        ("timm", "convit_tiny", 224)]  # GPSA caches a tensor on the module in forward


@pytest.mark.parametrize("lib,name,size", FAST, ids=[f"{lib}-{n}" for lib, n, _ in FAST])
def test_prune_half(lib, name, size, tmp_path):
    check(lib, name, size, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("lib,name,size", SLOW, ids=[f"{lib}-{n}" for lib, n, _ in SLOW])
def test_prune_half_slow(lib, name, size, tmp_path):
    graph = check(lib, name, size, tmp_path)
    if name == "vit_b_16":  # nn.MultiheadAttention is kept whole; the 12 MLP widths are prunable
        assert len(graph.prunable_groups) == 12
        assert not any("no rule" in g.reason for g in graph.groups)


def test_channel_shuffle_groups_are_consistent():
    """ShuffleNet's chunk + channel shuffle: prunable groups exist and the rewrite keeps every shape."""
    model = _build("tv", "shufflenet_v2_x0_5")
    graph = gp.analyze(model, torch.randn(1, 3, 64, 64))
    assert len(graph.prunable_groups) >= 15
    assert not graph.unsupported


def test_timm_leaves_have_rules():
    """timm's no-trace layers that carry channels (BatchNormAct2d, ...) are leaves with a rule, not blocked."""
    model = _build("timm", "mobilenetv3_small_050")
    graph = gp.analyze(model, torch.randn(1, 3, 64, 64))
    assert not graph.unsupported
    assert not [k for k, v in graph.traced.leaves.items() if v.startswith("auto")]
    assert math.isclose(sum(g.size for g in graph.prunable_groups) / sum(g.size for g in graph.groups), 1, abs_tol=0.5)
