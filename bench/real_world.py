"""Real world: can graphprune prune the SR networks people download, next to Torch-Pruning (issue 10)?

Every entry of ``bench/spandrel_zoo.py`` (spandrel's SR and restoration architectures at small published
configs, built through spandrel's own state-dict detection), in one run, each tool in its own forked
worker (one thread, ``OMP_WAIT_POLICY=PASSIVE``, watchdog of ``--timeout`` s; the machinery of
``bench/prunability.py``, shared in ``bench/_common.py``).

graphprune, per model
    ``analyze`` at the example input (timed; the tracer's guards recorded), groups / prunable / exact /
    inexact (``Group.exact``, ``Group.inexact_reason``), ``plan(ratio)`` + ``apply``, the pruned forward at
    the example size **and at a second, different size**, output shapes equal to the dense ones at both,
    parameters before/after; zero-then-prune equivalence on the exact groups (``plan(..., exact_only=True)``,
    ``verify.check`` relative error <= 1e-4; "—" when no exact group is pruned) with the inexact groups
    listed; a ``graphprune.save``/``load`` round trip reproducing the pruned output (<= 1e-5 relative).
    **Success** = all of these.
Torch-Pruning (``torch-pruning``)
    its documented protocol (``MagnitudePruner`` with ``MagnitudeImportance(p=2)``, the output conv ignored,
    constructor timed, ``step()``), then the forward at both sizes. Success = no exception, both output
    shapes kept, parameters cut (it has no equivalence check or save format to test).

An error is recorded as one line with the stage it happened in; nothing is downloaded.

Usage::

    python bench/real_world.py --out rw.jsonl                    # every entry; resumes with the same --out
    python bench/real_world.py --models SwinIR,ESRGAN --no-tp
    python bench/real_world.py --report rw.jsonl                 # markdown for BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import spandrel_zoo  # noqa: E402

for _k, _v in _common.single_thread_env().items():  # before torch is imported, here and in workers
    os.environ.setdefault(_k, _v)

__all__ = ["run_model", "report", "main"]

EQUIV_TOL, SAVELOAD_TOL = 1e-4, 1e-5
CHECKS = [("traced", "trace/analyze failed"), ("pruned", "nothing pruned"), ("shape_ok", "output shape changed"),
          ("shape2_ok", "output shape changed at the second size"), ("cut", "parameters not cut"),
          ("equiv_ok", "equivalence on exact groups"), ("saveload", "save/load round trip")]
TP_CHECKS = ("shape_ok", "shape2_ok", "cut")  # Torch-Pruning has no equivalence check or save format


# --------------------------------------------------------------------------------------------------
# Workers (forked): emit one JSON object per stage


def _worker(spec: dict) -> None:
    import torch

    stage = "build"
    try:
        model, x, x2, info = spandrel_zoo.build(spec["model"])
        stage = "dense forward"
        y, y2 = _run(model, x), _run(model, x2)
        _common.emit(info=info, out_shape=list(y.shape), out_shape2=list(y2.shape), params0=info["params"])
    except Exception as exc:  # noqa: BLE001 - a catalog entry that does not run: not counted
        return _common.emit(skip=f"{stage}: {_common.one_line(exc)}")
    box = {"stage": "start"}
    try:
        with _common.watchdog(spec["timeout"]):
            (_gp if spec["tool"] == "gp" else _tp)(model, (x, x2), (y, y2), info, spec, box)
    except _common.Timeout:
        _common.emit(error=f"timeout (> {spec['timeout']:g} s) in {box['stage']}")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        _common.emit(error=f"{box['stage']}: {_common.one_line(exc)}")


def _run(model, x):
    """``model``'s first output tensor on a copy of ``x`` (forwards may scale their input in place: RCAN)."""
    import torch

    with torch.no_grad():
        return _common.first_tensor(model(x.clone()))


def _forward_shapes(model, xs, ys, box, prefix: str) -> dict:
    out = {}
    for key, x, y, what in (("shape_ok", xs[0], ys[0], ""), ("shape2_ok", xs[1], ys[1], " (second size)")):
        box["stage"] = f"{prefix}forward{what}"
        out[key] = list(_run(model, x).shape) == list(y.shape)
    return out


def _gp(model, xs, ys, info, spec, box) -> None:
    import graphprune as gp

    box["stage"] = "analyze"
    t, graph = _common.timed(lambda: gp.analyze(model, xs[0].clone()))
    prunable = graph.prunable_groups
    guards = [g.text for g in graph.guards]
    _common.emit(traced=True, analyze_s=t, groups=len(graph.groups), prunable=len(prunable),
                 exact=sum(g.exact for g in prunable), inexact=sum(not g.exact for g in prunable),
                 inexact_reasons=sorted({g.inexact_reason for g in prunable if not g.exact})[:6],
                 guards=guards[:12], n_guards=len(guards), unsupported=sorted(set(graph.unsupported.values()))[:6])
    box["stage"] = "plan"
    plan = gp.plan(graph, spec["ratio"])
    box["stage"] = "apply"
    pruned = gp.apply(model, plan)
    params1 = sum(p.numel() for p in pruned.parameters())
    _common.emit(pruned=any(plan.removed.values()), params1=params1, cut=params1 < info["params"],
                 graph_module=bool(getattr(pruned, "gp_graph_module", False)),
                 **_forward_shapes(pruned, xs, ys, box, "pruned "))
    box["stage"] = "equivalence"
    _common.emit(**_equivalence(gp, model, graph, xs[0], spec["ratio"]))
    box["stage"] = "save/load"
    _common.emit(**_save_load(gp, pruned, xs[0]))
    _common.emit(ok=True)  # run_model decides from the recorded checks


def _equivalence(gp, model, graph, x, ratio) -> dict:
    """Zero-then-prune equivalence of the exact groups alone (``None`` when no exact group is pruned)."""
    from graphprune.verify import check

    plan = gp.plan(graph, ratio, exact_only=True)
    if not any(plan.removed.values()):
        return {"equiv": None, "equiv_ok": True}
    v = check(model, gp.apply(model, plan), plan, x.clone(), tol=EQUIV_TOL)
    return {"equiv": v.error, "equiv_ok": v.exact and v.error <= EQUIV_TOL}


def _save_load(gp, pruned, x) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = gp.save(pruned, os.path.join(d, "m.safetensors"))
        a, b = _run(gp.load(path).eval(), x), _run(pruned, x)
    err = float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
    return {"saveload": err <= SAVELOAD_TOL, "saveload_err": err}


def _tp(model, xs, ys, info, spec, box) -> None:
    done = _common.tp_prune(model, xs[0].clone(), spec["ratio"], info["out_channels"], box)
    params1 = sum(p.numel() for p in model.parameters())
    shapes = _forward_shapes(model, xs, ys, box, "TP ")
    checks = {**shapes, "cut": params1 < info["params"]}
    failed = _failures(checks, TP_CHECKS)
    _common.emit(params1=params1, ok=not failed, reason="; ".join(failed), **checks, **done)


def _failures(record: dict, keys) -> list[str]:
    """The reasons of the checks in ``keys`` that ``record`` does not pass (missing counts as failed)."""
    return [why for key, why in CHECKS if key in keys and not record.get(key)]


def run_model(name: str, args, tp_on: bool) -> dict:
    """One catalog entry, both tools, each forked; graphprune's ``ok`` is the conjunction of its checks."""
    spec = {"model": name, "ratio": args.ratio, "timeout": args.timeout}
    limit = args.timeout + 180  # build + dense forwards + the watchdog's own limit
    row = {"suite": "spandrel", "model": name, "gp": _common.fork_run(_worker, dict(spec, tool="gp"), limit)}
    g = row["gp"]
    if "skip" not in g:
        failed = _failures(g, dict(CHECKS))
        g["ok"] = not failed and "error" not in g
        g["reason"] = g.get("error") or "; ".join(failed)
        if tp_on:
            row["tp"] = _common.fork_run(_worker, dict(spec, tool="tp"), limit)
    return row


# --------------------------------------------------------------------------------------------------
# Report


def _yes(v) -> str | None:
    return {True: "yes", False: "no"}.get(v)


def report(rows: list[dict], tp_on: bool) -> str:
    """The markdown table, the failures (one line each), the inexact groups, guards, and a summary line."""
    headers = ["model", "task", "params M", "input / second", "traced (guards)", "analyze s",
               "prunable/groups (exact+inexact)", "params after", "fwd 1 / fwd 2", "equiv err (exact)",
               "save/load", "graphprune"] + (["TP", "TP s"] if tp_on else [])
    table, notes = [], []
    for r in rows:
        g, t, i = r["gp"], r.get("tp") or {}, r["gp"].get("info", {})
        if "skip" in g:
            notes.append(f"- {r['model']}: skipped ({g['skip']})")
            continue
        sizes = f"{'x'.join(map(str, i['input'][2:]))} / {'x'.join(map(str, i['second_input'][2:]))}"
        traced = f"yes ({g.get('n_guards', 0)})" if g.get("traced") else "no"
        counts = (f"{g['prunable']}/{g['groups']} ({g['exact']}+{g['inexact']})" if "groups" in g else None)
        fwd = f"{_yes(g.get('shape_ok'))} / {_yes(g.get('shape2_ok'))}" if "shape_ok" in g else None
        equiv = ("—" if g.get("equiv") is None else _common.fmt(g["equiv"], "{:.1e}")) if "equiv_ok" in g else None
        task = f"SR x{i['scale']}" if i.get("purpose") == "SR" else f"{i.get('purpose', '?').lower()} x{i.get('scale')}"
        row = [r["model"], task, _common.fmt(i["params"] / 1e6, "{:.2f}"), sizes, traced,
               _common.fmt(g.get("analyze_s"), "{:.2f}"), counts,
               _common.fmt(g["params1"] / i["params"], "{:.0%}") if g.get("params1") else None, fwd, equiv,
               {True: "ok", False: "FAIL"}.get(g.get("saveload")), _common.state(g)]
        if tp_on:
            row += [_common.state(t), _common.fmt(t.get("analyze_s"), "{:.2f}")]
        table.append(row)
        if not g.get("ok"):
            notes.append(f"- {r['model']}, graphprune: {g.get('reason')}")
        if tp_on and t and not t.get("ok") and "skip" not in t:
            notes.append(f"- {r['model']}, Torch-Pruning: {t.get('error') or t.get('reason')}")
    out = [_common.markdown_table(headers, table)]
    if notes:
        out += ["", "Failures and skips:", *notes]
    details = [f"- {r['model']}: inexact: {'; '.join(r['gp']['inexact_reasons'])}" for r in rows if r["gp"].get("inexact_reasons")]
    details += [f"- {r['model']}: {r['gp']['n_guards']} guards: {'; '.join(r['gp']['guards'][:3])}"
                + ("; ..." if r["gp"]["n_guards"] > 3 else "") for r in rows if r["gp"].get("guards")]
    if details:
        out += ["", "Inexact groups and guards:", *details]
    out += ["", summary(rows, tp_on)]
    return "\n".join(out)


def summary(rows: list[dict], tp_on: bool) -> str:
    run = [r for r in rows if "skip" not in r["gp"]]
    times = [r["gp"]["analyze_s"] for r in run if r["gp"].get("analyze_s") is not None]
    parts = [f"graphprune {sum(bool(r['gp'].get('ok')) for r in run)}/{len(run)} passed every check "
             f"({len(rows) - len(run)} skipped)",
             f"traced {sum(bool(r['gp'].get('traced')) for r in run)}/{len(run)}",
             f"analysed in < 2 s {sum(s < 2 for s in times)}/{len(run)}"]
    if times:
        parts.append(f"median analysis {_common.median(times):.2f} s")
    return _common.summary_line(parts, run, tp_on)


# --------------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_sweep_args(ap, timeout=120)
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m] or spandrel_zoo.names()
    _common.sweep_main(args, names, lambda name, tp_on: run_model(name, args, tp_on), report,
                       lambda tp_on: _common.warm_up(tp_on, "spandrel", "graphprune.loaders"), "real_world (spandrel)", 14)


if __name__ == "__main__":
    main()
