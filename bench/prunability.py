"""Prunability: can graphprune prune arbitrary torchvision / timm / SR models, next to Torch-Pruning (issue 6).

For each model, in one run, each tool in its own subprocess (one thread, ``OMP_WAIT_POLICY=PASSIVE``):

graphprune
    plain ``torch.fx.symbolic_trace`` (traceability without help) → ``graphprune.analyze`` (timed; fx with
    the leaf policy, timm's no-trace leaves, automatic leaf fallback) → ``plan(ratio)`` → ``apply`` →
    forward. **Success** = no exception, the forward runs, the output shape equals the dense one, at
    least one group is prunable and every prunable group lost its share (``n_removed(ratio_for(group, ratio), size)``:
    the ratio of its channel space, shared by the factors of a product space such as heads × head dim).
    Also recorded: the fraction of channels that sit in prunable groups (coverage) and the fraction
    removed, the zero-then-prune equivalence (skipped for nets with LayerNorm/GroupNorm-like layers,
    which mix channels), params and fvcore flops before/after (``graphprune.count``), and a
    ``graphprune.save``/``load`` round trip (the reloaded model must reproduce the pruned output).
Torch-Pruning (optional, ``torch-pruning``)
    its documented protocol: ``MagnitudePruner(model, x, MagnitudeImportance(p=2), pruning_ratio=ratio,
    ignored_layers=<classifier>)`` (constructor timed: it builds the dependency graph), ``step()``,
    forward. Success = no exception, forward runs, output shape equals the dense one (TP's own timm
    criterion, plus the shape check). The classifier is every Conv/Linear producing the output's
    channel count (``num_classes``; 3 for SR nets).

Each (model, tool) runs in a child forked from a warmed-up parent (imports paid once). Each has a watchdog of ``--timeout`` seconds after the model is built (SIGALRM, plus a hard
kill); a model whose dense build or forward fails is reported as "skip", not counted. Nothing is
downloaded: random weights only (``pretrained=False`` / ``weights=None``).

Inputs: torchvision 1x3x64x64 (inception_v3 1x3x96x96; ViT, Swin and MaxViT 1x3x224x224); timm the model's
default input size when it is fixed (ViT-like), else 1x3x128x128 (``--timm-size``), or the default size
when the model does not run at 128 (HaloNet); SR 1x3x24x24.
timm sample: every k-th name of ``sorted(timm.list_models())`` (k = ceil(N / limit)), models above
``--max-params`` skipped. ``--shard i/n`` takes every n-th model of the selection from offset i.

Usage::

    python bench/prunability.py --suite torchvision --out tv.jsonl
    python bench/prunability.py --suite timm --limit 100 --out timm.jsonl
    python bench/prunability.py --suite timm --limit 0 --shard 0/8      # the full list, shard 0 of 8
    python bench/prunability.py --suite sr --models edsr_x4,rcan_x4 --no-tp
    cat shard*.jsonl > all.jsonl && python bench/prunability.py --suite timm --report all.jsonl
    # an interrupted run resumes with the same --out; re-runs appended later replace earlier lines
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

for _k, _v in _common.single_thread_env().items():  # before torch is imported, here and in workers
    os.environ.setdefault(_k, _v)

__all__ = ["select", "main"]

TV_INPUT = {"inception_v3": 96, "vit_": 224, "swin_": 224, "maxvit_": 224}
TV_KWARGS = {"inception_v3": {"aux_logits": False, "init_weights": True},
             "googlenet": {"aux_logits": False, "init_weights": True}}
CHANNEL_MIXING = ("LayerNorm", "GroupNorm", "EvoNorm", "RmsNorm", "RMSNorm", "SimpleNorm", "LocalResponseNorm", "InstanceNorm", "StdConv")


# --------------------------------------------------------------------------------------------------
# Model selection and building


def select(suite: str, limit: int, models: list[str] | None, shard: tuple[int, int], offset: int = 0) -> list[str]:
    """The model names of a run, deterministic (a timm sample starts at ``offset``: disjoint samples)."""
    if models:
        names = models
    elif suite == "torchvision":
        import torchvision
        names = sorted(torchvision.models.list_models(module=torchvision.models))
    elif suite == "timm":
        import timm
        names = sorted(timm.list_models())
        if limit:
            k = math.ceil(len(names) / limit)
            names = names[offset % k::k]
    elif suite == "sr":
        import sr_models
        names = sr_models.list_models()
    else:
        raise ValueError(f"unknown suite {suite!r}; choose torchvision, timm or sr")
    if limit and suite != "timm":
        names = names[:limit]
    i, n = shard
    return names[i::n]


def build(suite: str, name: str, timm_size: int):
    """(model in eval mode, example input, spec for graphprune.save)."""
    import torch

    torch.manual_seed(0)
    if suite == "torchvision":
        import torchvision
        kwargs = TV_KWARGS.get(name, {})
        model = torchvision.models.get_model(name, weights=None, **kwargs)
        size = next((s for p, s in TV_INPUT.items() if name.startswith(p)), 64)
        x = torch.randn(1, 3, size, size)
        spec = {"factory": f"torchvision.models:{name}", "kwargs": kwargs}
    elif suite == "timm":
        import timm
        model = timm.create_model(name, pretrained=False)
        cfg = model.pretrained_cfg
        shape = tuple(cfg.get("input_size", (3, 224, 224)))
        if not cfg.get("fixed_input_size", False):
            shape = (shape[0], timm_size, timm_size)
        x = torch.randn(1, *shape)
        spec = {"timm": name, "kwargs": {}}
    else:
        import sr_models
        model = sr_models.create_model(name)
        x = torch.rand(1, 3, 24, 24) * getattr(model, "rgb_range", 1.0)
        spec = None  # sr_models sets model.gp_spec
    if spec is not None:
        model.gp_spec = spec
    return model.eval(), x


def _mixes_channels(model, graph=None) -> bool:
    import torch.nn.functional as F

    for m in model.modules():
        if any(any(k in c.__name__ for k in CHANNEL_MIXING) for c in type(m).__mro__):
            return True
    if graph is not None:
        fns = {F.layer_norm, F.group_norm, getattr(F, "rms_norm", None), F.instance_norm}
        return any(n.op == "call_function" and n.target in fns for n in graph.traced.gm.graph.nodes)
    return False


# --------------------------------------------------------------------------------------------------
# Workers: emit one JSON object per stage; the parent merges them (_common.fork_run).

_emit, _one_line, _first_tensor = _common.emit, _common.one_line, _common.first_tensor


def _worker(spec: dict) -> None:
    import torch

    stage = "build"
    try:
        if spec["suite"] == "timm":  # count on the meta device first: building a 1 B model takes a minute
            meta = _meta_params(spec["model"])
            if meta is not None and meta > spec["max_params"]:
                return _emit(skip=f"{meta / 1e6:.0f} M params > --max-params")
        model, x = build(spec["suite"], spec["model"], spec["timm_size"])
        params = sum(p.numel() for p in model.parameters())
        if params > spec["max_params"]:
            return _emit(skip=f"{params / 1e6:.0f} M params > --max-params")
        stage = "dense forward"
        try:
            with torch.no_grad():
                y = _first_tensor(model(x))
        except Exception:  # noqa: BLE001 - some nets need their default size (HaloNet's blocks): retry at it
            default = tuple(model.pretrained_cfg.get("input_size", ())) if spec["suite"] == "timm" else ()
            if not default or tuple(x.shape[1:]) == default:
                raise
            x = torch.randn(1, *default)
            with torch.no_grad():
                y = _first_tensor(model(x))
        _emit(input=list(x.shape), params=params, out_shape=list(y.shape))
    except Exception as exc:  # noqa: BLE001 - not counted: the model itself does not run here
        return _emit(skip=f"{stage}: {_one_line(exc)}")
    stage_box = {"stage": "start"}
    try:
        with _common.watchdog(spec["timeout"]):
            (_gp if spec["tool"] == "gp" else _tp)(model, x, y, spec, stage_box)
    except _common.Timeout:
        _emit(error=f"timeout (> {spec['timeout']:g} s) in {stage_box['stage']}")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        _emit(error=f"{stage_box['stage']}: {_one_line(exc)}")


def _meta_params(name: str) -> int | None:
    import timm
    import torch

    try:
        with torch.device("meta"):
            return sum(p.numel() for p in timm.create_model(name, pretrained=False).parameters())
    except Exception:  # noqa: BLE001 - some inits need real tensors: build for real instead
        return None


def _gp(model, x, y, spec, box) -> None:
    import torch
    import torch.fx as fx

    import graphprune as gp
    from graphprune.plan import n_removed, ratio_for
    from graphprune.verify import equivalence_error

    box["stage"] = "plain fx"
    try:
        fx.symbolic_trace(model)
        _emit(fx=True)
    except Exception as exc:  # noqa: BLE001
        _emit(fx=False, fx_error=_one_line(exc, 120))
    box["stage"] = "analyze"
    t, graph = _common.timed(lambda: gp.analyze(model, x))
    groups, prunable = graph.groups, graph.prunable_groups
    total = sum(g.size for g in groups)
    _emit(analyze_s=t, groups=len(groups), prunable=len(prunable),
          coverage=sum(g.size for g in prunable) / max(total, 1),
          auto_leaves=sum(v.startswith("auto") for v in graph.traced.leaves.values()),
          unsupported=sorted(set(graph.unsupported.values()))[:8])
    box["stage"] = "plan"
    plan = gp.plan(graph, spec["ratio"])
    box["stage"] = "apply"
    pruned = gp.apply(model, plan)
    box["stage"] = "pruned forward"
    with torch.no_grad():
        yp = _first_tensor(pruned(x))
    short = [g.id for g in prunable if plan.kept(g.id) != g.size - n_removed(ratio_for(g, spec["ratio"], None), g.size)]
    removed = sum(len(v) for v in plan.removed.values()) / max(sum(g.size for g in prunable), 1)
    ok_shape = list(yp.shape) == list(y.shape)
    reason = ("output shape changed" if not ok_shape else "nothing prunable" if not prunable
              else f"{len(short)} prunable groups did not lose their share" if short else "")
    _emit(shape_ok=ok_shape, removed=removed, ok=not reason, reason=reason,
          graph_module=bool(getattr(pruned, "gp_graph_module", False)))
    box["stage"] = "equivalence"
    if _mixes_channels(model, graph):
        _emit(equiv=None)
    else:
        _emit(equiv=equivalence_error(model, pruned, plan, x))
    box["stage"] = "count"
    c0, c1 = gp.count(model, x), gp.count(pruned, x)
    _emit(params0=c0["params"], params1=c1["params"], flops0=c0["flops"], flops1=c1["flops"])
    box["stage"] = "save/load"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        gp.save(pruned, path)
        loaded = gp.load(path).eval()
        with torch.no_grad():
            yl = _first_tensor(loaded(x))
    err = float((yl - yp).abs().max() / yp.abs().max().clamp_min(1e-12))
    _emit(saveload=err <= 1e-5, saveload_err=err)


def _tp(model, x, y, spec, box) -> None:
    import torch

    pruned = _common.tp_prune(model, x, spec["ratio"], 3 if spec["suite"] == "sr" else y.shape[-1], box)
    box["stage"] = "TP forward"
    with torch.no_grad():
        yp = _first_tensor(model(x))
    ok_shape = list(yp.shape) == list(y.shape)
    _emit(shape_ok=ok_shape, ok=ok_shape, reason="" if ok_shape else "output shape changed",
          params1=sum(p.numel() for p in model.parameters()), **pruned)


# --------------------------------------------------------------------------------------------------
# Parent


def warm_up(suite: str, tp_on: bool) -> None:
    """:func:`_common.warm_up` with the suite's model library imported too."""
    _common.warm_up(tp_on, {"torchvision": "torchvision", "timm": "timm", "sr": "sr_models"}[suite])


def run_one(suite: str, name: str, tool: str, args) -> dict:
    """Run one (model, tool) in a forked child with a hard deadline; never raises. Returns the merged events."""
    spec = {"suite": suite, "model": name, "tool": tool, "ratio": args.ratio, "timeout": args.timeout,
            "timm_size": args.timm_size, "max_params": args.max_params}
    return _common.fork_run(_worker, spec, args.timeout + 180)  # build + dense forward + the watchdog's own limit


_fmt = _common.fmt


def report(rows: list[dict], tp_on: bool) -> str:
    headers = ["model", "input", "params M", "fx", "auto leaves", "prunable/groups", "coverage", "removed",
               "gp analyze s", "gp", "equiv err", "params after", "flops after", "save/load"]
    if tp_on:
        headers += ["TP analyze s", "TP", "gp/TP time"]
    table, failures = [], []
    for r in rows:
        g, t = r["gp"], r.get("tp") or {}
        if "skip" in g:
            failures.append(f"- {r['model']}: skipped ({g['skip']})")
            continue
        p0, p1, f0, f1 = g.get("params0"), g.get("params1"), g.get("flops0"), g.get("flops1")
        row = [r["model"], "x".join(map(str, g.get("input", [])[1:])), _fmt(g.get("params", 0) / 1e6, "{:.1f}"),
               {True: "yes", False: "no"}.get(g.get("fx")), g.get("auto_leaves"),
               f"{g.get('prunable')}/{g.get('groups')}" if "groups" in g else None,
               _fmt(g.get("coverage"), "{:.0%}"), _fmt(g.get("removed"), "{:.0%}"), _fmt(g.get("analyze_s"), "{:.3f}"),
               "ok" if g.get("ok") else "FAIL", _fmt(g.get("equiv"), "{:.1e}") if "equiv" in g else None,
               _fmt(p1 / p0, "{:.0%}") if p0 and p1 else None, _fmt(f1 / f0, "{:.0%}") if f0 and f1 else None,
               {True: "ok", False: "FAIL"}.get(g.get("saveload"))]
        if g.get("equiv", 0) is None:
            row[10] = "n/a (norm)"
        if tp_on:
            ratio = g.get("analyze_s") / t["analyze_s"] if g.get("analyze_s") and t.get("analyze_s") else None
            row += [_fmt(t.get("analyze_s"), "{:.3f}"), "ok" if t.get("ok") else ("skip" if "skip" in t else "FAIL"),
                    _fmt(ratio)]
        table.append(row)
        if not g.get("ok"):
            failures.append(f"- {r['model']}, graphprune: {g.get('error') or g.get('reason')}")
        elif g.get("saveload") is False or "saveload" not in g:
            failures.append(f"- {r['model']}, graphprune save/load: {g.get('error') or g.get('saveload_err')}")
        if tp_on and not t.get("ok") and "skip" not in t:
            failures.append(f"- {r['model']}, Torch-Pruning: {t.get('error') or t.get('reason')}")
    out = [_common.markdown_table(headers, table)]
    if len(rows) >= 100 and rows[0].get("suite") == "timm":
        out += ["", family_table(rows, tp_on)]
    if failures:
        out += ["", "Failures and skips:", *failures]
    out += ["", summary(rows, tp_on)]
    return "\n".join(out)


def family_table(rows: list[dict], tp_on: bool) -> str:
    """Success per timm model module (architecture family): where the failures concentrate."""
    try:
        from timm.models._registry import _model_to_module as module_of
    except ImportError:
        module_of = {}
    fams: dict[str, list[int]] = {}
    for r in rows:
        f = fams.setdefault(module_of.get(r["model"], r["model"].split("_")[0]), [0, 0, 0, 0])
        if "skip" in r["gp"]:
            f[3] += 1
            continue
        f[0] += 1
        f[1] += bool(r["gp"].get("ok"))
        f[2] += bool((r.get("tp") or {}).get("ok"))
    headers = ["family (timm module)", "models run", "graphprune ok", *(["Torch-Pruning ok"] if tp_on else []), "skipped"]
    table = [[k, v[0], v[1], *([v[2]] if tp_on else []), v[3]] for k, v in sorted(fams.items())]
    return _common.markdown_table(headers, table)


def summary(rows: list[dict], tp_on: bool) -> str:
    run = [r for r in rows if "skip" not in r["gp"]]
    gp_ok = sum(bool(r["gp"].get("ok")) for r in run)
    eq = [r["gp"]["equiv"] for r in run if r["gp"].get("equiv") is not None]
    sl = [r["gp"].get("saveload") for r in run if r["gp"].get("ok")]
    parts = [f"graphprune {gp_ok}/{len(run)} succeeded ({len(rows) - len(run)} skipped)",
             f"equivalence <= 1e-3 on {sum(e <= 1e-3 for e in eq)}/{len(eq)} norm-free nets",
             f"save/load round trip {sum(bool(s) for s in sl)}/{len(sl)}"]
    return _common.summary_line(parts, run, tp_on)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", choices=["timm", "torchvision", "sr"], required=True)
    ap.add_argument("--limit", type=int, default=100, help="timm: sample size (every k-th name); 0 = all")
    ap.add_argument("--offset", type=int, default=0, help="timm sample: start at this name (another sample)")
    ap.add_argument("--timm-size", type=int, default=128, help="input size of timm models without a fixed size")
    ap.add_argument("--max-params", type=float, default=150e6, help="skip larger models")
    _common.add_sweep_args(ap, timeout=60)
    args = ap.parse_args(argv)

    def run_row(name: str, tp_on: bool) -> dict:
        row = {"suite": args.suite, "model": name, "gp": run_one(args.suite, name, "gp", args)}
        if tp_on and "skip" not in row["gp"]:
            row["tp"] = run_one(args.suite, name, "tp", args)
        return row

    names = [] if args.report else select(args.suite, args.limit, [m for m in args.models.split(",") if m], (0, 1), args.offset)
    _common.sweep_main(args, names, run_row, report, lambda tp_on: warm_up(args.suite, tp_on), f"prunability --suite {args.suite}")


if __name__ == "__main__":
    main()
