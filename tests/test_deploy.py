"""Deployment: BN folding, ONNX / torch.export round trips, int8 quantization accuracy on digits, engines,
engine choice, the bench command, and bad input that loses nothing."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BLOCK_TORCH, randomize_bn
from mobilenet.checkpoint import Checkpoint
from mobilenet.cli import main
from mobilenet.config import DataConfig
from mobilenet.deploy import engines
from mobilenet.deploy.bench_paths import BenchReport, BenchResult
from mobilenet.deploy.bench_report import report_text
from mobilenet.deploy.export import INPUT_NAME, onnx_export, out_of_place
from mobilenet.deploy.measure import Timing
from mobilenet.deploy.qdq import calibration_batches
from mobilenet.deploy.quantize import quantize_checkpoint
from mobilenet.deploy.verify import export_checkpoint, verify_onnx
from mobilenet.layers import fold_bn
from mobilenet.models import mobilenet_v1, mobilenet_v2

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None  # not imported: see below


@pytest.fixture(autouse=True)
def _openvino_only_in_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenVINO is exercised through the CLI in fresh processes (see `_cli`): loaded into this long-lived
    test process beside PyTorch's profiler and onnxruntime, its runtime has crashed the process later."""
    monkeypatch.setitem(sys.modules, "openvino", None)


def test_fold_bn_keeps_the_function_and_removes_every_bn() -> None:
    for model in (mobilenet_v2(0.5), mobilenet_v1(0.25)):
        randomize_bn(model)
        model.eval()
        folded = fold_bn(model)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert (folded(x) - model(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("exporter", ["auto", "dynamo"])
def test_onnx_graph_is_folded_clipped_and_batch_dynamic(tmp_path: Path, exporter: str) -> None:
    model = mobilenet_v2(0.5).eval()
    randomize_bn(model)
    path = onnx_export(fold_bn(model), tmp_path / "m.onnx", torch.randn(2, 3, 96, 96), exporter=exporter)
    graph = onnx.load(str(path)).graph
    ops = Counter(n.op_type for n in graph.node)
    relu6 = sum(isinstance(m, torch.nn.ReLU6) for m in model.modules())
    assert ops["BatchNormalization"] == 0 and ops["Clip"] == relu6 == 35 and ops["Conv"] == 52
    assert ops["Identity"] == ops["Constant"] == 0  # the tracer's leftovers are optimized away
    # the pooling says which exporter wrote it: "auto" must be the fast tracer, not a silent fallback
    assert ops["GlobalAveragePool" if exporter == "auto" else "ReduceMean"] == 1, ops
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 96, 96]
    batches = {f"batch {n}": torch.randn(n, 3, 96, 96) for n in (1, 5)}
    checks = verify_onnx(model, path, batches)
    assert all(c.ok and c.max_abs_diff <= 1e-4 for c in checks), [c.line() for c in checks]
    with pytest.raises(ValueError, match="unknown ONNX exporter 'jit'"):
        onnx_export(model, tmp_path / "x.onnx", torch.randn(1, 3, 96, 96), exporter="jit")


def _cli(*args: str) -> str:
    # A fresh process, as users run it: the bench loads several engines' thread pools and starts the
    # PyTorch profiler, which should not share a process with the engines earlier tests left loaded.
    done = subprocess.run([sys.executable, "-m", "mobilenet", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_export_cli_verifies_on_random_and_real_inputs(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["export", str(digits_run)]) == 0
    out = capsys.readouterr().out
    assert (digits_run / "model.onnx").is_file()
    assert out.count("OK:") == 2 and "held-out images (64 images)" in out and "random inputs" in out
    target = digits_run / "program.pt2"
    assert main(["export", str(digits_run), "--format", "torch-export", "-o", str(target)]) == 0
    assert capsys.readouterr().out.count("OK:") == 2
    program = torch.export.load(str(target)).module()
    assert program(torch.randn(3, 3, 32, 32)).shape == (3, 10)  # the batch stays dynamic
    assert not [p for p in digits_run.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_qat_fake_quantization_matches_pytorchs_op(layout: str) -> None:
    from mobilenet.deploy.qat import _quantize_input

    x = (torch.randn(4, 24, 9, 9) * 3 + 1).requires_grad_()
    if layout == "channels_last":
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    (ours,) = _quantize_input(torch.nn.Identity(), (x,))
    lo, hi = min(float(x.detach().min()), 0.0), max(float(x.detach().max()), 0.0)
    scale = (hi - lo) / 255
    theirs = torch.fake_quantize_per_tensor_affine(x, scale, round(-lo / scale), 0, 255)
    assert torch.allclose(ours, theirs, atol=1e-5 * scale) and len(ours.unique()) > 100
    ours.sum().backward()  # straight through: nothing in the batch's own range is clipped
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.slow(seconds=8)
def test_quantization_aware_finetuning_runs_and_stays_accurate(digits_run: Path, tmp_path: Path) -> None:
    import dataclasses

    # one epoch of fake-quantized fine-tuning on a 320-image stratified subset of the training digits
    data = dataclasses.replace(Checkpoint.load(digits_run).data_config, train_images=320)
    report = quantize_checkpoint(digits_run, tmp_path / "qat", calibration=64, qat_epochs=1, engine="none", data=data)
    assert report.test_images == 360  # the whole held-out split
    assert report.choice is None
    assert any("fake quantization" in n for n in report.notes)
    # held to the checkpoint's own accuracy, not to the fine-tuned fp32 file's: a fine-tuning that lost
    # accuracy cannot pass as within a point
    assert report.finetuned and report.reference_top1() == report.torch_top1
    assert report.top1("onnxruntime", "int8") >= report.torch_top1 - 0.01
    text = report.text()
    assert "points are against the checkpoint's PyTorch fp32" in text
    fp32_line = next(line for line in text.splitlines() if line.strip().startswith("onnxruntime  fp32"))
    delta = (report.top1("onnxruntime", "fp32") - report.torch_top1) * 100
    assert fp32_line.endswith(f"({delta:+.2f} points)"), fp32_line


@pytest.mark.slow(seconds=35)
def test_quantize_cli_prints_sizes_accuracy_and_choice(
    digits_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from PIL import Image

    from mobilenet.data.splits import load_digits_splits
    from mobilenet.deploy.predict import predict

    run = shutil.copytree(digits_run, tmp_path / "run")  # quantized in place: deploy/ inside the run
    # LiteRT as well, timed beside the ONNX engines: its fp32 and int8 (PT2E) files are made, run and held
    # to the same point (ExecuTorch goes through the same code, at three times the conversion time; its
    # int8 file is checked in test_mobile.py)
    out = _cli("quantize", str(run), "--calibration", "64", "--mobile", "litert")
    assert "calibrated on 64 training images; accuracy on 360 held-out images" in out and "picked" in out
    torch_top1 = float(out.split("PyTorch fp32: ")[1].split("%")[0])

    def top1(engine: str, precision: str) -> float:
        line = next(line for line in out.splitlines() if line.startswith(f"  {engine:<12} {precision:<5} top-1"))
        return float(line.split("top-1 ")[1].split("%")[0])

    fp32 = top1("onnxruntime", "fp32")
    assert fp32 == pytest.approx(torch_top1, abs=100 / 360) and fp32 > 80  # the same model on the same data
    # accuracy on the held-out digits: int8 within a point of fp32, on onnxruntime and LiteRT alike
    assert top1("onnxruntime", "int8") >= fp32 - 1.0 and top1("litert", "int8") >= fp32 - 1.0
    assert top1("litert", "fp32") >= fp32 - 1.0
    deploy = run / "deploy"
    assert (deploy / "model.onnx").stat().st_size > 2.5 * (deploy / "model.int8.onnx").stat().st_size
    graph = onnx.load(str(deploy / "model.int8.onnx")).graph
    ops = Counter(n.op_type for n in graph.node)
    assert ops["QuantizeLinear"] > 50 and ops["DequantizeLinear"] > 100
    inits = {i.name: i for i in graph.initializer}
    per_channel = [
        n for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[1] in inits and len(inits[n.input[1]].dims) == 1
        and inits[n.input[1]].dims[0] > 1
    ]  # fmt: skip
    assert len(per_channel) >= 52  # every conv's weights carry one scale per output channel
    # the choice: the fastest of the candidates within a point of fp32, LiteRT's two files among them
    table = out[out.index("engine choice") :].splitlines()[1:]
    rows = [(line[:2], line[3:].split()) for line in table if line[:3] in ("-> ", "   ")]
    assert [cells[0] for _, cells in rows].count("litert") == 2 and "onnxruntime" in {c[0] for _, c in rows}
    ok = [(float(cells[2]), mark) for mark, cells in rows if cells[-1] == "ok"]
    fastest = min(ms for ms, _ in ok)
    assert any(mark == "->" and ms == fastest for ms, mark in ok) and all(
        float(cells[5].rstrip("%")) >= fp32 - 1.0 for _, cells in rows if cells[-1] == "ok"
    )
    assert {p.name for p in (run / "deploy").iterdir()} >= {"model.tflite", "model.int8.tflite", "model.int8.onnx"}
    # int8 weights: well under half the 4 bytes per parameter an fp32 file needs
    from mobilenet.models import count_params

    params = count_params(Checkpoint.load(run).build_model())
    assert (run / "deploy" / "model.int8.tflite").stat().st_size < 0.5 * 4 * params
    # LiteRT's int8 file is full-integer: int8 tensors at both ends, as `mobilenet export` says of it
    from ai_edge_litert.interpreter import Interpreter

    from mobilenet.deploy.mobile_verify import MobileExport

    interpreter = Interpreter(model_path=str(run / "deploy" / "model.int8.tflite"))
    ends = [np.dtype(d[0]["dtype"]).name for d in (interpreter.get_input_details(), interpreter.get_output_details())]
    said = MobileExport(run / "deploy" / "model.int8.tflite", "tflite", True, False, 32).text()
    assert ends == ["int8", "int8"] and "input int8 (1, 3, 32, 32), quantized" in said and "output int8 logits" in said
    choice = json.loads((run / "deploy" / "choice.json").read_text())
    picked = next(line for line in out.splitlines() if line.startswith("picked"))
    assert picked.startswith(f"picked {choice['engine']} {choice['precision']} ({choice['file']})")
    # a later quantize stopped half-way (Ctrl-C while quantizing) leaves the recorded choice as it was
    import mobilenet.deploy.quantize as quantizing

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    before = (run / "deploy" / "choice.json").read_bytes()
    monkeypatch.setattr(quantizing, "quantize_onnx", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quantizing.quantize_checkpoint(run, calibration=8)
    monkeypatch.undo()
    assert (run / "deploy" / "choice.json").read_bytes() == before
    # predict on this run now feeds camera pixels to the picked engine and file, with the same labels
    # (in fresh processes: the choice may be OpenVINO, which this test process keeps out)
    _, test = load_digits_splits()
    photos = []
    for i in range(12):
        photos.append(tmp_path / f"{i}.png")
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(photos[-1])

    def predict_cli(source: Path, files: list[Path]) -> tuple[list[list[str]], str]:
        argv = [sys.executable, "-m", "mobilenet", "predict", *map(str, files), "--checkpoint", str(source)]
        done = subprocess.run([*argv, "--top-k", "1", "--json"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return [p["labels"] for p in json.loads(done.stdout)], done.stderr

    fast, err = predict_cli(run, photos)
    assert f"inference: {choice['engine']} {choice['precision']} (quantize's choice" in err
    plain = predict(run, photos, 1, engine="torch")
    assert sum(a == b.labels for a, b in zip(fast, plain, strict=True)) >= 11
    # a phone runtime's file, when it was the fastest (it may be): predict runs it too
    from mobilenet.deploy.choice import write_choice
    from mobilenet.deploy.engines import EngineChoice

    phone = shutil.copytree(run, tmp_path / "phone")
    tflite = EngineChoice(
        "litert", "int8", phone / "deploy" / "model.int8.tflite", {}, {("litert", "int8"): 0.99}, 0.99, 0.01
    )
    ckpt_path = Checkpoint.load(phone).path
    assert ckpt_path is not None
    write_choice(phone / "deploy", tflite, ckpt_path, 32, tflite.path)
    # the choice's life cycle, in this process on the LiteRT choice (OpenVINO stays out of it)
    caplog.set_level(logging.INFO, logger="mobilenet")

    def predict_here(source: Path, files: list[Path]) -> tuple[list[list[str]], str]:
        caplog.clear()
        labels = [p.labels for p in predict(source, files, 1)]
        return labels, caplog.text

    labels, err = predict_here(phone, photos)
    assert "inference: litert int8 (quantize's choice, model.int8.tflite)" in err
    assert sum(a == b.labels for a, b in zip(labels, plain, strict=True)) >= 11
    moved = shutil.copytree(phone, tmp_path / "moved")  # a copied or moved run keeps its choice
    assert "(quantize's choice" in predict_here(moved, photos[:1])[1]
    # ... also copied without its files' times (`cp -r`, tar, scp): only the contents count
    plain_copy = shutil.copytree(phone, tmp_path / "plain-copy", copy_function=shutil.copyfile)
    os.utime(plain_copy / "deploy" / "model.int8.tflite", (0, 0))
    assert "(quantize's choice" in predict_here(plain_copy, photos[:1])[1]
    chosen = moved / "deploy" / "model.int8.tflite"
    chosen.write_bytes(chosen.read_bytes()[:100])  # damaged since: a warning, and the default engine answers
    labels, err = predict_here(moved, photos[:2])
    assert labels[0] == plain[0].labels
    assert "not using quantize's engine choice" in err and "(quantize's choice" not in err
    best = torch.load(phone / "best.pt", weights_only=True)  # an earlier epoch's weights than last.pt's
    best["model"][next(iter(best["model"]))] += 0.01
    torch.save(best, phone / "best.pt")
    err = predict_here(phone / "best.pt", photos[:1])[1]  # the run's other checkpoint: named, with the fix
    assert f"it was made from last.pt, not best.pt (`mobilenet quantize {phone / 'best.pt'}`" in err
    state = torch.load(phone / "last.pt", weights_only=True)  # retrained since: other weights, same file name
    first = next(iter(state["model"]))
    state["model"][first] = state["model"][first] + 0.01
    torch.save(state, phone / "last.pt")
    err = predict_here(phone, photos[:1])[1]
    assert "made for another version of last.pt (retrained since?)" in err and "(quantize's choice" not in err
    from mobilenet.deploy.choice import forget_choice

    forget_choice(phone / "deploy")  # what a quantize run that picks nothing does: no stale choice survives it
    assert "choice" not in predict_here(phone, photos[:1])[1]
    if not HAS_OPENVINO:
        pytest.skip("OpenVINO is not installed: only onnxruntime was checked")
    lines = [line.split() for line in out.splitlines() if line.strip().startswith(("onnxruntime", "openvino"))]
    top1 = {(w[0], w[1]): float(w[3].rstrip("%")) for w in lines if len(w) > 3 and w[2] == "top-1"}
    assert {("openvino", "fp32"), ("openvino", "int8")} <= set(top1)
    assert top1[("openvino", "fp32")] == pytest.approx(top1[("onnxruntime", "fp32")], abs=0.3)  # same model
    assert top1[("openvino", "int8")] >= top1[("onnxruntime", "fp32")] - 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "{run}", "--width", "1.0"], "holds width=0.5 but --width asks for 1.0"),
        (["export", "{run}", "--arch", "mobilenet_v1"], "holds arch='mobilenet_v2' but --arch asks"),
        (["export", "{run}", "-o", "{tmp}/missing/m.onnx"], "directory .*missing does not exist"),
        (["export", "{tmp}/nothing.pt"], "nothing.pt"),
        (["export", "{run}", "--calibration", "64"], "--calibration sets the int8 calibration images; it needs --int8"),
        (["quantize", "{run}", "--qat-epochs", "-1", "-o", "{tmp}/q"], "--qat-epochs must be >= 0"),
        (["quantize", "{run}", "--dataset", "imagefolder", "--data-dir", "{tmp}/none"],
         "no class folders|does not exist|not found"),
        (["quantize", "{run}", "--calibration", "0", "-o", "{tmp}/q"], "calibration needs at least 1 image"),
        (["bench", "--seconds", "inf"], "seconds must be a finite number >= 0, got inf"),
        (["bench", "--threads", "0"], "--threads must be >= 1, got 0"),
        (["bench", "--width", "0"], "width"),
        (["predict", "x.png", "--checkpoint", "{run}", "--resolution", "0"], "--resolution must be >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.format(run=digits_run, tmp=tmp_path) for a in argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    import re

    assert re.search(message, err), err


def test_unwritable_directory_and_failed_exports_leave_nothing(
    digits_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not (Path("/proc/self").exists() and __import__("os").geteuid() == 0):
            with pytest.raises(ValueError, match="not writable"):
                export_checkpoint(digits_run, locked / "m.onnx")
    finally:
        locked.chmod(0o700)
    # -o never replaces a file of another kind: a typo cannot overwrite the checkpoint or its config
    run = shutil.copytree(digits_run, tmp_path / "run")
    for victim in ("last.pt", "config.json"):
        before = (run / victim).read_bytes()
        with pytest.raises(ValueError, match=r"give a name ending in \.onnx"):
            export_checkpoint(run, run / victim)
        assert (run / victim).read_bytes() == before
    with pytest.raises(ValueError, match=r"ending in \.pt2"):
        export_checkpoint(run, tmp_path / "m.onnx", fmt="torch-export")
    # a directory gets the default name; an earlier export of the same kind is replaced
    assert export_checkpoint(run, locked).path == locked / "model.onnx"
    assert export_checkpoint(run, locked / "model.onnx").path.is_file()
    # an impossible input side is one clear error, before any exporter runs
    for side in (0, 4, -3):
        with pytest.raises(ValueError, match="resolution"):
            export_checkpoint(run, tmp_path / "small.onnx", resolution=side)
    # A verification that fails removes the file it checked.
    out = tmp_path / "strict.onnx"
    with pytest.raises(ValueError, match="export verification failed, nothing written"):
        export_checkpoint(digits_run, out, tolerance=0.0)
    assert list(tmp_path.glob("*strict*")) == [] and list(tmp_path.glob(".strict*")) == []

    # An exporter that dies half-way leaves no partial file either.
    import mobilenet.deploy.verify as deploy

    def broken(model: object, path: Path, resolution: int) -> Path:
        Path(path).write_bytes(b"half an onnx file")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(deploy, "export_onnx", broken)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_checkpoint(digits_run, tmp_path / "half.onnx")
    assert [p.name for p in tmp_path.iterdir() if "half" in p.name] == []


def test_missing_engine_and_bad_files_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    assert "openvino" not in engines.available()
    with pytest.raises(ValueError, match=r"pip install 'mobilenet\[openvino\]'"):
        engines.load(tmp_path / "m.onnx", "openvino")
    with pytest.raises(ValueError, match="unknown engine 'tensorrt'"):
        engines.load(tmp_path / "m.onnx", "tensorrt")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="onnxruntime cannot load .*junk.onnx"):
        engines.load(tmp_path / "junk.onnx", "onnxruntime")
    with pytest.raises(ValueError, match="no bf16 CPU path"):
        engines.load(tmp_path / "junk.onnx", "onnxruntime", precision="bf16")


def test_calibration_batches_take_exactly_n_images() -> None:
    from mobilenet.data.splits import load_splits

    train, _ = load_splits(DataConfig("digits"))
    batches = calibration_batches(train, 70, batch_size=32)
    assert [len(b) for b in batches] == [32, 32, 6] and batches[0].dtype == np.float32
    assert batches[0].shape[1:] == (3, 32, 32)


def test_exported_graph_names_its_input_and_output(tmp_path: Path) -> None:
    model = mobilenet_v1(0.25, num_classes=7).eval()
    path = onnx_export(model, tmp_path / "m.onnx", torch.randn(2, 3, 64, 64))
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == [INPUT_NAME] and [o.name for o in graph.output] == ["logits"]
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 7
    # the exporter saw the activations out of place (faster to export, same graph), and they are given
    # back in place to the caller's model, also when the export fails
    activations = [m for m in model.modules() if isinstance(m, torch.nn.ReLU6)]
    assert activations and all(m.inplace for m in activations)
    assert sum(n.op_type == "Clip" for n in graph.node) == len(activations)
    with pytest.raises(RuntimeError, match="stop"), out_of_place(model):
        assert not any(m.inplace for m in activations)
        raise RuntimeError("stop")
    assert all(m.inplace for m in activations)
    # a process that only runs the exported file needs no torch (the bench's memory probes are such)
    probe = f"""
import numpy as np
from mobilenet.deploy import engines
print(engines.load({str(path)!r}, "onnxruntime")(np.zeros((1, 3, 64, 64), "float32")).shape)
"""
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH + probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "(1, 7)", done.stderr[-1500:]


@pytest.mark.slow
def test_bench_reference_that_names_no_path_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--width", "0.35", "--resolution", "64", "--batch", "1", "--runs", "2", "--seconds", "0",
            "--engine", "torch", "--precision", "fp32", "--no-peers"]  # fmt: skip
    assert main([*argv, "--reference", "torchvision -> onnxruntim fp32"]) == 1  # a typo: the tables, and exit 1
    captured = capsys.readouterr()
    assert "batch 1" in captured.out
    assert "--reference 'torchvision -> onnxruntim fp32' names no timed path" in captured.err
    assert "mobilenet torch eager (channels-last)" in captured.err  # the names it could have been
    assert main(argv) == 0  # the default reference, absent without peers, is not an error


def test_bench_cli_times_ours_and_the_peers() -> None:
    argv = ["bench", "--width", "0.35", "--resolution", "64", "--batch", "1", "--runs", "5", "--seconds", "0.1",
            "--engine", "torch", "onnxruntime", "openvino", "--precision", "fp32", "int8"]  # fmt: skip
    data = json.loads(_cli(*argv, "--json"))
    names = {r["name"] for r in data["results"]}
    assert {
        "mobilenet onnxruntime fp32",
        "mobilenet onnxruntime int8",
        "mobilenet torch eager (channels-last)",
    } <= names
    # torchvision is a test dependency: its paths must be there, not skipped
    # torchvision and timm through every engine and precision ours take: the peers' best paths, not a weak one
    engines = ["onnxruntime", "openvino"] if HAS_OPENVINO else ["onnxruntime"]
    peers = {"torchvision mobilenet_v2 eager"} | {
        f"{peer} -> {engine} {precision}" for peer in ("torchvision", "timm") for engine in engines
        for precision in ("fp32", "int8")
    }  # fmt: skip
    assert peers <= names, data["notes"]
    assert ("mobilenet openvino int8" in names) == HAS_OPENVINO
    fastest = min((r for r in data["results"] if not r["ours"]), key=lambda r: r["median_ms"])
    assert data["fastest_peer"] == {"1": fastest["name"]}
    for r in data["results"]:
        assert r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] and r["runs"] >= 5
        if r["name"].startswith(("mobilenet onnxruntime", "mobilenet openvino")):
            assert r["rss_bytes"] > 0  # measured in a fresh process on Linux
        if r["name"].startswith("mobilenet torch"):
            assert r["peak_bytes"] > 0
    report = BenchReport(data["resolution"], data["threads"], notes=data["notes"])
    report.results = [
        BenchResult(r["name"], r["ours"], r["batch"], Timing.from_samples([r["median_ms"] / 1e3] * 3, r["batch"]),
                    r["peak_bytes"], r["rss_bytes"])
        for r in data["results"]
    ]  # fmt: skip
    text = report_text(report, "torchvision -> onnxruntime fp32")
    assert "reference: torchvision -> onnxruntime fp32" in text and "1.00x" in text
    assert f"fastest peer path: {fastest['name']}" in text
