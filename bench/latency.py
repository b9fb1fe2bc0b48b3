"""Speed-up vs Mult-Adds cut across widths: dense vs pruned zoo SR nets in torch CPU and onnxruntime CPU.

    OMP_WAIT_POLICY=PASSIVE python bench/latency.py --model ledsr_f256r16_x4 --widths 45,48,49,56,64
    OMP_WAIT_POLICY=PASSIVE python bench/latency.py --model edsr_baseline_x4 --widths 29,32 --size 160x90
    OMP_WAIT_POLICY=PASSIVE python bench/latency.py ... --runtimes torch-nchw,torch-cl,ort --repeats 5 --json out.jsonl

A width is the kept channel count of the model's widest prunable group (LEDSR's 256-channel residual
stream); every prunable group loses the same fraction ``1 - width/N`` (the papers' uniform rule,
``ignore: ["*mean*", "*tail*"]``). A 320x180 LR input at x4 is the papers' 1280x720 output, so the
Mult-Adds cut is the one of their tables. Runtimes: ``torch-nchw`` (contiguous), ``torch-cl``
(channels-last) and ``ort`` (onnxruntime CPU, the file :func:`graphprune.export.export_onnx` writes at
that size). One thread, ``OMP_WAIT_POLICY=PASSIVE``; in every repeat the dense model and each pruned
width run once per runtime, interleaved, so a load spike on the shared machine hits all of them; medians.
Times are the process's CPU time (``time.process_time``; with one thread it is the compute time, and
the time the shared machine's other jobs hold the core is left out; ``--wall`` for wall-clock).
The figure of merit is ``ratio = speed-up / Mult-Adds cut`` (1.0: time falls exactly as Mult-Adds do).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine_info, markdown_table, median, set_single_thread  # noqa: E402

RUNTIMES = ("torch-nchw", "torch-cl", "ort")
IGNORE = ["*mean*", "*tail*"]


def variants(name: str, widths: list[int], example) -> dict[str, object]:
    """``{"dense": model, "45": pruned, ...}``: the zoo model and one uniform plan per width."""
    import graphprune as gp
    import sr_models

    dense = sr_models.create_model(name).eval()
    graph = gp.analyze(dense, example, ignore=IGNORE)
    widest = max(g.size for g in graph.prunable_groups)
    out = {"dense": dense}
    for w in widths:
        out[str(w)] = gp.apply(dense, gp.plan(graph, 1 - w / widest)).eval()
    return out


def runners(models: dict, x, runtimes, tmp: Path) -> dict[tuple[str, str], object]:
    """One zero-argument callable per (variant, runtime), warmed up."""
    import torch

    from graphprune.export import export_onnx, ort_session

    calls = {}
    for label, m in models.items():
        if "torch-nchw" in runtimes:
            calls[label, "torch-nchw"] = lambda m=m: m(x)
        if "torch-cl" in runtimes:
            mc, xc = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
            calls[label, "torch-cl"] = lambda mc=mc, xc=xc: mc(xc)
        if "ort" in runtimes:
            path = export_onnx(m, x, tmp / f"{label}.onnx", dynamic=False, check=False).path
            s, feed = ort_session(path), {"input": x.numpy()}
            calls[label, "ort"] = lambda s=s, feed=feed: s.run(None, feed)
        if "torch-cl" in runtimes:
            m.to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        for fn in calls.values():
            fn()  # oneDNN primitive creation, ORT's first-run allocations
    return calls


def measure(calls: dict, repeats: int, clock=time.process_time) -> dict[tuple[str, str], float]:
    import torch

    times = {k: [] for k in calls}
    with torch.inference_mode():
        for _ in range(repeats):
            for k, fn in calls.items():
                t0 = clock()
                fn()
                times[k].append(clock() - t0)
    return {k: median(v) for k, v in times.items()}


def rows(name: str, models: dict, times: dict, macs: dict, runtimes) -> list[dict]:
    out = []
    for label in (k for k in models if k != "dense"):
        cut = macs["dense"] / macs[label]
        for rt in runtimes:
            speed = times["dense", rt] / times[label, rt]
            out.append({"model": name, "width": int(label), "runtime": rt, "dense_s": times["dense", rt],
                        "pruned_s": times[label, rt], "speedup": speed, "macs_cut": cut, "ratio": speed / cut,
                        "pruned_gmacs": macs[label] / 1e9, "dense_gmacs": macs["dense"] / 1e9})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ledsr_f256r16_x4", help="sr_models name")
    ap.add_argument("--widths", default="45,48,49,56,64", help="kept channels of the widest group, comma-separated")
    ap.add_argument("--size", default="320x180", help="LR input WxH (320x180 at x4 = the papers' 1280x720)")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of the process's CPU time")
    ap.add_argument("--json", type=Path, help="append one JSON line per row here")
    args = ap.parse_args(argv)
    set_single_thread()
    import torch

    import graphprune as gp

    w, h = (int(v) for v in args.size.lower().split("x"))
    runtimes = args.runtimes.split(",")
    x = torch.rand(1, 3, h, w) * 255
    models = variants(args.model, [int(v) for v in args.widths.split(",")], x[..., :48, :48])
    scale = models["dense"].scale
    macs = {k: gp.sr_mult_adds(m, scale, hr=(h * scale, w * scale)) for k, m in models.items()}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        times = measure(runners(models, x, runtimes, Path(tmp)), args.repeats,
                        time.perf_counter if args.wall else time.process_time)
    load.append(os.getloadavg()[0])
    table = rows(args.model, models, times, macs, runtimes)
    info = machine_info()
    print(f"# {args.model}, LR {w}x{h} (x{scale}), 1 thread, median of {args.repeats} "
          f"({'wall-clock' if args.wall else 'CPU'} time), dense "
          f"{macs['dense'] / 1e9:.1f} G Mult-Adds; {info['cpu']}, {info['nproc']} cores, torch {info['torch']}, "
          f"{info['date']}, 1-min load {load[0]:.1f} -> {load[1]:.1f}")
    print(markdown_table(
        ["width", "runtime", "dense", "pruned", "speed-up", "Mult-Adds cut", "ratio"],
        [[r["width"], r["runtime"], f"{r['dense_s']:.3f} s", f"{r['pruned_s']:.3f} s", f"×{r['speedup']:.1f}",
          f"×{r['macs_cut']:.1f}", f"**{r['ratio']:.2f}**"] for r in table]))
    if args.json:
        with open(args.json, "a") as f:
            for r in table:
                f.write(json.dumps({**r, "size": [w, h], "repeats": args.repeats, "date": info["date"],
                                    "load": load}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
