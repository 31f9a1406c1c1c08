"""A checkpoint exported and proven: the file is run in its own runtime, compared with PyTorch on random and
held-out images, and given its name only if every check passes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mobilenet.checkpoint import Checkpoint, Expected
from mobilenet.data.splits import load_splits
from mobilenet.deploy.export import INPUT_NAME, export_onnx, export_program
from mobilenet.files import atomic_path, beside, output_file
from mobilenet.models import MobileNet
from mobilenet.specs import check_resolution

if TYPE_CHECKING:
    from mobilenet.deploy.mobile_verify import MobileExport

SUFFIXES = {"onnx": ".onnx", "torch-export": ".pt2", "tflite": ".tflite", "executorch": ".pte"}


@dataclass(frozen=True)
class Verification:
    inputs: str  # which inputs were compared
    images: int
    max_abs_diff: float
    tolerance: float
    top1_agreement: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def line(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (
            f"{verdict}: {self.inputs} ({self.images} images): max |export - torch| = {self.max_abs_diff:.2e} "
            f"(tolerance {self.tolerance:.0e}), top-1 agreement {self.top1_agreement:.1%}"
        )


def compare_outputs(reference: Tensor, outputs: np.ndarray, inputs: str, tolerance: float = 1e-4) -> Verification:
    ref = reference.detach().float().numpy()
    diff = float(np.abs(outputs - ref).max())
    agree = float((outputs.argmax(1) == ref.argmax(1)).mean())
    return Verification(inputs, ref.shape[0], diff, tolerance, agree)


def verify_onnx(
    model: MobileNet, path: str | Path, batches: dict[str, Tensor], *, tolerance: float = 1e-4, threads: int = 0
) -> list[Verification]:
    """Run the ONNX file in onnxruntime on each named batch and compare with PyTorch eager."""
    from mobilenet.deploy.engines import onnxruntime_session

    session = onnxruntime_session(path, threads=threads)
    results = []
    model = model.eval()
    for name, x in batches.items():
        with torch.no_grad():
            ref = model(x)
        out = session.run(None, {INPUT_NAME: x.numpy()})[0]
        results.append(compare_outputs(ref, out, name, tolerance))
    return results


@dataclass
class ExportResult:
    path: Path
    fmt: str
    resolution: int
    checks: list[Verification] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        size = self.path.stat().st_size / 1e6
        lines = [f"wrote {self.path} ({self.fmt}, {self.resolution}x{self.resolution}, dynamic batch, {size:.2f} MB)"]
        engine = "onnxruntime" if self.fmt == "onnx" else "torch.export.load"
        lines += [f"check vs PyTorch eager in {engine}: {c.line()}" for c in self.checks]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _real_inputs(ckpt: Checkpoint, images: int = 64) -> tuple[torch.Tensor | None, str]:
    """Up to `images` held-out images of the checkpoint's dataset, preprocessed; None if not available here."""
    try:
        _, test = load_splits(ckpt.data_config)
        x, _ = next(iter(test.batches(images, train=False)))
    except (ValueError, OSError, StopIteration) as err:
        return None, f"held-out images skipped: {err}"
    return x.contiguous(), ""


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path | None = None,
    *,
    fmt: str = "onnx",
    resolution: int | None = None,
    tolerance: float = 1e-4,
    expect: Expected | None = None,
    int8: bool = False,
    uint8_nhwc: bool = False,
    calibration: int = 256,
) -> ExportResult | MobileExport:
    """Export and verify against PyTorch on random and real inputs; a file that fails is removed.
    `int8`, `uint8_nhwc` and `calibration` apply to the phone formats (tflite, executorch)."""
    if fmt not in SUFFIXES:
        raise ValueError(f"unknown format {fmt!r}; expected one of: {', '.join(SUFFIXES)}")
    if fmt in ("tflite", "executorch"):
        from mobilenet.deploy.mobile_verify import export_checkpoint_mobile

        return export_checkpoint_mobile(
            checkpoint,
            output,
            fmt=fmt,
            int8=int8,
            uint8_nhwc=uint8_nhwc,
            calibration=calibration,
            resolution=resolution,
            tolerance=tolerance,
            expect=expect,
        )
    if int8 or uint8_nhwc:
        raise ValueError(
            f"int8 and uint8 NHWC input are for tflite and executorch, not {fmt}; see `mobilenet quantize`"
        )
    ckpt = Checkpoint.load(checkpoint)
    if expect is not None:
        expect.check(ckpt.model_config)
    model = ckpt.build_model()
    size = ckpt.resolution if resolution is None else resolution
    check_resolution(model.spec, size)
    path = output_file(output, beside(checkpoint, f"model{SUFFIXES[fmt]}"), SUFFIXES[fmt])
    g = torch.Generator().manual_seed(0)
    batches = {"random inputs": torch.randn(8, 3, size, size, generator=g)}
    real, note = (
        _real_inputs(ckpt)
        if size == ckpt.resolution
        else (None, f"held-out images skipped: exported at {size}, trained at {ckpt.resolution}")
    )
    if real is not None:
        batches["held-out images"] = real
    result = ExportResult(path, fmt, size, notes=[note] if note else [])
    # Write under a temporary name, verify that file, and only then give it the requested name.
    with atomic_path(path, SUFFIXES[fmt]) as tmp:
        if fmt == "onnx":
            export_onnx(model, tmp, size)
            result.checks = verify_onnx(model, tmp, batches, tolerance=tolerance)
        else:
            export_program(model, tmp, size)
            loaded = torch.export.load(str(tmp)).module()
            with torch.no_grad():
                result.checks = [
                    compare_outputs(model(x), loaded(x).numpy(), name, tolerance) for name, x in batches.items()
                ]
        failed = [c for c in result.checks if not c.ok]
        if failed:
            raise ValueError(f"export verification failed, nothing written: {failed[0].line()}")
    return result
