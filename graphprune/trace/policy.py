"""Which modules the tracer keeps opaque (leaves) and which functions it records as single nodes.

The policy is data handed to the tracer by its caller: the tracer itself knows no op rules.
:func:`graphprune.rules.tracing_policy` builds the one the analysis uses from the rule table:

1. the standard ``torch.nn`` leaves (Conv2d, Linear, norms, activations, ...), as fx does;
2. modules the user names in ``leaf_modules`` (classes, or fnmatch globs on qualified names);
3. modules whose class has its own entry in the rule table (``set_rule(MyGate, ...)``) and
   registered no-trace modules of a library (timm's) that a rule knows;
4. an automatic fallback, applied by the tracer: when tracing fails inside a module, the
   smallest module on the call stack becomes a leaf and tracing restarts (reported with the error).

Functions with a rule that live outside torch (``einops.rearrange``, timm's no-trace helpers) are
*wrapped*: recorded as one ``call_function`` node instead of being traced into, whether the code
calls them by name (``from einops import rearrange``) or through their module (``einops.rearrange``).
"""
from __future__ import annotations

import fnmatch
import sys
import types
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from torch import nn

__all__ = ["LeafPolicy", "split_leaf_spec"]


def split_leaf_spec(leaf_modules) -> tuple[tuple[type, ...], tuple[str, ...]]:
    """``leaf_modules`` entries as (classes, name globs); anything else is a TypeError."""
    classes, globs = [], []
    for spec in leaf_modules:
        if isinstance(spec, type) and issubclass(spec, nn.Module):
            classes.append(spec)
        elif isinstance(spec, str):
            globs.append(spec)
        else:
            raise TypeError(f"leaf_modules entries must be nn.Module classes or name globs, got {spec!r}")
    return tuple(classes), tuple(globs)


def _never(module: nn.Module) -> bool:
    return False


@dataclass(frozen=True)
class LeafPolicy:
    """The tracer's leaf decisions, as data.

    Attributes
    ----------
    user_types, user_globs
        Modules the user keeps opaque (by class, or fnmatch glob on the qualified name).
    own_rule
        True for a module whose class has its own op rule: it stays opaque.
    notrace_types, has_rule
        A library's registered no-trace modules (timm) become leaves only when ``has_rule`` knows
        them; the others are traced through, so their insides get the ordinary rules.
    wrapped_functions
        Recorded as single ``call_function`` nodes.
    """

    user_types: tuple[type, ...] = ()
    user_globs: tuple[str, ...] = ()
    own_rule: Callable[[nn.Module], bool] = _never
    notrace_types: tuple[type, ...] = ()
    has_rule: Callable[[nn.Module], bool] = _never
    wrapped_functions: tuple[Callable, ...] = ()

    def with_leaf_modules(self, leaf_modules: Iterable) -> "LeafPolicy":
        classes, globs = split_leaf_spec(leaf_modules)
        return replace(self, user_types=self.user_types + classes, user_globs=self.user_globs + globs)

    def user_leaf(self, name: str, module: nn.Module) -> bool:
        return isinstance(module, self.user_types) or any(fnmatch.fnmatchcase(name, g) for g in self.user_globs)

    def notrace_leaf(self, module: nn.Module) -> bool:
        return bool(self.notrace_types) and isinstance(module, self.notrace_types) and self.has_rule(module)

    def is_leaf(self, name: str, module: nn.Module) -> bool:
        """Leaf by policy (items 2 and 3 of the module docstring); fx's own torch.nn test comes after."""
        return self.user_leaf(name, module) or self.notrace_leaf(module) or self.own_rule(module)

    def reason(self, name: str, module: nn.Module) -> str | None:
        """Why ``module`` is a leaf by policy, for the analysis report ("user", "timm no-trace")."""
        if name and self.user_leaf(name, module):
            return "user"
        if name and self.notrace_leaf(module):
            return f"{type(module).__module__.split('.')[0]} no-trace"
        return None

    def wrapped_modules(self) -> list[types.ModuleType]:
        """Modules whose attributes must be patched too, so ``pkg.fn(...)`` is caught as well as ``fn(...)``."""
        out: dict[str, types.ModuleType] = {}
        for fn in self.wrapped_functions:
            path = getattr(fn, "__module__", None) or ""
            for name in (path, path.split(".")[0]):
                if name in sys.modules:
                    out[name] = sys.modules[name]
        return list(out.values())
