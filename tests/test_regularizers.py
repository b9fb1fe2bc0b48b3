"""ASSL and SRP: penalty, schedule, selection, alignment loss, weight norm, state round trip."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

import graphprune as gp
import sr_models
from graphprune.regularizers import ASSL, SRP, PenaltySchedule, ssa_loss
from graphprune.reparam import add_weight_norm, filter_scale, merge_weight_norm
from graphprune.train import Trainer


class Pairs(torch.utils.data.Dataset):
    """Random LR/HR pairs whose content is a pure function of the index."""

    def __init__(self, n=8, scale=2, size=8):
        self.n, self.scale, self.size = n, scale, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        lr = torch.rand(3, self.size, self.size, generator=g) * 255
        hr = torch.nn.functional.interpolate(lr[None], scale_factor=self.scale, mode="nearest")[0]
        return {"lr": lr, "hr": hr, "name": str(i)}


def tiny_ledsr(seed=0):
    torch.manual_seed(seed)
    return sr_models.create_model("ledsr_f256r16_x2", n_feats=8, n_resblocks=2)


def graph_of(model):
    return gp.analyze(model, torch.rand(1, 3, 8, 8) * 255, ignore=["*mean*", "*tail*"])


def train(model, reg, tmp_path, iters, **cfg):
    config = {**dict(total_iters=iters, batch_size=2, out_dir=str(tmp_path), log_every=1000, save_every=1000,
                     optimizer={"type": "Adam", "lr": 1e-3}, progress_bar=False, resume=False), **cfg}
    trainer = Trainer(model, Pairs(), config, hooks=[reg])
    trainer.train()
    return trainer


# ----------------------------------------------------------------------------- schedule
def test_schedule_official_values():
    s = PenaltySchedule()
    assert (s.delta, s.every, s.ceiling, s.stabilize) == (1e-4, 20, 0.5, 43150)
    assert s.updates_to_stop * s.delta > s.ceiling >= (s.updates_to_stop - 1) * s.delta
    with pytest.raises(ValueError, match="every"):
        PenaltySchedule(every=0)


def test_total_iters_official_assl_and_srp_lengths():
    g = graph_of(tiny_ledsr())
    assl = ASSL(g, 0.5)
    srp = SRP(g, 0.5)
    # ASSL: SSA 17260 + growth ~100k for the coupled group + 43150 stabilization (~160k, reference §3)
    assert assl.total_iters() == 17260 + 5001 * 20 + 43150
    assert srp.total_iters() == 5001 * 20 + 43150


# ----------------------------------------------------------------------------- penalty
def test_penalty_adds_lambda_times_param_to_the_chosen_filters(tmp_path):
    model = tiny_ledsr()
    g = graph_of(model)
    reg = SRP(g, 0.5, schedule=PenaltySchedule(delta=0.1, every=1, ceiling=10, stabilize=0))
    trainer = train(model, reg, tmp_path, iters=3)
    assert all(c == 3 for c in reg.counts.values())
    # apply the penalty once more by hand on zero gradients and compare with λ·W
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    reg.after_backward()
    res = [gr for gr in reg.groups if "head.0" in gr.modules("out")][0]
    removed = reg.removed[res.id]
    kept = [i for i in range(res.size) if i not in removed]
    lam = 0.3
    w = model.head[0].weight
    assert torch.allclose(w.grad[removed], lam * w.detach()[removed], rtol=1e-5)
    assert torch.count_nonzero(w.grad[kept]) == 0
    assert torch.allclose(model.head[0].bias.grad[removed], lam * model.head[0].bias.detach()[removed])
    assert trainer.iter == 2


def test_penalty_drives_chosen_filters_to_zero(tmp_path):
    model = tiny_ledsr()
    g = graph_of(model)
    reg = SRP(g, 0.5, schedule=PenaltySchedule(delta=2.0, every=1, ceiling=40, stabilize=10))
    before = model.head[0].weight.detach().clone()
    train(model, reg, tmp_path, iters=reg.total_iters(), optimizer={"type": "SGD", "lr": 0.02})
    res = [gr for gr in reg.groups if "head.0" in gr.modules("out")][0]
    idx = reg.removed[res.id]
    kept = [i for i in range(res.size) if i not in idx]
    after = model.head[0].weight.detach()
    shrink_removed = after[idx].norm() / before[idx].norm()
    shrink_kept = after[kept].norm() / before[kept].norm()
    assert shrink_removed < 0.3 * shrink_kept, (shrink_removed, shrink_kept)


def test_srp_selection_free_by_l1_coupled_random_seeded():
    model = tiny_ledsr()
    with torch.no_grad():
        model.body[0].body[0].weight[[2, 5]] *= 1e-3
    g = graph_of(model)
    a, b = SRP(g, 0.25, seed=1), SRP(g, 0.25, seed=1)
    a.select(model), b.select(model)
    free = [gr for gr in a.groups if gr.modules("out") == ["body.0.body.0"]][0]
    assert a.removed[free.id] == [2, 5]
    coupled = [gid for gid in a.coupled][0]
    assert a.removed[coupled] == b.removed[coupled]
    c = SRP(g, 0.25, seed=2)
    c.select(model)
    assert c.removed[coupled] != a.removed[coupled]
    first = SRP(g, 0.25, coupled_selection="first")
    first.select(model)
    head_l1 = model.head[0].weight.detach().abs().mean((1, 2, 3)).numpy()
    assert first.removed[coupled] == sorted(np.argsort(head_l1, kind="stable")[:2].tolist())


# ----------------------------------------------------------------------------- ASSL
def test_ssa_loss_hand_made_case():
    g1 = torch.tensor([0.0, 1.0, 2.0, 3.0])
    g2 = torch.tensor([3.0, 2.0, 1.0, 0.0])
    # n_remove = 2: thresholds are the 3rd smallest values (2.0 for both)
    s1, s2 = torch.sigmoid(g1 - 2.0), torch.sigmoid(g2 - 2.0)
    S = torch.stack([s1, s2])
    expected = -(S @ S.T).mean()
    assert torch.allclose(ssa_loss([g1, g2], 2), expected)
    aligned = ssa_loss([g1, g1.clone()], 2)
    assert aligned < ssa_loss([g1, g2], 2), "aligned masks must have the lower (better) loss"


def test_ssa_gradient_flows_into_scales_and_threshold():
    g1 = torch.tensor([0.5, 1.0, 2.0, 3.0], requires_grad=True)
    g2 = torch.tensor([3.0, 2.0, 1.0, 0.5], requires_grad=True)
    ssa_loss([g1, g2], 1).backward()
    assert g1.grad is not None and torch.count_nonzero(g1.grad) >= 3


def test_weight_norm_keeps_the_function_and_merges_back():
    model = tiny_ledsr().eval()
    x = torch.rand(1, 3, 8, 8) * 255
    y = model(x)
    names = add_weight_norm(model, ["head.0", "body.0.body.0", "tail.0"])
    assert names == ["head.0", "body.0.body.0", "tail.0"]
    s = filter_scale(model.head[0])
    assert torch.allclose(s, model.head[0].parametrizations.weight.original.detach().flatten(1).norm(dim=1))
    assert torch.allclose(model(x), y, rtol=1e-5, atol=1e-3)
    with torch.no_grad():
        s.mul_(2.0)
    merge_weight_norm(model)
    assert type(model.head[0]) is nn.Conv2d
    assert filter_scale(model.head[0]) is None


def test_assl_phases_penalize_scales_and_realign(tmp_path):
    model = tiny_ledsr()
    g = graph_of(model)
    reg = ASSL(g, 0.5, schedule=PenaltySchedule(delta=0.5, every=1, ceiling=2.0, stabilize=2), ssa_iters=4)
    coupled = next(iter(reg.coupled))
    assert reg.start[coupled] == 4 and all(reg.start[gid] == 0 for gid in reg.start if gid != coupled)
    reg.prepare(model)
    assert filter_scale(model.head[0]) is not None and filter_scale(model.body[1].body[2]) is not None
    trainer = train(model, reg, tmp_path, iters=reg.total_iters())
    assert reg.total_iters() == 4 + 5 * 1 + 2
    assert all(c == 5 for c in reg.counts.values())
    # the penalty acted on γ: removed scales of the residual group shrank relative to kept ones
    s = filter_scale(model.head[0]).detach().abs()
    removed = reg.removed[coupled]
    kept = [i for i in range(len(s)) if i not in removed]
    assert s[removed].mean() < s[kept].mean()
    pruned, plan = reg.finalize(model)
    assert pruned.head[0].out_channels == 4 and type(pruned.head[0]) is nn.Conv2d
    assert "ssa_loss" in trainer.scalars or reg.ssa_iters > 0


def test_assl_ssa_loss_only_during_ssa_phase(tmp_path):
    model = tiny_ledsr()
    reg = ASSL(graph_of(model), 0.5, schedule=PenaltySchedule(delta=1, every=1, ceiling=1, stabilize=0), ssa_iters=2)
    reg.prepare(model)
    trainer = Trainer(model, Pairs(), dict(total_iters=4, batch_size=2, out_dir=str(tmp_path), progress_bar=False,
                                           resume=False, log_every=100, save_every=100), hooks=[reg])
    batch = Pairs()[0]
    trainer.iter = 0
    assert reg.extra_loss(batch, None) is not None
    trainer.iter = 2
    assert reg.extra_loss(batch, None) is None


# ----------------------------------------------------------------------------- state
@pytest.mark.parametrize("cls", [ASSL, SRP])
def test_state_round_trip_continues_identically(cls, tmp_path):
    sched = PenaltySchedule(delta=0.25, every=2, ceiling=1.0, stabilize=2)

    def make():
        model = tiny_ledsr()
        kw = {"ssa_iters": 2} if cls is ASSL else {}
        reg = cls(graph_of(model), 0.5, schedule=sched, **kw)
        reg.prepare(model)
        return model, reg

    # uninterrupted
    m1, r1 = make()
    train(m1, r1, tmp_path / "a", iters=r1.total_iters(), deterministic=True)
    # stopped half-way, resumed by a new trainer + regularizer from the checkpoint
    m2, r2 = make()
    half = r2.total_iters() // 2
    cfg = dict(batch_size=2, log_every=1000, save_every=half, optimizer={"type": "Adam", "lr": 1e-3},
               progress_bar=False, deterministic=True)
    Trainer(m2, Pairs(), dict(cfg, total_iters=half, out_dir=str(tmp_path / "b"), resume=False),
            hooks=[r2]).train()
    m3, r3 = make()
    Trainer(m3, Pairs(), dict(cfg, total_iters=r3.total_iters(), out_dir=str(tmp_path / "b"), resume=True),
            hooks=[r3]).train()
    assert r3.state_dict() == r1.state_dict()
    for (k, a), b in zip(m1.state_dict().items(), m3.state_dict().values()):
        assert torch.equal(a, b), k
