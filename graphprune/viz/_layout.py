"""A layered node-link layout for the view, computed in Python so every renderer shares it.

Longest-path layering (parameters sit one layer above their first consumer), a few barycenter
sweeps to order each layer, then the layers are folded into columns read in a snake
(down the first column, up the second, ...) so a deep, narrow network fills a wide screen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Box", "Layout", "layout", "NODE_W", "NODE_H"]

NODE_W, NODE_H = 150, 30
GAP_X, ROW_H, COL_GAP, MARGIN = 14, 46, 90, 30


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float = NODE_W
    h: float = NODE_H
    col: int = 0
    row: int = 0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


@dataclass
class Layout:
    boxes: dict[str, Box]
    width: float
    height: float
    n_cols: int

    def edge_geom(self, src: str, dst: str) -> list[tuple[float, float]]:
        """Points of one edge: 2 for a straight line, 4 for a cubic Bezier (start, c1, c2, end).

        Straight between neighbouring layers of a column, a bow to the right for a skip inside a
        column, a horizontal curve between columns.
        """
        a, b = self.boxes[src], self.boxes[dst]
        if a.col == b.col:
            down = b.y >= a.y
            if abs(b.row - a.row) <= 1:
                return [(a.cx, a.y + a.h if down else a.y), (b.cx, b.y if down else b.y + b.h)]
            bow = min(COL_GAP * 0.8, 20 + 6 * abs(b.row - a.row))
            x1, y1, x2, y2 = a.x + a.w, a.y + a.h / 2, b.x + b.w, b.y + b.h / 2
            xm = max(x1, x2) + bow
            return [(x1, y1), (xm, y1), (xm, y2), (x2, y2)]
        right = b.col > a.col
        x1, y1 = (a.x + a.w if right else a.x), a.y + a.h / 2
        x2, y2 = (b.x if right else b.x + b.w), b.y + b.h / 2
        d = max(40.0, abs(x2 - x1) / 2) * (1 if right else -1)
        return [(x1, y1), (x1 + d, y1), (x2 - d, y2), (x2, y2)]

    def edge_path(self, src: str, dst: str) -> str:
        """SVG path data of :meth:`edge_geom`."""
        p = self.edge_geom(src, dst)
        if len(p) == 2:
            return f"M{p[0][0]:.0f},{p[0][1]:.0f}L{p[1][0]:.0f},{p[1][1]:.0f}"
        return "M{:.0f},{:.0f}C{:.0f},{:.0f} {:.0f},{:.0f} {:.0f},{:.0f}".format(*(c for q in p for c in q))


def layers_of(node_ids: list[str], edges: list[tuple[str, str]], params: set[str]) -> dict[str, int]:
    """Longest-path layer of every node (``node_ids`` in topological order).

    >>> layers_of(["x", "w", "conv", "add"], [("x", "conv"), ("w", "conv"), ("x", "add"), ("conv", "add")], {"w"})
    {'x': 0, 'w': 0, 'conv': 1, 'add': 2}
    """
    preds: dict[str, list[str]] = {n: [] for n in node_ids}
    succs: dict[str, list[str]] = {n: [] for n in node_ids}
    for s, t in edges:
        preds[t].append(s)
        succs[s].append(t)
    layer = {}
    for n in node_ids:
        layer[n] = 0 if n in params else max((layer[p] + 1 for p in preds[n]), default=0)
    for n in node_ids:
        if n in params and succs[n]:
            layer[n] = max(0, min(layer[s] for s in succs[n]) - 1)
    return layer


def _order(layers: list[list[str]], layer: dict[str, int], edges, sweeps: int = 4) -> list[list[str]]:
    """Barycenter ordering: sort each layer by the mean position of its neighbours in the previous one."""
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for s, t in edges:
        up.setdefault(t, []).append(s)
        down.setdefault(s, []).append(t)
    pos = {n: i for lst in layers for i, n in enumerate(lst)}
    for sweep in range(sweeps):
        nbrs, seq = (up, layers) if sweep % 2 == 0 else (down, layers[::-1])
        for lst in seq:
            if len(lst) < 2:
                continue
            def key(n, nbrs=nbrs):
                ps = [pos[p] for p in nbrs.get(n, ()) if abs(layer[p] - layer[n]) == 1]
                return sum(ps) / len(ps) if ps else pos[n]
            lst.sort(key=key)
            for i, n in enumerate(lst):
                pos[n] = i
    return layers


def layout(node_ids: list[str], edges: list[tuple[str, str]], params: set[str] = frozenset(),
           aspect: float = 1.7, widths: dict[str, float] | None = None) -> Layout:
    """Boxes for every node: layered, ordered, folded into a snake of columns of about ``aspect``.

    Notes
    -----
    O(nodes + edges) per sweep; the column count is chosen among at most 64 candidates.
    """
    layer = layers_of(node_ids, edges, set(params))
    n_layers = max(layer.values(), default=0) + 1
    layers: list[list[str]] = [[] for _ in range(n_layers)]
    for n in node_ids:
        layers[layer[n]].append(n)
    layers = _order(layers, layer, edges)
    widths = widths or {}
    layer_w = [sum(widths.get(n, NODE_W) + GAP_X for n in lst) - GAP_X for lst in layers]
    best = None
    for n_cols in range(1, min(64, n_layers) + 1):
        rows = math.ceil(n_layers / n_cols)
        col_w = [max(layer_w[c * rows:(c + 1) * rows] or [0]) for c in range(n_cols)]
        w = sum(col_w) + COL_GAP * (n_cols - 1)
        h = rows * ROW_H
        score = abs(math.log((w + 1) / (h + 1) / aspect))
        if best is None or score < best[0] - 1e-9:
            best = (score, n_cols, rows, col_w)
    _, n_cols, rows, col_w = best
    boxes: dict[str, Box] = {}
    x0 = MARGIN
    for c in range(n_cols):
        for r in range(rows):
            li = c * rows + r
            if li >= n_layers:
                break
            row = r if c % 2 == 0 else rows - 1 - r
            x = x0 + (col_w[c] - layer_w[li]) / 2
            for n in layers[li]:
                w = widths.get(n, NODE_W)
                boxes[n] = Box(x, MARGIN + row * ROW_H, w, NODE_H, c, row)
                x += w + GAP_X
        x0 += col_w[c] + COL_GAP
    return Layout(boxes, x0 - COL_GAP + MARGIN, MARGIN * 2 + rows * ROW_H - (ROW_H - NODE_H), n_cols)
