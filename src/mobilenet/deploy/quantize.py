"""int8 post-training static quantization of a trained checkpoint, measured on its held-out data.

The checkpoint is exported to ONNX (BN folded), then onnxruntime's static quantizer writes a QDQ model:
int8 weights with one scale per output channel, uint8 activations with ranges calibrated on N training
images. Per-channel weights matter for MobileNets: depthwise filters differ widely in range, and the
linear bottleneck's signed, unclipped outputs make a single per-tensor weight scale lose the small
channels. The QDQ file runs in onnxruntime and in OpenVINO (which reads QDQ as int8).

Optionally (`qat_epochs > 0`) the model is first fine-tuned with fake quantization (`deploy/qat.py`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilenet.checkpoint import Checkpoint, Expected
from mobilenet.config import DataConfig, plural
from mobilenet.cores import inference_threads
from mobilenet.data.splits import Split, load_splits
from mobilenet.deploy import engines
from mobilenet.deploy.choice import forget_choice, write_choice
from mobilenet.deploy.export import export_onnx
from mobilenet.deploy.qdq import calibration_batches, quantize_onnx
from mobilenet.files import atomic_path, beside
from mobilenet.models import MobileNet

log = logging.getLogger("mobilenet")


@dataclass(frozen=True)
class EngineAccuracy:
    engine: str
    precision: str
    top1: float


@dataclass
class QuantizeReport:
    fp32_path: Path
    int8_path: Path
    fp32_bytes: int
    int8_bytes: int
    calibration_images: int
    test_images: int
    torch_top1: float
    accuracy: list[EngineAccuracy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resolution: int = 224
    choice: engines.EngineChoice | None = None  # the engine picked for this machine, if one was asked for
    files: dict[tuple[str, str], Path] = field(default_factory=dict)  # phone runtimes' own files
    finetuned: bool = False  # the files hold weights fine-tuned here (QAT), not the checkpoint's

    def reference_top1(self) -> float:
        """What every engine's accuracy is held to: the fp32 ONNX file's on onnxruntime (the checkpoint's
        weights, exported), or the checkpoint's own in PyTorch when the files hold fine-tuned weights (so
        a fine-tuning that loses accuracy cannot pass as within a point)."""
        if not self.finetuned and any(a.engine == "onnxruntime" and a.precision == "fp32" for a in self.accuracy):
            return self.top1("onnxruntime", "fp32")
        return self.torch_top1

    def file(self, precision: str, engine: str | None = None) -> Path:
        if engine is not None and (engine, precision) in self.files:
            return self.files[(engine, precision)]
        return self.int8_path if precision == "int8" else self.fp32_path

    def runner(self, engine: str, precision: str, threads: int) -> Any:
        """A callable running this report's file for (engine, precision): ONNX engines or phone runtimes."""
        return engines.load(self.file(precision, engine), engine, threads=threads, precision=precision)

    def top1(self, engine: str, precision: str) -> float:
        return next(a.top1 for a in self.accuracy if a.engine == engine and a.precision == precision)

    def text(self) -> str:
        lines = [
            f"fp32 ONNX: {self.fp32_path} ({self.fp32_bytes / 1e6:.2f} MB)",
            f"int8 ONNX (QDQ, per-channel weights): {self.int8_path} ({self.int8_bytes / 1e6:.2f} MB, "
            f"{self.fp32_bytes / self.int8_bytes:.2f}x smaller)",
            f"calibrated on {self.calibration_images} training images; accuracy on {self.test_images} "
            f"held-out images (PyTorch fp32: {self.torch_top1:.2%}):",
        ]
        reference = self.reference_top1()
        if self.finetuned:
            lines.append(
                "  (every file holds the fine-tuned weights, model.onnx too; points are against the checkpoint's "
                "PyTorch fp32 above)"
            )
        for a in self.accuracy:
            lines.append(
                f"  {a.engine:<12} {a.precision:<5} top-1 {a.top1:.2%}  ({(a.top1 - reference) * 100:+.2f} points)"
            )
        lines += [f"note: {n}" for n in self.notes]
        if self.choice is not None:
            lines.append(self.choice.text())
        return "\n".join(lines)


def _mobile_accuracy(
    model: MobileNet,
    size: int,
    out: Path,
    batches: list[np.ndarray],
    test: Split,
    report: QuantizeReport,
    mobile: tuple[str, ...],
    threads: int,
) -> None:
    """The phone runtimes as candidates too: fp32 and PT2E int8 files (calibrated on the same images),
    run in LiteRT's interpreter / ExecuTorch's runtime on the held-out images."""
    from mobilenet.deploy.mobile import SUFFIXES, WRITERS, require
    from mobilenet.layers import fold_bn

    folded = fold_bn(model).eval()
    example = torch.from_numpy(batches[0][:1])
    calibration = [torch.from_numpy(b) for b in batches]
    for engine in mobile:
        fmt = engines.PHONE_RUNTIMES[engine]
        suffix = SUFFIXES[fmt]
        try:
            require(fmt)
        except ValueError as err:
            report.notes.append(f"{engine} skipped: {err}")
            continue
        for precision in ("fp32", "int8"):
            path = out / f"model{'.int8' if precision == 'int8' else ''}{suffix}"
            log.info(f"writing {path.name} ({engine} {precision}) and measuring its accuracy")
            with atomic_path(path, suffix) as tmp:
                WRITERS[fmt](folded, tmp, example, calibration if precision == "int8" else None)
            report.files[(engine, precision)] = path
            run = engines.load(path, engine, threads=threads)
            report.accuracy.append(EngineAccuracy(engine, precision, accuracy(run, test)))


def _data(ckpt: Checkpoint, data: DataConfig | None) -> tuple[Split, Split]:
    data = data or ckpt.data_config
    train, test = load_splits(data)
    ckpt.check_classes(train.classes, data.dataset)
    return train, test


def accuracy(run: Any, split: Split, batch_size: int = 64) -> float:
    correct = total = 0
    for x, y in split.batches(batch_size, train=False):
        logits = run(x.numpy().astype(np.float32))
        correct += int((np.asarray(logits).argmax(1) == y.numpy()).sum())
        total += len(y)
    return correct / max(total, 1)


def quantize_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path | None = None,
    *,
    calibration: int = 256,
    data: DataConfig | None = None,
    resolution: int | None = None,
    qat_epochs: int = 0,
    threads: int = 0,
    engine: str = "auto",
    expect: Expected | None = None,
    mobile: tuple[str, ...] = (),
) -> QuantizeReport:
    """Export `checkpoint` to fp32 ONNX and int8 QDQ ONNX in `out_dir` (default: `deploy/` in its run
    directory), measure both on held-out data with every installed engine (and OpenVINO bf16 where the CPU
    supports it), and with `engine="auto"` time them and pick the fastest within a point of fp32."""
    if engine not in ("auto", "none"):
        raise ValueError(f"engine must be 'auto' or 'none', got {engine!r}")
    if qat_epochs < 0:
        raise ValueError(f"--qat-epochs must be >= 0 (0: no fine-tuning), got {qat_epochs}")
    ckpt = Checkpoint.load(checkpoint)
    if expect is not None:
        expect.check(ckpt.model_config)
    model = ckpt.build_model()
    train, test = _data(ckpt, data)
    size = resolution or ckpt.resolution
    out = Path(out_dir) if out_dir else beside(checkpoint, "deploy")
    report = quantize_model(
        model,
        train,
        test,
        out,
        size,
        calibration=calibration,
        qat_epochs=qat_epochs,
        threads=threads,
        engine=engine,
        mobile=mobile,
    )
    # An earlier choice stays until now: if this run is stopped half-way, `predict` keeps using it while
    # its file is unchanged (the record holds the file's hash), and says so when a new file replaced it.
    if report.choice is None:
        forget_choice(out)
    elif ckpt.path is not None:
        file = report.file(report.choice.precision, report.choice.engine)
        written = write_choice(out, report.choice, ckpt.path, size, file)
        if out.resolve() != beside(checkpoint, "deploy").resolve():
            report.notes.append(
                f"the choice is recorded in {written}; `predict --checkpoint` uses it only from the run's own "
                "deploy/ folder (quantize without -o)"
            )
    return report


def quantize_weights(
    weights: str | Path,
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    calibration: int = 256,
    threads: int = 0,
    engine: str = "auto",
) -> QuantizeReport:
    """Published weights (a registry name) or converted .safetensors to int8: calibrated on `DATA/train`
    (or DATA itself) and checked on `DATA/val` (or DATA itself), both read with the weights' own
    preprocessing; written to `out_dir` (default: `./deploy-NAME`)."""
    from mobilenet.train.evaluation import weights_folder_splits
    from mobilenet.weights import load_pretrained
    from mobilenet.weights.hub import local_stem

    if engine not in ("auto", "none"):
        raise ValueError(f"engine must be 'auto' or 'none', got {engine!r}")
    model, meta = load_pretrained(weights)
    train, test = weights_folder_splits(model, meta, data_dir)
    out = Path(out_dir) if out_dir else Path(f"deploy-{local_stem(weights, meta.get('registry_name')).name}")
    return quantize_model(
        model, train, test, out, test.resolution, calibration=calibration, threads=threads, engine=engine
    )


def quantize_model(
    model: MobileNet,
    train: Split,
    test: Split,
    out: Path,
    size: int,
    *,
    calibration: int = 256,
    qat_epochs: int = 0,
    threads: int = 0,
    engine: str = "auto",
    mobile: tuple[str, ...] = (),
) -> QuantizeReport:
    """The shared part: export, calibrate, quantize, measure on every engine (and on the phone runtimes
    in `mobile`: "litert", "executorch"), choose."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create output directory {out}: {err.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"cannot write to {out}")
    batches = calibration_batches(train, calibration)
    notes = []
    with torch.no_grad():
        torch_top1 = accuracy(lambda x: model(torch.from_numpy(x)).numpy(), test)
    if qat_epochs > 0:
        from mobilenet.deploy.qat import qat_finetune

        model = qat_finetune(model, train, epochs=qat_epochs)
        notes.append(f"weights fine-tuned for {plural(qat_epochs, 'epoch')} with fake quantization before calibration")
    fp32_path, int8_path = out / "model.onnx", out / "model.int8.onnx"
    log.info(f"exporting {fp32_path.name} and quantizing it ({sum(len(b) for b in batches)} calibration images)")
    export_onnx(model, fp32_path, size)
    quantize_onnx(fp32_path, int8_path, batches)
    report = QuantizeReport(
        fp32_path,
        int8_path,
        fp32_path.stat().st_size,
        int8_path.stat().st_size,
        sum(len(b) for b in batches),
        len(test),
        torch_top1,
        notes=notes,
        resolution=size,
        finetuned=qat_epochs > 0,
    )
    for name, precision in engines.candidates():
        log.info(f"accuracy of {name} {precision} on {len(test)} held-out images")
        run = engines.load(report.file(precision), name, threads=threads, precision=precision)
        report.accuracy.append(EngineAccuracy(name, precision, accuracy(run, test)))
    unknown = sorted(set(mobile) - set(engines.PHONE_RUNTIMES))
    if unknown:
        raise ValueError(f"unknown phone runtime {unknown[0]!r}; expected litert or executorch")
    if mobile:
        _mobile_accuracy(model, size, out, batches, test, report, mobile, threads)
    if "openvino" not in engines.available():
        report.notes.append("OpenVINO not installed: pip install 'mobilenet[openvino]' to check it too")
    if engine == "auto":
        log.info("timing every engine and precision at batch 1 to pick the fastest")
        report.choice = engines.choose(report, threads=inference_threads(threads))
    return report
