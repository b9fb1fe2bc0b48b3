"""The super-resolution domain: datasets, MATLAB bicubic, the papers' PSNR/SSIM, tiled inference, evaluation.

Nothing here knows about pruning or training loops: the trainer (:mod:`graphprune.train`) takes any
dataset of ``{"lr", "hr"}`` pairs, and the compress application (:mod:`graphprune.compress`) builds
these datasets from a recipe and evaluates with them.
"""
from .data import (ImagePair, PairedImageDataset, benchmark_set, bicubic_lr, demo_dataset, div2k,
                   modcrop, parse_index_range, scan_folder_pairs)
from .evaluate import bicubic_scores, evaluate, upscale
from .imresize import imresize, imresize_torch
from .metrics import MetricAverager, calculate_psnr, calculate_ssim, rgb_to_y
from .tiling import tiled_forward

__all__ = ["ImagePair", "PairedImageDataset", "benchmark_set", "bicubic_lr", "demo_dataset", "div2k",
           "modcrop", "parse_index_range", "scan_folder_pairs", "bicubic_scores", "evaluate", "upscale",
           "imresize", "imresize_torch", "MetricAverager", "calculate_psnr", "calculate_ssim",
           "rgb_to_y", "tiled_forward"]
