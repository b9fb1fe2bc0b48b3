"""Demo: prune LEDSR F256R16 x4 to the SRP paper's SRPN-Lite width (45 channels), with no layer list.

    python tools/demo_prune.py [--scale 4] [--ratio 0.82421875] [--out runs/demo_prune]

Prints the coupled groups graphprune discovers, params and SR Mult-Adds (1280x720 output) before and
after, and checks the save/load round trip of the pruned model.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphprune as gp  # noqa: E402
import sr_models  # noqa: E402


def describe_groups(graph: gp.ChannelGraph) -> str:
    """One line per group; runs of groups that look alike (one per residual block) are collapsed."""
    def line(g):
        producers = g.modules("out")
        consumers = [m for m in g.modules("in") if m not in producers]
        state = "prunable" if g.prunable else f"blocked: {g.reason}"
        shown = ", ".join(producers[:3]) + (f", ... ({len(producers)} producers)" if len(producers) > 3 else "")
        return (g.size, len(producers), len(consumers), state), f"{g.size:>3} channels  out: {shown}  -> {len(consumers)} consumers  [{state}]"

    lines, run = [], []
    for g in graph.groups + [None]:
        key, text = line(g) if g is not None else (None, "")
        if run and (g is None or key != run[0][1]):
            first, last = run[0], run[-1]
            ids = f"{first[0].id}" if len(run) == 1 else f"{first[0].id}-{last[0].id}"
            lines.append(f"  group {ids:>5}: {first[2]}" + (f"   (x{len(run)} alike)" if len(run) > 1 else ""))
            run = []
        if g is not None:
            run.append((g, key, text))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    ap.add_argument("--ratio", type=float, default=0.82421875, help="211/256: 256 -> 45 channels")
    ap.add_argument("--out", type=Path, default=None, help="where to save the pruned model (default: a temp dir)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    name = f"ledsr_f256r16_x{args.scale}"
    model = sr_models.create_model(name).eval()
    x = torch.rand(1, 3, 48, 48) * model.rgb_range
    t0 = time.perf_counter()
    graph = gp.analyze(model, x, ignore=["*mean*", "*tail*"])
    t_analyze = time.perf_counter() - t0
    residual = [g for g in graph.groups if "head.0" in g.modules("out")][0]
    print(f"{name}: {len(graph.groups)} channel groups, {len(graph.prunable_groups)} prunable "
          f"(analysis {t_analyze:.2f} s, no layer list given)")
    print(describe_groups(graph))
    print(f"\nresidual group (the papers' --same_pruned_wg_layers, found automatically): "
          f"out = {', '.join(residual.modules('out')[:2])}, ..., {residual.modules('out')[-1]} "
          f"({len(residual.modules('out'))} convs); in = {len(residual.modules('in'))} convs\n")

    plan = gp.plan(graph, args.ratio)
    pruned = gp.apply(model, plan)
    rows = []
    for label, m in (("dense", model), ("pruned", pruned)):
        params = sum(p.numel() for p in m.parameters())
        rows.append((label, m.head[0].out_channels, params, gp.sr_mult_adds(m, args.scale)))
    print(f"{'model':<8} {'width':>5} {'params':>12} {'Mult-Adds (1280x720)':>22}")
    for label, width, params, macs in rows:
        print(f"{label:<8} {width:>5} {params:>12,} {macs / 1e9:>20.1f}G")
    print("SRP paper, SRPN-Lite x2/x3/x4: 609K/139.9G, 615K/62.7G, 623K/35.8G (values truncated)\n")

    with torch.no_grad():
        dense_y, pruned_y = model(x), pruned(x)
    assert pruned_y.shape == dense_y.shape
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="graphprune_demo_"))
    path = gp.save(pruned, out_dir / f"{name}_45.safetensors")
    loaded = gp.load(path).eval()
    with torch.no_grad():
        same = torch.equal(loaded(x), pruned_y)
    print(f"saved {path} ({path.stat().st_size / 1e6:.1f} MB, safetensors + JSON spec, no pickle); "
          f"reloaded output identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
