"""How much quality each group costs: prune that group alone at a few ratios and measure.

A weight norm says which channels *of one group* matter least; it does not say whether a residual
stream matters more than a block's inner width. A sensitivity does: for every prunable group ``g``
and ratio ``r``, the dense model with only ``g`` pruned by ``r`` (physically, :func:`graphprune.apply`;
no fine-tuning) is scored, and ``drop[g][r] = base − score`` (dB for PSNR). That is the measurement
behind :func:`graphprune.plan.plan`'s ``allocation="sensitivity"``: a budget is spent where a dB
buys the most Mult-Adds or parameters (:func:`graphprune.allocation.global_allocation`).

It costs ``groups × ratios`` prunes and evaluations (LEDSR F256R16: 17 × 3 = 51, about a minute on a
CPU with two small images), so the result is cached on disk, keyed by the model's weights, the
ratios and the data; :meth:`Sensitivity.plot` draws one line per group.

>>> import torch, graphprune as gp
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
>>> x = torch.rand(1, 3, 8, 8)
>>> s = sensitivity(net, metric=lambda m: -float((m(x) - net(x)).abs().mean()), example_input=x,
...                 ratios=(0.5,), progress=False)
>>> s.base, s.drops[0][0] > 0
(-0.0, True)
>>> loss = s.loss(0)          # of the group keeping k channels, for the allocation
>>> loss(8) == 0 < loss(4) < loss(1)
True
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .files import atomic_write

__all__ = ["Sensitivity", "sensitivity", "psnr_metric"]

#: A drop this small per unit of removed fraction squared: ties between groups that cost nothing
#: measurable are spread over them rather than spent on the first.
_TIE = 1e-4


@dataclass
class Sensitivity:
    """Per group, the quality drop at each ratio; ``loss(g)`` turns it into the allocation's loss."""

    metric: str
    base: float
    ratios: list[float]
    drops: dict[int, list[float]]
    sizes: dict[int, int]
    names: dict[int, str] = field(default_factory=dict)
    key: str = ""

    def loss(self, group_id: int) -> Callable[[int], float]:
        """``loss(k)``: the drop with ``k`` of the group's channels kept.

        Piecewise linear in the removed fraction through ``(0, 0)`` and the measured points, made
        non-decreasing (an improvement from pruning counts as none); past the largest ratio it grows
        at least as steeply as it did on average, so no group is emptied because its last measured
        point was cheap.
        """
        size = self.sizes[group_id]
        xs = np.array([0.0, *self.ratios])
        ys = np.maximum.accumulate(np.clip([0.0, *self.drops[group_id]], 0, None))
        slope = max((ys[-1] - ys[-2]) / (xs[-1] - xs[-2]), ys[-1] / xs[-1], _TIE)

        def loss(k: int) -> float:
            r = 1.0 - k / size
            y = np.interp(r, xs, ys) if r <= xs[-1] else ys[-1] + slope * (r - xs[-1])
            return float(y + _TIE * r * r)
        return loss

    # ---- files
    def to_dict(self) -> dict:
        d = asdict(self)
        d["drops"] = {str(k): v for k, v in self.drops.items()}
        d["sizes"] = {str(k): v for k, v in self.sizes.items()}
        d["names"] = {str(k): v for k, v in self.names.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Sensitivity":
        ints = {k: {int(g): v for g, v in d.get(k, {}).items()} for k in ("drops", "sizes", "names")}
        return cls(metric=d["metric"], base=float(d["base"]), ratios=[float(r) for r in d["ratios"]],
                   key=d.get("key", ""), **ints)

    def save(self, path) -> Path:
        return atomic_write(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> "Sensitivity":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a sensitivity file ({type(e).__name__}: {e}); delete it to measure again") from None

    def plot(self, path, title: str | None = None) -> Path:
        """One line per group: the drop against the removed fraction (PNG, written atomically)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        colors = plt.cm.viridis(np.linspace(0, 0.95, max(len(self.drops), 1)))
        for color, (gid, drops) in zip(colors, sorted(self.drops.items())):
            label = f"g{gid} {self.names.get(gid, '')} ({self.sizes[gid]})"
            ax.plot([0, *self.ratios], [0, *drops], marker="o", ms=3, lw=1, color=color, label=label)
        ax.set_xlabel("fraction of the group's channels removed (that group alone)")
        ax.set_ylabel(f"{self.metric} drop" + (" (dB)" if self.metric == "psnr" else ""))
        ax.set_title(title or f"sensitivity per group (dense {self.metric} {self.base:.3f})", fontsize=9)
        ax.grid(alpha=0.3)
        if len(self.drops) <= 20:
            ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        try:
            return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        finally:
            plt.close(fig)


def psnr_metric(data, *, scale: int, rgb_range: float = 255.0, crop_border: int | None = None,
                test_y_channel: bool = True, max_images: int | None = None) -> Callable[[nn.Module], float]:
    """The mean PSNR of a model on a dataset of ``{"lr", "hr"}`` samples (the papers' convention)."""
    from .sr.evaluate import score_images

    class _Head:  # the first max_images samples of the set
        def __len__(self):
            return min(len(data), max_images or len(data))

        def __getitem__(self, i):
            return data[i]

    def metric(model: nn.Module) -> float:
        rows = score_images(model, _Head(), scale=scale, rgb_range=rgb_range, crop_border=crop_border,
                            test_y_channel=test_y_channel, metrics=("psnr",))
        return sum(r["psnr"] for _, r in rows) / len(rows)
    return metric


def sensitivity(model: nn.Module, data=None, metric: str | Callable[[nn.Module], float] = "psnr", *,
                graph=None, example_input: torch.Tensor | None = None, scale: int | None = None,
                ratios: Sequence[float] = (0.25, 0.5, 0.75), criterion="l1", groups: Sequence[int] | None = None,
                cache=None, progress: bool = True, rgb_range: float = 255.0, max_images: int | None = None,
                **analyze_kwargs) -> Sensitivity:
    """Measure every prunable group's quality drop when it alone is pruned at each ratio.

    Parameters
    ----------
    model : nn.Module
        The dense model (trained: a random one is equally bad everywhere).
    data : dataset of ``{"lr", "hr"}`` samples, optional
        With ``metric="psnr"``: the validation images (``max_images`` of them) and ``scale``.
    metric : "psnr" or callable ``f(model) -> float``
        Higher is better; the drop is ``base − f(pruned)``.
    graph : ChannelGraph, optional
        The analysis (else made from ``example_input`` and ``analyze_kwargs`` such as ``ignore``).
    ratios : the fractions each group loses, one at a time.
    criterion : which channels go within a group (as :func:`graphprune.plan.plan`).
    groups : group ids to measure (default: every prunable group).
    cache : path, optional
        A JSON file: reused when it was measured for the same weights, ratios, metric and data, else
        (re)written.
    """
    from .channels import analyze
    from .plan import plan
    from .surgery import apply

    if isinstance(metric, str):
        if metric != "psnr" or data is None or scale is None:
            raise ValueError("sensitivity: metric='psnr' needs data (LR/HR samples) and scale; or pass "
                             "metric=f(model) -> float")
        name, score = "psnr", psnr_metric(data, scale=scale, rgb_range=rgb_range, max_images=max_images)
    else:
        name, score = getattr(metric, "__name__", "metric"), metric
    if graph is None:
        if example_input is None:
            raise ValueError("sensitivity: give graph=analyze(model, x) or example_input=x")
        graph = analyze(model, example_input, **analyze_kwargs)
    ids = [g.id for g in graph.prunable_groups] if groups is None else list(groups)
    ratios = [float(r) for r in ratios]
    key = _key(model, ratios, name, [graph.groups[i].size for i in ids], data, max_images, criterion)
    if cache is not None and Path(cache).is_file():
        cached = Sensitivity.load(cache)
        if cached.key == key:
            return cached
    was = model.training
    model.eval()
    try:
        base = float(score(model))
        drops: dict[int, list[float]] = {}
        bar = _progress(len(ids) * len(ratios), progress)
        for gid in ids:
            drops[gid] = []
            for r in ratios:
                pruned = apply(model, plan(graph, 0.0, ratios={gid: r}, criterion=criterion))
                drops[gid].append(base - float(score(pruned.eval())))
                bar.update(1)
        bar.close()
    finally:
        model.train(was)
    result = Sensitivity(metric=name, base=base, ratios=ratios, drops=drops,
                         sizes={i: graph.groups[i].size for i in ids},
                         names={i: (graph.groups[i].modules("out") or ["?"])[0] for i in ids}, key=key)
    if cache is not None:
        result.save(cache)
    return result


def _key(model: nn.Module, ratios, metric: str, sizes, data, max_images, criterion) -> str:
    """What a cached sensitivity must have been measured with: the weights, ratios, metric and data."""
    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    desc = getattr(data, "pairs", None)
    h.update(json.dumps([ratios, metric, sizes, max_images, str(criterion),
                         [str(getattr(p, "hr", p)) for p in desc] if desc is not None else len(data or ())]).encode())
    return h.hexdigest()


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        enabled = False
    if enabled:
        return tqdm(total=total, desc="sensitivity", unit="prune", leave=False)

    class _Silent:
        def update(self, n):
            pass

        def close(self):
            pass
    return _Silent()
