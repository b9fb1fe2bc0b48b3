"""The dataset kinds a recipe can name: each kind's keys, the files it needs, and how it is built.

One class per kind (``type:``), so that a kind is described in one place: its schema (the keys it
takes, required or not), :meth:`missing` (what is not on disk, with the fix) and :meth:`build` (the
:class:`~graphprune.sr.data.PairedImageDataset`). The training block adds the loader settings
(:class:`Loader`) to the kinds that can train.

=========  =========================  ==================================================
type       keys                       layout
=========  =========================  ==================================================
demo       –                          photos shipped with scikit-image (never downloaded)
div2k      root, index_range          ``<root>/DIV2K_train_HR`` (+ ``_LR_bicubic/X{s}``)
df2k       root, index_range          ``<root>/DF2K_train_HR`` (+ ``_LR_bicubic/X{s}``)
folder     hr_dir, lr_dir, index...   any HR folder; LR folder or MATLAB bicubic on the fly
benchmark  root, name                 ``<root>/benchmark/<name>/HR`` (evaluation only)
=========  =========================  ==================================================

>>> from graphprune.schema import load
>>> s, _ = load(TrainSet, {"type": "df2k", "root": "datasets/DF2K", "index_range": "1-3550"})
>>> s.label, s.batch_size, s.missing(4, fix="use --set data.train.type=demo")[0].path
('df2k', 16, 'root')
>>> [str(p) for p in load(EvalSet, {"type": "benchmark", "root": "b"})[1]]
['name: missing required key; expected a string (Set5, Set14, B100, Urban100, Manga109, ...)']
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from ..schema import Problem, Schema, Variants, field
from ..sr.data import PairedImageDataset, benchmark_set, demo_dataset, div2k, parse_index_range

__all__ = ["DataSource", "Demo", "DIV2K", "Folder", "Benchmark", "Loader", "TrainSet", "EvalSet",
           "BENCHMARKS"]

BENCHMARKS = ("Set5", "Set14", "B100", "Urban100", "Manga109")


def _index_range_problems(value) -> list[str]:
    try:
        parse_index_range(value)
    except ValueError as e:
        return [str(e)]
    return []


@dataclass(kw_only=True)
class DataSource(Schema):
    """Base of every kind: ``type`` names the kind, ``name`` labels it in reports."""

    type: str = ""
    name: Optional[str] = field(None, doc="label in reports")

    @property
    def label(self) -> str:
        return self.name or self.type

    def missing(self, scale: int, fix: str) -> list[Problem]:
        """What this source names that is not on disk, one problem per key, each ending in ``fix``."""
        return []

    def build(self, scale: int, *, train: bool, **kwargs) -> PairedImageDataset:
        raise NotImplementedError


@dataclass(kw_only=True)
class Demo(DataSource):
    type: Literal["demo"] = "demo"

    def build(self, scale: int, *, train: bool, **kwargs) -> PairedImageDataset:
        return demo_dataset("train" if train else "val", scale, train=train, **kwargs)


@dataclass(kw_only=True)
class DIV2K(DataSource):
    type: Literal["div2k", "df2k"] = "div2k"
    root: str = field(doc="the folder holding DIV2K_train_HR or DF2K_train_HR")
    index_range: Optional[str] = field(None, doc="1-based inclusive, e.g. '1-800'", check=_index_range_problems)

    @property
    def prefix(self) -> str:
        return self.type.upper()

    def missing(self, scale: int, fix: str) -> list[Problem]:
        where, hr = Path(self.root).expanduser(), f"{self.prefix}_train_HR"
        if (where / hr).is_dir() or (where / f"{self.prefix}_valid_HR").is_dir():
            return []
        state = "does not exist" if not where.is_dir() else f"has no {hr} folder"
        return [Problem("root", f"{self.root} {state} (put {self.prefix} there: {hr}/0001.png ... and "
                                f"{self.prefix}_train_LR_bicubic/X{scale}/0001x{scale}.png, or {fix})")]

    def build(self, scale: int, *, train: bool, **kwargs) -> PairedImageDataset:
        return div2k(self.root, scale, "train" if train else "valid", self.index_range,
                     prefix=self.prefix, train=train, **kwargs)


@dataclass(kw_only=True)
class Folder(DataSource):
    type: Literal["folder"] = "folder"
    hr_dir: str = field(doc="a folder of HR images")
    lr_dir: Optional[str] = field(None, doc="LR images named <hr name>x<scale>.png; null: MATLAB bicubic")
    index_range: Optional[str] = field(None, doc="1-based inclusive, e.g. '1-800'", check=_index_range_problems)

    @property
    def label(self) -> str:
        return self.name or Path(self.hr_dir).name

    def missing(self, scale: int, fix: str) -> list[Problem]:
        out = []
        for key, what in (("hr_dir", "HR images"), ("lr_dir", "LR images named like <hr name>x<scale>.png")):
            folder = getattr(self, key)
            if folder and not Path(folder).expanduser().is_dir():
                out.append(Problem(key, f"{folder} does not exist (put the {what} there, or {fix})"))
        return out

    def build(self, scale: int, *, train: bool, **kwargs) -> PairedImageDataset:
        return PairedImageDataset.from_folders(self.hr_dir, self.lr_dir, scale=scale,
                                               index_range=self.index_range, train=train, **kwargs)


@dataclass(kw_only=True)
class Benchmark(DataSource):
    type: Literal["benchmark"] = "benchmark"
    root: str = field(doc="the folder holding benchmark/<name>/HR")
    name: str = field(doc=", ".join(BENCHMARKS) + ", ...")

    def missing(self, scale: int, fix: str) -> list[Problem]:
        root = Path(self.root).expanduser()
        if (root / "benchmark" / self.name / "HR").is_dir() or (root / self.name / "HR").is_dir():
            return []
        state = "does not exist" if not root.is_dir() else f"has no {self.name}/HR folder"
        return [Problem("root", f"{self.root} {state} (put {self.name} there: {self.name}/HR/*.png and "
                                f"optionally {self.name}/LR_bicubic/X{scale}/*x{scale}.png, e.g. from EDSR's "
                                f"benchmark.tar; or {fix})")]

    def build(self, scale: int, *, train: bool, **kwargs) -> PairedImageDataset:
        return benchmark_set(self.root, self.name, scale, train=train, **kwargs)


@dataclass(kw_only=True)
class Loader(Schema):
    """How the training set is read: random LR patches, batches, workers."""

    patch_size: int = field(48, doc="LR patch side", ge=1)
    batch_size: int = field(16, doc="per process", ge=1)
    repeat: Optional[int] = field(None, doc="times each image appears per epoch; null: ~1000 batches", ge=1)
    num_workers: int = field(4, ge=0)
    cache: bool = True

    def repeat_for(self, n_images: int, batches_per_epoch: int = 1000) -> int:
        """``repeat``, or the official automatic value: about ``batches_per_epoch`` batches per
        epoch (EDSR code: ``test_every * batch_size // n_images``, 16000 // 3550 = 4 -> 888 iters)."""
        if self.repeat is not None:
            return self.repeat
        return max(1, batches_per_epoch * self.batch_size // max(n_images, 1))

    def build_train(self, scale: int, rgb_range: float, seed: int) -> PairedImageDataset:
        """The training set, every image checked against the patch size before any work."""
        data = self.build(scale, train=True, rgb_range=rgb_range, seed=seed, patch_size=self.patch_size,
                          cache=self.cache)
        data.repeat = self.repeat_for(len(data.pairs))
        data.check_patch_size()
        return data


@dataclass(kw_only=True)
class DemoTrain(Loader, Demo):
    pass


@dataclass(kw_only=True)
class DIV2KTrain(Loader, DIV2K):
    pass


@dataclass(kw_only=True)
class FolderTrain(Loader, Folder):
    pass


#: ``data.train``: a kind that can train, plus the loader settings.
TrainSet = Annotated[Union[DIV2KTrain, FolderTrain, DemoTrain], Variants("type")]
#: ``data.val`` and ``eval.sets`` entries.
EvalSet = Annotated[Union[Benchmark, Demo, Folder, DIV2K], Variants("type")]
