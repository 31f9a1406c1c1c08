"""The photo-to-label pipeline: its correctness, not its speed (that is benchmarks/photo_to_label.py).

uint8 input with the normalisation folded in equals the float path; OpenVINO equals PyTorch; reduced-size
JPEG decoding agrees with full decoding on the main job's model over camera-size photos of the digits
test set; order, bad files and EXIF orientation hold with decoding threads."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenet.checkpoint import Checkpoint
from mobilenet.data import transforms as T
from mobilenet.data.photos import PhotoPrep, load_pixels
from mobilenet.data.splits import load_digits_splits
from mobilenet.deploy.mobile import Preprocessing
from mobilenet.deploy.pipeline import label_photos, uint8_runner
from mobilenet.deploy.predict import predict


def _camera_digits(folder: Path, count: int, side: int = 2400) -> list[tuple[Path, int]]:
    """Test-set digits as large JPEG photos (upscaled smoothly, as a camera would see a printed digit)."""
    _, test = load_digits_splits()
    out = []
    for i in range(count):
        pixels = test.images[i, 0].numpy()
        photo = Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC).convert("RGB")
        path = folder / f"{i:03d}.jpg"
        photo.save(path, quality=90)
        out.append((path, int(test.labels[i])))
    return out


@pytest.fixture(scope="module")
def model_and_pre(digits_run: Path) -> tuple[torch.nn.Module, Preprocessing, list[str]]:
    ckpt = Checkpoint.load(digits_run)
    return ckpt.build_model(), Preprocessing(ckpt.mean, ckpt.std, ckpt.resolution), ckpt.classes


def test_uint8_input_with_folded_normalisation_is_exact_on_both_engines(
    model_and_pre: tuple[torch.nn.Module, Preprocessing, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MOBILENET_HOME", str(tmp_path))
    model, pre, _ = model_and_pre
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        want = model(pre.normalize(torch.from_numpy(pixels))).numpy()
    run, engine = uint8_runner(model, pre, "torch")  # type: ignore[arg-type]
    assert engine == "torch" and np.abs(run(pixels) - want).max() < 1e-4
    run, engine = uint8_runner(model, pre, "openvino")  # type: ignore[arg-type]
    assert engine == "openvino" and np.abs(run(pixels) - want).max() < 1e-3
    assert len(list((tmp_path / "engines").glob("*.onnx"))) == 1  # exported once, cached for later runs
    _, engine = uint8_runner(model, pre, "auto", images=1)  # type: ignore[arg-type]
    assert engine == "openvino"  # cached now, so worth it even for one photo
    [cached] = (tmp_path / "engines").glob("*.onnx")
    good = cached.read_bytes()
    cached.write_bytes(good[: len(good) // 2])  # damaged: said, made again, and right
    with caplog.at_level(logging.WARNING, logger="mobilenet"):
        run, engine = uint8_runner(model, pre, "openvino")  # type: ignore[arg-type]
    assert engine == "openvino" and np.abs(run(pixels) - want).max() < 1e-3
    assert f"the cached export {cached} cannot be loaded" in caplog.text and cached.stat().st_size > len(good) // 2
    caplog.clear()
    # a cache that cannot be written (MOBILENET_HOME is a file here): exported for this run, said once
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("MOBILENET_HOME", str(tmp_path / "not-a-dir"))
    with caplog.at_level(logging.WARNING, logger="mobilenet"):
        run, engine = uint8_runner(model, pre, "openvino")  # type: ignore[arg-type]
    assert engine == "openvino" and np.abs(run(pixels) - want).max() < 1e-3
    assert "cannot cache the OpenVINO export" in caplog.text


def test_reduced_decode_agrees_with_full_decode_on_camera_photos(
    model_and_pre: tuple[torch.nn.Module, Preprocessing, list[str]], tmp_path: Path
) -> None:
    model, pre, _ = model_and_pre
    photos = _camera_digits(tmp_path, 40)
    run, _ = uint8_runner(model, pre, "torch")  # type: ignore[arg-type]
    paths = [p for p, _ in photos]
    fast = list(label_photos(paths, PhotoPrep(32, crop=False), run, workers=0))
    full = list(label_photos(paths, PhotoPrep(32, crop=False, reduced_decode=False), run, workers=0))
    fast_top = np.array([f.logits.argmax() for f in fast])  # type: ignore[union-attr]
    full_top = np.array([f.logits.argmax() for f in full])  # type: ignore[union-attr]
    labels = np.array([label for _, label in photos])
    assert (fast_top == full_top).mean() >= 0.975  # at least 39 of 40 agree
    assert (fast_top == labels).mean() >= 0.9 and (full_top == labels).mean() >= 0.9
    small = load_pixels(paths[0], PhotoPrep(32, crop=False))
    whole = load_pixels(paths[0], PhotoPrep(32, crop=False, reduced_decode=False))
    assert isinstance(small, np.ndarray) and isinstance(whole, np.ndarray)
    assert np.abs(small.astype(int) - whole.astype(int)).mean() < 4  # pixels differ a little, not a lot


_POOLED = """
import json, sys
import numpy as np
from mobilenet.checkpoint import Checkpoint
from mobilenet.data.photos import PhotoPrep
from mobilenet.deploy.mobile import Preprocessing
from mobilenet.deploy.pipeline import label_photos, uint8_runner
run_dir, engine, *paths = sys.argv[1:]
ckpt = Checkpoint.load(run_dir)
run, _ = uint8_runner(ckpt.build_model(), Preprocessing(ckpt.mean, ckpt.std, ckpt.resolution), engine)
out = {}
for workers in (0, 2):
    done = label_photos(paths, PhotoPrep(32, crop=False), run, workers=workers, batch=5)
    out[workers] = [[r.path, None if r.logits is None else r.logits.tolist(), r.error] for r in done]
print(json.dumps(out))
"""


def test_order_and_bad_files_hold_with_decoding_threads(digits_run: Path, tmp_path: Path) -> None:
    """In a fresh process, as `predict` runs: the engine is loaded, then 2 threads decode while it runs."""
    import json
    import subprocess
    import sys

    photos = _camera_digits(tmp_path, 18, side=400)
    paths = [str(p) for p, _ in photos]
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    paths.insert(7, str(tmp_path / "broken.jpg"))
    engine = "openvino" if _has_openvino() else "torch"
    argv = [sys.executable, "-c", _POOLED, str(digits_run), engine, *paths]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    inline, pooled = result["0"], result["2"]
    assert [r[0] for r in pooled] == paths == [r[0] for r in inline]
    assert pooled[7][1] is None and "cannot decode image" in (pooled[7][2] or "")
    for a, b in zip(inline, pooled, strict=True):
        assert (a[1] is None) == (b[1] is None)
        if a[1] is not None and b[1] is not None:
            assert np.abs(np.array(a[1]) - np.array(b[1])).max() < 1e-5


def test_decoding_runs_a_bounded_way_ahead_and_stops_with_its_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large folder is not decoded into memory all at once: at most AHEAD files per thread wait for
    the engine, and a consumer that stops (Ctrl-C, an error) leaves nothing decoding behind it."""
    import threading
    import time

    from mobilenet.data.ahead import AHEAD
    from mobilenet.deploy import pipeline

    started: list[str] = []
    lock = threading.Lock()

    def slow_load(path: str, prep: PhotoPrep) -> np.ndarray:
        with lock:
            started.append(path)
        time.sleep(0.002)
        return np.full((2, 2, 3), int(path), np.uint8)

    monkeypatch.setattr(pipeline, "load_pixels", slow_load)
    paths = [str(i) for i in range(200)]
    decoded = pipeline._decoded(paths, PhotoPrep(2), workers=2)
    first = [int(next(decoded)[0, 0, 0]) for _ in range(5)]  # type: ignore[index]
    time.sleep(0.1)  # time enough to decode everything, were it not bounded
    assert first == [0, 1, 2, 3, 4]
    assert len(started) <= 5 + AHEAD * 2
    decoded.close()  # the consumer stops: what was queued is cancelled, the threads are joined
    after = len(started)
    time.sleep(0.05)
    assert len(started) == after < 20
    rest = pipeline._decoded(paths, PhotoPrep(2), workers=2)  # and in full, every file once, in order
    assert [int(p[0, 0, 0]) for p in rest] == list(range(200))  # type: ignore[index]


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def test_exif_rotated_jpeg_is_upright_after_reduced_decoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    upright = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((200, 200, 1))).astype(np.uint8)  # 1200x1600
    stored = np.rot90(upright, k=1)  # the camera stored it sideways ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with "rotate 90 clockwise to view"
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    Image.fromarray(upright).save(tmp_path / "plain.jpg", quality=95)
    prep = PhotoPrep(64, crop_fraction=0.875)
    a, b = load_pixels(tmp_path / "phone.jpg", prep), load_pixels(tmp_path / "plain.jpg", prep)
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == (64, 64, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 6  # the same picture, the same way up


def test_photos_over_pillows_pixel_limit_are_read_at_reduced_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200-megapixel phone photo is over Pillow's decompression-bomb limit in full; decoded at 1/8 it
    is not. The limit is lowered here so that a 2000x1500 JPEG stands for such a photo."""
    import warnings

    from mobilenet.data.images import open_image

    picture = np.kron(np.random.default_rng(3).integers(0, 256, (15, 20, 3)), np.ones((100, 100, 1)))
    Image.fromarray(picture.astype(np.uint8)).save(tmp_path / "big.jpg", quality=90)  # 2000x1500
    first = Image.fromarray(picture.astype(np.uint8))
    first.save(tmp_path / "phone.mpo", "MPO", save_all=True, append_images=[first.rotate(90)])  # two frames
    with Image.open(tmp_path / "phone.mpo") as mpo:
        assert mpo.format == "MPO"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # refuses over 200,000; warns over 100,000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no decompression-bomb warning for what is decoded small
        assert open_image(tmp_path / "big.jpg", 256).size == (500, 375)  # 1/4 scale: 187,500 pixels
        assert open_image(tmp_path / "phone.mpo", 256).size == (500, 375)  # its primary image, reduced
        pixels = load_pixels(tmp_path / "big.jpg", PhotoPrep(224))
    assert isinstance(pixels, np.ndarray) and pixels.shape == (224, 224, 3)
    with pytest.raises(ValueError, match="big.jpg: Image size .3000000 pixels. exceeds limit"):
        open_image(tmp_path / "big.jpg")  # a full decode keeps Pillow's limit, as a one-line error
    assert "big.jpg" in str(load_pixels(tmp_path / "big.jpg", PhotoPrep(224, reduced_decode=False)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(ValueError, match=r"big.jpg: 500x375 is over Pillow's limit of 100,000 pixels"):
        open_image(tmp_path / "big.jpg", 256)  # still too many pixels at the smallest scale it allows


def test_predict_uses_the_fast_path_by_default_and_full_decode_on_request(digits_run: Path, tmp_path: Path) -> None:
    photos = _camera_digits(tmp_path, 6, side=1600)
    paths: list[str | Path] = [p for p, _ in photos]
    fast = predict(digits_run, paths, 1, engine="torch")
    full = predict(digits_run, paths, 1, engine="torch", full_decode=True)
    old = predict(digits_run, paths, 1, splits=1)  # the PyTorch float path, full decode
    assert [p.labels for p in full] == [p.labels for p in old]
    assert sum(a.labels == b.labels for a, b in zip(fast, full, strict=True)) >= 5
    for a, b in zip(full, old, strict=True):
        assert abs(a.probabilities[0] - b.probabilities[0]) < 1e-3
    assert T.EVAL_CROP_FRACTION == 0.875


def test_folder_evaluation_decodes_large_jpegs_at_reduced_size(tmp_path: Path) -> None:
    import dataclasses

    from mobilenet.data.splits import FolderSplit

    photo = np.kron(np.random.default_rng(2).integers(0, 256, (12, 16, 3)), np.ones((100, 100, 1))).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "big.jpg", quality=92)  # 1600x1200
    split = FolderSplit([(tmp_path / "big.jpg", 0)], ["a"], 64, workers=0, mean=(0.0,) * 3, std=(1.0,) * 3)
    [(fast, _)] = split.batches(1, train=False)
    [(full, _)] = dataclasses.replace(split, reduced_decode=False).batches(1, train=False)
    fast, full = fast[0] * 255, full[0] * 255  # mean 0 and std 1: the pixels' own 0..255 scale
    diff = (fast.float() - full.float()).abs().mean().item()
    assert fast.shape == full.shape == (3, 64, 64) and 0 < diff < 4  # different decoding, the same picture


@pytest.mark.slow
def test_bench_photos_cli_times_both_pipelines(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    from mobilenet.cli import main
    from mobilenet.deploy.bench_photos import digits_agreement
    from mobilenet.deploy.keras_tflite import has_tensorflow

    # a fresh process, as users run it (OpenVINO and LiteRT thread pools stay out of this one)
    argv = [sys.executable, "-m", "mobilenet", "bench", "--photos", "--photo-counts", "2", "8", "4"]
    done = subprocess.run([*argv, "--precision", "fp32", "int8"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "vs fastest: the fastest peer pipeline's ms / ours, or our img/s / the fastest peer's" in out
    for workload in ("one camera photo (4000x3000)", "one web photo (1280x960)", "folder of 8 web photos",
                     "folder of 4 camera photos"):  # fmt: skip
        rows = [line for line in out.splitlines() if line.startswith(workload)]
        # precision, torchvision, keras, ours, ratio against the faster peer, agreement: fp32 and int8 rows
        assert [line[34:].split()[0] for line in rows] == ["fp32", "int8"], out
        for line in rows:
            cells = line[40:].split()
            assert float(cells[0]) > 0 and float(cells[2]) > 0 and cells[3].endswith("x"), line
            assert (cells[1] != "-") == has_tensorflow(), line  # Keras' pipeline wherever TensorFlow is installed
    # the int8 networks are the same weights quantized alike: ours and torchvision's agree as at fp32
    web = [line for line in out.splitlines() if line.startswith("folder of 8 web photos")]
    assert all(int(line.split()[-1].split("/")[0]) >= 6 for line in web), web
    if not has_tensorflow():
        assert "Keras pipeline skipped" in out and "mobilenet[tensorflow]" in out
    assert main(["bench", "--photos", "--photo-counts", "0", "0", "0"]) == 2
    assert main(["bench", "--photos", "--precision", "bf16"]) == 2  # no peer pipeline to compare bf16 with
    assert main(["bench", "--photos", "--precision", "int8", "bf16"]) == 2  # said, not silently dropped
    assert main(["bench", "--photos", "--json"]) == 2
    text = digits_agreement(str(digits_run), 6, 1500, tmp_path)
    assert "(6 images): top-1 agreement fast vs full decode" in text


def test_engines_take_uint8_pixels_for_a_normalised_float_file(tmp_path: Path) -> None:
    """`engines.load(..., pixels=(mean, std))`, how predict feeds quantize's chosen file: the same logits as
    the file fed the normalised float batch, on every installed engine."""
    from mobilenet.config import ModelConfig
    from mobilenet.deploy import engines
    from mobilenet.deploy.export import export_onnx
    from mobilenet.models import build_model

    model = build_model(ModelConfig(width=0.35, num_classes=7)).eval()
    path = export_onnx(model, tmp_path / "m.onnx", 64)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    x = Preprocessing(mean, std, 64).normalize(torch.from_numpy(pixels)).numpy()
    for engine in engines.available():
        want = engines.load(path, engine)(np.ascontiguousarray(x))
        got = engines.load(path, engine, pixels=(mean, std))(pixels)
        assert np.abs(got - want).max() < 1e-4, engine
