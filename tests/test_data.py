"""Datasets: folder layouts, index ranges, on-the-fly LR, augmentation contract, demo set."""
import numpy as np
import pytest
import torch
from PIL import Image

from graphprune.sr.data import (DEMO_TRAIN, DEMO_VAL, PairedImageDataset, bicubic_lr,
                                   benchmark_set, demo_dataset, div2k, modcrop,
                                   parse_index_range, scan_folder_pairs)


def save(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def random_lr(seed, shape=(10, 12, 3)):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def block_hr(lr, scale):
    """HR whose s x s blocks equal the LR pixel: any aligned crop/flip keeps that relation."""
    return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)


@pytest.fixture
def div2k_root(tmp_path):
    """A 4-image DIV2K tree with block-structured HR and matching X2 LR files."""
    for i in range(1, 5):
        lr = random_lr(i)
        save(tmp_path / "DIV2K_train_HR" / f"{i:04d}.png", block_hr(lr, 2))
        save(tmp_path / "DIV2K_train_LR_bicubic" / "X2" / f"{i:04d}x2.png", lr)
    return tmp_path


def test_parse_index_range():
    assert parse_index_range("1-800") == (1, 800)
    assert parse_index_range(" 801 - 810 ") == (801, 810)
    assert parse_index_range((3, 3)) == (3, 3)
    assert parse_index_range(None) is None
    for bad in ("800", "0-5", "9-2", "a-b"):
        with pytest.raises(ValueError):
            parse_index_range(bad)


def test_div2k_layout_and_index_range(div2k_root):
    ds = div2k(div2k_root, scale=2, index_range="2-3", train=False)
    assert [p.name for p in ds.pairs] == ["0002", "0003"]
    assert ds.lr_source == "files" and len(ds) == 2
    sample = ds[0]
    assert sample["name"] == "0002"
    assert sample["lr"].dtype == torch.float32 and sample["lr"].shape == (3, 10, 12)
    assert sample["hr"].shape == (3, 20, 24)
    expected = torch.from_numpy(random_lr(2)).permute(2, 0, 1).float() / 255
    assert torch.equal(sample["lr"], expected)
    with pytest.raises(ValueError, match="exceeds the 4 images"):
        div2k(div2k_root, scale=2, index_range="3-5")


def test_missing_dataset_is_a_one_line_error_naming_the_path(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        div2k(root, scale=2)
    msg = str(err.value)
    assert str(root / "DIV2K_train_HR") in msg and "\n" not in msg and "0001.png" in msg
    with pytest.raises(FileNotFoundError, match="Set5 HR folder not found"):
        benchmark_set(root, "Set5", 4)


def test_explicit_missing_lr_folder_or_file_is_an_error(div2k_root):
    hr_dir = div2k_root / "DIV2K_train_HR"
    with pytest.raises(FileNotFoundError, match="LR folder not found"):
        PairedImageDataset.from_folders(hr_dir, div2k_root / "nope", scale=2)
    (div2k_root / "DIV2K_train_LR_bicubic" / "X2" / "0003x2.png").unlink()
    with pytest.raises(FileNotFoundError, match="0003x2.png"):
        PairedImageDataset.from_folders(hr_dir, div2k_root / "DIV2K_train_LR_bicubic" / "X2",
                                        scale=2)


def test_benchmark_layout_and_hr_only_fallback(tmp_path):
    hr = np.random.default_rng(0).integers(0, 256, size=(27, 34, 3), dtype=np.uint8)
    save(tmp_path / "benchmark" / "Set5" / "HR" / "baby.png", hr)
    ds = benchmark_set(tmp_path, "Set5", 3)  # no LR_bicubic folder: made on the fly
    assert ds.lr_source == "bicubic" and not ds.train
    sample = ds[0]
    assert sample["name"] == "baby" and sample["hr"].shape == (3, 27, 33)
    expected_lr = bicubic_lr(modcrop(hr, 3), 3)
    assert torch.equal(sample["lr"], torch.from_numpy(expected_lr).permute(2, 0, 1).float() / 255)
    save(tmp_path / "benchmark" / "Set5" / "LR_bicubic" / "X3" / "babyx3.png", expected_lr)
    from_files = benchmark_set(tmp_path / "benchmark", "Set5", 3)  # root = benchmark folder
    assert from_files.lr_source == "files"
    assert torch.equal(from_files[0]["lr"], sample["lr"])


def test_same_name_lr_template(tmp_path):
    lr = random_lr(5)
    save(tmp_path / "GTmod12" / "bird.png", block_hr(lr, 4))
    save(tmp_path / "LRbicx4" / "bird.png", lr)
    pairs = scan_folder_pairs(tmp_path / "GTmod12", tmp_path / "LRbicx4", 4,
                              lr_template="{stem}{ext}")
    assert pairs[0].lr == tmp_path / "LRbicx4" / "bird.png"


def test_training_patches_are_aligned_and_augmented(div2k_root):
    ds = div2k(div2k_root, scale=2, patch_size=6, repeat=3, rgb_range=255.0, seed=7)
    assert ds.train and len(ds) == 12
    seen = set()
    for i in range(len(ds)):
        s = ds[i]
        assert s["lr"].shape == (3, 6, 6) and s["hr"].shape == (3, 12, 12)
        assert s["lr"].max() <= 255 and s["lr"].max() > 1  # 0..255 range
        lr = s["lr"].permute(1, 2, 0).numpy()
        assert np.array_equal(block_hr(lr, 2), s["hr"].permute(1, 2, 0).numpy())
        seen.add(tuple(s["lr"].flatten()[:8].tolist()))
    assert len(seen) == len(ds)  # repeats of an image get other crops
    assert ds[1]["name"] == ds[5]["name"] == "0002"


def test_flips_and_transpose_all_occur(tmp_path):
    """All 2 crops x 8 flip/transpose combinations appear, and nothing else."""
    lr = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)  # all pixels distinct
    save(tmp_path / "HR" / "a.png", block_hr(lr, 2))
    save(tmp_path / "LR" / "ax2.png", lr)
    ds = PairedImageDataset.from_folders(tmp_path / "HR", tmp_path / "LR", scale=2,
                                         patch_size=4, repeat=200, rgb_range=255.0)
    expected = set()
    for p in (lr[:, :4], lr[:, 1:]):
        for t in (p, p.transpose(1, 0, 2)):
            for v in (t, t[::-1], t[:, ::-1], t[::-1, ::-1]):
                expected.add(np.ascontiguousarray(v).tobytes())
    got = {ds[i]["lr"].permute(1, 2, 0).numpy().astype(np.uint8).tobytes()
           for i in range(len(ds))}
    assert len(expected) == 16 and got == expected


def test_randomness_is_a_pure_function_of_seed_epoch_index(div2k_root):
    def make(seed=1):
        return div2k(div2k_root, scale=2, patch_size=4, repeat=2, seed=seed)

    a, b = make(), make()
    forward = [a[i]["lr"] for i in range(len(a))]
    backward = [b[i]["lr"] for i in reversed(range(len(b)))][::-1]
    assert all(torch.equal(x, y) for x, y in zip(forward, backward))
    a.set_epoch(3)
    epoch3 = [a[i]["lr"] for i in range(len(a))]
    assert not all(torch.equal(x, y) for x, y in zip(forward, epoch3))
    assert all(torch.equal(b[(3, i)]["lr"], epoch3[i]) for i in range(len(b)))  # tuple keys
    assert not all(torch.equal(x, make(seed=2)[i]["lr"]) for i, x in enumerate(forward))


def test_dataloader_workers_give_the_same_samples(div2k_root):
    ds = div2k(div2k_root, scale=2, patch_size=4, seed=3).preload()
    ds.set_epoch(2)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    ref = torch.stack([ds[i]["lr"] for i in range(len(ds))])
    assert torch.equal(torch.cat([b["lr"] for b in batches]), ref)
    assert batches[0]["name"] == ["0001", "0002"]


def test_cache_keeps_decoded_images_within_its_limit(div2k_root):
    ds = div2k(div2k_root, scale=2, train=False)
    assert ds.load(0) is ds.load(0)
    bounded = div2k(div2k_root, scale=2, train=False, cache_limit_mb=0)
    assert bounded.load(0) is not bounded.load(0)
    assert np.array_equal(bounded.load(0)[1], ds.load(0)[1])


def test_argument_errors(div2k_root):
    with pytest.raises(ValueError, match="rgb_range"):
        div2k(div2k_root, scale=2, rgb_range=2.0)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        div2k(div2k_root, scale=2, patch_size=48)[0]
    with pytest.raises(ValueError, match="split"):
        div2k(div2k_root, scale=2, split="test")


def test_demo_split_is_fixed_and_disjoint():
    assert len(DEMO_TRAIN) == 6 and len(DEMO_VAL) == 2
    assert not set(DEMO_TRAIN) & set(DEMO_VAL)
    for split in ("train", "val"):
        ds = demo_dataset(split, scale=2)
        for pair in ds.pairs:
            with Image.open(pair.hr) as im:  # header only: present and colour
                assert im.mode in ("RGB", "RGBA", "P"), (pair.hr, im.mode)


def test_demo_validation_pairs_are_bicubic_of_the_photo():
    skdata = pytest.importorskip("skimage.data")
    ds = demo_dataset("val", scale=3, rgb_range=255.0)
    assert not ds.train and [p.name for p in ds.pairs] == ["chelsea", "ihc"]
    sample = ds[0]
    photo = modcrop(skdata.chelsea(), 3)
    assert torch.equal(sample["hr"], torch.from_numpy(photo).permute(2, 0, 1).float())
    assert torch.equal(sample["lr"],
                       torch.from_numpy(bicubic_lr(photo, 3)).permute(2, 0, 1).float())


def test_demo_training_samples():
    ds = demo_dataset("train", scale=4, repeat=2)
    assert len(ds) == 12
    s = ds[0]
    assert s["name"] == "astronaut"
    assert s["lr"].shape == (3, 48, 48) and s["hr"].shape == (3, 192, 192)
    assert 0.0 <= float(s["hr"].min()) and float(s["hr"].max()) <= 1.0
