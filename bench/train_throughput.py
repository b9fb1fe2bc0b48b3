"""Training iterations/s of LEDSR across precision x memory format x compile, Trainer vs a hand-written loop.

Why: issue 14 asks what mixed precision, channels-last and ``torch.compile`` buy on the paper models
(LEDSR F64R16 and F256R16, x4, batch 16 of 48x48 LR patches in 0..255, Adam, L1), and the Trainer's
hooks, sampler and logging must cost nothing next to the loop a user would write (issue 3). Every
setting runs twice, as ``graphprune.train.Trainer.run_step`` and as a hand-written loop with the same
settings (DataLoader, autocast around forward + loss, ``.to(memory_format=...)``, ``torch.compile``),
all in one process. Every contender is built and warmed up first (the compile contenders compile
then; that time is reported apart), then timed in rounds of ``--iters`` steps; the order of the
settings rotates every round and each setting's two loops run back to back, so drifting machine load
hits every contender alike. Reported: the median seconds per step as it/s, the Trainer/hand ratio
(median of per-round ratios), each setting's speed relative to fp32 NCHW eager, and the first step
of each loop (a compile contender's first step compiles; the second loop of a setting finds most of
the compiled code in inductor's cache, as would a second run). One model size at a time is alive
(memory: F256R16 holds ~0.3 GB of weights and Adam state per contender).

    OMP_WAIT_POLICY=PASSIVE python bench/train_throughput.py                      # the matrix on this CPU
    python bench/train_throughput.py --models f64 --iters 3 --repeats 5           # one model
    python bench/train_throughput.py --device cuda --amps none,bf16,fp16 --iters 20 --repeats 5   # a GPU
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

import sr_models  # noqa: E402
from bench._common import machine_info, markdown_table  # noqa: E402
from graphprune.train import Trainer, TrainConfig  # noqa: E402
from graphprune.train.precision import AMP_MODES  # noqa: E402

__all__ = ["Setting", "PatchData", "hand_step", "trainer_step", "model_size", "main"]


def model_size(name: str) -> tuple[int, int]:
    """``f64`` -> (64, 16): LEDSR width and residual blocks (``f32r4`` is the demo's model).

    >>> model_size("f256"), model_size("f32r4")
    ((256, 16), (32, 4))
    """
    m = re.fullmatch(r"f(\d+)(?:r(\d+))?", name.lower())
    if m is None:
        raise SystemExit(f"--models: {name!r} is not f<width>[r<blocks>], e.g. f64, f256, f32r4")
    return int(m.group(1)), int(m.group(2) or 16)


@dataclass(frozen=True)
class Setting:
    amp: str            # none | bf16 | fp16
    channels_last: bool
    compile: bool

    def label(self) -> str:
        return (f"{'fp32' if self.amp == 'none' else self.amp} {'channels-last' if self.channels_last else 'NCHW'} "
                f"{'compile' if self.compile else 'eager'}")


class PatchData(Dataset):
    """In-memory random 0..255 patches (LR 48x48, HR x4): both loops measure training, not decoding."""

    def __init__(self, n: int, patch: int, scale: int = 4):
        g = torch.Generator().manual_seed(0)
        self.hr = (torch.rand(n, 3, patch * scale, patch * scale, generator=g) * 255).round()
        self.lr = nn.functional.avg_pool2d(self.hr, scale)
        self.rgb_range = 255.0

    def __len__(self):
        return len(self.hr)

    def __getitem__(self, i):
        return {"lr": self.lr[i], "hr": self.hr[i], "name": str(i)}


def hand_step(model: nn.Module, data: Dataset, s: Setting, batch: int, device: torch.device):
    """The loop a user writes with the same settings; returns a function running one step."""
    model.to(device)
    if s.channels_last:
        model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if s.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if s.amp == "fp16" else None
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(0))
    batches = itertools.chain.from_iterable(iter(loader) for _ in itertools.count())
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format

    def step():
        b = next(batches)
        lr = b["lr"].to(device, non_blocking=True).contiguous(memory_format=fmt)
        hr = b["hr"].to(device, non_blocking=True).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=AMP_MODES[s.amp], enabled=s.amp != "none"):
            loss = nn.functional.l1_loss(fwd(lr).float(), hr)
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    return step


def trainer_step(model: nn.Module, data: Dataset, s: Setting, batch: int, device: torch.device, out: str):
    """graphprune's Trainer with its default hooks (logger, checkpoint: never due); one ``run_step``."""
    cfg = TrainConfig(total_iters=10**9, batch_size=batch, out_dir=out, rgb_range=255.0, device=str(device),
                      optimizer={"type": "Adam", "lr": 1e-4}, log_every=10**9, save_every=10**9,
                      resume=False, progress_bar=False, amp=s.amp, channels_last=s.channels_last, compile=s.compile)
    t = Trainer(model, data, cfg)

    def step():
        t.run_step()
        t.iter += 1
    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, n: int, device: torch.device) -> float:
    """Seconds per step over ``n`` steps."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / n


def measure(size: tuple[int, int], settings: list[Setting], a: argparse.Namespace, device: torch.device) -> list[dict]:
    """Build and warm every contender of one model size, then time them in rotating rounds."""
    feats, blocks = size
    torch.manual_seed(0)
    init = sr_models.create_model("ledsr_f256r16_x4", n_feats=feats, n_resblocks=blocks).state_dict()
    data = PatchData(4 * a.batch, a.patch)
    tmp = tempfile.mkdtemp()
    steps, warm = {}, {}
    for i, s in enumerate(settings):
        for loop in ("hand", "trainer"):
            model = sr_models.create_model("ledsr_f256r16_x4", n_feats=feats, n_resblocks=blocks)
            model.load_state_dict(init)
            fn = (hand_step(model, data, s, a.batch, device) if loop == "hand"
                  else trainer_step(model, data, s, a.batch, device, f"{tmp}/{i}"))
            warm[s, loop] = _timed(fn, 1, device)  # the first step: compilation, oneDNN primitives
            for _ in range(a.warmup):
                fn()
            steps[s, loop] = fn
            print(f"  F{feats}R{blocks} {s.label():30s} {loop:7s} first step {warm[s, loop]:.1f} s", flush=True)
    times = {k: [] for k in steps}
    for r in range(a.repeats):
        order = settings[r % len(settings):] + settings[:r % len(settings)]
        for s in order:
            for loop in (("hand", "trainer") if r % 2 == 0 else ("trainer", "hand")):
                times[s, loop].append(_timed(steps[s, loop], a.iters, device))
        print(f"  F{feats}R{blocks} round {r + 1}/{a.repeats} done (load {os.getloadavg()[0]:.1f})", flush=True)
    base = statistics.median(times[settings[0], "trainer"])
    return [{"model": f"F{feats}R{blocks}", "setting": s,
             "hand": 1 / statistics.median(times[s, "hand"]), "trainer": 1 / statistics.median(times[s, "trainer"]),
             "pair": statistics.median(h / t for h, t in zip(times[s, "hand"], times[s, "trainer"])),
             "vs_base": base / statistics.median(times[s, "trainer"]),
             "first_s": (warm[s, "hand"], warm[s, "trainer"])} for s in settings]


def table(rows: list[dict]) -> str:
    return markdown_table(
        ["model", "precision", "format", "mode", "hand it/s", "Trainer it/s", "Trainer/hand (paired)",
         "Trainer vs fp32 NCHW eager", "first step (s): hand / Trainer"],
        [[r["model"], "fp32" if r["setting"].amp == "none" else r["setting"].amp,
          "channels-last" if r["setting"].channels_last else "NCHW", "compile" if r["setting"].compile else "eager",
          f"{r['hand']:.3f}", f"{r['trainer']:.3f}", f"{r['pair']:.3f}", f"**{r['vs_base']:.2f}**",
          "{:.1f} / {:.1f}".format(*r["first_s"])] for r in rows])


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="f64,f256", help="comma list of f<width>[r<blocks>] (LEDSR; 16 blocks "
                   "unless given): f64, f256, f32r4 (the demo's)")
    p.add_argument("--amps", default="none,bf16", help="comma list of none (fp32), bf16, fp16")
    p.add_argument("--formats", default="nchw,cl", help="comma list of nchw, cl (channels-last)")
    p.add_argument("--modes", default="eager,compile", help="comma list of eager, compile")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48, help="LR patch side (HR = 4x)")
    p.add_argument("--iters", type=int, default=2, help="timed steps per contender and round")
    p.add_argument("--repeats", type=int, default=3, help="rounds")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps after the first one")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice, all cores)")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def main(argv=None) -> None:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch._dynamo.config.recompile_limit = 64  # one forward code object, compiled once per contender
    device = torch.device(a.device)
    settings = [Setting(amp, fmt == "cl", mode == "compile") for amp in a.amps.split(",")
                for fmt in a.formats.split(",") for mode in a.modes.split(",")]
    info = machine_info()
    print(f"command: OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} {info['command']}")
    print(f"machine: {info['cpu']} x{info['nproc']}, torch {info['torch']}, {torch.get_num_threads()} threads, "
          f"device {device}, {info['date']}, load average at start {os.getloadavg()[0]:.1f}")
    print(f"LEDSR x4, batch {a.batch} x 3x{a.patch}x{a.patch} (0..255), Adam 1e-4, L1; "
          f"{a.repeats} rounds x {a.iters} steps per contender", flush=True)
    rows = [r for m in a.models.split(",") for r in measure(model_size(m), settings, a, device)]
    print(f"load average at end {os.getloadavg()[0]:.1f}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
