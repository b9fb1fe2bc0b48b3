"""Draw the channel groups graphprune finds in a model (what is coupled, what is blocked and why).

    python tools/visualize.py --model ledsr_f256r16_x4 --out groups.html
    python tools/visualize.py --model ledsr_f256r16_x4 --set n_resblocks=4 --ratio 0.5 --out ledsr.png
    python tools/visualize.py --timm resnet18 --input 1x3x64x64 --out resnet18.html
    python tools/visualize.py --pruned runs/srpn_lite/model.safetensors --out pruned.html
    python tools/visualize.py --recipe recipes/srp_ledsr_x4.yaml --out groups.svg

The output format follows the extension of ``--out``: ``.html`` (interactive, self-contained),
``.svg``/``.png`` (Graphviz ``dot`` when installed, else matplotlib), ``.dot``, ``.json``.

Recipe keys read (anything else is ignored here; the recipe loader validates recipes)::

    model:  {name: ledsr_f256r16_x4, kwargs: {n_feats: 256}}    # or {timm: resnet18, kwargs: {...}}
    network_g: {type: ledsr_f256r16_x4, n_feats: 256}          # BasicSR spelling, if no model: block
    ignore: ["*mean*"]                                          # or prune.ignore
    prune: {ratio: 0.5, ignore: [...]}
    input: 1x3x48x48                                            # optional example input shape

Command-line flags override the recipe. Bad input prints one line and exits with status 2,
leaving no output file.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import parse_overrides, parse_shape  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="formats: .html .svg .png .dot .json (by the extension of --out)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="sr_models registry name (see sr_models.list_models())")
    src.add_argument("--timm", metavar="NAME", help="timm model name (built with pretrained=False)")
    src.add_argument("--recipe", metavar="YAML", help="recipe file (model, ignore and prune.ratio are read)")
    src.add_argument("--pruned", metavar="FILE", help="a file written by graphprune.save: shows its plan")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model argument override")
    p.add_argument("--scale", type=int, help="upscaling factor (picks NAME_xS when registered, else sets scale=S)")
    p.add_argument("--ratio", type=float, help="also plan a pruning ratio and show kept/removed channels")
    p.add_argument("--ignore", action="append", default=[], metavar="GLOB",
                   help="module-name glob whose outputs are never pruned (repeatable, or comma-separated)")
    p.add_argument("--input", type=parse_shape, help="example input shape (default 1x3x48x48)")
    p.add_argument("--collapse", choices=("auto", "on", "off"), default="auto",
                   help="collapse runs of identical blocks (auto: beyond 400 nodes)")
    p.add_argument("--engine", choices=("auto", "dot", "matplotlib"), default="auto",
                   help="renderer for .svg/.png (auto: Graphviz when installed)")
    p.add_argument("--out", required=True, help="output file: .html, .svg, .png, .dot or .json")
    return p


def _read_recipe(path: str) -> dict:
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a YAML mapping, got {type(data).__name__}")
    model = data.get("model")
    if isinstance(model, str):
        model = {"name": model}
    if not model and isinstance(data.get("network_g"), dict):
        net = dict(data["network_g"])
        model = {"name": net.pop("type", None), "kwargs": net}
    if not isinstance(model, dict) or not (model.get("name") or model.get("timm")):
        raise ValueError(f"{path}: no model found (expected model.name, model.timm or network_g.type)")
    prune = data.get("prune") if isinstance(data.get("prune"), dict) else {}
    ignore = data.get("ignore", prune.get("ignore", ())) or ()
    return {"model": {k: model[k] for k in ("name", "timm", "kwargs") if model.get(k) is not None},
            "ignore": [ignore] if isinstance(ignore, str) else list(ignore),
            "ratio": prune.get("ratio"), "input": data.get("input")}


def _model_spec(args) -> tuple[dict, list[str], float | None, tuple | None]:
    """(model spec for graphprune.io.build_model, ignore globs, ratio, input shape) from the flags."""
    ignore, ratio, shape = [], None, None
    if args.recipe:
        r = _read_recipe(args.recipe)
        spec, ignore, ratio = r["model"], r["ignore"], r["ratio"]
        shape = parse_shape(r["input"]) if r["input"] else None
    elif args.timm:
        spec = {"timm": args.timm}
    else:
        spec = {"name": args.model}
    kwargs = dict(spec.get("kwargs") or {}, **parse_overrides(args.set))
    if args.scale:
        import sr_models

        base = (spec.get("name") or "").rsplit("_x", 1)[0]
        if spec.get("name") and sr_models.is_model(f"{base}_x{args.scale}"):
            spec["name"] = f"{base}_x{args.scale}"
        else:
            kwargs["scale"] = args.scale
    spec["kwargs"] = kwargs
    ignore += [g for item in args.ignore for g in item.split(",") if g]
    return spec, ignore, (args.ratio if args.ratio is not None else ratio), args.input or shape


def run(args: argparse.Namespace) -> Path:
    """Build the model, analyze it, optionally plan, and write ``args.out``."""
    import torch

    import graphprune as gp
    from graphprune import viz
    from graphprune.compress.recipe import DEFAULT_EXAMPLE_INPUT
    from graphprune.io import build_model, read_spec
    from graphprune.plan import Plan

    out = Path(args.out)
    if out.suffix.lower() not in viz.FORMATS:
        raise ValueError(f"--out must end in one of {', '.join(viz.FORMATS)}, got {out.name!r}")
    plan = None
    if args.pruned:
        spec = read_spec(args.pruned)
        analysis = spec.get("analysis") or {}
        model = build_model(spec["model"])
        shapes = analysis.get("example_shapes") or [list(args.input or DEFAULT_EXAMPLE_INPUT)]
        graph = gp.analyze(model, tuple(torch.zeros(s) for s in shapes), ignore=analysis.get("ignore", ()))
        plan = Plan.from_dict(graph, spec["plan"]) if spec.get("plan") else None
        name = Path(args.pruned).name
    else:
        mspec, ignore, ratio, shape = _model_spec(args)
        model = build_model(mspec).eval()
        graph = gp.analyze(model, torch.zeros(shape or DEFAULT_EXAMPLE_INPUT), ignore=ignore)
        plan = gp.plan(graph, ratio) if ratio else None
        name = mspec.get("name") or mspec.get("timm")
    collapse = {"auto": "auto", "on": True, "off": False}[args.collapse]
    if out.suffix.lower() in (".svg", ".png") and args.engine == "auto" and not shutil.which("dot"):
        print(f"visualize.py: note: {viz.GRAPHVIZ_HINT}", file=sys.stderr)
    return viz.render(graph, out, plan=plan, collapse=collapse, engine=args.engine, title=name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = run(args)
    except Exception as exc:  # noqa: BLE001 - one line, non-zero exit, no partial file
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"visualize.py: error: {type(exc).__name__}: {first}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
