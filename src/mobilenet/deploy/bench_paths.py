"""The paths `mobilenet bench` times, and the interleaved timing loop that runs them.

Every path is a callable on one (N, 3, H, W) float batch. Each is warmed up, then timed (median, p90);
PyTorch paths also report their peak activation memory from the allocator (`measure.peak_allocated`,
plus the input batch the caller holds); engine paths the resident memory of loading and running them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mobilenet.cores import restores_torch_threads
from mobilenet.deploy.measure import Timing, engine_memory, peak_allocated, time_interleaved
from mobilenet.models import MobileNet


def _identity(x: Tensor) -> object:
    return x


def to_numpy(x: Tensor) -> object:
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


@dataclass(frozen=True)
class BenchPath:
    name: str
    ours: bool
    run: Callable[[Any], object]
    torch_memory: bool = True  # the allocator sees its tensors (PyTorch paths)
    prepare: Callable[[Tensor], object] = _identity  # converts the shared input once, outside the timing
    engine: tuple[Path, str, str] | None = None  # (file, engine, precision) of an exported-model path


@dataclass(frozen=True)
class BenchResult:
    name: str
    ours: bool
    batch: int
    timing: Timing
    peak_bytes: int | None  # activation peak incl. the input batch; None where it cannot be measured
    rss_bytes: int | None = None  # engine paths: resident memory of loading the engine and running it


@dataclass
class BenchReport:
    resolution: int
    threads: int
    results: list[BenchResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def torch_paths(model: MobileNet, splits: list[int] | None = None, *, channels_last: bool = True) -> list[BenchPath]:
    """Our PyTorch eager model and, for each t in `splits`, the memory-efficient split executor."""
    from mobilenet.deploy.split import SplitInference

    model = model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def eager(x: Tensor) -> Tensor:
        with torch.no_grad():
            return model(x)

    layout = "channels-last" if channels_last else "NCHW"
    paths = [BenchPath(f"mobilenet torch eager ({layout})", True, eager)]
    for t in splits or []:
        paths.append(BenchPath(f"mobilenet split t={t}", True, SplitInference(model, t)))
    return paths


@restores_torch_threads
def run_paths(
    paths: list[BenchPath],
    *,
    resolution: int = 224,
    batches: tuple[int, ...] = (1,),
    threads: int = 2,
    runs: int = 30,
    min_seconds: float = 1.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    report = BenchReport(resolution, threads)
    g = torch.Generator().manual_seed(seed)
    for batch in batches:
        if batch < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch}")
        x = torch.randn(batch, 3, resolution, resolution, generator=g).contiguous(memory_format=torch.channels_last)
        calls = [functools.partial(path.run, path.prepare(x)) for path in paths]
        samples = time_interleaved(
            calls,
            runs=runs,
            min_seconds=min_seconds,
            seed=seed,
            names=[path.name for path in paths],
            progress=functools.partial(_batch_progress, progress, batch) if progress else None,
        )
        # each engine's resident memory is probed in a fresh process; two probes at a time, after the timing
        with ThreadPoolExecutor(2) as pool:
            rss = list(
                pool.map(functools.partial(_resident, batch=batch, resolution=resolution, threads=threads), paths)
            )
        for path, call, times, resident in zip(paths, calls, samples, rss, strict=True):
            timing = Timing.from_samples(times, batch)
            peak = None
            if path.torch_memory:
                peak = peak_allocated(call) + x.numel() * x.element_size()
            report.results.append(BenchResult(path.name, path.ours, batch, timing, peak, resident))
    return report


def _resident(path: BenchPath, *, batch: int, resolution: int, threads: int) -> int | None:
    """An exported-model path's resident memory, measured in a fresh process; None for the others."""
    if path.engine is None:
        return None
    return engine_memory(*path.engine, batch=batch, resolution=resolution, threads=threads)


def engine_runner(path: Path, engine: str, precision: str, threads: int) -> Callable[[Any], object]:
    from mobilenet.deploy import engines

    return engines.load(path, engine, threads=threads, precision=precision)


def _batch_progress(progress: Callable[[str], None], batch: int, text: str) -> None:
    progress(f"batch {batch}: {text}")


def random_calibration(resolution: int, images: int = 16) -> list[np.ndarray]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(images, 3, resolution, resolution, generator=g).numpy()]


def onnx_engine_paths(
    label: str,
    ours: bool,
    files: dict[str, Path],
    engines: list[str],
    precisions: tuple[str, ...],
    threads: int,
) -> list[BenchPath]:
    """One path per installed engine and precision for exported files {"fp32": ..., "int8": ...}:
    bf16 is OpenVINO's hint on the fp32 file, run only where the CPU has bf16 instructions."""
    from mobilenet.deploy import engines as eng

    paths = []
    for engine in engines:
        for precision in precisions:
            if precision == "bf16" and (engine != "openvino" or not eng.cpu_has_bf16()):
                continue
            file = files["fp32" if precision == "bf16" else precision]
            run = engine_runner(file, engine, precision, threads)
            paths.append(
                BenchPath(f"{label} {engine} {precision}", ours, run, False, to_numpy, (file, engine, precision))
            )
    return paths


def engine_paths(
    model: MobileNet,
    resolution: int,
    workdir: Path,
    notes: list[str],
    *,
    engines: tuple[str, ...] = ("onnxruntime", "openvino"),
    precisions: tuple[str, ...] = ("fp32", "int8", "bf16"),
    threads: int = 2,
    calibration: list[np.ndarray] | None = None,
) -> list[BenchPath]:
    """Our model exported to ONNX (BN folded) and int8 QDQ, on each installed engine and precision."""
    from mobilenet.deploy import engines as eng
    from mobilenet.deploy.export import export_onnx
    from mobilenet.deploy.qdq import quantize_onnx

    installed = [e for e in engines if e in eng.available()]
    for e in engines:
        if e not in installed:
            notes.append(f"{e} not installed: its paths were skipped (pip install 'mobilenet[{_extra(e)}]')")
    if not installed:
        return []
    files = {"fp32": export_onnx(model, workdir / "mobilenet.onnx", resolution)}
    if "int8" in precisions:
        calibration = calibration or random_calibration(resolution)
        files["int8"] = quantize_onnx(files["fp32"], workdir / "mobilenet.int8.onnx", calibration)
    if "bf16" in precisions and not eng.cpu_has_bf16():
        notes.append("bf16 skipped: this CPU has neither AVX512-BF16 nor AMX")
    return onnx_engine_paths("mobilenet", True, files, installed, precisions, threads)


def _extra(engine: str) -> str:
    return "openvino" if engine == "openvino" else "deploy"
