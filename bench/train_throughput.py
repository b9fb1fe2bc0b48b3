"""Iterations/s of graphprune's Trainer vs a minimal hand-written PyTorch loop, in one run.

Why: the trainer's hooks, sampler, logging and checkpointing must cost under 5% (target ratio >= 0.95).
Same model (EDSR-like, 8 residual blocks, 32 channels, x2), same batch (16 LR patches of 48x48,
values 0..255), same in-memory data, same optimizer (Adam 1e-4) and L1 loss, same starting
weights. Each repeat times a whole run end to end (build the optimizer/loader, train N iterations;
for the Trainer also its logs and the final atomic checkpoint), and the two contenders alternate so
drifting machine load hits both alike. Medians are reported, and the median of the per-pair ratios
(each pair ran back to back, so it shares the machine's load at that moment). One torch thread by
default: on a small shared machine two threads fight other processes and the noise swamps a 5% effect.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/train_throughput.py [--iters 20 --repeats 5 --threads 1]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from graphprune.train import Trainer, TrainConfig  # noqa: E402

__all__ = ["EDSRLike", "PatchData", "hand_loop", "trainer_loop", "main"]


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.c2(torch.relu(self.c1(x)))


class EDSRLike(nn.Module):
    """EDSR-baseline shape: head conv, residual blocks, body conv + skip, conv + pixel shuffle."""

    def __init__(self, blocks: int = 8, ch: int = 32, scale: int = 2):
        super().__init__()
        self.head = nn.Conv2d(3, ch, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(ch) for _ in range(blocks)], nn.Conv2d(ch, ch, 3, padding=1))
        self.tail = nn.Sequential(nn.Conv2d(ch, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        h = self.head(x)
        return self.tail(h + self.body(h))


class PatchData(Dataset):
    """In-memory random patches (0..255), so both loops measure training, not image decoding."""

    def __init__(self, n: int = 64, lr_size: int = 48, scale: int = 2):
        g = torch.Generator().manual_seed(0)
        self.hr = (torch.rand(n, 3, lr_size * scale, lr_size * scale, generator=g) * 255).round()
        self.lr = nn.functional.avg_pool2d(self.hr, scale)
        self.rgb_range = 255.0

    def __len__(self):
        return len(self.hr)

    def __getitem__(self, i):
        return {"lr": self.lr[i], "hr": self.hr[i], "name": str(i)}


def hand_loop(model: nn.Module, data: Dataset, iters: int, batch: int) -> float:
    """The minimal loop a user would write; returns iterations/s."""
    t0 = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    it, done = iter(loader), 0
    while done < iters:
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        loss = nn.functional.l1_loss(model(b["lr"]), b["hr"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done += 1
    return iters / (time.perf_counter() - t0)


def trainer_loop(model: nn.Module, data: Dataset, iters: int, batch: int, out_dir: str) -> float:
    """The Trainer with its default hooks (logger, checkpoint); returns iterations/s."""
    t0 = time.perf_counter()
    cfg = TrainConfig(total_iters=iters, batch_size=batch, out_dir=out_dir, rgb_range=255.0,
                      optimizer={"type": "Adam", "lr": 1e-4}, log_every=max(iters // 2, 1),
                      save_every=10**9, resume=False, progress_bar=False, device="cpu")
    with contextlib.redirect_stdout(io.StringIO()):
        Trainer(model, data, cfg).train()
    return iters / (time.perf_counter() - t0)


def machine_info() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{platform.platform()} | cpu: {cpu} x{os.cpu_count()} | python {platform.python_version()} | "
            f"torch {torch.__version__} | threads {torch.get_num_threads()} | "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=20, help="iterations per timed run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per contender (alternating)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print("command:", shlex.join([f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}", sys.executable] + sys.argv))
    print("machine:", machine_info())
    print(f"model: EDSR-like 8 blocks x 32 ch, x2 | batch 16 x 3x48x48 (LR) | Adam, L1 | {a.iters} it/run")
    torch.manual_seed(0)
    init, data = EDSRLike(), PatchData()
    hand_loop(copy.deepcopy(init), data, 2, 16)  # warm-up (allocator, oneDNN kernels)
    rates: dict[str, list[float]] = {"hand": [], "trainer": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            order = ("hand", "trainer") if r % 2 == 0 else ("trainer", "hand")
            for name in order:
                model = copy.deepcopy(init)
                rate = (hand_loop(model, data, a.iters, 16) if name == "hand"
                        else trainer_loop(model, data, a.iters, 16, os.path.join(tmp, f"run{r}")))
                rates[name].append(rate)
                print(f"  repeat {r} {name:7s} {rate:.3f} it/s", flush=True)
    hand, trainer = statistics.median(rates["hand"]), statistics.median(rates["trainer"])
    paired = statistics.median(t / h for t, h in zip(rates["trainer"], rates["hand"]))
    print(f"median it/s: hand-written {hand:.3f} | Trainer {trainer:.3f} | ratio of medians "
          f"{trainer / hand:.3f} | median per-pair ratio {paired:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
