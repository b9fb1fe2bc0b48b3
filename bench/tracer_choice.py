"""Which front end traces the SR code people download? The measurement behind graphprune's tracer (issue 10).

For every entry of ``bench/spandrel_zoo.py`` (spandrel's architectures, small published configs), in one
run, each candidate in a forked worker (one thread, watchdog ``--timeout`` s):

``fx``
    plain ``torch.fx.symbolic_trace`` (what graphprune used before, without its leaf fallback).
``export``
    ``torch.export.export(model, (x,), strict=False)`` — non-strict capture: an ATen-level graph, with
    ``nn_module_stack`` metadata to map ops back to modules. Its graph is what the channel analysis
    would have to read (ATen ops, weights lifted to inputs).
``graphprune``
    ``graphprune.trace.trace``: torch.fx with a concrete value behind every proxy (meta, then fake, then
    real tensors) and guards where Python asks for one; torch-level ops and the module tree kept.

Per candidate: success, wall time (median of ``--repeats`` after one warm-up), number of graph nodes, and
for export the number of distinct ATen ops the rule table would need rules for.

Usage::

    python bench/tracer_choice.py                         # every catalog entry
    python bench/tracer_choice.py --models SwinIR,HAT --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import spandrel_zoo  # noqa: E402

for _k, _v in _common.single_thread_env().items():
    os.environ.setdefault(_k, _v)

CANDIDATES = ("fx", "export", "graphprune")


def _run(candidate: str, model, x):
    import torch

    if candidate == "fx":
        gm = torch.fx.symbolic_trace(model)
        return {"nodes": len(gm.graph.nodes)}
    if candidate == "export":
        ep = torch.export.export(model, (x,), strict=False)
        ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
        return {"nodes": len(ep.graph.nodes), "aten_ops": len(ops)}
    from graphprune.rules import tracing_policy
    from graphprune.trace import trace

    traced = trace(model, x, policy=tracing_policy())
    return {"nodes": len(traced.gm.graph.nodes), "guards": len(traced.guards), "mode": traced.shape_source,
            "auto_leaves": sum(v.startswith("auto") for v in traced.leaves.values())}


def _worker(spec: dict) -> None:
    """Forked: build, warm up once, time ``repeats`` runs; emit one JSON row (an error is a data point)."""
    import torch

    torch.set_num_threads(1)
    model, x, _, _ = spandrel_zoo.build(spec["model"])
    try:
        with _common.watchdog(spec["timeout"]):
            info = _run(spec["candidate"], model, x)
            times = []
            for _ in range(spec["repeats"]):
                t = time.perf_counter()
                _run(spec["candidate"], model, x)
                times.append(time.perf_counter() - t)
        _common.emit(ok=True, seconds=_common.median(times), **info)
    except Exception as exc:  # noqa: BLE001
        _common.emit(error=_common.one_line(exc, 200))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated catalog names (default: all)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--out", help="JSONL file to append rows to")
    args = ap.parse_args(argv)
    names = args.models.split(",") if args.models else spandrel_zoo.names()
    _common.warm_up(False, "spandrel", "graphprune.rules")
    rows = []
    for name in names:
        for candidate in CANDIDATES:
            spec = {"model": name, "candidate": candidate, "repeats": args.repeats, "timeout": args.timeout}
            row = {"model": name, "candidate": candidate, **_common.fork_run(_worker, spec, args.timeout + 60)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    print(summary(rows))


def summary(rows: list[dict]) -> str:
    lines = ["| candidate | traced | median s (when traced) |", "|---|---|---|"]
    for c in CANDIDATES:
        mine = [r for r in rows if r["candidate"] == c]
        ok = [r for r in mine if r.get("ok")]
        lines.append(f"| {c} | {len(ok)}/{len(mine)} | {_common.median([r['seconds'] for r in ok]) or 0:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
