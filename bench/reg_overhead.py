"""Cost of the ASSL regularizer per training step (weight norm + alignment loss + penalty) vs none.

    OMP_WAIT_POLICY=PASSIVE python bench/reg_overhead.py [--feats 64] [--blocks 16] [--batch 16] [--patch 48]

Both arms run the same Trainer on the same LEDSR, batch and data; the ASSL arm has the weight-norm
reparametrization of every producer, the SSA loss on the residual group (active: iteration 0 is in
the SSA phase) and a non-zero penalty on every prunable group. Steps alternate between the arms in
blocks; the medians and their ratio are printed. Target: overhead under 5 %.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine_info, median, set_single_thread  # noqa: E402


def make_trainer(args, with_assl: bool, out: str):
    import torch

    import graphprune as gp
    import sr_models
    from graphprune.regularizers import ASSL, PenaltySchedule
    from graphprune.train import Trainer

    class Patches(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            lr = torch.rand(3, args.patch, args.patch, generator=g) * 255
            return {"lr": lr, "hr": torch.rand(3, args.patch * 2, args.patch * 2, generator=g) * 255, "name": str(i)}

    torch.manual_seed(0)
    model = sr_models.create_model("ledsr_f256r16_x2", n_feats=args.feats, n_resblocks=args.blocks)
    hooks = []
    if with_assl:
        graph = gp.analyze(model, torch.rand(1, 3, args.patch, args.patch) * 255, ignore=["*mean*", "*tail*"])
        reg = ASSL(graph, 0.5, schedule=PenaltySchedule(delta=1e-4, every=1, ceiling=10, stabilize=0),
                   ssa_iters=10**9)
        reg.prepare(model)
        reg.start = {k: 0 for k in reg.start}  # penalty active on every group from the first step
        hooks = [reg]
    cfg = dict(total_iters=10**6, batch_size=args.batch, out_dir=out, log_every=10**6, save_every=10**6,
               progress_bar=False, resume=False, optimizer={"type": "Adam", "lr": 1e-4})
    trainer = Trainer(model, Patches(), cfg, hooks=hooks)
    trainer._call("before_train")
    return trainer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feats", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4, help="steps per arm per round")
    args = ap.parse_args(argv)
    set_single_thread()
    tmp = tempfile.mkdtemp()
    arms = {"plain": make_trainer(args, False, f"{tmp}/a"), "assl": make_trainer(args, True, f"{tmp}/b")}
    times = {k: [] for k in arms}
    for t in arms.values():  # warm-up
        for i in range(2):
            t.iter = i
            t.run_step()
    it = 2
    for _ in range(args.rounds):
        for name, t in arms.items():
            for _ in range(args.steps):
                t.iter = it
                t0 = time.perf_counter()
                t.run_step()
                times[name].append(time.perf_counter() - t0)
            it += 1
    plain, assl = median(times["plain"]), median(times["assl"])
    info = machine_info()
    print(f"# reg_overhead: LEDSR F{args.feats}R{args.blocks} x2, batch {args.batch}x{args.patch}^2, "
          f"{args.rounds}x{args.steps} steps per arm, 1 thread")
    print(f"# machine: {info['cpu']}, {info['nproc']} cores, torch {info['torch']}, {info['date']}")
    print(f"plain step   median {plain * 1e3:8.1f} ms")
    print(f"ASSL step    median {assl * 1e3:8.1f} ms   (weight norm + SSA loss + penalty)")
    print(f"overhead     {100 * (assl / plain - 1):+.1f} %   (target < 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
