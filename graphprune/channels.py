"""The channel graph: run the op rules over a traced model and read off the groups.

:func:`analyze` traces the model (:mod:`graphprune.trace`), gives every tensor dimension and every
parameter dimension an atom (:mod:`graphprune.atoms`), lets the rule of each node relate them
(:mod:`graphprune.rules`), and then turns the leaves of the atom algebra into :class:`Group` s.

Safety rules applied here, not in any op rule:

* the dimensions of the model's inputs and outputs are blocked (the interface never changes);
* a node whose op has no rule blocks every dimension it touches, naming the op;
* a rule that raises blocks every dimension it touches, naming the op and the error;
* a dimension a rule neither related, freed nor blocked is blocked;
* a group is not prunable when it has a single channel, no producer, a frozen parameter
  (``requires_grad=False``: fixed transforms such as a mean shift cannot be repaired by
  fine-tuning) or a producer matched by an ``ignore`` glob.
"""
from __future__ import annotations

import fnmatch
import operator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
import torch.fx as fx
from torch import nn

from . import rules as _rules  # noqa: F401  (fills the rule table)
from .atoms import Atoms
from .globs import warn_unmatched
from .groups import Group, Member
from .reparam import legacy_weight_norm
from .rules.table import lookup, target_name
from .trace import TensorSpec, Traced, node_value, trace

__all__ = ["ChannelGraph", "analyze"]


# ------------------------------------------------------------------------------------ context
class RuleContext:
    """What an op rule sees: the node, its atoms, and the relations it may declare."""

    def __init__(self, builder: "_Builder", node: fx.Node, module: nn.Module | None):
        self.b, self.node, self.module = builder, node, module
        self.atoms = builder.atoms
        self.touched: set[int] = set()
        self.op_name = builder.op_name(node)

    # ---- reading the node
    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """A positional-or-keyword argument of the node (fx Nodes are returned as Nodes)."""
        args = self.node.args
        if index < len(args):
            return args[index]
        return self.node.kwargs.get(name, default)

    def tensor_args(self) -> list[fx.Node]:
        """The node's tensor-valued arguments, flattened through lists, in order."""
        out: list[fx.Node] = []

        def visit(a):
            if isinstance(a, fx.Node):
                if self.b.dims_of(a) is not None and not isinstance(self.b.dims_of(a)[0], list):
                    out.append(a)
            elif isinstance(a, (list, tuple)):
                for x in a:
                    visit(x)
            elif isinstance(a, dict):
                for x in a.values():
                    visit(x)

        visit(self.node.args)
        visit(self.node.kwargs)
        return out

    def dims(self, x) -> list[int] | None:
        """Atoms of a tensor argument's dimensions; None for anything that is not a tensor."""
        if not isinstance(x, fx.Node):
            return None
        d = self.b.dims_of(x)
        return None if d is None or (d and isinstance(d[0], list)) else d

    def out(self) -> list[int]:
        d = self.b.dims_of(self.node)
        if d is None or (d and isinstance(d[0], list)):
            raise TypeError(f"{self.op_name} does not return a single tensor")
        return d

    def outs(self) -> list[list[int] | None]:
        d = self.b.dims_of(self.node)
        return d if d and isinstance(d[0], (list, type(None))) else [d]

    def out_or_first(self) -> list[int]:
        d = self.b.dims_of(self.node)
        return d[0] if d and isinstance(d[0], list) else d

    def all_out_dims_lists(self) -> list[list[int]]:
        d = self.b.dims_of(self.node)
        if d is None:
            return []
        return [x for x in d if x is not None] if d and isinstance(d[0], (list, type(None))) else [d]

    def all_out_dims(self) -> list[int]:
        return [a for lst in self.all_out_dims_lists() for a in lst]

    def size(self, atom: int) -> int:
        return self.atoms.size(atom)

    # ---- relations
    def _touch(self, *atoms) -> None:
        self.touched.update(a for a in atoms if a is not None)

    def unify(self, a: int, b: int) -> None:
        self._touch(a, b)
        self.atoms.unify(a, b)

    def unify_dims(self, xs, ys) -> None:
        if len(xs) != len(ys):
            self.block([*xs, *ys], "rank mismatch")
            return
        for a, b in zip(xs, ys):
            self.unify(a, b)

    def cat(self, whole: int, parts: list[int]) -> list[int]:
        self._touch(whole, *parts)
        return self.atoms.define_cat(whole, list(parts))

    def prod(self, whole: int, factors: list[int]) -> list[int]:
        self._touch(whole, *factors)
        return self.atoms.define_prod(whole, list(factors))

    def split(self, atom: int, sizes: list[int]) -> list[int | None]:
        """Cut ``atom`` into parts of the given sizes; zero-size parts come back as None."""
        parts = [self.atoms.new(s) if s > 0 else None for s in sizes]
        self.cat(atom, [p for p in parts if p is not None])
        return parts

    def factor(self, atom: int, sizes: list[int]) -> list[int]:
        factors = [self.atoms.new(s) for s in sizes]
        self.prod(atom, factors)
        return factors

    def new(self, size: int) -> int:
        return self.atoms.new(size)

    def free(self, *atoms) -> None:
        """Mark dims as handled without coupling them (a reduced or merely read dimension)."""
        self._touch(*atoms)

    def block(self, atoms, reason: str) -> None:
        for a in atoms:
            if a is not None:
                self._touch(a)
                self.atoms.block(a, f"{self.op_name} ({self.node.name}): {reason}")

    def inexact(self, atoms, what: str) -> None:
        """Declare that this op reads a statistic over these dims (a mean, softmax, norm over channels).

        The dims stay coupled as the rule says; groups through them are marked ``exact=False`` with
        ``"<what> at <module>"`` as their reason. Only statistics that a zeroed channel would change
        count: a sum, an L2 norm or a max of absolute values over zeros is exact.
        """
        for a in atoms:
            if a is not None:
                self._touch(a)
                self.atoms.mark_inexact(a, f"{what} at {self.where}")

    def dynamic(self, atoms, what: str) -> None:
        """Declare dims whose size depends on the data; the surgery's check does not compare them."""
        for a in atoms:
            if a is not None:
                self._touch(a)
                self.atoms.mark_dynamic(a, f"{what} at {self.where}")

    @property
    def size_ties(self) -> bool:
        """Whether dims follow the tensor dims their sizes are read from (``analyze(size_ties=...)``)."""
        return self.b.size_ties

    @property
    def where(self) -> str:
        """The module this node belongs to: its own for a module call, else the innermost traced-through one."""
        if self.node.op == "call_module":
            return str(self.node.target)
        stack = self.node.meta.get("nn_module_stack") or {}
        return (list(stack.values())[-1][0] if stack else "") or "the top-level forward"

    def block_all(self, reason: str) -> None:
        self.block(self.b.node_atoms(self.node), reason)

    def param(self, name: str, roles: tuple) -> list[int]:
        """Atoms of a parameter/buffer of this node's module; dims with a role become members."""
        return self.b.param_atoms(self.node.target, name, roles)

    def set_roles(self, getattr_node: fx.Node, roles: tuple) -> None:
        """Give the dims of a ``get_attr`` parameter used functionally their roles (None = no member)."""
        self.b.set_roles(getattr_node, roles)

    def set_aux(self, key: str, value: Any) -> None:
        """Remember atoms the surgery needs (a conv's group atom, split pieces, slices)."""
        self.b.aux.setdefault(self.node.name, {})[key] = value


# ------------------------------------------------------------------------------------ builder
class _Builder:
    def __init__(self, traced: Traced, size_ties: bool = True):
        self.traced = traced
        self.size_ties = size_ties
        self.gm = traced.gm
        self.modules = dict(self.gm.named_modules())
        self.atoms = Atoms()
        self.node_dims: dict[str, Any] = {}
        self.params: dict[tuple[str, str], list[int]] = {}
        self.roles: dict[tuple[str, str, int], str | None] = {}
        self.member_order: list[tuple[str, str, int]] = []
        self.ruled: set[tuple[str, str, int]] = set()  # members a module's rule declared (not a bare get_attr)
        self.aux: dict[str, dict] = {}
        self.unsupported: dict[str, str] = {}

    # ---- atoms of values
    def dims_of(self, node: fx.Node):
        return self.node_dims.get(node.name)

    def _make_dims(self, value) -> Any:
        if isinstance(value, TensorSpec):
            return [self.atoms.new(s) for s in value.shape]
        if isinstance(value, tuple) and any(isinstance(v, TensorSpec) for v in value):
            return [self._make_dims(v) if isinstance(v, TensorSpec) else None for v in value]
        return None

    def node_atoms(self, node: fx.Node) -> list[int]:
        """Every atom of the node's tensor inputs and outputs."""
        out: list[int] = []

        def add(d):
            if d is None:
                return
            for x in d:
                if isinstance(x, list):
                    out.extend(x)
                elif x is not None:
                    out.append(x)

        for a in node.all_input_nodes:
            add(self.dims_of(a))
        add(self.dims_of(node))
        return out

    def param_atoms(self, module_name: str, pname: str, roles: tuple, default: bool = False) -> list[int]:
        """Atoms of a parameter's dims; its members get ``roles``.

        A module's rule knows its parameters' roles (a conv's kernel dims are none), so its roles win
        over the ``default`` ones a bare ``get_attr`` gives (every dim "out"), whichever comes first
        in the graph (``self.head.weight.device`` read before ``self.head(x)`` runs).
        """
        key = (module_name, pname)
        if not default:
            self.ruled.update(self._member_key(module_name, pname, d) for d in range(len(roles)))
            if pname + "_g" in self.modules[module_name]._parameters:
                self.ruled.update((module_name, pname + "_g", d) for d in range(len(roles)))
        if key in self.params and not default:
            for d, role in enumerate(roles):
                self._add_member(*self._member_key(module_name, pname, d), role)
        if key not in self.params:
            module = self.modules[module_name]
            hook = legacy_weight_norm(module, pname)
            if hook is not None:  # weight = g·v/‖v‖: its channels are v's dims and g's norm dim
                return self._weight_norm_atoms(module_name, pname, hook, roles)
            t = module._parameters.get(pname)
            t = t if t is not None else getattr(module, pname)
            self.params[key] = [self.atoms.new(s) for s in t.shape]
            for d, role in enumerate(roles):
                self._add_member(module_name, pname, d, role)
        return self.params[key]

    def _member_key(self, module_name: str, pname: str, d: int) -> tuple[str, str, int]:
        """The (module, param, dim) a member lives on: a legacy weight norm's ``weight`` is its ``weight_v``."""
        if legacy_weight_norm(self.modules[module_name], pname) is not None:
            return module_name, pname + "_v", d
        return module_name, pname, d

    def _weight_norm_atoms(self, module_name: str, pname: str, hook, roles: tuple) -> list[int]:
        module = self.modules[module_name]
        v, g = getattr(module, pname + "_v"), getattr(module, pname + "_g")
        atoms = [self.atoms.new(s) for s in v.shape]
        self.params[(module_name, pname)] = self.params[(module_name, pname + "_v")] = atoms
        self.params[(module_name, pname + "_g")] = [a if g.shape[d] == v.shape[d] else self.atoms.new(g.shape[d])
                                                    for d, a in enumerate(atoms)]
        for d, role in enumerate(roles):
            self._add_member(module_name, pname + "_v", d, role)
            if g.shape[d] == v.shape[d] and g.shape[d] > 1:
                self._add_member(module_name, pname + "_g", d, role)
        return atoms

    def _add_member(self, module_name, pname, d, role) -> None:
        mkey = (module_name, pname, d)
        if mkey not in self.roles:
            self.member_order.append(mkey)
        self.roles[mkey] = role

    def set_roles(self, node: fx.Node, roles: tuple) -> None:
        while node.op != "get_attr" and _is_same_tensor(node):  # w.data.clone().detach() is still w
            node = node.args[0]
        if node.op != "get_attr":
            return
        module_name, _, pname = node.target.rpartition(".")
        ndim = len(self.params.get((module_name, pname), []))
        for d in range(ndim):
            self._add_member(module_name, pname, d, roles[d] if d < len(roles) else None)

    def op_name(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{type(self.modules[node.target]).__name__} {node.target}"
        return target_name(node.target)

    # ---- the pass over the graph
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            getattr(self, f"_visit_{node.op}")(node)

    def _visit_placeholder(self, node):
        self.node_dims[node.name] = d = self._make_dims(node_value(node))
        for a in _flat(d):
            self.atoms.block(a, f"model input {node.name}: the interface is never pruned")

    def _visit_output(self, node):
        for a in node.all_input_nodes:
            for atom in _flat(self.dims_of(a)):
                self.atoms.block(atom, "model output: the interface is never pruned")

    def _visit_get_attr(self, node):
        value = node_value(node)
        if not isinstance(value, TensorSpec):
            return
        module_name, _, pname = node.target.rpartition(".")
        owner = self.modules.get(module_name)
        is_state = owner is not None and (pname in owner._parameters or pname in owner._buffers)
        if is_state:
            self.node_dims[node.name] = self.param_atoms(module_name, pname, ("out",) * len(value.shape), default=True)
        else:
            self.node_dims[node.name] = d = self._make_dims(value)
            for a in d:
                self.atoms.block(a, f"constant tensor {node.target}: not a parameter or buffer")

    def _visit_call_module(self, node):
        self._visit_call(node, self.modules[node.target])

    def _visit_call_function(self, node):
        self._visit_call(node, None)

    def _visit_call_method(self, node):
        self._visit_call(node, None)

    def _visit_call(self, node: fx.Node, module: nn.Module | None) -> None:
        value = node_value(node)
        src = node.args[0] if node.args else None
        if node.target is operator.getitem and isinstance(src, fx.Node) and self._is_sequence(src):
            seq = self.dims_of(src)
            self.node_dims[node.name] = seq[node.args[1]] if seq is not None and isinstance(node.args[1], int) else None
            return
        self.node_dims[node.name] = self._make_dims(value)
        atoms = self.node_atoms(node)
        if not atoms:
            return  # size arithmetic and other python values: nothing to couple
        rule = lookup(type(module) if module is not None else node.target, module)
        ctx = RuleContext(self, node, module)
        if rule is None:
            self.unsupported[node.name] = ctx.op_name
            ctx.block(atoms, "no rule for this op")
            return
        try:
            rule.couple(ctx)
        except Exception as exc:  # noqa: BLE001 - a failing rule must never crash the analysis
            ctx.block(atoms, f"rule {rule.name} failed: {type(exc).__name__}: {exc}")
            return
        untouched = [a for a in atoms if a not in ctx.touched]
        ctx.block(untouched, "dimension not covered by the op's rule")

    def _is_sequence(self, node: fx.Node) -> bool:
        d = self.dims_of(node)
        return d is not None and len(d) > 0 and isinstance(d[0], (list, type(None)))


_SAME_TENSOR_METHODS = {"clone", "detach", "contiguous", "float", "double", "half", "bfloat16", "to", "type_as",
                        "requires_grad_", "cpu", "cuda"}


def _is_same_tensor(node: fx.Node) -> bool:
    """A copy or view of its first argument with the same shape: ``w.detach()``, ``w.data``, ``w.to(x)``."""
    if not node.args or not isinstance(node.args[0], fx.Node):
        return False
    if node.op == "call_method":
        return node.target in _SAME_TENSOR_METHODS
    return node.op == "call_function" and (node.target is getattr and node.args[1] == "data"
                                           or node.target in (torch.clone, torch.detach))


def _flat(d) -> list[int]:
    if d is None:
        return []
    out = []
    for x in d:
        if isinstance(x, list):
            out.extend(x)
        elif x is not None:
            out.append(x)
    return out


# ------------------------------------------------------------------------------------ result
@dataclass(eq=False)
class ChannelGraph:
    """The analysis of one model: groups of coupled channels and what the surgery needs.

    Attributes
    ----------
    groups : list of Group
    traced : Traced
        The fx GraphModule with shapes (``traced.gm``) and the leaf modules chosen by policy.
    unsupported : dict
        fx node name → op name, for every node without a rule (their channels are blocked).
    ignore : tuple of str
        The ignore globs the groups were computed with.
    size_ties : bool
        Whether sizes read from other tensors tied dims (see :func:`analyze`).
    example_inputs : tuple
        The inputs it was traced with: the surgery's check runs the pruned network on them, so that
        shapes that depend on the data (a boolean mask's selection) come out as traced.
    """

    groups: list[Group]
    traced: Traced
    atoms: Atoms
    node_dims: dict[str, Any]
    params: dict[tuple[str, str], list[int]]
    aux: dict[str, dict]
    leaf_of_group: list[int]
    unsupported: dict[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    example_shapes: tuple = ()
    size_ties: bool = True
    example_inputs: tuple = field(default=(), repr=False)

    @property
    def model(self) -> nn.Module:
        return self.traced.model

    @property
    def prunable_groups(self) -> list[Group]:
        return [g for g in self.groups if g.prunable]

    @property
    def guards(self) -> list:
        """The conditions on the input the traced graph assumes (:class:`graphprune.trace.Guard`)."""
        return self.traced.guards

    def groups_of(self, module: str, param: str = "weight", dim: int | None = None) -> list[Group]:
        """Groups with a member on ``module.param`` (optionally on one dim)."""
        return [g for g in self.groups if any(
            m.module == module and m.param == param and (dim is None or m.dim == dim) for m in g.members)]

    def to_networkx(self) -> nx.DiGraph:
        """The traced graph as a DiGraph of fx nodes.

        Node attributes: ``op``, ``target`` (readable op name), ``module`` (qualified name or
        None), ``shape`` (tuple or None), ``groups`` (per output dim: the ids of the groups whose
        channels that dim carries, sorted), ``blocked`` (the reason, for ops without a rule).
        Edges follow the data flow.
        """
        leaf_to_gid = {leaf: g.id for g, leaf in zip(self.groups, self.leaf_of_group)}
        G = nx.DiGraph(name=type(self.model).__name__)
        for node in self.traced.gm.graph.nodes:
            value = node.meta.get("gp_value")
            dims = self.node_dims.get(node.name)
            per_dim = []
            if dims and not isinstance(dims[0], (list, type(None))):
                for a in dims:
                    per_dim.append(sorted({leaf_to_gid[leaf] for leaf, _ in self.atoms.expand(a)
                                           if leaf in leaf_to_gid}))
            G.add_node(node.name, op=node.op, target=_describe_target(self, node),
                       module=node.target if node.op == "call_module" else None,
                       shape=value.shape if isinstance(value, TensorSpec) else None,
                       groups=per_dim, blocked=self.unsupported.get(node.name))
            for src in node.all_input_nodes:
                G.add_edge(src.name, node.name)
        return G

    def summary(self, max_members: int = 6) -> str:
        """A human table of the groups."""
        lines = [f"{'id':>4} {'size':>6}  {'state':<10} members"]
        for g in self.groups:
            mods = [f"{m.module}.{m.param}[{m.dim}]:{m.role}" for m in g.members]
            shown = ", ".join(mods[:max_members]) + (f", ... (+{len(mods) - max_members})" if len(mods) > max_members else "")
            state = ("prunable" if g.exact else "inexact") if g.prunable else "blocked"
            lines.append(f"{g.id:>4} {g.size:>6}  {state:<10} {shown}")
            if not g.prunable:
                lines.append(f"{'':>22}reason: {g.reason}")
            elif not g.exact:
                lines.append(f"{'':>22}inexact: {g.inexact_reason}")
        if self.guards:
            lines.append(f"traced for inputs with ({len(self.guards)} guards; other inputs run the model's own code"
                         " or, for a rewritten graph, fail on the guard):")
            by_line: dict[str, list] = {}
            for guard in self.guards:  # one line per source line asking (a loop over blocks asks once per block)
                by_line.setdefault(guard.where, []).append(guard)
            for where, guards in by_line.items():
                lines.append(f"  {guards[0].text}  ({where}{f', x{len(guards)}' if len(guards) > 1 else ''})")
        return "\n".join(lines)


def _describe_target(cg: ChannelGraph, node: fx.Node) -> str:
    if node.op == "call_module":
        return type(cg.traced.gm.get_submodule(node.target)).__name__
    if node.op in ("call_function", "call_method"):
        return target_name(node.target)
    return node.op


def analyze(model: nn.Module, example_inputs, *, ignore=(), leaf_modules=(), size_ties: bool = True) -> ChannelGraph:
    """Discover every group of coupled channels in ``model``.

    Parameters
    ----------
    model : nn.Module
    example_inputs : Tensor or tuple of Tensors
        Used for shapes only (fake tensors): the resolution does not change the analysis time.
    ignore : iterable of str
        fnmatch globs on module names (the papers' ``--skip_layers *mean*,*tail*``): a matched
        module keeps its own output channels; its input channels still follow the group that
        feeds it.
    leaf_modules : iterable of nn.Module classes or globs
        Modules to keep opaque during tracing.
    size_ties : bool
        Tie a dim to the tensor dim its size is read from (``qkv.reshape(b, n, 3, heads, C // heads)``
        ties the attention width to the stream ``C`` comes from), so that the pruned model keeps
        running its own forward at any input size (True, the default). False prunes such widths
        independently; the result is then an ``fx.GraphModule`` traced for the example input's size,
        which checks the tracer's guards when it runs.

    Returns
    -------
    ChannelGraph
    """
    traced = trace(model, example_inputs, policy=_rules.tracing_policy(leaf_modules))
    b = _Builder(traced, size_ties)
    b.run()
    ignore = tuple(ignore)
    warn_unmatched("ignore", ignore, [name for name, _ in model.named_modules() if name])
    groups, leaves = _collect_groups(b, model, ignore)
    return ChannelGraph(groups=groups, traced=traced, atoms=b.atoms, node_dims=b.node_dims,
                        params=b.params, aux=b.aux, leaf_of_group=leaves, unsupported=b.unsupported,
                        ignore=ignore, size_ties=size_ties,
                        example_shapes=tuple(tuple(x.shape) for x in _as_tuple(example_inputs)),
                        example_inputs=tuple(x.detach() if isinstance(x, torch.Tensor) else x
                                             for x in _as_tuple(example_inputs)))


def _as_tuple(x):
    return (x,) if isinstance(x, torch.Tensor) else tuple(x)


def _collect_groups(b: _Builder, model: nn.Module, ignore: tuple[str, ...]):
    roots = [a for dims in b.node_dims.values() for a in _flat(dims)] + [a for p in b.params.values() for a in p]
    blocked = b.atoms.blocked_leaves(roots)
    inexact = b.atoms.inexact_leaves(roots)
    members: dict[int, list[Member]] = {}
    for mkey in b.member_order:
        role = b.roles[mkey]
        if role is None:
            continue
        module_name, pname, d = mkey
        atom = b.params[(module_name, pname)][d]
        if not module_name and pname.startswith("_tensor_constant") and b.atoms.leaves(atom) <= blocked.keys():
            continue  # a constant tracing captured (a mask), wholly blocked: no group to list, no index map to build
        for leaf, positions in b.atoms.expand(atom):
            members.setdefault(leaf, []).append(Member(module_name, pname, d, role, positions))
    groups, leaves = [], []
    for leaf, mems in members.items():
        reason = blocked.get(leaf) or _policy_reason(b, model, leaf, mems, ignore)
        groups.append(Group(id=len(groups), size=b.atoms.size(leaf), prunable=not reason,
                            reason=reason or "", members=mems, exact=leaf not in inexact,
                            inexact_reason=inexact.get(leaf, "")))
        leaves.append(leaf)
    # a group that is a whole filter dim somewhere (a producer's filters, per a module's rule) takes the ratio as
    # is; one that only ever appears as a factor (heads, head dim, per-group width) shares it. A parameter read
    # in forward (a relative-position table's heads dim) is no filter: it does not count.
    factor_only = {leaf for g, leaf in zip(groups, leaves)
                   if g.prunable and all(m.index_map.shape[1] > 1 for m in g.members if m.key in b.ruled)}
    factors: dict[int, int] = {}
    for space in b.atoms.factor_sets():
        shared = space & factor_only
        for leaf in shared:
            factors[leaf] = max(factors.get(leaf, 1), len(shared))
    for g, leaf in zip(groups, leaves):
        g.factors = factors.get(leaf, 1)
    return groups, leaves


def _policy_reason(b: _Builder, model: nn.Module, leaf: int, mems: list[Member], ignore) -> str:
    if b.atoms.size(leaf) < 2:
        return "a single channel"
    producers = [m for m in mems if m.role == "out"]
    if not producers:
        return "no producer: only consumers read these channels"
    for m in producers:
        if any(fnmatch.fnmatchcase(m.module, g) for g in ignore):
            return f"produced by ignored module {m.module}"
    for m in mems:
        p = dict(b.modules[m.module].named_parameters(recurse=False)).get(m.param)
        if p is not None and not p.requires_grad:
            return f"{m.module}.{m.param} is frozen (requires_grad=False)"
    return ""

