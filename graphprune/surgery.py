"""The physical rewrite: a smaller copy of the model that computes with the kept channels only.

``requires → call → ensures``:

* requires: the plan belongs to this model's analysis and only removes prunable groups;
* call: deep-copy the model, slice every parameter and buffer named by the plan's entries,
  let module rules update their attributes (``in_channels``, ``groups``, ``num_features``, ...),
  and rewrite the channel counts held in graph constants (``view(b, 64, h, w)``, ``split``, slices);
* ensures: re-run shape propagation (fake tensors) on the rewritten graph and check that every
  value has exactly the shape the plan predicts, the output shape included. A mismatch raises
  :class:`PruneError` naming the node: the network is never returned wrong.

The result is the user's own class whenever its forward, traced again on the pruned modules,
computes exactly the verified graph: then the user's Python control flow is kept and the model runs
at other input sizes (window padding, masks recomputed for the size). Otherwise — the forward holds
channel counts as literals (``split(x, [32, 32])``, ``view(b, 64, h, w)``) or a literal the plan had
to change (SDPA's dense scale) — it is an ``fx.GraphModule`` over the pruned modules with the
constants rewritten (``pruned.gp_graph_module`` is True), which checks the tracer's guards when it
runs: an input outside the traced case fails with the guard named, never silently.
"""
from __future__ import annotations

import copy
import operator
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from .plan import Plan
from .reparam import copy_model, effective_weights_as_directions, rederive_weight_norm
from .rules.shape import _new_size_value
from .rules.table import lookup
from .spec import make_spec, plan_record  # the spec graphprune.save writes when given no other
from .trace import TensorSpec, Traced, module_state_restored, node_value, propagate, trace

__all__ = ["apply", "PruneError", "SizeOracle"]


class PruneError(RuntimeError):
    """The rewritten network does not have the shapes the plan predicts."""


class SizeOracle:
    """New sizes of atoms and node dims under a plan (what rewrite/resize rules query)."""

    def __init__(self, plan: Plan, strict: bool = False):
        graph = plan.graph
        self.graph, self.atoms, self.strict = graph, graph.atoms, strict
        self.removed_leaf = {graph.leaf_of_group[g]: np.asarray(idx, dtype=np.int64)
                             for g, idx in plan.removed.items() if len(idx)}
        self.member_leaves = set(graph.leaf_of_group)
        self._cache: dict[int, int] = {}

    def removed_positions(self, atom: int) -> np.ndarray:
        parts = [pos[self.removed_leaf[leaf]].reshape(-1) for leaf, pos in self.atoms.expand(atom)
                 if leaf in self.removed_leaf]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def atom_size(self, atom: int | None) -> int:
        if atom is None:
            return 0
        root = self.atoms.find(atom)
        if root not in self._cache:
            self._cache[root] = self.atoms.size(root) - len(self.removed_positions(root))
        return self._cache[root]

    def _dim_atom(self, node: fx.Node, d: int, item: int | None = None) -> int:
        dims = self.graph.node_dims[node.name]
        return (dims[item] if item is not None else dims)[d]

    def size(self, node: fx.Node, d: int, item: int | None = None) -> int:
        return self.atom_size(self._dim_atom(node, d, item))

    def old_size(self, node: fx.Node, d: int, item: int | None = None) -> int:
        return self.atoms.size(self._dim_atom(node, d, item))

    def static(self, node: fx.Node, d: int, item: int | None = None) -> bool:
        """True when the dim carries channels (a fixed width), False for batch/spatial dims."""
        return any(leaf in self.member_leaves for leaf, _ in self.atoms.expand(self._dim_atom(node, d, item)))

    def ndim(self, node: fx.Node) -> int:
        return len(self.graph.node_dims[node.name])

    def aux(self, node: fx.Node) -> dict:
        return self.graph.aux.get(node.name, {})

    def expected(self, node: fx.Node) -> Any:
        """The predicted value structure of a node: shapes as tuples (tuples of them for sequences)."""
        dims = self.graph.node_dims.get(node.name)
        if dims is None:
            return None
        if dims and isinstance(dims[0], (list, type(None))):
            return tuple(None if d is None else tuple(self.atom_size(a) for a in d) for d in dims)
        return tuple(self.atom_size(a) for a in dims)


# ------------------------------------------------------------------------------------ call
def _removed_by_tensor(plan: Plan) -> dict[tuple[str, str], dict[int, tuple[int, ...]]]:
    by_tensor: dict[tuple[str, str], dict[int, tuple[int, ...]]] = {}
    for e in plan.entries():
        by_tensor.setdefault((e.module, e.param), {})[e.dim] = e.indices
    return by_tensor


def _kept(t: torch.Tensor, dims: dict[int, tuple[int, ...]]) -> torch.Tensor:
    new = t.detach()
    for dim, removed in dims.items():
        keep = np.setdiff1d(np.arange(new.shape[dim]), np.asarray(removed, dtype=np.int64))
        new = new.index_select(dim, torch.as_tensor(keep, device=new.device))
    return new.clone()


def _slice_state(model: nn.Module, plan: Plan) -> dict[str, torch.Tensor]:
    """Slice parameters and buffers in place; returns the trace's tensor constants, sliced where the plan says.

    A constant fx captured while tracing (a rotary table computed in forward, say) is no attribute of
    the model: it is sliced here and lives on in the rewritten graph module.
    """
    constants = {k: copy.deepcopy(v) if isinstance(v, nn.Module) else v  # modules the forward built: resized below
                 for k, v in plan.graph.traced.constants.items()}
    for (mname, pname), dims in _removed_by_tensor(plan).items():
        if not mname and pname in constants:
            constants[pname] = _kept(constants[pname], dims)
            continue
        module = model.get_submodule(mname)
        old = getattr(module, pname)
        if isinstance(old, nn.Parameter):
            setattr(module, pname, nn.Parameter(_kept(old, dims), requires_grad=old.requires_grad))
        else:
            module._buffers[pname] = _kept(old, dims)
    return constants


def _resize_modules(model: nn.Module, plan: Plan, oracle: SizeOracle, constants: dict) -> None:
    done: set[str] = set()
    for node in plan.graph.traced.gm.graph.nodes:
        if node.op != "call_module" or node.target in done:
            continue
        done.add(node.target)
        module = constants[node.target] if node.target in constants else model.get_submodule(node.target)
        rule = lookup(type(module), module)
        if rule is not None and rule.resize is not None:
            rule.resize(module, oracle.atom_size, oracle.aux(node))


def _rewrite_graph(graph: fx.Graph, plan: Plan, oracle: SizeOracle) -> tuple[fx.Graph, dict[str, tuple]]:
    """A copy of the traced graph whose channel constants follow the plan; changed node name → (node, new args)."""
    new_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    changed: dict[str, tuple] = {}
    for node in graph.nodes:
        new_node = new_graph.node_copy(node, lambda n: env[n])
        env[node] = new_node
        if node.op not in ("call_function", "call_method"):
            continue
        rule = lookup(node.target)
        if rule is None or rule.rewrite is None or (plan.graph.node_dims.get(node.name) is None and not rule.sizes):
            continue
        result = rule.rewrite(node, oracle)
        if result is not None:
            args, kwargs = result
            new_node.args = fx.node.map_arg(args, lambda n: env[n])
            new_node.kwargs = fx.node.map_arg(kwargs, lambda n: env[n])
            changed[node.name] = (node, (args, kwargs))
    return new_graph, changed


# Attribute names that usually hold channel structure: preferred when several attributes hold the old value.
MIRRORED_ATTRIBUTES = ("num_heads", "heads", "head_dim", "dim_head", "attn_dim", "inner_dim", "key_dim", "val_dim",
                       "num_groups", "groups", "embed_dim", "dim", "num_feat", "channels", "hidden_dim")


def _attribute_updates(model: nn.Module, graph: fx.Graph, changed: dict[str, tuple],
                       cautious: bool) -> list[tuple[nn.Module, str, Any]]:
    """The int attributes a traced-through forward reads back as literals, with the new values to give them.

    ``reshape(B, N, 3, self.num_heads, self.head_dim)``, ``view(B, self.embed_dim, H, W)``: the module is
    the innermost one on a node's ``nn_module_stack``. Per module, an old value whose changed literals all
    become one new value updates the one attribute that held it (several: the one named in
    :data:`MIRRORED_ATTRIBUTES`, else none). ``cautious`` also leaves an old value alone that some
    tensor op of the module keeps as it was (HAT: a window of 24 beside a head dim of 24; but FDAT's
    ``view(B, N, 3, self.nh, ...)`` with ``nh == 3`` needs the bold choice). A wrong guess cannot go
    unnoticed: the user's class is only returned when its forward, traced again, computes the verified graph.
    """
    per_module: dict[str, dict] = {}
    for node in graph.nodes:
        if node.op not in ("call_function", "call_method"):
            continue
        if node.name not in changed and not (cautious and _makes_tensor(node.meta.get("gp_value"))):
            continue  # size arithmetic (C // num_heads): its literals follow the attribute, the rewrite keeps them
        stack = node.meta.get("nn_module_stack") or {}
        new_args = changed[node.name][1] if node.name in changed else (node.args, node.kwargs)
        pairs = per_module.setdefault(list(stack.values())[-1][0] if stack else "", {})  # "": the root's forward
        for old, new in _literal_pairs((node.args, node.kwargs), new_args):
            if cautious or old != new:
                pairs.setdefault(old, set()).add(new)
    updates = []
    for path, pairs in per_module.items():
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        original = {a: v for a, v in vars(module).items() if not a.startswith("_")}
        for old, news in pairs.items():
            if len(news) != 1 or old in news:
                continue  # kept somewhere, or read back as several different literals: ambiguous
            hits = [a for a, v in original.items() if _same_literal(v, old)]
            if len(hits) > 1:
                hits = [a for a in hits if a in MIRRORED_ATTRIBUTES]
            if len(hits) == 1:
                (new,) = news
                value = original[hits[0]]
                updates.append((module, hits[0], new if type(value) is int else type(value)(new)))
    return updates


def _set_attributes(updates: list[tuple[nn.Module, str, Any]]) -> list[tuple[nn.Module, str, Any]]:
    """Apply ``(module, name, value)`` updates; returns the updates that undo them."""
    undo = [(m, a, getattr(m, a)) for m, a, _ in updates]
    for m, a, v in updates:
        setattr(m, a, v)
    return undo


def _same_literal(value, literal) -> bool:
    """An int attribute equal to an int literal, or a tuple/list of ints equal to a sequence literal."""
    if type(literal) is int:
        return type(value) is int and value == literal
    return isinstance(value, (tuple, list)) and all(type(v) is int for v in value) and list(value) == list(literal)


def _literal_pairs(old, new) -> list[tuple]:
    """Pairs ``(old, new)`` of the int literals (and int sequences: split sizes) at the same place of two
    argument structures, changed or not. 0 and 1 say too little to find an attribute by."""
    if type(old) is int and type(new) is int:
        return [(old, new)] if old > 1 else []
    if isinstance(old, (tuple, list)) and isinstance(new, (tuple, list)) and len(old) == len(new):
        whole = [(tuple(old), tuple(new))] if old and all(type(v) is int for v in (*old, *new)) else []
        return whole + [p for a, b in zip(old, new) for p in _literal_pairs(a, b)]
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in sorted(old, key=str) if k in new for p in _literal_pairs(old[k], new[k])]
    if isinstance(old, slice) and isinstance(new, slice):  # x[:, :self.idx]
        return _literal_pairs((old.start, old.stop, old.step), (new.start, new.stop, new.step))
    return []


def _graph_module(root: nn.Module, graph: fx.Graph, constants: dict, name: str) -> fx.GraphModule:
    """A GraphModule over ``root``'s modules plus the tensor constants tracing took off the model."""
    for k, v in constants.items():
        setattr(root, k, v)
    try:
        gm = fx.GraphModule(root, graph, name)
    finally:
        for k in constants:
            delattr(root, k)
    for child_name, child in root.named_children():  # the user's module tree (timm's Attention with its
        setattr(gm, child_name, child)                 # num_heads), not fx's bare path containers
    return gm


# ------------------------------------------------------------------------------------ which result
def _keep_class(pruned: nn.Module, gm: fx.GraphModule, plan: Plan, changed: dict, sliced_constants: list,
                inputs: tuple) -> bool:
    """Update the attributes the forward reads back (boldly, then cautiously) until the user's class computes
    the verified graph; True when it does, with those attributes set, False (attributes as first set) when not."""
    traced = plan.graph.traced
    if not changed and not sliced_constants and not traced.guards:
        return True  # the same graph with smaller weights: nothing the forward reads has changed
    bold = _attribute_updates(pruned, traced.gm.graph, changed, cautious=False)
    cautious = _attribute_updates(pruned, traced.gm.graph, changed, cautious=True)
    undo = _set_attributes(bold)
    if _forward_computes(pruned, gm, traced, inputs):
        return True
    if [(id(m), a, v) for m, a, v in cautious] == [(id(m), a, v) for m, a, v in bold]:
        return False
    _set_attributes(undo)
    _set_attributes(cautious)
    return _forward_computes(pruned, gm, traced, inputs)


def _forward_computes(pruned: nn.Module, gm: fx.GraphModule, traced: Traced, inputs: tuple) -> bool:
    """True when the user's forward, traced again on the pruned model, is the verified graph ``gm``.

    Same ops in the same order, same literal arguments (the channel counts the rewrite set), same
    captured constants: then running the user's class is running ``gm`` at this input size, and at
    other sizes it keeps the user's own control flow.
    """
    try:
        again = trace(pruned, inputs, policy=traced.policy)
    except Exception:  # noqa: BLE001 - e.g. an assert on a channel count the pruned model no longer meets
        return False
    return _signature(again.gm.graph, again.constants) == _signature(gm.graph, _constants_of(gm))


def _constants_of(gm: fx.GraphModule) -> dict[str, torch.Tensor]:
    return {n.target: getattr(gm, n.target) for n in gm.graph.nodes
            if n.op == "get_attr" and n.target.startswith("_tensor_constant")}


def _signature(graph: fx.Graph, constants: dict) -> list:
    """The tensor computation of a graph as data, for comparing two graphs of one forward.

    One entry per node that makes a tensor: its op, its target and its arguments, where a tensor argument
    is the position of the node that made it and any other argument is its value (a size computed at
    run time and a literal of the same value are the same argument). Size arithmetic itself is not
    listed: only what it feeds into tensor ops matters. Captured constants are compared by value.
    """
    index: dict[fx.Node, int] = {}

    def arg(a):
        if not isinstance(a, fx.Node):
            return a
        if a in index:
            return ("tensor", index[a])
        value = a.meta.get("gp_value")
        return "<device>" if isinstance(value, torch.device) else value  # meta while tracing, cpu when checked

    out = []
    for n in graph.nodes:
        if not _makes_tensor(n.meta.get("gp_value")) and n.op != "output":
            continue
        index[n] = len(index)
        target = n.target
        if n.op == "get_attr" and target in constants:
            t = constants[target]
            target = ("constant", tuple(t.shape), t.dtype, t.detach().cpu().numpy().tobytes())
        out.append((n.op, target if n.op != "placeholder" else "", fx.node.map_aggregate(n.args, arg),
                    fx.node.map_aggregate(n.kwargs, arg)))
    return out


def _makes_tensor(value) -> bool:
    if isinstance(value, TensorSpec):
        return True
    return isinstance(value, (tuple, list)) and any(_makes_tensor(v) for v in value)


_AS_PYTHON = {"bool": bool, "int": int, "index": int, "float": float, "len": len}


def _with_guards(gm: fx.GraphModule, plan: Plan, oracle: SizeOracle) -> fx.GraphModule:
    """``gm`` checking, when it runs, the tracer's guards that do not depend on pruned channel counts.

    A guard whose value the plan changes (``C % heads == 0`` with fewer channels) described the dense
    network; the shape check covers those. The others describe the input the graph was traced for.
    """
    nodes = {n.name: n for n in gm.graph.nodes}
    originals = {n.name: n for n in plan.graph.traced.gm.graph.nodes}
    added = False
    for guard in plan.graph.traced.guards:
        node = nodes.get(guard.node)
        if node is None or guard.how not in _AS_PYTHON:
            continue
        try:
            if _AS_PYTHON[guard.how](_new_size_value(originals[guard.node], oracle, {})) != guard.value:
                continue
        except Exception:  # noqa: BLE001 - not pure size arithmetic: the check stays as traced
            pass
        with gm.graph.inserting_after(node):
            asked = node if guard.how == "bool" else gm.graph.call_function(_AS_PYTHON[guard.how], (node,))
        with gm.graph.inserting_after(asked):
            cond = asked if guard.value is True else gm.graph.call_function(operator.eq, (asked, guard.value))
        with gm.graph.inserting_after(cond):
            gm.graph.call_function(torch._assert, (cond, f"graphprune: this pruned graph was traced for inputs with "
                                                         f"{guard.text} ({guard.where}); analyze and prune with an "
                                                         f"example input of this size"))
        added = True
    if added:
        gm.recompile()
    return gm


# ------------------------------------------------------------------------------------ ensures
def _check_shapes(gm: fx.GraphModule, plan: Plan, oracle: SizeOracle, inputs) -> list[str]:
    """Names and details of nodes whose propagated shape differs from the prediction."""
    try:
        with module_state_restored(gm):  # a forward caching tensors on a module must not keep fake ones
            propagate(gm, inputs, shapes_only=False)
    except Exception as exc:  # noqa: BLE001
        return [f"the pruned graph does not run: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"]
    originals = {n.name: n for n in plan.graph.traced.gm.graph.nodes}
    bad = []
    for node in gm.graph.nodes:
        orig = originals.get(node.name)
        if orig is None or node.op == "output":
            continue
        expected = oracle.expected(orig)
        if expected is None:
            continue
        got = _shapes(node_value(node))
        if got != expected and not _data_sized_differences(oracle, orig, got, expected):
            bad.append(f"{node.name} ({node.op} {node.target}): expected {expected}, got {got}")
    return bad


def _data_sized_differences(oracle: SizeOracle, node: fx.Node, got, expected) -> bool:
    """True when the shapes differ only in dims whose size depends on the data (a boolean mask's selection)."""
    dims = oracle.graph.node_dims.get(node.name)
    if not dims or not isinstance(got, tuple) or not isinstance(expected, tuple) or len(got) != len(expected):
        return False
    if isinstance(dims[0], (list, type(None))):
        return all(g == e or (d is not None and g is not None and e is not None and len(g) == len(e)
                              and all(a == b or oracle.atoms.is_dynamic(atom) for a, b, atom in zip(g, e, d)))
                   for g, e, d in zip(got, expected, dims))
    return all(a == b or oracle.atoms.is_dynamic(atom) for a, b, atom in zip(got, expected, dims))


def _shapes(value) -> Any:
    if isinstance(value, TensorSpec):
        return value.shape
    if isinstance(value, tuple):
        return tuple(_shapes(v) if isinstance(v, TensorSpec) else None for v in value)
    return None


def _example_inputs(plan: Plan, device) -> tuple:
    """The analysis' own inputs (shapes that depend on data come out as traced), else zeros of their shapes."""
    if plan.graph.example_inputs:
        return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in plan.graph.example_inputs)
    specs = [n.meta["gp_value"] for n in plan.graph.traced.gm.graph.nodes if n.op == "placeholder"]
    return tuple(torch.zeros(s.shape, dtype=s.dtype, device=device) for s in specs if isinstance(s, TensorSpec))


def apply(model: nn.Module, plan: Plan, *, inplace: bool = False) -> nn.Module:
    """A physically smaller copy of ``model`` with the plan's channels removed.

    Raises
    ------
    ValueError
        When the plan was made for another model or removes channels of a blocked group.
    PruneError
        When the rewritten network's shapes differ from the plan's prediction (never silent).
    """
    if plan.graph.model is not model:
        # tolerate an equal-architecture model (e.g. trained weights loaded into a rebuilt one)
        if [n for n, _ in model.named_modules()] != [n for n, _ in plan.graph.model.named_modules()]:
            raise ValueError("the plan was made for another model: call graphprune.analyze on this model first")
    for gid in plan.removed:
        if not plan.graph.groups[gid].prunable:
            raise ValueError(f"plan removes channels of group {gid}, which is blocked: {plan.graph.groups[gid].reason}")
    pruned = model if inplace else copy_model(model)
    oracle = SizeOracle(plan)
    effective_weights_as_directions(pruned)  # legacy weight norm: slice the weight itself, not its direction
    constants = _slice_state(pruned, plan)
    rederive_weight_norm(pruned)
    sliced_constants = [k for k, v in constants.items()
                        if isinstance(v, torch.Tensor) and v is not plan.graph.traced.constants[k]]
    _resize_modules(pruned, plan, oracle, constants)
    device = next((p.device for p in pruned.parameters()), torch.device("cpu"))
    inputs = _example_inputs(plan, device)
    for strict in (False, True):  # strict: also replace run-time size arguments of channel dims
        oracle.strict = strict
        graph, changed = _rewrite_graph(plan.graph.traced.gm.graph, plan, oracle)
        gm = _graph_module(pruned, graph, constants, type(model).__name__)
        gm.eval()  # shapes were propagated in eval mode (batch norm on a batch of one, dropout)
        bad = _check_shapes(gm, plan, oracle, inputs)
        if not bad:
            break
    else:
        raise PruneError("pruned network has unexpected shapes: " + "; ".join(bad[:3]) +
                         (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "") +
                         " — please report this model; as a workaround pass ignore=[...] for the modules involved")
    keep_class = _keep_class(pruned, gm, plan, changed, sliced_constants, inputs)
    result = pruned if keep_class else _with_guards(gm, plan, oracle)
    result.train(model.training)
    if not keep_class:
        gm.gp_graph_module = True
        for attr in ("gp_spec", "scale", "rgb_range"):
            if hasattr(model, attr):
                setattr(gm, attr, copy.deepcopy(getattr(model, attr)))
    result.gp_plan = plan_record(plan)  # what graphprune.save writes beside the dense model's description
    if getattr(model, "gp_spec", None):
        result.gp_save_spec = make_spec(plan, model=model)
    return result
