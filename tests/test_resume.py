"""Exact resume: SIGKILL at any moment, resume, and end bitwise equal to an uninterrupted run.

The training runs in a subprocess (tests/_train_helper.py) so that it can really be killed; the
reference runs in-process with the same arguments (same code path, one thread, deterministic).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import _train_helper as helper
from graphprune.train import CheckpointError, HookBase, Trainer, TrainConfig, load_checkpoint
from graphprune.train.checkpoint import list_checkpoints

HELPER = Path(helper.__file__)
ARGS = ["--iters", "30", "--save-every", "4", "--log-every", "3", "--ema", "0.9", "--val-every", "10"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """``references(*extra)``: the uninterrupted run with ``ARGS + extra`` (computed once per extra)."""
    done = {}

    def get(*extra: str):
        if extra not in done:
            out = tmp_path_factory.mktemp("reference")
            done[extra] = helper.run(["--out", str(out), *ARGS, *extra]), _iters_logged(out)
        return done[extra]
    return get


@pytest.fixture(scope="module")
def reference(references):
    return references()


def _iters_logged(out: Path) -> list[int]:
    return [json.loads(x)["iter"] for x in (out / "log.jsonl").read_text().splitlines()]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HELPER), "--out", str(out), *ARGS, *extra],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(out: Path, *extra: str) -> dict:
    """Resume to the end in a fresh process and return its final state."""
    p = _start(out, *extra)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return torch.load(out / "final_rank0.pt", weights_only=True)


def _assert_bitwise_equal(final: dict, reference: dict) -> None:
    for part in ("model", "ema"):
        assert final[part].keys() == reference[part].keys()
        for k, v in reference[part].items():
            assert torch.equal(final[part][k], v), f"{part}.{k} differs after resume"


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert proc.poll() is None, "training ended before the test could kill it"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_kill_after_first_checkpoint_then_resume(tmp_path, reference):
    p = _start(tmp_path, "--sleep", "0.05")
    _wait_for(lambda: list_checkpoints(tmp_path / "checkpoints"), p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (tmp_path / "final_rank0.pt").exists()
    _assert_bitwise_equal(_finish(tmp_path), reference[0])
    assert _iters_logged(tmp_path) == reference[1]  # logs truncated to the checkpoint: no duplicates


@pytest.mark.parametrize("extra", [("--workers", "2"), ("--amp", "bf16", "--channels-last")],
                         ids=["workers", "bf16-channels-last"])
def test_kill_after_first_checkpoint_then_resume_with_speed_settings(tmp_path, references, extra):
    """Two data workers (batches seeded per batch, not per worker) and bf16 + channels-last resume exactly."""
    p = _start(tmp_path, "--sleep", "0.05", *extra)
    _wait_for(lambda: list_checkpoints(tmp_path / "checkpoints"), p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    _assert_bitwise_equal(_finish(tmp_path, *extra), references(*extra)[0])


def test_kill_in_the_middle_of_a_checkpoint_write(tmp_path, reference):
    p = _start(tmp_path, "--die-in-save", "3")  # the 3rd write (iteration 12) is torn half-way
    p.wait(timeout=120)
    assert p.returncode == -signal.SIGKILL
    assert (tmp_path / "checkpoints" / "iter_00000012.pt.tmp").exists()
    assert [c.name for c in list_checkpoints(tmp_path / "checkpoints")] == ["iter_00000008.pt", "iter_00000004.pt"]
    _assert_bitwise_equal(_finish(tmp_path), reference[0])
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("extra", [(), ("--amp", "bf16")], ids=["fp32", "bf16"])
def test_killed_repeatedly_at_random_moments(tmp_path, references, extra):
    """Up to three SIGKILLs at uniformly random times during training, then run to the end."""
    seed = int(os.environ.get("GP_KILL_SEED", time.time_ns() % 10_000))
    rng, seed_note = random.Random(seed), f"(kill times drawn with GP_KILL_SEED={seed})"
    for _ in range(3):
        p = _start(tmp_path, "--sleep", "0.02", *extra)
        started = tmp_path / "started"
        started.unlink(missing_ok=True)
        _wait_for(started.exists, p)
        time.sleep(rng.uniform(0.0, 0.5))
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGKILL)
        p.wait()
    final = _finish(tmp_path, *extra)
    try:
        _assert_bitwise_equal(final, references(*extra)[0])
    except AssertionError as e:
        raise AssertionError(f"{e} {seed_note}") from None


# -- corrupt checkpoints -----------------------------------------------------------------------
def _tiny_cfg(out: Path, **kw) -> TrainConfig:
    base = dict(total_iters=12, batch_size=4, out_dir=str(out), rgb_range=1.0, save_every=4,
                log_every=4, optimizer={"type": "Adam", "lr": 1e-2},
                progress_bar=False, keep_checkpoints=3)
    return TrainConfig(**{**base, **kw})


def _train(out: Path, hooks=(), model_ch: int = 8, **kw) -> Trainer:
    torch.manual_seed(0)
    t = Trainer(helper.TinySR(model_ch), helper.SyntheticSR(16), _tiny_cfg(out, **kw), hooks=hooks)
    t.train()
    return t


def test_truncated_checkpoint_error_and_fallback(tmp_path):
    ref = _train(tmp_path / "ref").module.state_dict()
    run = tmp_path / "run"
    _train(run, total_iters=8)  # leaves iter 4 and iter 8
    newest = run / "checkpoints" / "iter_00000008.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(newest)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"checkpoint {newest} is corrupt or truncated (")
    assert msg.endswith(f"the previous good one is {run / 'checkpoints' / 'iter_00000004.pt'}")
    with pytest.warns(UserWarning, match=r"iter_00000008.pt is corrupt or truncated .*; the previous "
                                         r"good one is .*iter_00000004.pt"):
        t = _train(run)
    for k, v in ref.items():
        assert torch.equal(t.module.state_dict()[k], v)


def test_resume_from_an_explicit_path(tmp_path):
    ref = _train(tmp_path / "ref").module.state_dict()
    _train(tmp_path / "run", total_iters=8)
    t = _train(tmp_path / "other", resume=str(tmp_path / "run" / "checkpoints" / "iter_00000004.pt"))
    assert t.start_iter == 4
    assert all(torch.equal(t.module.state_dict()[k], v) for k, v in ref.items())


def test_not_a_training_checkpoint_and_nothing_good_left(tmp_path):
    d = tmp_path / "checkpoints"
    d.mkdir()
    torch.save({"model": {}}, d / "iter_00000004.pt")
    (d / "iter_00000008.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"iter_00000004.pt is corrupt or truncated \(missing keys"):
        _train(tmp_path)


class _PrunesOnce(HookBase):
    """Stands in for a pruning hook: shrinks the model at iteration 5 and re-applies it on resume."""

    name = "prune"

    def __init__(self):
        self.pruned = False

    def after_step(self):
        if self.trainer.iter == 4 and not self.pruned:
            self.pruned = True
            torch.manual_seed(1)
            self.trainer.replace_model(helper.TinySR(ch=4))

    def state_dict(self):
        return {"pruned": self.pruned}

    def load_state_dict(self, state):
        self.pruned = state["pruned"]
        if self.pruned:  # rebuild the smaller architecture; the trainer then loads its weights
            self.trainer.replace_model(helper.TinySR(ch=4))


def test_resume_after_the_model_was_replaced(tmp_path):
    ref = _train(tmp_path / "ref", [_PrunesOnce()], ema=0.9)
    _train(tmp_path / "run", [_PrunesOnce()], ema=0.9, total_iters=8)
    t = _train(tmp_path / "run", [_PrunesOnce()], ema=0.9)
    assert t.start_iter == 8 and t.module.head.out_channels == 4
    for k, v in ref.module.state_dict().items():
        assert torch.equal(t.module.state_dict()[k], v)
