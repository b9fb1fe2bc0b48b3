"""The op rule table: one flat dict from an fx target to the rule for its op family.

Keys are what an fx node's ``target`` resolves to:

* a module **class** for ``call_module`` nodes (looked up by exact class, then along the MRO as
  long as the subclass adds no parameters the rule does not know about);
* a **function** object for ``call_function`` nodes (``torch.cat``, ``operator.add``, ``F.relu``);
* a method **name** string for ``call_method`` nodes (``"view"``, ``"permute"``).

A :class:`Rule` has up to three parts, each a small function documented once here:

``couple(ctx)``
    Relates the channel spaces (atoms) of the node's inputs, outputs and parameters through the
    builder context (``ctx.unify``, ``ctx.cat``, ``ctx.prod``, ``ctx.free``, ``ctx.block``,
    ``ctx.param``). Every dimension of every tensor input and output must be related, freed or
    blocked; whatever a rule leaves untouched is blocked afterwards, so a forgotten dimension can
    only make pruning more conservative, never wrong.
``rewrite(node, new_size)``
    For functions and methods whose arguments hold channel counts (``view(b, 64, h, w)``,
    ``split(x, [32, 32])``): returns new ``(args, kwargs)`` given ``new_size(node_or_arg, dim)``,
    or None when nothing changes. Rules registered with ``sizes=True`` also see nodes that hold no
    tensor (``torch._assert`` on size arithmetic).
``resize(module, new_size_of_atom, aux)``
    For modules: updates attributes after their parameters were sliced (``in_channels``,
    ``groups``, ``num_features``, ``normalized_shape``, ``num_heads``).

Three outcomes exist for an op: *handled* (a rule), *passthrough* (a rule that unifies inputs and
outputs dimension by dimension) and *unsupported* (no rule: every channel the op touches is
blocked, and the op is named in the reason). :func:`set_rule` overrides or removes an entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

__all__ = ["Rule", "RULES", "register", "set_rule", "lookup", "target_name", "replace_arg"]


@dataclass(frozen=True)
class Rule:
    couple: Callable[[Any], None]
    rewrite: Callable | None = None
    resize: Callable | None = None
    params: tuple[str, ...] = ()  # parameters/buffers of a module the rule slices
    name: str = ""
    sizes: bool = False  # rewrite also nodes that hold no tensor (checks on size arithmetic)


RULES: dict[Any, Rule] = {}


def register(*targets, rewrite=None, resize=None, params=(), name="", sizes=False):
    """Decorator: register ``couple`` for every target in ``targets``."""

    def deco(couple):
        rule = Rule(couple, rewrite, resize, tuple(params), name or couple.__name__, sizes)
        for t in dict.fromkeys(targets):  # aliases such as F.conv2d is torch.conv2d count once
            if t in RULES:
                raise ValueError(f"duplicate op rule for {target_name(t)}")
            RULES[t] = rule
        return couple

    return deco


def set_rule(target, rule: Rule | Callable | None) -> None:
    """Override the rule for ``target`` (a Rule or a bare couple function), or remove it (None)."""
    if rule is None:
        RULES.pop(target, None)
    else:
        RULES[target] = rule if isinstance(rule, Rule) else Rule(rule, name=getattr(rule, "__name__", ""))


def lookup(target, module: nn.Module | None = None) -> Rule | None:
    """The rule for an fx target; for modules, walk the MRO while the parameters stay known."""
    if module is None:
        return RULES.get(target)
    own = {n for n, _ in module.named_parameters(recurse=False)} | {
        n for n, _ in module.named_buffers(recurse=False)}
    for cls in type(module).__mro__:
        rule = RULES.get(cls)
        if rule is not None:
            if cls is type(module) or own <= set(rule.params):
                return rule
            return None
        if cls is nn.Module:
            break
    return None


def target_name(target) -> str:
    """A readable name: ``Conv2d``, ``Tensor.view``, ``torch.cat``, ``F.interpolate``, ``operator.add``."""
    if isinstance(target, str):
        return f"Tensor.{target}"
    if isinstance(target, type):
        return target.__name__
    name = getattr(target, "__name__", None) or repr(target)
    mod = getattr(target, "__module__", None) or ""
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    if mod.startswith("torch.nn.functional") or mod == "torch._C._nn":
        return f"F.{name}"
    if mod.startswith("torch") or mod == "":
        return f"torch.{name}"
    return f"{mod}.{name}"


def replace_arg(node, index: int, name: str, value):
    """``(args, kwargs)`` of ``node`` with the argument at ``index`` (or keyword ``name``) set to ``value``."""
    if len(node.args) > index:
        return (*node.args[:index], value, *node.args[index + 1:]), node.kwargs
    return node.args, {**node.kwargs, name: value}
