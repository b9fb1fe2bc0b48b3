"""The compress report: ``report.json`` (machine), ``report.md`` (human) and its pictures.

``report.json`` holds, for the dense and the pruned model, params, fvcore flops, SR Mult-Adds and
PSNR/SSIM per evaluation set, plus the bicubic baseline, the kept channels per group, timings per
stage and the exact recipe used.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["write_report", "markdown", "stage_curves"]

STAGE_ORDER = ("pretrain", "regularize", "finetune")


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def stage_curves(out: Path) -> tuple[list[dict], dict[str, float]]:
    """Training logs of all stages on one iteration axis, and where each stage starts."""
    records, phases, offset = [], {}, 0
    for stage in STAGE_ORDER:
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


def markdown(result: dict, pictures: dict[str, str]) -> str:
    """The human report."""
    r = result["recipe"]
    dense, pruned = result["dense"], result.get("pruned")
    sets = list((dense.get("metrics") or {}).keys())
    lines = [f"# {r.get('name', 'compress')} — report", "",
             f"Model `{r['model']['name']}` x{r['scale']}, method **{(r.get('prune') or {}).get('method', 'none')}**"
             f", ratio {(r.get('prune') or {}).get('ratio', '–')}, seed {r.get('seed', 0)}; total {result.get('seconds', 0)} s.",
             "", "| model | params | FLOPs (example input) | Mult-Adds (1280×720) | " + " | ".join(
                 f"{s} PSNR / SSIM" for s in sets) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(sets)]
    rows = [("bicubic", None)] if result.get("bicubic") else []
    rows += [("dense", dense)] + ([("pruned", pruned)] if pruned else [])
    for label, c in rows:
        metrics = result["bicubic"] if label == "bicubic" else c.get("metrics")
        nums = ("–", "–", "–") if c is None else (f"{c['params']:,}", f"{c['flops'] / 1e9:.2f} G",
                                                  f"{c['mult_adds'] / 1e9:.1f} G")
        lines.append(f"| {label} | " + " | ".join(nums) + " | " + " | ".join(
            _fmt_metrics(metrics, s) for s in sets) + " |")
    if pruned:
        lines += ["", f"Params ×{dense['params'] / max(pruned['params'], 1):.2f} smaller, "
                      f"Mult-Adds ×{dense['mult_adds'] / max(pruned['mult_adds'], 1):.2f} fewer."]
        before = result.get("pruned_before_finetune") or {}
        if before:
            lines += ["Right after pruning, before fine-tuning: " + ", ".join(
                f"{k} {_fmt_metrics(before, k)}" for k in before) + "."]
    lines += ["", "## Stages", "", "| stage | iterations | seconds |", "|---|---:|---:|"]
    lines += [f"| {s['name']} | {s['iterations']} | {s['seconds']} |" for s in result.get("stages", [])]
    groups = [g for g in result.get("groups", []) if g["prunable"]]
    if groups:
        lines += ["", "## Kept channels per prunable group", "", "| group | size | kept | producers |", "|---:|---:|---:|---|"]
        for g in groups:
            mods = g["modules"]
            shown = ", ".join(mods[:4]) + (f", … ({len(mods)})" if len(mods) > 4 else "")
            lines.append(f"| {g['id']} | {g['size']} | {g['kept']} | {shown} |")
    for title, key in (("Kept channels", "kept_channels"), ("Training curves", "curves"), ("Crops", "crops")):
        if key in pictures:
            lines += ["", f"## {title}", "", f"![{title}]({pictures[key]})"]
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
    _atomic_text(out / "report.json", json.dumps(result, indent=2, default=str))
    _atomic_text(out / "report.md", markdown(result, pictures))
    return pictures
