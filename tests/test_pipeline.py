"""The compress pipeline end to end at a tiny size, its resume, its dry run and its errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphprune as gp
from graphprune.compress.pipeline import Pipeline, PipelineError
from graphprune.compress.recipe import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.kwargs={n_feats: 8, n_resblocks: 2}", "data.train.batch_size=2", "data.train.patch_size=12",
        "stages.pretrain.total_iter=6", "stages.finetune.total_iter=4", "prune.schedule.every=1",
        "prune.schedule.delta=0.25", "prune.schedule.stabilize=2", "train.val_freq=4", "train.print_freq=2",
        "train.save_checkpoint_freq=3"]


@pytest.mark.parametrize("recipe,extra", [("demo_x4_assl", ["prune.assl.ssa_iters=2"]), ("demo_x4_srp", [])])
def test_demo_pipeline_end_to_end(tmp_path, recipe, extra):
    r = load_recipe(ROOT / "recipes" / f"{recipe}.yaml", TINY + extra)
    result = Pipeline(r, tmp_path).run()
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("recipe", "dense", "pruned", "groups", "stages", "bicubic", "pruned_before_finetune"):
        assert key in report
    for side in ("dense", "pruned"):
        assert {"params", "flops", "mult_adds", "metrics"} <= set(report[side])
        assert set(report[side]["metrics"]["demo"]) == {"psnr", "ssim"}
    assert report["pruned"]["params"] < 0.5 * report["dense"]["params"]
    assert set(report["pruned_before_finetune"]["demo"]) == {"psnr", "ssim"}
    assert [s["name"] for s in report["stages"]][:2] == ["pretrain", "regularize"]
    assert all(g["kept"] == g["size"] // 2 for g in report["groups"] if g["prunable"])
    assert (tmp_path / "report.md").read_text().count("| pruned |") == 1
    model = gp.load(tmp_path / "model.safetensors").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 10, 10) * 255).shape == (1, 3, 40, 40)
    assert result["pruned"]["params"] == report["pruned"]["params"]


def test_existing_run_needs_resume_and_resume_finishes(tmp_path):
    r = load_recipe(ROOT / "recipes" / "demo_x4_srp.yaml", TINY)
    Pipeline(r, tmp_path).run()
    with pytest.raises(PipelineError, match="--resume"):
        Pipeline(r, tmp_path).run()
    again = Pipeline(r, tmp_path, resume=True).run()
    first = json.loads((tmp_path / "report.json").read_text())
    assert again["pruned"]["params"] == first["pruned"]["params"]


def test_interrupted_run_resumes_from_the_unfinished_stage(tmp_path):
    r = load_recipe(ROOT / "recipes" / "demo_x4_srp.yaml", TINY)
    p = Pipeline(r, tmp_path)

    def crash(*a, **k):
        raise KeyboardInterrupt

    p.regularize = crash
    with pytest.raises(KeyboardInterrupt):
        p.run()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["done"] == ["pretrain"]
    result = Pipeline(r, tmp_path, resume=True).run()
    assert [s["name"] for s in result["stages"]] == ["pretrain", "regularize", "prune", "finetune", "evaluate"]


def run_cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "compress.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_dry_run_shows_srpn_lite_size_without_data():
    out = run_cli("--recipe", "recipes/ledsr_x4_srp.yaml", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "623,682 params (623K), 35.8 G Mult-Adds" in out.stdout
    assert "warning: data.train.root" in out.stdout


def test_missing_dataset_stops_at_start_with_the_fix(tmp_path):
    out = run_cli("--recipe", "recipes/ledsr_x4_srp.yaml", "--out", str(tmp_path / "run"),
                  "--set", "model.checkpoint=null")
    assert out.returncode == 2
    assert "datasets/DF2K does not exist" in out.stderr and "data.train={type: demo}" in out.stderr
    assert not (tmp_path / "run").exists(), "nothing is written when the run cannot start"


def test_bad_override_exit_code_2():
    out = run_cli("--recipe", "recipes/demo_x4_assl.yaml", "--set", "prune.methd=srp", "--dry-run")
    assert out.returncode == 2 and "prune.methd" in out.stderr and "did you mean" in out.stderr


@pytest.mark.slow
def test_compress_under_torchrun_two_gloo_processes(tmp_path):
    """The whole pipeline with 2 CPU processes: rank 0 writes, the others wait at barriers."""
    sets = [a for o in TINY for a in ("--set", o)]
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29561",
                          str(ROOT / "tools" / "compress.py"), "--recipe", "recipes/demo_x4_srp.yaml", "--out",
                          str(tmp_path / "run"), "--device", "cpu", *sets],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("| pruned |") == 1, "only rank 0 prints the report"
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["pruned"]["params"] < report["dense"]["params"]


def test_report_tables_blocked_groups_and_reproducibility(tmp_path):
    """No evaluation sets still gives whole tables; blocked groups say why; the run can be repeated."""
    r = load_recipe(ROOT / "recipes" / "demo_x4_srp.yaml", TINY + ["eval.sets=[]", "data.val=[]", "prune.method=l1",
                                                                   "stages.regularize=null"])
    Pipeline(r, tmp_path, command="python tools/compress.py --recipe recipes/demo_x4_srp.yaml").run()
    md = (tmp_path / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ") or line.startswith("|---")][:4]
    assert table[0].startswith("| model | params | FLOPs (1×3×48×48 input) | Mult-Adds (1280×720) |")
    assert len({line.count("|") for line in table}) == 1, "every row has the header's columns"
    assert "No evaluation sets (eval.sets is empty): sizes only." in md
    assert "## Blocked groups (never pruned) and why" in md and "the interface is never pruned" in md
    stages = json.loads((tmp_path / "report.json").read_text())["stages"]
    assert f"; total {sum(s['seconds'] for s in stages):.1f} s of stages." in md, "the time is the stages' sum, not 0"
    rep = json.loads((tmp_path / "report.json").read_text())["reproducibility"]
    assert rep["command"] == "python tools/compress.py --recipe recipes/demo_x4_srp.yaml" and rep["seed"] == 0
    assert {"graphprune", "git_commit", "torch", "device", "threads", "date", "train_files_sha256"} <= set(rep)
    assert f"- train_files_sha256: `{rep['train_files_sha256']}`" in md
    for name in ("report.md", "report.json", "state.json", "model.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044, f"{name} is not readable by the group"
