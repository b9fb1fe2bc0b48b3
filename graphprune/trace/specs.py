"""What the analysis keeps of every traced value: shapes and dtypes, under ``node.meta["gp_value"]``.

The tracer stores each node's value with every tensor replaced by a :class:`TensorSpec`; the
channel graph, the surgery and the counting read it through :func:`tensor_spec` / :func:`node_value`,
which fail with "run shape propagation first" rather than returning nothing.

>>> value_spec((torch.zeros(2, 3), torch.Size([4, 5]), 7))
(TensorSpec(shape=(2, 3), dtype=torch.float32), (4, 5), 7)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

__all__ = ["META_KEY", "TensorSpec", "value_spec", "tensor_spec", "node_value", "as_input_tuple"]

META_KEY = "gp_value"


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one tensor value in the traced graph."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def as_input_tuple(example_inputs: Any) -> tuple:
    """Accept a tensor or a tuple/list of tensors, everywhere in the API."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise TypeError(
        f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}"
    )


def value_spec(value: Any) -> Any:
    """Replace every tensor inside ``value`` (nested tuples/lists/dicts) by a TensorSpec."""
    if isinstance(value, torch.Tensor):
        return TensorSpec(tuple(int(s) for s in value.shape), value.dtype)
    if isinstance(value, torch.Size):
        return tuple(int(s) for s in value)
    if isinstance(value, (tuple, list)):
        return tuple(value_spec(v) for v in value)
    if isinstance(value, dict):
        return {k: value_spec(v) for k, v in value.items()}
    if isinstance(value, (int, float, bool, str, type(None), torch.dtype, torch.device, slice, type(...))):
        return value
    return f"<{type(value).__name__}>"


def node_value(node: fx.Node) -> Any:
    """The recorded value of a node (tensors as TensorSpec)."""
    if META_KEY not in node.meta:
        raise KeyError(f"node {node.name!r} has no shape: run graphprune.trace.trace (shape propagation) first")
    return node.meta[META_KEY]


def tensor_spec(node: fx.Node) -> TensorSpec | None:
    """The TensorSpec of a node's value, None when the value is not a tensor.

    Raises
    ------
    KeyError
        When shape propagation has not annotated the node.
    """
    spec = node_value(node)
    return spec if isinstance(spec, TensorSpec) else None
