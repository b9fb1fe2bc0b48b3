"""DDP under torchrun: 2 gloo processes on CPU against one process with the same global batch.

Tolerance. Both runs see the same samples in every step (the sampler shards each global batch over
ranks), so the only difference is float32 summation order: DDP averages two per-rank mean gradients,
one process takes one mean over the whole batch: ~1 ulp (6e-8 relative) per step. The test uses SGD
with momentum, whose update is linear in the gradient, so the difference stays at rounding level:
measured after 8 steps, at most 7e-8 absolute on weights of magnitude ~0.1 (relative errors are
larger only on entries near zero, hence an absolute term). ``rtol=1e-5, atol=1e-6`` leaves a >10x
margin and still catches any real difference (a wrong shard, a missing all-reduce or a wrong loss
scaling moves the weights by >1e-3).
Adam is avoided here on purpose: it divides by sqrt(v) and can blow a rounding difference in a
near-zero gradient entry up to a full ``lr``-sized step, which would test the optimizer, not the
trainer. Between the two ranks the weights must be *bitwise* equal: DDP hands every rank the same
all-reduced gradient bytes.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import _train_helper as helper

ARGS = ["--iters", "8", "--optimizer", "SGD", "--lr", "0.05", "--save-every", "4", "--log-every", "2",
        "--samples", "20", "--no-resume"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(Path(helper.__file__)), "--out", str(out), "--batch", "2", *ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("single")
    return helper.run(["--out", str(out), "--batch", "4", *ARGS]), out


def _final(out: Path, rank: int) -> dict:
    return torch.load(out / f"final_rank{rank}.pt", weights_only=True)["model"]


def test_ranks_hold_identical_weights(ddp_run):
    r0, r1 = _final(ddp_run, 0), _final(ddp_run, 1)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)


def test_matches_one_process_with_the_same_global_batch(ddp_run, single_run):
    single, _ = single_run
    ddp = _final(ddp_run, 0)
    for k, v in single["model"].items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6, msg=f"{k} differs")
    assert not torch.equal(ddp["head.weight"], helper.TinySR().state_dict()["head.weight"])  # it trained
    per_rank = [json.loads((ddp_run / f"losses_rank{r}.json").read_text()) for r in range(2)]
    mean = [(a + b) / 2 for a, b in zip(*per_rank)]
    assert mean == pytest.approx(single["losses"], rel=1e-5)


def test_rank0_alone_writes_logs_and_checkpoints(ddp_run, single_run):
    _, single_out = single_run
    rows = [json.loads(x) for x in (ddp_run / "log.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (single_out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [2, 4, 6, 8]
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in ref], rel=1e-5)  # all-reduced
    state = torch.load(ddp_run / "checkpoints" / "iter_00000008.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # every rank's RNG, for exact resume
    assert not list(ddp_run.glob("**/*.tmp"))
