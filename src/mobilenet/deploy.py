"""One-command deployment of a checkpoint: verified export, and the choice of engine for this machine."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mobilenet.data import DataConfig, load_splits
from mobilenet.export import (
    Verification,
    atomic_path,
    compare_outputs,
    export_onnx,
    export_program,
    verify_onnx,
)
from mobilenet.inference import load_model
from mobilenet.measure import Timing, time_fn
from mobilenet.models import MobileNet
from mobilenet.quantize import QuantizeReport

SUFFIXES = {"onnx": ".onnx", "torch-export": ".pt2"}


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


def _real_inputs(ckpt: dict, images: int = 64) -> tuple[torch.Tensor | None, str]:
    """Up to `images` held-out images of the checkpoint's dataset, preprocessed; None if not available here."""
    try:
        _, test = load_splits(DataConfig(**ckpt["data_config"]))
        x, _ = next(iter(test.batches(images, train=False)))
    except (ValueError, OSError, StopIteration) as err:
        return None, f"real inputs skipped: {err}"
    return x.contiguous(), ""


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path | None = None,
    *,
    fmt: str = "onnx",
    resolution: int | None = None,
    tolerance: float = 1e-4,
    check: Callable[[MobileNet], None] | None = None,
) -> ExportResult:
    """Export and verify against PyTorch on random and real inputs; a file that fails is removed."""
    if fmt not in SUFFIXES:
        raise ValueError(f"unknown format {fmt!r}; expected one of: {', '.join(SUFFIXES)}")
    model, ckpt = load_model(checkpoint)
    if check is not None:
        check(model)
    size = resolution or int(ckpt["resolution"])
    source = Path(checkpoint)
    path = Path(output) if output else (source if source.is_dir() else source.parent) / f"model{SUFFIXES[fmt]}"
    g = torch.Generator().manual_seed(0)
    batches = {"random inputs": torch.randn(8, 3, size, size, generator=g)}
    real, note = _real_inputs(ckpt) if size == int(ckpt["resolution"]) else (None, "real inputs skipped: resized")
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


@dataclass
class EngineChoice:
    engine: str
    precision: str
    path: Path
    timings: dict[tuple[str, str], Timing]
    top1: dict[tuple[str, str], float]
    reference_top1: float
    tolerance: float

    def text(self) -> str:
        lines = ["engine choice (batch 1 latency on this machine, top-1 on held-out data):"]
        for key, t in sorted(self.timings.items(), key=lambda kv: kv[1].median_ms):
            drop = (self.reference_top1 - self.top1[key]) * 100
            ok = "ok" if drop <= self.tolerance * 100 else f"rejected: {drop:.2f} points below fp32"
            mark = "->" if key == (self.engine, self.precision) else "  "
            lines.append(f"{mark} {key[0]:<12} {key[1]:<5} {t.median_ms:7.3f} ms  top-1 {self.top1[key]:.2%}  {ok}")
        t = self.timings[(self.engine, self.precision)]
        lines.append(
            f"picked {self.engine} {self.precision} ({self.path.name}): the fastest at {t.median_ms:.3f} ms "
            f"whose accuracy is within {self.tolerance * 100:.0f} point of fp32"
        )
        return "\n".join(lines)


def choose_engine(report: QuantizeReport, *, threads: int = 2, tolerance: float = 0.01) -> EngineChoice:
    """Time every measured (engine, precision) at batch 1 and pick the fastest within `tolerance` of fp32."""
    from mobilenet import engines

    if not report.accuracy:
        raise ValueError("no engine is installed: pip install 'mobilenet[deploy]' (and optionally [openvino])")
    torch.set_num_threads(threads)
    reference = (
        report.top1("onnxruntime", "fp32")
        if any(a.engine == "onnxruntime" for a in report.accuracy)
        else (report.torch_top1)
    )
    x = np.random.default_rng(0).standard_normal((1, 3, report.resolution, report.resolution), dtype=np.float32)
    timings, top1 = {}, {}
    for a in report.accuracy:
        path = report.int8_path if a.precision == "int8" else report.fp32_path
        run = engines.load(path, a.engine, threads=threads, precision="bf16" if a.precision == "bf16" else "fp32")
        timings[(a.engine, a.precision)] = time_fn(functools.partial(run, x), runs=50, min_seconds=1.0)
        top1[(a.engine, a.precision)] = a.top1
    ok = [k for k in timings if reference - top1[k] <= tolerance]
    best = min(ok, key=lambda k: timings[k].median_ms)
    path = report.int8_path if best[1] == "int8" else report.fp32_path
    return EngineChoice(best[0], best[1], path, timings, top1, reference, tolerance)
