"""Training support: data, metrics, tiled inference and the generic SR trainer."""

# -- trainer (loop, hooks, schedules, checkpoints, distributed) --
from .checkpoint import CheckpointError, atomic_save, latest_good_checkpoint, load_checkpoint
from .distributed import (get_rank, get_world_size, init_distributed, destroy_distributed,
                          is_main_process, unwrap)
from .hooks import CheckpointHook, EMAHook, EvalHook, HookBase, LoggerHook
from .sampler import BatchStream, ResumableBatchSampler
from .schedules import build_schedule
from .trainer import Trainer, TrainConfig, TrainConfigError, build_loss, build_optimizer, psnr_eval_fn

# -- data, metrics, MATLAB bicubic, tiled inference --
from .data import (ImagePair, PairedImageDataset, benchmark_set, bicubic_lr, demo_dataset, div2k,
                   modcrop, parse_index_range, scan_folder_pairs)
from .imresize import imresize, imresize_torch
from .metrics import MetricAverager, calculate_psnr, calculate_ssim, rgb_to_y
from .tiling import tiled_forward
