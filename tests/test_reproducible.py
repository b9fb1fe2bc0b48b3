"""Reproducible runs: a seed gives the same weights, a killed run resumes to the same weights, and
``--resume`` refuses a recipe that is not the one the run started with.

Runs are real processes of tools/compress.py on the demo recipe at a tiny size, one thread each
(bitwise comparisons need the same thread count), as a user would start them.
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

from graphprune.compress.pipeline import Pipeline, PipelineError
from graphprune.compress.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.kwargs={n_feats: 8, n_resblocks: 2}", "data.train.batch_size=2", "data.train.patch_size=12",
        "stages.pretrain.total_iter=12", "stages.finetune.total_iter=8", "prune.schedule.every=2",
        "prune.schedule.delta=0.25", "prune.schedule.stabilize=4", "train.val_freq=6", "train.print_freq=3",
        "train.save_checkpoint_freq=3"]
WEIGHTS = ("dense.safetensors", "pruned_init.safetensors", "model.safetensors")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def _start(out: Path, *extra: str) -> subprocess.Popen:
    sets = [a for o in TINY for a in ("--set", o)]
    return subprocess.Popen([sys.executable, str(ROOT / "tools" / "compress.py"), "--recipe",
                             "recipes/demo_x4_srp.yaml", "--out", str(out), *sets, *extra],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _run(out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    p = _start(out, *extra)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("reference") / "run"
    return out, _run(out)


def test_two_seeded_runs_write_identical_weights(reference, tmp_path):
    """``seed:`` covers the model's initialization, the data order and the method's choices."""
    ref, _ = reference
    _run(tmp_path / "again")
    for name in WEIGHTS:
        assert (tmp_path / "again" / name).read_bytes() == (ref / name).read_bytes(), f"{name} differs"
    seeded = json.loads((ref / "report.json").read_text())["reproducibility"]
    assert seeded["seed"] == 0 and seeded["threads"] == 1 and "--recipe recipes/demo_x4_srp.yaml" in seeded["command"]


@pytest.mark.slow
def test_another_seed_gives_other_weights(reference, tmp_path):
    ref, _ = reference
    _run(tmp_path / "seed1", "--set", "seed=1")
    assert (tmp_path / "seed1" / "dense.safetensors").read_bytes() != (ref / "dense.safetensors").read_bytes()


def test_sigkill_at_a_random_moment_then_resume_ends_identical(reference, tmp_path):
    """Up to three SIGKILLs at uniformly random times of the whole pipeline, then --resume to the end."""
    ref, duration = reference
    seed = int(os.environ.get("GP_KILL_SEED", time.time_ns() % 10_000))
    rng, out = random.Random(seed), tmp_path / "killed"
    for _ in range(3):
        p = _start(out, *(["--resume"] if out.exists() else []))
        time.sleep(rng.uniform(1.0, max(1.5, 0.8 * duration)))
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGKILL)
        p.wait()
    _run(out, "--resume")
    for name in WEIGHTS:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), f"{name} differs (GP_KILL_SEED={seed})"


def test_resume_with_a_changed_recipe_refuses_and_lists_the_differences(reference, tmp_path):
    ref, _ = reference
    report = (ref / "report.md").read_text()
    changed = load_recipe(ROOT / "recipes" / "demo_x4_srp.yaml", TINY + ["prune.ratio=0.25", "seed=3"])
    with pytest.raises(PipelineError) as e:
        Pipeline(changed, ref, resume=True).run()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{ref} was run with a different recipe; --resume continues only")
    assert "seed: 0 in the run, 3 now" in msg and "prune.ratio: 0.5 in the run, 0.25 now" in msg
    assert (ref / "report.md").read_text() == report, "the finished run's report is untouched"
