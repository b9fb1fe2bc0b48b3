"""Trainer loop, hooks, schedules, sampler, config and logging (in-process, tiny models)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from _train_helper import SyntheticSR, TinySR
from graphprune.train import hooks as hooks_mod
from graphprune.train import (BatchStream, HookBase, ResumableBatchSampler, Trainer, TrainConfig,
                              TrainConfigError, build_schedule, psnr_eval_fn)
from graphprune.train.schedules import cosine_lr


def make_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(total_iters=6, batch_size=4, out_dir=str(tmp_path), rgb_range=1.0,
                optimizer={"type": "Adam", "lr": 1e-2}, log_every=2, save_every=3,
                progress_bar=False, resume=False)
    return TrainConfig(**{**base, **kw})


def make_trainer(tmp_path, hooks=(), model=None, **kw) -> Trainer:
    torch.manual_seed(0)
    return Trainer(model or TinySR(), SyntheticSR(16), make_cfg(tmp_path, **kw), hooks=hooks,
                   val_data=SyntheticSR(2, seed=9, train=False))


# -- schedules -------------------------------------------------------------------------------
def test_multistep_and_step_by_formula():
    f = build_schedule({"type": "MultiStepLR", "milestones": [3, 5], "gamma": 0.1}, 2.0, 10)
    assert [f(i) for i in range(7)] == pytest.approx([2, 2, 2, 0.2, 0.2, 0.02, 0.02])
    g = build_schedule({"type": "step", "step_size": 4, "gamma": 0.5}, 1.0, 10)
    assert [g(i) for i in (0, 3, 4, 8)] == [1.0, 1.0, 0.5, 0.25]
    assert build_schedule(None, 0.3, 10)(7) == 0.3


def test_cosine_with_warmup():
    f = build_schedule({"type": "cosine", "eta_min": 0.1, "warmup_iters": 4}, 1.0, 100)
    assert [f(i) for i in range(4)] == pytest.approx([cosine_lr(4, 1.0, 100, 0.1) * k / 4 for k in (1, 2, 3, 4)])
    assert f(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(100) == pytest.approx(0.1)


def test_schedule_errors_name_the_problem():
    with pytest.raises(ValueError, match="type: 'poly' is not one of constant, ConstantLR, step"):
        build_schedule({"type": "poly"}, 1.0, 10)
    with pytest.raises(ValueError) as e:
        build_schedule({"type": "multistep", "gama": 0.5, "milestones": "soon"}, 1.0, 10)
    assert [str(p) for p in e.value.problems] == [
        "gama: unknown key (did you mean 'gamma'?); valid keys: type, warmup_iters, milestones, gamma",
        "milestones: 'soon' is a string; expected a list of integers"]


# -- sampler -----------------------------------------------------------------------------------
def test_sampler_order_is_a_function_of_seed_and_epoch():
    a = ResumableBatchSampler(20, 4, seed=1)
    b = ResumableBatchSampler(20, 4, seed=1)
    a.set_epoch(3), b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)
    b.set_epoch(3, start_batch=2)
    assert list(b) == list(a)[2:]


def test_ddp_shards_union_is_the_single_process_batch():
    """Rank r's batch j, united over ranks, is batch j of one process with the global batch."""
    single = ResumableBatchSampler(21, 6, seed=5)
    ranks = [ResumableBatchSampler(21, 3, seed=5, rank=r, world_size=2) for r in range(2)]
    for s in [single, *ranks]:
        s.set_epoch(2)
    assert len(single) == len(ranks[0]) == 3
    for j, batch in enumerate(single):
        assert sorted(batch) == sorted(list(ranks[0])[j] + list(ranks[1])[j])


def test_too_small_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ResumableBatchSampler(3, 2, world_size=2)


def test_batch_stream_resumes_mid_epoch_and_sets_epoch():
    ds = SyntheticSR(10)
    ref = BatchStream(ds, 3, seed=2)
    full = [next(ref)["name"] for _ in range(8)]  # crosses two epoch boundaries (3 batches each)
    assert ref.epoch == 2 and ds.epoch == 2
    s = BatchStream(SyntheticSR(10), 3, seed=2)
    s.load_state_dict({"epoch": 1, "consumed": 1})
    assert [next(s)["name"] for _ in range(4)] == full[4:8]


def test_workers_give_the_same_batches_across_epochs():
    """Workers restart every epoch, so they see set_epoch; contents depend on (seed, epoch, index)."""
    a = BatchStream(SyntheticSR(8), 4, seed=1)
    b = BatchStream(SyntheticSR(8), 4, seed=1, num_workers=2)
    for _ in range(5):
        x, y = next(a), next(b)
        assert x["name"] == y["name"] and torch.equal(x["hr"], y["hr"])


# -- config ------------------------------------------------------------------------------------
def test_config_accepts_basicsr_names_and_lists_every_problem(tmp_path):
    cfg = TrainConfig.from_dict({"total_iter": 10, "batch_size_per_gpu": 2, "out_dir": str(tmp_path),
                                 "optim_g": {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]},
                                 "scheduler": {"type": "MultiStepLR", "milestones": [5], "gamma": 0.5},
                                 "val_freq": 5, "print_freq": 2, "save_checkpoint_freq": 5,
                                 "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0}, "ema_decay": 0.999})
    assert (cfg.total_iters, cfg.batch_size, cfg.val_every, cfg.ema) == (10, 2, 5, 0.999)
    with pytest.raises(TrainConfigError) as e:
        TrainConfig.from_dict({"total_iters": 0, "batch_size": 2, "out_dir": "x", "lr": 1,
                               "optimizer": {"type": "Adamax", "lr": 1}})
    assert [p.path for p in e.value.problems] == ["lr", "total_iters", "optimizer.type"]
    assert str(e.value.problems[2]) == "optimizer.type: 'Adamax' is not one of Adam, AdamW, SGD (did you mean 'Adam'?)"
    with pytest.raises(TrainConfigError) as e:
        TrainConfig(total_iters=0, batch_size=2, out_dir="x", optimizer={"type": "Adam", "lr": "fast", "beta": 1},
                    scheduler={"type": "cosine", "T_max": 3}, loss="l3")
    assert [str(p) for p in e.value.problems] == [
        "total_iters: 0 is out of range; expected total_iters >= 1 (iterations to run)",
        "loss: 'l3' is not a loss; expected l1, mse, charbonnier (or L1Loss, MSELoss, CharbonnierLoss), "
        "{type: ..., loss_weight: ...} or a callable",
        "optimizer.beta: unknown key (did you mean 'betas'?); valid keys: type, lr, betas, eps, weight_decay, amsgrad",
        "optimizer.lr: 'fast' is a string; expected a number",
        "scheduler.T_max: unknown key; valid keys: type, warmup_iters, eta_min"]


def test_rgb_range_mismatch_with_dataset_is_an_error(tmp_path):
    with pytest.raises(TrainConfigError, match="rgb_range=255 but the trainer has rgb_range=1"):
        Trainer(TinySR(), SyntheticSR(8, rgb_range=255.0), make_cfg(tmp_path))


def test_value_range_check_warns_on_first_batch(tmp_path):
    class NoRangeAttr(torch.utils.data.Dataset):  # [0, 1] data that does not declare its range
        def __init__(self):
            self.ds = SyntheticSR(8)

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            return self.ds[i]

    t = Trainer(TinySR(), NoRangeAttr(), make_cfg(tmp_path, total_iters=1, rgb_range=255.0))
    with pytest.warns(UserWarning, match="peaks at .* but rgb_range=255"):
        t.train()


# -- the loop and hooks ------------------------------------------------------------------------
class Recorder(HookBase):
    name = "recorder"

    def __init__(self):
        self.calls, self.lrs, self.grad_norms, self.weights = [], [], [], []

    def before_train(self): self.calls.append("before_train")
    def before_step(self): self.calls.append("before_step")
    def extra_loss(self, batch, output):
        self.calls.append("extra_loss")
        return None
    def after_backward(self): self.calls.append("after_backward")

    def before_optimizer_step(self):
        self.calls.append("before_optimizer_step")
        self.lrs.append(self.trainer.current_lr)
        grads = [p.grad for p in self.trainer.module.parameters()]
        self.grad_norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    def after_optimizer_step(self):
        self.calls.append("after_optimizer_step")
        self.weights.append({k: v.clone() for k, v in self.trainer.module.state_dict().items()})

    def after_step(self): self.calls.append("after_step")
    def after_train(self): self.calls.append("after_train")


def test_hook_order_and_lr_schedule(tmp_path):
    rec = Recorder()
    make_trainer(tmp_path, [rec], total_iters=4,
                 scheduler={"type": "multistep", "milestones": [2], "gamma": 0.1}).train()
    step = ["before_step", "extra_loss", "after_backward", "before_optimizer_step",
            "after_optimizer_step", "after_step"]
    assert rec.calls == ["before_train"] + step * 4 + ["after_train"]
    assert rec.lrs == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3])


def test_extra_loss_is_added_before_backward(tmp_path):
    class Extra(HookBase):
        name = "extra"

        def extra_loss(self, batch, output):
            return 3.0 * self.trainer.module.head.bias.sum()

    grads = []

    class Grab(HookBase):
        def after_backward(self):
            grads.append(self.trainer.module.head.bias.grad.clone())

    make_trainer(tmp_path / "a", [Grab()], total_iters=1).train()
    make_trainer(tmp_path / "b", [Extra(), Grab()], total_iters=1).train()
    torch.testing.assert_close(grads[1] - grads[0], torch.full_like(grads[0], 3.0))


def test_grad_clip_bounds_the_norm(tmp_path):
    rec = Recorder()
    make_trainer(tmp_path, [rec], total_iters=3, grad_clip=1e-3).train()
    assert max(rec.grad_norms) <= 1e-3 * (1 + 1e-4)


def test_hook_names_must_be_unique(tmp_path):
    with pytest.raises(ValueError, match="two hooks are named 'recorder'"):
        make_trainer(tmp_path, [Recorder(), Recorder()])


def test_hook_state_must_be_plain_data(tmp_path):
    class Bad(HookBase):
        name = "bad"

        def state_dict(self):
            return {"fn": print}

    with pytest.raises(TypeError, match=r"hook 'bad' state\['fn'\] is a builtin_function"):
        make_trainer(tmp_path, [Bad()], total_iters=3).train()


def test_ema_matches_the_formula(tmp_path):
    rec = Recorder()
    t = make_trainer(tmp_path, [rec], total_iters=5, ema=0.8)
    torch.manual_seed(0)
    expected = {k: v.clone() for k, v in TinySR().state_dict().items()}
    t.train()
    for w in rec.weights:
        expected = {k: 0.8 * expected[k] + 0.2 * w[k] for k in expected}
    for k, v in t.get_hook("ema").averaged_model().state_dict().items():
        torch.testing.assert_close(v, expected[k])


def test_replace_model_rebuilds_optimizer_and_keeps_schedule(tmp_path):
    class Shrink(HookBase):
        name = "shrink"

        def after_step(self):
            if self.trainer.iter == 1:
                self.trainer.replace_model(TinySR(ch=4))

    rec = Recorder()
    t = make_trainer(tmp_path, [Shrink(), rec], total_iters=4, ema=0.9,
                     scheduler={"type": "multistep", "milestones": [3], "gamma": 0.5})
    t.train()
    assert t.module.head.out_channels == 4
    assert {id(p) for p in t.module.parameters()} == {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert rec.lrs == pytest.approx([1e-2, 1e-2, 1e-2, 5e-3])
    assert t.get_hook("ema").averaged_model().head.out_channels == 4


# -- evaluation, best checkpoint and logs ------------------------------------------------------
def test_eval_best_checkpoint_and_logs(tmp_path, monkeypatch):
    scalars = []

    class FakeWriter:
        def add_scalar(self, k, v, step): scalars.append((k, step))
        def close(self): pass

    monkeypatch.setattr(hooks_mod, "_tensorboard_writer", lambda d, purge_step: FakeWriter())
    values = iter([20.0, 25.0, 22.0])

    class Scalar(HookBase):
        def after_step(self):
            self.trainer.scalars["penalty"] = 0.5

    torch.manual_seed(0)
    t = Trainer(TinySR(), SyntheticSR(16), make_cfg(tmp_path, total_iters=6, val_every=2, log_every=4),
                hooks=[Scalar()], eval_fn=lambda m: {"psnr": next(values)})
    t.train()
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [2, 4, 6]
    assert [r.get("val/psnr") for r in rows] == [20.0, 25.0, 22.0]
    assert all(r["penalty"] == 0.5 and r["loss"] > 0 and "eta_s" in r for r in rows)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert (best["iter"], best["value"]) == (4, 25.0)
    csv_lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "iter,name,value" and "4,val/psnr,25.0" in csv_lines
    assert ("val/psnr", 4) in scalars and ("loss", 6) in scalars
    assert json.loads((tmp_path / "config.json").read_text())["total_iters"] == 6


def test_logged_loss_is_the_window_mean(tmp_path):
    losses = []

    class Grab(HookBase):
        def after_step(self):
            losses.append(float(self.trainer.loss))

    make_trainer(tmp_path, [Grab()], total_iters=6, log_every=3).train()
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == pytest.approx([sum(losses[:3]) / 3, sum(losses[3:]) / 3])


def test_default_psnr_eval_by_formula():
    """A constant error of k/255 everywhere gives PSNR = 20 log10(255 / k)."""
    class Const(nn.Module):
        def forward(self, x):
            return torch.full((1, 3, 2 * x.shape[-2], 2 * x.shape[-1]), 100.0 / 255 * 255.0)

    data = [{"lr": torch.zeros(3, 8, 8), "hr": torch.full((3, 16, 16), 96.0)}]
    psnr = psnr_eval_fn(data, rgb_range=255.0)(Const())["psnr"]
    assert psnr == pytest.approx(20 * math.log10(255 / 4))


def test_training_reduces_the_loss(tmp_path):
    losses = []

    class Grab(HookBase):
        def after_step(self):
            losses.append(float(self.trainer.loss))

    make_trainer(tmp_path, [Grab()], total_iters=30, save_every=30).train()
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])
