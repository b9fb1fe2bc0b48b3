"""PSNR/SSIM (BasicSR/EDSR protocol) on hand-computed cases and known invariants."""
import math

import numpy as np
import pytest
import torch

from graphprune.sr.metrics import (MetricAverager, calculate_psnr, calculate_ssim,
                                      rgb_to_y, to_uint8_range)

Y_GAIN = (65.481 + 128.553 + 24.966) / 255  # change of Y per unit change of R = G = B


def photo(seed=0, shape=(32, 40, 3)):
    """A smooth-ish random 8-bit RGB image as float64 HWC in 0..255."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(shape[0] // 4 + 1, shape[1] // 4 + 1, 3))
    img = np.repeat(np.repeat(base, 4, axis=0), 4, axis=1)[:shape[0], :shape[1]]
    return (img + rng.integers(-20, 20, size=shape)).astype(np.float64)


def test_y_of_white_and_black():
    y = rgb_to_y(np.array([[[255.0, 255.0, 255.0], [0.0, 0.0, 0.0]]]))
    assert y.shape == (1, 2, 1)
    assert y[0, 0, 0] == pytest.approx(235.0) and y[0, 1, 0] == pytest.approx(16.0)


def test_psnr_identical_is_inf():
    img = photo()
    assert calculate_psnr(img, img.copy(), crop_border=2) == math.inf
    assert calculate_psnr(img, img, crop_border=0, test_y_channel=False) == math.inf


@pytest.mark.parametrize("d", [1, 3, 10])
def test_psnr_of_constant_difference_rgb(d):
    hr = photo()
    got = calculate_psnr(hr + d, hr, crop_border=0, test_y_channel=False)
    assert got == pytest.approx(10 * math.log10(255 ** 2 / d ** 2), abs=1e-9)


def test_psnr_of_constant_difference_on_y():
    """Adding d to R, G and B moves Y by d * 219/255 everywhere."""
    hr, d = photo(), 4
    dy = d * Y_GAIN
    got = calculate_psnr(hr + d, hr, crop_border=0, test_y_channel=True)
    assert got == pytest.approx(10 * math.log10(255 ** 2 / dy ** 2), abs=1e-9)


def test_difference_only_in_the_border_is_cropped_away():
    hr = photo()
    sr = hr.copy()
    sr[:3] += 50
    sr[:, -3:] -= 30
    assert calculate_psnr(sr, hr, crop_border=3) == math.inf
    assert calculate_ssim(sr, hr, crop_border=3) == pytest.approx(1.0)
    assert calculate_psnr(sr, hr, crop_border=2) < 40


def test_outputs_are_quantized_to_8_bits_before_measuring():
    hr = photo()
    assert calculate_psnr(hr + 0.4, hr, crop_border=0) == math.inf  # rounds back
    assert calculate_psnr(np.clip(hr * 3, 0, None), np.clip(hr * 3, 0, 255), 0) == math.inf
    assert np.array_equal(to_uint8_range(np.array([[[-3.0, 254.6, 300.0]]])),
                          [[[0.0, 255.0, 255.0]]])


def test_rgb_range_one_and_torch_tensors_give_the_same_numbers():
    hr = photo(1)
    sr = np.clip(hr + np.random.default_rng(2).normal(0, 5, hr.shape), 0, 255)
    ref_psnr, ref_ssim = calculate_psnr(sr, hr, 4), calculate_ssim(sr, hr, 4)
    t_sr = torch.from_numpy(sr / 255).permute(2, 0, 1).float()
    t_hr = torch.from_numpy(hr / 255).permute(2, 0, 1).float()
    assert calculate_psnr(t_sr, t_hr[None], 4, rgb_range=1.0) == pytest.approx(ref_psnr, abs=1e-9)
    assert calculate_ssim(t_sr[None], t_hr, 4, rgb_range=1.0) == pytest.approx(ref_ssim, abs=1e-9)


def test_ssim_identical_is_one_and_symmetric():
    a = photo(3)
    b = np.clip(a + np.random.default_rng(4).normal(0, 8, a.shape), 0, 255)
    assert calculate_ssim(a, a, crop_border=2) == pytest.approx(1.0, abs=1e-12)
    assert calculate_ssim(a, b, 2) == pytest.approx(calculate_ssim(b, a, 2), abs=1e-12)
    assert calculate_ssim(a, b, 2, test_y_channel=False) == pytest.approx(
        calculate_ssim(b, a, 2, test_y_channel=False), abs=1e-12)


def test_ssim_decreases_with_noise():
    a = photo(5)
    rng = np.random.default_rng(6)
    noise = rng.normal(0, 1, a.shape)
    scores = [calculate_ssim(np.clip(a + s * noise, 0, 255), a, 2) for s in (1, 4, 16, 64)]
    assert all(x > y for x, y in zip(scores, scores[1:])), scores
    assert 0 < scores[-1] < scores[0] < 1


def test_ssim_per_channel_average_when_not_y():
    a = photo(7)
    b = a.copy()
    b[..., 1] = np.clip(b[..., 1] + np.random.default_rng(8).normal(0, 10, b.shape[:2]), 0, 255)
    got = calculate_ssim(b, a, 0, test_y_channel=False)
    channel_g = calculate_ssim(b[..., 1], a[..., 1], 0, test_y_channel=False)
    assert got == pytest.approx((1 + channel_g + 1) / 3, abs=1e-12)


def test_ssim_matches_skimage_gaussian_ssim():
    """skimage's Gaussian SSIM (sigma 1.5, population covariance) is the same definition."""
    metrics = pytest.importorskip("skimage.metrics")
    a = photo(9, (40, 48, 3))
    b = np.clip(a + np.random.default_rng(10).normal(0, 12, a.shape), 0, 255).round()
    ours = calculate_ssim(b, a, 0, test_y_channel=False)
    theirs = metrics.structural_similarity(b, a, channel_axis=2, gaussian_weights=True,
                                           sigma=1.5, use_sample_covariance=False,
                                           data_range=255)
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="differ in shape"):
        calculate_psnr(photo(), photo(shape=(32, 36, 3)), 0)
    with pytest.raises(ValueError, match="one image at a time"):
        calculate_psnr(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="nothing left"):
        calculate_psnr(photo(shape=(8, 8, 3)), photo(shape=(8, 8, 3)), 4)


def test_metric_averager_averages_per_image():
    avg = MetricAverager()
    avg.update("a", psnr=30.0, ssim=0.90)
    avg.update("b", psnr=36.0, ssim=0.80)
    avg.update("c", psnr=33.0)
    assert len(avg) == 3
    assert avg.average() == pytest.approx({"psnr": 33.0, "ssim": 0.85})
    assert [name for name, _ in avg.records] == ["a", "b", "c"]
    avg.reset()
    assert avg.average() == {} and len(avg) == 0


# ----------------------------------------------------------------------------- tiled inference


class TinySR(torch.nn.Module):
    """Three 3x3 convs (receptive radius 3 LR pixels) and a pixel-shuffle upsampler."""

    def __init__(self, scale=2, width=8):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, 3 * scale ** 2, 3, padding=1))
        self.up = torch.nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.body(x))


@pytest.mark.parametrize("tile,batch_size", [(16, 4), (10, 1), (7, 64), (64, 2)])
def test_tiled_forward_equals_whole_image_inference(tile, batch_size):
    from graphprune.sr.tiling import tiled_forward

    torch.manual_seed(0)
    model = TinySR(scale=2).eval()
    lr = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        whole = model(lr)
    tiled = tiled_forward(model, lr, scale=2, tile=tile, overlap=4, batch_size=batch_size)
    assert tiled.shape == whole.shape == (2, 3, 74, 106)
    assert torch.allclose(tiled, whole, atol=1e-5)
    assert torch.allclose(tiled_forward(model, lr[1], 2, tile=tile, overlap=4), whole[1],
                          atol=1e-5)


def test_tiled_forward_needs_overlap_at_least_the_receptive_radius():
    """With too little context the seams show: the guarantee is not vacuous."""
    from graphprune.sr.tiling import tiled_forward

    torch.manual_seed(0)
    model = TinySR(scale=3).eval()
    lr = torch.rand(1, 3, 37, 53)
    whole = model(lr).detach()
    assert torch.allclose(tiled_forward(model, lr, 3, tile=12, overlap=3), whole, atol=1e-5)
    assert not torch.allclose(tiled_forward(model, lr, 3, tile=12, overlap=1), whole, atol=1e-5)


def test_tile_windows_cover_every_core_with_context():
    from graphprune.sr.tiling import tile_windows

    for length, tile, overlap in [(37, 16, 4), (53, 10, 4), (5, 16, 4), (40, 8, 0)]:
        spans = tile_windows(length, tile, overlap)
        window = min(tile + 2 * overlap, length)
        assert [s for s, _, _ in spans] == list(range(0, length, tile))
        assert spans[-1][1] == length
        for start, end, w0 in spans:
            assert 0 <= w0 and w0 + window <= length
            assert w0 <= max(start - overlap, 0) and min(end + overlap, length) <= w0 + window


def test_tiled_forward_rejects_a_model_of_another_scale():
    from graphprune.sr.tiling import tiled_forward

    with pytest.raises(ValueError, match="expected"):
        tiled_forward(TinySR(scale=2), torch.rand(1, 3, 20, 20), scale=3, tile=8, overlap=2)
