"""``graphprune visualize``: draw the channel groups graphprune finds (what is coupled, what is blocked and why).

    graphprune visualize --model ledsr_f256r16_x4 --out groups.html
    graphprune visualize --model ledsr_f256r16_x4 --set n_resblocks=4 --ratio 0.5 --out ledsr.png
    graphprune visualize --model timm:resnet18 --input 1x3x64x64 --out resnet18.html
    graphprune visualize --model runs/srpn_lite/model.safetensors --out pruned.html    # shows its plan
    graphprune visualize --recipe recipes/ledsr_x4_srp.yaml --out groups.svg

The output format follows the extension of ``--out``: ``.html`` (interactive, self-contained),
``.svg``/``.png`` (Graphviz ``dot`` when installed, else matplotlib), ``.dot``, ``.json``.

``--recipe`` reads the recipe as ``compress`` does (:func:`graphprune.compress.recipe.load_recipe`,
``--set`` being its overrides there): its model of any kind, ``prune.example_input``, ``prune.ignore``,
``model.leaf_modules`` and the plan it would make (``prune.ratio``, ``ratios``, ``round_to``,
``exact_only``, ``criterion``). ``--ratio``/``--ignore``/``--input``/``--round-to`` override it.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .args import Parser, UsageError, parse_shape, run

__all__ = ["main", "build_parser"]

_PROG = "graphprune visualize"


def build_parser(prog: str = _PROG) -> Parser:
    from .model import MODEL_HELP

    p = Parser(prog=prog, description=__doc__.splitlines()[0].strip("`"),
               epilog="formats: .html .svg .png .dot .json (by the extension of --out)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="M", help=MODEL_HELP + "; a pruned file shows its plan")
    src.add_argument("--recipe", metavar="YAML", help="a recipe: its model, analysis settings and plan")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --model: a factory argument (--set n_feats=45); with --recipe: a recipe override "
                        "(--set prune.ratio=0.5), as compress reads it")
    p.add_argument("--scale", type=int, help="upscaling factor (picks NAME_xS when registered, else sets scale=S)")
    p.add_argument("--ratio", type=float, help="plan this pruning ratio and show kept/removed channels")
    p.add_argument("--round-to", type=int, help="with --ratio: kept channels a multiple of this")
    p.add_argument("--ignore", action="append", default=[], metavar="GLOB",
                   help="module-name glob whose outputs are never pruned (repeatable, or comma-separated)")
    p.add_argument("--input", type=parse_shape, help="example input shape (default 1x3x48x48)")
    p.add_argument("--collapse", choices=("auto", "on", "off"), default="auto",
                   help="collapse runs of identical blocks (auto: beyond 400 nodes)")
    p.add_argument("--engine", choices=("auto", "dot", "matplotlib"), default="auto",
                   help="renderer for .svg/.png (auto: Graphviz when installed)")
    p.add_argument("--out", required=True, help="output file: .html, .svg, .png, .dot or .json")
    return p


def _scaled(name: str, sets: list[str], scale: int | None) -> tuple[str, list[str]]:
    """``--scale``: the registered ``NAME_xS`` when there is one, else ``--set scale=S``."""
    if not scale:
        return name, sets
    import sr_models

    base = name.rsplit("_x", 1)[0]
    if sr_models.is_model(f"{base}_x{scale}"):
        return f"{base}_x{scale}", sets
    return name, [*sets, f"scale={scale}"]


def _from_model(args):
    """(model, graph, plan, title) for ``--model``: a pruned file shows its own plan."""
    import torch

    import graphprune as gp
    from ..io import build_model
    from ..plan import Plan
    from .model import load_model

    name, sets = _scaled(args.model, args.set, args.scale)
    loaded = load_model(name, sets)
    ignore = [g for item in args.ignore for g in item.split(",") if g]
    if loaded.kind == "file" and loaded.spec.get("plan"):
        a = loaded.spec["analysis"]
        dense = build_model(loaded.spec["model"])
        graph = gp.analyze(dense, tuple(torch.zeros(s) for s in a["example_shapes"]), ignore=a.get("ignore", ()),
                           size_ties=a.get("size_ties", True), leaf_modules=a.get("leaf_modules", ()))
        return graph, Plan.from_dict(graph, loaded.spec["plan"]), Path(args.model).name
    shape = args.input or loaded.example
    graph = gp.analyze(loaded.model, torch.zeros(shape), ignore=ignore, leaf_modules=loaded.leaf_modules)
    plan = gp.plan(graph, args.ratio, round_to=args.round_to or 1) if args.ratio else None
    return graph, plan, args.model


def _from_recipe(args):
    """(graph, plan, title) for ``--recipe``: the analysis and plan ``compress --dry-run`` would make."""
    import torch

    import graphprune as gp
    from ..compress.models import build_dense
    from ..compress.recipe import load_recipe, shipped_recipe

    r = load_recipe(shipped_recipe(args.recipe), args.set, check_files=False)
    p = r.prune
    dense = build_dense(r.model, r.seed, weights=bool(r.model.checkpoint) and Path(r.model.checkpoint).is_file())
    ignore = [*p.ignore, *(g for item in args.ignore for g in item.split(",") if g)]
    graph = gp.analyze(dense, torch.zeros(args.input or p.example_input), ignore=ignore,
                       leaf_modules=r.model.leaf_modules)
    ratio = args.ratio if args.ratio is not None else p.ratio
    plan = None
    if ratio or p.ratios:
        plan = gp.plan(graph, ratio, criterion=p.criterion, round_to=args.round_to or p.round_to,
                       ratios=p.ratios or None, seed=r.seed, exact_only=p.exact_only)
    return graph, plan, r.name


def _run(args) -> int:
    from .. import viz

    out = Path(args.out)
    if out.suffix.lower() not in viz.FORMATS:
        raise UsageError(f"--out must end in one of {', '.join(viz.FORMATS)}, got {out.name!r}")
    if args.recipe and args.scale:
        raise UsageError("--scale applies to --model; with --recipe use --set scale=S")
    graph, plan, title = _from_recipe(args) if args.recipe else _from_model(args)
    collapse = {"auto": "auto", "on": True, "off": False}[args.collapse]
    if out.suffix.lower() in (".svg", ".png") and args.engine == "auto" and not shutil.which("dot"):
        print(f"{_PROG}: note: {viz.GRAPHVIZ_HINT}", file=sys.stderr)
    print(f"wrote {viz.render(graph, out, plan=plan, collapse=collapse, engine=args.engine, title=title)}")
    return 0


def main(argv: list[str] | None = None, prog: str = _PROG) -> int:
    return run(prog, _run, build_parser(prog).parse_args(argv))
