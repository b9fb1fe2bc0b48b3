"""Compress an SR network as a recipe says: train, regularize, prune, fine-tune, evaluate, report.

    python tools/compress.py --recipe recipes/ledsr_x4_assl.yaml [--out DIR] [--set k=v ...] [--resume]
    python tools/compress.py --recipe recipes/ledsr_x4_srp.yaml --dry-run      # sizes only, no data needed
    torchrun --nproc_per_node=4 tools/compress.py --recipe ...                 # multi-GPU (DDP)

Exit codes: 0 done, 2 invalid recipe or input (one line per problem on stderr).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", required=True, help="a YAML recipe (see recipes/)")
    ap.add_argument("--out", default=None, help="run directory (default: the recipe's output_dir)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe value, e.g. --set prune.ratio=0.5 (repeatable)")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    ap.add_argument("--dry-run", action="store_true", help="validate, analyze and plan; no training")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    from graphprune.compress.pipeline import Pipeline, PipelineError
    from graphprune.compress.recipe import RecipeError, load_recipe
    from graphprune.train import destroy_distributed, init_distributed, is_main_process

    try:
        recipe = load_recipe(args.recipe, args.set, check_files=not args.dry_run)
        pipeline = Pipeline(recipe, args.out, resume=args.resume, device=args.device,
                            argv=["python", "tools/compress.py", *(argv or sys.argv[1:])])
        if args.dry_run:
            pipeline.dry_run()
            return 0
        init_distributed()
        try:
            result = pipeline.run()
            main_rank = is_main_process()
        finally:
            destroy_distributed()
    except (RecipeError, PipelineError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = Path(pipeline.out) / "report.md"
    if main_rank:
        print(report.read_text() if report.exists() else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
