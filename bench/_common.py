"""Small helpers shared by the benchmark scripts: stable threading, timing, machine info, tables, and
the sweep machinery of prunability.py and real_world.py (forked workers that stream JSON events,
watchdog timeouts, JSONL output with resume, Torch-Pruning's documented protocol).

Conventions (see BENCHMARKS.md): one thread, ``OMP_WAIT_POLICY=PASSIVE``, medians of repeats, and
every figure quoted together with its command, machine and date.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import signal
import statistics
import sys
import time
from typing import Any, Callable, Iterator, Sequence

__all__ = ["single_thread_env", "set_single_thread", "timed", "median", "machine_info", "markdown_table",
           "emit", "one_line", "Timeout", "watchdog", "fork_run", "read_rows", "done", "fmt", "first_tensor",
           "output_layers", "tp_prune", "warm_up", "tp_available", "add_sweep_args", "sweep_main", "state", "summary_line"]


def single_thread_env() -> dict[str, str]:
    """Environment variables that keep OpenMP/MKL on one passive thread (set before importing torch)."""
    return {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def set_single_thread() -> None:
    """Apply :func:`single_thread_env` to this process and pin torch to one intra-op thread."""
    for k, v in single_thread_env().items():
        os.environ.setdefault(k, v)
    import torch

    torch.set_num_threads(1)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Run ``fn`` once after a garbage collection; return ``(seconds, result)``."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(xs: Sequence[float]) -> float | None:
    """Median of ``xs``, None when empty."""
    return statistics.median(xs) if xs else None


def machine_info() -> dict[str, str]:
    """nproc, CPU model (from /proc/cpuinfo), Python and torch versions, and today's date (UTC)."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "command": " ".join(["python"] + sys.argv),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; ``None`` cells print as an em dash."""
    cells = [[("—" if c is None else str(c)) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Sweeps: one forked worker per (model, tool), streaming JSON events; results appended to JSONL.


def emit(**event) -> None:
    """One event of a worker: a JSON line on stdout, which :func:`fork_run` merges."""
    print(json.dumps(event), flush=True)


def one_line(exc: BaseException, limit: int = 240) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters."""
    text = f"{type(exc).__name__}: " + " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Timeout(Exception):
    """Raised in a worker by :func:`watchdog` when its time is up."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise :class:`Timeout` in this (worker) process after ``seconds`` (SIGALRM)."""
    def _alarm(signum, frame):
        raise Timeout("watchdog")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(max(1, int(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fork_run(work: Callable[[dict], None], spec: dict, hard_limit: float) -> dict:
    """Run ``work(spec)`` in a forked child; return its merged JSON events. Never raises.

    The child writes events with :func:`emit`; the parent kills it after ``hard_limit`` seconds (a hang
    the worker's own watchdog cannot interrupt, e.g. inside a C call). ``error`` is set when the child
    dies, is killed, or stops without an ``ok``/``skip``/``error`` event. Fork from a warmed-up parent
    running torch on one thread: imports are paid once and forking is safe.
    """
    import select

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: events go to the pipe as JSON lines
        os.close(r)
        os.dup2(w, 1)
        code = 0
        try:
            work(spec)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(w)
    buf, res = b"", {}
    deadline = time.monotonic() + hard_limit
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([r], [], [], left)[0]:
            os.kill(pid, signal.SIGKILL)
            res["error"] = f"timeout (hard kill after {hard_limit:g} s)"
            break
        chunk = os.read(r, 65536)
        if not chunk:
            break
        buf += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    for line in buf.decode(errors="replace").splitlines():
        if line.startswith("{"):
            res.update(json.loads(line))
    if status != 0 and "error" not in res and "skip" not in res:
        sig = f", killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else ""
        res["error"] = f"worker died (status {status}{sig})"
    if "ok" not in res and "skip" not in res and "error" not in res:
        res["error"] = "worker stopped without a result"
    if "error" in res:
        res["ok"] = False
    return res


def read_rows(path: str) -> list[dict]:
    """The rows of a JSONL results file; a model listed twice (a re-run appended) counts once, the last."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return list({r["model"]: r for r in (json.loads(line) for line in f if line.strip().startswith("{"))}.values())


def done(path: str) -> set[str]:
    """Models already recorded in a JSONL file (an interrupted sweep resumes where it stopped)."""
    return {r["model"] for r in read_rows(path)}


def fmt(v, spec: str = "{:.2f}") -> str | None:
    """``spec.format(v)``, None (an em dash in tables) for None."""
    return None if v is None else spec.format(v)


def first_tensor(y: Any):
    """The first tensor of a model's output (tuple, list or dict outputs: their first element)."""
    import torch

    if isinstance(y, torch.Tensor):
        return y
    if isinstance(y, (tuple, list)):
        return first_tensor(y[0])
    if isinstance(y, dict):
        return first_tensor(next(iter(y.values())))
    raise TypeError(f"model output of type {type(y).__name__}")


def output_layers(model, n_out: int) -> list:
    """The layers that produce the model's output channels: the classifier (or an SR net's last conv)."""
    from torch import nn

    return [m for m in model.modules()
            if (isinstance(m, nn.Conv2d) and m.out_channels == n_out) or (isinstance(m, nn.Linear) and m.out_features == n_out)]


def tp_prune(model, x, ratio: float, n_out: int, box: dict, report: Callable[..., None] = emit) -> dict:
    """Torch-Pruning's documented protocol, in place; returns ``layers_pruned`` (pruned/all Conv+Linear).

    ``MagnitudePruner(model, x, MagnitudeImportance(p=2), pruning_ratio=ratio, ignored_layers=<the
    layers making the n_out output channels>)``, constructor timed (it builds the dependency graph;
    ``report(analyze_s=...)`` before the step, so a failing step still has its time), then ``step()``.
    ``box["stage"]`` names the step running, for timeout and error messages.
    """
    import torch
    import torch_pruning as tp
    from torch import nn

    ignored = output_layers(model, n_out)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in ignored]
    before = [m.weight.shape[0] for m in layers]
    box["stage"] = "TP pruner (dependency graph)"
    with torch.enable_grad():
        t, pruner = timed(lambda: tp.pruner.MagnitudePruner(
            model, x, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=ratio,
            ignored_layers=ignored))
        report(analyze_s=t)
        box["stage"] = "TP step"
        pruner.step()
    halved = sum(m.weight.shape[0] < b for m, b in zip(layers, before))
    return {"layers_pruned": f"{halved}/{len(layers)}"}


def tp_available() -> bool:
    """Whether torch-pruning is importable (a note on stderr when it is not: the run is graphprune only)."""
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        print("torch-pruning is not installed: running graphprune only", file=sys.stderr)
        return False
    return True


def warm_up(tp_on: bool, *modules: str) -> None:
    """Import everything once in the parent and run both tools on a tiny net (lazy imports, caches).

    Workers are forked from this process, so each model starts warm and the import time (seconds)
    is paid once; torch runs on one thread, so forking after this is safe.
    """
    set_single_thread()
    import importlib
    import warnings

    warnings.simplefilter("ignore")
    import torch
    from torch import nn

    import graphprune as gp
    for m in ("graphprune.flops", "graphprune.io", "graphprune.verify", *modules):
        importlib.import_module(m)
    net, x = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 3, 3)).eval(), torch.zeros(1, 3, 8, 8)
    gp.apply(net, gp.plan(gp.analyze(net, x), 0.5))
    if tp_on:
        tp_prune(net, x, 0.5, 3, {}, report=lambda **_: None)


def add_sweep_args(ap: argparse.ArgumentParser, timeout: float) -> None:
    """The flags every sweep has: --models, --ratio, --shard, --timeout, --no-tp, --out (resume), --report."""
    ap.add_argument("--models", default="", help="comma-separated names instead of the suite's list")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--shard", default="0/1", help="i/n: every n-th model from offset i")
    ap.add_argument("--timeout", type=float, default=timeout, help="seconds per (model, tool) after the build")
    ap.add_argument("--no-tp", action="store_true", help="graphprune only")
    ap.add_argument("--out", default="", help="JSONL file, one line per model; models already in it are skipped (resume)")
    ap.add_argument("--report", default="", help="only print the report of an existing JSONL file (e.g. merged shards)")


def summary_line(parts: list[str], run: list[dict], tp_on: bool) -> str:
    """``SUMMARY: graphprune's parts``, with Torch-Pruning's success count second and the median gp/TP
    analysis-time ratio (over the models both timed) last when TP ran."""
    if tp_on:
        ratios = [r["gp"]["analyze_s"] / r["tp"]["analyze_s"] for r in run
                  if r["gp"].get("analyze_s") and (r.get("tp") or {}).get("analyze_s")]
        tp_ok = sum(bool((r.get("tp") or {}).get("ok")) for r in run)
        parts = [parts[0], f"Torch-Pruning {tp_ok}/{len(run)}", *parts[1:]]
        parts += [f"median analysis time gp/TP = {median(ratios):.2f} over {len(ratios)} models"] if ratios else []
    return "SUMMARY: " + "; ".join(parts)


def state(r: dict | None) -> str | None:
    """A tool's outcome in a table: ok, FAIL or skip (None when it did not run)."""
    if not r:
        return None
    return "skip" if "skip" in r else ("ok" if r.get("ok") else "FAIL")


def _status_line(name: str, row: dict, seconds: float, width: int) -> str:
    g, t = row["gp"], row.get("tp") or {}
    why = lambda r: r.get("error") or r.get("reason") or r.get("skip") or ""  # noqa: E731
    return (f"{name:{width}s} gp {state(g):4s} {g.get('analyze_s') or 0:7.3f}s"
            + (f" | TP {state(t):4s} {t.get('analyze_s') or 0:7.3f}s" if t else "")
            + f" | {seconds:5.1f}s  {why(g)}" + (f" | TP: {why(t)}" if t and not t.get("ok") else ""))


def sweep_main(args, names: list[str], run_row: Callable[[str, bool], dict], report: Callable[[list, bool], str],
               warm: Callable[[bool], None], title: str, width: int = 40) -> None:
    """A sweep's main after argument parsing: ``--report`` only renders; otherwise take the shard, skip what
    ``--out`` already holds, warm up, run ``run_row(name, tp_on)`` per model (a status line each, a JSONL
    line appended each), then print ``report(rows, tp_on)``."""
    if args.report:
        rows = read_rows(args.report)
        return print(report(rows, any("tp" in r for r in rows)))
    i, n = (int(v) for v in args.shard.split("/"))
    names, finished = names[i::n], done(args.out)
    if finished:
        print(f"# resuming {args.out}: {sum(m in finished for m in names)} of {len(names)} models already there", flush=True)
        names = [m for m in names if m not in finished]
    tp_on = not args.no_tp and tp_available()
    warm(tp_on)
    info = machine_info()
    print(f"# {title}: {len(names)} models, ratio {args.ratio}, timeout {args.timeout:g} s; "
          f"{info['cpu']}, {info['nproc']} cpus, torch {info['torch']}, {info['date']}", flush=True)
    rows = []
    with open(args.out or os.devnull, "a") as out:
        for name in names:
            t0 = time.perf_counter()
            rows.append(run_row(name, tp_on))
            print(_status_line(name, rows[-1], time.perf_counter() - t0, width), flush=True)
            out.write(json.dumps(rows[-1]) + "\n")
            out.flush()
    print()
    print(report(rows, tp_on))
