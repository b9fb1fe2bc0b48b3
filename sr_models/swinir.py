"""SwinIR-light: SwinIR: Image Restoration Using Swin Transformer (Liang et al., ICCVW 2021), the
lightweight SR configuration (embed_dim 60, depths [6, 6, 6, 6], heads [6, 6, 6, 6], window 8,
mlp_ratio 2, upsampler ``pixelshuffledirect``, img_range 1).

Layout and state-dict names follow the official ``network_swinir.py``: ``conv_first``, ``patch_embed``
(with ``norm``), ``layers`` of RSTBs (``residual_group.blocks.i`` with ``norm1``, ``attn.qkv``,
``attn.proj``, ``attn.relative_position_bias_table``, ``norm2``, ``mlp.fc1/fc2``, then a 3x3 ``conv``),
``norm``, ``conv_after_body``, ``upsample = Sequential(conv(F, 3 s^2), PixelShuffle(s))``.

Differences from the official code, all for ``torch.fx`` tracing and arbitrary input sizes:
* the input is reflect-padded to a multiple of the window size with sizes computed as ``(-h) % ws``
  (fx records the arithmetic; nothing reaches a Python ``if``) and the output cropped back;
* the shifted-window attention mask is built for the actual (padded) size by ``window_attention_mask``,
  a function registered with ``torch.fx.wrap`` (one graph node), once per forward and shared by all
  shifted blocks; no ``attn_mask`` buffers are stored (official checkpoints' ``attn_mask`` keys are
  ignored on load) and the official rule "no shift if the training patch fits in one window" is not used;
* reshapes use ``-1`` / ``unflatten`` instead of channel-count constants, so a pruned width needs no
  rewritten constants (the number of heads is a constant; head dimension follows from the width);
* ``DropPath`` (drop_path_rate 0.1 as official) is decided on ``self.training`` at trace time: a
  module traced in eval mode has no stochastic depth.
The images are in [0, 1]; ``mean`` is a non-persistent buffer.

For a pruning analysis: LayerNorm over channels in (B, L, C) layout, Linear layers, qkv reshaped into
(3, heads, head_dim) (a head-structured split of one Linear's outputs), attention matmuls, windows
built by view/permute (spatial only), a residual stream across Linear and conv layers, pixel shuffle.

Parameters: 0.91M x2, 0.92M x3, 0.93M x4 (relative-position indices are buffers, not counted).
"""
from __future__ import annotations

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from ._builder import build_model
from ._layers import DIV2K_RGB_MEAN, check_scale
from ._registry import register_model

__all__ = ["SwinIR", "window_attention_mask"]


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws, ws, C)."""
    h, w = x.shape[1], x.shape[2]
    x = x.unflatten(1, (h // window_size, window_size)).unflatten(3, (w // window_size, window_size))
    return x.permute(0, 1, 3, 2, 4, 5).flatten(0, 2)


def window_reverse(windows: torch.Tensor, window_size: int, h, w) -> torch.Tensor:
    """(B * nW, ws, ws, C) -> (B, H, W, C)."""
    x = windows.unflatten(0, (-1, h // window_size, w // window_size))
    return x.permute(0, 1, 3, 2, 4, 5).flatten(3, 4).flatten(1, 2)


def window_attention_mask(h: int, w: int, window_size: int, shift_size: int,
                          device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Shifted-window attention mask (nW, ws*ws, ws*ws) of 0 / -100 for an (h, w) feature map.

    Recorded by ``torch.fx`` as one call (``torch.fx.wrap``), so its Python control flow on the
    spatial size never reaches the traced graph. It takes sizes, not the feature map, so that a
    pruning analysis sees no channel dependence here.
    """
    h, w = int(h), int(w)
    img_mask = torch.zeros((1, h, w, 1), device=device)
    cuts = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    cnt = 0
    for hs in cuts:
        for ws in cuts:
            img_mask[:, hs, ws, :] = cnt
            cnt += 1
    mask_windows = window_partition(img_mask, window_size).flatten(1)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)
    return attn_mask if dtype is None else attn_mask.to(dtype)


torch.fx.wrap("window_attention_mask")


class DropPath(nn.Module):
    """Stochastic depth on (B, L, C) tensors; identity in eval mode or with ``drop_prob == 0``."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = torch.floor(keep + torch.rand_like(x[:, :1, :1]))
        return x / keep * mask


class Mlp(nn.Module):
    """``fc2(drop(gelu(fc1(x))))``."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention(nn.Module):
    """Window multi-head self-attention with a learned relative position bias table."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window_size - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)
        self.softmax = nn.Softmax(dim=-1)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n = self.window_size * self.window_size
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            attn = attn.unflatten(0, (-1, mask.shape[0])) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.flatten(0, 1)
        attn = self.attn_drop(self.softmax(attn))
        x = (attn @ v).transpose(1, 2).flatten(2)
        return self.proj_drop(self.proj(x))


class SwinTransformerBlock(nn.Module):
    """(Shifted) window attention + MLP, each pre-normed with a residual add."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float,
                 qkv_bias: bool, drop_path: float):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "attn_mask", None)  # official checkpoints store the training-size mask
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, x_size, mask: torch.Tensor) -> torch.Tensor:
        h, w = x_size
        ws, s = self.window_size, self.shift_size
        y = self.norm1(x).unflatten(1, (h, w))
        if s > 0:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(y, ws).flatten(1, 2)
        windows = self.attn(windows, mask if s > 0 else None)
        y = window_reverse(windows.unflatten(1, (ws, ws)), ws, h, w)
        if s > 0:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + self.drop_path(y.flatten(1, 2))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    """``depth`` Swin blocks alternating regular and shifted windows."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 qkv_bias: bool, drop_path: list[float]):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                 mlp_ratio, qkv_bias, drop_path[i])
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, x_size, mask: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, x_size, mask)
        return x


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, HW, C), optionally LayerNorm-ed."""

    def __init__(self, embed_dim: int, norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class PatchUnEmbed(nn.Module):
    """(B, HW, C) -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor, x_size) -> torch.Tensor:
        return x.transpose(1, 2).unflatten(2, x_size)


class RSTB(nn.Module):
    """Residual Swin Transformer block: ``x + embed(conv(unembed(blocks(x))))``."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 qkv_bias: bool, drop_path: list[float]):
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop_path)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim, norm=False)
        self.patch_unembed = PatchUnEmbed()

    def forward(self, x: torch.Tensor, x_size, mask: torch.Tensor) -> torch.Tensor:
        y = self.patch_unembed(self.residual_group(x, x_size, mask), x_size)
        return self.patch_embed(self.conv(y)) + x


class SwinIR(nn.Module):
    """SwinIR with the ``pixelshuffledirect`` upsampler (the lightweight SR model); images in [0, 1]."""

    def __init__(
        self,
        scale: int = 2,
        embed_dim: int = 60,
        depths=(6, 6, 6, 6),
        num_heads=(6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        img_range: float = 1.0,
        n_colors: int = 3,
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} must have the same length")
        if n_colors != 3:
            raise ValueError(f"n_colors must be 3 (the RGB mean is subtracted), got {n_colors}")
        self.scale = check_scale(scale)
        self.rgb_range = 1
        self.img_range = img_range
        self.window_size = window_size
        self.register_buffer("mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(n_colors, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=True)
        self.patch_unembed = PatchUnEmbed()
        self.pos_drop = nn.Dropout(0.0)
        n_blocks = sum(depths)
        dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]  # torch.linspace, device-free
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, nh, window_size, mlp_ratio, qkv_bias, dpr[s0:s0 + d])
            for d, nh, s0 in zip(depths, num_heads, starts)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.upsample = nn.Sequential(
            nn.Conv2d(embed_dim, n_colors * self.scale**2, 3, 1, 1), nn.PixelShuffle(self.scale)
        )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        mask = window_attention_mask(x.shape[-2], x.shape[-1], self.window_size, self.window_size // 2,
                                     x.device, x.dtype)
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x, x_size, mask)
        return self.patch_unembed(self.norm(x), x_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        ws = self.window_size
        x = F.pad(x, (0, (-w) % ws, 0, (-h) % ws), mode="reflect")
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.upsample(x) / self.img_range + self.mean
        return x[:, :, : h * self.scale, : w * self.scale]


def _create_swinir(variant: str, **kwargs) -> SwinIR:
    return build_model(SwinIR, variant, **kwargs)


@register_model
def swinir_light_x2(**kwargs) -> SwinIR:
    """SwinIR-light x2 (embed 60, depths 4x6, heads 4x6, window 8, pixelshuffledirect)."""
    model_args = dict(scale=2, embed_dim=60, depths=(6, 6, 6, 6), num_heads=(6, 6, 6, 6), window_size=8, mlp_ratio=2.0)
    return _create_swinir("swinir_light_x2", **dict(model_args, **kwargs))


@register_model
def swinir_light_x3(**kwargs) -> SwinIR:
    """SwinIR-light x3 (embed 60, depths 4x6, heads 4x6, window 8, pixelshuffledirect)."""
    model_args = dict(scale=3, embed_dim=60, depths=(6, 6, 6, 6), num_heads=(6, 6, 6, 6), window_size=8, mlp_ratio=2.0)
    return _create_swinir("swinir_light_x3", **dict(model_args, **kwargs))


@register_model
def swinir_light_x4(**kwargs) -> SwinIR:
    """SwinIR-light x4 (embed 60, depths 4x6, heads 4x6, window 8, pixelshuffledirect)."""
    model_args = dict(scale=4, embed_dim=60, depths=(6, 6, 6, 6), num_heads=(6, 6, 6, 6), window_size=8, mlp_ratio=2.0)
    return _create_swinir("swinir_light_x4", **dict(model_args, **kwargs))
