"""graphprune: automatic channel-coupling analysis and structured pruning for PyTorch (SR) networks.

The pipeline, one function per step::

    graph  = graphprune.analyze(model, x, ignore=["*mean*", "*tail*"])   # groups of coupled channels
    p      = graphprune.plan(graph, ratio=0.5)                           # which indices go
    p      = graphprune.plan(graph, target={"mult_adds": "35.8G"})       # ... or a budget
    small  = graphprune.apply(model, p)                                  # physically smaller copy
    graphprune.save(small, "model.gp", spec)                             # safetensors + JSON, no pickle
"""
from .api import prune
from .channels import ChannelGraph, analyze
from .groups import Group, Member
from .plan import Entry, Plan, n_removed, plan, removed_counts
from .sensitivity import sensitivity  # the function: graphprune.sensitivity(model, data, scale=4)
from .surgery import PruneError, apply
from .trace import TraceError
from . import verify  # noqa: E402  (graphprune.verify.check)

__all__ = [
    "analyze", "plan", "apply", "prune", "save", "load", "count", "sr_mult_adds",
    "ChannelGraph", "Group", "Member", "Plan", "Entry", "n_removed", "removed_counts", "sensitivity",
    "PruneError", "TraceError", "verify",
]
__version__ = "0.1.0"


def __getattr__(name):  # lazy: io and flops pull in safetensors / fvcore only when used
    if name in ("save", "load"):
        from . import io
        return getattr(io, name)
    if name in ("count", "sr_mult_adds"):
        from . import flops
        return getattr(flops, name)
    raise AttributeError(f"module 'graphprune' has no attribute {name!r}")
