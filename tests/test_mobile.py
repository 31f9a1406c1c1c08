"""Phone exports: LiteRT `.tflite` and ExecuTorch `.pte`, fp32 and int8, each run in its own runtime; the
uint8 NHWC camera input; converted pretrained weights; missing extras and failed checks."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import randomize_bn
from mobilenet.cli import main
from mobilenet.config import ModelConfig
from mobilenet.deploy import mobile
from mobilenet.deploy.keras_tflite import has_tensorflow, keras_files
from mobilenet.deploy.mobile import Preprocessing, Uint8NHWC
from mobilenet.deploy.mobile_verify import export_checkpoint_mobile
from mobilenet.models import build_model

# Checked without importing them: the converters take seconds to import, and each test worker collects
# this module, whether or not it then runs a test that needs them.
_MISSING = [m for m in ("litert_torch", "ai_edge_litert", "executorch") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"not installed: {', '.join(_MISSING)}")

PRE = Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 32)


def _random_model(**config: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(**config))  # type: ignore[arg-type]
    randomize_bn(model)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1)  # logits of order 1, so a 1e-4 match says something
    return model.eval()


@pytest.mark.parametrize("padding", ["symmetric", "tf-same"])
def test_uint8_nhwc_matches_the_float_model_exactly(padding: str) -> None:
    # Not CIFAR: the stem has stride 2, so tf-same pads it asymmetrically (0 before, 1 after).
    model = _random_model(arch="mobilenet_v2", width=0.35, num_classes=10, padding=padding)
    pixels = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    pixels[:, 0] = 0  # a black top row: the border is where a wrong fold shows
    with torch.no_grad():
        ref = model(PRE.normalize(pixels))
        ours = Uint8NHWC(model, PRE)(pixels)
    assert ref.abs().max() > 1
    assert (ours - ref).abs().max() < 1e-4


def test_folding_the_mean_into_the_bias_would_be_wrong_at_the_border() -> None:
    # Why the mean is subtracted before the stem instead: with zero padding of raw pixels, a bias fold is
    # exact inside the image but not on its one-pixel border.
    stem = Uint8NHWC(_random_model(arch="mobilenet_v2", width=0.35, cifar=True), PRE).model.stem.conv
    pixels = torch.randint(0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(2)).float()
    mean = 255 * torch.tensor(PRE.mean).view(1, 3, 1, 1)
    with torch.no_grad():
        right = stem(pixels - mean)
        naive = F.conv2d(pixels, stem.weight, stem.bias - (stem.weight * mean).sum((1, 2, 3)), padding=1)
    assert (naive - right)[..., 1:-1, 1:-1].abs().max() < 1e-3
    assert (naive - right).abs().max() > 0.1


def test_tflite_fp32_from_checkpoint(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(digits_run), "--format", "tflite"]) == 0
    out = capsys.readouterr().out
    path = digits_run / "model.tflite"
    assert path.exists() and f"wrote {path}" in out
    assert out.count("OK: ") == 2 and "held-out images (64 images)" in out, out
    assert "START" not in out and "I0000" not in out  # the converter's own log stays out of the output
    run = mobile.tflite_runner(path)
    x = torch.randn(2, 3, 32, 32)
    from mobilenet.checkpoint import Checkpoint

    with torch.no_grad():
        ref = Checkpoint.load(digits_run).build_model().eval()(x).numpy()
    assert np.abs(run(x.numpy()) - ref).max() < 1e-4
    # running the file needs the interpreter only, never the converter (it loads JAX and takes seconds)
    probe = f"""
import sys
import numpy as np
from mobilenet.deploy import mobile
print(mobile.tflite_runner({str(path)!r})(np.zeros((1, 3, 32, 32), np.float32)).shape)
print(sorted({{"litert_torch", "jax"}} & set(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split("\n")[:2] == ["(1, 10)", "[]"], done.stdout + done.stderr[-1500:]


@pytest.mark.slow(seconds=10)
def test_executorch_fp32_uint8_nhwc(digits_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "camera.pte"
    result = export_checkpoint_mobile(digits_run, out, fmt="executorch", uint8_nhwc=True)
    assert out.exists() and [c.ok for c in result.checks] == [True, True]
    assert max(c.max_abs_diff for c in result.checks) < 1e-4
    assert "uint8 (1, 32, 32, 3) pixels" in result.text()
    pixels = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    from mobilenet.checkpoint import Checkpoint

    ckpt = Checkpoint.load(digits_run)
    pre = Preprocessing(ckpt.mean, ckpt.std, ckpt.resolution)
    with torch.no_grad():
        ref = ckpt.build_model().eval()(pre.normalize(pixels)).numpy()
    assert np.abs(mobile.pte_runner(out)(pixels.numpy()) - ref).max() < 1e-4


@pytest.mark.slow(seconds=25)
def test_int8_within_one_point(digits_run: Path, tmp_path: Path) -> None:
    """ExecuTorch int8 (PT2E, XNNPACK) with camera input, checked against fp32 on the held-out digits
    (LiteRT's int8 file is made, run and held to the same point by `mobilenet quantize --mobile litert` in
    test_deploy.py)."""
    out = tmp_path / "q.pte"
    result = export_checkpoint_mobile(digits_run, out, fmt="executorch", int8=True, uint8_nhwc=True, calibration=64)
    check = result.int8_check
    assert check is not None and check.ok and check.images > 300
    assert check.int8_top1 >= check.fp32_top1 - 0.01 and check.agreement > 0.95
    assert "top-1 agreement" in result.text()
    # the line names the tensor types the file really takes and gives: camera bytes in, float logits out
    pixels = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    logits = mobile.pte_runner(out)(pixels)
    assert logits.dtype == np.float32 and logits.shape == (1, 10)
    assert "input uint8 (1, 32, 32, 3) pixels; output float logits" in result.text().splitlines()[0]
    # int8 weights: well under half the 4 bytes per parameter an fp32 file needs
    from mobilenet.checkpoint import Checkpoint
    from mobilenet.models import count_params

    assert out.stat().st_size < 0.5 * 4 * count_params(Checkpoint.load(digits_run).build_model())


@pytest.mark.slow
def test_export_from_converted_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mobilenet.weights import convert_tensors, save_weights

    theirs = _random_model(arch="mobilenet_v2", width=0.35, num_classes=10)
    converted = convert_tensors(_as_torchvision(theirs), "torchvision", width=0.35)
    weights = save_weights(converted, tmp_path / "v2.safetensors")
    # one phone format is enough here: the weights file is read the same way for both (ExecuTorch's
    # writer is checked from a checkpoint above)
    assert main(["export", str(weights), "--format", "tflite", "--resolution", "64"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "v2.tflite").exists() and f"wrote {tmp_path / 'v2.tflite'}" in out
    assert "OK: random inputs" in out and "(tolerance 1e-04)" in out
    assert main(["export", str(weights), "--format", "tflite", "--int8"]) == 2
    assert "fine-tune" in capsys.readouterr().err


def _as_torchvision(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    from mobilenet.weights import export_tensors

    return export_tensors(model, "torchvision")[0]


@pytest.mark.parametrize(
    "fmt,module,extra", [("tflite", "litert_torch", "litert"), ("executorch", "executorch", "executorch")]
)
def test_missing_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmt: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, f"{module}.exir", None)
    model = _random_model(arch="mobilenet_v2", width=0.35, num_classes=10, cifar=True)
    with pytest.raises(ValueError, match=rf"pip install 'mobilenet\[{extra}\]'") as err:
        mobile.WRITERS[fmt](model, tmp_path / "m", torch.randn(1, 3, 32, 32), None)
    assert "\n" not in str(err.value)


def test_failed_check_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A runtime that gets the numbers slightly wrong: the writer works, the check must refuse the file.
    # (The writer here only writes bytes and the runner is the model itself, 1e-3 off: the real converters
    # and runtimes are checked above; this is the refusal and the clean-up.)
    model = _random_model(arch="mobilenet_v2", width=0.35, num_classes=10, cifar=True)
    written: list[Path] = []

    def writer(module: torch.nn.Module, path: Path, example: torch.Tensor, calibration: object) -> None:
        path.write_bytes(b"a converted model")
        written.append(path)

    def runner(path: Path, threads: int) -> object:
        assert path.read_bytes() == b"a converted model"  # the check runs the file just written
        return lambda x: model(torch.from_numpy(x)).detach().numpy() + 1e-3

    monkeypatch.setitem(mobile.WRITERS, "tflite", writer)
    monkeypatch.setitem(mobile.RUNNERS, "tflite", runner)
    from mobilenet.deploy.mobile_verify import export_mobile

    with pytest.raises(ValueError, match="verification failed, nothing written"):
        export_mobile(model, tmp_path / "m.tflite", fmt="tflite", pre=PRE)
    assert len(written) == 1 and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="int8 export needs calibration"):
        export_mobile(model, tmp_path / "m.tflite", fmt="tflite", pre=PRE, int8=True)


@pytest.mark.slow
def test_bench_times_the_phone_runtimes_beside_the_peers() -> None:
    """`mobilenet bench --engine litert`: ours and torchvision's model through the same exporter and runtime."""
    done = subprocess.run(
        [sys.executable, "-m", "mobilenet", "bench", "--width", "0.35", "--resolution", "32", "--batch", "1",
         "--runs", "3", "--seconds", "0.1", "--engine", "litert", "--precision", "fp32", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    rows = {r["name"]: r for r in data["results"]}
    assert {"mobilenet litert fp32", "torchvision -> litert fp32"} <= set(rows)
    assert all(r["median_ms"] > 0 for r in rows.values())
    # Keras users' own path (TensorFlow's converter, the same interpreter) where TensorFlow is installed
    if has_tensorflow():
        assert "keras -> TFLiteConverter litert fp32" in rows
    else:
        assert any("TFLiteConverter paths skipped" in n and "mobilenet[tensorflow]" in n for n in data["notes"])


@pytest.mark.slow
@pytest.mark.skipif(not has_tensorflow(), reason="TensorFlow (the benchmark extra) is not installed")
def test_keras_through_tflite_converter_fp32_and_full_integer(tmp_path: Path) -> None:
    files = keras_files(tmp_path, 0.5, 7, 64, ("fp32", "int8"))
    assert files["int8"].stat().st_size * 2.5 < files["fp32"].stat().st_size  # int8 weights (biases stay int32)
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3), dtype=np.float32)
    fp32, int8 = (mobile.tflite_runner(files[p], 2)(x) for p in ("fp32", "int8"))
    assert fp32.shape == int8.shape == (2, 7) and np.isfinite(int8).all()
    with pytest.raises(ValueError, match="only at widths"):
        keras_files(tmp_path, 0.25, 7, 64, ("fp32",))


def test_the_cpp_snippet_in_the_docs_compiles_against_executorch_headers(tmp_path: Path) -> None:
    """The app-side C++ in docs/deploy-mobile.md, type-checked against the installed ExecuTorch's own
    headers (the wheel ships them; its libraries are not linked here, so this stops at compilation)."""
    import importlib.util
    import re
    import shutil

    spec = importlib.util.find_spec("executorch")  # a namespace package: no __file__
    assert spec is not None and spec.submodule_search_locations
    compiler = shutil.which("g++") or shutil.which("clang++")
    include = Path(next(iter(spec.submodule_search_locations))) / "include"
    if compiler is None or not (include / "executorch/extension/module/module.h").is_file():
        pytest.skip("no C++ compiler or no ExecuTorch headers")
    docs = (Path(__file__).resolve().parents[1] / "docs" / "deploy-mobile.md").read_text()
    snippet = re.search(r"```cpp\n(.*?)```", docs, re.S)
    assert snippet is not None
    lines = snippet.group(1).splitlines()
    head = [line for line in lines if line.startswith(("#include", "using "))]
    body = [line for line in lines if not line.startswith(("#include", "using "))]

    def compiles(source: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "app.cpp").write_text(source)
        c10 = include / "executorch/runtime/core/portable_type/c10"
        argv = [compiler, "-std=c++17", "-fsyntax-only", "-DC10_USING_CUSTOM_GENERATED_MACROS",
                f"-I{include}", f"-I{c10}", str(tmp_path / "app.cpp")]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)

    program = "\n".join([*head, "int main() {", *body, "}"])
    done = compiles(program)
    assert done.returncode == 0, done.stderr[-3000:]
    assert compiles(program.replace("from_blob(", "from_blobs(")).returncode != 0  # the check can fail
