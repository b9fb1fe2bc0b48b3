"""Trainer speed settings: mixed precision, channels-last, torch.compile, prefetch, worker seeds.

What must hold (issue 14): each setting changes how fast the step runs, not what it means.
bf16 follows the fp32 loss curve within a tolerance; channels-last and compile compute the eager
step within 1e-5 in fp32; the regularizers' penalties see true fp32 gradients under every
precision; the prune step gives the same pruned weights whatever the memory format or compile;
batches are a function of (seed, epoch, batch, rank), never of the worker count or resume point.
Resume after SIGKILL in bf16 and with workers is in tests/test_resume.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

import graphprune as gp
import sr_models
from _train_helper import SyntheticSR, TinySR
from graphprune.regularizers import ASSL, PenaltySchedule
from graphprune.reparam import FilterScale, add_weight_norm
from graphprune.train import BatchStream, HookBase, Trainer, TrainConfig, TrainConfigError
from graphprune.train import precision
from graphprune.train.prefetch import DevicePrefetcher

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 + GradScaler is the CUDA path; no CUDA here")


def cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(total_iters=6, batch_size=4, out_dir=str(tmp_path), rgb_range=1.0,
                optimizer={"type": "Adam", "lr": 1e-2}, log_every=1000, save_every=1000,
                progress_bar=False, resume=False, device="cpu")
    return TrainConfig(**{**base, **kw})


class Losses(HookBase):
    name = "losses"

    def __init__(self):
        self.values = []

    def after_step(self):
        self.values.append(float(self.trainer.loss))


def run(tmp_path, model=None, hooks=(), **kw):
    if kw.get("compile"):
        torch._dynamo.reset()  # a fresh compile cache per run: the recompile limit never makes it eager
    torch.manual_seed(0)
    rec = Losses()
    t = Trainer(model or TinySR(), SyntheticSR(16), cfg(tmp_path, **kw), hooks=[rec, *hooks])
    t.train()
    return t, rec.values


# -- config -------------------------------------------------------------------------------------
def test_speed_settings_are_validated_with_did_you_mean(tmp_path):
    with pytest.raises(TrainConfigError) as e:
        cfg(tmp_path, amp="bf61", channels_last="yes", compile="max_autotune")
    assert [str(p) for p in e.value.problems] == [
        "amp: 'bf61' is not one of none, bf16, fp16, auto (did you mean 'bf16'?)",
        "channels_last: 'yes' is a string; expected true or false",
        "compile: 'max_autotune' is not a torch.compile mode; expected true, false or one of default, "
        "reduce-overhead, max-autotune, max-autotune-no-cudagraphs (did you mean 'max-autotune'?)"]
    c = cfg(tmp_path)
    assert (c.amp, c.channels_last, c.compile) == ("none", False, False)


def test_recipe_train_block_validates_the_new_keys():
    from graphprune.compress.recipe import RecipeError, load_recipe

    with pytest.raises(RecipeError) as e:
        load_recipe("recipes/demo_x4_assl.yaml", ["train.amp=fp32", "train.compile=fast"], check_files=False)
    assert [p.path for p in e.value.problems] == ["train.amp", "train.compile"]
    r = load_recipe("recipes/demo_x4_assl.yaml", ["train.channels_last=true", "train.compile=max-autotune"],
                    check_files=False)
    tc = r.train_config("pretrain", "runs/x")
    assert (tc.channels_last, tc.compile) == (True, "max-autotune")


# -- mixed precision ----------------------------------------------------------------------------
def test_bf16_training_follows_the_fp32_loss_curve(tmp_path):
    _, fp32 = run(tmp_path / "a", total_iters=30)
    t, bf16 = run(tmp_path / "b", total_iters=30, amp="bf16")
    rel = [abs(a - b) / a for a, b in zip(fp32, bf16)]
    assert max(rel) < 5e-3 and sum(rel) / len(rel) < 1e-3, rel  # measured: max 4e-4, mean 1.8e-4
    assert fp32 != bf16  # bf16 really ran
    assert sum(bf16[-5:]) < 0.7 * sum(bf16[:5])
    assert all(p.dtype == torch.float32 for p in t.module.parameters())  # master weights stay fp32
    assert all(v.dtype == torch.float32 for s in t.optimizer.state.values() for v in s.values()
               if torch.is_tensor(v) and v.is_floating_point())


class Probe(HookBase):
    """What a regularizer sees: autocast state and dtypes in extra_loss, gradients after backward."""

    name = "probe"

    def __init__(self):
        self.extra, self.grads = [], []

    def extra_loss(self, batch, output):
        self.extra.append((torch.is_autocast_enabled("cpu"), output.dtype))
        return None

    def after_backward(self):
        self.grads.append(self.trainer.module.head.weight.grad.clone())


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_penalty_hooks_see_fp32_and_unscaled_gradients(tmp_path, amp):
    """fp16's GradScaler multiplies the loss by 65536; hooks that add λ·θ to p.grad must see the
    true gradient (unscaled before after_backward), or the penalty would be 65536x too weak."""
    ref, low = Probe(), Probe()
    run(tmp_path / "a", hooks=[ref], total_iters=1)
    t, _ = run(tmp_path / "b", hooks=[low], total_iters=1, amp=amp)
    assert ref.extra == [(False, torch.float32)] and low.extra == [(False, torch.float32)]
    g0, g1 = ref.grads[0], low.grads[0]
    assert g1.dtype == torch.float32
    assert (g1 - g0).norm() < 0.05 * g0.norm()
    if amp == "fp16":
        assert t.precision.scaler is not None and t.checkpoint_state()["scaler"]["scale"] == 65536.0


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_is_bf16_only_where_the_hardware_has_it(tmp_path, monkeypatch, native, capsys):
    """Emulated bf16 trains ~9x slower (oneDNN held to AVX2, BENCHMARKS.md): auto must not pick it."""
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    _, auto = run(tmp_path / "auto", total_iters=3, amp="auto")
    _, explicit = run(tmp_path / "explicit", total_iters=3, amp="bf16" if native else "none")
    assert auto == explicit  # bitwise: the same precision ran
    assert f"precision: {'bf16 autocast' if native else 'fp32'}" in capsys.readouterr().out


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU flags Linux reports")
def test_native_bf16_on_this_cpu_agrees_with_the_cpu_flags():
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert precision.native_bf16(torch.device("cpu")) == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_resuming_in_another_precision_warns(tmp_path):
    run(tmp_path, total_iters=4, save_every=4)
    with pytest.warns(UserWarning, match="trained with amp=none, this run continues with amp=bf16"):
        run(tmp_path, total_iters=6, resume=True, amp="bf16")


def test_assl_weight_norm_is_computed_in_fp32_under_autocast():
    """Guards precision.py's claim: autocast lowers none of FilterScale's ops (a rewrite through a
    matmul or an einsum would be lowered, and the scales ASSL prunes by would round to 8 bits)."""
    conv = nn.Conv2d(4, 6, 3)
    scale = FilterScale(conv.weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = scale(conv.weight.detach())
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, conv.weight.detach(), rtol=1e-6, atol=1e-7)


def test_fp16_grad_scaler_state_is_checkpointed_and_resumed_exactly_on_cpu(tmp_path):
    """The GradScaler logic runs on CPU too (torch's CPU fp16 autocast), so its resume is tested here."""
    ref, ref_losses = run(tmp_path / "ref", total_iters=8, amp="fp16")
    run(tmp_path / "run", total_iters=4, amp="fp16", save_every=4)
    state = torch.load(tmp_path / "run" / "checkpoints" / "iter_00000004.pt", weights_only=True)
    assert set(state["scaler"]) >= {"scale", "_growth_tracker"}
    t, losses = run(tmp_path / "run", total_iters=8, amp="fp16", resume=True)
    assert t.start_iter == 4 and losses == ref_losses[4:]
    # the growth tracker counts good steps since the last scale change: 8, not 4 if the state were lost
    assert t.precision.state_dict() == ref.precision.state_dict()
    for k, v in ref.module.state_dict().items():
        assert torch.equal(t.module.state_dict()[k], v)


@CUDA
def test_fp16_on_cuda_trains_and_checkpoints_the_scaler(tmp_path):
    _, fp32 = run(tmp_path / "a", total_iters=20, device="cuda")
    t, fp16 = run(tmp_path / "b", total_iters=20, device="cuda", amp="fp16", save_every=10)
    assert all(torch.isfinite(torch.tensor(fp16)))
    assert abs(sum(fp16) - sum(fp32)) < 0.05 * sum(fp32)
    state = torch.load(tmp_path / "b" / "checkpoints" / "iter_00000020.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0 and isinstance(t.data, DevicePrefetcher)


# -- channels-last and compile --------------------------------------------------------------------
def _sgd(**kw):
    return dict(optimizer={"type": "SGD", "lr": 0.05, "momentum": 0.9}, **kw)


@pytest.mark.parametrize("setting", [{"channels_last": True}, {"compile": True},
                                     {"channels_last": True, "compile": "default"}], ids=["cl", "compile", "both"])
def test_channels_last_and_compile_compute_the_eager_step(tmp_path, setting):
    """Same losses and weights as eager NCHW within 1e-5 (SGD: updates linear in the gradient, so
    rounding differences of reordered kernels stay at rounding level; Adam would amplify them)."""
    torch._dynamo.reset()
    counters.clear()
    ref, ref_losses = run(tmp_path / "a", total_iters=5, **_sgd())
    t, losses = run(tmp_path / "b", total_iters=5, **_sgd(**setting))
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses), rtol=1e-5, atol=1e-7)
    for k, v in ref.module.state_dict().items():
        torch.testing.assert_close(t.module.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    assert type(t.module) is TinySR and "_orig_mod" not in "".join(t.checkpoint_state()["model"])
    assert bool(setting.get("compile")) == (counters["stats"]["unique_graphs"] > 0)  # it really compiled
    if setting.get("channels_last"):
        assert t.module.head.weight.is_contiguous(memory_format=torch.channels_last)


class ShrinkAt2(HookBase):
    """A prune step inside training: replace_model with a smaller network at iteration 2."""

    name = "shrink"

    def after_step(self):
        if self.trainer.iter == 1:
            torch.manual_seed(5)
            self.trainer.replace_model(TinySR(ch=4))


def test_replace_model_reapplies_channels_last_and_recompiles(tmp_path):
    ref, ref_losses = run(tmp_path / "a", hooks=[ShrinkAt2()], total_iters=5, **_sgd())
    t, losses = run(tmp_path / "b", hooks=[ShrinkAt2()], total_iters=5, **_sgd(channels_last=True, compile=True))
    assert t.module.head.out_channels == 4 and t.module.head.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses), rtol=1e-5, atol=1e-7)
    x = torch.rand(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(t.forward_fn(x), t.module(x), rtol=1e-5, atol=1e-6)  # compiled from the new model


def _assl_setup():
    torch.manual_seed(0)
    model = sr_models.create_model("ledsr_f256r16_x2", n_feats=8, n_resblocks=2)
    graph = gp.analyze(model, torch.rand(1, 3, 8, 8) * 255, ignore=["*mean*", "*tail*"])
    reg = ASSL(graph, 0.5, schedule=PenaltySchedule(delta=0.5, every=2, ceiling=2.0, stabilize=2), ssa_iters=2)
    return reg.prepare(model), reg


def _regularize_and_prune(tmp_path, **setting):
    model, reg = _assl_setup()
    data = SyntheticSR(8, lr_size=8, rgb_range=255.0)
    c = cfg(tmp_path, batch_size=2, rgb_range=255.0, **_sgd(**setting))
    c = TrainConfig(**{**c.to_dict(), "optimizer": {"type": "SGD", "lr": 1e-6, "momentum": 0.9},
                       "total_iters": reg.total_iters()})
    t = Trainer(model, data, c, hooks=[reg])
    t.train()
    pruned, plan = reg.finalize(t.module.cpu())
    return pruned, plan


@pytest.mark.parametrize("setting", [{"channels_last": True}, {"compile": True}], ids=["cl", "compile"])
def test_prune_step_gives_the_same_pruned_weights(tmp_path, setting):
    ref, ref_plan = _regularize_and_prune(tmp_path / "a")
    pruned, plan = _regularize_and_prune(tmp_path / "b", **setting)
    assert plan.removed == ref_plan.removed
    assert pruned.state_dict().keys() == ref.state_dict().keys()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(pruned.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    gp.save(pruned, tmp_path / "pruned.safetensors")  # a channels-last model saves (contiguous copies)
    loaded = gp.load(tmp_path / "pruned.safetensors").state_dict()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(loaded[k], v, rtol=1e-5, atol=1e-6)


def test_surgery_on_a_channels_last_model_is_bitwise_the_nchw_result():
    (nchw, reg_a), (cl, reg_b) = _assl_setup(), _assl_setup()
    cl.to(memory_format=torch.channels_last)
    for model, reg in ((nchw, reg_a), (cl, reg_b)):
        reg.select(model)
    a, _ = reg_a.finalize(nchw)
    b, _ = reg_b.finalize(cl)
    assert reg_a.removed == reg_b.removed
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v), k


def test_channels_last_keeps_weight_norm_parametrizations():
    torch.manual_seed(0)
    model = TinySR()
    add_weight_norm(model, ["head", "body"])
    x = torch.rand(2, 3, 8, 8)
    ref = model(x)
    model.to(memory_format=torch.channels_last)
    assert model.head.parametrizations.weight.original.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), ref, rtol=1e-5, atol=1e-6)


# -- data: prefetch and worker seeds -------------------------------------------------------------
def test_prefetcher_checkpoints_the_batch_it_handed_out_not_the_one_ahead():
    p = DevicePrefetcher(BatchStream(SyntheticSR(10), 3, seed=2), torch.device("cpu"))
    seen = [next(p)["name"] for _ in range(4)]  # 3 batches per epoch: the 4th is epoch 1, batch 0
    assert p.state_dict() == {"epoch": 1, "consumed": 1} and p.epoch == 1
    assert p.stream.state_dict() == {"epoch": 1, "consumed": 2}  # one batch ahead
    q = DevicePrefetcher(BatchStream(SyntheticSR(10), 3, seed=2), torch.device("cpu"))
    q.load_state_dict(p.state_dict())
    assert next(q)["name"] == next(p)["name"]
    ref = BatchStream(SyntheticSR(10), 3, seed=2)
    assert [next(ref)["name"] for _ in range(4)] == seen


class GlobalRNGData(torch.utils.data.Dataset):
    """Breaks the dataset contract on purpose: crops drawn from the *global* RNGs (torch, numpy, random)."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        import random

        import numpy as np
        noise = torch.rand(1) + float(np.random.rand()) + random.random()
        return {"lr": torch.full((3, 2, 2), float(i)) + noise, "hr": torch.zeros(3, 4, 4), "name": str(i)}


def _batches(stream, n):
    return [next(stream)["lr"] for _ in range(n)]


def test_batches_are_a_function_of_seed_epoch_and_batch_not_of_workers_or_resume():
    ref = _batches(BatchStream(GlobalRNGData(), 3, seed=1), 7)  # crosses two epoch boundaries
    for workers in (1, 2):
        got = _batches(BatchStream(GlobalRNGData(), 3, seed=1, num_workers=workers), 7)
        assert all(torch.equal(a, b) for a, b in zip(got, ref)), workers
    s = BatchStream(GlobalRNGData(), 3, seed=1, num_workers=2)
    s.load_state_dict({"epoch": 1, "consumed": 2})
    assert all(torch.equal(a, b) for a, b in zip(_batches(s, 2), ref[5:7]))


def test_loading_batches_in_process_leaves_the_training_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    _batches(BatchStream(GlobalRNGData(), 3, seed=1), 2)
    assert torch.equal(torch.rand(3), expected)
