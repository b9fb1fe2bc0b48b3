"""``tools/compress.py``: parse, load the recipe, prepare, run, report, in that order.

Exit codes: 0 done; 2 a user error (the recipe, the data, the model, the device, a changed recipe
on ``--resume``): one line per problem on stderr and, when the run could not start, no files;
130 interrupted (Ctrl-C): training saved a checkpoint and the line to resume is printed.

The working directory goes first on the import path, as ``python -m`` does, so that a recipe can
name ``mynet:factory`` from the folder holding ``mynet.py``; ``command.txt`` then records the
``PYTHONPATH`` the run needs to be repeated.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli.args import Parser
from .recipe import shipped_recipe

__all__ = ["main", "parse", "resume_command"]

_USAGE = ("python", "tools/compress.py")  # how the commands it prints start, unless run as a script


def parse(argv=None, prog: str | None = None) -> argparse.Namespace:
    ap = Parser(prog=prog or " ".join(_USAGE), description="Compress an SR network as a recipe says: train, "
                                 "regularize, prune, fine-tune, evaluate, report.")
    ap.add_argument("--recipe", required=True, help="a YAML recipe, or the name of a shipped one (see recipes/)")
    ap.add_argument("--out", default=None, help="run directory (default: the recipe's output_dir)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe value, e.g. --set prune.ratio=0.5 (repeatable)")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    ap.add_argument("--dry-run", action="store_true", help="validate, analyze and plan; no data, no training")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    return ap.parse_args(argv)


def resume_command(args: argparse.Namespace, out: Path, env: str = "") -> str:
    """The command that continues this run (the same recipe and overrides, ``--out``, ``--resume``)."""
    from .provenance import command_line

    parts = [*_invocation(), "--recipe", args.recipe, *(a for s in args.set for a in ("--set", s)),
             *(("--device", args.device) if args.device else ()), "--out", str(out), "--resume"]
    return command_line(parts, [env] if env else [])


def main(argv=None, prog: str | None = None) -> int:
    args = parse(argv, prog)
    args.recipe = shipped_recipe(args.recipe)
    if os.getcwd() not in sys.path:  # as `python -m` does: `mynet:factory` from the folder of mynet.py
        sys.path.insert(0, os.getcwd())
    from ..schema import ConfigError
    from ..train import CheckpointError
    from .pipeline import PipelineError
    from .recipe import RecipeError

    pipeline = None
    try:
        pipeline = _pipeline(args, argv)
        return _run(pipeline, args.dry_run)
    except RecipeError as e:
        print("\n".join(f"error: {e.path}: {p}" for p in e.problems), file=sys.stderr)
    except ConfigError as e:
        print(f"error: {e.title}: " + "; ".join(map(str, e.problems)), file=sys.stderr)
    except (PipelineError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
    except KeyboardInterrupt as e:
        return _interrupted(e, args, pipeline)
    return 2


def _pipeline(args: argparse.Namespace, argv):
    """The recipe loaded (files checked unless dry) and its pipeline, with the command that repeats it."""
    from .pipeline import Pipeline
    from .provenance import command_line
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set, check_files=not args.dry_run)
    env = [f"PYTHONPATH={os.getcwd()}"] if _needs_cwd(recipe.model.name) else []
    command = command_line([*_invocation(), *(argv if argv is not None else sys.argv[1:])], env)
    return Pipeline(recipe, args.out, resume=args.resume, device=args.device, command=command)


def _run(pipeline, dry_run: bool) -> int:
    """The dry run, or the run (under torchrun: every rank) and its report printed by rank 0."""
    from ..train import destroy_distributed, init_distributed, is_main_process

    if dry_run:
        pipeline.dry_run()
        return 0
    init_distributed()
    try:
        result = pipeline.run()
    finally:
        destroy_distributed()
    report = Path(pipeline.out) / "report.md"
    if is_main_process():
        print(report.read_text() if report.exists() else result)
    return 0


def _invocation() -> tuple[str, ...]:
    """``python tools/compress.py`` as this process was started (the interpreter and script paths)."""
    script = Path(sys.argv[0])
    if script.name == "graphprune":  # the console script
        return ("graphprune", "compress")
    return (sys.executable, sys.argv[0]) if script.name == "compress.py" else _USAGE


def _needs_cwd(name: str) -> bool:
    """A ``module:factory`` model importable only from the working directory."""
    if ":" not in name or name.startswith("timm:"):
        return False
    from importlib.machinery import PathFinder

    # Asked of the working directory alone: a module of that name imported earlier from elsewhere
    # (sys.modules) says nothing about what a fresh shell would find.
    module = name.partition(":")[0].split(".")[0]
    return PathFinder.find_spec(module, [os.getcwd()]) is not None


def _interrupted(e: KeyboardInterrupt, args: argparse.Namespace, pipeline) -> int:
    out = Path(pipeline.out) if pipeline is not None else None
    if out is None or not (out / "recipe.yaml").exists():
        print("interrupted before the run started; nothing was written", file=sys.stderr)
        return 130
    saved = f"; checkpoint saved: {e.checkpoint}" if getattr(e, "checkpoint", None) else ""
    env = next((w for w in pipeline.command.split() if w.startswith("PYTHONPATH=")), "")
    print(f"interrupted{saved}; resume with: {resume_command(args, out, env)}", file=sys.stderr)
    return 130
