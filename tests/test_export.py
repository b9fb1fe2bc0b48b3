"""ONNX export checked in onnxruntime: the zoo's SR nets and a pruned timm model, dense and pruned, at a
second batch and size; models whose graph cannot be dynamic are exported fixed-size and say why.

The small nets run in the default suite; the big ones (tens of millions of parameters, or SwinIR's
8-second trace) are slow tests.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import graphprune as gp
import sr_models
from graphprune.export import export_onnx

pytest.importorskip("onnxruntime")

BIG = {"edsr", "ledsr_f256r16", "rcan", "rirsr_g10r20f96", "swinir_light"}
FAMILIES = sorted({n.rsplit("_x", 1)[0] for n in sr_models.list_models()})


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in BIG else f for f in FAMILIES])
def test_zoo_sr_net_pruned_exports_and_runs_in_onnxruntime(family, tmp_path):
    model = sr_models.create_model(f"{family}_x2").eval()
    x = torch.rand(1, 3, 32, 32) * model.rgb_range
    pruned, _ = gp.prune(model, x, 0.5)
    out = export_onnx(pruned.eval(), x, tmp_path / "m.onnx")
    assert out.max_rel < 1e-4, out.checks
    if out.dynamic:  # the file ran at a second batch and size too
        assert [c.shape for c in out.checks] == [(1, 3, 32, 32), (2, 3, 36, 40)]
    else:  # only where the exporter's trace bakes sizes (SwinIR's window partition): said, not claimed
        assert family == "swinir_light" and "baked" in out.fixed_reason


def test_sizes_baked_by_the_trace_give_a_fixed_size_export_that_says_so(tmp_path):
    model = sr_models.create_model("swinir_light_x2", embed_dim=12, depths=(1,), num_heads=(2,)).eval()
    out = export_onnx(model, torch.rand(1, 3, 16, 16), tmp_path / "s.onnx")
    assert not out.dynamic and "baked sizes of [1, 3, 16, 16]" in out.fixed_reason
    assert [c.shape for c in out.checks] == [(1, 3, 16, 16)] and out.max_rel < 1e-4


class Guarded(nn.Module):
    """A size test in forward and a literal channel count: the pruned model is a guarded GraphModule."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.up = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 12, 3, padding=1), nn.PixelShuffle(2)

    def forward(self, x):
        h = self.a(x)
        n, _, height, width = h.shape
        if height % 8:
            h = nn.functional.pad(h, (0, 0, 0, 8 - height % 8))
        h = h.view(n, 16, -1).view(n, 16, h.shape[2], width)[:, :, :height]
        return self.up(self.b(h))


def test_guarded_graph_module_exports_fixed_size_naming_the_guard(tmp_path):
    pruned, _ = gp.prune(Guarded().eval(), torch.zeros(1, 3, 16, 16), 0.5)
    assert pruned.gp_graph_module
    out = export_onnx(pruned, torch.rand(1, 3, 16, 16), tmp_path / "g.onnx")
    assert not out.dynamic and "% 8 == 0" in out.fixed_reason and out.max_rel < 1e-5


def test_pruned_timm_model_from_a_file_exports_dynamic(tmp_path, capsys):
    from graphprune import cli
    from graphprune.io import build_model

    model = build_model({"timm": "resnet18"}).eval()
    pruned, _ = gp.prune(model, torch.zeros(1, 3, 64, 64), 0.5)
    gp.save(pruned, tmp_path / "r18.safetensors")
    assert cli.main(["export", "--model", str(tmp_path / "r18.safetensors"), "--out", str(tmp_path / "r18.onnx")]) == 0
    out = capsys.readouterr().out
    assert "dynamic batch/height/width" in out and "at [2, 3, 68, 72]" in out and "ok: max rel error" in out


def test_fp16_export_checked_against_float32(tmp_path):
    model = sr_models.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=16).eval()
    out = export_onnx(model, torch.rand(1, 3, 16, 16) * 255, tmp_path / "h.onnx", fp16=True)
    assert out.dynamic and 1e-6 < out.max_rel < 1e-2  # float16 rounding, well within its tolerance


def test_past_tolerance_exit_1_and_no_file(tmp_path, capsys):
    from graphprune import cli

    target = tmp_path / "m.onnx"
    code = cli.main(["export", "--model", "edsr_baseline_x2", "--set", "n_resblocks=1", "--out", str(target),
                     "--tolerance", "1e-12"])
    assert code == 1 and not target.exists() and "FAILED: max rel error" in capsys.readouterr().out



class Baked(nn.Module):
    """``int(h)``: the exporter's trace records the example's sizes as constants."""

    def __init__(self):
        super().__init__()
        self.conv, self.up = nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)

    def forward(self, x):
        n, _, h, w = x.shape
        return self.up(self.conv(x).reshape(int(n), 12, int(h), int(w)))


def test_a_size_the_file_refuses_prints_no_onnxruntime_log_lines(tmp_path, capfd):
    """The second-size check expects onnxruntime to fail on a baked graph: its C++ log stays silent."""
    out = export_onnx(Baked().eval(), torch.rand(1, 3, 8, 8), tmp_path / "b.onnx")
    assert not out.dynamic and "onnxruntime fails" in out.fixed_reason
    assert capfd.readouterr().err == ""
