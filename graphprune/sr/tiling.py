"""Tiled ("chopped") inference: upscale images too large to run in one forward pass.

Evaluating a network on Urban100 at x2 (LR around 512x400, HR 1024x800) or on a 4K photo
can exhaust GPU memory, because activations scale with the image area. EDSR's
``forward_chop`` splits the LR image into pieces; this module does the same with a
guarantee: for a fully-convolutional model whose receptive-field radius (in LR pixels) is
at most ``overlap``, the stitched result EQUALS whole-image inference (up to float
summation order). Deeper models (EDSR has a radius of about 70) are not exact at a
moderate overlap, but the error is far below 8-bit quantization in practice.

How: the LR image is cut into a grid of non-overlapping *core* tiles of at most ``tile``
pixels. Each core is run inside a window of ``tile + 2*overlap`` pixels that contains the
core plus ``overlap`` context on every side; at the image border the window is shifted
inwards rather than shrunk, so every window has the same size and windows are batched.
Only each core's part of the output is kept, and the context that the model padded with
zeros lies at least ``overlap`` pixels from any kept pixel, unless it lies beyond the
image border, where whole-image inference pads in the same way.

Caveats: the model must be translation-equivariant per sample (no batch statistics, i.e.
BatchNorm in eval mode; no global pooling or attention over the whole image) and its
output must be exactly ``scale`` times the input size.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["tile_windows", "tiled_forward"]


def tile_windows(length: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """Cores and windows along one axis as ``(core_start, core_end, window_start)``.

    Every window is ``min(tile + 2*overlap, length)`` long and contains its core widened
    by ``overlap`` on both sides (clipped to ``[0, length)``).

    >>> tile_windows(10, 4, 1)
    [(0, 4, 0), (4, 8, 3), (8, 10, 4)]
    """
    if tile < 1 or overlap < 0:
        raise ValueError(f"need tile >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    window = min(tile + 2 * overlap, length)
    out = []
    for start in range(0, length, tile):
        end = min(start + tile, length)
        out.append((start, end, min(max(start - overlap, 0), length - window)))
    return out


def _jobs(n: int, h: int, w: int, tile: int, overlap: int) -> list[tuple[int, tuple, tuple]]:
    """Every (image, row window, column window) to run, in a fixed order."""
    rows, cols = tile_windows(h, tile, overlap), tile_windows(w, tile, overlap)
    return [(b, r, c) for b in range(n) for r in rows for c in cols]


def _check_output(out: torch.Tensor, window_hw: tuple[int, int], scale: int) -> None:
    """Fail loudly when the model's output size is not ``scale`` times its input size."""
    expected = (window_hw[0] * scale, window_hw[1] * scale)
    if tuple(out.shape[-2:]) != expected:
        raise ValueError(f"tiled_forward: the model turned a {window_hw} tile into "
                         f"{tuple(out.shape[-2:])}, expected {expected} for scale={scale}")


def _paste(result: torch.Tensor, out: torch.Tensor, job: tuple, scale: int) -> None:
    """Copy the core of one window's output into its place in the result."""
    b, (ys, ye, y0), (xs, xe, x0) = job
    core = out[:, (ys - y0) * scale:(ye - y0) * scale, (xs - x0) * scale:(xe - x0) * scale]
    result[b, :, ys * scale:ye * scale, xs * scale:xe * scale] = core


@torch.no_grad()
def tiled_forward(model: nn.Module, lr: torch.Tensor, scale: int, tile: int = 128,
                  overlap: int = 16, batch_size: int = 4) -> torch.Tensor:
    """Upscale ``lr`` (``N x C x H x W`` or ``C x H x W``) tile by tile, without gradients.

    Parameters
    ----------
    model : nn.Module
        Fully-convolutional SR model; its mode (train/eval) is left as it is.
    lr : Tensor
        Input on the model's device.
    scale : int
        Upscaling factor of the model.
    tile : int
        Core tile size in LR pixels; an image that fits in one tile runs whole.
    overlap : int
        LR context on each side of a core; exact when >= the receptive-field radius.
    batch_size : int
        Windows per forward pass (peak memory grows with it).

    Returns
    -------
    Tensor
        ``N x C' x H*scale x W*scale`` (or without ``N`` when ``lr`` had none).
    """
    if lr.ndim == 3:
        return tiled_forward(model, lr[None], scale, tile, overlap, batch_size)[0]
    n, _, h, w = lr.shape
    wh, ww = min(tile + 2 * overlap, h), min(tile + 2 * overlap, w)
    jobs = _jobs(n, h, w, tile, overlap)
    result = None
    for i in range(0, len(jobs), batch_size):
        chunk = jobs[i:i + batch_size]
        windows = torch.stack([lr[b, :, r[2]:r[2] + wh, c[2]:c[2] + ww] for b, r, c in chunk])
        out = model(windows)
        _check_output(out, (wh, ww), scale)
        if result is None:
            result = out.new_empty(n, out.shape[1], h * scale, w * scale)
        for job, o in zip(chunk, out):
            _paste(result, o, job, scale)
    return result
