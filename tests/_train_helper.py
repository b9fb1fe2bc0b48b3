"""A tiny, deterministic training run for the trainer tests (in-process, subprocess, torchrun).

Why a script: the resume test must SIGKILL a real process, and the DDP test must run under
``torchrun``; both then compare weights with an uninterrupted run of this same function.

    python tests/_train_helper.py --out DIR [--iters 40 --save-every 5 ...]
    torchrun --nproc_per_node=2 tests/_train_helper.py --out DIR --batch 2

Writes ``DIR/final_rank{r}.pt`` (model state dict, plus EMA) and ``DIR/losses_rank{r}.json``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from graphprune.train import HookBase, Trainer, TrainConfig  # noqa: E402
from graphprune.train.distributed import destroy_distributed, get_rank, init_distributed  # noqa: E402

__all__ = ["SyntheticSR", "TinySR", "run", "parse_args"]


class SyntheticSR(Dataset):
    """Random HR patches (12x12 LR, x2) whose content is a pure function of (seed, epoch, index)."""

    def __init__(self, n: int = 24, seed: int = 0, lr_size: int = 12, scale: int = 2,
                 rgb_range: float = 1.0, train: bool = True):
        self.n, self.seed, self.lr_size, self.scale = n, seed, lr_size, scale
        self.rgb_range, self.train, self.epoch = rgb_range, train, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        epoch = self.epoch if self.train else 0
        g = torch.Generator().manual_seed((self.seed * 1009 + epoch) * 100_003 + index)
        s = self.lr_size * self.scale
        hr = torch.rand(3, s, s, generator=g)
        hr = (hr * 255).round() / 255 * self.rgb_range
        lr = nn.functional.avg_pool2d(hr[None], self.scale)[0]
        return {"lr": lr, "hr": hr, "name": f"img{index}"}


class TinySR(nn.Module):
    """Three convs and a pixel shuffle: the smallest thing that is still an SR network."""

    def __init__(self, ch: int = 8, scale: int = 2):
        super().__init__()
        self.head = nn.Conv2d(3, ch, 3, padding=1)
        self.body = nn.Conv2d(ch, ch, 3, padding=1)
        self.tail = nn.Conv2d(ch, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        h = torch.relu(self.head(x))
        return self.up(self.tail(h + torch.relu(self.body(h))))


class _Record(HookBase):
    """Records the per-step loss; optionally sleeps so a test can kill the run mid-way."""

    name = "record"

    def __init__(self, sleep: float, started: Path | None):
        self.sleep, self.started, self.losses = sleep, started, []

    def before_train(self):
        if self.started is not None:
            self.started.touch()

    def after_step(self):
        self.losses.append(float(self.trainer.loss))
        if self.sleep:
            time.sleep(self.sleep)


def _die_during_nth_save(n: int) -> None:
    """Fault injection: the n-th checkpoint write stops half-way with SIGKILL (a torn .tmp)."""
    real_save, count = torch.save, [0]

    def save(obj, f, *a, **k):
        name = os.path.basename(getattr(f, "name", f))  # a path (atomic_write) or a file object
        if name.startswith("iter_") and name.endswith(".tmp"):
            count[0] += 1
            if count[0] == n:
                buf = io.BytesIO()
                real_save(obj, buf, *a, **k)
                with open(f, "wb") as out:
                    out.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                    out.flush()
                    os.fsync(out.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)

    torch.save = save


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--save-every", type=int, default=5)
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--ema", type=float, default=None)
    p.add_argument("--optimizer", default="Adam")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--amp", default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--die-in-save", type=int, default=0)
    p.add_argument("--no-resume", action="store_true")
    return p.parse_args(argv)


def run(argv=None) -> dict:
    """Train per the arguments; return ``{"model": state_dict, "ema": ..., "losses": [...]}``."""
    threads, determ = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)  # bitwise comparisons need the same thread count in every process
    try:
        return _run(parse_args(argv))
    finally:  # leave an in-process caller (pytest) as it was
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(determ)


def _run(a: argparse.Namespace) -> dict:
    if a.die_in_save:
        _die_during_nth_save(a.die_in_save)
    torch.manual_seed(0)
    model = TinySR()
    opt = {"type": a.optimizer, "lr": a.lr}
    if a.optimizer.lower() == "sgd":
        opt["momentum"] = 0.9
    cfg = TrainConfig(total_iters=a.iters, batch_size=a.batch, out_dir=a.out, rgb_range=1.0,
                      optimizer=opt, scheduler={"type": "multistep", "milestones": [a.iters // 2],
                                                "gamma": 0.5},
                      seed=a.seed, num_workers=a.workers, log_every=a.log_every,
                      save_every=a.save_every, val_every=a.val_every, ema=a.ema,
                      resume=not a.no_resume, deterministic=True, progress_bar=False,
                      amp=a.amp, channels_last=a.channels_last, device=a.device)
    record = _Record(a.sleep, Path(a.out) / "started")
    trainer = Trainer(model, SyntheticSR(a.samples, seed=a.seed), cfg, hooks=[record],
                      val_data=SyntheticSR(4, seed=99, train=False))
    trainer.train()
    ema = trainer.get_hook("ema")
    return {"model": trainer.module.state_dict(), "losses": record.losses,
            "ema": ema.averaged_model().state_dict() if ema is not None else None}


def main() -> None:
    init_distributed()
    result = run()
    out, r = Path(parse_args().out), get_rank()
    torch.save({"model": result["model"], "ema": result["ema"]}, out / f"final_rank{r}.pt")
    (out / f"losses_rank{r}.json").write_text(json.dumps(result["losses"]))
    destroy_distributed()


if __name__ == "__main__":
    main()
