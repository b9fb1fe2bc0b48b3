"""MATLAB-compatible bicubic: checked against the kernel formula and known properties.

No expected output is hard-coded: reference weights are recomputed here from MATLAB's
definition, and images are checked through invariants (constants, ramps, symmetry).
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphprune.sr.imresize import contributions, cubic, imresize, imresize_torch

SCALES = [1 / 2, 1 / 3, 1 / 4, 0.3, 2.0, 3.0, 1.7]


def keys_cubic(x: float) -> float:
    """Keys' kernel with a = -0.5, written out piecewise (independent of the module)."""
    a, x = -0.5, abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def test_cubic_matches_keys_kernel():
    xs = np.linspace(-2.5, 2.5, 101)
    assert np.allclose(cubic(xs), [keys_cubic(x) for x in xs], atol=1e-12)


def test_weights_for_quarter_scale_match_reference_kernel():
    """Output pixel x sits at u = 4x - 1.5; its taps are scale * cubic(scale * (u - j))."""
    scale, n_in = 0.25, 64
    weights, indices = contributions(n_in, 16, scale)
    for x in range(4, 13):  # interior output pixels (1-based), no mirroring involved
        u = x / scale + 0.5 * (1 - 1 / scale)
        taps = [j for j in range(1, n_in + 1) if abs(u - j) * scale < 2]
        ref = np.array([scale * keys_cubic(scale * (u - j)) for j in taps])
        ref /= ref.sum()
        row = dict(zip(indices[x - 1] + 1, weights[x - 1]))
        got = np.array([row.get(j, 0.0) for j in taps])
        assert np.allclose(got, ref, atol=1e-12)
        assert math.isclose(sum(row.values()), 1.0, abs_tol=1e-12)
        assert all(j in taps for j, wt in row.items() if wt != 0)


def test_weights_rows_sum_to_one_and_indices_mirror_in_range():
    for scale in SCALES:
        n_in = 11
        weights, indices = contributions(n_in, math.ceil(n_in * scale), scale)
        assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-12)
        assert indices.min() >= 0 and indices.max() < n_in


@pytest.mark.parametrize("scale", SCALES)
def test_constant_image_is_preserved(scale):
    img = np.full((23, 17, 3), 0.37)
    out = imresize(img, scale)
    assert out.shape == (math.ceil(23 * scale), math.ceil(17 * scale), 3)
    assert np.allclose(out, 0.37, rtol=0, atol=1e-12)


@given(h=st.integers(1, 40), w=st.integers(1, 40), scale=st.floats(0.1, 4.0),
       value=st.floats(-10, 10))
@settings(max_examples=40, deadline=None)
def test_constant_and_shape_property(h, w, scale, value):
    out = imresize(np.full((h, w), value), scale)
    assert out.shape == (math.ceil(h * scale), math.ceil(w * scale))
    assert np.allclose(out, value, atol=1e-9)


def test_output_shape_argument_and_argument_errors():
    img = np.random.default_rng(0).random((30, 20))
    assert imresize(img, output_shape=(7, 41)).shape == (7, 41)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(img)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(img, 0.5, output_shape=(15, 10))


def test_scale_one_is_identity():
    img = np.random.default_rng(1).random((9, 13, 3))
    assert np.array_equal(imresize(img, 1.0), img)
    assert np.allclose(imresize(img, (1.0, 0.5))[:, :, 0], imresize(img[:, :, 0], (1.0, 0.5)))


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2.0, 3.0])
def test_linear_ramp_is_preserved_in_the_interior(scale):
    """Output pixel x maps to input coordinate u = x/scale + (1 - 1/scale)/2 (1-based)."""
    n = 48
    ramp = 0.5 + 2.0 * (np.arange(1, n + 1) - 1)  # value at 1-based coordinate j
    img = np.add.outer(ramp, 3.0 * ramp)  # linear in both axes
    out = imresize(img, scale)
    x = np.arange(1, out.shape[0] + 1)
    u = x / scale + 0.5 * (1 - 1 / scale)
    expected = 0.5 + 2.0 * (u - 1)
    margin = math.ceil(2.5 * max(scale, 1) + 1)  # output pixels whose taps reach the mirror
    inner = slice(margin, out.shape[0] - margin)
    want = np.add.outer(expected, 3.0 * expected)
    assert np.allclose(out[inner, inner], want[inner, inner], atol=1e-9)


def test_flip_equivariance_when_pixel_grids_align():
    """MATLAB's grid is centred: flipping commutes with resizing when H = k / scale."""
    img = np.random.default_rng(2).random((24, 36, 3))
    for scale in (1 / 2, 1 / 3, 1 / 4, 2.0):
        out = imresize(img, scale)
        assert np.allclose(imresize(img[::-1, ::-1], scale), out[::-1, ::-1], atol=1e-12)


def test_integer_input_is_not_rounded():
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    out = imresize(img, 0.5)
    assert out.dtype == np.float64
    assert np.allclose(out, imresize(img.astype(np.float64), 0.5))
    assert not np.allclose(out, np.round(out))


def test_float32_keeps_dtype():
    assert imresize(np.ones((8, 8), np.float32), 0.5).dtype == np.float32


@pytest.mark.parametrize("scale", [1 / 3, 2.0])
def test_torch_matches_numpy(scale):
    img = np.random.default_rng(3).random((19, 26, 3))
    ref = imresize(img, scale)
    chw = imresize_torch(torch.from_numpy(img).permute(2, 0, 1), scale)
    nchw = imresize_torch(torch.from_numpy(img).permute(2, 0, 1)[None].repeat(2, 1, 1, 1), scale)
    assert chw.dtype == torch.float64
    assert np.allclose(chw.permute(1, 2, 0).numpy(), ref, atol=1e-12)
    assert np.allclose(nchw[1].permute(1, 2, 0).numpy(), ref, atol=1e-12)


def test_roughly_agrees_with_skimage_cubic():
    """skimage uses a Gaussian prefilter and B-splines, so only loose agreement is expected."""
    data = pytest.importorskip("skimage.data")
    transform = pytest.importorskip("skimage.transform")
    img = data.astronaut()[::2, ::2].astype(np.float64) / 255
    for scale in (0.5, 0.25, 2.0):
        ours = imresize(img, scale)
        theirs = transform.resize(img, ours.shape, order=3, anti_aliasing=scale < 1,
                                  mode="symmetric")
        psnr = 10 * np.log10(1 / np.mean((ours - theirs) ** 2))
        assert psnr > 33, (scale, psnr)
