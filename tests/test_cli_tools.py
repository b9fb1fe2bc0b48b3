"""The model-using commands as a user runs them: ``graphprune upscale | evaluate | export | flops | visualize``.

Every tool takes every kind of ``--model`` (a zoo name with ``--set``, ``timm:NAME``, ``module:factory``, a
pruned graphprune file, a spandrel checkpoint); upscaling tiled equals untiled; ``evaluate`` on a run's
``model.safetensors`` gives the numbers the run's own evaluation reported; every bad argument is one
line on stderr, exit code 2, and leaves the user's folder as it was. The commands run in-process
(``graphprune.cli.main``) from a folder holding a tiny user model (``tests/fixtures/mynet.py``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphprune import cli

ROOT = Path(__file__).resolve().parents[1]
SCALE = 4

#: kind -> the --model arguments (all x4 models; timm's resnet18 is no SR model)
KINDS = {
    "zoo": ["--model", "edsr_baseline_x4", "--set", "n_resblocks=1", "--set", "n_feats=8"],
    "timm": ["--model", "timm:resnet18"],
    "factory": ["--model", "mynet:factory"],
    "file": ["--model", "pruned.safetensors"],
    "spandrel": ["--model", "compact.pth"],
}


def _image(path: Path, h: int, w: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(rng.random((h, w, 3)), 0), 1)  # an image, not noise: PSNR means something
    Image.fromarray((smooth / smooth.max() * 255).astype("uint8")).save(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A user's folder: mynet.py, LR and HR images, a pruned graphprune file and a spandrel checkpoint."""
    d = tmp_path_factory.mktemp("user")
    (d / "mynet.py").write_text((ROOT / "tests" / "fixtures" / "mynet.py").read_text())
    sys.path.insert(0, str(d))
    import mynet
    from spandrel.architectures.Compact import Compact

    import graphprune as gp
    from graphprune.spec import make_spec

    torch.manual_seed(0)
    small, plan = gp.prune(mynet.factory(), torch.zeros(1, 3, 16, 16), 0.5)
    gp.save(small, d / "pruned.safetensors", make_spec(plan, model_spec={"factory": "mynet:factory", "kwargs": {}}))
    torch.save(Compact(num_feat=8, num_conv=2, upscale=SCALE).state_dict(), d / "compact.pth")
    (d / "lr").mkdir()
    (d / "hr").mkdir()
    for i, (h, w) in enumerate([(20, 28), (13, 17)]):
        _image(d / "lr" / f"{i:04d}.png", h, w, i)
    for i, (h, w) in enumerate([(64, 80), (48, 52)]):
        _image(d / "hr" / f"{i:04d}.png", h, w, 10 + i)
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut off")  # a download that stopped
    return d


@pytest.fixture
def user(folder, monkeypatch):
    monkeypatch.chdir(folder)
    return folder


def _snapshot(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if "__pycache__" not in p.parts}


def _run(argv, capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------ every tool, every kind
@pytest.mark.parametrize("kind", KINDS)
def test_flops_and_visualize_take_every_model_kind(user, capsys, kind, tmp_path):
    code, out, err = _run(["flops", *KINDS[kind]], capsys)
    assert code == 0, err
    assert "params" in out and ("mult-adds    -" in out) == (kind == "timm")
    code, out, err = _run(["visualize", *KINDS[kind], "--out", str(tmp_path / "g.json")], capsys)
    assert code == 0, err
    groups = json.loads((tmp_path / "g.json").read_text())["groups"]
    assert groups and (kind != "file" or any(g["kept"] < g["size"] for g in groups if g["kept"] is not None))


@pytest.mark.parametrize("kind", KINDS)
def test_upscale_and_evaluate_take_every_sr_model_kind(user, capsys, kind, tmp_path):
    code, out, err = _run(["upscale", *KINDS[kind], "--input", "lr", "--out", str(tmp_path / "up")], capsys)
    if kind == "timm":  # a classifier: refused before any work
        assert code == 2 and "not an image-to-image SR model" in err and len(err.splitlines()) == 1
        assert not (tmp_path / "up").exists()
        return
    assert code == 0, err
    from PIL import Image

    sizes = [Image.open(p).size for p in sorted((tmp_path / "up").iterdir())]
    assert sizes == [(28 * SCALE, 20 * SCALE), (17 * SCALE, 13 * SCALE)]
    code, out, err = _run(["evaluate", *KINDS[kind], "--hr", "hr", "--scale", str(SCALE), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    scores = result["models"][KINDS[kind][1]]["sets"]["hr"]
    assert set(scores) == {"psnr", "ssim"} and result["bicubic"]["hr"]["psnr"] > 20


@pytest.mark.parametrize("kind", KINDS)
def test_export_takes_every_model_kind(user, capsys, kind, tmp_path):
    out_file = tmp_path / "m.onnx"
    code, out, err = _run(["export", *KINDS[kind], "--out", str(out_file)], capsys)
    assert code == 0, err
    assert out_file.is_file() and "dynamic batch/height/width" in out and "ok: max rel error" in out
    assert len([ln for ln in out.splitlines() if ln.startswith("onnxruntime vs torch")]) == 2


# ------------------------------------------------------------------------------ upscale
def test_upscale_folder_tiled_equals_untiled(user, capsys, tmp_path):
    from graphprune.cli.model import load_model
    from graphprune.cli.upscale import Prepared, upscale_one

    whole, tiled = tmp_path / "whole", tmp_path / "tiled"
    assert _run(["upscale", "--model", "mynet:factory", "--input", "lr", "--out", str(whole)], capsys)[0] == 0
    assert _run(["upscale", "--model", "mynet:factory", "--input", "lr", "--out", str(tiled), "--tile", "6",
                 "--overlap", "4"], capsys)[0] == 0
    names = sorted(p.name for p in whole.iterdir())
    assert names == ["0000.png", "0001.png"] == sorted(p.name for p in tiled.iterdir())
    for n in names:  # 8-bit files identical
        assert (whole / n).read_bytes() == (tiled / n).read_bytes()
    net = Prepared(load_model("mynet:factory").model, "cpu")  # and the float outputs within 1e-5
    for image in sorted((user / "lr").iterdir()):
        a = upscale_one(net, image, SCALE, 1.0, None, "cpu", "mynet:factory")
        b = upscale_one(net, image, SCALE, 1.0, {"size": 6, "overlap": 4}, "cpu", "mynet:factory")
        assert a.shape == b.shape and (a - b).abs().max() < 1e-5


def test_upscale_never_overwrites_without_the_flag(user, capsys, tmp_path):
    out = tmp_path / "up"
    argv = ["upscale", "--model", "mynet:factory", "--input", "lr/*.png", "--out", str(out)]
    assert _run(argv, capsys)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, err = _run(argv, capsys)
    assert code == 2 and "exists (and 1 more); pass --overwrite" in err and len(err.splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert _run([*argv, "--overwrite", "--channels-last"], capsys)[0] == 0


# ------------------------------------------------------------------------------ evaluate
def test_evaluate_a_run_equals_the_runs_own_evaluation(user, capsys, tmp_path):
    """``evaluate`` on a compress run's model.safetensors (a user's factory, 0-255 recipe) reports the
    run's own figures: same data, same convention, the value range read from the file."""
    from graphprune.compress.pipeline import Pipeline
    from graphprune.compress.recipe import load_recipe

    recipe = {"name": "t", "scale": SCALE, "rgb_range": 255, "model": {"name": "mynet:factory"},
              "data": {"train": {"type": "folder", "hr_dir": "hr", "patch_size": 8, "batch_size": 2, "num_workers": 0}},
              "eval": {"sets": [{"type": "folder", "hr_dir": "hr"}]}, "prune": {"method": "l1", "ratio": 0.5},
              "stages": {"pretrain": {"total_iter": 2, "optim": {"type": "Adam", "lr": 1.0e-3}},
                         "finetune": {"total_iter": 2, "optim": {"type": "Adam", "lr": 1.0e-3}}},
              "train": {"print_freq": 100, "save_checkpoint_freq": 100}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    Pipeline(load_recipe(tmp_path / "r.yaml"), tmp_path / "run", device="cpu").run()
    capsys.readouterr()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    code, out, err = _run(["evaluate", "--model", str(tmp_path / "run" / "model.safetensors"), "--model",
                           str(tmp_path / "run" / "dense.safetensors"), "--hr", "hr", "--scale", str(SCALE), "--json",
                           "--csv", str(tmp_path / "scores.csv")], capsys)
    assert code == 0, err
    models = json.loads(out)["models"]
    pruned, dense = (models[str(tmp_path / "run" / f)] for f in ("model.safetensors", "dense.safetensors"))
    assert pruned["sets"]["hr"] == report["pruned"]["metrics"]["hr"]
    assert dense["sets"]["hr"] == report["dense"]["metrics"]["hr"]
    assert (pruned["params"], pruned["mult_adds"]) == (report["pruned"]["params"], report["pruned"]["mult_adds"])
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert rows[0] == "model,set,image,psnr,ssim" and len(rows) == 1 + 2 * 2


def test_evaluate_table_side_by_side_and_sr_images(user, capsys, tmp_path):
    code, out, err = _run(["evaluate", "--model", "mynet:factory", "--model", "pruned.safetensors", "--hr", "hr",
                           "--scale", str(SCALE), "--save-sr", str(tmp_path / "sr")], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["x4", "Params", "Mult-Adds", "hr"]
    assert [ln.split()[0] for ln in lines[1:4]] == ["Bicubic", "mynet:factory", "pruned.safetensors"]
    assert sorted(p.name for p in (tmp_path / "sr" / "pruned" / "hr").iterdir()) == ["0000.png", "0001.png"]


def test_evaluate_benchmark_layout(user, capsys, tmp_path):
    import shutil

    for name in ("Set5", "Set14"):
        shutil.copytree(user / "hr", tmp_path / "benchmark" / name / "HR")
    code, out, err = _run(["evaluate", "--model", "mynet:factory", "--sets", "Set5,Set14", "--root", str(tmp_path),
                           "--scale", str(SCALE), "--json"], capsys)
    assert code == 0, err
    sets = json.loads(out)["models"]["mynet:factory"]["sets"]
    assert list(sets) == ["Set5", "Set14"] and sets["Set5"] == sets["Set14"]


# ------------------------------------------------------------------------------ bad arguments
BAD = [
    (["upscale"], "the following arguments are required: --model, --input"),
    (["upscale", "--model", "nosuch_x4", "--input", "lr"], "'nosuch_x4' is not a registered model"),
    (["upscale", "--model", "mynet:factory", "--input", "nowhere"], "--input nowhere: no such file or folder"),
    (["upscale", "--model", "missing.safetensors", "--input", "lr"], "missing.safetensors: no such file"),
    (["upscale", "--model", "pruned.safetensors", "--set", "ch=4", "--input", "lr"], "architecture is fixed"),
    (["upscale", "--model", "mynet:factory", "--set", "ch", "--input", "lr"], "expected KEY=VALUE"),
    (["upscale", "--model", "mynet:factory", "--set", "depth=2", "--input", "lr"], "do not fit mynet:factory"),
    (["upscale", "--model", "mynet:factory", "--input", "lr", "--tile", "0"], "expected a positive integer"),
    (["upscale", "--model", "mynet:factory", "--input", "lr", "--half", "--device", "cpu"], "--half needs a CUDA"),
    (["upscale", "--model", "mynet:untraceable_nosuch", "--input", "lr"], "has no 'untraceable_nosuch'"),
    (["upscale", "--model", "mynet:factory", "--input", "mynet.py"], "--input mynet.py: not an image"),
    (["upscale", "--model", "mynet:factory", "--input", "broken.png"], "broken.png: not an image PIL can read"),
    (["upscale", "--model", "mynet:factory", "--input", "*.png"], "broken.png: not an image PIL can read"),
    (["evaluate", "--model", "mynet:factory", "--hr", "hr", "--scale", "2"], "is an x4 model; use --scale 4"),
    (["evaluate", "--model", "mynet:factory", "--sets", "Set5", "--root", "nowhere", "--scale", "4"],
     "Set5 HR folder not found"),
    (["evaluate", "--model", "mynet:factory", "--hr", "hr", "--sets", "Set5", "--scale", "4"], "not allowed with"),
    (["evaluate", "--model", "timm:resnet18", "--hr", "hr", "--scale", "4"], "not an image-to-image SR model"),
    (["evaluate", "--model", "mynet:factory", "--model", "mynet:factory", "--hr", "hr", "--scale", "4"],
     "--model given twice"),
    (["export", "--model", "mynet:factory", "--out", "m.txt"], "must end in .onnx"),
    (["export", "--model", "mynet:factory", "--out", "m.onnx", "--input", "64x64"], "expected a shape"),
    (["export", "--model", "pruned.safetensors", "--out", "lr/0000.png.onnx", "--set", "x=1"], "architecture is fixed"),
    (["flops", "--model", "timm:resnet_nosuch"], "is not a timm model"),
    (["flops", "--model", "nomodule_here:factory"], "cannot import module 'nomodule_here'"),
    (["flops", "--model", "mynet.py"], "--model mynet.py: not a model file"),
    (["flops", "--model", "mynet:factory", "--hr", "720"], "expected HxW"),
    (["visualize", "--model", "mynet:factory", "--out", "g.txt"], "--out must end in one of"),
    (["visualize", "--recipe", "missing.yaml", "--out", "g.html"], "cannot read the recipe"),
    (["nosuch"], "unknown command 'nosuch'"),
    (["compress", "--recipe"], "expected one argument"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_arguments_one_line_exit_2_nothing_written(user, capsys, argv, message):
    before = _snapshot(user)
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors exit from parse_args
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err, err
    assert len(err.splitlines()) == 1, err
    assert _snapshot(user) == before


def test_cuda_device_without_cuda(user, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = _run(["upscale", "--model", "mynet:factory", "--input", "lr", "--device", "cuda"], capsys)
    assert code == 2 and "no CUDA device" in err


def test_usage_lists_the_commands(capsys):
    assert cli.main([]) == 2 and cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


def test_the_default_example_input_is_the_recipes():
    """One source for the analysis' default example input: the commands use the recipes' own."""
    from graphprune.cli.model import DEFAULT_INPUT
    from graphprune.compress.recipe import DEFAULT_EXAMPLE_INPUT

    assert DEFAULT_INPUT is DEFAULT_EXAMPLE_INPUT
