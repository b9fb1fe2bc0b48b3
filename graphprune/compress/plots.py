"""Pictures for the compress report: kept channels, training curves, and a crop comparison.

Each function draws with matplotlib's Agg backend (no display needed), writes one PNG atomically
(no partial file on error) and returns its path, so the report can link it::

    from graphprune import report_plots as rp
    rp.plot_kept_channels(groups_table, run_dir / "kept_channels.png")
    rp.plot_curves(records, run_dir / "curves.png")            # records: the JSONL log, parsed
    rp.plot_crops({"LR": lr, "bicubic": bic, "dense": sr0, "pruned": sr1, "HR": hr},
                  run_dir / "crops.png", box=(y, x, h, w))
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..files import save_figure

__all__ = ["plot_kept_channels", "plot_curves", "plot_crops", "CURVE_KEYS"]

#: (log key, panel title, y label): panels are drawn in this order, for the keys present.
CURVE_KEYS = (("loss", "training loss", "loss"),
              ("psnr", "validation PSNR", "PSNR (dB)"),
              ("lambda_max", "penalty schedule", "max \u03bb"))

_DENSE, _KEPT = "#c9ced6", "#2f81c7"


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    plt = _plt()
    path = Path(path)
    if not path.parent.is_dir():
        plt.close(fig)
        raise FileNotFoundError(f"output directory does not exist: {path.parent}")
    return save_figure(fig, path, dpi=dpi, fmt="png", bbox_inches="tight")


def _group_label(row: Mapping) -> str:
    mods = list(row.get("modules") or [])
    if not mods:
        return f"#{row['id']}"
    first = mods[0] if len(mods[0]) <= 22 else "\u2026" + mods[0][-21:]
    return f"#{row['id']} {first}" + (f" +{len(mods) - 1}" if len(mods) > 1 else "")


def plot_kept_channels(groups_table: Sequence[Mapping], path: str | os.PathLike, *, max_bars: int = 60,
                       title: str = "channels per group: dense vs pruned") -> Path:
    """Bar chart of every group's dense size (grey) and kept channels (blue).

    Parameters
    ----------
    groups_table : list of dict
        One row per group: ``{"id": int, "size": int, "kept": int, "modules": [str, ...]}``
        (``kept`` may be missing or None for a group the plan did not touch: then it is ``size``).
    path : str or Path
        The PNG to write.
    max_bars : int
        Beyond this many groups only the groups that lost channels are drawn, then the
        largest ones, so deep networks stay legible.
    """
    rows = [dict(r, kept=r["size"] if r.get("kept") is None else r["kept"]) for r in groups_table]
    if not rows:
        raise ValueError("plot_kept_channels needs at least one group row")
    for r in rows:
        if not 0 <= r["kept"] <= r["size"]:
            raise ValueError(f"group {r['id']}: kept={r['kept']} is outside [0, size={r['size']}]")
    shown = rows
    if len(rows) > max_bars:
        changed = [r for r in rows if r["kept"] < r["size"]] or rows
        shown = sorted(sorted(changed, key=lambda r: -r["size"])[:max_bars], key=lambda r: r["id"])
    plt = _plt()
    h = max(2.6, 0.22 * len(shown) + 1.2)
    fig, ax = plt.subplots(figsize=(8.5, h))
    y = np.arange(len(shown))
    ax.barh(y, [r["size"] for r in shown], color=_DENSE, label="dense", height=0.8)
    ax.barh(y, [r["kept"] for r in shown], color=_KEPT, label="pruned (kept)", height=0.55)
    for yi, r in zip(y, shown):
        ax.text(r["size"], yi, f" {r['kept']}/{r['size']}", va="center", fontsize=7, color="#333")
    ax.set_yticks(y, [_group_label(r) for r in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("channels")
    dense, kept = sum(r["size"] for r in rows), sum(r["kept"] for r in rows)
    more = f", {len(shown)} of {len(rows)} groups shown" if len(shown) < len(rows) else ""
    ax.set_title(f"{title}\n{kept}/{dense} channels kept ({100 * kept / dense:.1f}%){more}", fontsize=10)
    ax.set_xlim(0, max(r["size"] for r in shown) * 1.15)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / h - 0.04), ncol=2, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _series(records: Iterable[Mapping], key: str, x_key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, r in enumerate(records):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            x = r.get(x_key, i)
            xs.append(float(x) if isinstance(x, (int, float)) else float(i))
            ys.append(float(v))
    return xs, ys


def plot_curves(log_records: Sequence[Mapping], path: str | os.PathLike, *, x_key: str = "iter",
                keys: Sequence[tuple[str, str, str]] = CURVE_KEYS, phases: Mapping[str, float] | None = None) -> Path:
    """Training loss, validation PSNR and the penalty schedule over iterations, one panel each.

    Parameters
    ----------
    log_records : list of dict
        Parsed lines of the JSONL training log. Records without a key (a validation record has
        no loss, a training record no PSNR) are skipped for that panel; panels whose key never
        appears are left out.
    path : str or Path
    x_key : str
        The iteration key (records without it use their position).
    keys : sequence of (key, title, ylabel)
    phases : dict, optional
        Named iterations to mark with a vertical line, e.g. ``{"prune": 40000}``.
    """
    panels = [(k, t, yl, *_series(log_records, k, x_key)) for k, t, yl in keys]
    panels = [p for p in panels if p[3]]
    if not panels:
        raise ValueError(f"no plottable values: the records have none of {', '.join(k for k, _, _ in keys)}")
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.3 * len(panels) + 0.4), sharex=True, squeeze=False)
    for ax, (key, title, ylabel, xs, ys) in zip(axes[:, 0], panels):
        many = len(xs) > 200
        ax.plot(xs, ys, lw=0.8 if many else 1.4, marker=None if many else ".", ms=4, color="#2f81c7", label=key)
        if key == "loss" and len(ys) > 20:  # a smoothed line over the noisy training loss
            k = max(2, len(ys) // 50)
            sm = np.convolve(ys, np.ones(k) / k, mode="valid")
            ax.plot(xs[k - 1:], sm, lw=1.6, color="#cf222e", label=f"mean of {k}")
            ax.legend(fontsize=7, loc="upper right")
            if min(ys) > 0 and max(ys) / min(ys) > 50:
                ax.set_yscale("log")
        if key == "psnr":
            best = int(np.argmax(ys))
            ax.annotate(f"best {ys[best]:.2f} dB", (xs[best], ys[best]), fontsize=7,
                        xytext=(4, -12), textcoords="offset points")
        for name, it in (phases or {}).items():
            ax.axvline(it, color="#9a6700", lw=0.8, ls="--")
            ax.text(it, 1.0, f" {name}", transform=ax.get_xaxis_transform(), fontsize=7, va="top", color="#9a6700")
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("iteration" if x_key == "iter" else x_key, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _crop(img: np.ndarray, box, factor: int) -> np.ndarray:
    if box is None:
        return img
    y, x, h, w = (int(round(v / factor)) for v in box)
    out = img[y:y + max(1, h), x:x + max(1, w)]
    if out.size == 0:
        raise ValueError(f"crop box {tuple(box)} is outside an image of shape {img.shape}")
    return out


def plot_crops(images: Mapping[str, np.ndarray], path: str | os.PathLike, box=None, *,
               titles: Mapping[str, str] | None = None) -> Path:
    """Side-by-side crops (LR nearest-upscaled, bicubic, dense, pruned, HR, in the given order).

    Parameters
    ----------
    images : dict name -> HxWx3 uint8 array
        Images smaller than the largest one by an integer factor (the LR input) are upscaled
        with nearest neighbour so every crop shows the same region at the same size.
    path : str or Path
    box : (y, x, h, w), optional
        The crop in the coordinates of the largest image (HR); default: the whole image.
    titles : dict, optional
        Extra caption per image (e.g. ``{"pruned": "27.81 dB"}``).
    """
    if not images:
        raise ValueError("plot_crops needs at least one image")
    arrays = {}
    for name, img in images.items():
        a = np.asarray(img)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"image {name!r} must be HxWx3, got shape {a.shape}")
        if a.dtype != np.uint8:
            raise ValueError(f"image {name!r} must be uint8, got {a.dtype}")
        arrays[name] = a
    H = max(a.shape[0] for a in arrays.values())
    W = max(a.shape[1] for a in arrays.values())
    crops = {}
    for name, a in arrays.items():
        f = round(H / a.shape[0])
        if f < 1 or abs(a.shape[0] * f - H) >= f or abs(a.shape[1] * f - W) >= f:
            raise ValueError(f"image {name!r} of shape {a.shape[:2]} is not an integer downscale of {H}x{W}")
        c = _crop(a, box, f)
        crops[name] = np.repeat(np.repeat(c, f, axis=0), f, axis=1) if f > 1 else c
    plt = _plt()
    n = len(crops)
    ch, cw = next(iter(crops.values())).shape[:2]
    panel = 2.6
    fig, axes = plt.subplots(1, n, figsize=(panel * n, panel * ch / cw + 0.45), squeeze=False)
    for ax, (name, c) in zip(axes[0], crops.items()):
        ax.imshow(c, interpolation="nearest")
        extra = (titles or {}).get(name)
        ax.set_title(name + (f"\n{extra}" if extra else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path, dpi=100)
