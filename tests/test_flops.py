"""graphprune.flops: fvcore-convention counts equal fvcore's own; SR Mult-Adds equal the papers' figures.

Expected values come from fvcore itself (on small inputs, where its jit trace is fast) or from closed
formulas; the published figures are checked with the papers' own rounding (they truncate).
"""
from __future__ import annotations

import logging
import math
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from graphprune.flops import Unsupported, count, params, sr_mult_adds

fvcore_nn = pytest.importorskip("fvcore.nn")


def fvcore_count(model, inputs, extra_handles=None):
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    fa = fvcore_nn.FlopCountAnalysis(model.eval(), inputs)
    fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    if extra_handles:
        fa.set_op_handle(**extra_handles)
    return int(fa.total()), dict(fa.unsupported_ops())


def sdpa_handle(inputs, outputs):
    """fvcore handle for aten::scaled_dot_product_attention, with graphprune's convention."""
    q, k, v = (i.type().sizes() for i in inputs[:3])
    out = outputs[0].type().sizes()
    return math.prod(out[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


# --------------------------------------------------------------------------------------------------
# Local models (the zoo is written in parallel; these follow ../shared/reference/assl_srp.md §1)


class MeanShift(nn.Conv2d):
    def __init__(self, sign: int, rgb_range: float = 255.0):
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor([0.4488, 0.4371, 0.4040])
        for p in self.parameters():
            p.requires_grad = False


def conv(cin, cout, k=3):
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class ResBlock(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.body = nn.Sequential(conv(f, f), nn.ReLU(True), conv(f, f))

    def forward(self, x):
        res = self.body(x).mul(1.0)
        res += x
        return res


class LEDSR(nn.Module):
    """LEDSR: mean shift, head, R res blocks + conv, global skip, LiteUpsampler tail."""

    def __init__(self, f=256, r=16, s=2):
        super().__init__()
        self.sub_mean, self.add_mean = MeanShift(-1), MeanShift(1)
        self.head = nn.Sequential(conv(3, f))
        self.body = nn.Sequential(*[ResBlock(f) for _ in range(r)], conv(f, f))
        self.tail = nn.Sequential(conv(f, 3 * s * s), nn.PixelShuffle(s))

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        return self.add_mean(self.tail(self.body(x) + x))


class EDSRBaseline(LEDSR):
    """EDSR-baseline x2: as LEDSR but tail = [conv(F, 4F) + PixelShuffle(2)], conv(F, 3)."""

    def __init__(self, f=64, r=16):
        super().__init__(f, r, 2)
        self.tail = nn.Sequential(nn.Sequential(conv(f, 4 * f), nn.PixelShuffle(2)), conv(f, 3))


class FSRCNN(nn.Module):
    """FSRCNN(d=56, s=12, m=4) on the Y channel, with its 9x9 deconvolution."""

    def __init__(self, scale, d=56, s=12, m=4):
        super().__init__()
        layers = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d), nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)

    def forward(self, x):
        return self.deconv(self.body(x))


class ConvBNLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, groups=4), nn.BatchNorm2d(16, affine=False), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class Attention(nn.Module):
    def __init__(self, dim, heads, fused=False):
        super().__init__()
        self.heads, self.fused, self.scale = heads, fused, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class ViTBlock(nn.Module):
    def __init__(self, dim=32, heads=4, fused=False):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, fused)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MixedOps(nn.Module):
    """Upsampling, transposed / 1d / 3d convs, group / instance norm, einsum, bmm, MHA, grid_sample."""

    def __init__(self):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.gn, self.inorm = nn.GroupNorm(2, 4), nn.InstanceNorm2d(4, affine=True)
        self.tconv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2)
        self.c1, self.c3 = nn.Conv1d(6, 4, 3), nn.Conv3d(1, 2, 3)
        self.w = nn.Parameter(torch.randn(5, 4, 3, 3))

    def forward(self, x):
        y = self.inorm(self.gn(F.interpolate(x, scale_factor=2) + self.up(x)))
        y = F.conv2d(self.tconv(y), self.w[:, :2].repeat(1, 3, 1, 1).contiguous()[:, :6], padding=1)
        s = y.flatten(2)  # (1, 5, HW)
        e = torch.einsum("bij,bkj->bik", s, s) + torch.bmm(s, s.transpose(1, 2))
        z = self.c1(s[:, :5].new_zeros(1, 6, 10) + e.sum())
        v = self.c3(z[:, :1, None, :, None].expand(-1, -1, 4, -1, 4).contiguous())
        g = F.grid_sample(y, torch.zeros(1, 3, 3, 2), align_corners=False)
        return v.sum() + g.sum()


class MHA(nn.Module):
    """nn.MultiheadAttention is an fx leaf: its rule must give what fvcore counts through its internals."""

    def __init__(self):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.cross = nn.MultiheadAttention(8, 2, kdim=6, vdim=4)

    def forward(self, x):
        a, _ = self.self_attn(x, x, x)
        kv = x.transpose(0, 1)
        b, _ = self.cross(kv[:3], kv[..., :6], kv[..., :4])
        return a.sum() + b.sum()


# --------------------------------------------------------------------------------------------------
# count() == fvcore


FVCORE_CASES = {
    "conv_bn_linear": (ConvBNLinear, (1, 3, 16, 16)),
    "tiny_edsr_pixelshuffle": (lambda: LEDSR(8, 2, 3), (1, 3, 12, 12)),
    "edsr_upsampler": (lambda: EDSRBaseline(8, 1), (2, 3, 8, 8)),
    "fsrcnn_deconv": (lambda: FSRCNN(3, d=8, s=4, m=1), (1, 1, 8, 8)),
    "vit_block_matmul": (ViTBlock, (2, 10, 32)),
    "mixed_ops": (MixedOps, (1, 4, 4, 4)),
    "multihead_attention": (MHA, (2, 5, 8)),
}


@pytest.mark.parametrize("name", list(FVCORE_CASES))
def test_count_equals_fvcore(name):
    factory, shape = FVCORE_CASES[name]
    torch.manual_seed(0)
    model, x = factory().eval(), torch.randn(shape)
    ours = count(model, x)
    flops, unsupported = fvcore_count(model, (x,))
    assert ours["flops"] == flops
    if name == "multihead_attention":  # fvcore also lists the leaf's internal softmax/div/mul ops
        return
    # One unsupported fx node per unsupported aten op in these models (names differ: fx vs aten).
    assert sum(ours["unsupported"].values()) == sum(unsupported.values()), (ours["unsupported"], unsupported)
    assert ours["params"] == sum(p.numel() for p in model.parameters())


def test_count_training_mode_batchnorm_matches_fvcore():
    model, x = ConvBNLinear().train(), torch.randn(2, 3, 16, 16)
    ours = count(model, x)["flops"]
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    fa = fvcore_nn.FlopCountAnalysis(model, (x,))
    fa.unsupported_ops_warnings(False)
    assert ours == fa.total()
    assert model.training  # count leaves the mode alone


def test_count_sdpa_is_counted_where_fvcore_skips_it():
    model, x = ViTBlock(fused=True).eval(), torch.randn(2, 10, 32)
    ours = count(model, x)
    plain, unsupported = fvcore_count(model, (x,))
    assert "aten::scaled_dot_product_attention" in unsupported
    with_handle, _ = fvcore_count(model, (x,), {"aten::scaled_dot_product_attention": sdpa_handle})
    assert ours["flops"] == with_handle == plain + 2 * 2 * 10 * 10 * 32
    assert ours["flops"] == count(ViTBlock(fused=False), x)["flops"]  # same attention MACs either way


def test_count_timm_and_torchvision_models():
    timm = pytest.importorskip("timm")
    torchvision = pytest.importorskip("torchvision")
    x = torch.randn(1, 3, 32, 32)
    for model in (timm.create_model("resnet10t", num_classes=10),
                  torchvision.models.mobilenet_v3_small(num_classes=10)):
        model.eval()
        assert count(model, x)["flops"] == fvcore_count(model, (x,))[0], type(model).__name__
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10).eval()
    expected, _ = fvcore_count(vit, (x,), {"aten::scaled_dot_product_attention": sdpa_handle})
    assert count(vit, x)["flops"] == expected


def test_unsupported_ops_are_reported_never_dropped():
    class Opaque(nn.Module):  # a custom leaf with no rule: reported under its class name
        def forward(self, x):
            return x * 2

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Opaque(), nn.Upsample(scale_factor=2, mode="bicubic"),
                        nn.PixelShuffle(2), nn.Sigmoid())
    x = torch.randn(1, 3, 8, 8)
    out = count(net, x, leaf_modules=[Opaque])
    assert out["flops"] == 3 * 4 * 9 * 64
    assert out["unsupported"] == {"Opaque": 1, "interpolate(mode=bicubic, 4d)": 1, "PixelShuffle": 1, "Sigmoid": 1}
    # Per-call overrides: ignore one op, give another a rule.
    out = count(net, x, leaf_modules=[Opaque], rules={nn.PixelShuffle: None, nn.Sigmoid: lambda n, i, o, m: o.numel})
    assert out["unsupported"] == {"Opaque": 1, "interpolate(mode=bicubic, 4d)": 1}
    assert out["flops"] == 3 * 4 * 9 * 64 + 32 * 32  # sigmoid on (1, 1, 32, 32)


def test_rule_can_refuse_with_unsupported():
    def refuse(node, ins, out, m):
        raise Unsupported("conv(special)")

    out = count(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 8, 8), rules={nn.Conv2d: refuse})
    assert out == {"params": 112, "flops": 0, "unsupported": {"conv(special)": 1}}


def test_params_counts_shared_parameters_once():
    a = nn.Linear(4, 4)
    net = nn.Sequential(a, nn.ReLU(), a)
    assert params(net) == 20
    assert count(net, torch.randn(3, 4))["flops"] == 2 * 3 * 16


def test_count_does_not_touch_model_parameters():
    model = LEDSR(8, 1, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count(model, torch.randn(1, 3, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"


# --------------------------------------------------------------------------------------------------
# sr_mult_adds: the papers' convention


def ledsr_macs(f, s, hr=(720, 1280)):
    """HW_lr * (33*9F^2 + 27F + 9F*3s^2): head, 33 body convs and the tail, without bias."""
    hw = (hr[0] // s) * (hr[1] // s)
    return hw * (33 * 9 * f * f + 27 * f + 9 * f * 3 * s * s)


def ledsr_params(f, s):
    conv_p = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    return conv_p(3, f, 3) + 33 * conv_p(f, f, 3) + conv_p(f, 3 * s * s, 3) + 2 * conv_p(3, 3, 1)


def truncate(value, digits):
    """The papers' tables truncate (x2: 139.968G is printed 139.9G, 623.682K is printed 623K)."""
    return math.floor(value * 10**digits) / 10**digits


@pytest.mark.parametrize("scale,paper_params_k,paper_gmacs", [(2, 609, 139.9), (3, 615, 62.7), (4, 623, 35.8)])
def test_srpn_lite_row_of_the_srp_paper(scale, paper_params_k, paper_gmacs):
    model = LEDSR(45, 16, scale)
    macs = sr_mult_adds(model, scale)
    hr_hw = (720 // scale * scale) * (1280 // scale * scale)
    lr_hw = (720 // scale) * (1280 // scale)
    # torchsummaryX counts MeanShift(nn.Conv2d) as weight.numel() = 9 (its class name lacks "Conv").
    assert macs == ledsr_macs(45, scale) + 2 * 9
    with_mean_shift = sr_mult_adds(model, scale, exact_torchsummaryx=False)
    assert with_mean_shift == ledsr_macs(45, scale) + 9 * lr_hw + 9 * hr_hw
    assert params(model) == ledsr_params(45, scale)
    # Both variants print the paper's figures under truncation, so the paper alone cannot tell.
    assert truncate(macs / 1e9, 1) == truncate(with_mean_shift / 1e9, 1) == paper_gmacs
    assert math.floor(params(model) / 1e3) == paper_params_k


def test_srp_code_example_excludes_mean_shift_per_pixel():
    # SRP src/main.py parse_model_complexity comments: "Total params 1.372318M", "Mult-Adds 316.2488832G":
    # EDSR-baseline x2 (params with --wn's 2435 wn_scale entries). Digit-exact only without MeanShift.
    model = EDSRBaseline(64, 16)
    assert f"{sr_mult_adds(model, 2) / 1e9:.7f}" == "316.2488832"
    assert f"{sr_mult_adds(model, 2, exact_torchsummaryx=False) / 1e9:.7f}" == "316.2592512"
    wn_scales = 64 + 32 * 64 + 64 + 256 + 3
    assert params(model) + wn_scales == 1_372_318


@pytest.mark.parametrize("scale,paper_gmacs", [(2, 6.0), (3, 5.0), (4, 4.6)])
def test_fsrcnn_deconv_counts_per_output_pixel(scale, paper_gmacs):
    macs = sr_mult_adds(FSRCNN(scale), scale, input_channels=1)
    lr = (720 // scale) * (1280 // scale)
    assert macs == lr * (25 * 56 + 56 * 12 + 4 * 9 * 144 + 12 * 56) + (720 // scale * scale) * (1280 // scale * scale) * 56 * 81
    assert round(macs / 1e9, 1) == paper_gmacs


def test_dense_ledsr_figures_and_speed():
    with torch.device("meta"):  # no 19.5M-parameter init: counting needs shapes only
        models = {s: LEDSR(256, 16, s) for s in (2, 3, 4)}
    sr_mult_adds(LEDSR(4, 1, 2), 2)  # warm-up: imports and fake-tensor caches
    start = time.perf_counter()
    macs = sr_mult_adds(models[2], 2)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"sr_mult_adds on dense LEDSR x2 took {elapsed:.2f}s"
    assert macs == ledsr_macs(256, 2) + 18
    expected = {2: (19.51, 4492.5), 3: (19.54, 1997.1), 4: (19.59, 1127.9)}  # reference table, rounded
    for s, (p_m, g) in expected.items():
        m = sr_mult_adds(models[s], s)
        assert m == ledsr_macs(256, s) + 18
        assert (round(params(models[s]) / 1e6, 2), round(m / 1e9, 1)) == (p_m, g)


def test_sr_mult_adds_linear_per_token_and_optional_matmul():
    class TinySwin(nn.Module):
        def __init__(self, dim=16):
            super().__init__()
            self.head, self.block = nn.Conv2d(3, dim, 3, padding=1), ViTBlock(dim, 2)
            self.tail = nn.Sequential(nn.Conv2d(dim, 12, 3, padding=1), nn.PixelShuffle(2))

        def forward(self, x):
            y = self.head(x)
            b, c, h, w = y.shape
            y = self.block(y.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
            return self.tail(y)

    hw = 4 * 8  # hr (8, 16), x2
    convs = hw * (3 * 16 * 9 + 16 * 12 * 9)
    linears = hw * (16 * 48 + 16 * 16 + 16 * 32 + 32 * 16)
    attention = 2 * hw * hw * 16
    model = TinySwin()
    assert sr_mult_adds(model, 2, hr=(8, 16)) == convs + linears
    assert sr_mult_adds(model, 2, hr=(8, 16), include_matmul=True) == convs + linears + attention


def test_sr_mult_adds_warns_about_opaque_leaves_with_convs():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.c(x)

    net = nn.Sequential(Block(), nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))
    with pytest.warns(UserWarning, match="0 \\(Block\\)"):
        macs = sr_mult_adds(net, 2, hr=(8, 8), leaf_modules=[Block])
    assert macs == 16 * 3 * 12 * 9


def test_sr_models_ledsr_if_available():
    sr_models = pytest.importorskip("sr_models")
    try:
        model = sr_models.create_model("ledsr_f256r16_x2", n_feats=45)
    except Exception as exc:  # noqa: BLE001 - the zoo is being written concurrently
        pytest.skip(f"sr_models has no usable ledsr_f256r16_x2 yet: {exc}")
    macs = sr_mult_adds(model, 2)
    assert truncate(macs / 1e9, 1) == 139.9 and math.floor(params(model) / 1e3) == 609


def test_forward_creating_cpu_tensors_falls_back_to_fake_tensors_on_the_model():
    class AddsConstant(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.c(x) + torch.ones(1, 3, 1, 1)  # a CPU tensor: the meta copy cannot run this

    assert count(AddsConstant(), torch.zeros(1, 3, 8, 8)) == {"params": 84, "flops": 5184, "unsupported": {"add": 1}}


def test_data_dependent_forward_warns_that_a_real_forward_ran():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.c(x) * x.sum().item()

    with pytest.warns(UserWarning, match="real forward pass"):
        out = count(DataDependent(), torch.zeros(1, 3, 8, 8))
    assert out["flops"] == 5184 and out["unsupported"] == {"Tensor.sum": 1, "mul": 1}


def _zoo_x2():
    try:
        import sr_models
    except ImportError:
        return []
    return [n for n in sr_models.list_models() if n.endswith("_x2")]


@pytest.mark.slow
@pytest.mark.parametrize("name", _zoo_x2())
def test_zoo_count_equals_fvcore(name):
    import sr_models

    model, x = sr_models.create_model(name).eval(), torch.randn(1, 3, 16, 16)
    assert count(model, x)["flops"] == fvcore_count(model, (x,))[0]


def test_docstring_examples():
    import doctest

    import graphprune.flops

    assert doctest.testmod(graphprune.flops).failed == 0
