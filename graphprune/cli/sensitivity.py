"""``graphprune sensitivity``: each group's PSNR drop when it alone is pruned, measured, cached and plotted.

    graphprune sensitivity --model runs/x/dense.safetensors --demo --out sens/
    graphprune sensitivity --model edsr.pth --sets Set5 --root datasets/benchmark --ratios 0.25,0.5,0.75 --max-images 5 --ignore '*tail*' --out sens/

Writes ``sensitivity.json`` (:class:`graphprune.sensitivity.Sensitivity`: the drops per group and ratio,
keyed by the weights, ratios and images, so a second call with the same inputs reads it back) and
``sensitivity.png`` (one line per group) in ``--out``, and prints the table. The JSON is what a recipe's
``prune.allocation: sensitivity`` spends a budget by; the compress run measures it itself (in its run
folder), this command is for looking before choosing. It costs groups x ratios prunes and evaluations.
"""
from __future__ import annotations

from pathlib import Path

from .args import Parser, UsageError, add_model_arguments, parse_shape, run

__all__ = ["main", "build_parser"]

_PROG = "graphprune sensitivity"


def _ratios(text: str) -> list[float]:
    import argparse

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions in (0, 1) like 0.25,0.5,0.75, got {text!r}")
    return values


def build_parser(prog: str = _PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__.splitlines()[0].strip("`"))
    add_model_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--demo", action="store_true", help="the held-out scikit-image photos of the demo")
    src.add_argument("--sets", help="a benchmark name under --root, e.g. Set5 (the first named is used)")
    src.add_argument("--hr", metavar="DIR", help="any folder of HR images")
    p.add_argument("--root", default="datasets/benchmark", help="folder holding the sets (default datasets/benchmark)")
    p.add_argument("--lr", metavar="DIR", help="with --hr: the LR images (<stem>x<scale>.<ext>); default bicubic")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), help="upscaling factor (default: the model's)")
    p.add_argument("--ratios", type=_ratios, default=[0.25, 0.5, 0.75], help="each group alone loses these "
                   "fractions (default 0.25,0.5,0.75)")
    p.add_argument("--max-images", type=int, default=5, help="images of the set it is measured on (default 5)")
    p.add_argument("--ignore", action="append", default=[], metavar="GLOB", help="module globs never pruned "
                   "(repeatable; as a recipe's prune.ignore)")
    p.add_argument("--criterion", default="l1", choices=("l1", "l2", "random"), help="which channels of a group go")
    p.add_argument("--input", type=parse_shape, help="the analysis' example input (default 1x3x48x48)")
    p.add_argument("--rgb-range", type=float, choices=(1.0, 255.0), help="pixel range (default: the model's)")
    p.add_argument("--out", type=Path, required=True, help="folder for sensitivity.json and sensitivity.png")
    return p


def _data(args, scale: int, rgb_range: float):
    from ..sr.data import PairedImageDataset, benchmark_set, demo_dataset

    kw = dict(train=False, rgb_range=rgb_range)
    if args.demo:
        return "demo", demo_dataset("val", scale, **kw)
    if args.hr:
        return Path(args.hr).name or "hr", PairedImageDataset.from_folders(args.hr, args.lr, scale=scale, **kw)
    name = args.sets.split(",")[0].strip()
    if not name:
        raise UsageError(f"--sets {args.sets!r}: name a set, e.g. --sets Set5")
    return name, benchmark_set(args.root, name, scale, **kw)


def _run(args) -> int:
    import torch

    from ..channels import analyze
    from ..sensitivity import sensitivity
    from .model import load_model

    if args.max_images < 1:
        raise UsageError(f"--max-images {args.max_images}: expected at least 1")
    loaded = load_model(args.model, args.set)
    scale = loaded.require_sr(args.scale)
    rgb_range = args.rgb_range or loaded.rgb_range
    name, data = _data(args, scale, rgb_range)
    graph = analyze(loaded.model, torch.zeros(args.input or loaded.example), ignore=args.ignore,
                    leaf_modules=loaded.leaf_modules)
    if not graph.prunable_groups:
        raise UsageError(f"{args.model}: no prunable group (see graphprune visualize); nothing to measure")
    args.out.mkdir(parents=True, exist_ok=True)
    s = sensitivity(loaded.model, data, "psnr", graph=graph, scale=scale, rgb_range=rgb_range, ratios=args.ratios,
                    criterion=args.criterion, max_images=args.max_images, cache=args.out / "sensitivity.json")
    s.plot(args.out / "sensitivity.png", title=f"{args.model}: PSNR drop per group ({name})")
    print(table(s))
    print(f"wrote {args.out / 'sensitivity.json'} and {args.out / 'sensitivity.png'}")
    return 0


def table(s) -> str:
    """Groups by their largest drop, most sensitive first: ``group  size  first module  drop@r ...``."""
    head = ["group", "size", "module", *(f"{r:g}" for r in s.ratios)]
    rows = sorted(s.drops, key=lambda g: -max(s.drops[g]))
    lines = [head] + [[str(g), str(s.sizes[g]), s.names.get(g, "?"), *(f"{d:.3f}" for d in s.drops[g])] for g in rows]
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    title = f"{s.metric} {s.base:.3f} dense; drop (dB) with one group pruned at each ratio"
    return "\n".join([title, *("  ".join(c.rjust(w) if i != 2 else c.ljust(w) for i, (c, w) in
                                         enumerate(zip(row, widths))) for row in lines)])


def main(argv: list[str] | None = None, prog: str = _PROG) -> int:
    return run(prog, _run, build_parser(prog).parse_args(argv))
