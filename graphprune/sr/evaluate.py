"""Evaluation as in the SR literature: PSNR/SSIM on Y, ``scale`` pixels cropped, 8-bit outputs.

``evaluate`` runs a model over named datasets (whole images, or tiles for large ones) and averages
per image; ``bicubic_scores`` gives the bicubic-upscaling baseline of the same sets, the row every
SR table starts from.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from .imresize import imresize_torch
from .metrics import calculate_psnr, calculate_ssim
from .tiling import tiled_forward

__all__ = ["evaluate", "score_images", "bicubic_scores", "upscale"]


@torch.no_grad()
def upscale(model: nn.Module, lr: torch.Tensor, scale: int, tile: Mapping | None = None) -> torch.Tensor:
    """``model(lr)`` for one CxHxW image, tiled when ``tile = {"size", "overlap"}`` is given."""
    if tile:
        return tiled_forward(model, lr, scale, tile=int(tile["size"]), overlap=int(tile.get("overlap", 16)))
    return model(lr[None])[0]


def _score(sr: torch.Tensor, hr: torch.Tensor, crop: int, y: bool, rgb_range: float, metrics) -> dict:
    out = {}
    if "psnr" in metrics:
        out["psnr"] = calculate_psnr(sr, hr, crop, test_y_channel=y, rgb_range=rgb_range)
    if "ssim" in metrics:
        out["ssim"] = calculate_ssim(sr, hr, crop, test_y_channel=y, rgb_range=rgb_range)
    return out


def _average(rows: list[dict]) -> dict:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} if rows else {}


@torch.no_grad()
def evaluate(model: nn.Module, sets: Mapping[str, object], *, scale: int, rgb_range: float = 255.0,
             crop_border: int | None = None, test_y_channel: bool = True, metrics=("psnr", "ssim"),
             tile: Mapping | None = None, device=None) -> dict[str, dict[str, float]]:
    """Per set: the metrics averaged over images. ``sets`` maps a name to a dataset of LR/HR pairs."""
    kw = dict(scale=scale, rgb_range=rgb_range, crop_border=crop_border, test_y_channel=test_y_channel,
              metrics=metrics, tile=tile, device=device)
    return {name: _average([row for _, row in score_images(model, data, **kw)]) for name, data in sets.items()}


@torch.no_grad()
def score_images(model: nn.Module, data, *, scale: int, rgb_range: float = 255.0, crop_border: int | None = None,
                 test_y_channel: bool = True, metrics=("psnr", "ssim"), tile: Mapping | None = None, device=None,
                 on_output: Callable[[str, torch.Tensor], object] | None = None) -> list[tuple[str, dict]]:
    """``(image name, {metric: value})`` for every image of one dataset, in its order (what
    :func:`evaluate` averages); ``on_output(name, sr)`` sees each SR image (e.g. to save it)."""
    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    crop = scale if crop_border is None else crop_border
    rows = []
    try:
        for i in range(len(data)):
            s = data[i]
            sr = upscale(model, s["lr"].to(device), scale, tile).cpu()
            if on_output is not None:
                on_output(s.get("name", str(i)), sr)
            rows.append((s.get("name", str(i)), _score(sr, s["hr"], crop, test_y_channel, rgb_range, metrics)))
    finally:
        model.train(was)
    return rows


def bicubic_scores(sets: Mapping[str, object], *, scale: int, rgb_range: float = 255.0,
                   crop_border: int | None = None, test_y_channel: bool = True,
                   metrics=("psnr", "ssim")) -> dict[str, dict[str, float]]:
    """The bicubic baseline (MATLAB-compatible upscaling of the LR images)."""
    crop = scale if crop_border is None else crop_border
    results = {}
    for name, data in sets.items():
        rows = []
        for i in range(len(data)):
            s = data[i]
            up = imresize_torch(s["lr"].double(), output_shape=tuple(s["hr"].shape[-2:])).float()
            rows.append(_score(up.clamp(0, rgb_range), s["hr"], crop, test_y_channel, rgb_range, metrics))
        results[name] = _average(rows)
    return results
