"""Every user error of tools/compress.py: one line naming the problem and the fix, exit code 2, no file.

Each case runs the CLI in-process (``graphprune.compress.cli.main``) from a folder holding a tiny
user model (``mynet.py``), broken checkpoints and small images, as a new user would; the folder's
contents must be the same afterwards. Two cases run as real processes (exit codes, Ctrl-C).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphprune.compress import cli

ROOT = Path(__file__).resolve().parents[1]

MYNET = ROOT / "tests" / "fixtures" / "mynet.py"  # copied into the user's folder

BASE = {"name": "t", "seed": 0, "scale": 4, "model": {"name": "mynet:factory"},
        "data": {"train": {"type": "demo", "patch_size": 12, "batch_size": 2, "num_workers": 0}},
        "eval": {"sets": [{"type": "demo"}]}, "prune": {"method": "l1", "ratio": 0.5},
        "stages": {"pretrain": {"total_iter": 2, "optim": {"type": "Adam", "lr": 1.0e-3}},
                   "finetune": {"total_iter": 2, "optim": {"type": "Adam", "lr": 1.0e-3}}},
        "train": {"print_freq": 1, "save_checkpoint_freq": 1}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A user's folder: mynet.py, a recipe, broken checkpoints, an HR folder with one tiny image."""
    d = tmp_path_factory.mktemp("user")
    (d / "mynet.py").write_text(MYNET.read_text())
    (d / "base.yaml").write_text(yaml.safe_dump(BASE, sort_keys=False))
    (d / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    sys.path.insert(0, str(d))
    import mynet
    from safetensors.torch import save_file

    import graphprune as gp
    from graphprune.spec import make_spec
    net = mynet.factory()
    torch.save(net.state_dict(), d / "good.pt")
    (d / "truncated.pt").write_bytes((d / "good.pt").read_bytes()[:700])
    save_file(net.state_dict(), str(d / "good.safetensors"))
    (d / "truncated.safetensors").write_bytes((d / "good.safetensors").read_bytes()[:300])
    torch.save(net, d / "whole_model.pt")
    torch.save(mynet.Net(ch=16).state_dict(), d / "other_width.pt")
    small, plan = gp.prune(net, torch.zeros(1, 3, 16, 16), 0.5)
    gp.save(small, d / "pruned.safetensors", make_spec(plan, model_spec={"factory": "mynet:factory", "kwargs": {}}))
    from PIL import Image
    (d / "hr").mkdir()
    for i, (h, w) in enumerate([(200, 200), (40, 36)]):
        Image.fromarray((np.random.default_rng(i).random((h, w, 3)) * 255).astype("uint8")).save(d / "hr" / f"{i:04d}.png")
    return d


def _listing(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if "__pycache__" not in p.parts}


CASES = [  # (id, arguments after --recipe, the start of the one line)
    ("binary file as recipe", ["binary.yaml"],
     "error: binary.yaml: cannot read the recipe: it is not UTF-8 text (a binary file?)"),
    ("lr: fast", ["base.yaml", "--set", "stages.pretrain.optim.lr=fast"],
     "error: base.yaml: stages.pretrain.optim.lr: 'fast' is a string; expected a number"),
    ("ratio: half", ["base.yaml", "--set", "prune.ratio=half"],
     "error: base.yaml: prune.ratio: 'half' is a string; expected a number"),
    ("fractional iterations", ["base.yaml", "--set", "stages.pretrain.total_iter=12.5"],
     "error: base.yaml: stages.pretrain.total_iter: 12.5 is a number; expected an integer"),
    ("untraceable model", ["base.yaml", "--set", "model.name=mynet:untraceable"],
     "error: model.name: torch.fx cannot trace Untraceable"),
    ("truncated .pt", ["base.yaml", "--set", "model.checkpoint=truncated.pt"],
     "error: model.checkpoint: truncated.pt: truncated or corrupt checkpoint ("),
    ("truncated .safetensors", ["base.yaml", "--set", "model.checkpoint=truncated.safetensors"],
     "error: model.checkpoint: truncated.safetensors: not a readable safetensors file ("),
    ("pickled whole model", ["base.yaml", "--set", "model.checkpoint=whole_model.pt"],
     "error: model.checkpoint: whole_model.pt: this file pickles a whole model object; re-save its state_dict()"),
    ("graphprune file", ["base.yaml", "--set", "model.checkpoint=pruned.safetensors"],
     "error: model.checkpoint: pruned.safetensors is a pruned graphprune model; model.checkpoint takes dense"),
    ("weights of another width", ["base.yaml", "--set", "model.checkpoint=other_width.pt"],
     "error: model.checkpoint: other_width.pt does not fit Net: 5 tensors differ in shape, 0 missing, 0 "
     "unexpected (head.weight is [16, 3, 3, 3] in the file, [8, 3, 3, 3] in the model)"),
    ("--device cuda without CUDA", ["base.yaml", "--device", "cuda"],
     "error: --device cuda: this machine has no CUDA device"),
    ("HR smaller than the patch", ["base.yaml", "--set", "data.train={type: folder, hr_dir: hr, patch_size: 12}"],
     "error: data: hr/0001.png: its LR image is 10x9 at x4, smaller than the 12x12 training patch"),
    ("output of the wrong scale", ["base.yaml", "--set", "model.name=mynet:wrong_scale"],
     "error: model.name: mynet:wrong_scale turns a [1, 3, 48, 48] input into [1, 3, 96, 96]; an x4 SR model "
     "for this data must give [1, 3, 192, 192]"),
    ("output of the wrong scale, dry run", ["base.yaml", "--set", "model.name=mynet:wrong_scale", "--dry-run"],
     "error: model.name: mynet:wrong_scale turns a [1, 3, 48, 48] input into [1, 3, 96, 96]"),
    ("ignore glob matching nothing", ["base.yaml", "--set", "prune.ignore=['*taill*']"],
     "error: prune.ignore: '*taill*' matches no module (did you mean '*tail*'?); modules: head, body, tail, up"),
    ("ratios key matching nothing", ["base.yaml", "--set", "prune.ratios={'*bdy*': 0.3}"],
     "error: prune.ratios: '*bdy*' matches no module (did you mean '*body*'?); modules: head, body, tail"),
    ("ratios group id that does not exist", ["base.yaml", "--set", "prune.ratios={99: 0.3}"],
     "error: prune.ratios: group id(s) [99] do not exist"),
    ("leaf_modules glob matching nothing", ["base.yaml", "--set", "model.leaf_modules=['bod']"],
     "error: model.leaf_modules: 'bod' matches no module"),
    ("factory that is not there", ["base.yaml", "--set", "model.name=mynett:factory"],
     "error: base.yaml: model.name: cannot import module 'mynett'"),
]


@pytest.mark.parametrize("args, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_error_is_one_line_exit_2_and_writes_nothing(folder, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(folder)
    before = _listing(folder)
    code = cli.main(["--recipe", *args, "--out", "runs/x"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and err.startswith(expected), err
    assert _listing(folder) == before, "nothing is written when a run cannot start"


def test_factory_from_the_working_directory_records_its_pythonpath(folder, monkeypatch, capsys):
    """``mynet:factory`` from the folder holding mynet.py works (as with ``python -m``), and
    command.txt says which PYTHONPATH repeats the run."""
    monkeypatch.chdir(folder)
    assert cli.main(["--recipe", "base.yaml", "--out", "runs/ok", "--set", "stages.pretrain.total_iter=1",
                     "--set", "stages.finetune.total_iter=1"]) == 0, capsys.readouterr().err
    command = (folder / "runs/ok/command.txt").read_text()
    assert command.startswith(f"PYTHONPATH={folder} ") and "--recipe base.yaml" in command
    assert oct((folder / "runs/ok/report.md").stat().st_mode & 0o044) == oct(0o044), "group/others can read"
    assert oct((folder / "runs/ok/model.safetensors").stat().st_mode & 0o044) == oct(0o044)


def test_analyze_with_a_wrong_channel_count_is_one_line():
    import graphprune as gp
    import sr_models

    model = sr_models.create_model("ledsr_f256r16_x4", n_feats=8, n_resblocks=1)
    with pytest.raises(gp.TraceError) as e:
        gp.analyze(model, torch.zeros(1, 4, 48, 48))
    msg = str(e.value)
    assert "\n" not in msg and "tlparse" not in msg and msg.startswith("torch.fx cannot trace LEDSR")
    assert "channel" in msg, msg


def test_ctrl_c_saves_a_checkpoint_prints_the_resume_line_and_exits_130(folder, tmp_path):
    """SIGINT during training: the step finishes, a checkpoint is written, exit 130, and the printed
    command continues the run to the end."""
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "tools" / "compress.py"), "--recipe", "base.yaml", "--out", str(out),
           "--set", "stages.finetune.total_iter=100000"]
    p = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while not list((out / "finetune" / "checkpoints").glob("iter_*.pt")):
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.poll() is not None else "timeout"
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted; checkpoint saved: ") and "; resume with: " in line
    saved = Path(line.split("checkpoint saved: ")[1].split(";")[0])
    assert saved.is_file()
    resume = line.split("resume with: ")[1]
    assert resume.endswith(f"--out {out} --resume") and "--set stages.finetune.total_iter=100000" in resume
