"""Super-resolution datasets in the folder layouts SR users already have, plus demo data.

Layouts understood (EDSR / BasicSR conventions):

* DIV2K / DF2K: ``<root>/DIV2K_train_HR/0001.png`` with
  ``<root>/DIV2K_train_LR_bicubic/X{s}/0001x{s}.png`` (:func:`div2k`);
* benchmarks: ``<root>/benchmark/{Set5,Set14,B100,Urban100,Manga109}/HR/<name>.png`` with
  ``LR_bicubic/X{s}/<name>x{s}.png`` (:func:`benchmark_set`);
* any explicit HR / LR folder pair (:meth:`PairedImageDataset.from_folders`);
* HR-only folders: without an LR folder the LR image is made on the fly by MATLAB-compatible
  bicubic (:func:`graphprune.sr.imresize.imresize`) of the HR image mod-cropped to a
  multiple of the scale, rounded to 8 bits, which is how the published LR sets were made;
* the demo set (:func:`demo_dataset`): real photos shipped inside scikit-image, split into
  fixed train and validation images. It is used only when asked for; a dataset the user
  named but that is missing raises ``FileNotFoundError`` naming the path, never falls back.

Samples are ``{"lr": float32 C x h x w, "hr": float32 C x sh x sw, "name": str}`` with values
in ``[0, rgb_range]``; images are always RGB.
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .imresize import imresize

__all__ = [
    "IMAGE_EXTENSIONS", "DEMO_TRAIN", "DEMO_VAL", "ImagePair", "parse_index_range",
    "list_images", "scan_folder_pairs", "modcrop", "bicubic_lr", "read_rgb", "to_tensor", "PairedImageDataset",
    "div2k", "benchmark_set", "demo_dataset",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
IndexRange = Union[str, Sequence[int], None]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: Demo photos by file name inside ``skimage.data.data_dir`` (all ship with the wheel, no
#: download). The stereo pair is kept together in train so validation never sees a near
#: duplicate of a training image.
DEMO_TRAIN = ("astronaut.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
              "motorcycle_left.png", "motorcycle_right.png")
DEMO_VAL = ("chelsea.png", "ihc.png")

_RGB_RANGES = (1.0, 255.0)


@dataclass(frozen=True)
class ImagePair:
    """One image of a dataset: its name, HR file, and LR file (``None``: made on the fly)."""

    name: str
    hr: Path
    lr: Path | None = None


# ----------------------------------------------------------------------------- file lists


def parse_index_range(spec: IndexRange) -> tuple[int, int] | None:
    """Parse the papers' 1-based inclusive image range: ``"1-800"``, ``(1, 800)`` or ``None``.

    >>> parse_index_range("801-810")
    (801, 810)
    >>> parse_index_range((1, 5))
    (1, 5)
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", spec)
        if not m:
            raise ValueError(f"index range must look like '1-800', got {spec!r}")
        first, last = int(m.group(1)), int(m.group(2))
    else:
        first, last = (int(v) for v in spec)
    if not 1 <= first <= last:
        raise ValueError(f"index range must satisfy 1 <= first <= last, got {spec!r}")
    return first, last


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name (the order index ranges refer to)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def _select(files: list[Path], index_range: IndexRange, folder: Path) -> list[Path]:
    """Apply a 1-based inclusive range to a sorted file list, refusing to run past its end."""
    rng = parse_index_range(index_range)
    if rng is None:
        return files
    if rng[1] > len(files):
        raise ValueError(f"index range {rng[0]}-{rng[1]} exceeds the {len(files)} images "
                         f"in {folder}")
    return files[rng[0] - 1:rng[1]]


def _require_dir(folder: Path, what: str, expected: str) -> None:
    """Raise a one-line FileNotFoundError naming the folder and what belongs in it."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found: {folder} (expected {expected})")


def scan_folder_pairs(hr_dir: PathLike, lr_dir: PathLike | None, scale: int,
                      index_range: IndexRange = None,
                      lr_template: str = "{stem}x{scale}{ext}") -> list[ImagePair]:
    """Pair every HR image with its LR file, ``lr_template`` naming the LR from the HR.

    The default template is the EDSR/BasicSR one (``0001.png`` -> ``0001x2.png``); use
    ``"{stem}{ext}"`` for layouts whose LR files keep the HR name. ``lr_dir=None`` pairs
    nothing (LR made on the fly). A missing folder or LR file raises ``FileNotFoundError``.
    """
    hr_dir = Path(hr_dir)
    _require_dir(hr_dir, "HR folder", "HR images such as 0001.png")
    files = _select(list_images(hr_dir), index_range, hr_dir)
    if not files:
        raise FileNotFoundError(f"HR folder has no images: {hr_dir} (expected {IMAGE_EXTENSIONS})")
    if lr_dir is not None:
        _require_dir(Path(lr_dir), "LR folder", f"LR images named like {lr_template!r}")
    return [ImagePair(p.stem, p, _lr_path(p, lr_dir, scale, lr_template)) for p in files]


def _lr_path(hr: Path, lr_dir: PathLike | None, scale: int, template: str) -> Path | None:
    """The LR file of one HR file, or None without an LR folder; it must exist."""
    if lr_dir is None:
        return None
    path = Path(lr_dir) / template.format(stem=hr.stem, scale=scale, ext=hr.suffix)
    if not path.is_file():
        raise FileNotFoundError(f"LR image not found: {path} (the LR of {hr})")
    return path


# ----------------------------------------------------------------------------- images


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to ``H x W x 3`` uint8 RGB (grey and RGBA are converted)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale`` (BasicSR)."""
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale]


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image the SR literature pairs with ``hr``: MATLAB bicubic, rounded to uint8.

    ``hr`` must already be mod-cropped; the result is exactly ``1/scale`` of its size.
    """
    lr = imresize(hr.astype(np.float64), 1.0 / scale)
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)


def _load_pair(pair: ImagePair, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair; HR is cropped to exactly ``scale`` times the LR size."""
    hr = read_rgb(pair.hr)
    if pair.lr is None:
        hr = modcrop(hr, scale)
        return bicubic_lr(hr, scale), hr
    lr = read_rgb(pair.lr)
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if hr.shape[0] < h or hr.shape[1] < w:
        raise ValueError(f"HR {pair.hr} is {hr.shape[:2]}, smaller than scale {scale} x LR "
                         f"{pair.lr} {lr.shape[:2]}")
    return lr, hr[:h, :w]


# ----------------------------------------------------------------------------- dataset


def _augment(lr: np.ndarray, hr: np.ndarray, rng: np.random.Generator,
             patch_size: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Random aligned LR/HR patch, then h-flip, v-flip, transpose (draws in this order)."""
    h, w = lr.shape[:2]
    if h < patch_size or w < patch_size:
        raise ValueError(f"LR image of {h}x{w} is smaller than patch_size={patch_size}")
    y, x = int(rng.integers(0, h - patch_size + 1)), int(rng.integers(0, w - patch_size + 1))
    lr = lr[y:y + patch_size, x:x + patch_size]
    hr = hr[y * scale:(y + patch_size) * scale, x * scale:(x + patch_size) * scale]
    hflip, vflip, transpose = rng.random(3) < 0.5
    if hflip:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if vflip:
        lr, hr = lr[::-1], hr[::-1]
    if transpose:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr


def to_tensor(img: np.ndarray, rgb_range: float) -> torch.Tensor:
    """uint8 ``H x W x C`` -> float32 ``C x H x W`` in ``[0, rgb_range]`` (``x / 255`` as
    torchvision's ``ToTensor`` when ``rgb_range`` is 1, the integers themselves at 255)."""
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
    return t if rgb_range == 255.0 else t.div_(255.0).mul_(rgb_range)


class PairedImageDataset(Dataset):
    """LR/HR image pairs for training (random patches) or validation (whole images).

    Randomness contract (exact resume): the patch position and the flips of item ``i`` are
    drawn from ``np.random.default_rng([seed, epoch, i])`` and nothing else, so a sample is
    a pure function of ``(seed, epoch, index)``: independent of workers, of the order items
    are read and of whether the run was interrupted. Call :meth:`set_epoch` before each
    epoch (like ``DistributedSampler.set_epoch``). With ``persistent_workers=True`` a
    worker's copy does not see ``set_epoch``; there, let the sampler yield ``(epoch, i)``
    tuples, which ``__getitem__`` also accepts.

    Memory: decoded images are kept as uint8 (3 bytes per pixel; the 800 DIV2K training
    HR images take about 6.6 GB, their x2 LR another 1.7 GB). ``cache=True`` keeps every
    decoded pair (LR made on the fly included) until ``cache_limit_mb`` is used; later
    images are decoded on each access. The cache lives in each process: call
    :meth:`preload` before creating DataLoader workers so forked workers share the decoded
    arrays, otherwise each worker fills its own copy.

    Parameters
    ----------
    pairs : sequence of ImagePair
        Files of the set (see :func:`scan_folder_pairs`).
    scale : int
        Upscaling factor.
    train : bool
        Random ``patch_size`` LR crops (HR ``scale * patch_size``) with flips and transposes;
        otherwise whole images without augmentation.
    patch_size : int
        LR patch side (48 in EDSR/RCAN/ASSL/SRP).
    repeat : int
        Each image appears ``repeat`` times per epoch in training, so an epoch has a chosen
        number of samples (``repeat = ceil(samples / len(pairs))``).
    rgb_range : float
        1.0 or 255.0 (the official ASSL/SRP code trains on 0..255).
    seed : int
        Base seed of the randomness contract.
    cache : bool
        Keep decoded images in memory.
    cache_limit_mb : float or None
        Stop adding to the cache beyond this many megabytes (``None``: no limit).
    """

    def __init__(self, pairs: Sequence[ImagePair], scale: int, *, train: bool = True,
                 patch_size: int = 48, repeat: int = 1, rgb_range: float = 1.0, seed: int = 0,
                 cache: bool = True, cache_limit_mb: float | None = 4096) -> None:
        if not pairs:
            raise ValueError("PairedImageDataset needs at least one image pair")
        if float(rgb_range) not in _RGB_RANGES:
            raise ValueError(f"rgb_range must be one of {_RGB_RANGES}, got {rgb_range!r}")
        if scale < 1 or patch_size < 1 or repeat < 1 or seed < 0:
            raise ValueError(f"need scale, patch_size, repeat >= 1 and seed >= 0, got "
                             f"{scale}, {patch_size}, {repeat}, {seed}")
        self.pairs, self.scale, self.train = list(pairs), int(scale), train
        self.patch_size, self.repeat, self.rgb_range = patch_size, repeat, float(rgb_range)
        self.seed, self.epoch = int(seed), 0
        self.cache, self.cache_limit_mb = cache, cache_limit_mb
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cached_bytes = 0

    @classmethod
    def from_folders(cls, hr_dir: PathLike, lr_dir: PathLike | None = None, *, scale: int,
                     index_range: IndexRange = None, lr_template: str = "{stem}x{scale}{ext}",
                     **kwargs) -> "PairedImageDataset":
        """Dataset over an explicit HR folder and LR folder (``None``: LR made on the fly)."""
        return cls(scan_folder_pairs(hr_dir, lr_dir, scale, index_range, lr_template),
                   scale, **kwargs)

    @property
    def lr_source(self) -> str:
        """``"files"`` when LR images are read, ``"bicubic"`` when made on the fly."""
        return "bicubic" if any(p.lr is None for p in self.pairs) else "files"

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops and flips ``__getitem__`` draws."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs) * (self.repeat if self.train else 1)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        i = index % len(self.pairs)
        lr, hr = self.load(i)
        if self.train:
            rng = np.random.default_rng([self.seed, epoch, index])
            lr, hr = _augment(lr, hr, rng, self.patch_size, self.scale)
        return {"lr": to_tensor(lr, self.rgb_range), "hr": to_tensor(hr, self.rgb_range),
                "name": self.pairs[i].name}

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded uint8 ``(lr, hr)`` of pair ``i``, from the cache when present."""
        if i in self._cache:
            return self._cache[i]
        pair = _load_pair(self.pairs[i], self.scale)
        size = pair[0].nbytes + pair[1].nbytes
        limit = math.inf if self.cache_limit_mb is None else self.cache_limit_mb * 2 ** 20
        if self.cache and self._cached_bytes + size <= limit:
            self._cache[i] = pair
            self._cached_bytes += size
        return pair

    def lr_size(self, i: int) -> tuple[int, int]:
        """``(height, width)`` of pair ``i``'s LR image, from the file headers (nothing decoded)."""
        from PIL import Image

        pair = self.pairs[i]
        with Image.open(pair.lr or pair.hr) as im:
            w, h = im.size
        return (h, w) if pair.lr else (h // self.scale, w // self.scale)

    def check_patch_size(self) -> None:
        """Raise a one-line ValueError naming the first image whose LR is smaller than the patch.

        Called when a training set is built, so that the run stops before any work, not at the
        first unlucky batch hours later.
        """
        small = [(i, s) for i in range(len(self.pairs)) if min(s := self.lr_size(i)) < self.patch_size]
        if small:
            (i, (h, w)), more = small[0], f" (and {len(small) - 1} more)" if len(small) > 1 else ""
            raise ValueError(f"{self.pairs[i].hr}: its LR image is {h}x{w} at x{self.scale}, smaller "
                             f"than the {self.patch_size}x{self.patch_size} training patch{more}; use "
                             f"a smaller patch_size or leave such images out")

    def preload(self) -> "PairedImageDataset":
        """Decode every image now (within the cache limit); returns ``self``."""
        for i in range(len(self.pairs)):
            self.load(i)
        return self


# ----------------------------------------------------------------------------- named sets


def _lr_dir_or_none(folder: Path, hr_dir: Path) -> Path | None:
    """Use an LR folder when it exists; otherwise say LR will be made on the fly."""
    if folder.is_dir():
        return folder
    log.info("no LR folder %s: LR of %s made on the fly by MATLAB bicubic", folder, hr_dir)
    return None


def div2k(root: PathLike, scale: int, split: str = "train", index_range: IndexRange = None,
          prefix: str = "DIV2K", **kwargs) -> PairedImageDataset:
    """DIV2K (or DF2K with ``prefix="DF2K"``) in the EDSR layout under ``root``.

    ``split`` is ``"train"`` (``<prefix>_train_HR``) or ``"valid"`` (``<prefix>_valid_HR``);
    ``index_range`` counts over that folder's sorted files, as EDSR's ``--data_range``.
    Without ``<prefix>_<split>_LR_bicubic/X{scale}`` the LR is made on the fly.
    Keyword arguments go to :class:`PairedImageDataset` (``train`` defaults to
    ``split == "train"``).
    """
    if split not in ("train", "valid"):
        raise ValueError(f"DIV2K split must be 'train' or 'valid', got {split!r}")
    root = Path(root)
    hr_dir = root / f"{prefix}_{split}_HR"
    first = "0001.png" if split == "train" else "0801.png"
    _require_dir(hr_dir, f"{prefix} HR folder",
                 f"{first} ...; download {prefix} or set data.root")
    lr_dir = _lr_dir_or_none(root / f"{prefix}_{split}_LR_bicubic" / f"X{scale}", hr_dir)
    kwargs.setdefault("train", split == "train")
    return PairedImageDataset.from_folders(hr_dir, lr_dir, scale=scale,
                                           index_range=index_range, **kwargs)


def benchmark_set(root: PathLike, name: str, scale: int, **kwargs) -> PairedImageDataset:
    """A benchmark (Set5, Set14, B100, Urban100, Manga109, ...) in the EDSR layout.

    Looks in ``<root>/benchmark/<name>`` (or ``<root>/<name>`` when ``root`` already is the
    benchmark folder) for ``HR/`` and ``LR_bicubic/X{scale}/``; without the LR folder the LR
    is made on the fly. Validation mode (whole images) unless ``train=True`` is passed.
    """
    root = Path(root)
    base = root / "benchmark" / name
    if not base.is_dir() and (root / name / "HR").is_dir():
        base = root / name
    hr_dir = base / "HR"
    _require_dir(hr_dir, f"{name} HR folder",
                 f"{name} HR images, e.g. from EDSR's benchmark.tar; set data.root")
    lr_dir = _lr_dir_or_none(base / "LR_bicubic" / f"X{scale}", hr_dir)
    kwargs.setdefault("train", False)
    return PairedImageDataset.from_folders(hr_dir, lr_dir, scale=scale, **kwargs)


def _demo_files(names: Sequence[str]) -> list[ImagePair]:
    """Demo pairs from scikit-image's bundled data folder (imported only when asked for)."""
    try:
        from skimage import data as skdata
    except ImportError as err:
        raise ImportError("the demo dataset needs scikit-image: pip install scikit-image") from err
    folder = Path(skdata.data_dir)
    pairs = [ImagePair(Path(n).stem, folder / n) for n in names]
    for p in pairs:
        if not p.hr.is_file():
            raise FileNotFoundError(f"demo image not found: {p.hr} (expected in the "
                                    "scikit-image wheel; reinstall scikit-image)")
    return pairs


def demo_dataset(split: str, scale: int, **kwargs) -> PairedImageDataset:
    """The embedded demo set: real photos bundled with scikit-image, never downloaded.

    ``split="train"`` gives :data:`DEMO_TRAIN` (6 photos), ``"val"`` gives :data:`DEMO_VAL`
    (2 photos). HR is the photo mod-cropped to the scale, LR its MATLAB bicubic. Keyword
    arguments go to :class:`PairedImageDataset` (``train`` defaults to ``split == "train"``).
    """
    if split not in ("train", "val"):
        raise ValueError(f"demo split must be 'train' or 'val', got {split!r}")
    kwargs.setdefault("train", split == "train")
    return PairedImageDataset(_demo_files(DEMO_TRAIN if split == "train" else DEMO_VAL),
                              scale, **kwargs)
