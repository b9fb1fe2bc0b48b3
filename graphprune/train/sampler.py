"""A resumable, DDP-aware batch order and an endless batch stream built on it.

Why not ``RandomSampler``/``DistributedSampler``: exact resume needs the order of an epoch to be a
pure function of ``(seed, epoch)`` and the stream to restart *in the middle* of an epoch without
replaying (and without loading) the batches already consumed. Datasets follow the contract that
their own randomness (crops, flips) is a pure function of ``(seed, epoch, index)`` and that they
have an optional ``set_epoch(epoch)``; together that makes batch ``k`` of epoch ``e`` reproducible.

Sharding matches ``DistributedSampler(drop_last=True)``: the permutation is cut to a multiple of the
world size and rank ``r`` takes ``perm[r::world]``. Rank ``r``'s batch ``j`` then holds samples
``perm[j*B*W : (j+1)*B*W]`` at positions ``r, r+W, ...``, so the union over ranks of batch ``j`` is
exactly batch ``j`` of a single process with batch ``B*W`` (what the DDP test relies on).

Seeds per batch, not per worker. A dataset that draws from the *global* RNGs (``torch.rand``,
``np.random``, ``random`` in ``__getitem__``) would get, from DataLoader, one seed per worker:
its batches would then depend on how many workers there are and, after a mid-epoch resume, on
which worker gets which batch (the round robin restarts at the resumed batch). So each batch is
loaded under its own seed, :func:`batch_seed` of ``(seed, epoch, batch, rank)``, with the
process's RNG states put back afterwards: batch ``j`` is the same with 0, 1 or 8 workers, resumed
or not, and loading in the main process (``num_workers=0``) leaves the training RNG untouched.

>>> batch_seed(0, 1, 2) == batch_seed(0, 1, 2) != batch_seed(0, 1, 3)
True
"""
from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["ResumableBatchSampler", "BatchStream", "BatchIndices", "batch_seed", "seeded_rng"]


def batch_seed(seed: int, epoch: int, batch: int, rank: int = 0) -> int:
    """A 64-bit seed for batch ``batch`` of ``epoch`` on ``rank`` (numpy's SeedSequence mixing)."""
    lo, hi = np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(2, np.uint32)
    return int(lo) | int(hi) << 32


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU, numpy's and python's global RNGs seeded; restore them after."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.default_generator.manual_seed(seed)  # CPU only: a CUDA generator is the training's
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


class BatchIndices(list):
    """One batch's sample indices with the ``seed`` it is loaded under (DataLoader passes lists on)."""

    def __init__(self, indices: list[int], seed: int):
        super().__init__(indices)
        self.seed = seed


class _SeededBatches(Dataset):
    """``dataset``, loading each :class:`BatchIndices` under its seed (DataLoader calls ``__getitems__``)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]

    def __getitems__(self, batch: BatchIndices) -> list:
        many = getattr(self.dataset, "__getitems__", None)
        with seeded_rng(batch.seed):
            return many(list(batch)) if many else [self.dataset[i] for i in batch]


class ResumableBatchSampler(Sampler[list[int]]):
    """Batches of indices for one epoch; order = f(seed, epoch, rank, world_size).

    Incomplete batches are dropped so every rank runs the same number of steps per epoch.
    ``start_batch`` skips the first batches of the current epoch (resume); it is cleared by
    ``set_epoch``.

    >>> s = ResumableBatchSampler(10, batch_size=2, seed=0, shuffle=False, rank=1, world_size=2)
    >>> list(s)
    [[1, 3], [5, 7]]
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self.epoch, self.start_batch = 0, 0
        if len(self) == 0:
            raise ValueError(
                f"dataset has {num_samples} samples, fewer than one global batch "
                f"({batch_size} per process x {world_size} processes); lower batch_size or repeat the data")

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch (and how many of its batches were already consumed)."""
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        """Batches per epoch and per rank."""
        return (self.num_samples // self.world_size) // self.batch_size

    def epoch_indices(self) -> list[int]:
        """This rank's sample indices for the current epoch, in order."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            perm = list(range(self.num_samples))
        usable = (self.num_samples // self.world_size) * self.world_size
        return perm[:usable][self.rank::self.world_size]

    def __iter__(self) -> Iterator[BatchIndices]:
        idx, b = self.epoch_indices(), self.batch_size
        for j in range(self.start_batch, len(self)):
            yield BatchIndices(idx[j * b:(j + 1) * b], batch_seed(self.seed, self.epoch, j, self.rank))


class BatchStream:
    """An endless iterator of collated batches whose position is ``(epoch, consumed)``.

    The position counts batches handed to the trainer, not batches prefetched by workers, so
    a checkpoint taken after step ``t`` resumes with batch ``t+1`` whatever the workers did.
    Workers are not persistent: each epoch starts fresh workers that see ``set_epoch``.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0, pin_memory: bool = False):
        self.dataset, self.seed = dataset, seed
        self.sampler = ResumableBatchSampler(len(dataset), batch_size, seed=seed, shuffle=shuffle,
                                             rank=rank, world_size=world_size)
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.epoch, self.consumed = 0, 0
        self._it: Iterator | None = None

    def state_dict(self) -> dict:
        """The position to resume from."""
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        """Continue at ``consumed`` batches into ``epoch`` (no batch is loaded to skip)."""
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
        self._it = None

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> dict:
        if self._it is None:
            self._it = self._start_epoch()
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.consumed = self.epoch + 1, 0
            self._it = self._start_epoch()
            batch = next(self._it)
        self.consumed += 1
        return batch

    def _start_epoch(self) -> Iterator:
        """A loader iterator for the current epoch, skipping the consumed batches.

        The loader gets its own generator seeded by (seed, epoch): DataLoader otherwise draws a
        worker base seed from the *global* torch RNG at every ``iter()``, which would make the
        global RNG stream depend on where a run was resumed.
        """
        self.sampler.set_epoch(self.epoch, self.consumed)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + 1)
        loader = DataLoader(_SeededBatches(self.dataset), batch_sampler=self.sampler, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, generator=g)
        return iter(loader)
