"""MATLAB-compatible bicubic resizing: the "bicubic" of the super-resolution literature.

Every SR benchmark number (EDSR, RCAN, ASSL, SRP, BasicSR) is measured on low-resolution
images produced by MATLAB's ``imresize(hr, 1/s, 'bicubic')``. That resize is not what
PIL, OpenCV or ``skimage.transform.resize`` compute: MATLAB uses Keys' cubic kernel with
``a = -0.5``, *widens* the kernel by ``1/scale`` when shrinking (antialiasing), places
output pixel ``x`` (1-based) at input coordinate ``u = x/scale + 0.5*(1 - 1/scale)``,
mirrors the image at its borders (symmetric padding, edge pixel repeated) and normalizes
the weights of every output pixel to sum to one. A model trained on LR made any other way
scores differently on the standard benchmarks, so LR generated on the fly must be made
here. This module reproduces that algorithm (as BasicSR's ``matlab_functions.imresize``
does) for numpy images (``H x W`` or ``H x W x C``) and torch tensors (``... x H x W``).

The resize is separable: for each axis, :func:`contributions` precomputes an
``(out_length, taps)`` weight matrix and the matching input indices once, and the image
is combined with one vectorized gather per kernel tap (no per-pixel Python loop).

Examples
--------
>>> import numpy as np
>>> img = np.full((10, 7, 3), 0.25)
>>> out = imresize(img, 0.5)
>>> out.shape
(5, 4, 3)
>>> bool(np.allclose(out, 0.25))
True
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["cubic", "contributions", "output_size", "imresize", "imresize_torch"]

#: Support of the cubic kernel at scale 1 (it is non-zero on ``|x| < 2``).
KERNEL_WIDTH = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5``, exactly as MATLAB's ``cubic``.

    It interpolates (``cubic(0) = 1``, ``cubic(+-1) = cubic(+-2) = 0``) and reproduces
    polynomials up to degree two, which is why a linear ramp survives a resize.
    """
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _mirror(index_1based: np.ndarray, length: int) -> np.ndarray:
    """Map 1-based, possibly out-of-range indices to 0-based ones by symmetric padding.

    MATLAB indexes ``aux = [1:n, n:-1:1]`` with ``mod(ind - 1, 2n)``: the edge pixel is
    repeated (``... 2 1 | 1 2 ... n | n n-1 ...``), for any amount of overhang.
    """
    aux = np.concatenate([np.arange(length), np.arange(length - 1, -1, -1)])
    return aux[np.mod(index_1based - 1, 2 * length)]


def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Weights and input indices of one axis of a MATLAB bicubic resize.

    Parameters
    ----------
    in_length, out_length : int
        Number of pixels along the axis before and after resizing.
    scale : float
        ``out / in`` as MATLAB uses it (the requested factor, not the rounded ratio).
    antialiasing : bool
        Widen the kernel by ``1/scale`` when shrinking, as MATLAB does by default.

    Returns
    -------
    weights : ndarray, shape (out_length, taps), float64
        Each row sums to one.
    indices : ndarray, shape (out_length, taps), int64
        0-based input indices, already mirrored at the borders.

    Notes
    -----
    Columns whose weights are zero for every output pixel are dropped, as MATLAB
    does; they would only add zeros.
    """
    shrink = scale < 1 and antialiasing
    width = KERNEL_WIDTH / scale if shrink else KERNEL_WIDTH
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    index = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - index
    weights = scale * cubic(distance * scale) if shrink else cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], _mirror(index[:, keep].astype(np.int64), in_length)


def output_size(in_shape: Sequence[int], scale: float | Sequence[float] | None = None,
                output_shape: Sequence[int] | None = None
                ) -> tuple[tuple[int, int], tuple[float, float]]:
    """Resolve MATLAB's ``scale`` or ``[rows cols]`` argument to sizes and per-axis scales.

    With a scale the output is ``ceil(in * scale)`` and the weights use the scale as given;
    with an output shape the scale of each axis is ``out / in``. Exactly one must be given.
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize needs exactly one of scale= or output_shape=, "
                         f"got scale={scale!r}, output_shape={output_shape!r}")
    h, w = int(in_shape[0]), int(in_shape[1])
    if output_shape is not None:
        oh, ow = (int(v) for v in output_shape)
        if oh < 1 or ow < 1:
            raise ValueError(f"output_shape must be positive, got {tuple(output_shape)}")
        return (oh, ow), (oh / h, ow / w)
    sh, sw = (float(scale), float(scale)) if np.isscalar(scale) else (float(v) for v in scale)
    if sh <= 0 or sw <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    return (math.ceil(h * sh), math.ceil(w * sw)), (sh, sw)


def _resize_axis(x, axis: int, in_length: int, out_length: int, scale: float,
                 antialiasing: bool, gather: Callable, as_array: Callable):
    """Resize ``x`` along ``axis``: one vectorized gather-multiply-add per kernel tap."""
    if out_length == in_length and scale == 1.0:
        return x  # the kernel is exactly the identity at scale 1
    weights, indices = contributions(in_length, out_length, scale, antialiasing)
    shape = [1] * x.ndim
    shape[axis] = out_length
    out = None
    for k in range(weights.shape[1]):
        term = gather(x, indices[:, k], axis) * as_array(weights[:, k]).reshape(shape)
        out = term if out is None else out + term
    return out


def _resize(x, hw_axes: tuple[int, int], scale, output_shape, antialiasing,
            gather: Callable, as_array: Callable):
    """Shared core: resize two axes, the most-shrunk first (MATLAB's dimension order)."""
    in_hw = (x.shape[hw_axes[0]], x.shape[hw_axes[1]])
    out_hw, scales = output_size(in_hw, scale, output_shape)
    for i in np.argsort(scales, kind="stable"):
        x = _resize_axis(x, hw_axes[i], in_hw[i], out_hw[i], scales[i], antialiasing,
                         gather, as_array)
    return x


def imresize(img: np.ndarray, scale: float | Sequence[float] | None = None,
             output_shape: Sequence[int] | None = None, antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` for numpy images ``H x W`` or ``H x W x C``.

    This is the "bicubic" LR of the SR literature (MATLAB's and BasicSR's ``imresize``).
    Float inputs keep their dtype; integer inputs are computed and returned as float64
    without rounding (round and clip yourself to store an 8-bit image, as MATLAB does).

    Parameters
    ----------
    img : ndarray
        ``H x W`` or ``H x W x C``.
    scale : float or (float, float), optional
        Output is ``ceil(H * scale) x ceil(W * scale)``.
    output_shape : (int, int), optional
        Explicit ``(rows, cols)``; the scale of each axis is then ``out / in``.
    antialiasing : bool
        Widen the kernel when shrinking (MATLAB's default, used by every SR benchmark).

    Examples
    --------
    >>> ramp = np.tile(np.arange(32.0), (8, 1))
    >>> imresize(ramp, 0.25)[0, 2:6].round(9).tolist()  # a linear ramp stays linear inside
    [9.5, 13.5, 17.5, 21.5]
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects H x W or H x W x C, got shape {img.shape}")
    x = img if np.issubdtype(img.dtype, np.floating) else img.astype(np.float64)
    return _resize(x, (0, 1), scale, output_shape, antialiasing,
                   gather=lambda a, idx, ax: np.take(a, idx, axis=ax),
                   as_array=lambda w: w.astype(x.dtype, copy=False))


def imresize_torch(x: torch.Tensor, scale: float | Sequence[float] | None = None,
                   output_shape: Sequence[int] | None = None,
                   antialiasing: bool = True) -> torch.Tensor:
    """:func:`imresize` for tensors whose last two axes are ``H x W`` (``CxHxW``, ``NxCxHxW``).

    Float tensors keep their dtype and device; integer tensors are computed in float32.
    """
    if x.ndim < 2:
        raise ValueError(f"imresize_torch expects ... x H x W, got shape {tuple(x.shape)}")
    t = x if x.is_floating_point() else x.float()
    return _resize(t, (t.ndim - 2, t.ndim - 1), scale, output_shape, antialiasing,
                   gather=lambda a, idx, ax: a.index_select(ax, torch.from_numpy(idx).to(a.device)),
                   as_array=lambda w: torch.from_numpy(w).to(dtype=t.dtype, device=t.device))
