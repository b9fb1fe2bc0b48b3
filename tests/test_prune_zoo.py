"""Every zoo model at every scale: prune at 0.5, output shape kept, params drop, zero-then-prune holds."""

import pytest
import torch

import graphprune as gp
import sr_models
from graphprune.plan import n_removed, ratio_for
from graphprune.verify import equivalence_error

# Reduced depth keeps the suite fast; the coupling structure per block is the same as at full size.
REDUCED = {"edsr": dict(n_resblocks=2), "ledsr": dict(n_resblocks=2), "rirsr": dict(n_resgroups=2, n_resblocks=2),
           "rcan": dict(n_resgroups=2, n_resblocks=2), "srresnet": dict(n_resblocks=2)}
CHANNEL_MIXING_NORMS = ("swinir",)  # LayerNorm: pruning changes values, only shapes are comparable


def build(name):
    family = name.rsplit("_x", 1)[0].split("_")[0]
    return sr_models.create_model(name, **REDUCED.get(family, {})).eval()


@pytest.mark.parametrize("name", sr_models.list_models())
def test_prune_half(name):
    model = build(name)
    x = torch.rand(1, 3, 12, 12) * model.rgb_range
    pruned, plan = gp.prune(model, x, 0.5)
    assert plan.removed, "something must be prunable"
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape
        # another resolution still runs (no spatial size was baked into the rewrite)
        assert pruned(torch.rand(1, 3, 9, 14)).shape == model(torch.rand(1, 3, 9, 14)).shape
    n0 = sum(p.numel() for p in model.parameters())
    n1 = sum(p.numel() for p in pruned.parameters())
    assert n1 < 0.6 * n0, f"params {n0} -> {n1}"
    if not name.startswith(CHANNEL_MIXING_NORMS):
        assert equivalence_error(model, pruned, plan, x) <= 1e-4
    for g in plan.graph.prunable_groups:  # every prunable group lost its share
        assert plan.kept(g.id) == g.size - n_removed(ratio_for(g, 0.5, None), g.size)


def residual_group(graph):
    return [g for g in graph.groups if any(m.module == "head.0" and m.role == "out" for m in g.members)][0]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ledsr_residual_group_is_the_papers_hand_written_list(scale):
    model = sr_models.create_model(f"ledsr_f256r16_x{scale}").eval()
    graph = gp.analyze(model, torch.rand(1, 3, 24, 24), ignore=["*mean*", "*tail*"])
    g = residual_group(graph)
    assert g.prunable and g.size == 256
    out = {m.module for m in g.members if m.role == "out"}
    inp = {m.module for m in g.members if m.role == "in"}
    assert out == {"head.0", "body.16", *(f"body.{i}.body.2" for i in range(16))}
    assert inp == {"body.16", "tail.0", *(f"body.{i}.body.0" for i in range(16))}
    assert all(m.index_map.shape[1] == 1 for m in g.members)


# The SRP paper's SRPN-Lite row: LEDSR pruned to 45 channels (ratio 211/256).
SRPN_LITE = {2: (609, 139.9), 3: (615, 62.7), 4: (623, 35.8)}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ledsr_to_45_channels_matches_srpn_lite(scale):
    model = sr_models.create_model(f"ledsr_f256r16_x{scale}").eval()
    pruned, plan = gp.prune(model, torch.rand(1, 3, 24, 24), 0.82421875, ignore=["*mean*", "*tail*"])
    assert pruned.head[0].out_channels == 45 and pruned.body[0].body[0].out_channels == 45
    params_k, gmacs = SRPN_LITE[scale]
    # the paper truncates: 609,066 params print as 609K, 139.968 G Mult-Adds as 139.9G
    assert sum(p.numel() for p in pruned.parameters()) // 1000 == params_k
    assert gp.sr_mult_adds(pruned, scale) // 10**8 == round(gmacs * 10)
