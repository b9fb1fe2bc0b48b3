"""What the methods buy: ASSL vs SRP vs one-shot L1 vs scratch at equal Mult-Adds and equal iterations.

    OMP_WAIT_POLICY=PASSIVE python bench/quality.py [--seeds 0,1,2] [--budget 900] [--out runs/quality]

Protocol (the demo protocol: held-out scikit-image photos, x4, the demo recipes' small LEDSR):
for each seed, one dense model is pretrained (``demo_x4_train`` settings, ``--pretrain`` iterations);
then every method starts from that same dense model and gets the same ``--budget`` iterations after
pretraining, all pruned at the same ratio (so the same architecture and Mult-Adds):

* ``assl`` / ``srp``: the demo recipe's regularization (its length comes from the schedule), then
  fine-tuning for the rest of the budget;
* ``l1``: one-shot L1-norm pruning of the dense model, fine-tuned for the whole budget;
* ``scratch``: the pruned architecture from random initialization, trained for the whole budget.

With ``--allocations uniform,global,sensitivity`` (issue 12) every method runs once per allocation at
equal Mult-Adds: the target is the Mult-Adds of the uniform ``--ratio`` plan (``prune.target:
{mult_adds: ...}``), spent by one ratio, by importance per cost (the criterion's scores of the dense
model) or by the measured sensitivity (PSNR drop per group on the held-out photos).

Prints PSNR/SSIM (Y, border = scale) mean ± std over seeds, and the per-seed values.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import machine_info  # noqa: E402

METHODS = ("assl", "srp", "l1", "scratch")


def quiet(overrides: list[str]) -> list[str]:
    return overrides + ["train.print_freq=100000", "train.val_freq=100000"]


def run(recipe: str, out: Path, overrides: list[str]) -> dict:
    from graphprune.compress.pipeline import Pipeline
    from graphprune.compress.recipe import load_recipe

    r = load_recipe(ROOT / "recipes" / recipe, quiet(overrides))
    report = out / "report.json"
    if report.exists():  # finished earlier: reuse (the bench is resumable)
        return json.loads(report.read_text())
    Pipeline(r, out, resume=(out / "state.json").exists()).run()
    return json.loads(report.read_text())


def equal_mult_adds(recipe: str, ratio: float) -> float:
    """The Mult-Adds (720p output) of the recipe's model pruned uniformly at ``ratio``: the shared target."""
    import torch

    import graphprune as gp
    from graphprune.compress.models import build_dense
    from graphprune.compress.recipe import load_recipe

    r = load_recipe(ROOT / "recipes" / recipe, [f"prune.ratio={ratio}"], check_files=False)
    dense = build_dense(r.model, r.seed, weights=False)
    graph = gp.analyze(dense, torch.zeros(r.prune.example_input), ignore=r.prune.ignore)
    return float(gp.sr_mult_adds(gp.apply(dense, gp.plan(graph, **r.prune.plan_arguments())), r.scale))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--pretrain", type=int, default=1200, help="dense pretraining iterations")
    ap.add_argument("--budget", type=int, default=900, help="iterations after pretraining, for every method")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--allocations", default=None, help="comma-separated (uniform, global, sensitivity): each method "
                    "once per allocation of a Mult-Adds target equal to the uniform --ratio plan's")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "quality")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override for the compressed runs (e.g. a longer schedule), repeatable")
    args = ap.parse_args(argv)
    from graphprune.compress.recipe import load_recipe

    seeds = [int(s) for s in args.seeds.split(",")]
    runs = args.methods.split(",")
    target = None
    if args.allocations:
        target = equal_mult_adds("demo_x4_assl.yaml", args.ratio)
        runs = [f"{m}/{a}" for m in runs for a in args.allocations.split(",")]
    t_start = time.perf_counter()
    scores: dict[str, list[tuple[float, float]]] = {m: [] for m in runs}
    at_prune: dict[str, list[float]] = {m: [] for m in runs}  # PSNR right after the prune step
    dense_scores, bicubic, sizes = [], None, {}
    widths: dict[str, list[str]] = {m: [] for m in runs}  # kept channels of the prunable groups
    for seed in seeds:
        base = args.out / f"seed{seed}"
        dense = run("demo_x4_train.yaml", base / "dense",
                    [f"seed={seed}", f"stages.pretrain.total_iter={args.pretrain}"])
        dense_file = base / "dense" / "dense.safetensors"
        dense_scores.append(dense["dense"]["metrics"]["demo"]["psnr"])
        bicubic = dense["bicubic"]["demo"]
        for label in runs:
            method, _, allocation = label.partition("/")
            recipe = "demo_x4_srp.yaml" if method == "srp" else "demo_x4_assl.yaml"
            how = ([f"prune.ratio={args.ratio}"] if not allocation else
                   ["prune.ratio=0", f"prune.target={{mult_adds: {target:.0f}}}", f"prune.allocation={allocation}"])
            common = [f"seed={seed}", f"model.checkpoint={dense_file}", "stages.pretrain=null", *how, *args.set]
            if method in ("assl", "srp"):
                reg_iters = load_recipe(ROOT / "recipes" / recipe, common, check_files=False).regularize_iters
                extra = [f"stages.finetune.total_iter={args.budget - reg_iters}"]
            else:
                extra = [f"prune.method={method}", "stages.regularize=null", f"stages.finetune.total_iter={args.budget}"]
            rep = run(recipe, base / label.replace("/", "_"), common + extra)
            m = rep["pruned"]["metrics"]["demo"]
            scores[label].append((m["psnr"], m["ssim"]))
            at_prune[label].append((rep.get("pruned_before_finetune") or {}).get("demo", {}).get("psnr", float("nan")))
            sizes[label] = (rep["pruned"]["params"], rep["pruned"]["mult_adds"])
            widths[label].append("/".join(str(g["kept"]) for g in rep["groups"] if g["prunable"]))
            print(f"seed {seed} {label:18s} {m['psnr']:.3f} dB / {m['ssim']:.4f}  widths {widths[label][-1]}  "
                  f"({sum(s['iterations'] for s in rep['stages'] if s['name'] != 'pretrain')} iterations)", flush=True)

    info = machine_info()
    print(f"\n# quality: demo protocol x4, LEDSR F32R4 -> ratio {args.ratio}, budget {args.budget} iterations "
          f"after {args.pretrain} of dense pretraining, seeds {seeds}" + (f", overrides {args.set}" if args.set else "")
          + (f"; target {target / 1e9:.3f} G Mult-Adds for every allocation" if target else ""))
    print(f"# machine: {info['cpu']}, {info['nproc']} cores, torch {info['torch']}, {info['date']}; "
          f"{time.perf_counter() - t_start:.0f} s")
    print(f"bicubic: {bicubic['psnr']:.2f} dB / {bicubic['ssim']:.4f}; dense: "
          f"{statistics.mean(dense_scores):.2f} ± {statistics.pstdev(dense_scores):.2f} dB")
    print("| method | params | Mult-Adds | PSNR right after pruning (dB) | PSNR (dB) mean ± std | SSIM mean ± std | "
          "per seed | kept channels per group (seed 0) |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for method in runs:
        p = [s[0] for s in scores[method]]
        q = [s[1] for s in scores[method]]
        params, macs = sizes[method]
        print(f"| {method} | {params:,} | {macs / 1e9:.2f} G | {statistics.mean(at_prune[method]):.2f} | "
              f"{statistics.mean(p):.3f} ± {statistics.pstdev(p):.3f} | "
              f"{statistics.mean(q):.4f} ± {statistics.pstdev(q):.4f} | {', '.join(f'{x:.2f}' for x in p)} | "
              f"{widths[method][0]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
