"""Published weights by name: the registry as data, and downloads served from 127.0.0.1 with files the
peers' own libraries wrote (random weights): success, cache hit, resume, hash mismatch, truncated or
unsafe archive, no network, and the preprocessing that travels with the weights."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import import_peer, randomize_bn
from mobilenet.cli import main
from mobilenet.weights import export_tensors, hub, load_pretrained, registry
from mobilenet.weights.registry import ENTRIES, lookup
from tf_writer import write_tf_checkpoint


class Server:
    """Serves `files` (URL path -> bytes) with HTTP range support; `cut` truncates the next response."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut: int | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.cut is not None:  # the connection drops part-way
                    payload, server.cut = payload[: server.cut], None
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    s = Server()
    monkeypatch.setenv("MOBILENET_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MOBILENET_WEIGHTS_URL", s.url)  # the mirror setting: SOURCE/FILE under this base
    yield s
    s.httpd.shutdown()


def _serve(server: Server, monkeypatch: pytest.MonkeyPatch, name: str, body: bytes, *, real_hash: bool = False) -> str:
    """Serve `body` as the file of entry `name`; unless `real_hash`, the entry's hash becomes this body's."""
    entry = ENTRIES[name]
    if not real_hash:
        entry = dataclasses.replace(entry, sha256=hashlib.sha256(body).hexdigest())
        monkeypatch.setitem(ENTRIES, name, entry)
    server.files[f"/{entry.source}/{entry.file_name}"] = body
    return name


def _torchvision_file(width: float = 1.0) -> tuple[bytes, torch.nn.Module]:
    tv = import_peer("torchvision").models.mobilenet_v2(width_mult=width).eval()
    randomize_bn(tv)
    buffer = io.BytesIO()
    torch.save(tv.state_dict(), buffer)
    return buffer.getvalue(), tv


def _cache_files(tmp_path: Path) -> list[str]:
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())  # lock files included


# --- the registry ---------------------------------------------------------------------------------


def test_registry_lists_every_official_file() -> None:
    by_source: dict[str, list[registry.WeightsEntry]] = {}
    for e in ENTRIES.values():
        by_source.setdefault(e.source, []).append(e)
    # torchvision: 2 V2 recipes; timm: 3 V1 + 5 V2; Keras: V1 4 widths x 4 sides, V2 6 widths x 5 sides
    # + 1.3/1.4 at 224, each with and without the top; TF-Slim: 16 V1, 16 V1 quantized, 22 V2 archives
    assert {k: len(v) for k, v in by_source.items()} == {"torchvision": 2, "timm": 8, "keras": 76, "slim": 54}
    tv = ENTRIES["torchvision/mobilenet_v2.imagenet1k_v2"]
    assert tv.url == "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth" and tv.top1 == 72.154
    assert tv.preprocess.resize == 232 and tv.check == "sha256 prefix 7ebf99e0"
    assert ENTRIES["torchvision/mobilenet_v2.imagenet1k_v1"].preprocess.resize == 256
    k = ENTRIES["keras/mobilenet_v1_0.75_160_no_top"]
    assert k.url.endswith("keras-applications/mobilenet/mobilenet_7_5_160_tf_no_top.h5") and k.classes == 0
    k2 = ENTRIES["keras/mobilenet_v2_1.4_224"]
    assert k2.url.endswith("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.4_224.h5") and k2.top1 == 75.23
    assert k2.preprocess.mean == (0.5, 0.5, 0.5) and k2.preprocess.std == (0.5, 0.5, 0.5)
    s1 = ENTRIES["slim/mobilenet_v1_0.5_160"]
    assert s1.url == "http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.5_160.tgz"
    assert s1.top1 == 59.1 and s1.classes == 1001 and s1.preprocess.resolution == 160
    s2 = ENTRIES["slim/mobilenet_v2_0.35_96"]
    assert s2.url == "https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_0.35_96.tgz"
    assert s2.top1 == 45.5
    t = ENTRIES["timm/mobilenetv1_125.ra4_e3600_r224_in1k"]
    assert t.width == 1.25 and t.preprocess.crop == 0.9 and t.preprocess.interpolation == "bicubic"
    # defaults: the loadable 224 file with the best published top-1 for each arch and width
    assert lookup("mobilenet_v2").name == "timm/mobilenetv2_100.ra_in1k"
    assert lookup("mobilenet_v2_0.35").name == "slim/mobilenet_v2_0.35_224"
    # every file has a cache and mirror path of its own (Hugging Face names every timm file model.safetensors)
    assert len({(e.source, e.file_name) for e in ENTRIES.values()}) == len(ENTRIES)
    assert t.file_name == "mobilenetv1_125.ra4_e3600_r224_in1k.safetensors"
    for e in ENTRIES.values():
        assert e.url.startswith("http") and e.file_name
        if e.classes:
            assert e.top1 is not None and 30 < e.top1 < 80
    with pytest.raises(ValueError, match="depth-multiplier"):
        lookup("timm/mobilenetv2_120d.ra_in1k")
    with pytest.raises(ValueError, match="did you mean keras/mobilenet_v2_0.35_96"):
        lookup("keras/mobilenet_v2_0.35_96x")


@pytest.mark.parametrize(
    "name",
    [n for n, e in ENTRIES.items() if e.source == "timm" and not e.unsupported],
)
def test_timm_entries_hold_the_model_they_name(name: str) -> None:
    """Each timm entry's arch and width convert the model timm builds under that name."""
    from mobilenet.weights import convert_tensors

    entry = ENTRIES[name]
    theirs = import_peer("timm").create_model(name.split("/")[1].split(".")[0], pretrained=False)
    converted = convert_tensors(theirs.state_dict(), "timm", arch=entry.arch, width=entry.width)
    assert converted.config.num_classes == entry.classes


# --- downloads ------------------------------------------------------------------------------------


def test_download_verify_convert_cache_and_predict(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, tv = _torchvision_file()
    name = _serve(server, monkeypatch, "torchvision/mobilenet_v2.imagenet1k_v2", body)
    model, meta = load_pretrained(name)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), tv(x), atol=1e-4)
    assert meta["registry_name"] == name and meta["resolution"] == "224" and meta["published_top1"] == "72.154"
    assert abs(float(meta["crop"]) - 224 / 232) < 1e-6 and meta["interpolation"] == "bilinear"
    assert _cache_files(tmp_path) == [
        "downloads/torchvision/mobilenet_v2-7ebf99e0.pth",
        "weights/torchvision__mobilenet_v2.imagenet1k_v2.safetensors",
    ]
    before = len(server.requests)
    from mobilenet import mobilenet_v2

    tuned = mobilenet_v2(weights=name, num_classes=10)  # cache hit: no request; a new head
    assert len(server.requests) == before and tuned.classifier.out_features == 10
    with pytest.raises(ValueError, match="holds arch='mobilenet_v2', not 'mobilenet_v1'"):
        from mobilenet import mobilenet_v1

        mobilenet_v1(weights=name)

    Image.new("RGB", (300, 260), (200, 30, 30)).save(tmp_path / "red.jpg")
    assert main(["predict", str(tmp_path / "red.jpg"), "--weights", name, "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'red.jpg'}: ") and out.count("%") == 2
    assert main(["weights", "list", "--source", "torchvision"]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith(name))
    assert " yes " in row and "72.15" in row and row.endswith("sha256")  # the served file's own hash


def test_interrupted_download_resumes_where_it_stopped(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    body, _ = _torchvision_file(0.5)
    name = _serve(server, monkeypatch, "timm/mobilenetv2_050.lamb_in1k", b"")  # placeholder, replaced below
    body = import_peer("timm").create_model("mobilenetv2_050").state_dict()
    buffer = io.BytesIO()
    torch.save(body, buffer)
    name = _serve(server, monkeypatch, name, buffer.getvalue())
    server.cut = 100_000
    with pytest.raises(ValueError, match=r"cannot download .*mobilenetv2_050-3d30d450.pth .*place it at"):
        hub.get(name, progress=False)
    part = tmp_path / "cache/downloads/timm/mobilenetv2_050-3d30d450.pth.part"
    assert part.stat().st_size == 100_000 and not hub.is_cached(ENTRIES[name])
    path = hub.get(name, progress=False)
    assert server.requests[-1][1] == "bytes=100000-"  # the second request continued the first
    assert path.is_file() and not part.exists()
    got = (tmp_path / "cache/downloads/timm/mobilenetv2_050-3d30d450.pth").read_bytes()
    assert got == buffer.getvalue()


def test_file_lock_excludes_and_leaves_no_file(tmp_path: Path) -> None:
    """Threads opening the lock file each get their own lock, as processes do: one holder at a time, a
    waiter on the removed file locks the path afresh, and nothing is left once all are done."""
    import threading
    import time

    from mobilenet.download import file_lock

    lock, inside, most = tmp_path / "w.lock", [0], [0]

    def work() -> None:
        with file_lock(lock):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.02)
            inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and not lock.exists()


def test_hash_mismatch_is_refused_and_nothing_is_kept(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, _ = _torchvision_file()  # random weights cannot have the published file's hash
    name = _serve(server, monkeypatch, "torchvision/mobilenet_v2.imagenet1k_v1", body, real_hash=True)
    assert main(["weights", "get", name, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused: SHA-256" in err and "expected b0353104" in err
    assert _cache_files(tmp_path) == []


def test_no_network_says_where_to_put_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOBILENET_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MOBILENET_WEIGHTS_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert main(["predict", "x.jpg", "--weights", "mobilenet_v2"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1 and "cannot download http://127.0.0.1:9/timm/mobilenetv2_100_ra-b33bc2c4.pth" in err
    )
    assert f"place it at {tmp_path / 'cache/downloads/timm/mobilenetv2_100_ra-b33bc2c4.pth'}" in err
    assert _cache_files(tmp_path) == []


def _slim_archive(
    arch: str, width: float, name: str, extra: dict[str, bytes] | None = None
) -> tuple[bytes, torch.nn.Module]:
    """A TF-Slim release archive: checkpoint with EMA values and a background class, plus other files."""
    import tempfile

    from mobilenet.config import ModelConfig
    from mobilenet.models import build_model

    ours = build_model(ModelConfig(arch, width, padding="tf-same", bn_eps=1e-3)).eval()  # as Slim builds it
    randomize_bn(ours)
    slim, _ = export_tensors(ours, "slim")
    logits = f"{'MobilenetV1' if arch == 'mobilenet_v1' else 'MobilenetV2'}/Logits/Conv2d_1c_1x1"
    w, b = slim[f"{logits}/weights"], slim[f"{logits}/biases"]
    slim[f"{logits}/weights"] = torch.cat([torch.randn(1, 1, w.shape[2], 1), w], dim=3)
    slim[f"{logits}/biases"] = torch.cat([torch.tensor([5.0]), b])
    arrays = {f"{k}/ExponentialMovingAverage": v.numpy() for k, v in slim.items()}  # what Slim evaluates
    arrays.update({k: np.zeros_like(v.numpy()) for k, v in slim.items()})  # the raw values: not used
    arrays["global_step"] = np.array(1000, dtype=np.int64)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        write_tf_checkpoint(Path(tmp) / f"{name}.ckpt", arrays)
        for part in (".ckpt.index", ".ckpt.data-00000-of-00001"):
            tar.add(Path(tmp) / f"{name}{part}", arcname=f"./{name}{part}")
        for member, data in {f"{name}.tflite": b"not used", f"{name}.ckpt.meta": b"graph", **(extra or {})}.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), ours


def test_slim_archive_unpacked_converted_with_ema(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    body, ours = _slim_archive("mobilenet_v2", 0.35, "mobilenet_v2_0.35_96")
    name = _serve(server, monkeypatch, "slim/mobilenet_v2_0.35_96", body)
    model, meta = load_pretrained(name)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(model(x), ours(x), atol=1e-4)
    assert (
        model.config.padding == "tf-same"
        and meta["resolution"] == "96"
        and "ExponentialMovingAverage" in meta["slim_ema"]
    )
    assert not list((tmp_path / "cache/weights").glob("tmp*"))  # the unpacked checkpoint was removed


def test_truncated_and_unsafe_archives_are_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    body, _ = _slim_archive("mobilenet_v1", 0.25, "mobilenet_v1_0.25_128")
    name = _serve(server, monkeypatch, "slim/mobilenet_v1_0.25_128", body[: len(body) // 2])
    with pytest.raises(ValueError, match="mobilenet_v1_0.25_128.tgz is not a usable TF-Slim archive.*removed"):
        hub.get(name, progress=False)
    assert _cache_files(tmp_path) == []
    evil, _ = _slim_archive("mobilenet_v1", 0.25, "mobilenet_v1_0.25_128", {"../../escape.ckpt.index": b"x"})
    _serve(server, monkeypatch, name, evil)
    with pytest.raises(ValueError, match="unsafe archive member '../../escape.ckpt.index'"):
        hub.get(name, progress=False)
    assert not (tmp_path / "escape.ckpt.index").exists() and _cache_files(tmp_path) == []


@pytest.mark.slow
def test_eval_weights_on_a_folder_uses_the_weights_preprocessing(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, tv = _torchvision_file()
    name = _serve(server, monkeypatch, "torchvision/mobilenet_v2.imagenet1k_v1", body)
    rng = np.random.default_rng(0)
    for cls in ("tench", "goldfish"):  # folders named after the weights' classes
        (tmp_path / "val" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(
                tmp_path / "val" / cls / f"{i}.jpg"
            )
    from mobilenet.train.evaluation import evaluate_weights

    result, _, skipped = evaluate_weights(name, tmp_path, workers=0)
    assert int(result.confusion.sum()) == 6 and result.confusion.shape == (1000, 1000) and skipped == []
    # the same images through torchvision's documented preprocessing (resize 256, crop 224, bilinear)
    from mobilenet.data import transforms as T
    from mobilenet.data.images import open_image

    want = []
    for cls, label in (("goldfish", 1), ("tench", 0)):
        for i in range(3):
            img = T.resize_center_crop(open_image(tmp_path / "val" / cls / f"{i}.jpg"), 224, 224 / 256)
            x = T.normalize(T.pil_to_tensor(img)[None], T.IMAGENET_MEAN, T.IMAGENET_STD)
            with torch.no_grad():
                want.append((tv(x).argmax(1).item(), label))
    for predicted, label in want:
        assert result.confusion[label, predicted] >= 1
    assert main(["eval", "--weights", name, "--data-dir", str(tmp_path), "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "(6 images)" in out and "published top-1 71.878%" in out and "resize" not in out
    # a truncated download among them: named and left out, the rest scored, exit code 1
    good = (tmp_path / "val" / "tench" / "0.jpg").read_bytes()
    (tmp_path / "val" / "tench" / "9.jpg").write_bytes(good[: len(good) // 3])
    assert main(["eval", "--weights", name, "--data-dir", str(tmp_path), "--batch-size", "4"]) == 1
    out = capsys.readouterr().out
    assert "(6 images)" in out and "left out 1 unreadable image:" in out and "9.jpg" in out
    (tmp_path / "val" / "tench" / "9.jpg").unlink()
    assert main(["eval", "--weights", name]) == 2
    capsys.readouterr()
    # int8 from the same weights: calibrated on DIR/train (DIR itself without one), checked on DIR/val
    # in a fresh process, as users run it: the engines' thread pools then never meet those of other tests
    # (the converted weights are in the cache now, so no server or patched hash is needed there)
    import os
    import subprocess
    import sys

    out = tmp_path / "int8"
    argv = ["quantize", "--weights", name, "--data-dir", str(tmp_path), "--calibration", "4", "-o", str(out),
            "--engine", "none"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "mobilenet", *argv], capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "model.int8.onnx").is_file() and (out / "model.onnx").is_file()
    assert "6 held-out images" in done.stdout
    assert main(["quantize", "--weights", name]) == 2


def test_keras_file_by_name_fine_tunes_and_converts_back(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mobilenet.config import ModelConfig
    from mobilenet.models import build_model
    from mobilenet.weights import export_file

    keras_like = build_model(ModelConfig("mobilenet_v2", 0.35, padding="tf-same", bn_eps=1e-3)).eval()
    randomize_bn(keras_like)
    export_file(keras_like, "keras", tmp_path / "k.h5")  # Keras Applications' .h5 layout (proven in test_weights)
    name = _serve(server, monkeypatch, "keras/mobilenet_v2_0.35_96", (tmp_path / "k.h5").read_bytes())
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "ft"
    args = ["train", "--init", name, "--num-classes", "10", "--freeze-backbone", "--epochs", "1",
            "--resolution", "32", "--out", str(run), "--precision", "fp32"]  # fmt: skip
    assert main(args) == 0
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)  # trained on a GPU where there is one
    assert ckpt["mean"] == [0.5, 0.5, 0.5] and ckpt["model_config"]["width"] == 0.35  # Keras' [-1, 1] scaling
    assert torch.equal(ckpt["model"]["blocks.3.expand.conv.weight"], keras_like.blocks[3].expand.conv.weight)
    assert main(["convert", name, "--to", "torchvision"]) == 0
    assert (tmp_path / "keras_mobilenet_v2_0.35_96.pth").is_file()  # written here, not into the cache
    # bench starts the PyTorch profiler, which must not share a process with engines other tests loaded:
    # a fresh process, as users run it (the converted file is in the cache now: no download, no server)
    import os
    import subprocess
    import sys

    argv = [
        "bench",
        "--weights",
        name,
        "--engine",
        "torch",
        "--batch",
        "1",
        "--runs",
        "2",
        "--seconds",
        "0",
        "--no-peers",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "mobilenet", *argv], capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "96x96" in done.stdout  # timed at the weights' own resolution
