"""Op coupling rules, one small module per op family, all registered in one table.

Import order fills :data:`graphprune.rules.table.RULES`. Use :func:`set_rule` to add or override
a rule for your own op or module class::

    from graphprune.rules import set_rule
    set_rule(MyGate, lambda ctx: ctx.unify_dims(ctx.dims(ctx.tensor_args()[0]), ctx.out()))
"""
from . import attention, conv, elementwise, norm, reduce, shape, timm, torchvision_ops  # noqa: F401  (registration)
from .table import RULES, Rule, lookup, register, set_rule, target_name

__all__ = ["RULES", "Rule", "lookup", "register", "set_rule", "target_name"]
