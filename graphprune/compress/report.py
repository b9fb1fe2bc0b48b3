"""The compress report: ``report.json`` (machine), ``report.md`` (human) and its pictures.

``report.json`` holds, for the dense and the pruned model, params, fvcore flops, SR Mult-Adds and
PSNR/SSIM per evaluation set, plus the bicubic baseline, the kept channels per group (and the
blocked groups with their reasons), timings per stage, the exact recipe and a reproducibility
block (versions, commit, device, threads, date, seed, command, training file list hash).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write
from .recipe import TRAIN_STAGES

__all__ = ["write_report", "markdown", "stage_curves", "short_count"]

def short_count(n: int) -> str:
    """``623K`` / ``1.37M`` as the SR papers write sizes (thousands truncated); small counts as they are.

    >>> short_count(623682), short_count(19590472), short_count(622)
    ('623K', '19.59M', '622')
    """
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n // 1000}K" if n >= 1000 else str(n)


def stage_curves(out: Path) -> tuple[list[dict], dict[str, float]]:
    """Training logs of all stages on one iteration axis, and where each stage starts."""
    records, phases, offset = [], {}, 0
    for stage in TRAIN_STAGES:
        f = out / stage / "log.jsonl"
        if not f.exists():
            continue
        phases[stage] = offset
        last = 0
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            last = rec.get("iter", last)
            row = {k: v for k, v in rec.items() if not k.startswith("val/")}
            if "val/psnr" in rec:
                row["psnr"] = rec["val/psnr"]
            row["iter"] = offset + last
            row["stage"] = stage
            records.append(row)
        offset += last
    return records, phases


def _fmt_metrics(m: dict | None, name: str) -> str:
    v = (m or {}).get(name) or {}
    psnr, ssim = v.get("psnr"), v.get("ssim")
    return " / ".join(x for x in (f"{psnr:.2f}" if psnr is not None else "", f"{ssim:.4f}" if ssim is not None else "") if x) or "–"


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A markdown table; ``align`` has one letter per column (``l`` or ``r``)."""
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _sizes(result: dict) -> list[str]:
    """Params, FLOPs at the example input, Mult-Adds, and PSNR/SSIM per evaluation set."""
    dense, pruned = result["dense"], result.get("pruned")
    sets = list((dense.get("metrics") or {}).keys())
    shape = "×".join(map(str, dense.get("flops_input") or [])) or "example"
    header = ["model", "params", f"FLOPs ({shape} input)", "Mult-Adds (1280×720)", *(f"{s} PSNR / SSIM" for s in sets)]
    rows = [["bicubic", "–", "–", "–", *(_fmt_metrics(result["bicubic"], s) for s in sets)]] if result.get("bicubic") else []
    for label, c in (("dense", dense), ("pruned", pruned)):
        if c:
            rows.append([label, f"{c['params']:,} ({short_count(c['params'])})", f"{c['flops'] / 1e9:.2f} G",
                         f"{c['mult_adds'] / 1e9:.1f} G", *(_fmt_metrics(c.get("metrics"), s) for s in sets)])
    lines = _table(header, rows, "lrrr" + "r" * len(sets))
    if not sets:
        lines += ["", "No evaluation sets (eval.sets is empty): sizes only."]
    if pruned:
        lines += ["", f"Params ×{dense['params'] / max(pruned['params'], 1):.2f} smaller, "
                      f"Mult-Adds ×{dense['mult_adds'] / max(pruned['mult_adds'], 1):.2f} fewer."]
        before = result.get("pruned_before_finetune") or {}
        if before:
            lines += ["Right after pruning, before fine-tuning: " + ", ".join(
                f"{k} {_fmt_metrics(before, k)}" for k in before) + "."]
    return lines


def _groups(result: dict) -> list[str]:
    groups = result.get("groups", [])
    kept = [g for g in groups if g["prunable"]]
    blocked = [g for g in groups if not g["prunable"]]
    lines = []
    if kept:
        lines += ["", "## Kept channels per prunable group", ""]
        lines += _table(["group", "size", "kept", "producers"],
                        [[str(g["id"]), str(g["size"]), str(g["kept"]), _modules(g)] for g in kept], "rrrl")
    if blocked:
        lines += ["", "## Blocked groups (never pruned) and why", ""]
        lines += _table(["group", "size", "reason", "producers"],
                        [[str(g["id"]), str(g["size"]), g.get("reason") or "–", _modules(g)] for g in blocked], "rrll")
    return lines


def _modules(g: dict) -> str:
    mods = g["modules"]
    return ", ".join(mods[:4]) + (f", … ({len(mods)})" if len(mods) > 4 else "") if mods else "–"


def _reproducibility(result: dict) -> list[str]:
    rep = result.get("reproducibility") or {}
    if not rep:
        return []
    return ["", "## Reproducibility", "", *(f"- {k}: `{v}`" for k, v in rep.items())]


def _how_much(prune: dict) -> str:
    """``, ratio 0.5`` or ``, target params 623K (global allocation)``."""
    target = {k: v for k, v in (prune.get("target") or {}).items() if v is not None and k not in ("device", "input")}
    if not target:
        return f", ratio {prune.get('ratio')}"
    (measure, amount), = target.items()
    return f", target {measure} {amount} ({prune.get('allocation', 'uniform')} allocation)"


def _total_seconds(result: dict) -> float:
    """The stages' seconds summed: known when the report is written (in the last stage), and across resumes."""
    return sum(s["seconds"] for s in result.get("stages", []))


def markdown(result: dict, pictures: dict[str, str]) -> str:
    """The human report."""
    r = result["recipe"]
    prune = r.get("prune") or {}
    model = r["model"].get("name") or f"spandrel checkpoint {r['model'].get('spandrel')}"
    head = (f"Model `{model}` x{r['scale']}, method **{prune.get('method', 'none')}**"
            + (_how_much(prune) if prune.get("method", "none") != "none" else "")
            + f", seed {r.get('seed', 0)}; total {_total_seconds(result):.1f} s of stages.")
    lines = [f"# {r.get('name', 'compress')} — report", "", head, "", *_sizes(result)]
    lines += ["", "## Stages", "", *_table(["stage", "iterations", "seconds"],
                                           [[s["name"], str(s["iterations"]), str(s["seconds"])]
                                            for s in result.get("stages", [])], "lrr")]
    lines += _groups(result)
    for title, key in (("Kept channels", "kept_channels"), ("Training curves", "curves"), ("Crops", "crops")):
        if key in pictures:
            lines += ["", f"## {title}", "", f"![{title}]({pictures[key]})"]
    lines += _reproducibility(result)
    lines += ["", "The exact recipe is in `recipe.yaml` and under `recipe` in `report.json`.", ""]
    return "\n".join(lines)


def _to_uint8(img: torch.Tensor, rgb_range: float) -> np.ndarray:
    x = img.detach().float().clamp(0, rgb_range).mul(255.0 / rgb_range).round().byte()
    return x.permute(1, 2, 0).cpu().numpy()


def _crop_images(dense, pruned, eval_sets, scale, rgb_range, tile) -> dict[str, np.ndarray] | None:
    from ..sr.evaluate import upscale
    from ..sr.imresize import imresize_torch

    if not eval_sets:
        return None
    data = next(iter(eval_sets.values()))
    s = data[0]
    lr, hr = s["lr"], s["hr"]
    images = {"LR": _to_uint8(lr, rgb_range),
              "bicubic": _to_uint8(imresize_torch(lr.double(), output_shape=tuple(hr.shape[-2:])).float(), rgb_range)}
    for label, model in (("dense", dense), ("pruned", pruned)):
        if model is not None:
            model.eval()
            images[label] = _to_uint8(upscale(model, lr, scale, tile), rgb_range)
    images["HR"] = _to_uint8(hr, rgb_range)
    return images


def write_report(result: dict, out: Path, *, dense=None, pruned=None, eval_sets=None, scale: int = 4,
                 rgb_range: float = 255.0, tile=None) -> dict[str, Any]:
    """Write report.json, report.md and the PNGs into ``out``; returns the picture paths."""
    from . import plots

    out = Path(out)
    pictures: dict[str, str] = {}
    try:
        if result.get("groups"):
            pictures["kept_channels"] = plots.plot_kept_channels(
                [g for g in result["groups"] if g["prunable"]], out / "kept_channels.png").name
        records, phases = stage_curves(out)
        if records:
            pictures["curves"] = plots.plot_curves(records, out / "curves.png", phases=phases).name
        images = _crop_images(dense, pruned, eval_sets, scale, rgb_range, tile)
        if images:
            h, w = images["HR"].shape[:2]
            box = (h // 4, w // 4, min(h // 2, 160), min(w // 2, 160))
            pictures["crops"] = plots.plot_crops(images, out / "crops.png", box=box).name
    except ImportError as exc:  # matplotlib missing: the report stays complete without pictures
        result.setdefault("warnings", []).append(f"no pictures: {exc}")
    result["pictures"] = pictures
    atomic_write(out / "report.json", json.dumps(result, indent=2, default=str))
    atomic_write(out / "report.md", markdown(result, pictures))
    return pictures
