"""Tests of the ``sr_models`` zoo: registry, factory, checkpoints, forward, fx tracing, parameter counts.

Expected parameter counts are derived by formula from the layer shapes (EDSR family, RCAN, SRResNet)
or are the figures published with each model (EDSR-PyTorch README, SRP table, the IMDN / PAN / SwinIR /
CARN papers). Heavy models run forward with reduced depth; their full size is only counted, on the
``meta`` device.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.fx
import torch.nn as nn

import sr_models
from sr_models import create_model, is_model, list_models, register_model

ALL_MODELS = list_models()
SCALES = (2, 3, 4)

# Reduced depth/width for the forward-pass tests of heavy models (prefix -> overrides).
REDUCED = {
    "edsr_x": dict(n_resblocks=2, n_feats=32),
    "ledsr_": dict(n_resblocks=2, n_feats=32),
    "rirsr_": dict(n_resgroups=2, n_resblocks=2, n_feats=32),
    "rcan_": dict(n_resgroups=2, n_resblocks=2),
}
# A width override per family prefix (SwinIR's width must stay divisible by its 6 heads).
WIDTH = {"swinir_": dict(embed_dim=24)}


def _kwargs(name: str, table: dict, default: dict | None = None) -> dict:
    return next((dict(v) for k, v in table.items() if name.startswith(k)), dict(default or {}))


def _small(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **_kwargs(name, REDUCED)).eval()


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _count(name: str, **kwargs) -> int:
    with torch.device("meta"):
        return _n_params(create_model(name, **kwargs))


def _scale_of(name: str) -> int:
    return int(name.rsplit("_x", 1)[1])


# ----------------------------------------------------------------------------------------- registry
def test_every_family_has_three_scales():
    families = {n.rsplit("_x", 1)[0] for n in ALL_MODELS}
    assert families == {
        "edsr_baseline", "edsr", "ledsr_f256r16", "rirsr_g10r20f96", "rcan", "carn", "carn_m", "imdn",
        "pan", "srresnet", "swinir_light",
    }
    assert ALL_MODELS == sorted(f"{f}_x{s}" for f in families for s in SCALES)
    assert list_models("ledsr_*") == ["ledsr_f256r16_x2", "ledsr_f256r16_x3", "ledsr_f256r16_x4"]
    assert is_model("rcan_x4") and not is_model("rcan_x5")


def test_unknown_model_lists_close_matches():
    with pytest.raises(ValueError, match="edsr_baseline_x2"):
        create_model("edsr_baselin_x2")


def test_duplicate_registration_raises():
    def edsr_baseline_x2(**kwargs):  # same name as a registered model
        return nn.Identity()

    with pytest.raises(ValueError, match="edsr_baseline_x2"):
        register_model(edsr_baseline_x2)
    assert sr_models.model_entrypoint("edsr_baseline_x2").__module__ == "sr_models.edsr"


def test_unknown_kwarg_names_variant_and_valid_args():
    with pytest.raises(TypeError, match=r"edsr_baseline_x2.*n_feat\b.*valid arguments: .*n_feats"):
        create_model("edsr_baseline_x2", n_feat=16)


def test_scale_override_must_match_name():
    assert create_model("pan_x3", scale=3).scale == 3
    with pytest.raises(ValueError, match="use pan_x4"):
        create_model("pan_x3", scale=4)


def test_none_overrides_are_dropped():
    m = create_model("edsr_baseline_x2", n_resblocks=1, n_feats=None, res_scale=None)
    assert m.gp_spec == {"name": "edsr_baseline_x2", "kwargs": {"n_resblocks": 1}}
    assert m.head[0].out_channels == 64


# ------------------------------------------------------------------------------ per model behaviour
@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_shape(name):
    model = _small(name)
    s = _scale_of(name)
    assert model.scale == s and isinstance(model.scale, int)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 12, 12) * model.rgb_range)
    assert y.shape == (1, 3, 12 * s, 12 * s)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fx_trace_matches_model(name):
    model = _small(name)
    traced = torch.fx.symbolic_trace(model)
    s = _scale_of(name)
    for hw in ((12, 12), (9, 14)):  # a traced graph must not bake in the input size
        x = torch.rand(2, 3, *hw) * model.rgb_range
        with torch.no_grad():
            y, y_fx = model(x), traced(x)
        assert y_fx.shape == (2, 3, hw[0] * s, hw[1] * s)
        torch.testing.assert_close(y_fx, y, rtol=1e-5, atol=1e-4 * model.rgb_range)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_gp_spec_rebuilds_same_architecture(name):
    kwargs = _kwargs(name, REDUCED)
    model = create_model(name, **kwargs)
    assert model.gp_spec == {"name": name, "kwargs": kwargs}
    assert model.rgb_range in (1, 255)
    spec = model.gp_spec
    rebuilt = create_model(spec["name"], **spec["kwargs"])
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


@pytest.mark.parametrize("name", ALL_MODELS)
def test_width_override_changes_params(name):
    width = _kwargs(name, WIDTH, dict(n_feats=16))
    assert _count(name, **width) < _count(name)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_checkpoint_round_trip(name, fmt, tmp_path):
    src, kwargs = _small(name, seed=1), _kwargs(name, REDUCED)
    path = tmp_path / f"w.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    else:
        torch.save(src.state_dict(), path)
    torch.manual_seed(2)
    dst = create_model(name, checkpoint=path, **kwargs)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


@pytest.mark.parametrize("wrap", ["state_dict", "model", "params", "module_prefix"])
def test_checkpoint_wrappers_and_prefixes(wrap, tmp_path):
    src = _small("edsr_baseline_x2", seed=1)
    sd = src.state_dict()
    obj = {f"module.{k}": v for k, v in sd.items()} if wrap == "module_prefix" else {wrap: sd, "epoch": 3}
    torch.save(obj, tmp_path / "w.pt")
    dst = create_model("edsr_baseline_x2", checkpoint=tmp_path / "w.pt")
    assert torch.equal(dst.head[0].weight, src.head[0].weight)


def test_checkpoint_missing_file(tmp_path):
    from graphprune.loaders import CheckpointError

    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        create_model("imdn_x2", checkpoint=tmp_path / "nope.safetensors")


def test_checkpoint_key_mismatch_lists_keys(tmp_path):
    sd = create_model("edsr_baseline_x2", n_resblocks=2).state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["tail.1.bias"]
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(RuntimeError, match=r"1 missing keys.*tail\.1\.bias.*1 unexpected keys.*extra\.weight"):
        create_model("edsr_baseline_x2", n_resblocks=2, checkpoint=tmp_path / "w.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["edsr_baseline_x2", "carn_m_x3", "imdn_x4", "pan_x4", "swinir_light_x3"])
def test_cuda_forward(name):
    model = _small(name).cuda()
    x = torch.rand(1, 3, 10, 12, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(model(x).cpu(), model.cpu()(x.cpu()), rtol=1e-3, atol=1e-3 * model.rgb_range)


# ------------------------------------------------------------------------------------ layer layout
def test_edsr_layer_names_follow_edsr_pytorch():
    names = [n for n, m in create_model("edsr_baseline_x4").named_modules() if isinstance(m, nn.Conv2d)]
    assert names[:5] == ["sub_mean", "add_mean", "head.0", "body.0.body.0", "body.0.body.2"]
    assert names[-4:] == ["body.16", "tail.0.0", "tail.0.2", "tail.1"]
    ms = create_model("edsr_baseline_x2").sub_mean
    assert not any(p.requires_grad for p in ms.parameters())
    torch.testing.assert_close(ms.bias, -255 * torch.tensor([0.4488, 0.4371, 0.4040]))


def test_ledsr_conv_registration_order_matches_assl_indices():
    with torch.device("meta"):
        model = create_model("ledsr_f256r16_x2")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert names[:3] == ["sub_mean", "add_mean", "head.0"]
    assert [names.index(f"body.{i}.body.0") for i in range(16)] == [3 + 2 * i for i in range(16)]
    assert names.index("body.16") == 35 and names.index("tail.0") == 36 and len(names) == 37
    assert isinstance(model.tail[1], nn.PixelShuffle)


def test_rirsr_and_rcan_layout():
    rir = create_model("rirsr_g10r20f96_x2", n_resgroups=2, n_resblocks=3)
    assert isinstance(rir.body[1].body[2].body[2], nn.Conv2d) and isinstance(rir.body[2], nn.Conv2d)
    rcan = create_model("rcan_x2", n_resgroups=2, n_resblocks=3)
    assert isinstance(rcan.body[0].body[0].body[3].conv_du[3], nn.Sigmoid)


# ------------------------------------------------------------------------------- parameter counts
def _conv(cin: int, cout: int, k: int = 3, groups: int = 1, bias: bool = True) -> int:
    return cout * (cin // groups) * k * k + (cout if bias else 0)


MEANSHIFT = 2 * _conv(3, 3, 1)


def _upsampler(f: int, s: int) -> int:
    return _conv(f, 9 * f) if s == 3 else int(math.log2(s)) * _conv(f, 4 * f)


def _edsr_params(f: int, r: int, s: int) -> int:
    return MEANSHIFT + _conv(3, f) + (2 * r + 1) * _conv(f, f) + _upsampler(f, s) + _conv(f, 3)


def _ledsr_params(f: int, s: int, r: int = 16) -> int:
    return MEANSHIFT + _conv(3, f) + (2 * r + 1) * _conv(f, f) + _conv(f, 3 * s * s)


def _rir_params(f: int, g: int, r: int, s: int, block_extra: int = 0) -> int:
    group = r * (2 * _conv(f, f) + block_extra) + _conv(f, f)
    return MEANSHIFT + _conv(3, f) + g * group + _conv(f, f) + _upsampler(f, s) + _conv(f, 3)


@pytest.mark.parametrize("s, published", [(2, 1.37), (3, 1.55), (4, 1.52)])
def test_edsr_baseline_params(s, published):
    n = _count(f"edsr_baseline_x{s}")
    assert n == _edsr_params(64, 16, s)
    assert round(n / 1e6, 2) == published  # EDSR-PyTorch README


@pytest.mark.parametrize("s", SCALES)
def test_edsr_paper_params(s):
    assert _count(f"edsr_x{s}") == _edsr_params(256, 32, s)


@pytest.mark.parametrize("s, dense_m, lite_k", [(2, 19.51, 609), (3, 19.54, 615), (4, 19.59, 623)])
def test_ledsr_params(s, dense_m, lite_k):
    name = f"ledsr_f256r16_x{s}"
    dense, lite = _count(name), _count(name, n_feats=45)
    assert dense == _ledsr_params(256, s) == 297 * 256**2 + 61 * 256 + 27 * 256 * s * s + 3 * s * s + 24
    assert round(dense / 1e6, 2) == dense_m
    assert lite == _ledsr_params(45, s) and lite // 1000 == lite_k  # SRPN-Lite (SRP table truncates: 623,682)


@pytest.mark.parametrize("s", SCALES)
def test_rirsr_params(s):
    n = _count(f"rirsr_g10r20f96_x{s}")
    assert n == _rir_params(96, 10, 20, s)
    if s == 2:
        assert round(n / 1e6, 2) == 34.47  # "about 34.5M" (SRP notes)


@pytest.mark.parametrize("s", SCALES)
def test_rcan_params(s):
    f, red = 64, 16
    ca = _conv(f, f // red, 1) + _conv(f // red, f, 1)
    n = _count(f"rcan_x{s}")
    assert n == _rir_params(f, 10, 20, s, block_extra=ca)
    if s == 2:
        assert round(n / 1e6, 2) == 15.44  # RCAN paper: ~15.4M


@pytest.mark.parametrize("s", SCALES)
def test_srresnet_params(s):
    f = 64
    block = 2 * _conv(f, f, bias=False) + 2 * 2 * f + f  # two convs, two BNs (weight, bias), PReLU
    up = [_conv(f, 9 * f) + f] if s == 3 else [_conv(f, 4 * f) + f] * int(math.log2(s))
    expected = _conv(3, f, 9) + f + 16 * block + _conv(f, f, bias=False) + 2 * f + sum(up) + _conv(f, 3, 9)
    assert _count(f"srresnet_x{s}") == expected


@pytest.mark.parametrize(
    "name, published_k",
    [
        ("imdn_x2", 694), ("imdn_x3", 703), ("imdn_x4", 715),  # IMDN paper, Table 3
        ("pan_x2", 261), ("pan_x3", 261), ("pan_x4", 272),  # PAN paper
        ("swinir_light_x2", 910), ("swinir_light_x3", 918), ("swinir_light_x4", 930),  # SwinIR paper
    ],
)
def test_published_param_counts(name, published_k):
    assert round(_count(name) / 1e3) == published_k


@pytest.mark.parametrize("name, published_k", [("carn_x2", 1592), ("carn_m_x2", 412)])
def test_carn_multi_scale_params(name, published_k):
    # The CARN paper counts the multi-scale model (x2, x3 and x4 upsamplers together).
    n = _count(name, multi_scale=True)
    assert abs(n / 1e3 - published_k) < 0.01 * published_k
    assert _count(name) < n  # single scale holds one upsampler
