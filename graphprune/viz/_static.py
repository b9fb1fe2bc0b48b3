"""Static pictures: Graphviz DOT text (rendered by ``dot`` when installed) or matplotlib from our layout."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..files import atomic_write, save_figure
from ._html import MAX_STRIPES, layout_view
from ._view import View

__all__ = ["to_dot", "dot_available", "render_dot", "render_matplotlib", "GRAPHVIZ_HINT", "LEGEND_ROWS"]

GRAPHVIZ_HINT = ("Graphviz 'dot' not found: drew with matplotlib instead. For Graphviz pictures install it "
                 "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; conda: conda install graphviz)")
LEGEND_ROWS = 40  # static pictures list this many groups, then "... N more"


def dot_available() -> str | None:
    return shutil.which("dot")


def _q(s) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(s) -> str:
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _legend_lines(view: View) -> list[tuple[str, bool, str]]:
    """(color, blocked, text) for the first LEGEND_ROWS groups of a static legend."""
    rows = []
    for g in view.groups[:LEGEND_ROWS]:
        kept = "" if g.kept is None else f", kept {g.kept}/{g.size}"
        state = g.state
        rows.append((g.color, not g.prunable, f"#{g.id}  {g.size} ch, {g.n_members} members{kept}, {state}"))
    if len(view.groups) > LEGEND_ROWS:
        rows.append(("#ffffff", False, f"... {len(view.groups) - LEGEND_ROWS} more groups (see the .html legend)"))
    return rows


def to_dot(view: View, rankdir: str = "TB") -> str:
    """Graphviz DOT text: one box per node filled with its groups' colors, a legend table.

    Nodes carrying several groups are striped; blocked groups are listed with their reason in
    the legend and the node tooltip; ops without a rule get a red dashed border.
    """
    colors = {g.id: g for g in view.groups}
    out = [f"digraph {_q(view.name)} {{",
           f'  graph [rankdir={rankdir}, newrank=true, nodesep=0.12, ranksep=0.22, fontname="DejaVu Sans", '
           f'fontsize=11, label={_q(view.name + " channel groups")}, labelloc=t];',
           '  node [shape=box, style="rounded,filled", fontname="DejaVu Sans", fontsize=8, height=0.28, '
           'margin="0.06,0.02", penwidth=0.7, color="#4b5563", fillcolor="#f3f4f6"];',
           '  edge [color="#8a8f98", arrowsize=0.45, penwidth=0.8];']
    for n in view.nodes:
        gids = n.color_groups[:MAX_STRIPES]
        attrs = {"label": f"{n.target.rsplit('.', 1)[-1] if not n.collapsed else n.target}\n"
                          f"{n.label.split(' ', 1)[-1] if n.collapsed else (n.module or n.id)}"}
        if gids:
            attrs["fillcolor"] = ":".join(colors[g].color for g in gids)
            if len(gids) > 1:
                attrs["style"] = "filled,striped"
        blocked = [colors[g].reason for g in n.color_groups if not colors[g].prunable]
        tip = [f"{n.op} {n.target}", f"shape {n.shape}", "groups " + ", ".join(map(str, n.color_groups))]
        tip += [f"blocked: {r}" for r in dict.fromkeys(blocked)]
        if n.blocked:
            attrs.update(color="#cf222e", penwidth="2", style=attrs.get("style", "rounded,filled") + ",dashed")
            tip.insert(0, f"no rule for {n.blocked}")
        if n.collapsed:
            attrs["peripheries"] = "2"
        attrs["tooltip"] = "\n".join(tip)
        attrs["id"] = n.id
        out.append(f"  {_q(n.id)} [" + ", ".join(f"{k}={_q(v)}" for k, v in attrs.items()) + "];")
    for s, t in view.edges:
        out.append(f"  {_q(s)} -> {_q(t)};")
    rows = "".join(
        f'<TR><TD BGCOLOR="{c}" WIDTH="14" HEIGHT="10" STYLE="{"dashed" if b else "solid"}"></TD>'
        f'<TD ALIGN="LEFT">{_h(text)}</TD></TR>' for c, b, text in _legend_lines(view))
    out.append(f'  "legend" [shape=plaintext, style="", label=<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="1" '
               f'CELLPADDING="2"><TR><TD COLSPAN="2"><B>channel groups</B> (grey = blocked)</TD></TR>{rows}</TABLE>>];')
    out.append("}")
    return "\n".join(out) + "\n"


def render_dot(view: View, path: Path, timeout: float = 120) -> Path:
    """Run Graphviz ``dot`` on :func:`to_dot` into ``path`` (``.svg`` or ``.png``), atomically."""
    exe = dot_available()
    if exe is None:
        raise RuntimeError(GRAPHVIZ_HINT.split(":")[0])
    fmt = path.suffix.lstrip(".").lower()

    def run_dot(tmp: Path) -> None:
        args = [exe, f"-T{fmt}", "-o", str(tmp)] + (["-Gdpi=110"] if fmt == "png" else [])
        proc = subprocess.run(args, input=to_dot(view), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"dot failed: {(proc.stderr.strip().splitlines() or ['?'])[0]}")
    return atomic_write(path, run_dot)


def render_matplotlib(view: View, path: Path, dpi: int = 100) -> Path:
    """Draw our own layered layout with matplotlib (Agg) into ``path`` (``.png``/``.svg``/``.pdf``), atomically."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with plt.rc_context({"hatch.linewidth": 0.5, "hatch.color": "#4b4b4b"}):
        return _draw(plt, view, path, dpi)


def _arrow_head(p0, p1, size: float = 6.0) -> list[tuple[float, float]]:
    """A small triangle at ``p1`` pointing along ``p0 -> p1``."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    n = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    ux, uy = dx / n, dy / n
    bx, by = p1[0] - ux * size, p1[1] - uy * size
    return [p1, (bx - uy * size * 0.45, by + ux * size * 0.45), (bx + uy * size * 0.45, by - ux * size * 0.45)]


def _draw(plt, view: View, path: Path, dpi: int) -> Path:
    from matplotlib.patches import PathPatch, Polygon, Rectangle
    from matplotlib.path import Path as MPath

    lay = layout_view(view)
    legend = _legend_lines(view)
    W, H = lay.width + 420, max(lay.height, 40 + 17 * (len(legend) + 1))
    fig = plt.figure(figsize=(W / dpi, H / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.axis("off")
    colors = {g.id: g for g in view.groups}
    for s, t in view.edges:
        p = lay.edge_geom(s, t)
        codes = [MPath.MOVETO, MPath.LINETO] if len(p) == 2 else [MPath.MOVETO] + [MPath.CURVE4] * 3
        ax.add_patch(PathPatch(MPath(p, codes), fill=False, lw=0.8, ec="#8a8f98", alpha=0.8))
        ax.add_patch(Polygon(_arrow_head(p[-2], p[-1]), closed=True, fc="#8a8f98", ec="none"))
    px = 72 / dpi  # points per pixel: font sizes below are in pixels like the HTML
    for n in view.nodes:
        b = lay.boxes[n.id]
        gids = n.color_groups[:MAX_STRIPES]
        if not gids:
            ax.add_patch(Rectangle((b.x, b.y), b.w, b.h, fc="#f3f4f6", ec="none"))
        for i, g in enumerate(gids):
            w = b.w / len(gids)
            grp = colors[g]
            ax.add_patch(Rectangle((b.x + i * w, b.y), w, b.h, fc=grp.color, ec="none",
                                   hatch="///" if not grp.prunable else None, lw=0))
        ec, lw, ls = ("#cf222e", 2.0, "--") if n.blocked else ("#4b5563", 0.8, "-")
        ax.add_patch(Rectangle((b.x, b.y), b.w, b.h, fc="none", ec=ec, lw=lw, ls=ls))
        top = n.target if n.collapsed else n.target.rsplit(".", 1)[-1]
        sub = n.label.split(" ", 1)[-1] if n.collapsed else (n.module or n.id)
        ax.text(b.x + 5, b.y + 11, top[:26], fontsize=10 * px, fontweight="bold", va="center")
        ax.text(b.x + 5, b.y + b.h - 8, sub if len(sub) <= 28 else "\u2026" + sub[-27:], fontsize=9 * px, va="center")
    x0 = lay.width + 10
    ax.text(x0, 22, f"{view.name}: channel groups", fontsize=12 * px, fontweight="bold", va="center")
    for i, (c, blocked, text) in enumerate(legend):
        y = 40 + 17 * i
        ax.add_patch(Rectangle((x0, y), 14, 12, fc=c, ec="#555", lw=0.6, hatch="///" if blocked else None))
        ax.text(x0 + 20, y + 6, text if len(text) <= 70 else text[:69] + "\u2026", fontsize=9 * px, va="center")
    return save_figure(fig, path, dpi=dpi, fmt=path.suffix.lstrip(".").lower())
