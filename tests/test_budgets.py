"""Budgets: plan(target=...) meets Mult-Adds and parameter targets, uniform reproduces the papers' widths,
global spends a budget by importance per cost, sensitivity is measured and cached, the regularizers
select the allocated counts, and recipes validate targets.

Every count is checked on the physically pruned model (``graphprune.apply``) with the library's
independent counters (``sr_mult_adds``, ``count``, ``parameters()``), not with the cost model itself.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import graphprune as gp
import sr_models
from graphprune.allocation import Budget, global_allocation, parse_amount, score_loss
from graphprune.budget import CostModel
from graphprune.plan import removed_counts
from graphprune.sensitivity import Sensitivity


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def ledsr():
    """The paper's LEDSR F256R16 x4 with the papers' skipped layers (head/tail)."""
    torch.manual_seed(0)
    m = sr_models.create_model("ledsr_f256r16_x4").eval()
    return m, gp.analyze(m, torch.zeros(1, 3, 48, 48), ignore=["*mean*", "*tail*"])


@pytest.mark.parametrize("target", [{"params": "623K"}, {"mult_adds": "35.8G"}, {"params": 623_000}])
def test_uniform_target_reproduces_srpn_lite(ledsr, target):
    """SRPN-Lite is LEDSR with 45 of 256 channels in every group: 623 K params, 35.8 G Mult-Adds."""
    m, g = ledsr
    plan = gp.plan(g, target=target)
    assert {plan.kept(grp.id) for grp in g.prunable_groups} == {45}
    pruned = gp.apply(m, plan)
    assert short(_params(pruned)) == "623K" and round(gp.sr_mult_adds(pruned, 4) / 1e9, 1) == 35.8


def short(n: int) -> str:
    return f"{n // 1000}K"


def test_target_and_ratio_are_exclusive(ledsr):
    _, g = ledsr
    with pytest.raises(ValueError, match="not both"):
        gp.plan(g, 0.5, target={"params": "1M"})
    with pytest.raises(ValueError, match="ratio"):
        gp.plan(g)


def test_infeasible_target_names_the_floor_in_one_line(ledsr):
    _, g = ledsr
    for allocation in ("uniform", "global"):
        with pytest.raises(ValueError) as e:
            gp.plan(g, target={"params": 500}, allocation=allocation)
        msg = str(e.value)
        assert "\n" not in msg and "below what pruning can reach" in msg
        floor = float(msg.split("reach: ")[1].split(" ")[0])
        kept_min = {grp.id: 1 for grp in g.prunable_groups}  # every group at one channel
        assert math.isclose(floor, CostModel(g, "params")(kept_min), rel_tol=1e-3)


# ---------------------------------------------------------------- targets met on real nets
ZOO = ["ledsr_f256r16_x4", "edsr_baseline_x4", "carn_m_x4", "imdn_x4", "pan_x4", "srresnet_x4", "swinir_light_x4"]
SLOW_ZOO = ["rcan_x4", "rirsr_g10r20f96_x4", "carn_x4", "edsr_x4"]


def _zoo(name: str):
    torch.manual_seed(0)
    m = sr_models.create_model(name).eval()
    side = 64 if "swinir" in name else 48
    return m, gp.analyze(m, torch.zeros(1, 3, side, side))


MEASURED = {"params": _params, "mult_adds": lambda m: gp.sr_mult_adds(m, 4)}


def _check_within(m, g, measure: str, allocation: str, tol: float):
    target = 0.5 * MEASURED[measure](m)
    got = MEASURED[measure](gp.apply(m, gp.plan(g, target={measure: target}, allocation=allocation)))
    assert abs(got - target) / target < tol, f"{measure} {got:,} for a target of {target:,.0f}"


@pytest.mark.parametrize("name", ZOO + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW_ZOO])
def test_global_targets_met_within_one_percent_on_the_zoo(name):
    m, g = _zoo(name)
    for measure in MEASURED:
        _check_within(m, g, measure, "global", 0.01)


@pytest.mark.parametrize("name", ["ledsr_f256r16_x4", "edsr_baseline_x4", "imdn_x4", "swinir_light_x4"])
def test_uniform_targets_met_within_one_percent(name):
    """Where one ratio step is finer than 1 % (every group moves at once; carn_m's steps are 4 %)."""
    m, g = _zoo(name)
    for measure in MEASURED:
        _check_within(m, g, measure, "uniform", 0.01)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3_small_100", "convnext_atto",
                                  pytest.param("vit_tiny_patch16_224", marks=pytest.mark.slow)])
def test_targets_met_on_timm_models(name):
    """Classifiers count parameters and fvcore flops at the example input (no 720p Mult-Adds)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    m = timm.create_model(name).eval()
    x = torch.zeros(1, 3, 224, 224)
    g = gp.analyze(m, x)
    for measure, f in (("params", _params), ("flops", lambda net: gp.count(net, x)["flops"])):
        target = 0.5 * f(m)
        for allocation in ("uniform", "global"):
            got = f(gp.apply(m, gp.plan(g, target={measure: target}, allocation=allocation)))
            assert abs(got - target) / target < 0.01, (measure, allocation, got, target)


def test_cost_model_change_equals_the_difference_of_costs():
    m, g = _zoo("carn_m_x4")
    cost = CostModel(g, "mult_adds")
    kept = {grp.id: grp.size // 2 for grp in g.prunable_groups[::2]}
    for grp in g.prunable_groups[:6]:
        assert math.isclose(cost.change(kept, grp.id, 3), cost({**kept, grp.id: 3}) - cost(kept), rel_tol=1e-9)


# ---------------------------------------------------------------- the global allocation
def _two_blocks():
    """Two 16-wide inner groups of equal cost; the first block's filters are half dead (zero)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
    with torch.no_grad():
        m[0].weight[8:] = 0
        m[0].bias[8:] = 0
    return m, gp.analyze(m, torch.zeros(1, 3, 16, 16))


def test_global_removes_the_unimportant_channels_first():
    m, g = _two_blocks()
    first = next(grp for grp in g.prunable_groups if "0" in grp.modules("out"))
    third = next(grp for grp in g.prunable_groups if "4" in grp.modules("out"))
    cost = CostModel(g, "params")
    target = cost({first.id: 8})  # exactly the dead half of the first group
    counts = removed_counts(g, target={"params": target}, allocation="global")
    assert counts.get(first.id) == 8 and not counts.get(third.id)
    assert gp.plan(g, target={"params": target}, allocation="global").removed[first.id] == list(range(8, 16))
    uniform = removed_counts(g, target={"params": target})
    assert uniform.get(third.id), "the uniform rule spreads the same budget over both"


def test_global_keeps_min_channels_and_round_to():
    m, g = _two_blocks()
    counts = removed_counts(g, target={"params": 0.3 * _params(m)}, allocation="global", round_to=4, min_channels=4)
    kept = {grp.id: grp.size - counts.get(grp.id, 0) for grp in g.prunable_groups}
    assert all(k >= 4 and (k % 4 == 0 or k == grp.size) for grp in g.prunable_groups for k in [kept[grp.id]])


def test_global_on_uninformative_scores_is_uniform():
    """Equal scores everywhere: log(S/S_k) prices every group alike, so widths follow the cost alone."""
    groups = [type("G", (), {"id": i, "size": 16})() for i in range(3)]
    cost = lambda kept: sum(kept.get(i, 16) for i in range(3))  # noqa: E731 - each channel costs 1
    budget = Budget(None, "params", 24, cost)
    losses = {i: score_loss(np.ones(16)) for i in range(3)}
    assert global_allocation(groups, budget, losses) == {0: 8, 1: 8, 2: 8}


def test_amounts_take_units():
    assert parse_amount("35.8G") == 35.8e9 and parse_amount("623K") == 623e3 and parse_amount("1.5M") == 1.5e6
    with pytest.raises(ValueError, match="unit K, M, G"):
        parse_amount("lots")


# ---------------------------------------------------------------- sensitivity
def test_sensitivity_is_measured_cached_and_spent(tmp_path):
    m, g = _two_blocks()
    x = torch.rand(1, 3, 16, 16)
    ref = m(x).detach()
    metric = lambda net: -float((net(x) - ref).abs().mean().detach())  # noqa: E731 - higher is better
    s = gp.sensitivity(m, metric=metric, graph=g, ratios=(0.25, 0.5, 0.75), cache=tmp_path / "s.json",
                                   progress=False)
    first = next(grp.id for grp in g.prunable_groups if "0" in grp.modules("out"))
    assert s.drops[first][1] < 1e-3, "half of the first group is dead: pruning it costs nothing"
    assert (tmp_path / "s.json").is_file()
    calls = []
    again = gp.sensitivity(m, metric=lambda net: calls.append(1) or metric(net), graph=g,
                                       ratios=(0.25, 0.5, 0.75), cache=tmp_path / "s.json", progress=False)
    assert again.drops == s.drops and not calls, "same weights, ratios and metric: read from the cache"
    with torch.no_grad():
        m[2].weight.mul_(2)
    changed = gp.sensitivity(m, metric=metric, graph=g, ratios=(0.25, 0.5, 0.75),
                                         cache=tmp_path / "s.json", progress=False)
    assert changed.key != s.key, "other weights: measured again"
    loss = s.loss(first)
    assert loss(16) == 0 and loss(16) <= loss(8) <= loss(2) <= loss(1)
    counts = removed_counts(g, target={"params": CostModel(g, "params")({first: 8})}, allocation="sensitivity",
                            sensitivity=s)
    assert counts.get(first) == 8 and len(counts) == 1
    s.plot(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_sensitivity_allocation_needs_the_measurement(ledsr):
    _, g = ledsr
    with pytest.raises(ValueError, match="needs the measurement"):
        gp.plan(g, target={"params": "1M"}, allocation="sensitivity")


# ---------------------------------------------------------------- regularizers and recipes
@pytest.mark.parametrize("method", ["assl", "srp"])
def test_regularizers_select_the_allocated_counts(method):
    from graphprune.regularizers import REGULARIZERS

    m, g = _two_blocks()
    counts = removed_counts(g, target={"params": 0.5 * _params(m)}, allocation="global")
    reg = REGULARIZERS[method](g, counts=counts)
    assert {gid: n for gid, n in reg.n_remove.items() if n} == counts
    with pytest.raises(ValueError, match="not both"):
        REGULARIZERS[method](g, 0.5, counts=counts)


@pytest.mark.parametrize("sets,problem", [
    (["prune.target={params: 623K}"], "prune.ratio: 0.5 and prune.target both say how much to remove"),
    (["prune.ratio=0", "prune.target={params: 623K, mult_adds: 35G}"], "expected exactly one of mult_adds"),
    (["prune.ratio=0", "prune.target={params: lots}"], "is not an amount"),
    (["prune.allocation=global"], "prune.allocation: global spreads a budget; give prune.target"),
    (["prune.ratio=0", "prune.target={latency_ms: 20}", "prune.allocation=global"], "latency is measured"),
    (["prune.ratio=0", "prune.target={params: 623K}", "prune.allocation=sensitivity", "data.val=[]", "eval.sets=[]"],
     "sensitivity measures PSNR on data.val"),
])
def test_recipe_targets_are_validated(sets, problem):
    from graphprune.compress.recipe import RecipeError, load_recipe

    with pytest.raises(RecipeError) as e:
        load_recipe("recipes/demo_x4_assl.yaml", sets, check_files=False)
    assert any(problem in f"{e.value.path}: {p}" or problem in str(p) for p in e.value.problems), e.value.problems


def test_recipe_target_reaches_plan():
    from graphprune.compress.recipe import load_recipe

    r = load_recipe("recipes/ledsr_x4_assl.yaml", ["prune.ratio=0", "prune.target={mult_adds: 35.8G}",
                                                   "prune.allocation=global"], check_files=False)
    args = r.prune.plan_arguments()
    assert args["target"] == {"mult_adds": "35.8G"} and args["allocation"] == "global" and "ratio" not in args


def test_dry_run_prints_widths_and_the_distance_from_the_target(capsys):
    from graphprune.compress import cli

    assert cli.main(["--recipe", "recipes/demo_x4_assl.yaml", "--dry-run", "--set", "prune.ratio=0",
                     "--set", "prune.target={params: 50K}", "--set", "prune.allocation=global"]) == 0
    out = capsys.readouterr().out
    assert "plan (global allocation of params 50K)" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("budget: params"))
    pct = float(line.split("(")[1].split(" %")[0])
    assert abs(pct) < 1.0 and "reached for a target of 50K" in line
    assert any(ln.strip().startswith("group") and "->" in ln for ln in out.splitlines())


def test_paper_recipe_budget_and_ratio_forms_give_one_plan():
    """ledsr_x4_srp.yaml says target {params: 623K}; the official ratio 0.82421875 is the same plan."""
    from graphprune.compress.recipe import load_recipe

    budget = load_recipe("recipes/ledsr_x4_srp.yaml", [], check_files=False).prune
    ratio = load_recipe("recipes/ledsr_x4_srp.yaml", ["prune.target=null", "prune.ratio=0.82421875"],
                        check_files=False).prune
    assert budget.target is not None and ratio.target is None
    torch.manual_seed(0)
    m = sr_models.create_model("ledsr_f256r16_x4")
    g = gp.analyze(m, torch.zeros(budget.example_input), ignore=budget.ignore)
    assert removed_counts(g, **budget.plan_arguments()) == removed_counts(g, **ratio.plan_arguments())
    assert set(removed_counts(g, **budget.plan_arguments()).values()) == {211}


@pytest.mark.parametrize("method,allocation", [("assl", "sensitivity"), ("l1", "global")])
def test_pipeline_spends_a_budget(tmp_path, method, allocation):
    """A recipe with a target runs end to end: the allocation's widths are the pruned model's (within 10 % of
    the target: three groups of 8 channels are coarse steps);
    the sensitivity is measured after pretraining into the run folder (JSON and plot)."""
    import json

    from graphprune.compress.pipeline import Pipeline
    from graphprune.compress.recipe import load_recipe

    from test_pipeline import TINY

    extra = ["prune.assl.ssa_iters=2"] if method == "assl" else ["prune.method=l1", "stages.regularize=null"]
    r = load_recipe("recipes/demo_x4_assl.yaml", TINY + extra + [
        "prune.ratio=0", "prune.target={params: 3.5K}", f"prune.allocation={allocation}",
        "prune.sensitivity.max_images=1", "prune.sensitivity.ratios=[0.5]", "prune.schedule.delta=25"])
    Pipeline(r, tmp_path).run()
    report = json.loads((tmp_path / "report.json").read_text())
    assert abs(report["pruned"]["params"] - 3500) / 3500 < 0.1
    dense = gp.load(tmp_path / "dense.safetensors")  # the model the allocation saw (after pretraining)
    g = gp.analyze(dense, torch.zeros(r.prune.example_input), ignore=r.prune.ignore)
    sens = Sensitivity.load(tmp_path / "sensitivity.json") if allocation == "sensitivity" else None
    counts = removed_counts(g, **r.prune.plan_arguments(), sensitivity=sens)
    assert {grp["id"]: grp["size"] - grp["kept"] for grp in report["groups"] if grp["kept"] < grp["size"]} == counts
    assert "target params 3.5K (%s allocation)" % allocation in (tmp_path / "report.md").read_text()
    assert (tmp_path / "sensitivity.json").is_file() == (allocation == "sensitivity")
    assert (tmp_path / "sensitivity.png").is_file() == (allocation == "sensitivity")


def test_sensitivity_command_measures_plots_and_reuses(tmp_path, capsys):
    from graphprune.cli import main

    args = ["sensitivity", "--model", "ledsr_f256r16_x4", "--set", "n_feats=8", "--set", "n_resblocks=1", "--demo",
            "--max-images", "1", "--ratios", "0.5", "--ignore", "*tail*", "--ignore", "*mean*", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "drop (dB) with one group pruned" in out and (tmp_path / "sensitivity.png").is_file()
    first = Sensitivity.load(tmp_path / "sensitivity.json")
    assert sorted(first.drops) == [2, 3] and first.ratios == [0.5]
    assert main(args) == 0 and Sensitivity.load(tmp_path / "sensitivity.json").key == first.key
    with pytest.raises(SystemExit) as e:
        main([*args, "--ratios", "2"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "fractions in (0, 1)" in err
