"""The generic SR trainer: one loop, hooks, schedules, exact-resume checkpoints, DDP.

Datasets, metrics and tiled inference live in :mod:`graphprune.sr`; the trainer takes any dataset
of ``{"lr", "hr"}`` pairs.
"""
from .checkpoint import CheckpointError, atomic_save, latest_good_checkpoint, load_checkpoint
from .distributed import (get_rank, get_world_size, init_distributed, destroy_distributed,
                          is_main_process, unwrap)
from .hooks import CheckpointHook, EMAHook, EvalHook, HookBase, LoggerHook
from .interrupt import TrainingInterrupted
from .sampler import BatchStream, ResumableBatchSampler
from .schedules import build_schedule
from .trainer import Trainer, TrainConfig, TrainConfigError, build_loss, build_optimizer, psnr_eval_fn
