"""The SR and restoration networks people download, as spandrel builds them from a checkpoint (issue 10).

One entry per architecture of ``spandrel.MAIN_REGISTRY`` (spandrel 0.4.2; the upstream code lives in
``spandrel.architectures.<Name>.__arch``), each at the **lightest configuration its paper or repository
publishes** (sources in :data:`CATALOG`; where even that is too slow to analyse on 2 CPU cores, a
reduced-depth variant of it, said so in ``reduced``). Building an entry does what a user's checkpoint
goes through:

1. the upstream class is built with its own random init, seeded (``torch.manual_seed(0)``);
2. every floating-point parameter the init leaves at exactly zero (layer-scale gammas, zero-initialised
   last convs and biases) is filled with seeded noise (std 0.02), so the state dict looks like a trained
   checkpoint and an equivalence check sees every branch (a zero-gated branch hides any error in it);
3. its ``state_dict()`` goes through spandrel's own detection (``ModelLoader().load_from_state_dict``,
   via ``graphprune.loaders.load_spandrel``, which also sets ``model.gp_spec`` for ``graphprune.save``):
   the model under test is the one spandrel builds, with the hyperparameters spandrel detects.

Skipped (see :data:`SKIPPED`): face restoration (GFPGAN, RestoreFormer), inpainting (LaMa), the
GAN upsampler AuraSR, and architectures over 50 M parameters at their lightest published config
(IPT, FBCNN).

Inputs respect the descriptor's ``size_requirements`` (minimum, multiple_of, square): the example input
is the smallest valid square size >= 32, the second input another valid size, non-square where allowed
and, where the architecture accepts any size, not a multiple of 8 (so window padding code runs).
Values are uniform in [0, 1] (spandrel's convention), seeded. Nothing is downloaded.

>>> "SwinIR" in names() and "AuraSR" not in names()
True
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["Entry", "CATALOG", "SKIPPED", "names", "entry", "build", "input_sizes"]

BASE_SIZE = 32  # smallest example side: window attention needs a few windows, CPU time stays small


@dataclass(frozen=True)
class Entry:
    """One architecture at one published configuration."""

    name: str                     # catalog name (the spandrel arch id, or the class for a second class)
    arch: str                     # spandrel architecture id (module under spandrel.architectures)
    cls: str                      # the upstream class in that module
    kwargs: dict[str, Any]        # constructor arguments
    config: str                   # which published configuration, and where it is published
    reduced: str = ""             # how it departs from the published config ("" = as published)
    extra_in: int = 0             # input channels the descriptor's call_fn adds (DRUNet's noise map)


_SWIN_LIGHT = dict(img_size=64, window_size=8, img_range=1.0, depths=[6, 6, 6, 6], embed_dim=60,
                   num_heads=[6, 6, 6, 6], mlp_ratio=2, upsampler="pixelshuffledirect", resi_connection="1conv")

CATALOG: tuple[Entry, ...] = (
    Entry("Compact", "Compact", "Compact", dict(num_feat=64, num_conv=16, upscale=4, act_type="prelu"),
          "Real-ESRGAN realesr-animevideov3 (SRVGGNetCompact, 16 convs)"),
    Entry("SwiftSRGAN", "SwiftSRGAN", "SwiftSRGAN", dict(num_channels=64, num_blocks=16, upscale_factor=4),
          "Swift-SRGAN x4 (Krishnan & Nayak 2021, the released generator)"),
    Entry("ESRGAN", "ESRGAN", "ESRGAN", dict(num_filters=64, num_blocks=6, scale=4),
          "Real-ESRGAN RealESRGAN_x4plus_anime_6B (RRDBNet, 6 blocks)"),
    Entry("SwinIR", "SwinIR", "SwinIR", dict(_SWIN_LIGHT, upscale=4),
          "SwinIR-light x4 (lightweightSR: dim 60, depths 6x4, heads 6x4, window 8, pixelshuffledirect)"),
    Entry("Swin2SR", "Swin2SR", "Swin2SR", dict(_SWIN_LIGHT, upscale=2),
          "Swin2SR lightweight x2 (Swin2SR_Lightweight_X2_64)"),
    Entry("HAT", "HAT", "HAT",
          dict(upscale=4, img_size=64, window_size=16, compress_ratio=24, squeeze_factor=24, conv_scale=0.01,
               overlap_ratio=0.5, img_range=1.0, depths=[6] * 6, embed_dim=144, num_heads=[6] * 6,
               mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv"),
          "HAT-S x4 (HAT_S_SRx4: dim 144, depths 6x6, window 16, compress/squeeze 24)"),
    Entry("GRL", "GRL", "GRL",
          dict(upscale=4, img_size=64, window_size=8, depths=[4, 4, 4, 4], embed_dim=32,
               num_heads_window=[2, 2, 2, 2], num_heads_stripe=[2, 2, 2, 2], mlp_ratio=2,
               qkv_proj_type="linear", anchor_proj_type="avgpool", anchor_window_down_factor=2,
               out_proj_type="linear", conv_type="1conv", upsampler="pixelshuffledirect"),
          "GRL-T x4 (the tiny training config spandrel's tests list)"),
    Entry("OmniSR", "OmniSR", "OmniSR", dict(num_feat=64, block_num=1, window_size=8, res_num=5, up_scale=4),
          "Omni-SR x4 (official: 64 feats, 5 OSAGs, window 8)"),
    Entry("DAT", "DAT", "DAT",
          dict(upscale=4, img_size=64, img_range=1.0, depth=[18], embed_dim=60, num_heads=[6],
               expansion_factor=2, resi_connection="3conv", split_size=[8, 32], upsampler="pixelshuffledirect"),
          "DAT-light x4 (dim 60, one group of 18 blocks, split 8x32, pixelshuffledirect)"),
    Entry("RGT", "RGT", "RGT",
          dict(upscale=4, img_size=64, img_range=1.0, depth=[6] * 6, embed_dim=180, num_heads=[6] * 6,
               mlp_ratio=2, resi_connection="1conv", split_size=[8, 32], c_ratio=0.5),
          "RGT-S x4 (dim 180, depths 6x6, split 8x32)"),
    Entry("CRAFT", "CRAFT", "CRAFT",
          dict(upscale=4, window_size=16, embed_dim=48, depths=[2, 2, 2, 2], num_heads=[6, 6, 6, 6],
               split_size_0=4, split_size_1=16, mlp_ratio=2.0, resi_connection="1conv"),
          "CRAFT x4 (official: dim 48, depths 2x4, window 16, split 4/16)"),
    Entry("ATD", "ATD", "ATD",
          dict(upscale=4, img_size=64, embed_dim=48, depths=[6, 6, 6, 6], num_heads=[4, 4, 4, 4],
               window_size=16, category_size=128, num_tokens=64, reducted_dim=8, convffn_kernel_size=7,
               mlp_ratio=1, upsampler="pixelshuffledirect", resi_connection="1conv"),
          "ATD-light x4 (dim 48, depths 6x4, window 16, 64 tokens)"),
    Entry("DRCT", "DRCT", "DRCT",
          dict(upscale=4, img_size=64, window_size=16, depths=[6] * 6, embed_dim=180, num_heads=[6] * 6,
               mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv", gc=32),
          "DRCT x4 (the smallest released: dim 180, depths 6x6, window 16, gc 32)"),
    Entry("DITN", "DITN", "DITN", dict(dim=60, ITL_blocks=4, SAL_blocks=4, UFONE_blocks=1, upscale=4),
          "DITN x4 (official: dim 60, 4 ITL, 4 SAL, 1 UFONE)"),
    Entry("SPAN", "SPAN", "SPAN", dict(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4),
          "SPAN x4 ch48 (NTIRE 2024 ESR winner, spanx4_ch48)"),
    Entry("SAFMN", "SAFMN", "SAFMN", dict(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=4),
          "SAFMN x4 (official: dim 36, 8 blocks)"),
    Entry("SAFMNBCIE", "SAFMNBCIE", "SAFMNBCIE",
          dict(dim=128, n_blocks=8, num_layers=6, ffn_scale=2.0, upscaling_factor=2),
          "SAFMN-BCIE x2 (the released NTIRE 2024 BCIE model: dim 128, 8 blocks, 6 layers)"),
    Entry("DCTLSA", "DCTLSA", "DCTLSA", dict(in_nc=3, nf=55, num_modules=6, out_nc=3, upscale=4),
          "DCTLSA x4 (official: 55 feats, 6 modules)"),
    Entry("RealCUGAN", "RealCUGAN", "UpCunet2x", dict(in_channels=3, out_channels=3),
          "Real-CUGAN up2x (UpCunet2x, the conservative/denoise models)"),
    Entry("MMRealSR", "MMRealSR", "MMRealSR",
          dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, de_net_type="DEResNet",
               num_degradation=2, degradation_degree_actv="sigmoid", num_feats=[64, 64, 64, 128],
               num_blocks=[2, 2, 2, 2], downscales=[1, 1, 2, 1]),
          "MMRealSRNet x4 (official: RRDB 23 blocks + DEResNet)"),
    Entry("PLKSR", "PLKSR", "PLKSR",
          dict(dim=64, n_blocks=12, upscaling_factor=4, ccm_type="DCCM", kernel_size=13, split_ratio=0.25,
               lk_type="PLK", use_ea=False),
          "PLKSR-tiny x4 (official: dim 64, 12 blocks, kernel 13, DCCM, no EA)"),
    Entry("RealPLKSR", "PLKSR", "RealPLKSR", dict(dim=64, n_blocks=28, upscaling_factor=4, kernel_size=17),
          "RealPLKSR x4 (neosr's released config: dim 64, 28 blocks, kernel 17)"),
    Entry("SeemoRe", "SeemoRe", "SeemoRe",
          dict(scale=2, in_chans=3, num_experts=3, img_range=1, num_layers=6, embedding_dim=36, use_shuffle=True,
               lr_space="exp", topk=1, recursive=2, global_kernel_size=11),
          "SeemoRe-T x2 (official tiny config)"),
    Entry("MoSR", "MoSR", "MoSR", dict(upscale=4, n_block=24, dim=64, upsampler="ps"),
          "MoSR x4 (the released 4x_nomos2_mosr config)"),
    Entry("MoESR", "MoESR", "MoESR", dict(scale=4, dim=64, n_blocks=9, n_block=4),
          "MoESR2 x4 (the released 4x_df2k_moesr config: dim 64, 9x4 blocks)"),
    Entry("RCAN", "RCAN", "RCAN", dict(scale=4, n_resgroups=10, n_resblocks=20, n_feats=64),
          "RCAN x4 (official: 10 groups x 20 blocks, 64 feats)"),
    Entry("FDAT", "FDAT", "FDAT",
          dict(scale=2, embed_dim=96, num_groups=2, depth_per_group=2, num_heads=3, window_size=8,
               ffn_expansion_ratio=1.5, aim_reduction_ratio=8, group_block_pattern=None,
               upsampler_type="pixelshuffle", img_range=1.0),
          "FDAT-tiny x2 (dim 96, 2 groups x 2, heads 3, window 8)"),
    Entry("SCUNet", "SCUNet", "SCUNet", dict(in_nc=3, config=[4, 4, 4, 4, 4, 4, 4], dim=64),
          "SCUNet color (official: dim 64, config 4x7; restoration)"),
    Entry("Uformer", "Uformer", "Uformer",
          dict(img_size=128, embed_dim=16, win_size=8, token_projection="linear", token_mlp="leff", modulator=True),
          "Uformer-T (dim 16, window 8, LeFF, modulator; restoration)"),
    Entry("KBNet", "KBNet", "KBNet_l", dict(dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4,
                                           heads=[1, 2, 4, 8], ffn_expansion_factor=1.5, bias=False),
          "KBNet-L (the released 1x-KBNet_derain: dim 48; the SIDD KBNet-S at width 64 is 140 M; restoration)"),
    Entry("NAFNet", "NAFNet", "NAFNet",
          dict(img_channel=3, width=32, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28], dec_blk_nums=[1, 1, 1, 1]),
          "NAFNet-GoPro-width32 (official deblurring config; restoration)"),
    Entry("FFTformer", "FFTformer", "FFTformer", dict(dim=48, num_blocks=[6, 6, 12], num_refinement_blocks=4,
                                                       ffn_expansion_factor=3),
          "FFTformer GoPro (official: dim 48, blocks 6/6/12; restoration)"),
    Entry("MixDehazeNet", "MixDehazeNet", "MixDehazeNet", dict(embed_dims=[24, 48, 96, 48, 24], depths=[1, 1, 2, 1, 1]),
          "MixDehazeNet-T (official tiny: dims 24/48/96, depths 1/1/2/1/1; restoration)"),
    Entry("DRUNet", "DRUNet", "DRUNet", dict(in_nc=4, out_nc=3, nc=[64, 128, 256, 512], nb=4),
          "DRUNet color (drunet_color, KAIR; restoration)", extra_in=1),
    Entry("DnCNN", "DnCNN", "DnCNN", dict(in_nc=1, out_nc=1, nc=64, nb=17, act_mode="R"),
          "DnCNN-S gray (KAIR dncnn_25: 17 layers, BN merged; restoration)"),
    Entry("RetinexFormer", "RetinexFormer", "RetinexFormer", dict(n_feat=40, stage=1, num_blocks=[1, 2, 2]),
          "Retinexformer (official LOL config: 40 feats, 1 stage, blocks 1/2/2; low-light)"),
    Entry("HVICIDNet", "HVICIDNet", "HVICIDNet", dict(channels=[36, 36, 72, 144], heads=[1, 2, 4, 8]),
          "HVI-CIDNet (official: channels 36/36/72/144; low-light)"),
)

SKIPPED: dict[str, str] = {
    "GFPGAN": "face restoration (a StyleGAN2 decoder for 512x512 aligned faces)",
    "RestoreFormer": "face restoration (VQ codebook decoder for 512x512 aligned faces)",
    "LaMa": "inpainting (takes an image and a mask)",
    "AuraSR": "GAN upsampler (GigaGAN, ~600 M parameters)",
    "IPT": "over 50 M parameters (the only published config, ~115 M)",
    "FBCNN": "over 50 M parameters (the only published config, ~72 M)",
}


def names() -> list[str]:
    """The catalog's entry names, in catalog order."""
    return [e.name for e in CATALOG]


def entry(name: str) -> Entry:
    """The :class:`Entry` called ``name`` (one-line error listing the names otherwise)."""
    for e in CATALOG:
        if e.name == name:
            return e
    why = f" (skipped: {SKIPPED[name]})" if name in SKIPPED else ""
    raise KeyError(f"no catalog entry {name!r}{why}; entries: {', '.join(names())}")


def input_sizes(minimum: int = 0, multiple_of: int = 1, square: bool = False) -> tuple[tuple[int, int], tuple[int, int]]:
    """The example (H, W) and a second, different valid (H, W) for spandrel's size requirements.

    >>> input_sizes()
    ((32, 32), (36, 44))
    >>> input_sizes(minimum=40, multiple_of=16)
    ((48, 48), (64, 80))
    >>> input_sizes(multiple_of=8, square=True)
    ((32, 32), (40, 40))
    """
    m = multiple_of
    side = -(-max(minimum, BASE_SIZE) // m) * m
    step = m if m > 1 else 4  # any size allowed: 36 x 44, not multiples of 8 (window padding runs)
    second = (side + step, side + (step if square else 3 * step if m == 1 else 2 * step))
    return (side, side), second


def _fill_zero_params(model, generator) -> int:
    """Give every all-zero floating parameter seeded noise (std 0.02); return how many were filled."""
    import torch

    n = 0
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and p.numel() and not p.any():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
                n += 1
    return n


def build(name: str, seed: int = 0):
    """``(model, example_input, second_input, info)`` for catalog entry ``name``, deterministic.

    ``model`` is spandrel's ``descriptor.model`` (the upstream class), in eval mode. ``info`` holds the
    arch id, class, constructor kwargs, config and reduction notes, where spandrel's detected
    hyperparameters differ from the given ones (``detected_diff``), scale, purpose ("SR" or "Restoration"), size requirements,
    both input shapes, channel counts, parameter count and the number of zero-initialised parameters filled.
    Pass copies of the inputs to the model: some forwards scale their input in place (RCAN's ``x *= 255``).
    """
    import torch

    from graphprune.loaders import load_spandrel

    e = entry(name)
    cls = getattr(importlib.import_module(f"spandrel.architectures.{e.arch}"), e.cls)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        src = cls(**e.kwargs)
        filled = _fill_zero_params(src, torch.Generator().manual_seed(seed + 1))
    model = load_spandrel(src.state_dict()).eval()
    s = model.gp_spec["spandrel"]
    (h, w), (h2, w2) = input_sizes(**s["size_requirements"])
    c = s["input_channels"] + e.extra_in
    g = torch.Generator().manual_seed(seed + 2)
    x, x2 = torch.rand(1, c, h, w, generator=g), torch.rand(1, c, h2, w2, generator=g)
    info = {
        "name": e.name, "arch": s["arch"], "class": type(model).__name__, "kwargs": e.kwargs,
        "config": e.config, "reduced": e.reduced, "scale": s["scale"], "purpose": s["purpose"],
        "size_requirements": s["size_requirements"], "input": list(x.shape), "second_input": list(x2.shape),
        "in_channels": c, "out_channels": s["output_channels"],
        "params": sum(p.numel() for p in model.parameters()), "filled_zero_params": filled,
        "detected_diff": hyperparameter_diff(src, model),
    }
    return model, x, x2, info


def hyperparameter_diff(a, b) -> dict[str, list]:
    """``{name: [built with, detected]}`` where spandrel's detection (``b``) differs from the source (``a``).

    spandrel cannot see some hyperparameters in a state dict (GRL's window and stripe sizes, MMRealSR's
    equivalent stage layouts, Uformer's img_size): the model under test is the one it builds, as for a
    user's checkpoint, and the catalog records where that differs from the published config.
    """
    from graphprune.loaders import spandrel_hyperparameters

    (ha, oa), (hb, ob) = spandrel_hyperparameters(a), spandrel_hyperparameters(b)
    ha, hb = {**ha, **oa}, {**hb, **ob}
    return {k: [ha.get(k), hb.get(k)] for k in sorted(set(ha) | set(hb)) if ha.get(k) != hb.get(k)}


if __name__ == "__main__":  # python bench/spandrel_zoo.py: the catalog as a table
    import sys

    for n in (sys.argv[1:] or names()):
        m, x, x2, i = build(n)
        print(f"{n:14s} {i['class']:12s} x{i['scale']} {i['purpose']:11s} {i['params'] / 1e6:7.3f} M  "
              f"{tuple(x.shape[2:])} / {tuple(x2.shape[2:])}  {i['config']}", flush=True)
