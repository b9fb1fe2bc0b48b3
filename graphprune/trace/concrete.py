"""The tracer: torch.fx with a concrete value behind every proxy, and a guard wherever Python needs one.

Real research code asks traced values for concrete ones all the time: ``if h % self.window_size != 0``
(a padding branch), ``range(h // ws)``, ``for blk in ...`` over a size, ``np.arange(x.shape[-1])``,
``int(math.ceil(...))``, ``if x_size != self.input_resolution`` (a mask recomputed for a new size),
``x[:, :, idx] = y``. Plain symbolic tracing cannot answer and stops. This tracer records every op
*and* runs it on a value (:mod:`graphprune.trace.values`), so each answer is read off the example
input: the graph follows the branch the example takes, and the answer is recorded as a
:class:`Guard` ("x.shape[2] % 8 == 0", "len(x) == 1") — the condition under which the graph is the
model's computation. Everything Python does not ask about stays symbolic (``x.view(b, c, h * w)``
keeps reading ``b``, ``h``, ``w`` from the tensor).

Only what depends on the input's sizes makes a guard; a rank, a dtype or a parameter's shape does
not vary, so it does not. A question about the input's *data* (``if x.max() > 1``) is not answered:
the branch could change the channel structure for other inputs, so it raises
:class:`DataDependentError` and the caller's fallback keeps the module that asked opaque.

>>> import torch
>>> from torch import nn
>>> class Pad(nn.Module):
...     def forward(self, x):
...         if x.shape[-1] % 4 != 0:
...             x = nn.functional.pad(x, (0, 4 - x.shape[-1] % 4))
...         return x * 2
>>> tracer = ConcreteTracer(inputs=(torch.zeros(1, 3, 8, 8),))
>>> graph = tracer.trace(Pad())
>>> [g.text for g in tracer.guards]
['x.shape[-1] % 4 == 0']
"""
from __future__ import annotations

import contextlib
import inspect
import operator
import os
import sysconfig
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from .policy import LeafPolicy
from .values import Escalate, Values

__all__ = ["Guard", "ConcreteTracer", "ConcreteProxy", "DataDependentError", "set_tensor_attribute"]


@dataclass(frozen=True)
class Guard:
    """A concrete answer the tracer gave to Python, and so a condition the traced graph assumes.

    Attributes
    ----------
    text : str
        The condition, readable (``"x.shape[2] % 8 == 0"``).
    value : Any
        The answer given (``True``, ``6``, ...).
    how : str
        What Python asked for: ``"bool"``, ``"int"``, ``"index"``, ``"float"``, ``"len"`` or ``"array"``
        (the answer is ``how(value of node)``).
    where : str
        The user's source line that asked (``"SwinIR.py:873 (check_image_size)"``).
    node : str
        The fx node whose value was taken.
    """

    text: str
    value: Any
    how: str
    where: str
    node: str

    def __str__(self) -> str:
        return f"{self.text}  ({self.where})"


class DataDependentError(RuntimeError):
    """Python asked for a value that depends on the input's data: control flow on data is not followed."""


def set_tensor_attribute(tensor: torch.Tensor, name: str, value: Any) -> None:
    """``tensor.<name> = value``, as a graph node: a forward that re-parametrizes a weight (``w.data = ...``)."""
    setattr(tensor, name, value)


# Tensor factories, recorded whenever an argument is traced: torch's argument parser does not hand a
# proxy in a size list *and* a traced ``device=`` to ``__torch_function__`` (``torch.zeros(h, w, device=p.device)``).
FACTORIES = (torch.zeros, torch.ones, torch.empty, torch.full, torch.rand, torch.randn, torch.randint,
             torch.arange, torch.linspace, torch.logspace, torch.eye)
_TORCH_EMPTY = torch.empty  # the function itself: while tracing, torch.empty is fx's wrapper of it

INSTALLED_MODULE = "_gp_module_"  # prefix of modules a forward builds, attached to the root while tracing
_PROXY_SLOTS = {"node", "tracer", "root", "attr", "_node"}  # what fx keeps on a Proxy / Attribute itself


class ConcreteProxy(fx.Proxy):
    """A Proxy that answers Python's requests for concrete values through its tracer."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PROXY_SLOTS or name.startswith("__"):
            object.__setattr__(self, name, value)
        else:  # a side effect on a traced tensor: recorded, so the analysis sees it
            self.tracer.create_proxy("call_function", set_tensor_attribute, (self, name, value), {})

    def __bool__(self) -> bool:
        return self.tracer.concretize(self, "bool")

    def __index__(self) -> int:
        return self.tracer.concretize(self, "index")

    def __int__(self) -> int:
        return self.tracer.concretize(self, "int")

    def __float__(self) -> float:
        return self.tracer.concretize(self, "float")

    def __len__(self) -> int:
        return self.tracer.concretize(self, "len")

    def __iter__(self):
        return iter([self[i] for i in range(len(self))])

    def __contains__(self, item) -> bool:
        """``"Half" in x.type()``: answered from the value (a tensor's contents are data)."""
        return item in self.tracer.concretize(self, "value")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``np.ceil(h / ws)`` on a traced size: recorded like ``math.ceil``, answered when Python asks.

        With arrays among the inputs (``np.arange(w) / h``) numpy computes a constant: the sizes are
        answered (and guarded) and numpy runs on them.
        """
        if method == "__call__" and not kwargs and all(isinstance(i, (fx.Proxy, int, float)) for i in inputs):
            return self.tracer.create_proxy("call_function", ufunc, inputs, {})
        concrete = [np.asarray(i) if isinstance(i, fx.Proxy) else i for i in inputs]
        return getattr(ufunc, method)(*concrete, **kwargs)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.tracer.concretize(self, "array"), dtype=dtype)

    def __round__(self, ndigits=None):
        return self.tracer.create_proxy("call_function", round, (self,) if ndigits is None else (self, ndigits), {})

    def __setitem__(self, index, value) -> None:
        self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})

    def __getattr__(self, k: str) -> "ConcreteAttribute":
        if k.startswith("__") and k.endswith("__"):  # protocol probes (numpy's __array_struct__): not tensor attributes
            raise AttributeError(k)
        return ConcreteAttribute(self, k)


class ConcreteAttribute(ConcreteProxy, fx.proxy.Attribute):
    """``proxy.attr``: a method call when called, else a ``getattr`` node (made lazily, as fx does)."""

    def __init__(self, root: fx.Proxy, attr: str):
        fx.proxy.Attribute.__init__(self, root, attr)


_ANSWER = {"bool": bool, "index": operator.index, "int": int, "float": float, "len": len, "array": lambda v: v,
           "value": lambda v: v}


class ConcreteTracer(fx.Tracer):
    """fx tracer with concrete values (one of meta / fake / real, see ``values``), guards and a leaf policy.

    Parameters
    ----------
    policy : LeafPolicy
        Leaves and wrapped functions.
    inputs : tuple of Tensors
        The example inputs: the forward's first parameters. Its other parameters keep their defaults.
    mode : "meta", "fake" or "real"
    auto_leaves : set of str
        Modules made leaves by the caller's fallback (tracing failed inside them before).
    """

    def __init__(self, policy: LeafPolicy = LeafPolicy(), inputs: tuple = (), mode: str = "meta",
                 auto_leaves: frozenset[str] = frozenset()):
        super().__init__(autowrap_functions=tuple(policy.wrapped_functions) + FACTORIES)
        self._autowrap_search.extend([*policy.wrapped_modules(), torch])
        self.policy, self.auto_leaves = policy, auto_leaves
        self.inputs = tuple(inputs)
        self.vals = Values(mode, isolate=self.computing)
        self.values: dict[fx.Node, Any] = {}
        self.guards: list[Guard] = []
        self.escalation: Escalate | None = None  # kept in case user code swallows the exception
        self.gp_stack: list[str] = []
        self._placeholders = 0
        self._computing = False
        self._state_names: dict[int, str] | None = None

    def trace(self, root, concrete_args=None):
        with _legacy_constructors_record(self):
            return super().trace(root, concrete_args)

    # ---- leaves
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.auto_leaves or self.policy.is_leaf(qualname, m) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        if self._computing:  # running real code for a value: the module just runs
            return forward(*args, **kwargs)
        if self.submodule_paths is not None and m not in self.submodule_paths:
            self._install(m)
        self.gp_stack.append(self.path_of_module(m))
        out = super().call_module(m, forward, args, kwargs)
        self.gp_stack.pop()  # on success only: after an error the stack still names the failing module
        return out

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        """A parameter or buffer read in forward becomes a ``get_attr`` node (found by identity, in O(1))."""
        if self._computing or not isinstance(attr_val, torch.Tensor):
            return attr_val
        name = self._state_name(attr_val)
        if name is None or not (isinstance(attr_val, nn.Parameter) or self.proxy_buffer_attributes):
            return attr_val
        if name not in parameter_proxy_cache:
            parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
        return parameter_proxy_cache[name]

    @contextlib.contextmanager
    def computing(self):
        """While a value is computed, fx's patched module calls and attribute reads pass straight through."""
        was, self._computing = self._computing, True
        st = fx._symbolic_trace
        tracing = st._get_is_fx_tracing()
        st._set_is_fx_tracing(False)
        try:
            yield
        finally:
            self._computing = was
            st._set_is_fx_tracing(tracing)

    def _install(self, m: nn.Module) -> str:
        """A module the forward builds and calls (``Rearrange("b c h w -> b h w c")(x)``, ``nn.Upsample(...)(x)``)
        is no submodule: it is attached to the root as ``_gp_module_N`` (taken off again with the tensor
        constants) so that the graph can call it."""
        n = sum(1 for k in self.root._modules if k.startswith(INSTALLED_MODULE))
        name = f"{INSTALLED_MODULE}{n}"
        self.root.add_module(name, m)
        for sub_name, sub in m.named_modules(prefix=name):
            self.submodule_paths.setdefault(sub, sub_name)
        return name

    # ---- the root's parameters: the example inputs, then the defaults
    def create_args_for_root(self, root_fn, is_module, concrete_args=None):
        params = list(inspect.signature(inspect.unwrap(root_fn)).parameters.values())[1 if is_module else 0:]
        n = len(self.inputs)
        names, defaults = [], {}
        for p in params:
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                names += [f"input_{i}" for i in range(len(names), n)]
                break
            if len(names) < n and p.kind is not inspect.Parameter.VAR_KEYWORD:
                names.append(p.name)
            elif p.default is not inspect.Parameter.empty:
                defaults[p.name] = p.default  # passed as the value itself: no placeholder, no codegen
            elif p.kind not in (inspect.Parameter.VAR_KEYWORD,):
                raise TypeError(f"forward needs argument {p.name!r} beyond the {n} example input(s)")
        if len(names) < n:
            raise TypeError(f"forward takes {len(names)} input(s), {n} example input(s) were given")
        proxies = [self.create_proxy("placeholder", name, (), {}) for name in names[:n]]

        def forward_with_defaults(*args):
            return root_fn(*args, **defaults)

        return forward_with_defaults, ([self.root] if is_module else []) + proxies

    # ---- values
    def proxy(self, node: fx.Node) -> ConcreteProxy:
        return ConcreteProxy(node, self)

    def create_arg(self, a: Any):
        """numpy scalars (``np.log`` of a size) become python numbers: generated code knows no ``np``."""
        if isinstance(a, np.generic):
            return a.item()
        if isinstance(a, np.ndarray):
            return super().create_arg(torch.from_numpy(a.copy()))
        if isinstance(a, nn.Parameter):  # fx searches every parameter of the model for each one: O(1) here
            name = self._state_name(a)
            if name is not None:
                return self.create_node("get_attr", name, (), {})
        return super().create_arg(a)

    def _state_name(self, t: torch.Tensor) -> str | None:
        """The qualified name of a parameter or buffer of the root, found by identity."""
        if self._state_names is None:
            self._state_names = {id(v): n for n, v in (*self.root.named_parameters(), *self.root.named_buffers())}
        return self._state_names.get(id(t))

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None) -> fx.Node:
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        if kind != "output":
            try:
                self.values[node] = self._value_of(node)
            except BaseException as exc:
                self.graph.erase_node(node)  # the user's code may catch this and go on another way
                if isinstance(exc, Escalate):
                    self.escalation = self.escalation or exc
                raise
        return node

    def _value_of(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            self._placeholders += 1
            return self.vals.convert(self.inputs[self._placeholders - 1])
        if node.op == "get_attr":
            return self.vals.convert(_fetch(self.root, node.target))
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), self.values.__getitem__)
        return self.vals.call(node.op, node.target, args, kwargs, self.root)

    # ---- concrete answers
    def concretize(self, proxy: fx.Proxy, how: str) -> Any:
        """Answer ``bool``/``int``/``len``/... of a traced value from its concrete value, and record a guard."""
        node = proxy.node
        value = self.values[node]
        text, kind = _describe(node)
        if kind == "data" and how != "len":  # a length is a size or a structure, never data
            raise DataDependentError(f"Python needs {how}() of {text}, which depends on the input's data")
        if isinstance(value, torch.Tensor) and how != "len" and self.vals.mode != "real":
            exc = Escalate(self.vals.mode, f"give {how}() of the tensor {node.name} (its data is needed)")
            self.escalation = self.escalation or exc
            raise exc
        answer = _ANSWER[how](value)
        self._record(node, how, answer, value, text, kind)
        return answer

    def to_bool(self, obj: fx.Proxy) -> bool:
        return self.concretize(obj, "bool")

    def iter(self, obj: fx.Proxy):
        return iter(obj)

    def _record(self, node: fx.Node, how: str, answer: Any, value: Any, text: str, kind: str) -> None:
        if how == "len":
            if not isinstance(value, torch.Tensor):
                return  # the length of a shape (a rank) or of a python sequence: structure, not size
            text, kind = f"len({text})", "size"
        if kind == "const":
            return
        if how == "bool" and type(value) in (int, float):  # `if h % 8:` reads as a comparison with zero
            text = f"{text} {'!=' if answer else '=='} 0"
        elif how == "bool":
            text = text if answer else _negate(text)
        elif how == "array":
            text = f"{text} == {np.asarray(answer).tolist()!r}"
        elif how in ("int", "index", "float") and not (isinstance(value, (int, float, np.number)) and value == answer):
            text = f"{'int' if how == 'index' else how}({text}) == {answer!r}"
        else:
            text = f"{text} == {answer!r}"
        if all(g.text != text for g in self.guards):
            self.guards.append(Guard(text, answer if how != "array" else np.asarray(answer).tolist(), how,
                                     _user_location(), node.name))


@contextlib.contextmanager
def _legacy_constructors_record(tracer: "ConcreteTracer"):
    """``torch.Tensor(b, h, w)`` with traced sizes (HVI colour transforms): recorded as ``torch.empty``.

    The legacy constructor parses its sizes in C++ without asking Python for ``__index__`` or
    ``__torch_function__``, so neither a proxy nor fx can intercept it otherwise.
    """
    own = "__new__" in vars(torch.Tensor)
    original = torch.Tensor.__new__

    def new(cls, *args, **kwargs):
        if cls is torch.Tensor and any(isinstance(a, fx.Proxy) for a in args):
            return tracer.create_proxy("call_function", _TORCH_EMPTY, args, kwargs)
        return original(cls, *args, **kwargs)

    torch.Tensor.__new__ = new
    try:
        yield
    finally:
        if own:
            torch.Tensor.__new__ = original
        else:
            del torch.Tensor.__new__


def _fetch(root: nn.Module, path: str) -> Any:
    """``root.a.b.weight`` without ``nn.Module.__getattr__`` (fx patches it while tracing)."""
    obj: Any = root
    for part in path.split("."):
        if isinstance(obj, nn.Module):
            for store in (obj._modules, obj._parameters, obj._buffers, obj.__dict__):
                if part in store:
                    obj = store[part]
                    break
            else:
                obj = object.__getattribute__(obj, part)
        else:
            obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------------------------------
# Readable guard expressions

_INFIX = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.floordiv: "//", operator.truediv: "/",
          operator.mod: "%", operator.pow: "**", operator.eq: "==", operator.ne: "!=", operator.lt: "<",
          operator.le: "<=", operator.gt: ">", operator.ge: ">=", operator.and_: "&", operator.or_: "|"}
_NEGATION = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_KINDS = ("const", "size", "data")
_CONST_ATTRIBUTES = {"dtype", "device", "ndim", "is_cuda", "requires_grad", "layout", "is_sparse"}
_CONST_METHODS = {"dim", "ndimension", "type", "element_size", "is_floating_point", "is_complex", "get_device",
                  "is_contiguous"}


def _worst(*kinds: str) -> str:
    return max(kinds, key=_KINDS.index, default="const")


def _describe(node: Any, depth: int = 0) -> tuple[str, str]:
    """``(text, kind)`` of a value in the graph: kind is const (fixed), size (input sizes) or data."""
    if not isinstance(node, fx.Node):
        return repr(node), "const"
    if depth > 8:
        return node.name, "size"
    target, args = node.target, node.args
    if node.op == "placeholder":
        return node.name, "data"
    if node.op == "get_attr":
        return node.target, "const"
    if target is getattr and args[1] == "shape" or node.op == "call_method" and target == "size" and len(args) == 1:
        return f"{_name(args[0])}.shape", _size_kind(args[0])
    if node.op == "call_method" and target == "size":
        return f"{_name(args[0])}.shape[{args[1]!r}]", _size_kind(args[0])
    if target is getattr and args[1] in _CONST_ATTRIBUTES:
        return f"{_name(args[0])}.{args[1]}", "const"
    if node.op == "call_method" and target in _CONST_METHODS and len(args) == 1:  # x.type(): "torch.HalfTensor"
        return f"{_name(args[0])}.{target}()", "const"
    if target is operator.getitem:
        base, kind = _describe(args[0], depth + 1)
        index, index_kind = _describe(args[1], depth + 1)
        return f"{base}[{index}]", _worst(kind, index_kind)
    if target in _INFIX:
        parts = [_describe(a, depth + 1) for a in args]
        text = f" {_INFIX[target]} ".join(_paren(t, a, target, right=i > 0) for i, ((t, _), a) in enumerate(zip(parts, args)))
        return text, _worst(*(k for _, k in parts))
    if target is operator.not_:
        text, kind = _describe(args[0], depth + 1)
        return f"not {_paren(text, args[0], operator.not_)}", kind
    if node.op in ("call_function", "call_method"):
        parts = [_describe(a, depth + 1) for a in args]
        name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        if node.op == "call_method":
            text = f"{parts[0][0]}.{name}({', '.join(t for t, _ in parts[1:])})"
        else:
            text = f"{name}({', '.join(t for t, _ in parts)})"
        return text, _worst("size", *(k for _, k in parts))
    return node.name, "data"


def _name(node: Any) -> str:
    return node.name if isinstance(node, fx.Node) else repr(node)


def _size_kind(tensor: Any) -> str:
    """A parameter's or constant's size is fixed; any other tensor's follows the input."""
    return "const" if not isinstance(tensor, fx.Node) or tensor.op == "get_attr" else "size"


_PRECEDENCE = {operator.pow: 7, operator.mul: 6, operator.truediv: 6, operator.floordiv: 6, operator.mod: 6,
               operator.add: 5, operator.sub: 5, operator.and_: 4, operator.or_: 3, operator.not_: 1}


def _paren(text: str, arg: Any, parent: Any, right: bool = False) -> str:
    """Parentheses where Python's precedence needs them (``(h + 7) // 8``, not ``h % 8 == 0``)."""
    if not isinstance(arg, fx.Node) or arg.target not in _INFIX:
        return text
    mine, theirs = _PRECEDENCE.get(arg.target, 2), _PRECEDENCE.get(parent, 2)
    return f"({text})" if mine < theirs or (mine == theirs and right) else text


def _negate(text: str) -> str:
    for op, neg in _NEGATION.items():
        pieces = text.split(f" {op} ")
        if len(pieces) == 2 and not any(f" {o} " in text for o in _NEGATION if o != op):
            return f"{pieces[0]} {neg} {pieces[1]}"
    return f"not ({text})"


_SKIP = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.dirname(torch.__file__),
         os.path.dirname(np.__file__), sysconfig.get_paths()["stdlib"])


def _user_location() -> str:
    """The innermost frame of the user's code on the stack: ``file.py:line (function)``."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if frame.filename.startswith("<") or path.startswith(_SKIP):
            continue
        return f"{os.path.basename(path)}:{frame.lineno} ({frame.name})"
    return "?"
