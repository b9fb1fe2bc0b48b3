"""Pictures of a channel analysis: which layers are coupled, which groups are blocked and why.

>>> import torch, sr_models, graphprune as gp
>>> from graphprune import viz
>>> model = sr_models.create_model("ledsr_f256r16_x4", n_resblocks=2)
>>> graph = gp.analyze(model, torch.zeros(1, 3, 24, 24))
>>> path = viz.render(graph, "groups.html", plan=gp.plan(graph, 0.5))   # doctest: +SKIP

Outputs, chosen by the file extension:

* ``.html``: one self-contained interactive page (inline SVG, CSS and JS; no network access):
  pan/zoom, hover/click tooltips (module, op, shape, groups per dim), a legend with every group
  (size, members, prunable or the reason it is blocked, kept/removed after a plan), search by
  module name. Networks with more than ``max_nodes`` nodes show runs of identical repeated
  blocks collapsed, with an "expand all" toggle.
* ``.svg`` / ``.png``: a static picture drawn by Graphviz ``dot`` where installed, else by
  matplotlib from the same layered layout as the HTML (``engine=`` forces one).
* ``.dot``: Graphviz text; ``.json``: node-link data (networkx vocabulary) plus the groups.

Every output colors a group with :func:`group_color` (a function of its id and state only), so a
group has the same color in the legend, in the nodes and across outputs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..files import atomic_write
from ._html import layout_view, to_html
from ._static import GRAPHVIZ_HINT, dot_available, render_dot, render_matplotlib, to_dot
from ._view import View, build_view, collapse_repeats, group_color

__all__ = ["render", "build_view", "to_html", "to_dot", "to_json", "group_color", "collapse_repeats",
           "dot_available", "View", "FORMATS", "GRAPHVIZ_HINT"]

FORMATS = (".html", ".svg", ".png", ".dot", ".json")


def to_json(view: View) -> str:
    """Node-link JSON of the view with each node's layout box (``x``, ``y``, ``w``, ``h``)."""
    data = view.to_dict()
    lay = layout_view(view)
    for n in data["nodes"]:
        b = lay.boxes[n["id"]]
        n.update(x=round(b.x, 1), y=round(b.y, 1), w=b.w, h=b.h)
    return json.dumps(data, indent=1, default=list) + "\n"


def render(graph, path: str | os.PathLike, plan=None, *, collapse: str | bool = "auto", engine: str = "auto",
           max_nodes: int = 400, title: str | None = None) -> Path:
    """Write a picture of ``graph`` (a ChannelGraph) to ``path``; the extension picks the format.

    Parameters
    ----------
    graph : ChannelGraph
    path : str or Path
        ``.html``, ``.svg``, ``.png``, ``.dot`` or ``.json``. Written atomically: on error no file
        (and no partial file) is left behind.
    plan : Plan, optional
        Shows kept/removed channels per group.
    collapse : "auto", True or False
        Collapse runs of identical repeated blocks. ``"auto"`` collapses pictures (html, svg,
        png) of graphs with more than ``max_nodes`` nodes; ``.dot``/``.json`` stay complete
        unless ``collapse=True``.
    engine : "auto", "dot" or "matplotlib"
        For ``.svg``/``.png``: ``auto`` uses Graphviz when ``dot`` is on the PATH.

    Returns
    -------
    Path
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"unknown output format {path.suffix or '(none)'!r} for {path.name}: "
                         f"choose one of {', '.join(FORMATS)}")
    if engine not in ("auto", "dot", "matplotlib"):
        raise ValueError(f"engine must be 'auto', 'dot' or 'matplotlib', got {engine!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {path.parent}")
    if ext in (".dot", ".json") and collapse == "auto":
        collapse = False
    view = build_view(graph, plan, collapse=collapse, max_nodes=max_nodes)
    if title:
        view.name = title
    if ext in (".svg", ".png"):
        use_dot = engine == "dot" or (engine == "auto" and dot_available())
        return render_dot(view, path) if use_dot else render_matplotlib(view, path)
    text = {".html": to_html, ".dot": to_dot, ".json": to_json}[ext](view)
    return atomic_write(path, text)
