"""The view model every renderer draws: nodes, edges, groups and their colors, repeated blocks collapsed.

A :class:`View` is built once from a :class:`~graphprune.ChannelGraph` (and optionally a
:class:`~graphprune.Plan`) and holds only plain data, so the HTML, DOT, JSON and matplotlib
writers agree on what is shown: the same node ids, the same group ids and the same colors.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VNode", "VGroup", "View", "build_view", "group_color", "collapse_repeats"]

_GOLDEN = 0.618033988749895
_HIDDEN_OPS = ("placeholder", "output", "get_attr")  # always kept even without a tensor shape


def group_color(gid: int, prunable: bool) -> str:
    """The color of group ``gid``: a hue from the golden-angle sequence, greyed when blocked.

    The color depends only on the id and the state, so a group keeps its color in the legend,
    in every node, and across the HTML, DOT and PNG outputs of one analysis.

    >>> group_color(0, True), group_color(0, False)
    ('#5aa3d8', '#aeb6bc')
    """
    hue = (0.57 + gid * _GOLDEN) % 1.0
    if prunable:
        light, sat = (0.60, 0.62) if gid % 2 == 0 else (0.70, 0.55)
    else:
        light, sat = 0.71, 0.10
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return "#{:02x}{:02x}{:02x}".format(round(r * 255), round(g * 255), round(b * 255))


@dataclass
class VGroup:
    """One legend row: a group of coupled channels and, after a plan, how many stay."""

    id: int
    size: int
    prunable: bool
    reason: str
    n_members: int
    modules: list[str]
    color: str
    kept: int | None = None
    exact: bool = True
    inexact_reason: str = ""

    @property
    def removed(self) -> int | None:
        return None if self.kept is None else self.size - self.kept

    @property
    def state(self) -> str:
        """``prunable``, ``prunable, inexact: <why>`` or ``blocked: <why>``, as every renderer shows it."""
        if not self.prunable:
            return f"blocked: {self.reason}"
        return "prunable" if self.exact else f"prunable, inexact: {self.inexact_reason}"


@dataclass
class VNode:
    """One drawn node: an fx node, or a run of collapsed repeated blocks (``collapsed > 0``)."""

    id: str
    op: str
    target: str
    module: str | None
    shape: tuple | None
    groups: list[list[int]]
    blocked: str | None
    stack: tuple[str, ...] = ()
    param_groups: list[tuple[int, str, str]] = field(default_factory=list)  # (gid, "weight[1]", role)
    collapsed: int = 0
    inner: list[str] = field(default_factory=list)          # fx node names inside a collapsed node
    inner_modules: list[str] = field(default_factory=list)  # module names inside (for search)
    label: str = ""

    @property
    def color_groups(self) -> list[int]:
        """Group ids carried by the node's output dims, in dim order, no repeats."""
        seen: dict[int, None] = {}
        for dim in self.groups:
            for g in dim:
                seen.setdefault(g, None)
        return list(seen)


@dataclass
class View:
    """Nodes (in topological order), edges, groups; ``full`` holds the uncollapsed nodes when collapsed."""

    name: str
    nodes: list[VNode]
    edges: list[tuple[str, str]]
    groups: list[VGroup]
    full: "View | None" = None
    note: str = ""
    guards: list[str] = field(default_factory=list)

    def node(self, nid: str) -> VNode:
        return self._index()[nid]

    def _index(self) -> dict[str, VNode]:
        return {n.id: n for n in self.nodes}

    def to_dict(self) -> dict[str, Any]:
        """Node-link data (networkx ``node_link_data`` vocabulary) plus the groups."""
        def node_dict(n: VNode) -> dict:
            return {"id": n.id, "op": n.op, "target": n.target, "module": n.module,
                    "shape": list(n.shape) if n.shape else None, "groups": n.groups,
                    "color_groups": n.color_groups, "blocked": n.blocked, "stack": list(n.stack),
                    "param_groups": [list(p) for p in n.param_groups], "collapsed": n.collapsed,
                    "inner": n.inner, "inner_modules": n.inner_modules, "label": n.label}
        return {"format": "graphprune-viz/1", "name": self.name, "directed": True, "multigraph": False,
                "nodes": [node_dict(n) for n in self.nodes],
                "links": [{"source": s, "target": t} for s, t in self.edges],
                "groups": [dict(id=g.id, size=g.size, prunable=g.prunable, reason=g.reason, exact=g.exact,
                                inexact_reason=g.inexact_reason, n_members=g.n_members, modules=g.modules,
                                color=g.color, kept=g.kept, removed=g.removed) for g in self.groups],
                "guards": self.guards, "collapsed": self.full is not None, "note": self.note}


# ------------------------------------------------------------------------------------ building
def build_view(graph, plan=None, *, collapse: str | bool = "auto", max_nodes: int = 400) -> View:
    """The view of an analysis: every tensor-valued fx node, every group, and the plan's kept counts.

    Parameters
    ----------
    graph : ChannelGraph
    plan : Plan, optional
        Adds ``kept`` to every group.
    collapse : "auto", True or False
        Collapse runs of identical repeated blocks (``auto``: when there are more than
        ``max_nodes`` nodes). The uncollapsed view stays available as ``view.full``.
    """
    G = graph.to_networkx()
    fx_nodes = {n.name: n for n in graph.traced.gm.graph.nodes}
    by_module: dict[str, list[tuple[int, str, str]]] = {}
    for g in graph.groups:
        for m in g.members:
            by_module.setdefault(m.module, []).append((g.id, f"{m.param}[{m.dim}]", m.role))
    nodes = []
    for name, d in G.nodes(data=True):
        if d["shape"] is None and not d["groups"] and d["op"] not in _HIDDEN_OPS:
            continue  # python values (sizes, attributes): no channels to show
        module = d["module"]
        if module is None and d["op"] == "get_attr":
            module = fx_nodes[name].target.rpartition(".")[0] or None
        stack = tuple(k for k in (fx_nodes[name].meta.get("nn_module_stack") or {}) if k != d["module"])
        nodes.append(VNode(id=name, op=d["op"], target=d["target"], module=module,
                           shape=tuple(d["shape"]) if d["shape"] else None, groups=d["groups"],
                           blocked=d["blocked"], stack=stack, param_groups=by_module.get(module or "", []),
                           label=_label(d["target"], module or name)))
    keep = {n.id for n in nodes}
    edges = [(s, t) for s, t in G.edges() if s in keep and t in keep]
    groups = [VGroup(id=g.id, size=g.size, prunable=g.prunable, reason=g.reason, n_members=len(g.members),
                     modules=g.modules(), color=group_color(g.id, g.prunable),
                     kept=plan.kept(g.id) if plan is not None else None, exact=g.exact,
                     inexact_reason=g.inexact_reason) for g in graph.groups]
    view = View(name=G.graph.get("name", "model"), nodes=nodes, edges=edges, groups=groups,
                guards=[str(guard) for guard in graph.guards])
    if collapse is True or (collapse == "auto" and len(nodes) > max_nodes):
        small = collapse_repeats(view)
        if len(small.nodes) < len(nodes):
            small.full = view
            return small
    return view


def _label(target: str, where: str) -> str:
    short = target.rsplit(".", 1)[-1]
    return f"{short} {where}" if where != short else short


# ------------------------------------------------------------------------------------ collapsing
def collapse_repeats(view: View, min_run: int = 4) -> View:
    """Collapse runs of ``min_run`` or more identical sibling blocks, deepest blocks first.

    A *block* is an indexed child of a container (``body.3``, ``layer1.0``), found from the
    fx ``nn_module_stack``; two blocks are identical when their nodes have the same ops,
    relative module names, shapes and internal edges. The first and last block of a run stay;
    the ones between become one node carrying the union of their groups.

    Notes
    -----
    O(nodes + edges) per nesting level.
    """
    nodes, edges = list(view.nodes), list(view.edges)
    depth = max((_depth(b) for n in nodes for b in _blocks(n)), default=0)
    while depth > 0:
        nodes, edges = _collapse_level(nodes, edges, depth, min_run)
        depth -= 1
    note = f"{len(view.nodes)} nodes shown as {len(nodes)}: runs of {min_run}+ identical blocks collapsed"
    return View(name=view.name, nodes=nodes, edges=edges, groups=view.groups, note=note)


def _blocks(n: VNode) -> list[str]:
    """Indexed ancestors of a node (``body.0`` of ``body.0.body.2``), outermost first."""
    return [p for p in n.stack if p.rpartition(".")[2].isdigit()]


def _depth(path: str) -> int:
    return path.count(".") + 1


def _collapse_level(nodes: list[VNode], edges, depth: int, min_run: int):
    members: dict[str, list[VNode]] = {}
    for n in nodes:
        for b in _blocks(n):
            if _depth(b) == depth:
                members.setdefault(b, []).append(n)
    by_parent: dict[str, list[tuple[int, str]]] = {}
    for b in members:
        parent, _, idx = b.rpartition(".")
        by_parent.setdefault(parent, []).append((int(idx), b))
    preds: dict[str, list[str]] = {}
    for s, t in edges:
        preds.setdefault(t, []).append(s)
    replace: dict[str, VNode] = {}
    for parent, children in by_parent.items():
        children.sort()
        sigs = [_signature(members[b], b, preds) for _, b in children]
        start = 0
        for i in range(1, len(children) + 1):
            if i == len(children) or sigs[i] != sigs[start] or children[i][0] != children[i - 1][0] + 1:
                if i - start >= min_run:
                    run = [b for _, b in children[start + 1:i - 1]]
                    sup = _super_node(parent, run, [n for b in run for n in members[b]])
                    for b in run:
                        for n in members[b]:
                            replace[n.id] = sup
                start = i
    if not replace:
        return nodes, edges
    out, placed = [], set()
    for n in nodes:
        sup = replace.get(n.id)
        if sup is None:
            out.append(n)
        elif sup.id not in placed:
            placed.add(sup.id)
            out.append(sup)
    seen, new_edges = set(), []
    for s, t in edges:
        e = (replace[s].id if s in replace else s, replace[t].id if t in replace else t)
        if e[0] != e[1] and e not in seen:
            seen.add(e)
            new_edges.append(e)
    return out, new_edges


def _signature(block_nodes: list[VNode], prefix: str, preds: dict[str, list[str]]) -> tuple:
    pos = {n.id: i for i, n in enumerate(block_nodes)}

    def rel(name):
        return name[len(prefix):] if name and name.startswith(prefix) else name

    return tuple((n.op, n.target, rel(n.module), n.shape, n.collapsed, tuple(rel(s) for s in n.stack),
                  tuple(pos.get(p, -1) for p in preds.get(n.id, ())))
                 for n in block_nodes)


def _super_node(parent: str, run: list[str], inner: list[VNode]) -> VNode:
    first, last = run[0], run[-1]
    per_dim: dict[int, None] = {}
    for n in inner:
        for g in n.color_groups:
            per_dim.setdefault(g, None)
    inner_names = [x for n in inner for x in (n.inner or [n.id])]
    inner_modules = sorted({m for n in inner for m in ([n.module] if n.module else []) + n.inner_modules})
    stack = tuple(p for p in inner[0].stack if _depth(p) < _depth(first))
    label = f"{len(run)}x {parent}.{first.rpartition('.')[2]}..{last.rpartition('.')[2]}"
    return VNode(id=f"collapsed:{first}..{last}", op="collapsed", target=f"{len(run)} repeated blocks",
                 module=None, shape=inner[-1].shape, groups=[list(per_dim)], stack=stack,
                 blocked=next((n.blocked for n in inner if n.blocked), None), collapsed=len(run),
                 inner=inner_names, inner_modules=inner_modules, label=label)
