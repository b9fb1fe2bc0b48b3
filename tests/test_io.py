"""Save/load of pruned models: safetensors + JSON spec, no pickle, atomic, clear errors."""
import pytest
import torch

import graphprune as gp
import sr_models
from graphprune.io import read_spec


@pytest.fixture(scope="module")
def pruned_imdn():
    m = sr_models.create_model("imdn_x2", n_modules=2).eval()
    x = torch.rand(1, 3, 10, 10)
    pruned, plan = gp.prune(m, x, 0.5)
    return m, pruned, plan, x


def test_round_trip_graph_module(tmp_path, pruned_imdn):
    _, pruned, plan, x = pruned_imdn
    assert getattr(pruned, "gp_graph_module", False), "IMDN's split sizes force a GraphModule"
    path = gp.save(pruned, tmp_path / "imdn.safetensors")
    loaded = gp.load(path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert read_spec(path)["model"]["name"] == "imdn_x2"


def test_round_trip_user_class(tmp_path):
    m = sr_models.create_model("ledsr_f256r16_x3", n_feats=16, n_resblocks=2).eval()
    x = torch.rand(1, 3, 8, 8) * 255
    pruned, plan = gp.prune(m, x, 0.5, ignore=["*mean*", "*tail*"])
    assert type(pruned) is type(m)
    path = gp.save(pruned, tmp_path / "sub" / "ledsr.safetensors")
    loaded = gp.load(path)
    assert type(loaded) is type(m)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), pruned(x))


def test_dense_model_round_trip(tmp_path):
    m = sr_models.create_model("pan_x2").eval()
    path = gp.save(m, tmp_path / "pan.safetensors")
    assert read_spec(path)["plan"] is None
    loaded = gp.load(path)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))


def test_missing_and_corrupt_files(tmp_path, pruned_imdn):
    with pytest.raises(FileNotFoundError, match="not found"):
        gp.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        gp.load(bad)
    good = gp.save(pruned_imdn[1], tmp_path / "good.safetensors")
    data = good.read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        gp.load(trunc)


def test_save_failure_leaves_no_partial_file(tmp_path):
    class NoSpec(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(1, 1, 1)

    with pytest.raises(ValueError, match="rebuild"):
        gp.save(NoSpec(), tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_file_contains_no_pickle(tmp_path, pruned_imdn):
    path = gp.save(pruned_imdn[1], tmp_path / "m.safetensors")
    assert b"\x80\x04\x95" not in path.read_bytes()[:64]  # pickle protocol 4 header


def test_round_trip_with_traced_tensor_constants(tmp_path):
    """SwinIR indexes a table with a view of a buffer, which fx keeps as ``_tensor_constantN``; a plain
    ``fx.symbolic_trace`` by the user beforehand adds such attributes to the model itself."""
    m = sr_models.create_model("swinir_light_x2", depths=(2,), num_heads=(2,), embed_dim=12).eval()
    torch.fx.symbolic_trace(m)
    x = torch.rand(1, 3, 12, 12)
    pruned, _ = gp.prune(m, x, 0.5)
    loaded = gp.load(gp.save(pruned, tmp_path / "swin.safetensors")).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
