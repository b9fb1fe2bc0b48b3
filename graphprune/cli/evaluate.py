"""``graphprune evaluate``: models on the SR benchmarks in the papers' convention, side by side.

    graphprune evaluate --model edsr_baseline_x4 --model runs/x/model.safetensors \\
        --sets Set5,Set14,B100,Urban100,Manga109 --root datasets/benchmark --scale 4
    graphprune evaluate --model runs/x/model.safetensors --hr photos/ --scale 4 --json

Sets: the EDSR/BasicSR layout (``<root>/[benchmark/]<Set>/HR`` with ``LR_bicubic/X<s>``; without
the LR folder, LR is MATLAB bicubic of the mod-cropped HR, as the published sets were made), or
any HR folder (``--hr``, optionally ``--lr``). Scores are the papers': PSNR and SSIM on Y (BT.601),
``scale`` pixels cropped, outputs quantized to 8 bits, averaged per image
(:func:`graphprune.sr.evaluate.score_images`, the same code the compress pipeline evaluates with).
The table gives Params and Mult-Adds (1280x720 output, :func:`graphprune.flops.sr_mult_adds`);
``--csv`` writes every image's scores, ``--save-sr`` the SR images, ``--json`` prints one object:
``{"scale", "models": {label: {"params", "mult_adds", "sets": {set: {"psnr", "ssim"}}}}, "bicubic"}``.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .args import Parser, UsageError, add_model_arguments, positive_int, refuse_existing, resolve_device, run

__all__ = ["main", "build_parser", "table", "slug"]

_PROG = "graphprune evaluate"


def build_parser(prog: str = _PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__.splitlines()[0].strip("`"))
    add_model_arguments(p, many=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sets", help="comma-separated benchmark names under --root, e.g. Set5,Set14,B100")
    src.add_argument("--hr", metavar="DIR", help="any folder of HR images")
    p.add_argument("--root", default="datasets/benchmark", help="folder holding the sets (default datasets/benchmark)")
    p.add_argument("--lr", metavar="DIR", help="with --hr: the LR images (<stem>x<scale>.<ext>); default bicubic")
    p.add_argument("--scale", type=int, required=True, choices=(2, 3, 4), help="upscaling factor of the sets")
    p.add_argument("--tile", type=positive_int, metavar="N", help="LR tile side for large images (default: whole)")
    p.add_argument("--overlap", type=int, default=32, metavar="N", help="LR context around each tile (default 32)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--rgb-range", type=float, choices=(1.0, 255.0), help="pixel range of every model "
                   "(default: each model's own; 1 for spandrel and unknown models)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="per-image scores: model, set, image, psnr, ssim")
    p.add_argument("--save-sr", type=Path, metavar="DIR", help="also save the SR images: DIR/<model>/<set>/<image>.png")
    p.add_argument("--no-bicubic", action="store_true", help="leave out the bicubic row")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file or SR images")
    return p


@dataclass
class Row:
    """One model of the table: its sizes and, per set, averages and per-image scores."""

    label: str
    params: int | None = None
    mult_adds: int | None = None
    sets: dict[str, dict[str, float]] = field(default_factory=dict)
    images: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)


def slug(label: str) -> str:
    """A folder name for a model label: a file's stem, or the name with path-unsafe characters replaced.

    >>> slug("runs/srpn_lite/model.safetensors"), slug("timm:resnet18"), slug("mynet:factory")
    ('srpn_lite_model', 'timm_resnet18', 'mynet_factory')
    """
    p = Path(label)
    text = f"{p.parent.name}_{p.stem}" if p.suffix and p.parent.name else (p.stem if p.suffix else label)
    return re.sub(r"[^\w.-]+", "_", text)


def _datasets(args, rgb_range: float) -> dict:
    from ..sr.data import PairedImageDataset, benchmark_set

    kw = dict(train=False, rgb_range=rgb_range)
    if args.hr:
        return {Path(args.hr).name or "hr": PairedImageDataset.from_folders(args.hr, args.lr, scale=args.scale, **kw)}
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    if not names:
        raise UsageError(f"--sets {args.sets!r}: name at least one set, e.g. --sets Set5,Set14")
    return {n: benchmark_set(args.root, n, args.scale, **kw) for n in names}


def _sizes(loaded, scale: int) -> tuple[int, int]:
    from ..flops import sr_mult_adds

    params = sum(p.numel() for p in loaded.model.parameters())
    return params, int(sr_mult_adds(loaded.model, scale, leaf_modules=loaded.leaf_modules))


def _saver(root: Path | None, label: str, set_name: str, rgb_range: float):
    if root is None:
        return None
    from .upscale import save_png

    return lambda name, sr: save_png(sr, root / slug(label) / set_name / f"{name}.png", rgb_range)


def _check_outputs(args, models, sets: dict) -> None:
    if args.csv is not None:
        refuse_existing([args.csv], args.overwrite)
    if args.save_sr is not None:
        refuse_existing([args.save_sr / slug(m.label) / s for m in models for s in sets], args.overwrite)
    slugs = [slug(m.label) for m in models]
    if len(set(slugs)) < len(slugs) and args.save_sr is not None:
        raise UsageError(f"two --model give the same folder under --save-sr ({slugs}); evaluate them separately")


def _run(args) -> int:
    from ..sr.evaluate import bicubic_scores, score_images
    from .model import load_model

    if len(set(args.model)) < len(args.model):
        raise UsageError(f"--model given twice: {args.model}")
    if args.set and len(args.model) > 1:
        raise UsageError("--set with several --model is ambiguous; evaluate a model with --set on its own")
    device = resolve_device(args.device)
    models = [load_model(m, args.set) for m in args.model]
    for m in models:
        m.require_sr(args.scale)
    ranges = {m.label: args.rgb_range or m.rgb_range for m in models}
    data = {r: _datasets(args, r) for r in sorted(set(ranges.values()))}
    _check_outputs(args, models, next(iter(data.values())))
    kw = dict(scale=args.scale, tile={"size": args.tile, "overlap": args.overlap} if args.tile else None,
              device=device)
    rows = []
    for m in models:
        row = Row(m.label, *_sizes(m, args.scale))
        net = m.model.to(device)
        for name, ds in data[ranges[m.label]].items():
            row.images[name] = score_images(net, ds, rgb_range=ranges[m.label], **kw,
                                            on_output=_saver(args.save_sr, m.label, name, ranges[m.label]))
            row.sets[name] = {k: sum(r[k] for _, r in row.images[name]) / len(row.images[name])
                              for k in row.images[name][0][1]}
        rows.append(row)
    first = next(iter(data))
    bicubic = None if args.no_bicubic else bicubic_scores(data[first], scale=args.scale, rgb_range=first)
    if args.csv is not None:
        _write_csv(args.csv, rows)
    print(json.dumps(_as_json(args.scale, rows, bicubic), indent=1) if args.json else table(args.scale, rows, bicubic))
    return 0


def _as_json(scale: int, rows: list[Row], bicubic) -> dict:
    return {"scale": scale, "convention": "PSNR/SSIM on Y (BT.601), border = scale cropped, 8-bit outputs, "
            "averaged per image; Mult-Adds for a 1280x720 output",
            "models": {r.label: {"params": r.params, "mult_adds": r.mult_adds, "sets": r.sets} for r in rows},
            "bicubic": bicubic}


def table(scale: int, rows: list[Row], bicubic: dict | None = None) -> str:
    """The papers' table: one row per model, Params, Mult-Adds, then PSNR / SSIM per set.

    >>> print(table(4, [Row("m", 623682, 35_800_000_000, {"Set5": {"psnr": 31.9, "ssim": 0.8901}})],
    ...             {"Set5": {"psnr": 28.42, "ssim": 0.8104}}))
    x4       Params  Mult-Adds  Set5
    Bicubic       -          -  28.42 / 0.8104
    m          623K      35.8G  31.90 / 0.8901
    PSNR (dB) / SSIM on Y, 4-pixel border cropped, 8-bit outputs; Mult-Adds for a 1280x720 output
    """
    from ..compress.report import short_count

    sets = list((rows[0].sets if rows else bicubic) or {})
    lines = [["Bicubic", "-", "-", *(_score(bicubic[s]) for s in sets)]] if bicubic else []
    lines += [[r.label, short_count(r.params), f"{r.mult_adds / 1e9:.1f}G", *(_score(r.sets[s]) for s in sets)]
              for r in rows]
    head = [f"x{scale}", "Params", "Mult-Adds", *sets]
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(str(c).ljust(w) if i in (0,) or i > 2 else str(c).rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    note = (f"PSNR (dB) / SSIM on Y, {scale}-pixel border cropped, 8-bit outputs; Mult-Adds for a 1280x720 output")
    return "\n".join([fmt(head), *map(fmt, lines), note])


def _score(s: dict) -> str:
    return " / ".join(f"{s[k]:.2f}" if k == "psnr" else f"{s[k]:.4f}" for k in ("psnr", "ssim") if k in s)


def _write_csv(path: Path, rows: list[Row]) -> None:
    from ..files import atomic_write

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "set", "image", "psnr", "ssim"])
    for r in rows:
        for set_name, images in r.images.items():
            for name, s in images:
                w.writerow([r.label, set_name, name, f"{s.get('psnr', float('nan')):.4f}", f"{s.get('ssim', float('nan')):.6f}"])
    atomic_write(path, buf.getvalue())


def main(argv: list[str] | None = None, prog: str = _PROG) -> int:
    return run(prog, _run, build_parser(prog).parse_args(argv))
