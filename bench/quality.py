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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--pretrain", type=int, default=1200, help="dense pretraining iterations")
    ap.add_argument("--budget", type=int, default=900, help="iterations after pretraining, for every method")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "quality")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override for the compressed runs (e.g. a longer schedule), repeatable")
    args = ap.parse_args(argv)
    from graphprune.compress.recipe import load_recipe

    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    t_start = time.perf_counter()
    scores: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    at_prune: dict[str, list[float]] = {m: [] for m in methods}  # PSNR right after the prune step
    dense_scores, bicubic, sizes = [], None, {}
    for seed in seeds:
        base = args.out / f"seed{seed}"
        dense = run("demo_x4_train.yaml", base / "dense",
                    [f"seed={seed}", f"stages.pretrain.total_iter={args.pretrain}"])
        dense_file = base / "dense" / "dense.safetensors"
        dense_scores.append(dense["dense"]["metrics"]["demo"]["psnr"])
        bicubic = dense["bicubic"]["demo"]
        for method in methods:
            recipe = "demo_x4_srp.yaml" if method == "srp" else "demo_x4_assl.yaml"
            common = [f"seed={seed}", f"model.checkpoint={dense_file}", "stages.pretrain=null",
                      f"prune.ratio={args.ratio}", *args.set]
            if method in ("assl", "srp"):
                reg_iters = load_recipe(ROOT / "recipes" / recipe, common, check_files=False).regularize_iters
                extra = [f"stages.finetune.total_iter={args.budget - reg_iters}"]
            else:
                extra = [f"prune.method={method}", "stages.regularize=null", f"stages.finetune.total_iter={args.budget}"]
            rep = run(recipe, base / method, common + extra)
            m = rep["pruned"]["metrics"]["demo"]
            scores[method].append((m["psnr"], m["ssim"]))
            at_prune[method].append((rep.get("pruned_before_finetune") or {}).get("demo", {}).get("psnr", float("nan")))
            sizes[method] = (rep["pruned"]["params"], rep["pruned"]["mult_adds"])
            print(f"seed {seed} {method:8s} {m['psnr']:.3f} dB / {m['ssim']:.4f}  "
                  f"({sum(s['iterations'] for s in rep['stages'] if s['name'] != 'pretrain')} iterations)", flush=True)

    info = machine_info()
    print(f"\n# quality: demo protocol x4, LEDSR F32R4 -> ratio {args.ratio}, budget {args.budget} iterations "
          f"after {args.pretrain} of dense pretraining, seeds {seeds}" + (f", overrides {args.set}" if args.set else ""))
    print(f"# machine: {info['cpu']}, {info['nproc']} cores, torch {info['torch']}, {info['date']}; "
          f"{time.perf_counter() - t_start:.0f} s")
    print(f"bicubic: {bicubic['psnr']:.2f} dB / {bicubic['ssim']:.4f}; dense: "
          f"{statistics.mean(dense_scores):.2f} ± {statistics.pstdev(dense_scores):.2f} dB")
    print("| method | params | Mult-Adds | PSNR right after pruning (dB) | PSNR (dB) mean ± std | SSIM mean ± std | per seed |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for method in methods:
        p = [s[0] for s in scores[method]]
        q = [s[1] for s in scores[method]]
        params, macs = sizes[method]
        print(f"| {method} | {params:,} | {macs / 1e9:.2f} G | {statistics.mean(at_prune[method]):.2f} | "
              f"{statistics.mean(p):.3f} ± {statistics.pstdev(p):.3f} | "
              f"{statistics.mean(q):.4f} ± {statistics.pstdev(q):.4f} | {', '.join(f'{x:.2f}' for x in p)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
