"""Loading what users have: checkpoint files, wrappers, official layouts, spandrel, and save/load with a spec.

Every bad input must raise one ``CheckpointError`` line naming the file, the problem and the fix; no
file's code may run; a spandrel model must rebuild from its JSON spec alone.
"""
import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune as gp
import sr_models
from graphprune.io import build_model, read_spec
from graphprune.loaders import CheckpointError, fit_prefix, load_spandrel, read_state_dict, unwrap_state_dict


def _sd(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "conv.bias": torch.randn(4, generator=g)}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _one_line_error(path, *needles):
    with pytest.raises(CheckpointError) as e:
        read_state_dict(path)
    msg = str(e.value)
    assert type(e.value) is CheckpointError and isinstance(e.value, ValueError)
    assert "\n" not in msg and str(path) in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


# --------------------------------------------------------------------------------------------------
# Wrappers, prefixes and formats


@pytest.mark.parametrize("wrap", ["params", "params_ema", "state_dict", "model", "net", "network_g",
                                  "single", "nested", "module_prefix", "raw"])
def test_wrappers_and_prefixes(wrap, tmp_path):
    sd = _sd()
    obj = {"raw": sd, "single": {"anything": sd}, "nested": {"state_dict": {"model": sd}, "epoch": 3},
           "module_prefix": {f"module.{k}": v for k, v in sd.items()}}.get(wrap, {wrap: sd, "epoch": 7, "iter": 10})
    torch.save(obj, tmp_path / "w.pth")
    assert _equal(read_state_dict(tmp_path / "w.pth"), sd)


def test_params_ema_preferred_over_params():
    ema, raw = _sd(1), _sd(2)
    assert _equal(unwrap_state_dict({"params": raw, "params_ema": ema}), ema)
    assert _equal(unwrap_state_dict({"params_ema": ema, "params": raw}), ema)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt", ".safetensors", ".bin"])
def test_formats_recognised_by_content(suffix, tmp_path):
    """A Lightning-style .ckpt keeps non-tensor entries beside ``state_dict``; a safetensors file named .bin loads."""
    from safetensors.torch import save_file

    sd, path = _sd(), tmp_path / f"w{suffix}"
    if suffix in (".safetensors", ".bin"):
        save_file(sd, str(path))
    else:
        torch.save({"state_dict": sd, "epoch": 3, "hyper_parameters": {"lr": 1e-3}}, path)
    assert _equal(read_state_dict(path), sd)


def test_fit_prefix_only_when_the_model_lacks_it():
    sd = {"model.head.w": torch.ones(1), "model.tail.w": torch.ones(1)}
    assert set(fit_prefix(sd, {"head.w", "tail.w"})) == {"head.w", "tail.w"}
    assert set(fit_prefix(sd, {"model.head.w", "model.tail.w"})) == set(sd)  # the model's own child
    assert set(fit_prefix({"a.x": torch.ones(1), "b.y": torch.ones(1)}, {"x", "y"})) == {"a.x", "b.y"}


# --------------------------------------------------------------------------------------------------
# Bad input: one line each


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope.pth", "not found")


def test_empty_file(tmp_path):
    (tmp_path / "e.pth").write_bytes(b"")
    _one_line_error(tmp_path / "e.pth", "empty")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(suffix, tmp_path):
    from safetensors.torch import save_file

    good = tmp_path / f"good{suffix}"
    save_file(_sd(), str(good)) if suffix == ".safetensors" else torch.save(_sd(), good)
    data = good.read_bytes()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data[: len(data) // 2])
    _one_line_error(bad, "corrupt or truncated" if suffix == ".safetensors" else "truncated or corrupt", "get it again")


def test_garbage_file(tmp_path):
    (tmp_path / "g.pt").write_bytes(b"\x00\x01 not a checkpoint " * 10)
    _one_line_error(tmp_path / "g.pt", "corrupt")


def test_bad_safetensors_header_is_not_a_bare_safetensor_error(tmp_path):
    bad = tmp_path / "h.safetensors"
    bad.write_bytes((64).to_bytes(8, "little") + b"{" + b"x" * 80)
    _one_line_error(bad, "safetensors")


def test_pickled_whole_model(tmp_path):
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3)), tmp_path / "whole.pt")
    _one_line_error(tmp_path / "whole.pt", "pickles a whole model object", "re-save its state_dict()")


def test_torchscript_archive(tmp_path):
    torch.jit.save(torch.jit.trace(nn.Conv2d(3, 4, 1), torch.zeros(1, 3, 4, 4)), str(tmp_path / "ts.pt"))
    _one_line_error(tmp_path / "ts.pt", "TorchScript archive", "state_dict()")


def test_graphprune_file(tmp_path):
    m = sr_models.create_model("edsr_baseline_x2", n_feats=8, n_resblocks=1)
    path = gp.save(m, tmp_path / "m.safetensors")
    _one_line_error(path, "graphprune model file", "graphprune.load")


def test_no_tensors(tmp_path):
    torch.save({"epoch": 3, "lr": [0.1]}, tmp_path / "meta.pt")
    _one_line_error(tmp_path / "meta.pt", "no state dict found")


# --------------------------------------------------------------------------------------------------
# Files that pickle a module beside their weights: read the weights, run none of the file's code

_OFFICIAL = textwrap.dedent("""
    import pathlib
    pathlib.Path({marker!r}).write_text("imported")   # any import of this module leaves a mark
    import torch
    from torch import nn

    class LEDSR(nn.Module):   # stands for the official src/model/ledsr.py class
        def __init__(self):
            super().__init__()
            self.head = nn.Sequential(nn.Conv2d(3, 4, 3))
""")


def _official_file(tmp_path, payload: str):
    """Write, in another process, a file holding a pickled official-code module (``model.ledsr.LEDSR``)."""
    pkg = tmp_path / "official" / "model"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    marker, out = tmp_path / "marker.txt", tmp_path / "ckpt.pt"
    (pkg / "ledsr.py").write_text(_OFFICIAL.format(marker=str(marker)))
    code = (f"import sys, torch; sys.path.insert(0, {str(pkg.parent)!r}); "
            f"from model.ledsr import LEDSR; m = LEDSR(); torch.manual_seed(0); obj = {payload}; "
            f"torch.save(obj, {str(out)!r})")
    subprocess.run([sys.executable, "-c", code], check=True)
    marker.unlink()
    return out, marker, pkg.parent


def test_assl_layout_reads_weights_without_importing_the_arch(tmp_path, monkeypatch):
    """ASSL/SRP save ``{'state_dict': ..., 'arch': model}``: the weights are read, the class never imported."""
    path, marker, root = _official_file(tmp_path, "{'state_dict': m.state_dict(), 'arch': m}")
    monkeypatch.syspath_prepend(str(root))  # importable: if anything imported it, the marker would appear
    sd = read_state_dict(path)
    assert set(sd) == {"head.0.weight", "head.0.bias"} and sd["head.0.weight"].shape == (4, 3, 3, 3)
    assert not marker.exists()
    assert "model.ledsr" not in sys.modules


def test_pickled_official_module_alone_is_refused(tmp_path, monkeypatch):
    path, marker, root = _official_file(tmp_path, "{'model': m, 'epoch': 1}")
    monkeypatch.syspath_prepend(str(root))
    _one_line_error(path, "pickles a whole model object")
    assert not marker.exists()


# --------------------------------------------------------------------------------------------------
# Official EDSR-PyTorch / ASSL / SRP layouts into the zoo


def _ledsr():
    return sr_models.create_model("ledsr_f256r16_x2", n_feats=8, n_resblocks=2).eval()


def test_official_ledsr_layout_with_weight_norm(tmp_path):
    """Official LEDSR names (``tail.0.0`` = LiteUpsampler's conv) and ASSL ``--wn`` (``weight``, ``wn_scale``)."""
    dense = _ledsr()
    sd = dense.state_dict()
    official = {"sub_mean.weight": sd["sub_mean.weight"], "sub_mean.bias": sd["sub_mean.bias"],
                "add_mean.weight": sd["add_mean.weight"], "add_mean.bias": sd["add_mean.bias"],
                "tail.0.0.weight": sd["tail.0.weight"], "tail.0.0.bias": sd["tail.0.bias"]}
    expected = dict(sd)
    g = torch.Generator().manual_seed(3)
    for name in ["head.0", "body.0.body.0", "body.0.body.2", "body.1.body.0", "body.1.body.2", "body.2"]:
        v, s = torch.randn(sd[f"{name}.weight"].shape, generator=g), torch.rand(sd[f"{name}.bias"].shape, generator=g) + 0.5
        official.update({f"{name}.weight": v, f"{name}.wn_scale": s, f"{name}.bias": sd[f"{name}.bias"]})
        expected[f"{name}.weight"] = F.normalize(v, dim=(1, 2, 3)) * s.view(-1, 1, 1, 1)  # Conv2D_WN.forward
    torch.save({"state_dict": official}, tmp_path / "model_best.pt")
    loaded = sr_models.create_model("ledsr_f256r16_x2", n_feats=8, n_resblocks=2, checkpoint=tmp_path / "model_best.pt")
    for k, v in expected.items():
        torch.testing.assert_close(loaded.state_dict()[k], v, msg=k)


def test_old_srp_interface_model_prefix(tmp_path):
    """SRP's old interface saved the ``Model`` wrapper's state dict: every key under ``model.``."""
    src = sr_models.create_model("rirsr_g10r20f96_x2", n_resgroups=1, n_resblocks=1, n_feats=8)
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "m.pt")
    dst = sr_models.create_model("rirsr_g10r20f96_x2", n_resgroups=1, n_resblocks=1, n_feats=8, checkpoint=tmp_path / "m.pt")
    assert _equal(dst.state_dict(), src.state_dict())


def test_official_file_that_does_not_fit_lists_keys(tmp_path):
    sd = _ledsr().state_dict()
    torch.save({k: v for k, v in sd.items() if not k.startswith("tail")}, tmp_path / "m.pt")
    with pytest.raises(RuntimeError, match=r"missing keys.*tail\.0\.weight"):
        sr_models.create_model("ledsr_f256r16_x2", n_feats=8, n_resblocks=2, checkpoint=tmp_path / "m.pt")


# --------------------------------------------------------------------------------------------------
# spandrel

spandrel = pytest.importorskip("spandrel")


def _compact(seed=0):
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    return Compact(num_feat=16, num_conv=4, upscale=2)


def test_load_spandrel_from_file_and_rebuild_from_spec(tmp_path):
    src = _compact()
    torch.save({"params_ema": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "c.pth")
    model = load_spandrel(tmp_path / "c.pth")
    assert type(model) is type(src) and _equal(model.state_dict(), src.state_dict())
    spec = json.loads(json.dumps(model.gp_spec))  # JSON only: no tensors, no objects
    dense = build_model(spec)
    assert type(dense) is type(src) and dense.hyperparameters == src.hyperparameters
    assert {k: v.shape for k, v in dense.state_dict().items()} == {k: v.shape for k, v in src.state_dict().items()}


@pytest.mark.parametrize("arch", ["FDAT", "DAT"])
def test_rebuild_where_detection_reads_values(arch):
    """FDAT's detection reads its upsampler from a 7-int buffer, DAT's its split size from a large one:
    a zeros state dict of the saved shapes would not do, the saved hyperparameters do."""
    import importlib

    kwargs = {"FDAT": dict(scale=2, embed_dim=48, num_groups=1, depth_per_group=1, num_heads=3,
                           upsampler_type="pixelshuffle"),
              "DAT": dict(upscale=2, embed_dim=24, depth=[2], num_heads=[2], split_size=[4, 8],
                          upsampler="pixelshuffledirect")}[arch]
    src = getattr(importlib.import_module(f"spandrel.architectures.{arch}"), arch)(**kwargs)
    model = load_spandrel(src.state_dict())
    assert build_model(json.loads(json.dumps(model.gp_spec))).hyperparameters == model.hyperparameters


def test_rebuild_keeps_the_buffers_the_constructor_computes():
    """Window attention's relative-position index and mask are buffers: the rebuilt dense model must hold
    the constructor's values (the analysis graphprune.load re-runs bakes them into the pruned graph)."""
    from spandrel.architectures.SwinIR import SwinIR

    src = SwinIR(embed_dim=12, depths=[2], num_heads=[2], window_size=4, img_size=8)
    dense = build_model(json.loads(json.dumps(load_spandrel(src.state_dict()).gp_spec)))
    buffers = [k for k, _ in src.named_buffers()]
    assert any("relative_position_index" in k for k in buffers)
    for k in buffers:
        assert torch.equal(dense.state_dict()[k], src.state_dict()[k]), k


def test_rebuild_uses_the_saved_hyperparameters():
    """The class is called with what detection found in the file, including what shapes cannot show."""
    from spandrel.architectures.SwinIR import SwinIR

    spec = json.loads(json.dumps(load_spandrel(SwinIR(embed_dim=12, depths=[1], num_heads=[2], window_size=4).state_dict()).gp_spec))
    assert spec["spandrel"]["kwargs"]["img_range"] == 1.0
    spec["spandrel"]["kwargs"]["img_range"] = 255.0
    assert build_model(spec).img_range == 255.0


def test_rebuild_refuses_a_spec_that_does_not_match():
    spec = json.loads(json.dumps(load_spandrel(_compact().state_dict()).gp_spec))
    spec["spandrel"]["shapes"]["body.0.weight"][0] += 1
    with pytest.raises(ValueError, match="differently"):
        build_model(spec)


def test_unsupported_state_dict_is_one_line():
    with pytest.raises(CheckpointError, match="spandrel does not recognise") as e:
        load_spandrel({"foo.weight": torch.zeros(3, 3)})
    assert "\n" not in str(e.value)


def test_missing_spandrel_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "spandrel", None)
    with pytest.raises(ImportError, match=r"pip install graphprune\[spandrel\]"):
        load_spandrel(_compact().state_dict())


def test_pruned_spandrel_model_round_trip(tmp_path):
    model = load_spandrel(_compact().state_dict()).eval()
    x = torch.rand(1, 3, 12, 12)
    pruned, plan = gp.prune(model, x, 0.5)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    path = gp.save(pruned, tmp_path / "c.safetensors")
    assert "spandrel" in read_spec(path)["model"]
    loaded = gp.load(path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))


# --------------------------------------------------------------------------------------------------
# graphprune.save with a model spec keeps the plan


def test_save_with_model_spec_keeps_the_plan(tmp_path):
    m = sr_models.create_model("edsr_baseline_x2", n_feats=16, n_resblocks=2).eval()
    x = torch.rand(1, 3, 8, 8) * 255
    pruned, _ = gp.prune(m, x, 0.5)
    path = gp.save(pruned, tmp_path / "p.safetensors", spec={"name": "edsr_baseline_x2", "kwargs": {"n_feats": 16, "n_resblocks": 2}})
    assert read_spec(path)["plan"]
    with torch.no_grad():
        assert torch.equal(gp.load(path).eval()(x), pruned(x))


def make_custom_net():
    """A user's own model without gp_spec (the factory a spec names as ``test_loaders:make_custom_net``)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1)).eval()


def test_save_custom_model_with_factory_spec(tmp_path):
    m, x = make_custom_net(), torch.rand(1, 3, 8, 8)
    pruned = gp.apply(m, gp.plan(gp.analyze(m, x), 0.5))
    path = gp.save(pruned, tmp_path / "c.safetensors", spec={"factory": "test_loaders:make_custom_net"})
    with torch.no_grad():
        assert torch.equal(gp.load(path).eval()(x), pruned(x))


def test_save_refuses_weights_that_do_not_fit_the_spec(tmp_path):
    small = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    with pytest.raises(ValueError, match="carries no pruning plan"):
        gp.save(small, tmp_path / "s.safetensors", spec={"factory": "test_loaders:make_custom_net"})
    assert not list(tmp_path.iterdir())
