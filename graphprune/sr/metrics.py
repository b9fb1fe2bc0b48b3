"""PSNR and SSIM exactly as the SR papers report them (BasicSR / EDSR conventions).

Published numbers are comparable only when measured the same way, so every step of the
usual protocol is reproduced and none is optional by accident:

1. both images are quantized to 8 bits (scaled to 0..255, clamped, rounded), because the
   papers measure the PNG a model would save, not its raw float output;
2. ``crop_border`` pixels (the scale factor) are removed on every side, because the
   border of an upscaled image depends on padding conventions, not on the model;
3. with ``test_y_channel=True`` RGB is converted to the luma Y of ITU-R BT.601
   (``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in 0..255, so black is
   16 and white 235), kept as float as BasicSR's ``to_y_channel`` does;
4. PSNR is ``10 log10(255^2 / MSE)`` (``inf`` when identical); SSIM uses an 11x11 Gaussian
   window with sigma 1.5, K1 = 0.01, K2 = 0.03 and "valid" filtering, and averages over
   channels when not on Y (BasicSR's ``calculate_ssim``);
5. scores are averaged per image over a set (:class:`MetricAverager`), not per pixel.

Images are torch tensors ``C x H x W`` (or ``1 x C x H x W``) or numpy arrays ``H x W x C``
(or ``H x W``), with values in ``[0, rgb_range]``; RGB channel order.

Examples
--------
>>> import numpy as np
>>> hr = np.full((8, 8, 3), 100.0)
>>> round(calculate_psnr(hr + 5, hr, crop_border=0, test_y_channel=False), 4)
34.1514
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

__all__ = ["to_uint8_range", "rgb_to_y", "calculate_psnr", "calculate_ssim", "MetricAverager"]

Image = Union[np.ndarray, torch.Tensor]

#: BT.601 luma coefficients for R, G, B in 0..255 (divided by 255), offset 16.
_Y_COEFFS = np.array([65.481, 128.553, 24.966]) / 255.0
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def _as_hwc(img: Image) -> np.ndarray:
    """Return a float64 ``H x W x C`` numpy copy of a CHW tensor or an HWC / HW array."""
    if isinstance(img, torch.Tensor):
        t = img.detach()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError("metrics take one image at a time; got a batch of "
                                 f"{t.shape[0]} (shape {tuple(t.shape)}); loop over it")
            t = t[0]
        if t.ndim != 3:
            raise ValueError(f"expected a C x H x W tensor, got shape {tuple(t.shape)}")
        return t.to("cpu", torch.float64).permute(1, 2, 0).numpy()
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"expected an H x W x C array, got shape {arr.shape}")
    return arr


def to_uint8_range(img: Image, rgb_range: float = 255.0) -> np.ndarray:
    """Quantize to the values an 8-bit PNG would hold: ``round(clip(x * 255/rgb_range))``.

    Returns float64 ``H x W x C`` in 0..255 with integral values.
    """
    arr = _as_hwc(img) * (255.0 / rgb_range)
    return np.round(np.clip(arr, 0.0, 255.0))


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an ``H x W x 3`` RGB image in 0..255, as ``H x W x 1`` float64.

    >>> rgb_to_y(np.array([[[255.0, 255, 255], [0, 0, 0]]])).ravel().round(6).tolist()
    [235.0, 16.0]
    """
    return (img @ _Y_COEFFS + 16.0)[:, :, None]


def _prepare(img: Image, crop_border: int, test_y_channel: bool, rgb_range: float) -> np.ndarray:
    """Quantize, crop the border and optionally convert to Y: the shared metric front end."""
    arr = to_uint8_range(img, rgb_range)
    if crop_border > 0:
        arr = arr[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel and arr.shape[2] == 3:
        arr = rgb_to_y(arr)
    return arr


def _pair(sr: Image, hr: Image, crop_border: int, test_y_channel: bool,
          rgb_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Prepare both images and check that they can be compared."""
    a = _prepare(sr, crop_border, test_y_channel, rgb_range)
    b = _prepare(hr, crop_border, test_y_channel, rgb_range)
    if a.shape != b.shape:
        raise ValueError(f"sr and hr differ in shape after cropping: {a.shape} vs {b.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"nothing left to measure after cropping {crop_border} pixels")
    return a, b


def calculate_psnr(sr: Image, hr: Image, crop_border: int, test_y_channel: bool = True,
                   rgb_range: float = 255.0) -> float:
    """PSNR in dB between two images, BasicSR/EDSR protocol (see the module docstring).

    Returns ``inf`` for identical (quantized, cropped) images.
    """
    a, b = _pair(sr, hr, crop_border, test_y_channel, rgb_range)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalized 1-D Gaussian (OpenCV's ``getGaussianKernel(11, 1.5)``)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D image with ``outer(g, g)``."""
    n = len(g)
    h, w = img.shape[0] - n + 1, img.shape[1] - n + 1
    rows = sum(g[k] * img[k:k + h, :] for k in range(n))
    return sum(g[k] * rows[:, k:k + w] for k in range(n))


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM map of two 2-D images in 0..255 (Wang et al. 2004, BasicSR ``_ssim``)."""
    g = _gaussian_window()
    if min(a.shape) < len(g):
        raise ValueError(f"SSIM needs at least {len(g)}x{len(g)} pixels, got {a.shape}")
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a ** 2
    var_b = _filter_valid(b * b, g) - mu_b ** 2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)
    den = (mu_a ** 2 + mu_b ** 2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    return float(np.mean(num / den))


def calculate_ssim(sr: Image, hr: Image, crop_border: int, test_y_channel: bool = True,
                   rgb_range: float = 255.0) -> float:
    """SSIM between two images, BasicSR protocol; channels averaged when not on Y."""
    a, b = _pair(sr, hr, crop_border, test_y_channel, rgb_range)
    return float(np.mean([_ssim_channel(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))


class MetricAverager:
    """Average metrics per image over a set, remembering each image's scores.

    >>> avg = MetricAverager()
    >>> avg.update("baby", psnr=30.0, ssim=0.9)
    >>> avg.update("bird", psnr=32.0, ssim=0.8)
    >>> {k: round(v, 6) for k, v in avg.average().items()}
    {'psnr': 31.0, 'ssim': 0.85}
    """

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, float]]] = []

    def update(self, name: str = "", **scores: float) -> None:
        """Add one image's scores (e.g. ``psnr=..., ssim=...``)."""
        self.records.append((name, {k: float(v) for k, v in scores.items()}))

    def average(self) -> dict[str, float]:
        """Mean of every metric over the images that reported it."""
        keys = dict.fromkeys(k for _, scores in self.records for k in scores)
        return {k: float(np.mean([s[k] for _, s in self.records if k in s])) for k in keys}

    def __len__(self) -> int:
        return len(self.records)

    def reset(self) -> None:
        """Forget every record (start a new evaluation)."""
        self.records.clear()
