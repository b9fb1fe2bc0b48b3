"""CPU inference time of dense vs pruned LEDSR (256 -> 49 channels, ASSLN width) on a 320x180 input.

    OMP_WAIT_POLICY=PASSIVE python bench/latency.py [--scale 4] [--ratio 0.80859375] [--repeats 3] [--threads 1]

A 320x180 LR input at x4 is the SR papers' 1280x720 output, so the Mult-Adds ratio printed is the
one of the paper tables. Target: speed-up >= 0.8 x the Mult-Adds reduction. Dense and pruned runs
alternate; medians are quoted. Both memory formats are measured: oneDNN's convolutions are much
faster in channels-last for narrow layers (49 channels), so contiguous NCHW understates what pruning
buys on a CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine_info, median  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--ratio", type=float, default=0.80859375, help="207/256: 256 -> 49 channels")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--width", type=int, default=320)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    import graphprune as gp
    import sr_models

    dense = sr_models.create_model(f"ledsr_f256r16_x{args.scale}").eval()
    pruned, _ = gp.prune(dense, torch.rand(1, 3, 48, 48) * 255, args.ratio, ignore=["*mean*", "*tail*"])
    pruned.eval()
    x = torch.rand(1, 3, args.height, args.width) * 255
    macs = {k: gp.sr_mult_adds(m, args.scale, hr=(args.height * args.scale, args.width * args.scale))
            for k, m in (("dense", dense), ("pruned", pruned))}
    reduction = macs["dense"] / macs["pruned"]
    info = machine_info()
    print(f"# latency: LEDSR F256R16 x{args.scale} vs pruned to {pruned.head[0].out_channels} channels, "
          f"input {args.width}x{args.height}, {args.threads} thread(s), median of {args.repeats}")
    print(f"# machine: {info['cpu']}, {info['nproc']} cores, torch {info['torch']}, {info['date']}")
    print(f"# Mult-Adds: dense {macs['dense'] / 1e9:.1f} G, pruned {macs['pruned'] / 1e9:.1f} G "
          f"(reduction x{reduction:.1f})")
    for fmt in (torch.contiguous_format, torch.channels_last):
        models = {k: m.to(memory_format=fmt) for k, m in (("dense", dense), ("pruned", pruned))}
        xf = x.contiguous(memory_format=fmt)
        times = {k: [] for k in models}
        with torch.inference_mode():
            for m in models.values():  # warm-up (oneDNN primitive creation)
                m(xf[..., :32, :32])
            for _ in range(args.repeats):
                for name, m in models.items():
                    t0 = time.perf_counter()
                    m(xf)
                    times[name].append(time.perf_counter() - t0)
        td, tp = median(times["dense"]), median(times["pruned"])
        name = "channels_last" if fmt is torch.channels_last else "contiguous (NCHW)"
        print(f"{name:18s} dense {td:7.3f} s  pruned {tp:6.3f} s  speed-up x{td / tp:.1f}: "
              f"{td / tp / reduction:.2f} of the Mult-Adds reduction (target >= 0.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
