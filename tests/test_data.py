"""Data loading on tiny data written in the real on-disk formats, and the batched transforms."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenet.config import DataConfig
from mobilenet.data import cifar
from mobilenet.data import transforms as T
from mobilenet.data.splits import load_digits_splits, load_splits

# --- digits ---------------------------------------------------------------------------------------------


def test_digits_split_is_stratified_and_fixed() -> None:
    train, test = load_digits_splits()
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == torch.bincount(load_digits_splits()[1].labels).tolist()
    assert torch.bincount(test.labels).min() >= 35  # every class about 20 % of its 178-183 images
    x, y = next(train.batches(64, train=True, epoch=3, seed=1))
    x2, y2 = next(train.batches(64, train=True, epoch=3, seed=1))
    assert torch.equal(x, x2) and torch.equal(y, y2)  # order and augmentation depend on (seed, epoch) only
    assert not torch.equal(y, next(train.batches(64, train=True, epoch=4, seed=1))[1])
    # made once per process, but what one caller does to its splits never reaches the next caller's
    before = train.images.clone()
    train.images[:] = 0
    train.classes.append("x")
    again, _ = load_digits_splits()
    assert torch.equal(again.images, before) and again.classes == [str(i) for i in range(10)]


def test_shards_cover_the_epoch_like_distributed_sampler() -> None:
    train, _ = load_digits_splits()
    labels = [torch.cat([y for _, y in train.batches(100, train=True, epoch=0, rank=r, world=2)]) for r in (0, 1)]
    assert len(labels[0]) == len(labels[1]) == 719  # ceil(1437 / 2), padded by wrapping
    test_counts = [
        sum(len(y) for _, y in load_digits_splits()[1].batches(50, train=False, rank=r, world=2)) for r in (0, 1)
    ]
    assert sum(test_counts) == 360  # evaluation shards are exact: no sample counted twice


def test_a_training_subset_is_stratified_fixed_and_leaves_the_test_set_whole() -> None:
    full, _ = load_digits_splits()
    train, test = load_splits(DataConfig("digits", train_images=200))
    assert len(train) == 200 and len(test) == 360
    counts = torch.bincount(train.labels, minlength=10)
    expected = torch.bincount(full.labels, minlength=10) * 200 / len(full)
    assert (counts - expected).abs().max() < 1  # each class in proportion, rounded
    again, _ = load_splits(DataConfig("digits", train_images=200))
    assert torch.equal(train.images, again.images)  # the same images in every run and every variant
    assert train.mean == full.mean  # normalised as the whole split is
    small, _ = load_splits(DataConfig("digits", train_images=10))
    assert sorted(small.labels.tolist()) == list(range(10))  # one per class at the minimum
    with pytest.raises(ValueError, match="between 10 .* and 1437"):
        load_splits(DataConfig("digits", train_images=5))
    with pytest.raises(ValueError, match="must be >= 0"):
        DataConfig("digits", train_images=-1)


# --- transforms -----------------------------------------------------------------------------------------


def test_random_crop_flip_matches_slicing() -> None:
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = T.random_crop_flip(images, 2, generator=g)
    g = torch.Generator().manual_seed(0)
    top, left = torch.randint(0, 5, (2,), generator=g), torch.randint(0, 5, (2,), generator=g)
    flips = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        expected = padded[i, :, top[i] : top[i] + 6, left[i] : left[i] + 6]
        assert torch.equal(out[i], expected.flip(-1) if flips[i] else expected)
    assert torch.equal(T.random_crop_flip(images, 0, flip=False), images)


def test_normalize_uint8_and_float_agree() -> None:
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    assert torch.allclose(T.normalize(x, mean, std), T.normalize(x.float() / 255, mean, std))


def test_imagenet_transforms_give_the_resolution() -> None:
    image = Image.new("RGB", (300, 200), (10, 20, 30))
    g = torch.Generator().manual_seed(0)
    assert T.random_resized_crop(image, 96, g).size == (96, 96)
    crop = T.resize_center_crop(image, 160)
    assert crop.size == (160, 160)
    assert T.pil_to_tensor(Image.new("L", (5, 7))).shape == (3, 7, 5)


# --- CIFAR in both official layouts ------------------------------------------------------------------------


def _binary_records(n: int, label_bytes: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    head = np.stack([labels // 2, labels], 1) if label_bytes == 2 else labels[:, None]
    return np.concatenate([head, pixels], 1).tobytes(), pixels


def _tar(folder: Path, files: dict[str, bytes], archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _fake_layout(monkeypatch: pytest.MonkeyPatch, dataset: str, index: int, archive: Path) -> None:
    layouts = list(cifar.LAYOUTS[dataset])
    layouts[index] = dataclasses.replace(layouts[index], md5=cifar.md5sum(archive))
    monkeypatch.setitem(cifar.LAYOUTS, dataset, tuple(layouts))


@pytest.fixture
def cifar10_binary(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    files, first = {}, None
    for i in range(1, 6):
        files[f"data_batch_{i}.bin"], pixels = _binary_records(4, 1, rng)
        first = pixels if first is None else first
    files["test_batch.bin"], _ = _binary_records(3, 1, rng)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    files["batches.meta.txt"] = ("\n".join(names) + "\n\n").encode()
    archive = tmp_path / "cifar-10-binary.tar.gz"
    _tar(Path("cifar-10-batches-bin"), files, archive)
    return archive, first


def test_cifar10_binary_archive(tmp_path: Path, cifar10_binary, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, first = cifar10_binary
    _fake_layout(monkeypatch, "cifar10", 0, archive)
    train, test = load_splits(DataConfig("cifar10", str(archive), download=False))  # the archive's own path
    assert (len(train), len(test)) == (20, 3) and train.classes[0] == "airplane" and len(train.classes) == 10
    assert torch.equal(load_splits(DataConfig("cifar10", str(tmp_path), download=False))[0].images, train.images)
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ValueError, match="notes.txt is a file, not cifar-10-binary.tar.gz or cifar-10-python"):
        load_splits(DataConfig("cifar10", str(tmp_path / "notes.txt"), download=False))
    assert torch.equal(train.images[0], torch.from_numpy(first[0]).view(3, 32, 32))  # R, G, B planes
    x, _ = next(train.batches(8, train=True))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    # the extracted folder now sits beside the archive and loads without it
    archive.unlink()
    again, _ = load_splits(DataConfig("cifar10", str(tmp_path / "cifar-10-batches-bin"), download=False))
    assert torch.equal(again.images, train.images)


def test_cifar_archive_with_wrong_checksum_is_refused(tmp_path: Path, cifar10_binary) -> None:
    with pytest.raises(ValueError, match="is not the official cifar-10-binary.tar.gz: MD5"):
        load_splits(DataConfig("cifar10", str(tmp_path), download=False))


def test_cifar_download_verifies_checksum(tmp_path: Path, cifar10_binary, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = cifar10_binary
    monkeypatch.setattr(cifar, "BASE_URL", archive.parent.as_uri() + "/")
    dest = tmp_path / "download"
    with pytest.raises(ValueError, match="is corrupt: MD5"):
        load_splits(DataConfig("cifar10", str(dest)))
    assert list(dest.iterdir()) == []  # nothing half-written is left behind
    _fake_layout(monkeypatch, "cifar10", 0, archive)
    train, _ = load_splits(DataConfig("cifar10", str(dest)))
    assert len(train) == 20 and (dest / "cifar-10-binary.tar.gz").is_file()


def test_cifar100_python_layout_and_safe_unpickling(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()

    def batch(n: int) -> dict[bytes, object]:
        return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"fine_labels": [3] * n}

    (folder / "train").write_bytes(pickle.dumps(batch(6)))
    (folder / "test").write_bytes(pickle.dumps(batch(2)))
    # Python 3 re-pickles of the meta file hold the names as bytes: they must read as text, not "b'c0'"
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    train, test = load_splits(DataConfig("cifar100", str(tmp_path), download=False))
    assert (len(train), len(test), len(train.classes)) == (6, 2, 100) and int(train.labels[0]) == 3
    assert train.classes[:2] == ["c0", "c1"]

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    (folder / "test").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_splits(DataConfig("cifar100", str(tmp_path), download=False))


def test_cifar_missing_or_truncated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no cifar10 data in"):
        load_splits(DataConfig("cifar10", str(tmp_path), download=False))
    with pytest.raises(ValueError, match="does not exist"):
        load_splits(DataConfig("cifar10", str(tmp_path / "nope"), download=False))
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(ValueError, match="data_batch_1.bin is truncated"):
        load_splits(DataConfig("cifar10", str(tmp_path), download=False))


# --- ImageFolder --------------------------------------------------------------------------------------------


def _image_tree(root: Path) -> None:
    modes = ["RGB", "L", "RGBA", "P"]
    for split, n in (("train", 3), ("val", 2)):
        for c, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                image = Image.new(modes[(i + c) % 4], (40 + 7 * i, 30 + 5 * c), color=(i * 60) % 255)
                image.save(folder / f"{i}.{'jpg' if image.mode in ('RGB', 'L') else 'png'}")


def test_image_folder_loads_any_size_and_mode(tmp_path: Path) -> None:
    _image_tree(tmp_path)
    train, val = load_splits(DataConfig("imagefolder", str(tmp_path), resolution=64, workers=0))
    assert train.classes == ["cat", "dog"] and (len(train), len(val)) == (6, 4)
    x, y = next(train.batches(4, train=True))
    assert x.shape == (4, 3, 64, 64) and y.tolist() != []
    x, y = next(val.batches(8, train=False))
    assert x.shape == (4, 3, 64, 64) and y.tolist() == [0, 0, 1, 1]
    two, val2 = load_splits(DataConfig("imagefolder", str(tmp_path), resolution=64, workers=0, train_images=2))
    assert sorted(label for _, label in two.samples) == [0, 1] and len(val2) == 4  # one image per class


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda root: (root / "train" / "dog" / "bad.jpg").write_bytes(b"not a jpeg"), "cannot decode image .*bad.jpg"),
        (lambda root: (root / "train" / "empty").mkdir(), "class folder .*empty has no images"),
        (lambda root: (root / "val" / "bird").mkdir(), "class folders not in the training set: bird"),
    ],
)
def test_image_folder_bad_input_names_the_culprit(tmp_path: Path, damage, message: str) -> None:
    _image_tree(tmp_path)
    damage(tmp_path)
    with pytest.raises(ValueError, match=message):
        train, _ = load_splits(DataConfig("imagefolder", str(tmp_path), resolution=32, workers=0))
        for _ in train.batches(16, train=False):
            pass


def test_image_folder_leaves_out_files_that_are_not_images(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _image_tree(tmp_path)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("x")  # sidecar files, as photo folders hold them
    (tmp_path / "train" / "dog" / "0.json").write_text("{}")
    with caplog.at_level(logging.INFO, logger="mobilenet"):
        train, _ = load_splits(DataConfig("imagefolder", str(tmp_path), resolution=32, workers=0))
    assert len(train) == 6 and all(p.suffix in (".jpg", ".png") for p, _ in train.samples)
    assert "left out 2 file(s) that are not images" in caplog.text


def test_decoding_threads_report_a_corrupt_file_in_one_line(tmp_path: Path) -> None:
    import threading

    _image_tree(tmp_path)
    (tmp_path / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    train, _ = load_splits(DataConfig("imagefolder", str(tmp_path), resolution=32, workers=2))
    with pytest.raises(ValueError) as err:
        for _ in train.batches(2, train=True):
            pass
    assert str(err.value).startswith("cannot decode image") and "broken.png" in str(err.value)
    assert "\n" not in str(err.value)
    # the decoding threads are stopped with the error, before it arrives; no process was forked
    assert not [t for t in threading.enumerate() if t.name.startswith("mobilenet-decode")]
    import multiprocessing

    assert multiprocessing.active_children() == []


def test_image_folder_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs --data-dir"):
        load_splits(DataConfig("imagefolder"))
    with pytest.raises(ValueError, match="image folder .*train does not exist"):
        load_splits(DataConfig("imagefolder", str(tmp_path)))
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        DataConfig("mnist")


def test_images_read_as_a_person_sees_them(tmp_path: Path) -> None:
    from PIL import Image

    from mobilenet.data.images import open_image

    grey8 = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).astype(np.uint8)
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # the same picture, 16-bit
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(open_image(tmp_path / "g16.png"))[..., 0], grey8)

    # a phone photo: pixels stored sideways (landscape), EXIF orientation 6 says "rotate 90 deg clockwise"
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, :10] = 255  # a white band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(wide).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    upright = np.asarray(open_image(tmp_path / "phone.jpg"))
    assert upright.shape == (40, 20, 3)  # shown portrait
    assert upright[:8].mean() > 200 and upright[-8:].mean() < 50  # the band is now on top

    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black: shown as the white background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert np.asarray(open_image(tmp_path / "clear.png")).min() == 255
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match="cannot decode image .*bad.png"):
        open_image(tmp_path / "bad.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for min_side in (None, 64):
        with pytest.raises(ValueError, match="cannot decode image .*empty.jpg: the file is empty"):
            open_image(tmp_path / "empty.jpg", min_side)


def test_a_run_on_a_relative_folder_resumes_and_evaluates_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--data-dir photos` is saved as an absolute path, so the run is usable from another directory."""
    import json

    from mobilenet.cli import main

    _image_tree(tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    tiny = ["--arch", "mobilenet_v1", "--width", "0.25", "--resolution", "32", "--workers", "0", "--precision", "fp32"]
    argv = ["train", "--dataset", "imagefolder", "--data-dir", "photos", *tiny, "--epochs", "1", "--out", "run"]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["data_dir"] == str(tmp_path / "photos")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert "(4 images)" in capsys.readouterr().out
