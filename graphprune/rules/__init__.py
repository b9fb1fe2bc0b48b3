"""Op coupling rules, one small module per op family, all registered in one table.

Import order fills :data:`graphprune.rules.table.RULES`. Use :func:`set_rule` to add or override
a rule for your own op or module class::

    from graphprune.rules import set_rule
    set_rule(MyGate, lambda ctx: ctx.unify_dims(ctx.dims(ctx.tensor_args()[0]), ctx.out()))

:func:`tracing_policy` tells the tracer what the table implies for tracing: a module class with its
own rule stays opaque, and a plain Python function with a rule (``einops.rearrange``) is recorded as
one node instead of being traced into.
"""
import sys
import types

from . import attention, conv, einops, elementwise, norm, reduce, selection, shape, spatial, timm, torchvision_ops  # noqa: F401  (registration)
from .table import RULES, Rule, lookup, register, set_rule, target_name

__all__ = ["RULES", "Rule", "lookup", "register", "set_rule", "target_name", "tracing_policy"]


def _library_rules() -> tuple[set[type], list]:
    """Register the rules of libraries in use (timm, torchvision); timm's no-trace modules and functions.

    Only libraries already imported are consulted (a timm model necessarily imported timm), so that
    analyzing other models does not pay their import time.
    """
    if "torchvision" in sys.modules:
        torchvision_ops.register_torchvision()
    if "timm" not in sys.modules:
        return set(), []
    try:
        from timm.layers import _fx as timm_fx
    except Exception:  # noqa: BLE001 - timm changed its layout: nothing to add
        return set(), []
    timm.register_timm()
    return set(timm_fx.get_notrace_modules()), list(timm_fx.get_notrace_functions())


def _own_rule(m) -> bool:
    return type(m) in RULES


def _has_rule(m) -> bool:
    return lookup(type(m), m) is not None


def _wrapped_functions() -> list:
    """Plain Python functions with a rule, outside torch (whose functions fx already records whole) and
    outside graphprune (whose node-making helpers the tracer calls itself)."""
    return [t for t in RULES if isinstance(t, types.FunctionType)
            and not (t.__module__ or "").startswith(("torch", __name__.split(".")[0]))]


def tracing_policy(leaf_modules=()):
    """The :class:`graphprune.trace.LeafPolicy` the rule table implies, plus the user's ``leaf_modules``."""
    from ..trace import LeafPolicy

    notrace_types, notrace_functions = _library_rules()
    functions = list(dict.fromkeys([*_wrapped_functions(), *notrace_functions]))
    return LeafPolicy(own_rule=_own_rule, notrace_types=tuple(notrace_types), has_rule=_has_rule,
                      wrapped_functions=tuple(functions)).with_leaf_modules(leaf_modules)
