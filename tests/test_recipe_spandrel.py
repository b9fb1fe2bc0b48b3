"""A recipe that names a downloaded checkpoint: ``model: {spandrel: path}`` (spandrel detects the architecture).

The checkpoint is made here (random weights of spandrel's SwinIR class, saved as a plain state dict, as
the authors release theirs); nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("spandrel")

import graphprune as gp  # noqa: E402
from graphprune.compress import cli  # noqa: E402

SWINIR = dict(upscale=4, img_size=16, window_size=8, img_range=1.0, embed_dim=24, depths=[2], num_heads=[4],
              mlp_ratio=2, upsampler="pixelshuffledirect", resi_connection="1conv")


def _recipe(**prune) -> dict:
    return {"name": "t", "seed": 0, "scale": 4, "rgb_range": 1, "model": {"spandrel": "swinir_x4.pth"},
            "data": {"train": {"type": "demo", "patch_size": 16, "batch_size": 2, "num_workers": 0}},
            "eval": {"sets": [{"type": "demo"}]},
            "prune": {"method": "l1", "ratio": 0.5, "example_input": [1, 3, 16, 16], **prune},
            "stages": {"finetune": {"total_iter": 2, "optim": {"type": "Adam", "lr": 1.0e-4}}},
            "train": {"print_freq": 1, "save_checkpoint_freq": 1}}


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    torch.save(SwinIR(**SWINIR).state_dict(), tmp_path / "swinir_x4.pth")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(folder: Path, recipe: dict) -> str:
    (folder / "r.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return "r.yaml"


def test_a_downloaded_checkpoint_is_pruned_saved_and_reloads_without_the_file(folder, capsys):
    assert cli.main(["--recipe", _write(folder, _recipe()), "--out", "runs/a"]) == 0, capsys.readouterr().err
    (folder / "swinir_x4.pth").unlink()  # the saved model names spandrel's architecture, not the file
    pruned = gp.load(folder / "runs/a/model.safetensors").eval()
    assert type(pruned).__name__ == "SwinIR" and pruned.conv_first.out_channels < 24
    with torch.no_grad():
        for h, w in ((16, 16), (20, 12)):  # the second size pads to the window in SwinIR's own forward
            assert pruned(torch.rand(1, 3, h, w)).shape == (1, 3, 4 * h, 4 * w)
    assert "swinir_x4.pth" in (folder / "runs/a/report.md").read_text()


def test_exact_only_prunes_no_group_a_layer_norm_reads(folder, capsys):
    assert cli.main(["--recipe", _write(folder, _recipe(exact_only=True)), "--out", "runs/b"]) == 0, \
        capsys.readouterr().err
    pruned = gp.load(folder / "runs/b/model.safetensors")
    assert pruned.conv_first.out_channels == 24  # the stream goes through LayerNorms: inexact, kept whole
    assert pruned.layers[0].residual_group.blocks[0].mlp.fc1.out_features == 24  # the MLP's hidden width is exact


@pytest.mark.parametrize("change, expected", [
    ({"model": {"spandrel": "nothere.pth"}}, "error: r.yaml: model.spandrel: nothere.pth: no such file"),
    ({"scale": 2}, "error: r.yaml: scale: 2 but swinir_x4.pth is a x4 SwinIR; use scale: 4"),
])
def test_a_wrong_checkpoint_is_one_line(folder, capsys, change, expected):
    recipe = _write(folder, {**_recipe(), **change})
    before = sorted(p.name for p in folder.iterdir())
    assert cli.main(["--recipe", recipe, "--out", "runs/c"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(expected), err
    assert sorted(p.name for p in folder.iterdir()) == before
