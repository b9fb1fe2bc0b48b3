"""Analysis speed: ``graphprune.analyze`` next to Torch-Pruning's dependency graph, in one run (issue 2).

For each model this times

* graphprune: ``graphprune.analyze(model, x)`` (fx trace + fake-tensor shape propagation + all groups).
  The first call in a fresh process is reported on its own (it pays one-time imports and warm-up);
  "warm" is the median of the next ``--repeats`` calls.
* Torch-Pruning (optional dependency ``torch-pruning``):
  ``tp.DependencyGraph().build_dependency(model, example_inputs=x)`` followed by
  ``list(DG.get_all_groups(ignored_layers=..., root_module_types=[nn.Conv2d, nn.Linear]))``, with the
  same first-call / warm-median split. ``ignored_layers`` are the layers that produce the model's
  output (Conv2d/Linear whose out channels equal the output's channel count: 3 for SR nets and the
  synthetic net, ``num_classes`` for timm), the usual TP setup.

Every (model, tool) measurement runs in its own subprocess (one thread, ``OMP_WAIT_POLICY=PASSIVE``),
so a hang cannot stop the run: a call that takes longer than ``--timeout`` seconds is killed and
reported as "timeout". Repeats stop early once the calls made so far have used ``--timeout`` seconds in
total (the table shows how many warm calls the median is over). Models are built with random weights;
nothing is downloaded (timm ``pretrained=False``).

Usage::

    python bench/analysis_speed.py --suite all --repeats 3
    python bench/analysis_speed.py --suite zoo --models rcan_x4,carn_x4 --no-tp
"""
from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

for _k, _v in _common.single_thread_env().items():  # before torch is imported, here and in workers
    os.environ.setdefault(_k, _v)

__all__ = ["Case", "cases", "main"]

ZOO = ["edsr_baseline_x4", "edsr_x4", "ledsr_f256r16_x4", "rirsr_g10r20f96_x4", "rcan_x4", "carn_x4",
       "carn_m_x4", "imdn_x4", "pan_x4", "srresnet_x4", "swinir_light_x4"]
ZOO_HIRES = ["edsr_baseline_x4", "rcan_x4"]  # also at 1x3x180x320: graphprune flat, TP grows
TIMM = ["resnet50", "mobilenetv3_large_100", "efficientnet_b0", "vit_small_patch16_224", "convnext_tiny",
        "rexnetr_130", "levit_conv_128s", "coatnet_nano_rw_224"]
SYNTH_BLOCKS = [100, 300, 1000]
LR, HIRES = (1, 3, 48, 48), (1, 3, 180, 320)


@dataclass(frozen=True)
class Case:
    suite: str                       # "zoo" | "timm" | "synthetic"
    model: str                       # zoo/timm name, or "synth_resnet_<N>"
    input: tuple | None = None       # None: timm's pretrained_cfg["input_size"]


def cases(suite: str, only: set[str] | None = None) -> list[Case]:
    """The benchmark cases of ``suite`` ("zoo", "timm", "synthetic" or "all"), optionally filtered by name."""
    out = []
    if suite in ("zoo", "all"):
        out += [Case("zoo", m, LR) for m in ZOO] + [Case("zoo", m, HIRES) for m in ZOO_HIRES]
    if suite in ("timm", "all"):
        out += [Case("timm", m) for m in TIMM]
    if suite in ("synthetic", "all"):
        out += [Case("synthetic", f"synth_resnet_{n}", LR) for n in SYNTH_BLOCKS]
    return [c for c in out if not only or c.model in only]


# --------------------------------------------------------------------------------------------------
# Worker side: build one model, time one tool, stream one JSON line per event to stdout.


def _synthetic(n_blocks: int, ch: int = 16):
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.relu, self.conv2 = nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1)

        def forward(self, x):
            return x + self.conv2(self.relu(self.conv1(x)))

    return nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), *[Block() for _ in range(n_blocks)], nn.Conv2d(ch, 3, 3, padding=1))


def _build(case: Case):
    import torch

    if case.suite == "zoo":
        import sr_models
        model = sr_models.create_model(case.model)
    elif case.suite == "timm":
        import timm
        model = timm.create_model(case.model, pretrained=False)
    else:
        model = _synthetic(int(case.model.rsplit("_", 1)[1]))
    shape = tuple(case.input) if case.input else (1, *model.pretrained_cfg["input_size"])
    torch.manual_seed(0)
    return model.eval(), torch.randn(*shape)


_output_layers, _emit = _common.output_layers, _common.emit


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: " + " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _worker(spec: dict) -> None:
    import warnings

    _common.set_single_thread()
    warnings.simplefilter("ignore")
    case, tool, repeats, budget = Case(**spec["case"]), spec["tool"], spec["repeats"], spec["budget"]
    try:
        model, x = _build(case)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return _emit(event="error", stage="build model", msg=_one_line(exc))
    _emit(event="meta", input=list(x.shape), params=sum(p.numel() for p in model.parameters()))
    if tool == "gp":
        import graphprune
        call = lambda: _gp_call(graphprune, model, x)  # noqa: E731
    else:
        import torch_pruning as tp
        n_out = getattr(model, "num_classes", None) if case.suite == "timm" else x.shape[1]
        call = lambda: _tp_call(tp, model, x, _output_layers(model, n_out))  # noqa: E731
    spent = 0.0
    for i in range(1 + repeats):
        try:
            res = call()
        except Exception as exc:  # noqa: BLE001 - reported in the table
            return _emit(event="error", stage=f"{tool} call {i}", msg=_one_line(exc))
        _emit(event="rep", **res)
        spent += res["t"]
        if spent > budget:
            break
    _emit(event="done")


def _gp_call(graphprune, model, x) -> dict:
    t, g = _common.timed(lambda: graphprune.analyze(model, x))
    return {"t": t, "groups": len(g.groups), "prunable": sum(gr.prunable for gr in g.groups),
            "shapes": g.traced.shape_source, "auto_leaves": sum(v.startswith("auto") for v in g.traced.leaves.values())}


def _tp_call(tp, model, x, ignored) -> dict:
    import torch
    from torch import nn

    with torch.enable_grad():
        t_build, dg = _common.timed(lambda: tp.DependencyGraph().build_dependency(model, example_inputs=x))
        _emit(event="built", t=t_build)
        t_groups, groups = _common.timed(
            lambda: list(dg.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear])))
    return {"t": t_build + t_groups, "build": t_build, "enum": t_groups, "groups": len(groups)}


# --------------------------------------------------------------------------------------------------
# Parent side: one subprocess per (case, tool) with a per-call deadline.


@dataclass
class Result:
    reps: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    error: str | None = None          # "timeout ..." or the worker's exception
    built: float | None = None        # TP build time of the call that timed out

    @property
    def first(self) -> float | None:
        return self.reps[0]["t"] if self.reps else None

    def warm(self, key: str = "t") -> float | None:
        """Median over the calls after the first (the first call when it is the only one)."""
        reps = self.reps[1:] or self.reps
        return _common.median([r[key] for r in reps])

    @property
    def n_warm(self) -> int:
        return len(self.reps[1:]) or len(self.reps)


def measure(case: Case, tool: str, repeats: int, timeout: float) -> Result:
    """Run one (case, tool) measurement in a subprocess; never raises."""
    spec = json.dumps({"case": case.__dict__, "tool": tool, "repeats": repeats, "budget": timeout})
    res = Result()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--_worker", spec],
                                stdout=subprocess.PIPE, stderr=err, env={**os.environ, **_common.single_thread_env()})
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        buf, deadline, setup_deadline = b"", None, time.monotonic() + 300  # 300 s to import + build
        while True:
            limit = deadline if deadline is not None else setup_deadline
            if not sel.select(timeout=max(0.0, limit - time.monotonic())):
                proc.kill()
                res.error = f"timeout (> {timeout:g} s)" if deadline is not None else "timeout (setup)"
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                ev = json.loads(line)
                kind = ev.pop("event")
                if kind == "meta":
                    res.meta = ev
                elif kind == "rep":
                    res.reps.append(ev)
                elif kind == "built":
                    res.built = ev["t"]
                elif kind == "error":
                    res.error = f"{ev['stage']}: {ev['msg']}"
                if kind in ("meta", "rep"):
                    deadline, res.built = time.monotonic() + timeout, None
        sel.close()
        proc.wait()
        if res.error is None and proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
            res.error = f"worker exited {proc.returncode}: {tail[0][:200]}"
    if res.error and res.error.startswith("timeout") and res.built is not None:
        res.error += f", build {res.built:.1f} s"
    return res


# --------------------------------------------------------------------------------------------------
# Report


def _s(t: float | None) -> str | None:
    return None if t is None else (f"{t:.3f}" if t < 10 else f"{t:.1f}")


def _cell(res: Result | None, value: str | None) -> str | None:
    """``value`` when ``res`` has at least one completed call, else why not ("skipped", "timeout", "error")."""
    if res is None:
        return "skipped"
    if not res.reps:
        return "timeout" if res.error and res.error.startswith("timeout") else "error"
    return value


def report(rows: list[tuple[Case, Result, Result | None]], timeout: float) -> str:
    """Markdown tables (all models; synthetic per block), failures and the summary lines."""
    headers = ["suite", "model", "input", "params (M)", "gp first (s)", "gp warm (s)", "gp groups (prunable/all)",
               "gp shapes", "TP build (s)", "TP groups (s)", "TP total (s)", "TP groups", "gp/TP"]
    table, ratios, bounded, failures = [], [], [], []
    for case, gp, tp in rows:
        meta = gp.meta or (tp.meta if tp else {})
        inp, params = "x".join(map(str, meta.get("input", case.input or ["?"]))), meta.get("params")
        ratio = None
        if gp.reps and tp is not None and tp.reps:
            ratio = f"{gp.warm() / tp.warm():.2f}"
            ratios.append(gp.warm() / tp.warm())
            bounded.append(ratios[-1])
        elif gp.reps and tp is not None and tp.error and tp.error.startswith("timeout"):
            ratio = f"< {gp.warm() / timeout:.3f}"
            bounded.append(gp.warm() / timeout)
        g = gp.reps[-1] if gp.reps else {}
        t = tp.reps[-1] if tp and tp.reps else {}
        tp_build = _cell(tp, _s(tp and tp.warm("build")))
        if tp is not None and not tp.reps and tp.built is not None:
            tp_build = f"{tp.built:.3f}"  # the build finished, the group enumeration timed out
        table.append([
            case.suite, case.model, inp, None if params is None else f"{params / 1e6:.2f}",
            _cell(gp, _s(gp.first)), _cell(gp, f"{_s(gp.warm())} ({gp.n_warm})"),
            _cell(gp, f"{g.get('prunable')}/{g.get('groups')}"),
            _cell(gp, g.get("shapes", "") + (f", {g['auto_leaves']} auto leaves" if g.get("auto_leaves") else "")),
            tp_build, _cell(tp, _s(tp and tp.warm("enum"))),
            _cell(tp, f"{_s(tp and tp.warm())} ({tp and tp.n_warm})"), _cell(tp, t.get("groups")), ratio,
        ])
        for tool, r in (("graphprune", gp), ("Torch-Pruning", tp)):
            if r is not None and r.error:
                failures.append(f"- {case.model} @{inp}, {tool}: {r.error}")
    out = [_common.markdown_table(headers, table)]

    synth = [(int(c.model.rsplit("_", 1)[1]), gp, tp) for c, gp, tp in rows if c.suite == "synthetic"]
    if synth:
        srows = []
        for n, gp, tp in synth:
            gw, tw = gp.warm(), (tp.warm() if tp and tp.reps and not tp.error else None)
            srows.append([n, _s(gw), None if gw is None else f"{1e3 * gw / n:.2f}",
                          _s(tw), None if tw is None else f"{1e3 * tw / n:.2f}"])
        out += ["", "Synthetic residual net (conv-relu-conv + skip, 16 channels), time per block:", "",
                _common.markdown_table(["blocks", "gp warm (s)", "gp ms/block", "TP total (s)", "TP ms/block"], srows)]

    if failures:
        out += ["", "Failures / timeouts:", *failures]

    summary = []
    if ratios:
        m = _common.median(ratios)
        summary.append(f"median gp/TP = {m:.2f} over {len(ratios)} models where both succeeded "
                       f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target <= 0.5: {'met' if m <= 0.5 else 'NOT met'})")
    if len(bounded) > len(ratios):
        summary.append(f"median gp/TP counting TP timeouts at gp/timeout (an upper bound): "
                       f"<= {_common.median(bounded):.2f} over {len(bounded)} models")
    zoo = [(c, gp) for c, gp, _ in rows if c.suite == "zoo" and gp.reps]
    if zoo:
        cw, gw = max(zoo, key=lambda cg: cg[1].warm())
        cf, gf = max(zoo, key=lambda cg: cg[1].first)
        ok = lambda t: "met" if t < 2 else "NOT met"  # noqa: E731
        summary.append(f"max gp analyze time on zoo models (target < 2 s): warm {gw.warm():.3f} s "
                       f"({cw.model} @{'x'.join(map(str, cw.input))}, {ok(gw.warm())}); first call in a fresh process "
                       f"{gf.first:.3f} s ({cf.model} @{'x'.join(map(str, cf.input))}, {ok(gf.first)})")
    by = {(c.model, tuple(c.input or ())): (gp, tp) for c, gp, tp in rows}
    for m in ZOO_HIRES:
        lo, hi = by.get((m, LR)), by.get((m, HIRES))
        if lo and hi and lo[0].reps and hi[0].reps:
            line = f"resolution {m}: gp 48x48 -> 180x320 x{hi[0].warm() / lo[0].warm():.2f}"
            if lo[1] and hi[1] and lo[1].reps and hi[1].reps and not hi[1].error:
                line += f", TP x{hi[1].warm() / lo[1].warm():.2f}"
            elif hi[1] and hi[1].error:
                line += f", TP 180x320: {hi[1].error}"
            summary.append(line)
    if len(synth) > 1 and all(gp.reps for _, gp, _ in synth):
        (n0, g0, _), (n1, g1, _) = synth[0], synth[-1]
        summary.append(f"depth scaling: gp per-block time {n1} vs {n0} blocks x{(g1.warm() / n1) / (g0.warm() / n0):.2f} "
                       f"(1.00 = linear)")
    out += ["", "Summary:", *[f"- {s}" for s in summary]] if summary else []
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", choices=["zoo", "timm", "synthetic", "all"], default="all")
    p.add_argument("--repeats", type=int, default=3, help="warm calls per tool after the first call (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call, and total budget for repeats")
    p.add_argument("--models", default="", help="comma-separated model names to keep (e.g. rcan_x4,resnet50)")
    p.add_argument("--no-tp", action="store_true", help="skip Torch-Pruning")
    p.add_argument("--json", default=None, help="also write raw per-call results to this file")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._worker:
        _worker(json.loads(args._worker))
        return 0
    todo = cases(args.suite, {m for m in args.models.split(",") if m} or None)
    if not todo:
        p.error(f"no case matches --suite {args.suite} --models {args.models}")
    info, load0 = _common.machine_info(), os.getloadavg()
    import importlib.util
    have_tp = importlib.util.find_spec("torch_pruning") is not None
    if not args.no_tp and not have_tp:
        print("torch-pruning is not installed: TP columns skipped (pip install torch-pruning)", file=sys.stderr)
    rows = []
    for i, case in enumerate(todo, 1):
        gp = measure(case, "gp", args.repeats, args.timeout)
        tp = measure(case, "tp", args.repeats, args.timeout) if have_tp and not args.no_tp else None
        print(f"[{i}/{len(todo)}] {case.model} {case.input or ''}: gp first {_s(gp.first)} warm {_s(gp.warm())}"
              f"{' ' + gp.error if gp.error else ''}; TP {_s(tp.warm()) if tp and tp.reps else '-'}"
              f"{' ' + tp.error if tp and tp.error else ''}", file=sys.stderr, flush=True)
        rows.append((case, gp, tp))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": [{"case": c.__dict__, "gp": g.__dict__, "tp": t and t.__dict__}
                                                     for c, g, t in rows]}, f, indent=1)
    print(f"Command: `{info['command']}`  ")
    print(f"Machine: nproc {info['nproc']}, {info['cpu']}, torch {info['torch']}, Python {info['python']}, "
          f"1 thread (OMP_WAIT_POLICY=PASSIVE); date {info['date']}; "
          f"1-min load average {load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end\n")
    print(report(rows, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
